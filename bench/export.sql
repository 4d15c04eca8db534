-- The export yardstick: the rows of GET /v1/research/export?format=csv (src/research/export.rs
-- rows_of_patient, src/api/research_export.rs) as one query for
-- COPY (...) TO STDOUT WITH (FORMAT csv, HEADER): the same 20 columns, one row per live session
-- (any status), live assessment and live side effect of a patient consenting now who has a
-- completed session; whole days since that patient's first completed session; charges in
-- bands; patients in id order, each patient's rows by day. The pseudonym is md5 of a
-- per-export secret and the id (the server uses HMAC-SHA-256). The server's k-anonymity pass
-- (a first read of the same rows, generalisation, suppression) has no counterpart here: it is
-- part of what the server's rate pays for. bench.py fills in @SECRET@ and an optional age-band
-- filter at @FILTER@.
WITH pt AS (
    SELECT p.id, p.sex, p.birth_year, f.first_at,
           left(md5('@SECRET@' || p.id), 16) AS pseudonym,
           CASE WHEN extract(year FROM f.first_at)::int - p.birth_year >= 90 THEN '90+'
                ELSE (greatest(extract(year FROM f.first_at)::int - p.birth_year, 0) / 10 * 10) || '-'
                     || (greatest(extract(year FROM f.first_at)::int - p.birth_year, 0) / 10 * 10 + 9) END AS age_band,
           (SELECT c.indication FROM sessions s JOIN courses c ON c.id = s.course_id
            WHERE s.patient_id = p.id AND s.deleted_at IS NULL AND s.started_at = f.first_at
            ORDER BY s.started_at, s.id LIMIT 1) AS first_indication
    FROM patients p
    CROSS JOIN LATERAL (SELECT min(s.started_at) AS first_at FROM sessions s
                        WHERE s.patient_id = p.id AND s.deleted_at IS NULL AND s.status = 'completed') f
    WHERE p.research_consent AND f.first_at IS NOT NULL
),
pf AS (
    SELECT * FROM pt WHERE true @FILTER@
),
ses AS (
    SELECT s.*, c.indication,
           CASE WHEN s.dose_mg_per_kg < 0.5 THEN 'lt_0.5' WHEN s.dose_mg_per_kg < 0.75 THEN '0.5_to_0.75'
                WHEN s.dose_mg_per_kg < 1.0 THEN '0.75_to_1.0' ELSE 'ge_1.0' END AS dose_band,
           CASE WHEN c.protocol = 'standard_induction' AND s.started_at::date - c.start_date > 31
                THEN 'maintenance' ELSE 'induction' END AS phase
    FROM sessions s JOIN courses c ON c.id = s.course_id
    WHERE s.deleted_at IS NULL AND s.patient_id IN (SELECT id FROM pf)
),
out AS (
    SELECT pt.id AS pid, s.started_at AS at, 'session' AS kind, s.indication, s.route, s.dose_band,
           s.status AS session_status, s.phase,
           CASE WHEN s.charge_cents IS NULL THEN NULL WHEN s.charge_cents < 30000 THEN 'lt_300'
                WHEN s.charge_cents < 45000 THEN '300_to_450' ELSE 'ge_450' END AS charge_band,
           o.status AS benefit_status, floor(o.durability_days)::int AS durability_days,
           NULL AS instrument, NULL::int AS total,
           NULL::int AS severity, NULL AS band, NULL AS effect, NULL AS effect_severity,
           NULL::timestamp AS resolved_at
    FROM ses s JOIN pf pt ON pt.id = s.patient_id
    LEFT JOIN session_outcomes o ON o.session_id = s.id
    UNION ALL
    SELECT pt.id, a.taken_at, 'assessment', pt.first_indication, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, a.instrument, a.total,
           CASE WHEN a.instrument = 'daily_mood' THEN 10 - a.total ELSE a.total END, a.band, NULL, NULL, NULL
    FROM assessments a JOIN pf pt ON pt.id = a.patient_id
    WHERE a.deleted_at IS NULL
    UNION ALL
    SELECT pt.id, e.onset_at, 'side_effect', s.indication, s.route, s.dose_band, NULL,
           s.phase, NULL, NULL, NULL, NULL, NULL, NULL, NULL, e.effect, e.severity, e.resolved_at
    FROM side_effects e JOIN ses s ON s.id = e.session_id JOIN pf pt ON pt.id = e.patient_id
    WHERE e.deleted_at IS NULL
)
SELECT o.kind, pt.pseudonym AS patient,
       floor(extract(epoch FROM o.at - pt.first_at) / 86400)::int AS day,
       pt.sex, pt.age_band, coalesce(o.indication, pt.first_indication) AS indication, o.route, o.dose_band,
       o.session_status, o.phase, o.charge_band, o.benefit_status,
       o.durability_days, o.instrument, o.total, o.severity, o.band, o.effect, o.effect_severity,
       floor(extract(epoch FROM o.resolved_at - pt.first_at) / 86400)::int AS resolved_day
FROM out o JOIN pf pt ON pt.id = o.pid
ORDER BY pt.id, o.at

-- Synthetic data set for the benchmark (PostgreSQL), set-based: INSERT ... SELECT over
-- generate_series. bench.py replaces @PATIENTS@, @CLINICS@, @FLOOD@ and @HASH@ (a real argon2id
-- hash made by `ketamine-outcomes user create`) before running it in one transaction.
--
-- Deterministic ids, so that the load scripts can address records:
--   clinic c      00000000-0000-4000-a000-<c:012>
--   patient n     00000000-0000-4000-8000-<n:012>     clinic ((n-1) % CLINICS) + 1
--   course n      00000000-0000-4000-b000-<n:012>     one per patient
--   session       00000000-0000-4000-c000-<(n-1)*10+s:012>    s = 1..10
--   assessment    00000000-0000-4000-d000-<(n-1)*100+j+1:012>  j = 0..99
--   side effect   00000000-0000-4000-e000-<(n-1)*20+k:012>     k = 1..20
--   staff         00000000-0000-4000-9000-<u:012>     u = 1..CLINICS: the recorder of clinic u;
--                 CLINICS+1 .. CLINICS+FLOOD: clinicians of clinic 1 for the login flood
--   consent event 00000000-0000-4000-f000-<n:012>
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';
-- Foreign keys hold by construction: skip their per-row triggers while seeding (CHECK
-- constraints are still enforced). Needs a superuser, as the bench database is made by one.
SET session_replication_role = replica;
BEGIN;

-- Secondary indexes of the big tables are built once, after the rows are in (faster than
-- maintaining them row by row); they are re-created exactly as the migrations define them.
DROP INDEX assessments_patient_time_idx, assessments_patient_sync_idx, assessments_plan_idx,
           side_effects_patient_time_idx, side_effects_patient_sync_idx,
           sessions_patient_time_idx, sessions_patient_sync_idx, sessions_course_idx;

INSERT INTO clinics (id, name, crisis_message, created_at, updated_at)
SELECT '00000000-0000-4000-a000-' || lpad(c::text, 12, '0'), 'Bench clinic ' || c,
       'If you are in crisis, call the clinic or your local emergency number.',
       now() - interval '2 years', now() - interval '2 years'
FROM generate_series(1, @CLINICS@) c;

INSERT INTO users (id, email, password_hash, role, clinic_id, created_at, updated_at)
SELECT '00000000-0000-4000-9000-' || lpad(u::text, 12, '0'),
       CASE WHEN u <= @CLINICS@ THEN 'recorder-' || u || '@bench.example'
            ELSE 'flood-' || (u - @CLINICS@) || '@bench.example' END,
       '@HASH@', 'clinician',
       '00000000-0000-4000-a000-' || lpad((CASE WHEN u <= @CLINICS@ THEN u ELSE 1 END)::text, 12, '0'),
       now() - interval '2 years', now() - interval '2 years'
FROM generate_series(1, @CLINICS@ + @FLOOD@) u;

-- Per patient: clinic, sex, birth year, consent (80 %), indication, route, baseline severity
-- and the course start (100 to 400 days ago, so every record is in the past).
CREATE TEMP TABLE p AS
SELECT n,
       '00000000-0000-4000-8000-' || lpad(n::text, 12, '0') AS id,
       '00000000-0000-4000-b000-' || lpad(n::text, 12, '0') AS course_id,
       '00000000-0000-4000-a000-' || lpad((((n - 1) % @CLINICS@) + 1)::text, 12, '0') AS clinic_id,
       '00000000-0000-4000-9000-' || lpad((((n - 1) % @CLINICS@) + 1)::text, 12, '0') AS recorder,
       (ARRAY['female', 'male', 'female', 'male', 'intersex', 'unknown', 'female', 'male', 'female', 'male'])[1 + n % 10] AS sex,
       1940 + (n * 7) % 66 AS birth_year,
       n % 5 <> 0 AS consent,
       (ARRAY['treatment_resistant_depression', 'treatment_resistant_depression', 'treatment_resistant_depression',
              'major_depression', 'major_depression', 'bipolar_depression', 'ptsd', 'anxiety',
              'treatment_resistant_depression', 'major_depression'])[1 + (n / 3) % 10] AS indication,
       CASE WHEN n % 20 < 10 THEN 'iv' WHEN n % 20 < 14 THEN 'im' WHEN n % 20 < 18 THEN 'intranasal'
            WHEN n % 20 = 18 THEN 'oral' ELSE 'sublingual' END AS route,
       14 + (n * 13) % 11 AS base,
       (n * 17) % 3 AS responder,             -- 0, 1: falls over the course; 2: does not
       (current_date - (100 + (n * 37) % 300))::date AS start_date
FROM generate_series(1, @PATIENTS@) n;

INSERT INTO patients (id, clinic_id, external_ref, birth_year, sex, research_consent, consented_at,
                      body_hash, created_at, updated_at)
SELECT id, clinic_id, 'MRN' || n, birth_year, sex, consent,
       CASE WHEN consent THEN start_date - 1 + time '10:00' END,
       encode(sha256(id::bytea), 'hex'), start_date - 2 + time '10:00', start_date - 2 + time '10:00'
FROM p;

INSERT INTO patient_indications (patient_id, indication) SELECT id, indication FROM p;

INSERT INTO consent_events (id, patient_id, granted, occurred_at, actor_id)
SELECT '00000000-0000-4000-f000-' || lpad(n::text, 12, '0'), id, TRUE, start_date - 1 + time '10:00', recorder
FROM p WHERE consent;

INSERT INTO courses (id, patient_id, indication, protocol, primary_instrument, start_date, closed,
                     body_hash, created_at, updated_at)
SELECT course_id, id, indication, 'standard_induction', 'phq9', start_date, n % 4 = 0,
       encode(sha256(course_id::bytea), 'hex'), start_date - 2 + time '11:00', start_date - 2 + time '11:00'
FROM p;

-- Ten sessions per patient on the standard schedule (days 0 2 4 7 10 14 21 28, then 56 84);
-- a few cancelled, held or stopped early.
CREATE TEMP TABLE s AS
SELECT p.n, s,
       '00000000-0000-4000-c000-' || lpad(((p.n - 1) * 10 + s)::text, 12, '0') AS id,
       p.id AS patient_id, p.course_id, p.route, p.recorder,
       p.start_date + (ARRAY[0, 2, 4, 7, 10, 14, 21, 28, 56, 84])[s] + time '09:00'
         + ((p.n % 5) * 30) * interval '1 minute' AS started_at,
       CASE WHEN s = 10 AND p.n % 10 = 0 THEN 'cancelled'
            WHEN s = 9 AND p.n % 15 = 0 THEN 'held'
            WHEN s = 5 AND p.n % 25 = 0 THEN 'stopped_early'
            ELSE 'completed' END AS status,
       round((0.3 + ((p.n * 7 + s * 3) % 10) * 0.1)::numeric, 2)::float8 AS dose,
       (50 + (p.n * 11) % 70)::float8 AS weight
FROM p CROSS JOIN generate_series(1, 10) s;

INSERT INTO sessions (id, patient_id, course_id, route, started_at, ended_at, dose_mg_per_kg, weight_kg,
                      total_dose_mg, status, hold_reason, charge_cents, pre_systolic, pre_diastolic,
                      pre_heart_rate, pre_spo2, post_systolic, post_diastolic, post_heart_rate, post_spo2,
                      readings, monitoring_minutes, sedation, respiratory_concern, recorded_by, body_hash,
                      created_at, updated_at)
SELECT id, patient_id, course_id, route, started_at, started_at + interval '2 hours', dose, weight,
       round((dose * weight)::numeric, 1)::float8, status,
       CASE WHEN status = 'held' THEN 'blood pressure above the pre-session limit' END,
       45000 + (n % 4) * 5000,
       115 + (n + s) % 30, 70 + (n * 3 + s) % 20, 60 + (n + s * 7) % 30, 95 + (n + s) % 5,
       125 + (n * 5 + s) % 30, 75 + (n + s * 3) % 20, 70 + (n * 3 + s) % 30, 94 + (n + s) % 6,
       '[]', 90 + (n % 4) * 10, (ARRAY['none', 'mild', 'mild', 'moderate'])[1 + (n + s) % 4], FALSE,
       recorder, encode(sha256(id::bytea), 'hex'), started_at + interval '2 hours', started_at + interval '2 hours'
FROM s;

-- 100 assessments per patient, one a day from the day before the course starts: 90 PHQ-9
-- (items that add up to the total, item 9 always 0; band as the server computes it) and 10
-- daily mood scores.
CREATE TEMP TABLE a AS
SELECT p.n, j, p.id AS patient_id, p.recorder,
       '00000000-0000-4000-d000-' || lpad(((p.n - 1) * 100 + j + 1)::text, 12, '0') AS id,
       p.start_date - 1 + j + time '08:00' + ((p.n + j) % 6) * interval '1 hour' AS taken_at,
       j % 10 = 9 AS mood,
       greatest(0, least(24, p.base - CASE WHEN p.responder < 2 THEN (p.base * least(j, 40)) / 55 ELSE 0 END
                                      + ((p.n * 7 + j * 3) % 7) - 3)) AS t
FROM p CROSS JOIN generate_series(0, 99) j;

INSERT INTO assessments (id, patient_id, instrument, taken_at, items, total, band, submitted_by,
                         recorded_by, body_hash, created_at, updated_at)
SELECT id, patient_id,
       CASE WHEN mood THEN 'daily_mood' ELSE 'phq9' END, taken_at,
       CASE WHEN mood THEN '[' || (10 - t / 3) || ']'
            ELSE '[' || concat_ws(',', t / 8, (t + 1) / 8, (t + 2) / 8, (t + 3) / 8, (t + 4) / 8, (t + 5) / 8,
                                  (t + 6) / 8, (t + 7) / 8, 0) || ']' END,
       CASE WHEN mood THEN 10 - t / 3 ELSE t END,
       CASE WHEN mood THEN NULL WHEN t <= 4 THEN 'minimal' WHEN t <= 9 THEN 'mild' WHEN t <= 14 THEN 'moderate'
            WHEN t <= 19 THEN 'moderately_severe' ELSE 'severe' END,
       'clinician', recorder, encode(sha256(id::bytea), 'hex'), taken_at, taken_at
FROM a;

-- Two side effects per session.
INSERT INTO side_effects (id, patient_id, session_id, effect, severity, onset_at, resolved_at, reported_by,
                          note, recorded_by, body_hash, created_at, updated_at)
SELECT '00000000-0000-4000-e000-' || lpad(((s.n - 1) * 20 + (s.s - 1) * 2 + k)::text, 12, '0'),
       s.patient_id, s.id,
       (ARRAY['dissociation', 'nausea', 'headache', 'dizziness', 'altered_time_perception', 'increased_heart_rate',
              'blurry_vision', 'sedation', 'anxiety_or_agitation', 'high_blood_pressure', 'altered_visual_perception',
              'out_of_body_experience', 'vomiting'])[1 + (s.n * 3 + s.s * 5 + k * 7) % 13],
       (ARRAY['mild', 'mild', 'mild', 'moderate', 'moderate', 'severe'])[1 + (s.n + s.s + k) % 6],
       s.started_at + interval '20 minutes',
       CASE WHEN (s.n + s.s * k) % 17 = 0 THEN NULL
            ELSE s.started_at + interval '20 minutes' + ((s.n + s.s + k) % 8 + 1) * interval '30 minutes' END,
       CASE WHEN k = 1 THEN 'clinician' ELSE 'patient' END, NULL, s.recorder,
       md5(s.id || k) || md5(k || s.id), s.started_at + interval '3 hours', s.started_at + interval '3 hours'
FROM s CROSS JOIN generate_series(1, 2) k;

-- Stored outcomes of every completed session and every course (plausible, not recomputed).
INSERT INTO session_outcomes (session_id, patient_id, course_id, instrument, status, baseline, nadir, gain,
                              durability_days, censored, wears_off_within_days, computed_at, started_at, route,
                              dose_mg_per_kg, charge_cents, indication, protocol, course_start_date)
SELECT x.id, x.patient_id, x.course_id, 'phq9', st,
       CASE WHEN st <> 'no_baseline' THEN 12 + (x.n + x.s) % 12 END,
       CASE WHEN st = 'no_benefit' THEN 10 + (x.n + x.s) % 12 WHEN st IN ('wore_off', 'sustained') THEN 4 + (x.n + x.s) % 6 END,
       CASE WHEN st = 'no_benefit' THEN 2 WHEN st IN ('wore_off', 'sustained') THEN 8 + (x.n + x.s) % 12 - (x.n + x.s) % 6 END,
       CASE WHEN st = 'wore_off' THEN 0.5 + ((x.n * 3 + x.s) % 40) * 0.5
            WHEN st = 'sustained' THEN 2 + ((x.n + x.s * 3) % 26) END,
       st = 'sustained',
       st = 'wore_off' AND 0.5 + ((x.n * 3 + x.s) % 40) * 0.5 <= 7,
       x.started_at + interval '1 day', ss.started_at, ss.route, ss.dose_mg_per_kg, ss.charge_cents, c.indication,
       c.protocol, c.start_date
FROM (SELECT s.*, CASE WHEN s.s = 1 AND s.n % 7 = 0 THEN 'no_baseline'
                       WHEN (s.n * 31 + s.s * 17) % 20 < 2 THEN 'no_follow_up'
                       WHEN (s.n * 31 + s.s * 17) % 20 < 6 THEN 'no_benefit'
                       WHEN (s.n * 31 + s.s * 17) % 20 < 13 THEN 'wore_off'
                       ELSE 'sustained' END AS st
      FROM s WHERE s.status = 'completed') x
JOIN sessions ss ON ss.id = x.id JOIN courses c ON c.id = x.course_id;

INSERT INTO course_outcomes (course_id, patient_id, instrument, first_session_at, baseline,
                             end_of_induction_assessment_id, end_of_induction_response,
                             end_of_induction_remission, time_to_response_days, computed_at)
SELECT course_id, id, 'phq9', start_date + time '09:00' + ((n % 5) * 30) * interval '1 minute', base,
       CASE WHEN n % 13 <> 0 THEN '00000000-0000-4000-d000-' || lpad(((n - 1) * 100 + 30)::text, 12, '0') END,
       CASE WHEN n % 13 <> 0 THEN responder < 2 END,
       CASE WHEN n % 13 <> 0 THEN responder = 0 END,
       CASE WHEN n % 13 <> 0 AND responder < 2 THEN (7 + (n % 20))::float8 END,
       start_date + 30 + time '12:00'
FROM p;

CREATE INDEX sessions_patient_time_idx ON sessions (patient_id, started_at, id);
CREATE INDEX sessions_patient_sync_idx ON sessions (patient_id, updated_at, id);
CREATE INDEX sessions_course_idx ON sessions (course_id);
CREATE INDEX side_effects_patient_time_idx ON side_effects (patient_id, onset_at, id);
CREATE INDEX side_effects_patient_sync_idx ON side_effects (patient_id, updated_at, id);
CREATE INDEX assessments_patient_time_idx ON assessments (patient_id, taken_at, id);
CREATE INDEX assessments_patient_sync_idx ON assessments (patient_id, updated_at, id);
CREATE INDEX assessments_plan_idx ON assessments (patient_id, taken_at, id) INCLUDE (instrument)
    WHERE deleted_at IS NULL;

COMMIT;
-- The state autovacuum keeps a live database in: statistics, and the visibility map that lets
-- covering indexes answer without reading the table.
VACUUM ANALYZE;

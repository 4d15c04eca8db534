-- Synthetic data set for the benchmark (SQLite), the same rows as seed/postgres.sql (read its
-- header for the id scheme), set-based through the sqlite3 CLI: INSERT ... SELECT over
-- recursive counters. bench.py replaces @PATIENTS@, @CLINICS@, @FLOOD@ and @HASH@.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA foreign_keys = OFF;  -- the rows hold by construction; CHECK constraints still apply
BEGIN;

CREATE TEMP TABLE num (i INTEGER PRIMARY KEY);
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < max(@PATIENTS@, @CLINICS@ + @FLOOD@, 100))
INSERT INTO num SELECT i FROM c;

INSERT INTO clinics (id, name, crisis_message, created_at, updated_at)
SELECT printf('00000000-0000-4000-a000-%012d', i), 'Bench clinic ' || i,
       'If you are in crisis, call the clinic or your local emergency number.',
       datetime('now', '-2 years'), datetime('now', '-2 years')
FROM num WHERE i BETWEEN 1 AND @CLINICS@;

INSERT INTO users (id, email, password_hash, role, clinic_id, created_at, updated_at)
SELECT printf('00000000-0000-4000-9000-%012d', i),
       CASE WHEN i <= @CLINICS@ THEN 'recorder-' || i || '@bench.example'
            ELSE 'flood-' || (i - @CLINICS@) || '@bench.example' END,
       '@HASH@', 'clinician',
       printf('00000000-0000-4000-a000-%012d', CASE WHEN i <= @CLINICS@ THEN i ELSE 1 END),
       datetime('now', '-2 years'), datetime('now', '-2 years')
FROM num WHERE i BETWEEN 1 AND @CLINICS@ + @FLOOD@;

CREATE TEMP TABLE p AS
SELECT i AS n,
       printf('00000000-0000-4000-8000-%012d', i) AS id,
       printf('00000000-0000-4000-b000-%012d', i) AS course_id,
       printf('00000000-0000-4000-a000-%012d', ((i - 1) % @CLINICS@) + 1) AS clinic_id,
       printf('00000000-0000-4000-9000-%012d', ((i - 1) % @CLINICS@) + 1) AS recorder,
       CASE i % 10 WHEN 0 THEN 'female' WHEN 1 THEN 'male' WHEN 2 THEN 'female' WHEN 3 THEN 'male'
                   WHEN 4 THEN 'intersex' WHEN 5 THEN 'unknown' WHEN 6 THEN 'female' WHEN 7 THEN 'male'
                   WHEN 8 THEN 'female' ELSE 'male' END AS sex,
       1940 + (i * 7) % 66 AS birth_year,
       i % 5 <> 0 AS consent,
       CASE (i / 3) % 10 WHEN 0 THEN 'treatment_resistant_depression' WHEN 1 THEN 'treatment_resistant_depression'
                         WHEN 2 THEN 'treatment_resistant_depression' WHEN 3 THEN 'major_depression'
                         WHEN 4 THEN 'major_depression' WHEN 5 THEN 'bipolar_depression' WHEN 6 THEN 'ptsd'
                         WHEN 7 THEN 'anxiety' WHEN 8 THEN 'treatment_resistant_depression'
                         ELSE 'major_depression' END AS indication,
       CASE WHEN i % 20 < 10 THEN 'iv' WHEN i % 20 < 14 THEN 'im' WHEN i % 20 < 18 THEN 'intranasal'
            WHEN i % 20 = 18 THEN 'oral' ELSE 'sublingual' END AS route,
       14 + (i * 13) % 11 AS base,
       (i * 17) % 3 AS responder,
       date('now', '-' || (100 + (i * 37) % 300) || ' days') AS start_date
FROM num WHERE i BETWEEN 1 AND @PATIENTS@;

INSERT INTO patients (id, clinic_id, external_ref, birth_year, sex, research_consent, consented_at,
                      body_hash, created_at, updated_at)
SELECT id, clinic_id, 'MRN' || n, birth_year, sex, consent,
       CASE WHEN consent THEN datetime(start_date, '-1 days', '+10 hours') END,
       lower(hex(randomblob(32))), datetime(start_date, '-2 days', '+10 hours'),
       datetime(start_date, '-2 days', '+10 hours')
FROM p;

INSERT INTO patient_indications (patient_id, indication) SELECT id, indication FROM p;

INSERT INTO consent_events (id, patient_id, granted, occurred_at, actor_id)
SELECT printf('00000000-0000-4000-f000-%012d', n), id, 1, datetime(start_date, '-1 days', '+10 hours'), recorder
FROM p WHERE consent;

INSERT INTO courses (id, patient_id, indication, protocol, primary_instrument, start_date, closed,
                     body_hash, created_at, updated_at)
SELECT course_id, id, indication, 'standard_induction', 'phq9', start_date, n % 4 = 0,
       lower(hex(randomblob(32))), datetime(start_date, '-2 days', '+11 hours'),
       datetime(start_date, '-2 days', '+11 hours')
FROM p;

CREATE TEMP TABLE s AS
SELECT p.n, k.i AS s,
       printf('00000000-0000-4000-c000-%012d', (p.n - 1) * 10 + k.i) AS id,
       p.id AS patient_id, p.course_id, p.route, p.recorder,
       datetime(p.start_date, '+' || (CASE k.i WHEN 1 THEN 0 WHEN 2 THEN 2 WHEN 3 THEN 4 WHEN 4 THEN 7
                                       WHEN 5 THEN 10 WHEN 6 THEN 14 WHEN 7 THEN 21 WHEN 8 THEN 28
                                       WHEN 9 THEN 56 ELSE 84 END) || ' days',
                '+9 hours', '+' || ((p.n % 5) * 30) || ' minutes') AS started_at,
       CASE WHEN k.i = 10 AND p.n % 10 = 0 THEN 'cancelled'
            WHEN k.i = 9 AND p.n % 15 = 0 THEN 'held'
            WHEN k.i = 5 AND p.n % 25 = 0 THEN 'stopped_early'
            ELSE 'completed' END AS status,
       round(0.3 + ((p.n * 7 + k.i * 3) % 10) * 0.1, 2) AS dose,
       50.0 + (p.n * 11) % 70 AS weight
FROM p CROSS JOIN num k WHERE k.i BETWEEN 1 AND 10;

INSERT INTO sessions (id, patient_id, course_id, route, started_at, ended_at, dose_mg_per_kg, weight_kg,
                      total_dose_mg, status, hold_reason, charge_cents, pre_systolic, pre_diastolic,
                      pre_heart_rate, pre_spo2, post_systolic, post_diastolic, post_heart_rate, post_spo2,
                      readings, monitoring_minutes, sedation, respiratory_concern, recorded_by, body_hash,
                      created_at, updated_at)
SELECT id, patient_id, course_id, route, started_at, datetime(started_at, '+2 hours'), dose, weight,
       round(dose * weight, 1), status,
       CASE WHEN status = 'held' THEN 'blood pressure above the pre-session limit' END,
       45000 + (n % 4) * 5000,
       115 + (n + s) % 30, 70 + (n * 3 + s) % 20, 60 + (n + s * 7) % 30, 95 + (n + s) % 5,
       125 + (n * 5 + s) % 30, 75 + (n + s * 3) % 20, 70 + (n * 3 + s) % 30, 94 + (n + s) % 6,
       '[]', 90 + (n % 4) * 10,
       CASE (n + s) % 4 WHEN 0 THEN 'none' WHEN 3 THEN 'moderate' ELSE 'mild' END, 0,
       recorder, lower(hex(randomblob(32))), datetime(started_at, '+2 hours'), datetime(started_at, '+2 hours')
FROM s;

CREATE TEMP TABLE a AS
SELECT p.n, j.i AS j, p.id AS patient_id, p.recorder,
       printf('00000000-0000-4000-d000-%012d', (p.n - 1) * 100 + j.i + 1) AS id,
       datetime(p.start_date, (j.i - 1) || ' days', '+' || (8 + (p.n + j.i) % 6) || ' hours') AS taken_at,
       j.i % 10 = 9 AS mood,
       max(0, min(24, p.base - CASE WHEN p.responder < 2 THEN (p.base * min(j.i, 40)) / 55 ELSE 0 END
                               + ((p.n * 7 + j.i * 3) % 7) - 3)) AS t
FROM p CROSS JOIN num j WHERE j.i BETWEEN 0 AND 99;

INSERT INTO assessments (id, patient_id, instrument, taken_at, items, total, band, submitted_by,
                         recorded_by, body_hash, created_at, updated_at)
SELECT id, patient_id, CASE WHEN mood THEN 'daily_mood' ELSE 'phq9' END, taken_at,
       CASE WHEN mood THEN '[' || (10 - t / 3) || ']'
            ELSE '[' || (t / 8) || ',' || ((t + 1) / 8) || ',' || ((t + 2) / 8) || ',' || ((t + 3) / 8) || ','
                 || ((t + 4) / 8) || ',' || ((t + 5) / 8) || ',' || ((t + 6) / 8) || ',' || ((t + 7) / 8) || ',0]' END,
       CASE WHEN mood THEN 10 - t / 3 ELSE t END,
       CASE WHEN mood THEN NULL WHEN t <= 4 THEN 'minimal' WHEN t <= 9 THEN 'mild' WHEN t <= 14 THEN 'moderate'
            WHEN t <= 19 THEN 'moderately_severe' ELSE 'severe' END,
       'clinician', recorder, lower(hex(randomblob(32))), taken_at, taken_at
FROM a;

INSERT INTO side_effects (id, patient_id, session_id, effect, severity, onset_at, resolved_at, reported_by,
                          note, recorded_by, body_hash, created_at, updated_at)
SELECT printf('00000000-0000-4000-e000-%012d', (s.n - 1) * 20 + (s.s - 1) * 2 + k.i),
       s.patient_id, s.id,
       CASE (s.n * 3 + s.s * 5 + k.i * 7) % 13 WHEN 0 THEN 'dissociation' WHEN 1 THEN 'nausea' WHEN 2 THEN 'headache'
            WHEN 3 THEN 'dizziness' WHEN 4 THEN 'altered_time_perception' WHEN 5 THEN 'increased_heart_rate'
            WHEN 6 THEN 'blurry_vision' WHEN 7 THEN 'sedation' WHEN 8 THEN 'anxiety_or_agitation'
            WHEN 9 THEN 'high_blood_pressure' WHEN 10 THEN 'altered_visual_perception'
            WHEN 11 THEN 'out_of_body_experience' ELSE 'vomiting' END,
       CASE (s.n + s.s + k.i) % 6 WHEN 3 THEN 'moderate' WHEN 4 THEN 'moderate' WHEN 5 THEN 'severe' ELSE 'mild' END,
       datetime(s.started_at, '+20 minutes'),
       CASE WHEN (s.n + s.s * k.i) % 17 = 0 THEN NULL
            ELSE datetime(s.started_at, '+' || (20 + ((s.n + s.s + k.i) % 8 + 1) * 30) || ' minutes') END,
       CASE WHEN k.i = 1 THEN 'clinician' ELSE 'patient' END, NULL, s.recorder,
       lower(hex(randomblob(32))), datetime(s.started_at, '+3 hours'), datetime(s.started_at, '+3 hours')
FROM s CROSS JOIN num k WHERE k.i BETWEEN 1 AND 2;

INSERT INTO session_outcomes (session_id, patient_id, course_id, instrument, status, baseline, nadir, gain,
                              durability_days, censored, wears_off_within_days, computed_at, started_at, route,
                              dose_mg_per_kg, charge_cents, indication, protocol, course_start_date)
SELECT x.id, x.patient_id, x.course_id, 'phq9', st,
       CASE WHEN st <> 'no_baseline' THEN 12 + (x.n + x.s) % 12 END,
       CASE WHEN st = 'no_benefit' THEN 10 + (x.n + x.s) % 12 WHEN st IN ('wore_off', 'sustained') THEN 4 + (x.n + x.s) % 6 END,
       CASE WHEN st = 'no_benefit' THEN 2 WHEN st IN ('wore_off', 'sustained') THEN 8 + (x.n + x.s) % 12 - (x.n + x.s) % 6 END,
       CASE WHEN st = 'wore_off' THEN 0.5 + ((x.n * 3 + x.s) % 40) * 0.5
            WHEN st = 'sustained' THEN 2.0 + ((x.n + x.s * 3) % 26) END,
       st = 'sustained',
       st = 'wore_off' AND 0.5 + ((x.n * 3 + x.s) % 40) * 0.5 <= 7,
       datetime(x.started_at, '+1 days'), ss.started_at, ss.route, ss.dose_mg_per_kg, ss.charge_cents, c.indication,
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
SELECT course_id, id, 'phq9', datetime(start_date, '+9 hours', '+' || ((n % 5) * 30) || ' minutes'), base,
       CASE WHEN n % 13 <> 0 THEN printf('00000000-0000-4000-d000-%012d', (n - 1) * 100 + 30) END,
       CASE WHEN n % 13 <> 0 THEN responder < 2 END,
       CASE WHEN n % 13 <> 0 THEN responder = 0 END,
       CASE WHEN n % 13 <> 0 AND responder < 2 THEN 7.0 + (n % 20) END,
       datetime(start_date, '+30 days', '+12 hours')
FROM p;

COMMIT;
ANALYZE;

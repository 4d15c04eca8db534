-- ingest's second yardstick (issue 16 (6)): the least one POST /v1/patients/{id}/assessments of
-- a PHQ-9 taken now must do under the rules, written by hand — beside ingest.sql, which runs the
-- statements the server runs. One transaction: the caller an enabled clinician of the patient's
-- clinic and the patient's row held, in one statement; the insert (a retried create finds its
-- id taken), whose trigger removes the patient's stored adherence (migration 000019, on this
-- database as on the server's), with the audit event chained to its RETURNING in the same
-- statement (a data-modifying WITH, as the server folds its own two events: a replayed create
-- writes no event); what evaluation must read to know which outcomes the score moves — the
-- completed sessions whose baseline (7 days before) or follow-up window (up to 90 days after)
-- can hold it (domain.md §6), and the stored outcome of the patient's PHQ-9 courses
-- (baseline, end of induction, first response). 6 statements with BEGIN and COMMIT; no
-- outbox event, which the issue's minimal transaction leaves out. A score taken now moves no
-- stored outcome in the seeded data, so nothing more is written.
-- The same variables as ingest.sql. Run with -M prepared.
\set k random(0, :per_clinic - 1)
\set n :k * :clinics + 1
\set r random(1, 999999999999)

BEGIN;
SELECT p.id FROM patients p JOIN users u ON u.clinic_id = p.clinic_id WHERE p.id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')) AND u.id = :clinician_id AND NOT u.disabled FOR NO KEY UPDATE OF p;
WITH created AS (INSERT INTO assessments (id, patient_id, instrument, taken_at, items, total, band, submitted_by, recorded_by, body_hash, created_at, updated_at, version) VALUES (('bbbbbbbb-0000-4000-9000-' || lpad(:r::text, 12, '0')), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), 'phq9', date_trunc('second', LOCALTIMESTAMP), '[2,1,2,1,2,1,2,1,0]', 12, 'moderate', 'clinician', :clinician_id, md5(:r::text) || md5(:n::text), LOCALTIMESTAMP, LOCALTIMESTAMP, 1) ON CONFLICT (id) DO NOTHING RETURNING id, patient_id) INSERT INTO audit_events (id, occurred_at, actor_id, actor_role, action, resource_type, resource_id, patient_id, request_id, client_address) SELECT gen_random_uuid()::text, LOCALTIMESTAMP, :clinician_id, 'clinician', 'assessment_created', 'assessment', created.id, created.patient_id, gen_random_uuid()::text, '127.0.0.1' FROM created;
SELECT s.id, s.course_id, s.started_at FROM sessions s WHERE s.patient_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')) AND s.status = 'completed' AND s.deleted_at IS NULL AND s.started_at BETWEEN LOCALTIMESTAMP - interval '90 days' AND LOCALTIMESTAMP + interval '7 days' ORDER BY s.started_at;
SELECT o.course_id, o.first_session_at, o.baseline, o.end_of_induction_assessment_id, o.time_to_response_days FROM course_outcomes o JOIN courses c ON c.id = o.course_id WHERE o.patient_id = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')) AND c.primary_instrument = 'phq9';
COMMIT;

-- ingest yardstick: the statements the server runs for one POST /v1/patients/{id}/assessments
-- of a PHQ-9 (idempotent create with a fresh id: the patient's row held when in the caller's
-- clinic; the insert, which leaves a taken id alone (a retry then reads the stored record);
-- its event in the outbox; the patient's stored adherence removed for the sweep to compute
-- again; the evaluation of what the score can move — the patient's PHQ-9 courses with their
-- stored outcomes, and their live sessions; a score taken now lies in no session's window
-- of the seeded data — and the audit event. The answer is made from what was written, its
-- flags being the ones the write raised: nothing is read back), in its order, captured from
-- PostgreSQL's log (log_statement = 'all' on the bench database, the patient's second request,
-- as in the steady state of the load; bench.py repeats the capture on every run into
-- bench/out/captured-ingest.sql and says when the count no longer matches). Literal parameters
-- became pgbench variables: a random patient of clinic 1 (as bench/lua/ingest.lua picks), a
-- fresh assessment id, the clinician's id (-D clinician_id). No flag is raised (item 9 is 0, as
-- in the load). The pool tests no connection returned within 500 ms (src/store/mod.rs,
-- Manager), so no "SELECT 1" on check-out under load. Every statement is prepared by the
-- server too. Run with -M prepared.
\set k random(0, :per_clinic - 1)
\set n :k * :clinics + 1
\set r random(1, 999999999999)

SELECT "users"."id", "users"."email", "users"."password_hash", "users"."role", "users"."clinic_id", "users"."disabled", "users"."created_at", "users"."updated_at", "users"."version", "users"."token_generation", "patient_accounts"."patient_id" FROM ("users" LEFT OUTER JOIN "patient_accounts" ON ("patient_accounts"."user_id" = "users"."id")) WHERE ("users"."id" = :clinician_id) LIMIT 1;
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT "patients"."id" FROM "patients" WHERE (("patients"."id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("patients"."clinic_id" = '00000000-0000-4000-a000-000000000001')) LIMIT 1 FOR NO KEY UPDATE;
INSERT INTO "assessments" ("id", "patient_id", "instrument", "taken_at", "items", "total", "band", "submitted_by", "recorded_by", "body_hash", "created_at", "updated_at", "version", "deleted_at", "deleted_reason") VALUES (('bbbbbbbb-0000-4000-8000-' || lpad(:r::text, 12, '0')), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), 'phq9', date_trunc('second', LOCALTIMESTAMP), '[2,1,2,1,2,1,2,1,0]', 12, 'moderate', 'clinician', :clinician_id, md5(:r::text) || md5(:n::text), LOCALTIMESTAMP, LOCALTIMESTAMP, 1, NULL, NULL) ON CONFLICT (id) DO NOTHING;
INSERT INTO "outbox" ("id", "clinic_id", "patient_id", "event_type", "payload", "occurred_at") SELECT gen_random_uuid()::text, "patients"."clinic_id", "patients"."id", 'assessment.created', '{"type":"assessment.created","timestamp":"' || (to_json(now() AT TIME ZONE 'UTC') #>> '{}') || 'Z","data":{"patient_id":"' || "patients"."id" || '","record_type":"assessment","record_id":"' || ('bbbbbbbb-0000-4000-8000-' || lpad(:r::text, 12, '0')) || '"}}', LOCALTIMESTAMP FROM "patients" WHERE ("patients"."id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')));
DELETE FROM "course_adherence" WHERE ("course_adherence"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')));
SELECT "courses"."id", "courses"."patient_id", "courses"."indication", "courses"."protocol", "courses"."primary_instrument", "courses"."start_date", "courses"."planned_dates", "courses"."closed", "courses"."body_hash", "courses"."created_at", "courses"."updated_at", "courses"."version", "courses"."measurement_plan", "courses"."change_seq", "course_outcomes"."course_id", "course_outcomes"."patient_id", "course_outcomes"."instrument", "course_outcomes"."first_session_at", "course_outcomes"."baseline", "course_outcomes"."end_of_induction_assessment_id", "course_outcomes"."end_of_induction_response", "course_outcomes"."end_of_induction_remission", "course_outcomes"."time_to_response_days", "course_outcomes"."computed_at" FROM ("courses" LEFT OUTER JOIN "course_outcomes" ON ("course_outcomes"."course_id" = "courses"."id")) WHERE (("courses"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("courses"."primary_instrument" = 'phq9')) ORDER BY "courses"."start_date" ASC, "courses"."id" ASC;
SELECT "sessions"."id", "sessions"."patient_id", "sessions"."course_id", "sessions"."route", "sessions"."started_at", "sessions"."ended_at", "sessions"."dose_mg_per_kg", "sessions"."weight_kg", "sessions"."total_dose_mg", "sessions"."status", "sessions"."hold_reason", "sessions"."charge_cents", "sessions"."pre_systolic", "sessions"."pre_diastolic", "sessions"."pre_heart_rate", "sessions"."pre_spo2", "sessions"."post_systolic", "sessions"."post_diastolic", "sessions"."post_heart_rate", "sessions"."post_spo2", "sessions"."readings", "sessions"."monitoring_minutes", "sessions"."sedation", "sessions"."respiratory_concern", "sessions"."recorded_by", "sessions"."body_hash", "sessions"."created_at", "sessions"."updated_at", "sessions"."version", "sessions"."deleted_at", "sessions"."deleted_reason", "sessions"."change_seq" FROM "sessions" WHERE (("sessions"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("sessions"."deleted_at" IS NULL)) ORDER BY "sessions"."started_at" ASC, "sessions"."id" ASC;
INSERT INTO audit_events (id, occurred_at, actor_id, actor_role, action, resource_type, resource_id, patient_id, request_id, client_address, detail) VALUES (gen_random_uuid()::text, LOCALTIMESTAMP, :clinician_id, 'clinician', 'assessment_created', 'assessment', ('bbbbbbbb-0000-4000-8000-' || lpad(:r::text, 12, '0')), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), gen_random_uuid()::text, '127.0.0.1', NULL);
COMMIT;

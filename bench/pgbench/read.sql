-- read yardstick: the statements the server runs for one GET /v1/patients/{id}/timeline
-- (default page), in its order, captured from PostgreSQL's log (log_statement = 'all' on the
-- bench database; bench.py repeats the capture on every run into bench/out/captured-read.sql and
-- says when the count no longer matches). Literal parameters became pgbench variables: a random
-- patient of clinic 1 (as bench/lua/read.lua picks), the clinician's id (-D clinician_id),
-- fresh ids for the audit event; the flags query's ids are the page's records, as the seed
-- numbers them. The read is one read-only snapshot; the three "SELECT 1" are the pool's checks
-- on check-out (the caller, the read, the audit writer). The audit event is written behind the
-- answer, in a transaction of its own: alone here, as one request alone leaves it, where under
-- load the audit writer batches many requests' events into one. Run with -M prepared.
\set k random(0, :per_clinic - 1)
\set n :k * :clinics + 1

SELECT 1;
SELECT "users"."id", "users"."email", "users"."password_hash", "users"."role", "users"."clinic_id", "users"."disabled", "users"."created_at", "users"."updated_at", "users"."version", "users"."token_generation", "patient_accounts"."patient_id" FROM ("users" LEFT OUTER JOIN "patient_accounts" ON ("patient_accounts"."user_id" = "users"."id")) WHERE ("users"."id" = :clinician_id) LIMIT 1;
SELECT 1;
BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
SELECT "patients"."clinic_id" FROM "patients" WHERE (("patients"."id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("patients"."clinic_id" = '00000000-0000-4000-a000-000000000001')) LIMIT 1;
SELECT "sessions"."id", "sessions"."patient_id", "sessions"."course_id", "sessions"."route", "sessions"."started_at", "sessions"."ended_at", "sessions"."dose_mg_per_kg", "sessions"."weight_kg", "sessions"."total_dose_mg", "sessions"."status", "sessions"."hold_reason", "sessions"."charge_cents", "sessions"."pre_systolic", "sessions"."pre_diastolic", "sessions"."pre_heart_rate", "sessions"."pre_spo2", "sessions"."post_systolic", "sessions"."post_diastolic", "sessions"."post_heart_rate", "sessions"."post_spo2", "sessions"."readings", "sessions"."monitoring_minutes", "sessions"."sedation", "sessions"."respiratory_concern", "sessions"."recorded_by", "sessions"."body_hash", "sessions"."created_at", "sessions"."updated_at", "sessions"."version", "sessions"."deleted_at", "sessions"."deleted_reason" FROM "sessions" WHERE (("sessions"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("sessions"."deleted_at" IS NULL)) ORDER BY "sessions"."started_at" ASC, "sessions"."id" ASC LIMIT 51;
SELECT "assessments"."id", "assessments"."patient_id", "assessments"."instrument", "assessments"."taken_at", "assessments"."items", "assessments"."total", "assessments"."band", "assessments"."submitted_by", "assessments"."recorded_by", "assessments"."body_hash", "assessments"."created_at", "assessments"."updated_at", "assessments"."version", "assessments"."deleted_at", "assessments"."deleted_reason" FROM "assessments" WHERE (("assessments"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("assessments"."deleted_at" IS NULL)) ORDER BY "assessments"."taken_at" ASC, "assessments"."id" ASC LIMIT 51;
SELECT "side_effects"."id", "side_effects"."patient_id", "side_effects"."session_id", "side_effects"."effect", "side_effects"."severity", "side_effects"."onset_at", "side_effects"."resolved_at", "side_effects"."reported_by", "side_effects"."note", "side_effects"."recorded_by", "side_effects"."body_hash", "side_effects"."created_at", "side_effects"."updated_at", "side_effects"."version", "side_effects"."deleted_at", "side_effects"."deleted_reason" FROM "side_effects" WHERE (("side_effects"."patient_id" = ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0'))) AND ("side_effects"."deleted_at" IS NULL)) ORDER BY "side_effects"."onset_at" ASC, "side_effects"."id" ASC LIMIT 51;
SELECT "flags"."id", "flags"."patient_id", "flags"."kind", "flags"."level", "flags"."level_rank", "flags"."record_type", "flags"."record_id", "flags"."detail", "flags"."raised_at", "flags"."status", "flags"."acknowledged_by", "flags"."acknowledged_at", "flags"."note" FROM "flags" WHERE ("flags"."record_id" = ANY(ARRAY(SELECT '00000000-0000-4000-c000-' || lpad(g::text, 12, '0') FROM generate_series((:n - 1) * 10 + 1, (:n - 1) * 10 + 10) g) || ARRAY(SELECT '00000000-0000-4000-d000-' || lpad(g::text, 12, '0') FROM generate_series((:n - 1) * 100 + 1, (:n - 1) * 100 + 51) g) || ARRAY(SELECT '00000000-0000-4000-e000-' || lpad(g::text, 12, '0') FROM generate_series((:n - 1) * 20 + 1, (:n - 1) * 20 + 20) g))) ORDER BY "flags"."level_rank" ASC, "flags"."raised_at" ASC;
COMMIT;
SELECT 1;
BEGIN;
INSERT INTO "audit_events" ("id", "occurred_at", "actor_id", "actor_role", "action", "resource_type", "resource_id", "patient_id", "request_id", "client_address") VALUES (gen_random_uuid()::text, LOCALTIMESTAMP, :clinician_id, 'clinician', 'timeline_read', 'patient', ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), ('00000000-0000-4000-8000-' || lpad(:n::text, 12, '0')), gen_random_uuid()::text, '127.0.0.1');
COMMIT;

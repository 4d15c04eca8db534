-- Sync in commit-safe order (issue 16, 5). `updated_at` is set when a write starts, so a
-- write that started earlier but committed later than another would land behind a phone
-- that had already synced past the later one, and never reach it. Every change now records
-- the id of the transaction that made it; a sync reads only changes below the oldest
-- transaction still in flight (pg_snapshot_xmin), which every later commit lands above.
-- change_seq is added with a constant default, no rewrite (existing rows keep 0, no backfill);
-- the sync indexes on patients, courses, sessions, side_effects and assessments read each table.
CREATE FUNCTION ko_change_position() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.change_seq := pg_current_xact_id()::text::bigint;
  RETURN NEW;
END
$$;

ALTER TABLE patients ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE courses ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE side_effects ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE assessments ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER patients_change_position BEFORE INSERT OR UPDATE ON patients
  FOR EACH ROW EXECUTE FUNCTION ko_change_position();
CREATE TRIGGER courses_change_position BEFORE INSERT OR UPDATE ON courses
  FOR EACH ROW EXECUTE FUNCTION ko_change_position();
CREATE TRIGGER sessions_change_position BEFORE INSERT OR UPDATE ON sessions
  FOR EACH ROW EXECUTE FUNCTION ko_change_position();
CREATE TRIGGER side_effects_change_position BEFORE INSERT OR UPDATE ON side_effects
  FOR EACH ROW EXECUTE FUNCTION ko_change_position();
CREATE TRIGGER assessments_change_position BEFORE INSERT OR UPDATE ON assessments
  FOR EACH ROW EXECUTE FUNCTION ko_change_position();

CREATE INDEX patients_clinic_sync_idx ON patients (clinic_id, change_seq, id);
CREATE INDEX courses_patient_sync_idx ON courses (patient_id, change_seq, id);
DROP INDEX sessions_patient_sync_idx;
CREATE INDEX sessions_patient_sync_idx ON sessions (patient_id, change_seq, id);
DROP INDEX side_effects_patient_sync_idx;
CREATE INDEX side_effects_patient_sync_idx ON side_effects (patient_id, change_seq, id);
DROP INDEX assessments_patient_sync_idx;
CREATE INDEX assessments_patient_sync_idx ON assessments (patient_id, change_seq, id);

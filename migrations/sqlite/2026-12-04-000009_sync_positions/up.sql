-- Sync in commit-safe order (issue 16, 5). `updated_at` is set when a write starts; the sync
-- order is instead a counter every insert and update advances. SQLite has one writer at a
-- time, holding its lock from the counter's step to its commit, so the counter's order is
-- the order of commits: a phone that synced past a position never misses a change below it.
-- A new change_counter table; change_seq is added with a constant default, no rewrite (existing
-- rows keep 0, no backfill); sync indexes on patients, courses, sessions, side_effects and
-- assessments read each table.
CREATE TABLE change_counter (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  value INTEGER NOT NULL
);
INSERT INTO change_counter (id, value) VALUES (1, 0);

ALTER TABLE patients ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER patients_change_position_insert AFTER INSERT ON patients
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE patients SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER patients_change_position_update AFTER UPDATE ON patients
  WHEN NEW.change_seq = OLD.change_seq
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE patients SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;

ALTER TABLE courses ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER courses_change_position_insert AFTER INSERT ON courses
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE courses SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER courses_change_position_update AFTER UPDATE ON courses
  WHEN NEW.change_seq = OLD.change_seq
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE courses SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;

ALTER TABLE sessions ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER sessions_change_position_insert AFTER INSERT ON sessions
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE sessions SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER sessions_change_position_update AFTER UPDATE ON sessions
  WHEN NEW.change_seq = OLD.change_seq
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE sessions SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;

ALTER TABLE side_effects ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER side_effects_change_position_insert AFTER INSERT ON side_effects
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE side_effects SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER side_effects_change_position_update AFTER UPDATE ON side_effects
  WHEN NEW.change_seq = OLD.change_seq
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE side_effects SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;

ALTER TABLE assessments ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE TRIGGER assessments_change_position_insert AFTER INSERT ON assessments
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE assessments SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE TRIGGER assessments_change_position_update AFTER UPDATE ON assessments
  WHEN NEW.change_seq = OLD.change_seq
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE assessments SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;

CREATE INDEX patients_clinic_sync_idx ON patients (clinic_id, change_seq, id);
CREATE INDEX courses_patient_sync_idx ON courses (patient_id, change_seq, id);
DROP INDEX sessions_patient_sync_idx;
CREATE INDEX sessions_patient_sync_idx ON sessions (patient_id, change_seq, id);
DROP INDEX side_effects_patient_sync_idx;
CREATE INDEX side_effects_patient_sync_idx ON side_effects (patient_id, change_seq, id);
DROP INDEX assessments_patient_sync_idx;
CREATE INDEX assessments_patient_sync_idx ON assessments (patient_id, change_seq, id);

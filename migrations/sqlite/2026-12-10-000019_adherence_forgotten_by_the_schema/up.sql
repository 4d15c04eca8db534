-- A course's stored adherence (000011) is computed from its patient's courses, sessions and
-- scores, so a write to any of them removes the patient's stored rows, for the sweep to put
-- back. The database now does that itself, in the writer's transaction: no writer can forget
-- it, and none spends a statement of its own on it. A row's change counts when its version
-- moves (every create and every change does; moving a record's sync position for a flag does
-- not, and no adherence reads flags). Triggers only; no table is rewritten.

CREATE TRIGGER courses_forget_adherence_insert AFTER INSERT ON courses
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;
CREATE TRIGGER courses_forget_adherence_update AFTER UPDATE ON courses
  WHEN NEW.version <> OLD.version
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;

CREATE TRIGGER sessions_forget_adherence_insert AFTER INSERT ON sessions
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;
CREATE TRIGGER sessions_forget_adherence_update AFTER UPDATE ON sessions
  WHEN NEW.version <> OLD.version
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;

CREATE TRIGGER assessments_forget_adherence_insert AFTER INSERT ON assessments
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;
CREATE TRIGGER assessments_forget_adherence_update AFTER UPDATE ON assessments
  WHEN NEW.version <> OLD.version
BEGIN
  DELETE FROM course_adherence WHERE patient_id = NEW.patient_id;
END;

-- A course's measurement plan (JSON); null is the default plan.
-- Adds a nullable column to courses (no rewrite) and a new table. The flags kind check is
-- re-added without NOT VALID: a scan of every flag under an exclusive lock, no rewrite.
ALTER TABLE courses ADD COLUMN measurement_plan TEXT;

-- Every grant and withdrawal of research consent, with its time and who recorded it.
CREATE TABLE consent_events (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    granted BOOLEAN NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    actor_id TEXT REFERENCES users (id)
);
CREATE INDEX consent_events_patient_idx ON consent_events (patient_id, occurred_at);

ALTER TABLE flags DROP CONSTRAINT flags_kind_check;
ALTER TABLE flags ADD CONSTRAINT flags_kind_check CHECK (kind IN ('suicidal_ideation', 'hypertensive_response',
    'life_threatening_side_effect', 'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk',
    'mania_symptoms', 'persistent_side_effect', 'wears_off_within_days', 'missed_session', 'missed_follow_up'));

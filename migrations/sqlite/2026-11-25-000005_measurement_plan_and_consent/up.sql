-- A course's measurement plan (JSON); null is the default plan.
-- Adds a nullable column to courses (no rewrite) and a new table. The new flag kind is a
-- rebuild of flags: this REWRITES every flag (one copy, in the migration's transaction).
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

-- A new flag kind: SQLite cannot change a CHECK constraint, so the table is rebuilt.
CREATE TABLE flags_new (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    kind TEXT NOT NULL CHECK (kind IN ('suicidal_ideation', 'hypertensive_response', 'life_threatening_side_effect',
        'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk', 'mania_symptoms',
        'persistent_side_effect', 'wears_off_within_days', 'missed_session', 'missed_follow_up')),
    level TEXT NOT NULL CHECK (level IN ('urgent', 'high', 'info')),
    level_rank INTEGER NOT NULL CHECK (level_rank IN (0, 1, 2)),
    record_type TEXT NOT NULL CHECK (record_type IN ('assessment', 'session', 'side_effect', 'course', 'planned_slot')),
    record_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    raised_at TIMESTAMP NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged')),
    acknowledged_by TEXT REFERENCES users (id),
    acknowledged_at TIMESTAMP,
    note TEXT CHECK (length(note) <= 2000),
    CONSTRAINT flags_kind_record_key UNIQUE (kind, record_id),
    CONSTRAINT flags_acknowledgement_complete CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL AND acknowledged_by IS NOT NULL))
);
INSERT INTO flags_new SELECT * FROM flags;
DROP TABLE flags;
ALTER TABLE flags_new RENAME TO flags;
CREATE INDEX flags_worklist_idx ON flags (level_rank, raised_at, id);
CREATE INDEX flags_patient_idx ON flags (patient_id, raised_at);
CREATE INDEX flags_record_idx ON flags (record_id);

-- Stored outcomes (domain.md §6), kept current by every write that can change them, so that
-- reads and research queries never recompute them.
-- New tables only; no existing table is rewritten.
CREATE TABLE session_outcomes (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    course_id TEXT NOT NULL REFERENCES courses (id),
    instrument TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('no_baseline', 'no_follow_up', 'no_benefit', 'wore_off', 'sustained')),
    baseline INTEGER,
    nadir INTEGER,
    gain INTEGER,
    durability_days DOUBLE PRECISION CHECK (durability_days >= 0),
    censored BOOLEAN NOT NULL,
    wears_off_within_days BOOLEAN NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    CONSTRAINT session_outcomes_censored_when_sustained CHECK (censored = (status = 'sustained')),
    CONSTRAINT session_outcomes_durability_when_measured CHECK ((durability_days IS NOT NULL) = (status IN ('wore_off', 'sustained')))
);
CREATE INDEX session_outcomes_patient_idx ON session_outcomes (patient_id);

CREATE TABLE course_outcomes (
    course_id TEXT PRIMARY KEY NOT NULL REFERENCES courses (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    instrument TEXT NOT NULL,
    first_session_at TIMESTAMP,
    baseline INTEGER,
    end_of_induction_assessment_id TEXT,
    end_of_induction_response BOOLEAN,
    end_of_induction_remission BOOLEAN,
    time_to_response_days DOUBLE PRECISION CHECK (time_to_response_days >= 0),
    computed_at TIMESTAMP NOT NULL
);
CREATE INDEX course_outcomes_patient_idx ON course_outcomes (patient_id);

-- The safety worklist. One flag per kind per record, whatever the number of writers and API
-- processes: the unique key makes a second raise a no-op, and an acknowledged flag stays so.
CREATE TABLE flags (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    kind TEXT NOT NULL CHECK (kind IN ('suicidal_ideation', 'hypertensive_response', 'life_threatening_side_effect',
        'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk', 'mania_symptoms',
        'persistent_side_effect', 'wears_off_within_days', 'missed_session')),
    level TEXT NOT NULL CHECK (level IN ('urgent', 'high', 'info')),
    -- 0 urgent, 1 high, 2 info: the worklist's order.
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
CREATE INDEX flags_worklist_idx ON flags (level_rank, raised_at, id);
CREATE INDEX flags_patient_idx ON flags (patient_id, raised_at);
CREATE INDEX flags_record_idx ON flags (record_id);

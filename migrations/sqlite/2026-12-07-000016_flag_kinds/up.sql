-- Two flag kinds (issues 17 and 18): `webhook_failed`, raised on the record whose event a
-- clinic's webhook did not accept after every attempt (the endpoint is then disabled), and
-- `benefit_gap_expected` (domain.md §6a). SQLite cannot change a CHECK constraint, so the
-- table is rebuilt: this REWRITES every flag (one copy, in the migration's transaction), with
-- the columns and indexes it has since 000014.
CREATE TABLE flags_new (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    kind TEXT NOT NULL CHECK (kind IN ('suicidal_ideation', 'hypertensive_response', 'life_threatening_side_effect',
        'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk', 'mania_symptoms',
        'persistent_side_effect', 'wears_off_within_days', 'missed_session', 'missed_follow_up',
        'webhook_failed', 'benefit_gap_expected')),
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
    escalated_at TIMESTAMP,
    CONSTRAINT flags_kind_record_key UNIQUE (kind, record_id),
    CONSTRAINT flags_acknowledgement_complete CHECK ((status = 'acknowledged') = (acknowledged_at IS NOT NULL AND acknowledged_by IS NOT NULL))
);
INSERT INTO flags_new (id, patient_id, kind, level, level_rank, record_type, record_id, detail, raised_at, status,
    acknowledged_by, acknowledged_at, note, escalated_at)
  SELECT id, patient_id, kind, level, level_rank, record_type, record_id, detail, raised_at, status,
    acknowledged_by, acknowledged_at, note, escalated_at FROM flags;
DROP TABLE flags;
ALTER TABLE flags_new RENAME TO flags;
CREATE INDEX flags_worklist_idx ON flags (level_rank, raised_at, id);
CREATE INDEX flags_patient_idx ON flags (patient_id, raised_at);
CREATE INDEX flags_record_idx ON flags (record_id);
CREATE INDEX flags_awaiting_escalation_idx ON flags (raised_at)
  WHERE status = 'open' AND level = 'urgent' AND escalated_at IS NULL;

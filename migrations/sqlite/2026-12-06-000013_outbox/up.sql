-- The outbox (issue 17): every event a clinic can be told of — a flag raised or acknowledged,
-- a record created — written in the transaction of the change that causes it, so a committed
-- change always has its event and a rolled-back one never does. Streams read it in the
-- commit-safe order sync reads records in: the change counter's, which SQLite's one writer
-- advances in commit order (see 000009). The payload is the thin body a receiver is sent:
-- ids, kinds, levels and times, never answers or notes. A new table; none is rewritten.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    -- The patient's clinic, which a stream reads by (a patient never changes clinic).
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    event_type TEXT NOT NULL CHECK (event_type IN ('flag.raised', 'flag.acknowledged',
        'flag.escalated', 'assessment.created', 'session.created', 'side_effect.created')),
    payload TEXT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    change_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TRIGGER outbox_change_position_insert AFTER INSERT ON outbox
BEGIN
  UPDATE change_counter SET value = value + 1 WHERE id = 1;
  UPDATE outbox SET change_seq = (SELECT value FROM change_counter WHERE id = 1) WHERE id = NEW.id;
END;
CREATE INDEX outbox_clinic_position_idx ON outbox (clinic_id, change_seq, id);

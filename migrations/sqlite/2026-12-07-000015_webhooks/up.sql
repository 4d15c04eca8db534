-- Webhooks (issue 17, parts 1–3): a clinic's endpoints, and one delivery per event and
-- endpoint, read from the outbox (000013) after each endpoint's own position in it, in the
-- commit-safe order a stream reads it in. A delivery is claimed for a lease while it is
-- posted, so a process that dies mid-delivery leaves it to be posted again (at least once,
-- under the same webhook-id) when the lease runs out. New tables; none is rewritten.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    url TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description TEXT NOT NULL,
    -- Which events it wants: event types, and for flag events levels and kinds (JSON).
    subscription TEXT NOT NULL,
    -- `whsec_…`; the one before a rotation signs beside it until `previous_secret_until`.
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_until TIMESTAMP,
    enabled BOOLEAN NOT NULL,
    disabled_reason TEXT,
    -- The outbox position up to which its deliveries have been made (000009's order).
    read_seq BIGINT NOT NULL,
    read_id TEXT,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX webhook_endpoints_clinic_idx ON webhook_endpoints (clinic_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- Its webhook-id, the same on every attempt and replay.
    event_id TEXT NOT NULL REFERENCES outbox (id),
    -- The event's patient and position: a patient's events are posted in commit order.
    patient_id TEXT NOT NULL,
    change_seq BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Attempts in the current round of the retry schedule (a replay starts a new round),
    -- and ever (numbering the log).
    step INTEGER NOT NULL CHECK (step >= 0),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP NOT NULL,
    leased_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_patient_order_idx
  ON webhook_deliveries (endpoint_id, patient_id, change_seq, event_id)
  WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, created_at, id);

-- Each attempt: when, the status code (none when no answer came), how long it took, and
-- why it failed. The receiver's body is never stored.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    number INTEGER NOT NULL CHECK (number >= 1),
    started_at TIMESTAMP NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL CHECK (latency_ms >= 0),
    error TEXT,
    PRIMARY KEY (delivery_id, number)
);

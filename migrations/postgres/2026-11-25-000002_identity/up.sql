-- Refresh tokens: only their SHA-256 is stored. A family is one sign-in and its rotations;
-- presenting a spent token revokes the whole family.
-- New tables only; no existing table is rewritten.
CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    family_id TEXT NOT NULL CHECK (length(family_id) = 36),
    user_id TEXT NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL CHECK (length(token_hash) = 64),
    issued_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL CHECK (expires_at > issued_at),
    spent_at TIMESTAMP,
    revoked_at TIMESTAMP,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Failed sign-ins, kept in the database so that the throttle holds across API processes.
-- throttle_key is 'account:<email>' or 'address:<client address>'.
CREATE TABLE login_failures (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    throttle_key TEXT NOT NULL CHECK (length(throttle_key) BETWEEN 1 AND 300),
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_key_time_idx ON login_failures (throttle_key, failed_at);

-- The audit trail: append-only; triggers refuse every update and delete.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    occurred_at TIMESTAMP NOT NULL,
    actor_id TEXT,
    actor_role TEXT CHECK (actor_role IN ('admin', 'clinician', 'patient', 'researcher')),
    action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    resource_type TEXT NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 100),
    resource_id TEXT,
    patient_id TEXT,
    request_id TEXT NOT NULL,
    client_address TEXT
);
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at, id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at);
CREATE INDEX audit_events_patient_idx ON audit_events (patient_id, occurred_at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

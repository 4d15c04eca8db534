ALTER TABLE users DROP COLUMN token_generation;
DROP TABLE sign_in_throttle;
CREATE TABLE login_failures (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    throttle_key TEXT NOT NULL CHECK (length(throttle_key) BETWEEN 1 AND 300),
    failed_at TIMESTAMP NOT NULL
);
CREATE INDEX login_failures_key_time_idx ON login_failures (throttle_key, failed_at);

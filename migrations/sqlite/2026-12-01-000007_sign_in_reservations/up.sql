-- Sign-in attempts are reserved before the password is verified, one row per throttle key
-- ('account:<sha-256 of the email>' or 'address:<client address>'), updated under a row lock:
-- concurrent attempts see each other's reservations, in every API process. The old table
-- counted failures after verification, which forty parallel attempts all passed.
-- Drops login_failures (its rows are discarded) for a new table. users gains a column (no
-- rewrite); SQLite tests its CHECK against every existing user, a read of the table.
DROP TABLE login_failures;
CREATE TABLE sign_in_throttle (
    throttle_key TEXT PRIMARY KEY NOT NULL CHECK (length(throttle_key) BETWEEN 1 AND 300),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    window_started_at TIMESTAMP NOT NULL,
    last_attempt_at TIMESTAMP NOT NULL
);

-- Access tokens carry the account's token generation; a password change, a disable and a
-- sign-out everywhere move it on, and older tokens are refused at their next use.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0 CHECK (token_generation >= 0);

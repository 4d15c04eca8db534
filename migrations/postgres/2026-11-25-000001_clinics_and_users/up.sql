-- Ids are UUIDs made by the application; times are UTC instants.
-- The first migration: new tables only; no existing table is rewritten.
CREATE TABLE clinics (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    name TEXT NOT NULL CHECK (length(trim(name)) BETWEEN 1 AND 200),
    crisis_message TEXT NOT NULL CHECK (length(crisis_message) BETWEEN 1 AND 2000),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT clinics_name_key UNIQUE (name)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    role TEXT NOT NULL CHECK (role IN ('admin', 'clinician', 'patient', 'researcher')),
    clinic_id TEXT REFERENCES clinics (id),
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT users_email_key UNIQUE (email),
    -- Clinicians and patients belong to a clinic; administrators and researchers to none.
    CONSTRAINT users_clinic_matches_role CHECK ((role IN ('clinician', 'patient')) = (clinic_id IS NOT NULL))
);
CREATE INDEX users_clinic_id_idx ON users (clinic_id);

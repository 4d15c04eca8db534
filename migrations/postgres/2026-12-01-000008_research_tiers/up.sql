-- The controlled tier of research access (domain.md §8a): an administrator grants it to a
-- researcher under a recorded data-use agreement, until it expires or is revoked.
-- New tables; a nullable column on audit_events (no rewrite); updated_at indexes on patients,
-- courses, sessions, assessments, side_effects: each build reads its table (writes wait).
CREATE TABLE research_grants (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    researcher_id TEXT NOT NULL REFERENCES users (id),
    purpose TEXT NOT NULL CHECK (length(purpose) BETWEEN 1 AND 2000),
    reference TEXT NOT NULL CHECK (length(reference) BETWEEN 1 AND 200),
    granted_by TEXT NOT NULL REFERENCES users (id),
    granted_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL CHECK (expires_at > granted_at),
    revoked_at TIMESTAMP,
    revoked_by TEXT REFERENCES users (id),
    body_hash TEXT NOT NULL
);
CREATE INDEX research_grants_researcher_idx ON research_grants (researcher_id, expires_at);

-- Each researcher's privacy-loss spending in one budget period, in millionths of ε so that
-- the conditional update that spends it is exact on both engines.
CREATE TABLE research_budgets (
    researcher_id TEXT NOT NULL REFERENCES users (id),
    period_start TIMESTAMP NOT NULL,
    spent_micro_epsilon BIGINT NOT NULL CHECK (spent_micro_epsilon >= 0),
    queries INTEGER NOT NULL CHECK (queries >= 0),
    PRIMARY KEY (researcher_id, period_start)
);

-- Released aggregate-tier answers: the same canonical query over the same data version is
-- answered with the same release and spends nothing again.
CREATE TABLE research_releases (
    query_key TEXT NOT NULL CHECK (length(query_key) = 64),
    data_version TEXT NOT NULL CHECK (length(data_version) = 64),
    body TEXT NOT NULL,
    epsilon DOUBLE PRECISION NOT NULL CHECK (epsilon >= 0),
    released_at TIMESTAMP NOT NULL,
    PRIMARY KEY (query_key, data_version)
);

-- What a research query or export asked, for its audit event.
ALTER TABLE audit_events ADD COLUMN detail TEXT;

-- The data version of research answers is the latest change of what they read.
CREATE INDEX patients_updated_idx ON patients (updated_at);
CREATE INDEX courses_updated_idx ON courses (updated_at);
CREATE INDEX sessions_updated_idx ON sessions (updated_at);
CREATE INDEX assessments_updated_idx ON assessments (updated_at);
CREATE INDEX side_effects_updated_idx ON side_effects (updated_at);

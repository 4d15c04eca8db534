-- Each course's measurement-plan adherence (src/domain/plan.rs), kept so that a research aggregate
-- reads one row per course instead of every score of every patient it covers. Adherence moves
-- with time as well as with the record — a window that closes unanswered counts as missed, and
-- the daily items look back a fixed number of days from today — so a row holds the counts as
-- they stand from `computed_at` until `valid_until`, the first instant at which time alone
-- could change them (a reader whose clock is behind the sweep's does not take it). A
-- write to the patient's record removes the patient's rows; the sweep computes missing and
-- expired rows again; a reader computes for itself any row it finds missing or expired.
-- A new table; none is rewritten.
CREATE TABLE course_adherence (
    course_id TEXT PRIMARY KEY NOT NULL REFERENCES courses (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    completed INTEGER NOT NULL CHECK (completed >= 0),
    due INTEGER NOT NULL CHECK (due >= completed),
    computed_at TIMESTAMP NOT NULL,
    valid_until TIMESTAMP NOT NULL CHECK (valid_until > computed_at)
);
CREATE INDEX course_adherence_patient_idx ON course_adherence (patient_id);
CREATE INDEX course_adherence_valid_until_idx ON course_adherence (valid_until);

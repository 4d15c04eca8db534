-- When the sweep next needs to read a patient's record for the flags that time raises
-- (src/evaluation.rs `time_flags`). Each such flag falls due at an instant the record fixes —
-- a side effect's expected resolution, a session's follow-up grace, a planned slot's
-- tolerance — so once a sweep has raised what was due, the patient's record need not be read
-- again until `next_at`, the first instant another falls due, or ever while it is NULL. A
-- write that could bring one closer removes the patient's row inside its transaction; the
-- sweep reads the patients whose row is missing, passed, or made with other persistence times.
-- Small (one row per patient); no existing table is rewritten.
CREATE TABLE time_flag_checks (
    patient_id TEXT PRIMARY KEY NOT NULL REFERENCES patients (id),
    next_at TIMESTAMP,
    persistence TEXT NOT NULL
);

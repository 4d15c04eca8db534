-- Research reads each completed session from its outcome row alone (issue 16): the session's
-- time, route, dose and charge and its course's indication, protocol and start date are kept
-- beside its outcome by the evaluation that writes the row (a session or course write
-- evaluates the record again; a row is rewritten only where a value changed). The patient's
-- consent, clinic, sex and birth year stay in `patients`, joined when research reads, so a
-- withdrawal takes effect at once. SQLite cannot add a NOT NULL column without a default, so
-- the table is rebuilt: this REWRITES every session outcome (one copy, in the migration's
-- transaction), filled from its session and course.
CREATE TABLE session_outcomes_new (
    session_id TEXT PRIMARY KEY NOT NULL REFERENCES sessions (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    course_id TEXT NOT NULL REFERENCES courses (id),
    instrument TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('no_baseline', 'no_follow_up', 'no_benefit', 'wore_off', 'sustained')),
    baseline INTEGER,
    nadir INTEGER,
    gain INTEGER,
    durability_days DOUBLE PRECISION CHECK (durability_days >= 0),
    censored BOOLEAN NOT NULL,
    wears_off_within_days BOOLEAN NOT NULL,
    computed_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP NOT NULL,
    route TEXT NOT NULL,
    dose_mg_per_kg DOUBLE PRECISION NOT NULL,
    charge_cents BIGINT,
    indication TEXT NOT NULL,
    protocol TEXT NOT NULL,
    course_start_date DATE NOT NULL,
    CONSTRAINT session_outcomes_censored_when_sustained CHECK (censored = (status = 'sustained')),
    CONSTRAINT session_outcomes_durability_when_measured CHECK ((durability_days IS NOT NULL) = (status IN ('wore_off', 'sustained')))
);
INSERT INTO session_outcomes_new (session_id, patient_id, course_id, instrument, status, baseline, nadir, gain,
    durability_days, censored, wears_off_within_days, computed_at, started_at, route, dose_mg_per_kg, charge_cents,
    indication, protocol, course_start_date)
  SELECT o.session_id, o.patient_id, o.course_id, o.instrument, o.status, o.baseline, o.nadir, o.gain,
    o.durability_days, o.censored, o.wears_off_within_days, o.computed_at, s.started_at, s.route, s.dose_mg_per_kg,
    s.charge_cents, c.indication, c.protocol, c.start_date
  FROM session_outcomes o JOIN sessions s ON s.id = o.session_id JOIN courses c ON c.id = o.course_id
  -- Research no longer reads the session itself: an outcome of a session that is not (or no
  -- longer) completed and live would be counted. The evaluation keeps none; any found is dropped.
  WHERE s.deleted_at IS NULL AND s.status = 'completed';
DROP TABLE session_outcomes;
ALTER TABLE session_outcomes_new RENAME TO session_outcomes;
CREATE INDEX session_outcomes_patient_idx ON session_outcomes (patient_id);

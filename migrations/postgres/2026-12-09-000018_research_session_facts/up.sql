-- Research reads each completed session from its outcome row alone (issue 16): the session's
-- time, route, dose and charge and its course's indication, protocol and start date are kept
-- beside its outcome by the evaluation that writes the row (a session or course write
-- evaluates the record again; a row is rewritten only where a value changed). The patient's
-- consent, clinic, sex and birth year stay in `patients`, joined when research reads, so a
-- withdrawal takes effect at once. Existing rows are filled from their session and course.
ALTER TABLE session_outcomes
    ADD COLUMN started_at TIMESTAMP,
    ADD COLUMN route TEXT,
    ADD COLUMN dose_mg_per_kg DOUBLE PRECISION,
    ADD COLUMN charge_cents BIGINT,
    ADD COLUMN indication TEXT,
    ADD COLUMN protocol TEXT,
    ADD COLUMN course_start_date DATE;
-- Research no longer reads the session itself, so an outcome of a session that is not (or no
-- longer) completed and live would be counted: the evaluation keeps none, and any found goes.
DELETE FROM session_outcomes o USING sessions s
WHERE s.id = o.session_id AND (s.deleted_at IS NOT NULL OR s.status <> 'completed');
-- This REWRITES every session outcome (one UPDATE, in the migration's transaction).
UPDATE session_outcomes o
SET started_at = s.started_at, route = s.route, dose_mg_per_kg = s.dose_mg_per_kg,
    charge_cents = s.charge_cents, indication = c.indication, protocol = c.protocol,
    course_start_date = c.start_date
FROM sessions s, courses c
WHERE s.id = o.session_id AND c.id = o.course_id;
ALTER TABLE session_outcomes
    ALTER COLUMN started_at SET NOT NULL,
    ALTER COLUMN route SET NOT NULL,
    ALTER COLUMN dose_mg_per_kg SET NOT NULL,
    ALTER COLUMN indication SET NOT NULL,
    ALTER COLUMN protocol SET NOT NULL,
    ALTER COLUMN course_start_date SET NOT NULL;

-- The columns are dropped (SQLite 3.35+ drops a column in place).
ALTER TABLE session_outcomes DROP COLUMN started_at;
ALTER TABLE session_outcomes DROP COLUMN route;
ALTER TABLE session_outcomes DROP COLUMN dose_mg_per_kg;
ALTER TABLE session_outcomes DROP COLUMN charge_cents;
ALTER TABLE session_outcomes DROP COLUMN indication;
ALTER TABLE session_outcomes DROP COLUMN protocol;
ALTER TABLE session_outcomes DROP COLUMN course_start_date;

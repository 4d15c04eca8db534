ALTER TABLE session_outcomes
    DROP COLUMN started_at,
    DROP COLUMN route,
    DROP COLUMN dose_mg_per_kg,
    DROP COLUMN charge_cents,
    DROP COLUMN indication,
    DROP COLUMN protocol,
    DROP COLUMN course_start_date;

DROP TABLE consent_events;
ALTER TABLE courses DROP COLUMN measurement_plan;

DROP INDEX side_effects_updated_idx;
DROP INDEX assessments_updated_idx;
DROP INDEX sessions_updated_idx;
DROP INDEX courses_updated_idx;
DROP INDEX patients_updated_idx;
ALTER TABLE audit_events DROP COLUMN detail;
DROP TABLE research_releases;
DROP TABLE research_budgets;
DROP TABLE research_grants;

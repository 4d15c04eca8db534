DROP INDEX assessments_plan_idx;

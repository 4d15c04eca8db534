-- Measurement plans read only when and what each live score was, for hundreds of patients at
-- once (research adherence): a covering index answers that without touching the table.
-- No rewrite: one index on assessments, whose build reads every assessment.
CREATE INDEX assessments_plan_idx ON assessments (patient_id, taken_at, id, instrument)
    WHERE deleted_at IS NULL;

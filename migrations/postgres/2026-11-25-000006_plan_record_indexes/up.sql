-- Measurement plans read only when and what each live score was, for hundreds of patients at
-- once (research adherence). A patient's rows lie scattered over the table, written as they
-- came in; this index holds everything such a read needs, so it is answered from the index
-- alone, a few pages per patient, instead of one heap page per score.
-- No rewrite: one index on assessments, whose build reads every assessment (not
-- CONCURRENTLY, so writes to assessments wait until it is built).
CREATE INDEX assessments_plan_idx ON assessments (patient_id, taken_at, id) INCLUDE (instrument)
    WHERE deleted_at IS NULL;

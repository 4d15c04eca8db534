-- Measurement plans read only when and what each live score was, for hundreds of patients at
-- once (research adherence). A patient's rows lie scattered over the table, written as they
-- came in; this index holds everything such a read needs, so it is answered from the index
-- alone, a few pages per patient, instead of one heap page per score.
CREATE INDEX assessments_plan_idx ON assessments (patient_id, taken_at, id) INCLUDE (instrument)
    WHERE deleted_at IS NULL;

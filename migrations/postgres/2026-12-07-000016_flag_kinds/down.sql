DELETE FROM flags WHERE kind IN ('webhook_failed', 'benefit_gap_expected');
ALTER TABLE flags DROP CONSTRAINT flags_kind_check;
ALTER TABLE flags ADD CONSTRAINT flags_kind_check CHECK (kind IN ('suicidal_ideation', 'hypertensive_response',
    'life_threatening_side_effect', 'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk',
    'mania_symptoms', 'persistent_side_effect', 'wears_off_within_days', 'missed_session', 'missed_follow_up'));

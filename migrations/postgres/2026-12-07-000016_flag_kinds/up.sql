-- Two flag kinds (issues 17 and 18): `webhook_failed`, raised on the record whose event a
-- clinic's webhook did not accept after every attempt (the endpoint is then disabled), and
-- `benefit_gap_expected` (domain.md §6a). The check is added NOT VALID and then validated:
-- a scan of the flags under a light lock, no rewrite.
ALTER TABLE flags DROP CONSTRAINT flags_kind_check;
ALTER TABLE flags ADD CONSTRAINT flags_kind_check CHECK (kind IN ('suicidal_ideation', 'hypertensive_response', 'life_threatening_side_effect',
        'contraindication', 'pre_session_hypertension', 'bladder_symptoms', 'dependence_risk', 'mania_symptoms',
        'persistent_side_effect', 'wears_off_within_days', 'missed_session', 'missed_follow_up',
        'webhook_failed', 'benefit_gap_expected')) NOT VALID;
ALTER TABLE flags VALIDATE CONSTRAINT flags_kind_check;

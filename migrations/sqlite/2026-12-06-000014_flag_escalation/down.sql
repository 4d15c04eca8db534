DROP INDEX flags_awaiting_escalation_idx;
ALTER TABLE flags DROP COLUMN escalated_at;

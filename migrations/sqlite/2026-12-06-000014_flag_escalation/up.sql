-- Escalation (issue 17, part 6): an urgent flag left open longer than the deployment's
-- escalation time is marked once, with the instant, and tells the outbox `flag.escalated`.
-- The partial index holds only the open urgent flags not yet escalated: the few the
-- escalation check reads every sweep interval. Adds a nullable column; no rewrite.
ALTER TABLE flags ADD COLUMN escalated_at TIMESTAMP;
CREATE INDEX flags_awaiting_escalation_idx ON flags (raised_at)
  WHERE status = 'open' AND level = 'urgent' AND escalated_at IS NULL;

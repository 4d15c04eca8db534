-- The two kinds' flags are dropped; the wider check stays (SQLite would need another rebuild).
DELETE FROM flags WHERE kind IN ('webhook_failed', 'benefit_gap_expected');

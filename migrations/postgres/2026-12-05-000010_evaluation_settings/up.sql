-- The clinical settings the stored outcomes and flags were evaluated with (wear-off days,
-- remission cut-offs, vital-sign thresholds). A write evaluates only what it can move, so a
-- change of settings is followed by one evaluation of every record, after which this row
-- names the new settings (`sweep`).
-- A new table (one row); none is rewritten.
CREATE TABLE evaluation_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    settings TEXT NOT NULL,
    evaluated_at TIMESTAMP NOT NULL
);

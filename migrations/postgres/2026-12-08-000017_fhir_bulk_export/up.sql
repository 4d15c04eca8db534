-- The clinic-wide FHIR Bulk Data export (issue 19, part 3). A job is kicked off by a clinician
-- and written by whichever process claims it (a lease, so a process that dies mid-job leaves
-- it to another), a page of patients at a time: each page's NDJSON lines per resource type are
-- one part, committed with the job's cursor, so a job resumes where it stopped and memory
-- stays flat at both ends. Cancelling deletes the job and its parts. New tables; none is
-- rewritten.
CREATE TABLE fhir_exports (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    requested_by TEXT NOT NULL REFERENCES users (id),
    -- The kick-off: the manifest's transactionTime; patients registered later are left out.
    transaction_time TIMESTAMP NOT NULL,
    since TIMESTAMP,
    -- The resource types asked for, comma-separated.
    types TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'complete')),
    -- The last patient written, in id order; how many are written, of how many.
    after_patient TEXT,
    patients_done INTEGER NOT NULL CHECK (patients_done >= 0),
    patients_total INTEGER NOT NULL CHECK (patients_total >= 0),
    pages INTEGER NOT NULL CHECK (pages >= 0),
    leased_until TIMESTAMP,
    finished_at TIMESTAMP
);
CREATE INDEX fhir_exports_in_progress_idx ON fhir_exports (transaction_time)
  WHERE status = 'in_progress';
-- One export of a clinic written at a time, even when two kick-offs race.
CREATE UNIQUE INDEX fhir_exports_one_per_clinic_idx ON fhir_exports (clinic_id)
  WHERE status = 'in_progress';

CREATE TABLE fhir_export_parts (
    export_id TEXT NOT NULL REFERENCES fhir_exports (id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    part INTEGER NOT NULL CHECK (part >= 0),
    lines INTEGER NOT NULL CHECK (lines > 0),
    -- The patients whose data the part holds (JSON), audited as read when it is downloaded.
    patients TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (export_id, resource_type, part)
);

-- Clinical records (domain.md §1-5). Each table refuses what the domain forbids; body_hash is
-- the SHA-256 of the create request, so a retried create can be told from a different one.
-- New tables only; no existing table is rewritten.

CREATE TABLE patients (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    clinic_id TEXT NOT NULL REFERENCES clinics (id),
    external_ref TEXT CHECK (length(external_ref) BETWEEN 1 AND 64),
    birth_year INTEGER NOT NULL CHECK (birth_year BETWEEN 1900 AND 2200),
    sex TEXT NOT NULL CHECK (sex IN ('female', 'male', 'intersex', 'unknown')),
    research_consent BOOLEAN NOT NULL DEFAULT FALSE,
    consented_at TIMESTAMP,
    body_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT patients_external_ref_key UNIQUE (clinic_id, external_ref),
    CONSTRAINT patients_consent_has_time CHECK (research_consent = (consented_at IS NOT NULL))
);
CREATE INDEX patients_clinic_idx ON patients (clinic_id, created_at, id);

CREATE TABLE patient_indications (
    patient_id TEXT NOT NULL REFERENCES patients (id),
    indication TEXT NOT NULL CHECK (indication IN ('major_depression', 'treatment_resistant_depression',
        'bipolar_depression', 'anxiety', 'ocd', 'ptsd', 'fibromyalgia', 'complex_regional_pain_syndrome',
        'post_operative_pain', 'other_chronic_pain', 'other')),
    PRIMARY KEY (patient_id, indication)
);

CREATE TABLE patient_risk_factors (
    patient_id TEXT NOT NULL REFERENCES patients (id),
    factor TEXT NOT NULL CHECK (factor IN ('psychosis', 'current_mania', 'raised_intracranial_pressure',
        'pregnancy', 'prior_adverse_reaction_to_ketamine', 'hypertension', 'cardiovascular_disease',
        'substance_use_disorder')),
    noted_at TIMESTAMP NOT NULL,
    note TEXT CHECK (length(note) <= 2000),
    PRIMARY KEY (patient_id, factor)
);

-- A patient's app account: one account per patient, one patient per account.
CREATE TABLE patient_accounts (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    CONSTRAINT patient_accounts_patient_key UNIQUE (patient_id)
);

CREATE TABLE invites (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    code_hash TEXT NOT NULL CHECK (length(code_hash) = 64),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL CHECK (expires_at > created_at),
    used_at TIMESTAMP,
    CONSTRAINT invites_code_hash_key UNIQUE (code_hash)
);

CREATE TABLE courses (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    indication TEXT NOT NULL CHECK (indication IN ('major_depression', 'treatment_resistant_depression',
        'bipolar_depression', 'anxiety', 'ocd', 'ptsd', 'fibromyalgia', 'complex_regional_pain_syndrome',
        'post_operative_pain', 'other_chronic_pain', 'other')),
    protocol TEXT NOT NULL CHECK (protocol IN ('standard_induction', 'custom')),
    primary_instrument TEXT NOT NULL CHECK (primary_instrument IN ('phq9', 'gad7', 'madrs', 'pcl5', 'ybocs', 'pain_nrs', 'daily_mood')),
    start_date DATE NOT NULL,
    -- A JSON array of dates, for custom courses only.
    planned_dates TEXT,
    closed BOOLEAN NOT NULL DEFAULT FALSE,
    body_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    CONSTRAINT courses_custom_has_dates CHECK ((protocol = 'custom') = (planned_dates IS NOT NULL))
);
CREATE INDEX courses_patient_idx ON courses (patient_id, created_at, id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    course_id TEXT NOT NULL REFERENCES courses (id),
    route TEXT NOT NULL CHECK (route IN ('iv', 'im', 'intranasal', 'oral', 'sublingual')),
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP CHECK (ended_at >= started_at),
    dose_mg_per_kg DOUBLE PRECISION NOT NULL CHECK (dose_mg_per_kg > 0 AND dose_mg_per_kg <= 5),
    weight_kg DOUBLE PRECISION NOT NULL CHECK (weight_kg BETWEEN 20 AND 350),
    total_dose_mg DOUBLE PRECISION NOT NULL CHECK (total_dose_mg > 0),
    status TEXT NOT NULL CHECK (status IN ('completed', 'stopped_early', 'held', 'cancelled')),
    hold_reason TEXT CHECK (length(hold_reason) BETWEEN 1 AND 500),
    charge_cents BIGINT CHECK (charge_cents >= 0),
    pre_systolic INTEGER CHECK (pre_systolic BETWEEN 60 AND 260),
    pre_diastolic INTEGER CHECK (pre_diastolic BETWEEN 30 AND 160 AND pre_diastolic < pre_systolic),
    pre_heart_rate INTEGER CHECK (pre_heart_rate BETWEEN 30 AND 220),
    pre_spo2 INTEGER CHECK (pre_spo2 BETWEEN 50 AND 100),
    post_systolic INTEGER CHECK (post_systolic BETWEEN 60 AND 260),
    post_diastolic INTEGER CHECK (post_diastolic BETWEEN 30 AND 160 AND post_diastolic < post_systolic),
    post_heart_rate INTEGER CHECK (post_heart_rate BETWEEN 30 AND 220),
    post_spo2 INTEGER CHECK (post_spo2 BETWEEN 50 AND 100),
    -- Readings during monitoring, a JSON array checked by the domain before it is stored.
    readings TEXT NOT NULL DEFAULT '[]',
    monitoring_minutes INTEGER CHECK (monitoring_minutes BETWEEN 0 AND 1440),
    sedation TEXT CHECK (sedation IN ('none', 'mild', 'moderate', 'deep')),
    respiratory_concern BOOLEAN NOT NULL DEFAULT FALSE,
    recorded_by TEXT NOT NULL REFERENCES users (id),
    body_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    deleted_at TIMESTAMP,
    deleted_reason TEXT CHECK (length(deleted_reason) BETWEEN 1 AND 500),
    CONSTRAINT sessions_held_has_reason CHECK ((status = 'held') = (hold_reason IS NOT NULL)),
    CONSTRAINT sessions_deletion_has_reason CHECK ((deleted_at IS NULL) = (deleted_reason IS NULL))
);
CREATE INDEX sessions_patient_time_idx ON sessions (patient_id, started_at, id);
CREATE INDEX sessions_patient_sync_idx ON sessions (patient_id, updated_at, id);
CREATE INDEX sessions_course_idx ON sessions (course_id);

CREATE TABLE side_effects (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    session_id TEXT NOT NULL REFERENCES sessions (id),
    effect TEXT NOT NULL CHECK (effect IN ('increased_heart_rate', 'high_blood_pressure', 'nausea', 'vomiting',
        'dissociation', 'altered_time_perception', 'altered_visual_perception', 'altered_tactile_perception',
        'altered_auditory_perception', 'out_of_body_experience', 'blurry_vision', 'headache', 'dizziness',
        'sedation', 'anxiety_or_agitation', 'bladder_symptoms', 'craving', 'mania_symptoms', 'other')),
    severity TEXT NOT NULL CHECK (severity IN ('mild', 'moderate', 'severe', 'life_threatening')),
    onset_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP CHECK (resolved_at >= onset_at),
    reported_by TEXT NOT NULL CHECK (reported_by IN ('patient', 'clinician')),
    note TEXT CHECK (length(note) BETWEEN 1 AND 2000),
    recorded_by TEXT NOT NULL REFERENCES users (id),
    body_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    deleted_at TIMESTAMP,
    deleted_reason TEXT CHECK (length(deleted_reason) BETWEEN 1 AND 500),
    CONSTRAINT side_effects_other_has_note CHECK (effect <> 'other' OR note IS NOT NULL),
    CONSTRAINT side_effects_patient_max_severe CHECK (NOT (reported_by = 'patient' AND severity = 'life_threatening')),
    CONSTRAINT side_effects_deletion_has_reason CHECK ((deleted_at IS NULL) = (deleted_reason IS NULL))
);
CREATE INDEX side_effects_patient_time_idx ON side_effects (patient_id, onset_at, id);
CREATE INDEX side_effects_patient_sync_idx ON side_effects (patient_id, updated_at, id);

CREATE TABLE assessments (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    patient_id TEXT NOT NULL REFERENCES patients (id),
    instrument TEXT NOT NULL CHECK (instrument IN ('phq9', 'gad7', 'madrs', 'pcl5', 'ybocs', 'pain_nrs', 'daily_mood', 'cadss')),
    taken_at TIMESTAMP NOT NULL,
    -- The item answers as a JSON array; the total and band are the server's.
    items TEXT NOT NULL,
    total INTEGER NOT NULL CHECK (total >= 0),
    band TEXT,
    submitted_by TEXT NOT NULL CHECK (submitted_by IN ('patient', 'clinician')),
    recorded_by TEXT NOT NULL REFERENCES users (id),
    body_hash TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version INTEGER NOT NULL DEFAULT 1 CHECK (version >= 1),
    deleted_at TIMESTAMP,
    deleted_reason TEXT CHECK (length(deleted_reason) BETWEEN 1 AND 500),
    CONSTRAINT assessments_total_in_range CHECK (
        (instrument = 'phq9' AND total <= 27) OR (instrument = 'gad7' AND total <= 21)
        OR (instrument = 'madrs' AND total <= 60) OR (instrument = 'pcl5' AND total <= 80)
        OR (instrument = 'ybocs' AND total <= 40) OR (instrument IN ('pain_nrs', 'daily_mood') AND total <= 10)
        OR (instrument = 'cadss' AND total <= 92)),
    CONSTRAINT assessments_patient_rated_only CHECK (NOT (submitted_by = 'patient' AND instrument IN ('madrs', 'ybocs', 'cadss'))),
    CONSTRAINT assessments_deletion_has_reason CHECK ((deleted_at IS NULL) = (deleted_reason IS NULL))
);
CREATE INDEX assessments_patient_time_idx ON assessments (patient_id, taken_at, id);
CREATE INDEX assessments_patient_sync_idx ON assessments (patient_id, updated_at, id);

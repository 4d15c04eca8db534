//! The tables, as diesel sees them. Only types both engines share appear here: ids are text
//! UUIDs and times are UTC `TIMESTAMP`s.

diesel::table! {
    clinics (id) {
        id -> Text,
        name -> Text,
        crisis_message -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        clinic_id -> Nullable<Text>,
        disabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        token_generation -> Integer,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        family_id -> Text,
        user_id -> Text,
        token_hash -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sign_in_throttle (throttle_key) {
        throttle_key -> Text,
        attempts -> Integer,
        window_started_at -> Timestamp,
        last_attempt_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        occurred_at -> Timestamp,
        actor_id -> Nullable<Text>,
        actor_role -> Nullable<Text>,
        action -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        request_id -> Text,
        client_address -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    research_grants (id) {
        id -> Text,
        researcher_id -> Text,
        purpose -> Text,
        reference -> Text,
        granted_by -> Text,
        granted_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
        body_hash -> Text,
    }
}

diesel::table! {
    research_budgets (researcher_id, period_start) {
        researcher_id -> Text,
        period_start -> Timestamp,
        spent_micro_epsilon -> BigInt,
        queries -> Integer,
    }
}

diesel::table! {
    research_releases (query_key, data_version) {
        query_key -> Text,
        data_version -> Text,
        body -> Text,
        epsilon -> Double,
        released_at -> Timestamp,
    }
}

diesel::table! {
    patients (id) {
        id -> Text,
        clinic_id -> Text,
        external_ref -> Nullable<Text>,
        birth_year -> Integer,
        sex -> Text,
        research_consent -> Bool,
        consented_at -> Nullable<Timestamp>,
        body_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        change_seq -> BigInt,
    }
}

diesel::table! {
    patient_indications (patient_id, indication) {
        patient_id -> Text,
        indication -> Text,
    }
}

diesel::table! {
    patient_risk_factors (patient_id, factor) {
        patient_id -> Text,
        factor -> Text,
        noted_at -> Timestamp,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    patient_accounts (user_id) {
        user_id -> Text,
        patient_id -> Text,
    }
}

diesel::table! {
    invites (id) {
        id -> Text,
        patient_id -> Text,
        code_hash -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    courses (id) {
        id -> Text,
        patient_id -> Text,
        indication -> Text,
        protocol -> Text,
        primary_instrument -> Text,
        start_date -> Date,
        planned_dates -> Nullable<Text>,
        closed -> Bool,
        body_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        measurement_plan -> Nullable<Text>,
        change_seq -> BigInt,
    }
}

diesel::table! {
    consent_events (id) {
        id -> Text,
        patient_id -> Text,
        granted -> Bool,
        occurred_at -> Timestamp,
        actor_id -> Nullable<Text>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        patient_id -> Text,
        course_id -> Text,
        route -> Text,
        started_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
        dose_mg_per_kg -> Double,
        weight_kg -> Double,
        total_dose_mg -> Double,
        status -> Text,
        hold_reason -> Nullable<Text>,
        charge_cents -> Nullable<BigInt>,
        pre_systolic -> Nullable<Integer>,
        pre_diastolic -> Nullable<Integer>,
        pre_heart_rate -> Nullable<Integer>,
        pre_spo2 -> Nullable<Integer>,
        post_systolic -> Nullable<Integer>,
        post_diastolic -> Nullable<Integer>,
        post_heart_rate -> Nullable<Integer>,
        post_spo2 -> Nullable<Integer>,
        readings -> Text,
        monitoring_minutes -> Nullable<Integer>,
        sedation -> Nullable<Text>,
        respiratory_concern -> Bool,
        recorded_by -> Text,
        body_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        deleted_at -> Nullable<Timestamp>,
        deleted_reason -> Nullable<Text>,
        change_seq -> BigInt,
    }
}

diesel::table! {
    side_effects (id) {
        id -> Text,
        patient_id -> Text,
        session_id -> Text,
        effect -> Text,
        severity -> Text,
        onset_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        reported_by -> Text,
        note -> Nullable<Text>,
        recorded_by -> Text,
        body_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        deleted_at -> Nullable<Timestamp>,
        deleted_reason -> Nullable<Text>,
        change_seq -> BigInt,
    }
}

diesel::table! {
    assessments (id) {
        id -> Text,
        patient_id -> Text,
        instrument -> Text,
        taken_at -> Timestamp,
        items -> Text,
        total -> Integer,
        band -> Nullable<Text>,
        submitted_by -> Text,
        recorded_by -> Text,
        body_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
        deleted_at -> Nullable<Timestamp>,
        deleted_reason -> Nullable<Text>,
        change_seq -> BigInt,
    }
}

diesel::table! {
    session_outcomes (session_id) {
        session_id -> Text,
        patient_id -> Text,
        course_id -> Text,
        instrument -> Text,
        status -> Text,
        baseline -> Nullable<Integer>,
        nadir -> Nullable<Integer>,
        gain -> Nullable<Integer>,
        durability_days -> Nullable<Double>,
        censored -> Bool,
        wears_off_within_days -> Bool,
        computed_at -> Timestamp,
        started_at -> Timestamp,
        route -> Text,
        dose_mg_per_kg -> Double,
        charge_cents -> Nullable<BigInt>,
        indication -> Text,
        protocol -> Text,
        course_start_date -> Date,
    }
}

diesel::table! {
    course_outcomes (course_id) {
        course_id -> Text,
        patient_id -> Text,
        instrument -> Text,
        first_session_at -> Nullable<Timestamp>,
        baseline -> Nullable<Integer>,
        end_of_induction_assessment_id -> Nullable<Text>,
        end_of_induction_response -> Nullable<Bool>,
        end_of_induction_remission -> Nullable<Bool>,
        time_to_response_days -> Nullable<Double>,
        computed_at -> Timestamp,
    }
}

diesel::table! {
    flags (id) {
        id -> Text,
        patient_id -> Text,
        kind -> Text,
        level -> Text,
        level_rank -> Integer,
        record_type -> Text,
        record_id -> Text,
        detail -> Text,
        raised_at -> Timestamp,
        status -> Text,
        acknowledged_by -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamp>,
        note -> Nullable<Text>,
        escalated_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(users -> clinics (clinic_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(patients -> clinics (clinic_id));
diesel::joinable!(patient_indications -> patients (patient_id));
diesel::joinable!(patient_risk_factors -> patients (patient_id));
diesel::joinable!(patient_accounts -> patients (patient_id));
diesel::joinable!(invites -> patients (patient_id));
diesel::joinable!(courses -> patients (patient_id));
diesel::joinable!(sessions -> patients (patient_id));
diesel::joinable!(side_effects -> patients (patient_id));
diesel::joinable!(assessments -> patients (patient_id));
diesel::joinable!(session_outcomes -> patients (patient_id));
diesel::joinable!(course_outcomes -> patients (patient_id));
diesel::joinable!(flags -> patients (patient_id));
diesel::joinable!(consent_events -> patients (patient_id));
diesel::joinable!(course_adherence -> courses (course_id));
diesel::table! {
    course_adherence (course_id) {
        course_id -> Text,
        patient_id -> Text,
        completed -> Integer,
        due -> Integer,
        computed_at -> Timestamp,
        valid_until -> Timestamp,
    }
}
diesel::joinable!(time_flag_checks -> patients (patient_id));
diesel::table! {
    time_flag_checks (patient_id) {
        patient_id -> Text,
        next_at -> Nullable<Timestamp>,
        persistence -> Text,
    }
}
diesel::joinable!(outbox -> patients (patient_id));
diesel::table! {
    outbox (id) {
        id -> Text,
        clinic_id -> Text,
        patient_id -> Text,
        event_type -> Text,
        payload -> Text,
        occurred_at -> Timestamp,
        change_seq -> BigInt,
    }
}
diesel::table! {
    evaluation_settings (id) {
        id -> Integer,
        settings -> Text,
        evaluated_at -> Timestamp,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        clinic_id -> Text,
        url -> Text,
        description -> Text,
        subscription -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_until -> Nullable<Timestamp>,
        enabled -> Bool,
        disabled_reason -> Nullable<Text>,
        read_seq -> BigInt,
        read_id -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        version -> Integer,
    }
}
diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        endpoint_id -> Text,
        event_id -> Text,
        patient_id -> Text,
        change_seq -> BigInt,
        status -> Text,
        step -> Integer,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        leased_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}
diesel::table! {
    webhook_attempts (delivery_id, number) {
        delivery_id -> Text,
        number -> Integer,
        started_at -> Timestamp,
        status_code -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
    }
}
diesel::joinable!(webhook_endpoints -> clinics (clinic_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> outbox (event_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));

diesel::table! {
    fhir_exports (id) {
        id -> Text,
        clinic_id -> Text,
        requested_by -> Text,
        transaction_time -> Timestamp,
        since -> Nullable<Timestamp>,
        types -> Text,
        status -> Text,
        after_patient -> Nullable<Text>,
        patients_done -> Integer,
        patients_total -> Integer,
        pages -> Integer,
        leased_until -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
    }
}
diesel::table! {
    fhir_export_parts (export_id, resource_type, part) {
        export_id -> Text,
        resource_type -> Text,
        part -> Integer,
        lines -> Integer,
        patients -> Text,
        body -> Text,
    }
}
diesel::joinable!(fhir_export_parts -> fhir_exports (export_id));

diesel::allow_tables_to_appear_in_same_query!(
    fhir_exports,
    fhir_export_parts,
    clinics,
    users,
    refresh_tokens,
    sign_in_throttle,
    audit_events,
    research_grants,
    research_budgets,
    research_releases,
    patients,
    patient_indications,
    patient_risk_factors,
    patient_accounts,
    invites,
    courses,
    sessions,
    side_effects,
    assessments,
    session_outcomes,
    course_outcomes,
    flags,
    consent_events,
    evaluation_settings,
    course_adherence,
    time_flag_checks,
    outbox,
    webhook_endpoints,
    webhook_deliveries,
    webhook_attempts,
);

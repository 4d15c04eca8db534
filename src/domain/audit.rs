//! What the audit trail records (quality.md, Security: every read or write of a patient's
//! data, every sign-in, every account change, every research question).

vocabulary!(
    /// Everything the audit trail can say was done.
    Action {
        LoginSucceeded = "login_succeeded",
        LoginFailed = "login_failed",
        RefreshTokenReused = "refresh_token_reused",
        Logout = "logout",
        SignedOutEverywhere = "signed_out_everywhere",
        PasswordChanged = "password_changed",
        PasswordChangeFailed = "password_change_failed",
        UserCreated = "user_created",
        UserUpdated = "user_updated",
        ClinicCreated = "clinic_created",
        InviteCreated = "invite_created",
        PatientRegistered = "patient_registered",
        RegistrationFailed = "registration_failed",
        PatientCreated = "patient_created",
        PatientRead = "patient_read",
        PatientListed = "patient_listed",
        PatientUpdated = "patient_updated",
        ConsentHistoryRead = "consent_history_read",
        PatientAccountRead = "patient_account_read",
        PatientAccountEnabled = "patient_account_enabled",
        PatientAccountDisabled = "patient_account_disabled",
        TimelineRead = "timeline_read",
        CourseCreated = "course_created",
        CourseRead = "course_read",
        CoursesListed = "courses_listed",
        CourseUpdated = "course_updated",
        SessionCreated = "session_created",
        SessionRead = "session_read",
        SessionsListed = "sessions_listed",
        SessionUpdated = "session_updated",
        SessionEnteredInError = "session_entered_in_error",
        AssessmentCreated = "assessment_created",
        AssessmentRead = "assessment_read",
        AssessmentsListed = "assessments_listed",
        AssessmentEnteredInError = "assessment_entered_in_error",
        SideEffectCreated = "side_effect_created",
        SideEffectRead = "side_effect_read",
        SideEffectsListed = "side_effects_listed",
        SideEffectUpdated = "side_effect_updated",
        SideEffectEnteredInError = "side_effect_entered_in_error",
        OutcomesRead = "outcomes_read",
        DurabilityRead = "durability_read",
        FhirExported = "fhir_exported",
        FhirBulkExportStarted = "fhir_bulk_export_started",
        FhirBulkExportCancelled = "fhir_bulk_export_cancelled",
        TrajectoryRead = "trajectory_read",
        DueAssessmentsRead = "due_assessments_read",
        FlagsListed = "flags_listed",
        EventsStreamed = "events_streamed",
        FlagAcknowledged = "flag_acknowledged",
        ResearchOutcomes = "research_outcomes",
        ResearchSideEffects = "research_side_effects",
        ResearchTrajectories = "research_trajectories",
        ResearchExportStarted = "research_export_started",
        ResearchExportCompleted = "research_export_completed",
        ResearchExportAbandoned = "research_export_abandoned",
        ResearchGrantCreated = "research_grant_created",
        ResearchGrantRevoked = "research_grant_revoked",
        WebhookCreated = "webhook_created",
        WebhookUpdated = "webhook_updated",
        WebhookDeleted = "webhook_deleted",
        WebhookSecretRotated = "webhook_secret_rotated",
        WebhookDeliveryReplayed = "webhook_delivery_replayed",
    }
);

impl Action {
    /// The kind of thing the action was done to, which the event's `resource_id` names.
    pub fn resource_type(self) -> &'static str {
        use Action::*;
        match self {
            LoginSucceeded
            | LoginFailed
            | SignedOutEverywhere
            | PasswordChanged
            | PasswordChangeFailed
            | UserCreated
            | UserUpdated
            | PatientRegistered
            | PatientAccountRead
            | PatientAccountEnabled
            | PatientAccountDisabled => "account",
            RefreshTokenReused | Logout => "token_family",
            ClinicCreated => "clinic",
            InviteCreated | RegistrationFailed => "invite",
            PatientCreated | PatientRead | PatientListed | PatientUpdated | ConsentHistoryRead
            | TimelineRead | CoursesListed | SessionsListed | AssessmentsListed
            | SideEffectsListed | OutcomesRead | DurabilityRead | FhirExported | TrajectoryRead
            | DueAssessmentsRead | FlagsListed | EventsStreamed => "patient",
            CourseCreated | CourseRead | CourseUpdated => "course",
            SessionCreated | SessionRead | SessionUpdated | SessionEnteredInError => "session",
            AssessmentCreated | AssessmentRead | AssessmentEnteredInError => "assessment",
            SideEffectCreated | SideEffectRead | SideEffectUpdated | SideEffectEnteredInError => {
                "side_effect"
            }
            FlagAcknowledged => "flag",
            ResearchOutcomes
            | ResearchSideEffects
            | ResearchTrajectories
            | ResearchExportStarted
            | ResearchExportCompleted
            | ResearchExportAbandoned => "research",
            ResearchGrantCreated | ResearchGrantRevoked => "research_grant",
            WebhookCreated | WebhookUpdated | WebhookDeleted | WebhookSecretRotated => "webhook",
            WebhookDeliveryReplayed => "webhook_delivery",
            FhirBulkExportStarted | FhirBulkExportCancelled => "fhir_export",
        }
    }
}

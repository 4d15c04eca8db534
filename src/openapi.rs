//! The OpenAPI 3.1 document, generated from the handlers and wire types. It is the contract
//! that clients are generated from; `openapi/openapi.json` holds the committed copy.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::error::{FieldError, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ketamine-outcomes",
        description = "Records ketamine treatment, scores questionnaires as the published \
            instruments define, flags what a clinician must see, and answers de-identified \
            research questions. Errors are application/problem+json (RFC 9457).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "A local server")),
    paths(
        api::operations::healthz,
        api::operations::readyz,
        api::operations::metrics,
        api::auth::login,
        api::auth::refresh,
        api::auth::logout,
        api::me::get_me,
        api::me::change_password,
        api::me::sign_out_everywhere,
        api::clinics::create_clinic,
        api::clinics::list_clinics,
        api::users::create_user,
        api::users::list_users,
        api::users::get_user,
        api::users::update_user,
        api::audit_events::list_audit_events,
        api::invites::register,
        api::reference::list_instruments,
        api::reference::list_side_effect_kinds,
        api::reference::list_protocols,
        api::patients::create_patient,
        api::patients::list_patients,
        api::patients::get_patient,
        api::patients::update_patient,
        api::patient_account::get_patient_account,
        api::patient_account::update_patient_account,
        api::invites::create_invite,
        api::timeline::get_timeline,
        api::courses::create_course,
        api::courses::list_courses,
        api::courses::get_course,
        api::courses::update_course,
        api::sessions::create_session,
        api::sessions::list_sessions,
        api::sessions::list_my_sessions,
        api::sessions::get_session,
        api::sessions::update_session,
        api::sessions::delete_session,
        api::assessments::create_assessment,
        api::assessments::create_my_assessment,
        api::assessments::list_assessments,
        api::assessments::list_my_assessments,
        api::assessments::get_assessment,
        api::assessments::delete_assessment,
        api::side_effects::create_side_effect,
        api::side_effects::create_my_side_effect,
        api::side_effects::list_side_effects,
        api::side_effects::list_my_side_effects,
        api::side_effects::get_side_effect,
        api::side_effects::update_side_effect,
        api::side_effects::delete_side_effect,
        api::outcomes::get_outcomes,
        api::outcomes::get_my_outcomes,
        api::trajectory::get_trajectory,
        api::plan::get_due_assessments,
        api::plan::get_my_due_assessments,
        api::patients::get_consent_history,
        api::flags::list_flags,
        api::flags::acknowledge_flag,
        api::research::research_outcomes,
        api::research::research_side_effects,
        api::research::research_trajectories,
        api::research::research_trajectories_svg,
        api::research::research_export,
        api::research::research_budget,
        api::research_grants::create_research_grant,
        api::research_grants::list_research_grants,
        api::research_grants::revoke_research_grant,
        api::research_grants::list_research_budgets,
    ),
    components(
        schemas(Problem, FieldError, api::flags::FlagStatus, crate::domain::research::Dimension),
        responses(
            responses::BadRequest,
            responses::Unauthorized,
            responses::InvalidCredentials,
            responses::Forbidden,
            responses::NotFound,
            responses::Conflict,
            responses::PreconditionFailed,
            responses::Unprocessable,
            responses::TooManyRequests,
            responses::Unavailable,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
        ),
    ),
    modifiers(&BearerAuth, &InstrumentTable, &PageExamples, &BodyErrors),
    tags(
        (name = "operations", description = "Probes and metrics for operators"),
        (name = "auth", description = "Sign-in, token refresh and sign-out"),
        (name = "me", description = "The signed-in caller's own account"),
        (name = "administration", description = "Clinics, accounts and the audit trail (administrators)"),
        (name = "reference", description = "The instrument table, the side-effect catalogue and the protocols"),
        (name = "patients", description = "Patients, their app invites and their timeline (clinicians; patients read their own)"),
        (name = "courses", description = "Courses of treatment and their schedules"),
        (name = "sessions", description = "Infusions with dose and vital signs"),
        (name = "assessments", description = "Questionnaires, scored by the server"),
        (name = "side effects", description = "Side-effect reports"),
        (name = "outcomes", description = "Per-infusion durability and per-course response, kept current by every write"),
        (name = "flags", description = "The safety worklist"),
        (name = "research", description = "Aggregates of consenting patients: differentially private (aggregate tier) or exact with small cells withheld (controlled tier), and the controlled tier's k-anonymous export (researchers)"),
        (name = "research grants", description = "The controlled tier of research access and every researcher's privacy budget (administrators)"),
    ),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from /v1/auth/login or /v1/auth/refresh",
                    ))
                    .build(),
            ),
        );
    }
}

/// Puts the whole instrument table of domain.md §5 into the description of GET /v1/instruments,
/// so that it is visible in the document itself.
struct InstrumentTable;

impl Modify for InstrumentTable {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/v1/instruments")
            .and_then(|p| p.get.as_mut())
        else {
            return;
        };
        let intro = operation.description.take().unwrap_or_default();
        operation.description = Some(format!(
            "{intro}\n\n{}",
            api::reference::instrument_table_markdown()
        ));
    }
}

/// Gives every `Paged_*` schema an example: one page holding its item type's example.
struct PageExamples;

impl Modify for PageExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        // The generic item is inlined, so its example is read from the serialised form.
        let Ok(mut value) = serde_json::to_value(&*components) else {
            return;
        };
        let Some(schemas) = value["schemas"].as_object_mut() else {
            return;
        };
        for (name, schema) in schemas
            .iter_mut()
            .filter(|(name, _)| name.starts_with("Paged_"))
        {
            let item = schema["properties"]["items"]["items"]["example"].clone();
            if item.is_null() {
                tracing::warn!(schema = %name, "a paged item type has no example");
                continue;
            }
            schema["example"] = serde_json::json!({"items": [item], "next_cursor": "MTc5NTYwODU1NzEyMzQ1NnwxYzRlMmE5Yg"});
        }
        if let Ok(with_examples) = serde_json::from_value(value) {
            *components = with_examples;
        }
    }
}

/// The error responses operations share, each a problem document with an example.
pub mod responses {
    use utoipa::ToResponse;

    use crate::error::Problem;

    #[derive(ToResponse)]
    #[response(description = "The body is not valid JSON", content_type = "application/problem+json",
        example = json!({"type": "/problems/malformed", "title": "The request could not be read", "status": 400,
            "detail": "malformed JSON: EOF while parsing an object"}))]
    pub struct BadRequest(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "No valid bearer token", content_type = "application/problem+json",
        example = json!({"type": "/problems/unauthorized", "title": "Sign-in required", "status": 401,
            "detail": "a valid bearer token is required"}))]
    pub struct Unauthorized(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "Wrong email or password (the same answer for both)", content_type = "application/problem+json",
        example = json!({"type": "/problems/invalid-credentials", "title": "Sign-in failed", "status": 401,
            "detail": "the email or password is not correct"}))]
    pub struct InvalidCredentials(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "The caller's role may not do this", content_type = "application/problem+json",
        example = json!({"type": "/problems/forbidden", "title": "Not allowed", "status": 403,
            "detail": "your role may not do this"}))]
    pub struct Forbidden(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "No such record within the caller's scope", content_type = "application/problem+json",
        example = json!({"type": "/problems/not-found", "title": "Not found", "status": 404, "detail": "no such resource"}))]
    pub struct NotFound(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "The id is taken by a record with a different body, or a unique field is taken",
        content_type = "application/problem+json",
        example = json!({"type": "/problems/conflict", "title": "Conflict", "status": 409,
            "detail": "a record with this id exists with a different body"}))]
    pub struct Conflict(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "If-Match names a version that is no longer current", content_type = "application/problem+json",
        example = json!({"type": "/problems/precondition-failed", "title": "Precondition failed", "status": 412,
            "detail": "the record has changed; fetch it again and retry with its current version"}))]
    pub struct PreconditionFailed(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "A field broke a rule, or the body has an unknown field", content_type = "application/problem+json",
        example = json!({"type": "/problems/validation", "title": "The request broke a rule", "status": 422,
            "detail": "password: must be at least 12 characters",
            "errors": [{"field": "password", "message": "must be at least 12 characters"}]}))]
    pub struct Unprocessable(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "The body is larger than 256 KiB", content_type = "application/problem+json",
        example = json!({"type": "/problems/payload-too-large", "title": "Payload too large", "status": 413,
            "detail": "the body must not exceed 262144 bytes"}))]
    pub struct PayloadTooLarge(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "The body is not application/json", content_type = "application/problem+json",
        example = json!({"type": "/problems/unsupported-media-type", "title": "Unsupported media type", "status": 415,
            "detail": "send the body as application/json"}))]
    pub struct UnsupportedMediaType(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "Too many sign-in attempts for this account or client address; see Retry-After",
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
        example = json!({"type": "/problems/too-many-requests", "title": "Too many requests", "status": 429,
            "detail": "too many sign-in attempts; retry after 30 seconds"}))]
    pub struct TooManyRequests(pub Problem);

    #[derive(ToResponse)]
    #[response(description = "The database is unavailable, or too many passwords are being checked; retry after Retry-After",
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait")),
        example = json!({"type": "/problems/unavailable", "title": "Service unavailable", "status": 503,
            "detail": "the database is unavailable; retry shortly"}))]
    pub struct Unavailable(pub Problem);
}

/// The methods the document offers for a concrete request path, if any path template matches
/// it (`/v1/sessions/{id}` matches `/v1/sessions/5f…`).
pub fn methods_of(path: &str) -> Option<Vec<&'static str>> {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(ApiDoc::openapi);
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let (_, item) = document.paths.paths.iter().find(|(template, _)| {
        let parts: Vec<&str> = template.split('/').collect();
        parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })?;
    let offered = [
        ("GET", item.get.is_some()),
        ("POST", item.post.is_some()),
        ("PUT", item.put.is_some()),
        ("PATCH", item.patch.is_some()),
        ("DELETE", item.delete.is_some()),
    ];
    Some(
        offered
            .iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| *m)
            .collect(),
    )
}

/// Documents the answers every operation with a body can give before it runs: 413 and 415.
struct BodyErrors;

impl Modify for BodyErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, RefOr};
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                if operation.request_body.is_none() {
                    continue;
                }
                for (status, name) in [("413", "PayloadTooLarge"), ("415", "UnsupportedMediaType")]
                {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The document as committed and served: pretty JSON with a trailing newline.
pub fn document() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serialises");
    json.push('\n');
    json
}

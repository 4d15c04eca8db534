//! The one error type of the service's use cases and handlers, its one mapping to
//! `application/problem+json` (RFC 9457), and the problem documents as the contract states
//! them ([`responses`], grouped per kind of operation). Extractor failures from actix itself
//! are routed through the same mapping, and [`problem_for_every_error`] rewrites any other
//! error response (an unknown route, a wrong method) so that a client never sees an error in
//! another shape.

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::RuleBroken;
use crate::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// One broken rule of one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"field": "email", "message": "must be an email address"}))]
pub struct FieldError {
    /// Dotted path or JSON pointer of the field.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/validation",
    "title": "The request broke a rule",
    "status": 422,
    "detail": "1 field is invalid",
    "errors": [{"field": "email", "message": "must be an email address"}]
}))]
pub struct Problem {
    /// A relative URI naming the kind of problem; stable, for machines.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// A refused research query: the privacy budget left in this period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon_remaining: Option<f64>,
    /// A refused research query: what it needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon_needed: Option<f64>,
    /// A refused research query: when the budget renews.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renews_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Everything a request can fail with. `Internal` keeps its cause for the log only.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("sign-in required")]
    Unauthorized,
    /// A failed sign-in; the same answer whether the email exists or not.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("not allowed for this role")]
    Forbidden,
    /// The export, which only the controlled tier of research access may read.
    #[error("controlled tier required")]
    NeedsGrant,
    /// The research query would spend more of the privacy budget than is left.
    #[error("privacy budget exhausted")]
    BudgetExhausted {
        remaining: f64,
        needed: f64,
        renews_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("not found")]
    NotFound,
    /// The path exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A unique field's value is taken (an email, a clinic's name, a patient's reference).
    #[error("{0} is taken")]
    Taken(&'static str),
    /// The record changed since the version the client sent in If-Match.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Too many failed sign-ins; retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    #[error("payload too large")]
    PayloadTooLarge,
    /// The body did not arrive within the deadline.
    #[error("request timeout")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("service unavailable")]
    Unavailable,
    /// Too many password hashes are queued; retry after this many seconds.
    #[error("busy")]
    Busy { retry_after: u64 },
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    fn problem(&self) -> Problem {
        let (kind, title, detail, errors) = match self {
            Self::BadRequest(detail) => (
                "malformed",
                "The request could not be read",
                detail.clone(),
                vec![],
            ),
            Self::Validation(errors) => (
                "validation",
                "The request broke a rule",
                validation_detail(errors),
                errors.clone(),
            ),
            Self::Unauthorized => (
                "unauthorized",
                "Sign-in required",
                "a valid bearer token is required".into(),
                vec![],
            ),
            Self::Forbidden => (
                "forbidden",
                "Not allowed",
                "your role may not do this".into(),
                vec![],
            ),
            Self::BudgetExhausted {
                remaining,
                needed,
                renews_at,
            } => (
                "privacy-budget",
                "Privacy budget exhausted",
                format!(
                    "this query needs ε {needed} and {remaining} is left until the budget renews at {}",
                    renews_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                vec![],
            ),
            Self::NeedsGrant => (
                "controlled-tier",
                "Controlled tier required",
                "the row-level export needs the controlled tier: a research grant from an administrator".into(),
                vec![],
            ),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "this resource does not support this method; see the Allow header".into(),
                vec![],
            ),
            Self::NotFound => ("not-found", "Not found", "no such resource".into(), vec![]),
            Self::Conflict(detail) => ("conflict", "Conflict", detail.clone(), vec![]),
            Self::Taken(field) => (
                "conflict",
                "Conflict",
                format!("{field}: is taken"),
                vec![FieldError::new(*field, "is taken")],
            ),
            Self::InvalidCredentials => (
                "invalid-credentials",
                "Sign-in failed",
                "the email or password is not correct".into(),
                vec![],
            ),
            Self::PreconditionFailed => (
                "precondition-failed",
                "Precondition failed",
                "the record has changed; fetch it again and retry with its current version".into(),
                vec![],
            ),
            Self::TooManyRequests { retry_after } => (
                "too-many-requests",
                "Too many requests",
                format!("too many sign-in attempts; retry after {retry_after} seconds"),
                vec![],
            ),
            Self::Busy { retry_after } => (
                "busy",
                "Busy",
                format!("too many sign-ins are being checked; retry after {retry_after} seconds"),
                vec![],
            ),
            Self::RequestTimeout => (
                "request-timeout",
                "Request timeout",
                "the body was not sent in time".into(),
                vec![],
            ),
            Self::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                format!("the body must not exceed {MAX_BODY_BYTES} bytes"),
                vec![],
            ),
            Self::UnsupportedMediaType => (
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json".into(),
                vec![],
            ),
            Self::Unavailable => (
                "unavailable",
                "Service unavailable",
                "the database is unavailable; retry shortly".into(),
                vec![],
            ),
            Self::Internal(_) => (
                "internal",
                "Internal error",
                "the error has been logged".into(),
                vec![],
            ),
        };
        let budget = match self {
            Self::BudgetExhausted {
                remaining,
                needed,
                renews_at,
            } => Some((*remaining, *needed, *renews_at)),
            _ => None,
        };
        Problem {
            kind: format!("/problems/{kind}"),
            title: title.into(),
            status: self.status_code().as_u16(),
            detail,
            errors,
            epsilon_remaining: budget.map(|b| b.0),
            epsilon_needed: budget.map(|b| b.1),
            renews_at: budget.map(|b| b.2),
        }
    }
}

/// An error and each of its sources, as one line: "database error: invalid byte sequence…".
pub fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

fn validation_detail(errors: &[FieldError]) -> String {
    match errors {
        [one] => format!("{}: {}", one.field, one.message),
        many => format!("{} fields are invalid", many.len()),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::BudgetExhausted { .. } | Self::NeedsGrant => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::Taken(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.response_of_kind(PROBLEM_JSON).json(self.problem())
    }
}

impl ApiError {
    /// The response's status and headers, whatever shape its body takes; logs an internal
    /// error's cause.
    fn response_of_kind(&self, content_type: &'static str) -> actix_web::HttpResponseBuilder {
        if let Self::Internal(cause) = self {
            // The cause goes to the log, never to the client: every error in the chain
            // (diesel's message and the database's, never a statement's parameters).
            tracing::error!(error = %cause_chain(cause.as_ref()), "request failed");
        }
        let mut response = HttpResponse::build(self.status_code());
        response.content_type(content_type);
        if matches!(self, Self::Unavailable) {
            response.insert_header((header::RETRY_AFTER, "5"));
        }
        if let Self::TooManyRequests { retry_after } | Self::Busy { retry_after } = self {
            response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
        }
        if matches!(self, Self::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response
    }

    /// The FHIR issue type of the error (the `issue-type` value set).
    fn fhir_issue_code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "structure",
            Self::Validation(_) => "invalid",
            Self::Unauthorized | Self::InvalidCredentials => "login",
            Self::Forbidden | Self::NeedsGrant | Self::BudgetExhausted { .. } => "forbidden",
            Self::NotFound => "not-found",
            Self::Conflict(_) | Self::Taken(_) | Self::PreconditionFailed => "conflict",
            Self::TooManyRequests { .. } => "throttled",
            Self::PayloadTooLarge => "too-costly",
            Self::UnsupportedMediaType | Self::MethodNotAllowed => "not-supported",
            Self::RequestTimeout | Self::Unavailable | Self::Busy { .. } => "transient",
            Self::Internal(_) => "exception",
        }
    }
}

pub const FHIR_JSON: &str = "application/fhir+json";

/// An error of a FHIR endpoint: the same status and headers as [`ApiError`]'s problem
/// document, its body a FHIR `OperationOutcome` — one issue per broken field, its
/// `expression` the field's FHIRPath within `resource` (a parameter's name, when `resource` is
/// empty).
#[derive(Debug)]
pub struct FhirError {
    pub error: ApiError,
    pub resource: &'static str,
}

impl std::fmt::Display for FhirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl FhirError {
    pub fn operation_outcome(&self) -> serde_json::Value {
        let problem = self.error.problem();
        let code = self.error.fhir_issue_code();
        let issues: Vec<serde_json::Value> = if problem.errors.is_empty() {
            vec![
                serde_json::json!({ "severity": "error", "code": code, "diagnostics": problem.detail }),
            ]
        } else {
            problem
                .errors
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "severity": "error",
                        "code": code,
                        "diagnostics": e.message,
                        "expression": [if self.resource.is_empty() {
                            e.field.clone()
                        } else {
                            format!("{}.{}", self.resource, e.field)
                        }],
                    })
                })
                .collect()
        };
        serde_json::json!({ "resourceType": "OperationOutcome", "issue": issues })
    }
}

impl ResponseError for FhirError {
    fn status_code(&self) -> StatusCode {
        self.error.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.error
            .response_of_kind(FHIR_JSON)
            .json(self.operation_outcome())
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Stale => Self::PreconditionFailed,
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause_chain(cause.as_ref()), "database unavailable");
                Self::Unavailable
            }
            StoreError::Taken { field } => Self::Taken(field),
            StoreError::Conflict => {
                Self::Conflict("the record conflicts with another record".into())
            }
            StoreError::AheadOfDatabase => Self::invalid(
                "updated_since",
                "is ahead of this database, which was restored from a backup since: sync again \
                 from an instant, or from the start",
            ),
            // A stored value that does not read back (StoreError::Integrity), or any other
            // database failure: logged with its whole cause chain, never guessed around.
            other => Self::Internal(Box::new(other)),
        }
    }
}

/// Maps actix's JSON extractor failures: unreadable JSON 400, a body that reads but does not
/// fit the schema (an unknown field, a wrong type) 422, too large 413, wrong type 415.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Payload(e) if crate::http::is_body_timeout(&e) => {
            ApiError::RequestTimeout
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::Validation(vec![field_error_from_serde(&e)])
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::BadRequest(format!("malformed JSON: {}", without_position(&e)))
        }
        _ => ApiError::BadRequest("the body could not be read".into()),
    };
    api.into()
}

/// serde names an unknown or missing field in its message; we lift the name into `field`.
pub fn field_error_from_serde(e: &serde_json::Error) -> FieldError {
    serde_field_error(without_position(e), "body")
}

/// A serde message as the error of the field it names (an unknown or missing field), or of
/// `whole` (the body, the query) when it names none.
pub fn serde_field_error(message: String, whole: &str) -> FieldError {
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field `"))
        .unwrap_or(whole)
        .to_owned();
    FieldError::new(field, message)
}

fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let PathError::Deserialize(e) = err else {
        return ApiError::BadRequest("bad path".into()).into();
    };
    ApiError::invalid("path", e.to_string()).into()
}

/// Rewrites any error response that is not already a problem document (actix's own 404 and
/// 405, for example) into one, keeping its status.
pub fn problem_for_every_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // A FHIR endpoint's OperationOutcome is its own error shape.
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(PROBLEM_JSON.as_bytes())
            || v.as_bytes().starts_with(FHIR_JSON.as_bytes())
    });
    if is_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let problem = Problem {
        kind: format!("/problems/http-{}", status.as_u16()),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail: generic_detail(status).to_owned(),
        errors: vec![],
        epsilon_remaining: None,
        epsilon_needed: None,
        renews_at: None,
    };
    let body = serde_json::to_vec(&problem).map_err(actix_web::error::ErrorInternalServerError)?;
    let (req, response) = res.into_parts();
    let mut response = response.set_body(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROBLEM_JSON),
    );
    let response = ServiceResponse::new(req, response)
        .map_into_boxed_body()
        .map_into_right_body();
    Ok(ErrorHandlerResponse::Response(response))
}

fn generic_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "no such resource",
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this resource",
        StatusCode::PAYLOAD_TOO_LARGE => "the body is too large",
        s if s.is_server_error() => "the error has been logged",
        _ => "the request could not be served",
    }
}

/// Domain rule failures as a 422 naming every field.
impl From<Vec<RuleBroken>> for ApiError {
    fn from(broken: Vec<RuleBroken>) -> Self {
        Self::Validation(
            broken
                .into_iter()
                .map(|b| FieldError::new(b.field, b.rule))
                .collect(),
        )
    }
}

impl From<RuleBroken> for ApiError {
    fn from(broken: RuleBroken) -> Self {
        vec![broken].into()
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(err: diesel::result::Error) -> Self {
        StoreError::from(err).into()
    }
}

/// The error responses operations share, each a problem document with an example.
pub mod responses {
    use utoipa::{IntoResponses, ToResponse};

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

    /// A read of a record or of one patient's records.
    #[derive(IntoResponses)]
    pub enum Read {
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 404)]
        NotFound(#[ref_response] NotFound),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A list of the caller's scope (their clinic's patients, the worklist, the trail).
    #[derive(IntoResponses)]
    pub enum List {
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A stream of the caller's scope: 429 past the account's open streams, 503 past the
    /// process's (or while it stops).
    #[derive(IntoResponses)]
    pub enum Stream {
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 429)]
        TooManyRequests(#[ref_response] TooManyRequests),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A create in the caller's scope (idempotent by client id: 409 for the same id with
    /// another body, or a unique field taken).
    #[derive(IntoResponses)]
    pub enum Create {
        #[response(status = 400)]
        BadRequest(#[ref_response] BadRequest),
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 409)]
        Conflict(#[ref_response] Conflict),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A create under a record named in the path (a patient's session, a flag's
    /// acknowledgement).
    #[derive(IntoResponses)]
    pub enum CreateUnder {
        #[response(status = 400)]
        BadRequest(#[ref_response] BadRequest),
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 404)]
        NotFound(#[ref_response] NotFound),
        #[response(status = 409)]
        Conflict(#[ref_response] Conflict),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A change of a clinical record (JSON merge patch, If-Match): 409 when the record was
    /// entered in error or a unique field is taken.
    #[derive(IntoResponses)]
    pub enum Change {
        #[response(status = 400)]
        BadRequest(#[ref_response] BadRequest),
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 404)]
        NotFound(#[ref_response] NotFound),
        #[response(status = 409)]
        Conflict(#[ref_response] Conflict),
        #[response(status = 412)]
        PreconditionFailed(#[ref_response] PreconditionFailed),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// A change of a setting (a course's plan, an account's access), which nothing else can
    /// hold: no conflict.
    #[derive(IntoResponses)]
    pub enum Update {
        #[response(status = 400)]
        BadRequest(#[ref_response] BadRequest),
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 404)]
        NotFound(#[ref_response] NotFound),
        #[response(status = 412)]
        PreconditionFailed(#[ref_response] PreconditionFailed),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// Marking a record entered in error.
    #[derive(IntoResponses)]
    pub enum Correct {
        #[response(status = 400)]
        BadRequest(#[ref_response] BadRequest),
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 404)]
        NotFound(#[ref_response] NotFound),
        #[response(status = 422)]
        Unprocessable(#[ref_response] Unprocessable),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// Anything else a signed-in caller asks that names no record.
    #[derive(IntoResponses)]
    pub enum SignedIn {
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }

    /// What one role alone may read (a researcher's budget, every budget).
    #[derive(IntoResponses)]
    pub enum RoleOnly {
        #[response(status = 401)]
        Unauthorized(#[ref_response] Unauthorized),
        #[response(status = 403)]
        Forbidden(#[ref_response] Forbidden),
        #[response(status = 503)]
        Unavailable(#[ref_response] Unavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// issue 12 (11): a 500's log line names every cause, not only the outermost.
    #[test]
    fn the_cause_chain_names_every_cause() {
        let diesel = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("invalid byte sequence for encoding \"UTF8\": 0x00".to_owned()),
        );
        let store = StoreError::Query(diesel);
        assert_eq!(
            cause_chain(&store),
            "database error: invalid byte sequence for encoding \"UTF8\": 0x00"
        );
    }
}

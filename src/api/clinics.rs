//! Clinics and the audit trail (administrators), on the wire.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::administration;
use crate::api::extract::Body;
use crate::api::wire::{created, PageQuery, Paged};
use crate::call::Call;
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::time;
use crate::error::responses::{Create, List};
use crate::error::ApiError;
use crate::records::id_for;
use crate::store::audit::{AuditEventRow, AuditFilter};
use crate::store::clinics::ClinicRow;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Harbour Ketamine Clinic",
    "crisis_message": "Call 988 (Suicide & Crisis Lifeline) or 911 now."}))]
pub struct CreateClinicRequest {
    /// Client-generated id; repeating the create with the same id and body returns the stored
    /// clinic.
    pub id: Option<Uuid>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Shown to a patient whose answers raise a suicidal-ideation flag.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub crisis_message: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Harbour Ketamine Clinic",
    "crisis_message": "Call 988 (Suicide & Crisis Lifeline) or 911 now.",
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct ClinicResponse {
    pub id: Uuid,
    pub name: String,
    pub crisis_message: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<ClinicRow> for ClinicResponse {
    fn from(row: ClinicRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            name: row.name,
            crisis_message: row.crisis_message,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Creates a clinic.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    request_body = CreateClinicRequest,
    responses(
        (status = 201, description = "Created", body = ClinicResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = ClinicResponse),
        Create,
    )
)]
#[post("/v1/clinics")]
pub async fn create_clinic(
    call: Call,
    body: Body<CreateClinicRequest>,
) -> Result<HttpResponse, ApiError> {
    let message = body.crisis_message.as_deref();
    let made = administration::create_clinic(&call, id_for(body.id), &body.name, message).await?;
    Ok(created(made, ClinicResponse::from))
}

/// Lists clinics, oldest first.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of clinics", body = Paged<ClinicResponse>),
        List,
    )
)]
#[get("/v1/clinics")]
pub async fn list_clinics(
    call: Call,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page()?;
    let rows = administration::list_clinics(&call, page.clone()).await?;
    let key = |r: &ClinicRow| (r.created_at, r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, ClinicResponse::from)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5b6f1f1e-55a7-4e0b-8b39-0f5b5d0f6c11", "occurred_at": "2026-09-25T09:31:02.123456Z",
    "actor_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "actor_role": "admin", "action": "user_created",
    "resource_type": "account", "resource_id": "9a1b2c3d-0000-4000-8000-000000000001", "patient_id": null,
    "request_id": "3f2c8a9e-7b1d-4c55-9e0a-2b7c6d5e4f3a", "client_address": "203.0.113.7", "detail": null}))]
pub struct AuditEventResponse {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    #[schema(required = true)]
    pub actor_id: Option<Uuid>,
    #[schema(required = true)]
    pub actor_role: Option<String>,
    /// What happened, such as `login_failed`, `user_updated`, `refresh_token_reused`.
    pub action: String,
    pub resource_type: String,
    #[schema(required = true)]
    pub resource_id: Option<String>,
    #[schema(required = true)]
    pub patient_id: Option<Uuid>,
    pub request_id: String,
    #[schema(required = true)]
    pub client_address: Option<String>,
    /// What a research query or export asked (JSON text), for research events.
    #[schema(required = true)]
    pub detail: Option<String>,
}

impl From<AuditEventRow> for AuditEventResponse {
    fn from(row: AuditEventRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            occurred_at: clock::from_db(row.occurred_at),
            actor_id: row.actor_id.map(|a| a.as_uuid()),
            actor_role: row.actor_role.map(|r| r.as_str().to_owned()),
            action: row.action.as_str().to_owned(),
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            patient_id: row.patient_id.map(|p| p.as_uuid()),
            request_id: row.request_id,
            client_address: row.client_address,
            detail: row.detail,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub patient_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    /// Events at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Events before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// Lists audit events, oldest first.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(AuditQuery, PageQuery),
    responses(
        (status = 200, description = "One page of events", body = Paged<AuditEventResponse>),
        List,
    )
)]
#[get("/v1/audit-events")]
pub async fn list_audit_events(
    call: Call,
    query: web::Query<AuditQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let range = time::Range::parse(query.from, query.to)?;
    let filter = AuditFilter {
        patient_id: query.patient_id.map(Into::into),
        actor_id: query.actor_id.map(Into::into),
        action: (query.action.as_deref())
            .map(|a| {
                a.parse::<Action>()
                    .map_err(|rule| ApiError::invalid("action", rule))
            })
            .transpose()?,
        from: range.from.map(clock::to_db),
        to: range.to.map(clock::to_db),
    };
    let rows = administration::audit_trail(&call, filter, page.clone()).await?;
    let key = |r: &AuditEventRow| (r.occurred_at, r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, AuditEventResponse::from)))
}

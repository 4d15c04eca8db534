//! The audit trail, for administrators. Read-only: no endpoint changes an event.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::rules_broken;
use crate::auth::caller::Caller;
use crate::clock;
use crate::domain::account::Role;
use crate::domain::text::{self, Shape};
use crate::domain::time;
use crate::error::ApiError;
use crate::store::audit::{self, AuditEventRow, AuditFilter};
use crate::store::Db;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5b6f1f1e-55a7-4e0b-8b39-0f5b5d0f6c11", "occurred_at": "2026-09-25T09:31:02.123456Z",
    "actor_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "actor_role": "admin", "action": "user_created",
    "resource_type": "account", "resource_id": "9a1b2c3d-0000-4000-8000-000000000001", "patient_id": null,
    "request_id": "3f2c8a9e-7b1d-4c55-9e0a-2b7c6d5e4f3a", "client_address": "203.0.113.7", "detail": null}))]
pub struct AuditEventResponse {
    pub id: String,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    /// What happened, such as `login_failed`, `user_updated`, `refresh_token_reused`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub patient_id: Option<String>,
    pub request_id: String,
    pub client_address: Option<String>,
    /// What a research query or export asked (JSON text), for research events.
    pub detail: Option<String>,
}

impl From<AuditEventRow> for AuditEventResponse {
    fn from(row: AuditEventRow) -> Self {
        Self {
            id: row.id,
            occurred_at: clock::from_db(row.occurred_at),
            actor_id: row.actor_id,
            actor_role: row.actor_role,
            action: row.action,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            patient_id: row.patient_id,
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/audit-events")]
pub async fn list_audit_events(
    caller: Caller,
    query: web::Query<AuditQuery>,
    page: web::Query<PageQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let page = page.page()?;
    let fetch = page.clone();
    let query = query.into_inner();
    let range = time::Range::parse(query.from, query.to).map_err(rules_broken)?;
    let action = query
        .action
        .as_deref()
        .map(|a| text::optional("action", a, Shape::Line, 100))
        .transpose()?
        .flatten();
    let filter = AuditFilter {
        patient_id: query.patient_id.map(|id| id.to_string()),
        actor_id: query.actor_id.map(|id| id.to_string()),
        action,
        from: range.from.map(clock::to_db),
        to: range.to.map(clock::to_db),
    };
    let rows = db
        .run(move |conn| audit::list(conn, &filter, &fetch))
        .await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        rows,
        &page,
        |r| (r.occurred_at, r.id.as_str()),
        AuditEventResponse::from,
    )))
}

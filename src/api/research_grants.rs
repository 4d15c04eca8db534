//! The controlled tier of research access (domain.md §8a), on the wire: grants under a
//! data-use agreement, and every researcher's privacy-budget spending (administrators).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::extract::Body;
use crate::api::wire::{body_hash, created, PageQuery, Paged};
use crate::call::Call;
use crate::clock;
use crate::error::responses::{Create, List, Read, RoleOnly};
use crate::error::ApiError;
use crate::records::id_for;
use crate::research::grants::{self, GrantDraft};
use crate::store::research_access::GrantRow;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "2b1f0e6c-8d4a-4c3b-9a7e-5f6d4c3b2a10", "researcher_id": "9a1b2c3d-0000-4000-8000-000000000003",
    "purpose": "Durability of benefit by route in treatment-resistant depression", "reference": "DUA-2026-014",
    "expires_at": "2027-06-30T00:00:00Z"}))]
pub struct CreateGrantRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    /// A researcher's account.
    pub researcher_id: Uuid,
    /// What the data-use agreement allows the data to be used for (1–2000 characters).
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub purpose: String,
    /// The agreement's reference (1–200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub reference: String,
    /// When the grant ends: in the future, at most five years ahead.
    pub expires_at: DateTime<Utc>,
}

/// Where a grant stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// In force: the researcher has the controlled tier.
    Active,
    Expired,
    Revoked,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "2b1f0e6c-8d4a-4c3b-9a7e-5f6d4c3b2a10", "researcher_id": "9a1b2c3d-0000-4000-8000-000000000003",
    "purpose": "Durability of benefit by route in treatment-resistant depression", "reference": "DUA-2026-014",
    "granted_by": "0f8fad5b-d9cb-469f-a165-70867728950e", "granted_at": "2026-12-01T09:00:00Z",
    "expires_at": "2027-06-30T00:00:00Z", "revoked_at": null, "revoked_by": null, "status": "active"}))]
pub struct GrantResponse {
    pub id: Uuid,
    pub researcher_id: Uuid,
    pub purpose: String,
    pub reference: String,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub revoked_by: Option<String>,
    pub status: GrantStatus,
}

impl From<GrantRow> for GrantResponse {
    fn from(row: GrantRow) -> Self {
        let now = clock::to_db(clock::now());
        let status = match (row.revoked_at, row.expires_at > now) {
            (Some(_), _) => GrantStatus::Revoked,
            (None, true) => GrantStatus::Active,
            (None, false) => GrantStatus::Expired,
        };
        Self {
            id: row.id.as_uuid(),
            researcher_id: row.researcher_id.as_uuid(),
            purpose: row.purpose,
            reference: row.reference,
            granted_by: row.granted_by.to_string(),
            granted_at: clock::from_db(row.granted_at),
            expires_at: clock::from_db(row.expires_at),
            revoked_at: row.revoked_at.map(clock::from_db),
            revoked_by: row.revoked_by.map(|r| r.to_string()),
            status,
        }
    }
}

/// Grants a researcher the controlled tier under a data-use agreement.
#[utoipa::path(
    tag = "research grants",
    security(("bearer" = [])),
    request_body = CreateGrantRequest,
    responses(
        (status = 201, description = "Granted", body = GrantResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = GrantResponse),
        Create,
    )
)]
#[post("/v1/research-grants")]
pub async fn create_research_grant(
    call: Call,
    body: Body<CreateGrantRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let draft = GrantDraft {
        researcher: body.researcher_id.into(),
        purpose: body.purpose,
        reference: body.reference,
        expires_at: body.expires_at,
    };
    let made = grants::grant(&call, id, draft, hash).await?;
    Ok(created(made, GrantResponse::from))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// One researcher's grants only.
    pub researcher_id: Option<Uuid>,
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u16>,
    pub cursor: Option<String>,
}

/// Every grant, active, expired or revoked, in order of granting.
#[utoipa::path(
    tag = "research grants",
    security(("bearer" = [])),
    params(GrantQuery),
    responses(
        (status = 200, description = "One page of grants", body = Paged<GrantResponse>),
        List,
    )
)]
#[get("/v1/research-grants")]
pub async fn list_research_grants(
    call: Call,
    query: web::Query<GrantQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let researcher = query.researcher_id.map(Into::into);
    let rows = grants::list(&call, researcher, page.clone()).await?;
    let key = |r: &GrantRow| (r.granted_at, r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, GrantResponse::from)))
}

/// Revokes a grant: the researcher falls back to the aggregate tier at once, on every
/// process. Revoking a revoked grant changes nothing.
#[utoipa::path(
    tag = "research grants",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The grant's id")),
    responses(
        (status = 200, description = "The grant, revoked", body = GrantResponse),
        Read,
    )
)]
#[delete("/v1/research-grants/{id}")]
pub async fn revoke_research_grant(
    call: Call,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let grant = grants::revoke(&call, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(GrantResponse::from(grant)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"researcher_id": "9a1b2c3d-0000-4000-8000-000000000003", "email": "rosa@university.example",
    "epsilon_spent": 8.0, "epsilon_budget": 40.0, "queries": 2, "period_start": "2026-11-20T00:00:00Z",
    "renews_at": "2026-12-20T00:00:00Z"}))]
pub struct SpendingResponse {
    pub researcher_id: Uuid,
    pub email: String,
    pub epsilon_spent: f64,
    pub epsilon_budget: f64,
    /// Aggregate-tier answers paid for in this period.
    pub queries: i32,
    pub period_start: DateTime<Utc>,
    pub renews_at: DateTime<Utc>,
}

/// Every researcher's privacy-budget spending in the current period.
#[utoipa::path(
    tag = "research grants",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One entry per researcher", body = Vec<SpendingResponse>),
        RoleOnly,
    )
)]
#[get("/v1/research-budgets")]
pub async fn list_research_budgets(call: Call) -> Result<HttpResponse, ApiError> {
    let budget = call.services.research.epsilon_budget;
    let spending: Vec<_> = grants::spending(&call)
        .await?
        .into_iter()
        .map(|s| SpendingResponse {
            researcher_id: s.researcher.as_uuid(),
            email: s.email,
            epsilon_spent: s.epsilon_spent,
            epsilon_budget: budget,
            queries: s.queries,
            period_start: s.period_start,
            renews_at: s.renews_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(spending))
}

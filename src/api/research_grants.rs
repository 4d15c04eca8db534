//! The controlled tier of research access, granted by administrators (domain.md §8a): a
//! recorded data-use agreement (purpose, reference, expiry) per researcher, revocable; and
//! every researcher's privacy-budget spending, for administrators to read.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::context::{Audited, RequestContext};
use crate::api::idempotent::{created_or_replayed, Creation};
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::{body_hash, optional, rules_broken};
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ResearchSettings;
use crate::domain::account::Role;
use crate::domain::text::{self, Shape};
use crate::domain::{privacy, time, RuleBroken};
use crate::error::ApiError;
use crate::store::research_access::{self as store, GrantRow};
use crate::store::{audit, users, Db, StoreError};

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
    pub id: String,
    pub researcher_id: String,
    pub purpose: String,
    pub reference: String,
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
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
            id: row.id,
            researcher_id: row.researcher_id,
            purpose: row.purpose,
            reference: row.reference,
            granted_by: row.granted_by,
            granted_at: clock::from_db(row.granted_at),
            expires_at: clock::from_db(row.expires_at),
            revoked_at: row.revoked_at.map(clock::from_db),
            revoked_by: row.revoked_by,
            status,
        }
    }
}

fn grant_event<'a>(action: &'a str, id: &'a str) -> Audited<'a> {
    Audited {
        action,
        resource_type: "research_grant",
        resource_id: Some(id),
        patient_id: None,
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/research-grants")]
pub async fn create_research_grant(
    caller: Caller,
    body: web::Json<CreateGrantRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = body.into_inner();
    let now = clock::now();
    let purpose = text::required("purpose", &body.purpose, Shape::Note, 2000);
    let reference = text::required("reference", &body.reference, Shape::Line, 200);
    let expiry = time::query_bound("expires_at", body.expires_at).and_then(|()| {
        let horizon = now + time::PLANNING_HORIZON;
        if body.expires_at <= now || body.expires_at > horizon {
            Err(RuleBroken::new(
                "expires_at",
                "must be in the future, at most five years ahead",
            ))
        } else {
            Ok(())
        }
    });
    let (purpose, reference) = match (purpose, reference, expiry) {
        (Ok(p), Ok(r), Ok(())) => (p, r),
        (p, r, e) => {
            let broken = [p.err(), r.err(), e.err()].into_iter().flatten().collect();
            return Err(rules_broken(broken));
        }
    };
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let hash = body_hash(&body);
    let row = GrantRow {
        id: id.clone(),
        researcher_id: body.researcher_id.to_string(),
        purpose,
        reference,
        granted_by: caller.user_id.clone(),
        granted_at: clock::to_db(now),
        expires_at: clock::to_db(body.expires_at),
        revoked_at: None,
        revoked_by: None,
        body_hash: hash.clone(),
    };
    let creation = db
        .transaction(move |conn| {
            let researcher = optional(users::find(conn, &row.researcher_id))?;
            if researcher.is_none_or(|u| u.role != Role::Researcher.as_str()) {
                return Err(ApiError::invalid(
                    "researcher_id",
                    "is not a researcher's account",
                ));
            }
            created_or_replayed(
                conn,
                |conn| optional(store::find_grant(conn, &id)),
                |found| found.body_hash == hash,
                |conn| {
                    store::insert_grant(conn, &row)?;
                    let event =
                        ctx.audit(Some(&caller), grant_event("research_grant_created", &id));
                    audit::record(conn, &event)
                },
            )
        })
        .await?;
    Ok(match creation {
        Creation::Created(row) => HttpResponse::Created().json(GrantResponse::from(row)),
        Creation::Replayed(row) => HttpResponse::Ok().json(GrantResponse::from(row)),
    })
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/research-grants")]
pub async fn list_research_grants(
    caller: Caller,
    query: web::Query<GrantQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let query = query.into_inner();
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let (fetch, researcher) = (page.clone(), query.researcher_id.map(|r| r.to_string()));
    let rows = db
        .run(move |conn| store::list_grants(conn, researcher.as_deref(), &fetch))
        .await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        rows,
        &page,
        |r| (r.granted_at, r.id.as_str()),
        GrantResponse::from,
    )))
}

/// Revokes a grant: the researcher falls back to the aggregate tier at once, on every
/// process. Revoking a revoked grant changes nothing.
#[utoipa::path(
    tag = "research grants",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The grant's id")),
    responses(
        (status = 200, description = "The grant, revoked", body = GrantResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[delete("/v1/research-grants/{id}")]
pub async fn revoke_research_grant(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| -> Result<_, StoreError> {
            store::find_grant(conn, &id)?;
            let now = clock::to_db(clock::now());
            if store::revoke_grant(conn, &id, &caller.user_id, now)? {
                let event = ctx.audit(Some(&caller), grant_event("research_grant_revoked", &id));
                audit::record(conn, &event)?;
            }
            store::find_grant(conn, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(GrantResponse::from(row)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"researcher_id": "9a1b2c3d-0000-4000-8000-000000000003", "email": "rosa@university.example",
    "epsilon_spent": 8.0, "epsilon_budget": 40.0, "queries": 2, "period_start": "2026-11-20T00:00:00Z",
    "renews_at": "2026-12-20T00:00:00Z"}))]
pub struct SpendingResponse {
    pub researcher_id: String,
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
    )
)]
#[get("/v1/research-budgets")]
pub async fn list_research_budgets(
    caller: Caller,
    db: web::Data<Db>,
    settings: web::Data<ResearchSettings>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let (start, end) = privacy::budget_period(clock::now(), settings.budget_days);
    let rows = db
        .run(move |conn| store::all_spending(conn, clock::to_db(start)))
        .await?;
    let budget = settings.epsilon_budget;
    let spending: Vec<SpendingResponse> = rows
        .into_iter()
        .map(|(researcher_id, email, micro, queries)| SpendingResponse {
            researcher_id,
            email,
            epsilon_spent: micro as f64 / 1e6,
            epsilon_budget: budget,
            queries,
            period_start: start,
            renews_at: end,
        })
        .collect();
    Ok(HttpResponse::Ok().json(spending))
}

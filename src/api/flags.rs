//! The safety worklist (domain.md §7): flags, read urgent first, and their acknowledgement.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::patient_event;
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::flags::{FlagKind, FlagLevel};
use crate::domain::text::{self, Shape};
use crate::error::ApiError;
use crate::evaluation;
use crate::store::flags::{self, FlagFilter, FlagRow};
use crate::store::{audit, Db, DbConnection, StoreError};

/// Where a flag stands.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    Open,
    Acknowledged,
}

impl FlagStatus {
    fn as_str(self) -> &'static str {
        match self {
            FlagStatus::Open => "open",
            FlagStatus::Acknowledged => "acknowledged",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "0d6f2b8e-3c1a-4f5e-9a7b-2c4d6e8f0a1b", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "kind": "suicidal_ideation", "level": "urgent", "record_type": "assessment", "record_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "detail": "phq9 item 9 answered 1", "raised_at": "2026-10-01T08:00:03Z", "status": "open",
    "acknowledged_by": null, "acknowledged_at": null, "note": null}))]
pub struct FlagResponse {
    pub id: String,
    pub patient_id: String,
    pub kind: FlagKind,
    pub level: FlagLevel,
    /// `assessment`, `session`, `side_effect`, `course`, or `planned_slot` (a course's
    /// planned infusion day, id `course_id:date`).
    pub record_type: String,
    pub record_id: String,
    /// Why it was raised.
    pub detail: String,
    pub raised_at: DateTime<Utc>,
    /// `open` or `acknowledged`; an acknowledged flag is never reopened.
    pub status: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

impl From<FlagRow> for FlagResponse {
    fn from(row: FlagRow) -> Self {
        Self {
            kind: row.kind.parse().unwrap_or(FlagKind::MissedSession),
            level: row.level.parse().unwrap_or(FlagLevel::Info),
            raised_at: clock::from_db(row.raised_at),
            acknowledged_at: row.acknowledged_at.map(clock::from_db),
            id: row.id,
            patient_id: row.patient_id,
            record_type: row.record_type,
            record_id: row.record_id,
            detail: row.detail,
            status: row.status,
            acknowledged_by: row.acknowledged_by,
            note: row.note,
        }
    }
}

/// The flags on each of the given records.
pub fn flags_by_record(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<HashMap<String, Vec<FlagResponse>>, StoreError> {
    let mut by_record: HashMap<String, Vec<FlagResponse>> = HashMap::new();
    for row in flags::for_records(conn, ids)? {
        by_record
            .entry(row.record_id.clone())
            .or_default()
            .push(row.into());
    }
    Ok(by_record)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    /// `open` or `acknowledged`.
    pub status: Option<FlagStatus>,
    pub level: Option<FlagLevel>,
    pub kind: Option<FlagKind>,
    pub patient_id: Option<Uuid>,
}

/// The clinic's flags: urgent first, then high, then info; oldest first within a level.
/// Flags that time raises (persistent side effects, missed sessions) appear by this read.
#[utoipa::path(
    tag = "flags",
    security(("bearer" = [])),
    params(FlagQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the worklist", body = Paged<FlagResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/flags")]
pub async fn list_flags(
    caller: Caller,
    query: web::Query<FlagQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let page = page.page()?;
    // The worklist's cursor carries the level rank with the id (`rank:id`).
    let well_formed = page.after.as_ref().is_none_or(|(_, key)| {
        key.split_once(':')
            .is_some_and(|(rank, _)| rank.parse::<i32>().is_ok())
    });
    if !well_formed {
        return Err(ApiError::invalid(
            "cursor",
            "is not a cursor this server issued",
        ));
    }
    let fetch = page.clone();
    let query = query.into_inner();
    let filter = FlagFilter {
        status: query.status.map(|s| s.as_str().to_owned()),
        level: query.level.map(|l| l.as_str().to_owned()),
        kind: query.kind.map(|k| k.as_str().to_owned()),
        patient_id: query.patient_id.map(|p| p.to_string()),
    };
    let rows = db
        .transaction(move |conn| -> Result<_, StoreError> {
            evaluation::refresh_time_based(conn, &clinical, &scope)?;
            let rows = flags::list(conn, &scope, &filter, &fetch)?;
            // The worklist shows clinical data (an item-9 answer, a blood pressure): one audit
            // event for each patient on the page.
            let shown = usize::try_from(fetch.limit - 1).unwrap_or(0);
            let mut patients: Vec<&str> = rows
                .iter()
                .take(shown)
                .map(|r| r.patient_id.as_str())
                .collect();
            patients.sort_unstable();
            patients.dedup();
            for patient in patients {
                let event =
                    patient_event(&ctx, &caller, "flags_listed", "patient", patient, patient);
                audit::record(conn, &event)?;
            }
            Ok(rows)
        })
        .await?;
    let keys: Vec<String> = rows
        .iter()
        .map(|r| format!("{}:{}", r.level_rank, r.id))
        .collect();
    let keyed: Vec<(FlagRow, String)> = rows.into_iter().zip(keys).collect();
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        keyed,
        &page,
        |(r, key)| (r.raised_at, key.as_str()),
        |(r, _)| FlagResponse::from(r),
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "Called the patient; safety plan reviewed, crisis line given."}))]
pub struct AcknowledgeRequest {
    /// What was done: 1 to 2000 characters.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub note: String,
}

/// Acknowledges a flag with a note of what was done (audited). An acknowledged flag is
/// never reopened.
#[utoipa::path(
    tag = "flags",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The flag's id")),
    request_body = AcknowledgeRequest,
    responses(
        (status = 200, description = "Acknowledged", body = FlagResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/flags/{id}/acknowledge")]
pub async fn acknowledge_flag(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<AcknowledgeRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let note = text::required("note", &body.note, Shape::Note, 2000)?;
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| {
            let flag = flags::find(conn, &scope, &id)?;
            if !flags::acknowledge(
                conn,
                &id,
                &caller.user_id,
                &note,
                clock::to_db(clock::now()),
            )? {
                return Err(ApiError::Conflict(
                    "the flag was acknowledged already".into(),
                ));
            }
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "flag_acknowledged",
                    "flag",
                    &id,
                    &flag.patient_id,
                ),
            )?;
            Ok(flags::find(conn, &scope, &id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(FlagResponse::from(row)))
}

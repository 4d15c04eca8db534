//! Side-effect reports (domain.md §4). Clinicians report for their patients; patients report
//! their own and mark them resolved.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::assessments::rater;
use crate::api::context::RequestContext;
use crate::api::flags::FlagResponse;
use crate::api::idempotent::created_or_replayed;
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::{
    body_hash, carries_flags, created_or_replayed_response, created_with_flags, list_of_patient,
    mark_entered_in_error, one_with_flags, optional, patched, patient_event, read_one,
    rules_broken, CorrectionRequest, MergePatch, RecordQuery,
};
use crate::api::users::if_match;
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::instrument::Rater;
use crate::domain::side_effect::{Effect, ReportContext, Severity, SideEffectReport};
use crate::error::ApiError;
use crate::evaluation;
use crate::store::scope::Scope;
use crate::store::side_effects::{self, SideEffectRow};
use crate::store::{audit, patients, sessions, Db, DbConnection};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a", "effect": "nausea", "severity": "moderate",
    "onset_at": "2026-09-30T09:30:00Z", "resolved_at": "2026-09-30T13:00:00Z"}))]
pub struct CreateSideEffectRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    /// The session; when absent, the patient's most recent completed session.
    pub session_id: Option<Uuid>,
    pub effect: Effect,
    /// A patient may report at most `severe`.
    pub severity: Severity,
    /// Not before the session's start, not more than 5 minutes in the future.
    pub onset_at: DateTime<Utc>,
    /// Not before onset_at, not more than 5 minutes in the future.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Required for `other`. Never exported to research.
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": [], "id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "effect": "nausea", "severity": "moderate",
    "onset_at": "2026-09-30T09:30:00Z", "resolved_at": null, "reported_by": "patient", "note": null,
    "deleted": false, "deleted_reason": null,
    "created_at": "2026-09-30T09:35:00Z", "updated_at": "2026-09-30T09:35:00Z", "version": 1}))]
pub struct SideEffectResponse {
    /// The flags this record raised (domain.md §7), open or acknowledged.
    pub flags: Vec<FlagResponse>,
    pub id: String,
    pub patient_id: String,
    pub session_id: String,
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Set by the server from the reporter's role.
    pub reported_by: Rater,
    pub note: Option<String>,
    pub deleted: bool,
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

fn report_of(row: &SideEffectRow) -> SideEffectReport {
    SideEffectReport {
        effect: row.effect.parse().unwrap_or(Effect::Other),
        severity: row.severity.parse().unwrap_or(Severity::Mild),
        onset_at: clock::from_db(row.onset_at),
        resolved_at: row.resolved_at.map(clock::from_db),
        reported_by: row.reported_by.parse().unwrap_or(Rater::Clinician),
        note: row.note.clone(),
    }
}

impl From<SideEffectRow> for SideEffectResponse {
    fn from(row: SideEffectRow) -> Self {
        let report = report_of(&row);
        Self {
            flags: vec![],
            effect: report.effect,
            severity: report.severity,
            onset_at: report.onset_at,
            resolved_at: report.resolved_at,
            reported_by: report.reported_by,
            deleted: row.deleted_at.is_some(),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            id: row.id,
            patient_id: row.patient_id,
            session_id: row.session_id,
            note: row.note,
            deleted_reason: row.deleted_reason,
            version: row.version,
        }
    }
}

fn as_request(row: &SideEffectRow) -> CreateSideEffectRequest {
    let report = report_of(row);
    CreateSideEffectRequest {
        id: None,
        session_id: row.session_id.parse().ok(),
        effect: report.effect,
        severity: report.severity,
        onset_at: report.onset_at,
        resolved_at: report.resolved_at,
        note: report.note,
    }
}

fn build(
    conn: &mut DbConnection,
    body: &CreateSideEffectRequest,
    id: String,
    patient_id: &str,
    reporter: (Rater, &str),
    existing: Option<&SideEffectRow>,
) -> Result<SideEffectRow, ApiError> {
    let now = clock::now();
    let own = Scope::Patient(patient_id.to_owned());
    let session = match body.session_id {
        Some(session) => optional(sessions::find(conn, &own, &session.to_string()))?
            .filter(|s| s.deleted_at.is_none())
            .ok_or_else(|| ApiError::invalid("session_id", "no such session for this patient"))?,
        None => sessions::latest_completed_before(conn, patient_id, clock::to_db(now))?
            .ok_or_else(|| {
                ApiError::invalid(
                    "session_id",
                    "the patient has no completed session to attach it to",
                )
            })?,
    };
    let (reported_by, recorded_by) = existing.map_or(reporter, |e| {
        (report_of(e).reported_by, e.recorded_by.as_str())
    });
    let report = SideEffectReport::new(
        SideEffectReport {
            effect: body.effect,
            severity: body.severity,
            onset_at: body.onset_at,
            resolved_at: body.resolved_at,
            reported_by,
            note: body.note.clone(),
        },
        &ReportContext {
            session_started_at: clock::from_db(session.started_at),
            now,
        },
    )
    .map_err(rules_broken)?;
    let db_now = clock::to_db(now);
    Ok(SideEffectRow {
        id,
        patient_id: patient_id.to_owned(),
        session_id: session.id,
        effect: report.effect.as_str().to_owned(),
        severity: report.severity.as_str().to_owned(),
        onset_at: clock::to_db(report.onset_at),
        resolved_at: report.resolved_at.map(clock::to_db),
        reported_by: report.reported_by.as_str().to_owned(),
        note: report.note,
        recorded_by: recorded_by.to_owned(),
        body_hash: existing.map_or_else(|| body_hash(body), |e| e.body_hash.clone()),
        created_at: existing.map_or(db_now, |e| e.created_at),
        updated_at: db_now,
        version: existing.map_or(1, |e| e.version + 1),
        deleted_at: None,
        deleted_reason: None,
    })
}

/// Reports a side effect for a patient.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    request_body = CreateSideEffectRequest,
    responses(
        (status = 201, description = "Created", body = SideEffectResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = SideEffectResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients/{id}/side-effects")]
pub async fn create_side_effect(
    caller: Caller,
    patient: web::Path<Uuid>,
    body: web::Json<CreateSideEffectRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    report(
        clinical,
        caller,
        patient.into_inner().to_string(),
        body.into_inner(),
        ctx,
        &db,
    )
    .await
}

/// Reports one of the caller's own side effects (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = CreateSideEffectRequest,
    responses(
        (status = 201, description = "Created", body = SideEffectResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = SideEffectResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/me/side-effects")]
pub async fn create_my_side_effect(
    caller: Caller,
    body: web::Json<CreateSideEffectRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    report(clinical, caller, patient_id, body.into_inner(), ctx, &db).await
}

async fn report(
    clinical: ClinicalSettings,
    caller: Caller,
    patient_id: String,
    body: CreateSideEffectRequest,
    ctx: RequestContext,
    db: &Db,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let response = db
        .transaction(move |conn| {
            patients::find(conn, &scope, &patient_id)?;
            let row = build(
                conn,
                &body,
                id.clone(),
                &patient_id,
                (rater(&caller), &caller.user_id),
                None,
            )?;
            let creation = created_or_replayed(
                conn,
                |conn| optional(side_effects::find(conn, &scope, &id)),
                |found| found.body_hash == row.body_hash && found.patient_id == patient_id,
                |conn| {
                    side_effects::insert(conn, &row)?;
                    evaluation::refresh(conn, &clinical, &patient_id)?;
                    audit::record(
                        conn,
                        &patient_event(
                            &ctx,
                            &caller,
                            "side_effect_created",
                            "side_effect",
                            &id,
                            &patient_id,
                        ),
                    )
                },
            )?;
            Ok::<_, ApiError>(created_with_flags::<_, SideEffectResponse>(conn, creation)?)
        })
        .await?;
    Ok(created_or_replayed_response(response))
}

/// Lists a patient's side effects by onset, or by change with `updated_since`.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of side effects", body = Paged<SideEffectResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/side-effects")]
pub async fn list_side_effects(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    list_of_patient::<_, SideEffectResponse>(
        caller,
        patient.into_inner().to_string(),
        (&query, &page),
        ctx,
        &db,
        "side_effects_listed",
        side_effects::list,
    )
    .await
}

/// The caller's own side effects (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's side effects", body = Paged<SideEffectResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/me/side-effects")]
pub async fn list_my_side_effects(
    caller: Caller,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    list_of_patient::<_, SideEffectResponse>(
        caller,
        patient_id,
        (&query, &page),
        ctx,
        &db,
        "side_effects_listed",
        side_effects::list,
    )
    .await
}

/// One side effect.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The side effect's id")),
    responses(
        (status = 200, description = "The side effect", body = SideEffectResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/side-effects/{id}")]
pub async fn get_side_effect(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let response: SideEffectResponse = read_one(
        caller,
        id.into_inner().to_string(),
        ctx,
        &db,
        ("side_effect_read", "side_effect"),
        side_effects::find,
    )
    .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Changes a side effect: a JSON merge patch (RFC 7396). A patient may change only
/// `resolved_at` of their own reports.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The side effect's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"resolved_at": "2026-09-30T13:00:00Z"})),
    responses(
        (status = 200, description = "The changed side effect", body = SideEffectResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/side-effects/{id}")]
pub async fn update_side_effect(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<MergePatch>,
    req: HttpRequest,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinical_scope()?;
    let expected = if_match(&req)?;
    if rater(&caller) == Rater::Patient {
        let other = body.fields().find(|k| k.as_str() != "resolved_at").cloned();
        if let Some(field) = other {
            return Err(ApiError::invalid(
                field,
                "a patient may change only resolved_at",
            ));
        }
    }
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| {
            let current = side_effects::find(conn, &scope, &id)?;
            if expected.is_some_and(|v| v != current.version) {
                return Err(ApiError::PreconditionFailed);
            }
            if current.deleted_at.is_some() {
                return Err(ApiError::Conflict(
                    "the report was entered in error and cannot change".into(),
                ));
            }
            let request = patched(&as_request(&current), &body)?;
            let row = build(
                conn,
                &request,
                id.clone(),
                &current.patient_id,
                (rater(&caller), &caller.user_id),
                Some(&current),
            )?;
            side_effects::replace(conn, &row, current.version)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "side_effect_updated",
                    "side_effect",
                    &id,
                    &current.patient_id,
                ),
            )?;
            evaluation::refresh(conn, &clinical, &current.patient_id)?;
            let row = side_effects::find(conn, &scope, &id)?;
            Ok(one_with_flags(conn, SideEffectResponse::from(row))?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", row.version),
        ))
        .json(row))
}

/// Marks a side effect entered in error: kept and audited, excluded from every figure, and
/// returned to sync as deleted.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The side effect's id")),
    request_body = CorrectionRequest,
    responses(
        (status = 200, description = "The side effect, now marked deleted", body = SideEffectResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[delete("/v1/side-effects/{id}")]
pub async fn delete_side_effect(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<CorrectionRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let reason = body.reason()?;
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| {
            let row = mark_entered_in_error(
                conn,
                reason,
                |conn| side_effects::find(conn, &scope, &id),
                side_effects::replace,
                |patient| {
                    patient_event(
                        &ctx,
                        &caller,
                        "side_effect_entered_in_error",
                        "side_effect",
                        &id,
                        patient,
                    )
                },
            )?;
            evaluation::refresh(conn, &clinical, &row.patient_id)?;
            one_with_flags(conn, SideEffectResponse::from(row))
        })
        .await?;
    Ok(HttpResponse::Ok().json(row))
}

carries_flags!(SideEffectResponse);

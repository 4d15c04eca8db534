//! Sessions (infusions) with dose and vital signs (domain.md §3). Clinicians record them;
//! patients read their own.

use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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
use crate::domain::treatment::{
    Administration, Reading, Route, Sedation, SessionStatus, VitalSigns,
};
use crate::error::ApiError;
use crate::evaluation;
use crate::store::sessions::{self, SessionRow};
use crate::store::{audit, courses, patients, Db, DbConnection};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"systolic": 128, "diastolic": 82, "heart_rate": 74, "spo2": 98}))]
pub struct Vitals {
    /// 60–260 mmHg.
    pub systolic: Option<i32>,
    /// 30–160 mmHg, below systolic.
    pub diastolic: Option<i32>,
    /// 30–220 beats per minute.
    pub heart_rate: Option<i32>,
    /// 50–100 %.
    pub spo2: Option<i32>,
}

impl From<Vitals> for VitalSigns {
    fn from(v: Vitals) -> Self {
        VitalSigns {
            systolic: v.systolic,
            diastolic: v.diastolic,
            heart_rate: v.heart_rate,
            spo2: v.spo2,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"minutes_after_start": 40, "systolic": 152, "diastolic": 94, "heart_rate": 88, "spo2": 97}))]
pub struct ReadingInput {
    /// Minutes after the session's start (0–1440), e.g. the 40-minute peak.
    pub minutes_after_start: i32,
    pub systolic: Option<i32>,
    pub diastolic: Option<i32>,
    pub heart_rate: Option<i32>,
    pub spo2: Option<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "route": "iv", "started_at": "2026-09-30T09:00:00Z",
    "ended_at": "2026-09-30T09:40:00Z", "dose_mg_per_kg": 0.5, "weight_kg": 72.5, "status": "completed", "charge_cents": 40000,
    "pre": {"systolic": 128, "diastolic": 82, "heart_rate": 74, "spo2": 98},
    "post": {"systolic": 134, "diastolic": 85, "heart_rate": 78, "spo2": 98},
    "readings": [{"minutes_after_start": 40, "systolic": 152, "diastolic": 94, "heart_rate": 88, "spo2": 97}],
    "monitoring_minutes": 120, "sedation": "mild", "respiratory_concern": false}))]
pub struct CreateSessionRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    /// The course; when absent, the patient's most recent open course (422 when none).
    pub course_id: Option<Uuid>,
    pub route: Route,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// 0.01 to 5 mg/kg.
    #[schema(minimum = 0.01, maximum = 5)]
    pub dose_mg_per_kg: f64,
    /// 20–350 kg.
    pub weight_kg: f64,
    #[serde(default = "completed")]
    pub status: SessionStatus,
    /// Required when, and only when, the status is `held`.
    #[schema(max_length = 500, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub hold_reason: Option<String>,
    pub charge_cents: Option<i64>,
    /// Vital signs before the dose.
    pub pre: Option<Vitals>,
    /// Vital signs at discharge.
    pub post: Option<Vitals>,
    /// Readings during monitoring.
    #[serde(default)]
    pub readings: Vec<ReadingInput>,
    pub monitoring_minutes: Option<i32>,
    pub sedation: Option<Sedation>,
    #[serde(default)]
    pub respiratory_concern: bool,
}

fn completed() -> SessionStatus {
    SessionStatus::Completed
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": [], "id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "route": "iv", "started_at": "2026-09-30T09:00:00Z",
    "ended_at": "2026-09-30T09:40:00Z", "dose_mg_per_kg": 0.5, "weight_kg": 72.5, "total_dose_mg": 36.3, "status": "completed",
    "hold_reason": null, "charge_cents": 40000, "pre": {"systolic": 128, "diastolic": 82, "heart_rate": 74, "spo2": 98},
    "post": {"systolic": 134, "diastolic": 85, "heart_rate": 78, "spo2": 98}, "readings": [], "monitoring_minutes": 120,
    "sedation": "mild", "respiratory_concern": false, "deleted": false, "deleted_reason": null,
    "created_at": "2026-09-30T09:45:00Z", "updated_at": "2026-09-30T09:45:00Z", "version": 1}))]
pub struct SessionResponse {
    /// The flags this record raised (domain.md §7), open or acknowledged.
    pub flags: Vec<FlagResponse>,
    pub id: String,
    pub patient_id: String,
    pub course_id: String,
    pub route: Route,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub dose_mg_per_kg: f64,
    pub weight_kg: f64,
    /// dose_mg_per_kg × weight_kg, to 0.1 mg; computed by the server.
    pub total_dose_mg: f64,
    pub status: SessionStatus,
    pub hold_reason: Option<String>,
    pub charge_cents: Option<i64>,
    pub pre: Vitals,
    pub post: Vitals,
    pub readings: Vec<ReadingInput>,
    pub monitoring_minutes: Option<i32>,
    pub sedation: Option<Sedation>,
    pub respiratory_concern: bool,
    /// Entered in error: kept, but excluded from every outcome and research figure.
    pub deleted: bool,
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<SessionRow> for SessionResponse {
    fn from(row: SessionRow) -> Self {
        Self {
            flags: vec![],
            route: row.route.parse().unwrap_or(Route::Iv),
            status: row.status.parse().unwrap_or(SessionStatus::Completed),
            pre: Vitals {
                systolic: row.pre_systolic,
                diastolic: row.pre_diastolic,
                heart_rate: row.pre_heart_rate,
                spo2: row.pre_spo2,
            },
            post: Vitals {
                systolic: row.post_systolic,
                diastolic: row.post_diastolic,
                heart_rate: row.post_heart_rate,
                spo2: row.post_spo2,
            },
            readings: serde_json::from_str(&row.readings).unwrap_or_default(),
            sedation: row.sedation.as_deref().and_then(|s| s.parse().ok()),
            deleted: row.deleted_at.is_some(),
            started_at: clock::from_db(row.started_at),
            ended_at: row.ended_at.map(clock::from_db),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            id: row.id,
            patient_id: row.patient_id,
            course_id: row.course_id,
            dose_mg_per_kg: row.dose_mg_per_kg,
            weight_kg: row.weight_kg,
            total_dose_mg: row.total_dose_mg,
            hold_reason: row.hold_reason,
            charge_cents: row.charge_cents,
            monitoring_minutes: row.monitoring_minutes,
            respiratory_concern: row.respiratory_concern,
            deleted_reason: row.deleted_reason,
            version: row.version,
        }
    }
}

fn as_request(row: &SessionRow) -> CreateSessionRequest {
    let response = SessionResponse::from(row.clone());
    CreateSessionRequest {
        id: None,
        course_id: response.course_id.parse().ok(),
        route: response.route,
        started_at: response.started_at,
        ended_at: response.ended_at,
        dose_mg_per_kg: response.dose_mg_per_kg,
        weight_kg: response.weight_kg,
        status: response.status,
        hold_reason: response.hold_reason,
        charge_cents: response.charge_cents,
        pre: Some(response.pre).filter(|v| *v != Vitals::default()),
        post: Some(response.post).filter(|v| *v != Vitals::default()),
        readings: response.readings,
        monitoring_minutes: response.monitoring_minutes,
        sedation: response.sedation,
        respiratory_concern: response.respiratory_concern,
    }
}

/// The session a request describes, before the rules of §3 are checked.
pub fn administration(body: &CreateSessionRequest) -> Administration {
    Administration {
        route: body.route,
        started_at: body.started_at,
        ended_at: body.ended_at,
        dose_mg_per_kg: body.dose_mg_per_kg,
        weight_kg: body.weight_kg,
        status: body.status,
        hold_reason: body.hold_reason.clone(),
        charge_cents: body.charge_cents,
        pre: body.pre.unwrap_or_default().into(),
        post: body.post.unwrap_or_default().into(),
        readings: body
            .readings
            .iter()
            .map(|r| Reading {
                minutes_after_start: r.minutes_after_start,
                vitals: VitalSigns {
                    systolic: r.systolic,
                    diastolic: r.diastolic,
                    heart_rate: r.heart_rate,
                    spo2: r.spo2,
                },
            })
            .collect(),
        monitoring_minutes: body.monitoring_minutes,
        sedation: body.sedation,
        respiratory_concern: body.respiratory_concern,
    }
}

/// Checks the request against §3 and finds its course; the row is ready to store.
fn build(
    conn: &mut DbConnection,
    body: &CreateSessionRequest,
    id: String,
    patient_id: &str,
    recorded_by: &str,
    existing: Option<&SessionRow>,
) -> Result<SessionRow, ApiError> {
    let now = clock::now();
    let administration = administration(body).check(now).map_err(rules_broken)?;
    let course_id = match body.course_id {
        Some(course) => {
            let course = course.to_string();
            let belongs = courses::find(
                conn,
                &crate::store::scope::Scope::Patient(patient_id.to_owned()),
                &course,
            );
            optional(belongs)?
                .ok_or_else(|| ApiError::invalid("course_id", "no such course for this patient"))?
                .id
        }
        None => {
            courses::latest_open(conn, patient_id)?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "course_id",
                        "the patient has no open course; plan one first",
                    )
                })?
                .id
        }
    };
    let db_now = clock::to_db(now);
    let (pre, post) = (administration.pre, administration.post);
    Ok(SessionRow {
        id,
        patient_id: patient_id.to_owned(),
        course_id,
        route: administration.route.as_str().to_owned(),
        started_at: clock::to_db(administration.started_at),
        ended_at: administration.ended_at.map(clock::to_db),
        dose_mg_per_kg: administration.dose_mg_per_kg,
        weight_kg: administration.weight_kg,
        total_dose_mg: administration.total_dose_mg(),
        status: administration.status.as_str().to_owned(),
        hold_reason: administration.hold_reason.clone(),
        charge_cents: administration.charge_cents,
        pre_systolic: pre.systolic,
        pre_diastolic: pre.diastolic,
        pre_heart_rate: pre.heart_rate,
        pre_spo2: pre.spo2,
        post_systolic: post.systolic,
        post_diastolic: post.diastolic,
        post_heart_rate: post.heart_rate,
        post_spo2: post.spo2,
        readings: serde_json::to_string(&body.readings).unwrap_or_else(|_| "[]".into()),
        monitoring_minutes: administration.monitoring_minutes,
        sedation: administration.sedation.map(|s| s.as_str().to_owned()),
        respiratory_concern: administration.respiratory_concern,
        recorded_by: existing.map_or_else(|| recorded_by.to_owned(), |s| s.recorded_by.clone()),
        body_hash: existing.map_or_else(|| body_hash(body), |s| s.body_hash.clone()),
        created_at: existing.map_or(db_now, |s| s.created_at),
        updated_at: db_now,
        version: existing.map_or(1, |s| s.version + 1),
        deleted_at: None,
        deleted_reason: None,
    })
}

/// Records a session for a patient of the clinician's clinic.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Created", body = SessionResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = SessionResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients/{id}/sessions")]
pub async fn create_session(
    caller: Caller,
    patient: web::Path<Uuid>,
    body: web::Json<CreateSessionRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let patient_id = patient.into_inner().to_string();
    let body = body.into_inner();
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let response = db
        .transaction(move |conn| {
            patients::find(conn, &scope, &patient_id)?;
            let row = build(conn, &body, id.clone(), &patient_id, &caller.user_id, None)?;
            let creation = created_or_replayed(
                conn,
                |conn| optional(sessions::find(conn, &scope, &id)),
                |found| found.body_hash == row.body_hash && found.patient_id == patient_id,
                |conn| {
                    sessions::insert(conn, &row)?;
                    evaluation::refresh(conn, &clinical, &patient_id)?;
                    audit::record(
                        conn,
                        &patient_event(
                            &ctx,
                            &caller,
                            "session_created",
                            "session",
                            &id,
                            &patient_id,
                        ),
                    )
                },
            )?;
            Ok::<_, ApiError>(created_with_flags::<_, SessionResponse>(conn, creation)?)
        })
        .await?;
    Ok(created_or_replayed_response(response))
}

/// Lists a patient's sessions by start time, or by change with `updated_since`.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of sessions", body = Paged<SessionResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/sessions")]
pub async fn list_sessions(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    list_of_patient::<_, SessionResponse>(
        caller,
        patient.into_inner().to_string(),
        (&query, &page),
        ctx,
        &db,
        "sessions_listed",
        sessions::list,
    )
    .await
}

/// The caller's own sessions (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's sessions", body = Paged<SessionResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/me/sessions")]
pub async fn list_my_sessions(
    caller: Caller,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    list_of_patient::<_, SessionResponse>(
        caller,
        patient_id,
        (&query, &page),
        ctx,
        &db,
        "sessions_listed",
        sessions::list,
    )
    .await
}

/// One session.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session", body = SessionResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/sessions/{id}")]
pub async fn get_session(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let response: SessionResponse = read_one(
        caller,
        id.into_inner().to_string(),
        ctx,
        &db,
        ("session_read", "session"),
        sessions::find,
    )
    .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Changes a session: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The session's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"post": {"systolic": 138, "diastolic": 86}})),
    responses(
        (status = 200, description = "The changed session", body = SessionResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/sessions/{id}")]
pub async fn update_session(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<MergePatch>,
    req: HttpRequest,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let expected = if_match(&req)?;
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| {
            let current = sessions::find(conn, &scope, &id)?;
            if expected.is_some_and(|v| v != current.version) {
                return Err(ApiError::PreconditionFailed);
            }
            if current.deleted_at.is_some() {
                return Err(ApiError::Conflict(
                    "the session was entered in error and cannot change".into(),
                ));
            }
            let request = patched(&as_request(&current), &body)?;
            let row = build(
                conn,
                &request,
                id.clone(),
                &current.patient_id,
                &caller.user_id,
                Some(&current),
            )?;
            sessions::replace(conn, &row, current.version)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "session_updated",
                    "session",
                    &id,
                    &current.patient_id,
                ),
            )?;
            evaluation::refresh(conn, &clinical, &current.patient_id)?;
            let row = sessions::find(conn, &scope, &id)?;
            Ok(one_with_flags(conn, SessionResponse::from(row))?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", row.version),
        ))
        .json(row))
}

/// Marks a session entered in error: kept and audited, excluded from every outcome and
/// research figure, and returned to sync as deleted.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    request_body = CorrectionRequest,
    responses(
        (status = 200, description = "The session, now marked deleted", body = SessionResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[delete("/v1/sessions/{id}")]
pub async fn delete_session(
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
                |conn| sessions::find(conn, &scope, &id),
                sessions::replace,
                |patient| {
                    patient_event(
                        &ctx,
                        &caller,
                        "session_entered_in_error",
                        "session",
                        &id,
                        patient,
                    )
                },
            )?;
            evaluation::refresh(conn, &clinical, &row.patient_id)?;
            one_with_flags(conn, SessionResponse::from(row))
        })
        .await?;
    Ok(HttpResponse::Ok().json(row))
}

carries_flags!(SessionResponse);

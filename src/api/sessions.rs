//! Sessions (infusions) with dose and vital signs (domain.md §3), on the wire: clinicians
//! record them; patients read their own.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::{Body, IfMatch, IfMatchHeader, Patch};
use crate::api::flags::FlagResponse;
use crate::api::wire::{
    body_hash, created, list_of, patched, versioned, CorrectionRequest, PageQuery, Paged,
    Patchable, RecordQuery,
};
use crate::call::Call;
use crate::clock;
use crate::domain::treatment::{
    Administration, Reading, Route, Sedation, SessionStatus, VitalSigns,
};
use crate::error::responses::{Change, Correct, CreateUnder, List, Read};
use crate::error::ApiError;
use crate::records::sessions::SessionDraft;
use crate::records::{self, id_for, Recorded};
use crate::store::sessions::SessionRow;

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
    pub id: Uuid,
    pub patient_id: Uuid,
    pub course_id: Uuid,
    pub route: Route,
    pub started_at: DateTime<Utc>,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    pub dose_mg_per_kg: f64,
    pub weight_kg: f64,
    /// dose_mg_per_kg × weight_kg, to 0.1 mg; computed by the server.
    pub total_dose_mg: f64,
    pub status: SessionStatus,
    #[schema(required = true)]
    pub hold_reason: Option<String>,
    #[schema(required = true)]
    pub charge_cents: Option<i64>,
    pub pre: Vitals,
    pub post: Vitals,
    pub readings: Vec<ReadingInput>,
    #[schema(required = true)]
    pub monitoring_minutes: Option<i32>,
    #[schema(required = true)]
    pub sedation: Option<Sedation>,
    pub respiratory_concern: bool,
    /// Entered in error: kept, but excluded from every outcome and research figure.
    pub deleted: bool,
    #[schema(required = true)]
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
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

impl From<VitalSigns> for Vitals {
    fn from(v: VitalSigns) -> Self {
        Vitals {
            systolic: v.systolic,
            diastolic: v.diastolic,
            heart_rate: v.heart_rate,
            spo2: v.spo2,
        }
    }
}

impl From<ReadingInput> for Reading {
    fn from(r: ReadingInput) -> Self {
        Reading {
            minutes_after_start: r.minutes_after_start,
            vitals: VitalSigns {
                systolic: r.systolic,
                diastolic: r.diastolic,
                heart_rate: r.heart_rate,
                spo2: r.spo2,
            },
        }
    }
}

impl From<Reading> for ReadingInput {
    fn from(r: Reading) -> Self {
        ReadingInput {
            minutes_after_start: r.minutes_after_start,
            systolic: r.vitals.systolic,
            diastolic: r.vitals.diastolic,
            heart_rate: r.vitals.heart_rate,
            spo2: r.vitals.spo2,
        }
    }
}

impl CreateSessionRequest {
    /// The session the request describes, before the rules of §3 are checked.
    pub fn draft(self) -> SessionDraft {
        SessionDraft {
            course: self.course_id.map(Into::into),
            administration: Administration {
                route: self.route,
                started_at: self.started_at,
                ended_at: self.ended_at,
                dose_mg_per_kg: self.dose_mg_per_kg,
                weight_kg: self.weight_kg,
                status: self.status,
                hold_reason: self.hold_reason,
                charge_cents: self.charge_cents,
                pre: self.pre.unwrap_or_default().into(),
                post: self.post.unwrap_or_default().into(),
                readings: self.readings.into_iter().map(Into::into).collect(),
                monitoring_minutes: self.monitoring_minutes,
                sedation: self.sedation,
                respiratory_concern: self.respiratory_concern,
            },
        }
    }
}

/// The request form of a stored session, which a merge patch changes.
impl Patchable for CreateSessionRequest {
    const PATCH: &'static str = "SessionPatch";
}

impl From<&SessionRow> for CreateSessionRequest {
    fn from(row: &SessionRow) -> Self {
        let a = row.administration();
        let given = |v: VitalSigns| (v != VitalSigns::default()).then(|| v.into());
        CreateSessionRequest {
            id: None,
            course_id: Some(row.course_id.as_uuid()),
            route: a.route,
            started_at: a.started_at,
            ended_at: a.ended_at,
            dose_mg_per_kg: a.dose_mg_per_kg,
            weight_kg: a.weight_kg,
            status: a.status,
            hold_reason: a.hold_reason,
            charge_cents: a.charge_cents,
            pre: given(a.pre),
            post: given(a.post),
            readings: a.readings.into_iter().map(Into::into).collect(),
            monitoring_minutes: a.monitoring_minutes,
            sedation: a.sedation,
            respiratory_concern: a.respiratory_concern,
        }
    }
}

impl From<Recorded<SessionRow>> for SessionResponse {
    fn from(
        Recorded {
            record: row, flags, ..
        }: Recorded<SessionRow>,
    ) -> Self {
        let a = row.administration();
        Self {
            flags: flags.into_iter().map(Into::into).collect(),
            id: row.id.as_uuid(),
            patient_id: row.patient_id.as_uuid(),
            course_id: row.course_id.as_uuid(),
            route: a.route,
            started_at: a.started_at,
            ended_at: a.ended_at,
            dose_mg_per_kg: a.dose_mg_per_kg,
            weight_kg: a.weight_kg,
            total_dose_mg: row.total_dose_mg,
            status: a.status,
            hold_reason: a.hold_reason,
            charge_cents: a.charge_cents,
            pre: a.pre.into(),
            post: a.post.into(),
            readings: a.readings.into_iter().map(Into::into).collect(),
            monitoring_minutes: a.monitoring_minutes,
            sedation: a.sedation,
            respiratory_concern: a.respiratory_concern,
            deleted: row.deleted_at.is_some(),
            deleted_reason: row.deleted_reason,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
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
        CreateUnder,
    )
)]
#[post("/v1/patients/{id}/sessions")]
pub async fn create_session(
    call: Call,
    patient: web::Path<Uuid>,
    body: Body<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let patient = patient.into_inner().into();
    let made = records::create::<SessionRow>(&call, patient, id, body.draft(), hash).await?;
    Ok(created(made, SessionResponse::from))
}

/// Lists a patient's sessions by start time, or by change with `updated_since`.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of sessions", body = Paged<SessionResponse>),
        Read,
    )
)]
#[get("/v1/patients/{id}/sessions")]
pub async fn list_sessions(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient.into_inner().into();
    list_of::<SessionRow, SessionResponse>(&call, patient, &query, &page).await
}

/// The caller's own sessions (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's sessions", body = Paged<SessionResponse>),
        List,
    )
)]
#[get("/v1/me/sessions")]
pub async fn list_my_sessions(
    call: Call,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    list_of::<SessionRow, SessionResponse>(&call, patient, &query, &page).await
}

/// One session.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id")),
    responses(
        (status = 200, description = "The session", body = SessionResponse,
            headers(("ETag" = String, description = "The session's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/sessions/{id}")]
pub async fn get_session(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let session = records::read::<SessionRow>(&call, id.into_inner().into()).await?;
    Ok(versioned(
        session.record.version,
        SessionResponse::from(session),
    ))
}

/// Changes a session: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "sessions",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The session's id"), IfMatchHeader),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"post": {"systolic": 138, "diastolic": 86}})),
    responses(
        (status = 200, description = "The changed session", body = SessionResponse,
            headers(("ETag" = String, description = "The session's new version"))),
        Change,
    )
)]
#[patch("/v1/sessions/{id}")]
pub async fn update_session(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    patch: Patch<CreateSessionRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = move |current: &SessionRow| {
        Ok(patched(&CreateSessionRequest::from(current), &patch)?.draft())
    };
    let id = id.into_inner().into();
    let session = records::update::<SessionRow>(&call, id, expected, change).await?;
    Ok(versioned(
        session.record.version,
        SessionResponse::from(session),
    ))
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
        Correct,
    )
)]
#[delete("/v1/sessions/{id}")]
pub async fn delete_session(
    call: Call,
    id: web::Path<Uuid>,
    body: Body<CorrectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let session =
        records::correct::<SessionRow>(&call, id.into_inner().into(), body.reason()?).await?;
    Ok(HttpResponse::Ok().json(SessionResponse::from(session)))
}

//! Side-effect reports (domain.md §4), on the wire. Clinicians report for their patients;
//! patients report their own and mark them resolved.

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
use crate::domain::ids::PatientId;
use crate::domain::instrument::Rater;
use crate::domain::side_effect::{Effect, Severity, SideEffectReport};
use crate::error::responses::{Change, Correct, Create, CreateUnder, List, Read};
use crate::error::ApiError;
use crate::records::side_effects::SideEffectDraft;
use crate::records::{self, id_for, Recorded};
use crate::store::side_effects::SideEffectRow;

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
    pub id: Uuid,
    pub patient_id: Uuid,
    pub session_id: Uuid,
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: DateTime<Utc>,
    #[schema(required = true)]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Set by the server from the reporter's role.
    pub reported_by: Rater,
    #[schema(required = true)]
    pub note: Option<String>,
    pub deleted: bool,
    #[schema(required = true)]
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl CreateSideEffectRequest {
    /// The report the request describes; the reporter is the server's to set.
    pub fn draft(self) -> SideEffectDraft {
        SideEffectDraft {
            session: self.session_id.map(Into::into),
            report: SideEffectReport {
                effect: self.effect,
                severity: self.severity,
                onset_at: self.onset_at,
                resolved_at: self.resolved_at,
                reported_by: Rater::Clinician,
                note: self.note,
            },
        }
    }
}

/// The request form of a stored report, which a merge patch changes.
impl Patchable for CreateSideEffectRequest {
    const PATCH: &'static str = "SideEffectPatch";
}

impl From<&SideEffectRow> for CreateSideEffectRequest {
    fn from(row: &SideEffectRow) -> Self {
        let report = row.report();
        CreateSideEffectRequest {
            id: None,
            session_id: Some(row.session_id.as_uuid()),
            effect: report.effect,
            severity: report.severity,
            onset_at: report.onset_at,
            resolved_at: report.resolved_at,
            note: report.note,
        }
    }
}

impl From<Recorded<SideEffectRow>> for SideEffectResponse {
    fn from(
        Recorded {
            record: row, flags, ..
        }: Recorded<SideEffectRow>,
    ) -> Self {
        let report = row.report();
        Self {
            flags: flags.into_iter().map(Into::into).collect(),
            id: row.id.as_uuid(),
            patient_id: row.patient_id.as_uuid(),
            session_id: row.session_id.as_uuid(),
            effect: report.effect,
            severity: report.severity,
            onset_at: report.onset_at,
            resolved_at: report.resolved_at,
            reported_by: report.reported_by,
            note: report.note,
            deleted: row.deleted_at.is_some(),
            deleted_reason: row.deleted_reason,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

async fn report(
    call: Call,
    patient: PatientId,
    body: CreateSideEffectRequest,
) -> Result<HttpResponse, ApiError> {
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let made = records::create::<SideEffectRow>(&call, patient, id, body.draft(), hash).await?;
    Ok(created(made, SideEffectResponse::from))
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
        CreateUnder,
    )
)]
#[post("/v1/patients/{id}/side-effects")]
pub async fn create_side_effect(
    call: Call,
    patient: web::Path<Uuid>,
    body: Body<CreateSideEffectRequest>,
) -> Result<HttpResponse, ApiError> {
    report(call, patient.into_inner().into(), body.into_inner()).await
}

/// Reports one of the caller's own side effects (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = CreateSideEffectRequest,
    responses(
        (status = 201, description = "Created", body = SideEffectResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = SideEffectResponse),
        Create,
    )
)]
#[post("/v1/me/side-effects")]
pub async fn create_my_side_effect(
    call: Call,
    body: Body<CreateSideEffectRequest>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    report(call, patient, body.into_inner()).await
}

/// Lists a patient's side effects by onset, or by change with `updated_since`.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of side effects", body = Paged<SideEffectResponse>),
        Read,
    )
)]
#[get("/v1/patients/{id}/side-effects")]
pub async fn list_side_effects(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient.into_inner().into();
    list_of::<SideEffectRow, SideEffectResponse>(&call, patient, &query, &page).await
}

/// The caller's own side effects (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's side effects", body = Paged<SideEffectResponse>),
        List,
    )
)]
#[get("/v1/me/side-effects")]
pub async fn list_my_side_effects(
    call: Call,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    list_of::<SideEffectRow, SideEffectResponse>(&call, patient, &query, &page).await
}

/// One side effect.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The side effect's id")),
    responses(
        (status = 200, description = "The side effect", body = SideEffectResponse,
            headers(("ETag" = String, description = "The report's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/side-effects/{id}")]
pub async fn get_side_effect(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let effect = records::read::<SideEffectRow>(&call, id.into_inner().into()).await?;
    Ok(versioned(
        effect.record.version,
        SideEffectResponse::from(effect),
    ))
}

/// Changes a side effect: a JSON merge patch (RFC 7396). A patient may change only
/// `resolved_at` of their own reports.
#[utoipa::path(
    tag = "side effects",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The side effect's id"), IfMatchHeader),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"resolved_at": "2026-09-30T13:00:00Z"})),
    responses(
        (status = 200, description = "The changed side effect", body = SideEffectResponse,
            headers(("ETag" = String, description = "The report's new version"))),
        Change,
    )
)]
#[patch("/v1/side-effects/{id}")]
pub async fn update_side_effect(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    patch: Patch<CreateSideEffectRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = move |current: &SideEffectRow| {
        Ok(patched(&CreateSideEffectRequest::from(current), &patch)?.draft())
    };
    let id = id.into_inner().into();
    let effect = records::update::<SideEffectRow>(&call, id, expected, change).await?;
    Ok(versioned(
        effect.record.version,
        SideEffectResponse::from(effect),
    ))
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
        Correct,
    )
)]
#[delete("/v1/side-effects/{id}")]
pub async fn delete_side_effect(
    call: Call,
    id: web::Path<Uuid>,
    body: Body<CorrectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().into();
    let effect = records::correct::<SideEffectRow>(&call, id, body.reason()?).await?;
    Ok(HttpResponse::Ok().json(SideEffectResponse::from(effect)))
}

//! Questionnaires, scored by the server (domain.md §5), on the wire. Clinicians submit any
//! instrument; patients submit their own, of the instruments marked `patient`.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::Body;
use crate::api::flags::FlagResponse;
use crate::api::wire::{
    body_hash, created, list_of, CorrectionRequest, PageQuery, Paged, RecordQuery,
};
use crate::call::Call;
use crate::clock;
use crate::domain::ids::PatientId;
use crate::domain::instrument::{Instrument, Rater};
use crate::error::responses::{Correct, Create, CreateUnder, List, Read};
use crate::error::ApiError;
use crate::records::assessments::AssessmentDraft;
use crate::records::{self, id_for, Recorded};
use crate::store::assessments::AssessmentRow;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "instrument": "phq9", "taken_at": "2026-10-01T08:00:00Z",
    "items": [2, 2, 1, 2, 1, 1, 2, 1, 0]}))]
pub struct CreateAssessmentRequest {
    /// Client-generated id for an idempotent create: a phone's retry never duplicates.
    pub id: Option<Uuid>,
    pub instrument: Instrument,
    pub taken_at: DateTime<Utc>,
    /// The answers, in the instrument's item order (one value for a one-item scale). The
    /// server computes the total and band; a total sent by the client is refused.
    pub items: Vec<i32>,
    /// Refused: the server scores.
    #[serde(default, skip_serializing)]
    #[schema(ignore)]
    pub total: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": [], "crisis_message": null, "id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "instrument": "phq9", "taken_at": "2026-10-01T08:00:00Z", "items": [2, 2, 1, 2, 1, 1, 2, 1, 0], "total": 12,
    "band": "moderate", "severity": 12, "submitted_by": "patient", "deleted": false, "deleted_reason": null,
    "created_at": "2026-10-01T08:00:03Z", "updated_at": "2026-10-01T08:00:03Z", "version": 1}))]
pub struct AssessmentResponse {
    /// The flags this record raised (domain.md §7), open or acknowledged.
    pub flags: Vec<FlagResponse>,
    /// The clinic's crisis-resources message, present when the answers raised a
    /// suicidal-ideation flag, so the app can show it at once.
    #[schema(required = true)]
    pub crisis_message: Option<String>,
    pub id: Uuid,
    pub patient_id: Uuid,
    pub instrument: Instrument,
    pub taken_at: DateTime<Utc>,
    pub items: Vec<i32>,
    /// Computed by the server.
    pub total: i32,
    /// The band of the total; null for instruments without bands.
    #[schema(required = true)]
    pub band: Option<String>,
    /// The value outcome arithmetic uses, lower is better: the total, or 10 − score for
    /// daily_mood.
    pub severity: i32,
    pub submitted_by: Rater,
    pub deleted: bool,
    #[schema(required = true)]
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<Recorded<AssessmentRow>> for AssessmentResponse {
    fn from(recorded: Recorded<AssessmentRow>) -> Self {
        let row = recorded.record;
        Self {
            flags: recorded.flags.into_iter().map(Into::into).collect(),
            crisis_message: recorded.crisis_message,
            severity: row.instrument.definition().severity(row.total),
            id: row.id.as_uuid(),
            patient_id: row.patient_id.as_uuid(),
            instrument: row.instrument,
            taken_at: clock::from_db(row.taken_at),
            items: row.items.0,
            total: row.total,
            band: row.band,
            submitted_by: row.submitted_by,
            deleted: row.deleted_at.is_some(),
            deleted_reason: row.deleted_reason,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Scores and stores a questionnaire for `patient`: the server scores, so a total sent by the
/// client is refused.
async fn submit(
    call: Call,
    patient: PatientId,
    body: CreateAssessmentRequest,
) -> Result<HttpResponse, ApiError> {
    if body.total.is_some() {
        return Err(ApiError::invalid(
            "total",
            "is computed by the server; send only the items",
        ));
    }
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let draft = AssessmentDraft {
        instrument: body.instrument,
        taken_at: body.taken_at,
        items: body.items,
    };
    let made = records::create::<AssessmentRow>(&call, patient, id, draft, hash).await?;
    Ok(created(made, AssessmentResponse::from))
}

/// Submits a questionnaire for a patient.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    request_body = CreateAssessmentRequest,
    responses(
        (status = 201, description = "Scored and stored", body = AssessmentResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = AssessmentResponse),
        CreateUnder,
    )
)]
#[post("/v1/patients/{id}/assessments")]
pub async fn create_assessment(
    call: Call,
    patient: web::Path<Uuid>,
    body: Body<CreateAssessmentRequest>,
) -> Result<HttpResponse, ApiError> {
    submit(call, patient.into_inner().into(), body.into_inner()).await
}

/// Submits one of the caller's own questionnaires (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = CreateAssessmentRequest,
    responses(
        (status = 201, description = "Scored and stored", body = AssessmentResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = AssessmentResponse),
        Create,
    )
)]
#[post("/v1/me/assessments")]
pub async fn create_my_assessment(
    call: Call,
    body: Body<CreateAssessmentRequest>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    submit(call, patient, body.into_inner()).await
}

/// Lists a patient's assessments by time taken, or by change with `updated_since`.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of assessments", body = Paged<AssessmentResponse>),
        Read,
    )
)]
#[get("/v1/patients/{id}/assessments")]
pub async fn list_assessments(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient.into_inner().into();
    list_of::<AssessmentRow, AssessmentResponse>(&call, patient, &query, &page).await
}

/// The caller's own assessments (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's assessments", body = Paged<AssessmentResponse>),
        List,
    )
)]
#[get("/v1/me/assessments")]
pub async fn list_my_assessments(
    call: Call,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    list_of::<AssessmentRow, AssessmentResponse>(&call, patient, &query, &page).await
}

/// One assessment.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The assessment's id")),
    responses(
        (status = 200, description = "The assessment", body = AssessmentResponse),
        Read,
    )
)]
#[get("/v1/assessments/{id}")]
pub async fn get_assessment(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let assessment = records::read::<AssessmentRow>(&call, id.into_inner().into()).await?;
    Ok(HttpResponse::Ok().json(AssessmentResponse::from(assessment)))
}

/// Marks an assessment entered in error: kept and audited, excluded from every outcome and
/// research figure, and returned to sync as deleted.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The assessment's id")),
    request_body = CorrectionRequest,
    responses(
        (status = 200, description = "The assessment, now marked deleted", body = AssessmentResponse),
        Correct,
    )
)]
#[delete("/v1/assessments/{id}")]
pub async fn delete_assessment(
    call: Call,
    id: web::Path<Uuid>,
    body: Body<CorrectionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner().into();
    let assessment = records::correct::<AssessmentRow>(&call, id, body.reason()?).await?;
    Ok(HttpResponse::Ok().json(AssessmentResponse::from(assessment)))
}

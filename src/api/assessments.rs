//! Questionnaires, scored by the server (domain.md §5). Clinicians submit any instrument;
//! patients submit their own, of the instruments marked `patient`.

use actix_web::{delete, get, post, web, HttpResponse};
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
    mark_entered_in_error, one_with_flags, optional, patient_event, rules_broken,
    CorrectionRequest, RecordQuery,
};
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::account::Role;
use crate::domain::flags::FlagKind;
use crate::domain::instrument::{may_submit, Instrument, Rater, Scored};
use crate::domain::time;
use crate::error::ApiError;
use crate::evaluation;
use crate::store::assessments::{self, AssessmentRow};
use crate::store::scope::Scope;
use crate::store::{audit, clinics, patients, Db, DbConnection, StoreError};

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
    pub crisis_message: Option<String>,
    pub id: String,
    pub patient_id: String,
    pub instrument: Instrument,
    pub taken_at: DateTime<Utc>,
    pub items: Vec<i32>,
    /// Computed by the server.
    pub total: i32,
    /// The band of the total; null for instruments without bands.
    pub band: Option<String>,
    /// The value outcome arithmetic uses, lower is better: the total, or 10 − score for
    /// daily_mood.
    pub severity: i32,
    pub submitted_by: Rater,
    pub deleted: bool,
    pub deleted_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<AssessmentRow> for AssessmentResponse {
    fn from(row: AssessmentRow) -> Self {
        let instrument: Instrument = row.instrument.parse().unwrap_or(Instrument::Phq9);
        Self {
            flags: vec![],
            crisis_message: None,
            severity: instrument.definition().severity(row.total),
            instrument,
            items: serde_json::from_str(&row.items).unwrap_or_default(),
            submitted_by: row.submitted_by.parse().unwrap_or(Rater::Clinician),
            deleted: row.deleted_at.is_some(),
            taken_at: clock::from_db(row.taken_at),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            id: row.id,
            patient_id: row.patient_id,
            total: row.total,
            band: row.band,
            deleted_reason: row.deleted_reason,
            version: row.version,
        }
    }
}

/// Adds the clinic's crisis message to an assessment that raised a suicidal-ideation flag.
fn with_crisis_message(
    conn: &mut DbConnection,
    mut response: AssessmentResponse,
) -> Result<AssessmentResponse, StoreError> {
    if response
        .flags
        .iter()
        .any(|f| f.kind == FlagKind::SuicidalIdeation)
    {
        let patient = patients::find(
            conn,
            &Scope::Patient(response.patient_id.clone()),
            &response.patient_id,
        )?;
        response.crisis_message =
            clinics::find(conn, &patient.row.clinic_id)?.map(|c| c.crisis_message);
    }
    Ok(response)
}

/// The rater a caller submits as.
pub fn rater(caller: &Caller) -> Rater {
    if caller.role == Role::Patient {
        Rater::Patient
    } else {
        Rater::Clinician
    }
}

fn build(
    body: &CreateAssessmentRequest,
    id: String,
    patient_id: &str,
    caller: &Caller,
) -> Result<AssessmentRow, ApiError> {
    if body.total.is_some() {
        return Err(ApiError::invalid(
            "total",
            "is computed by the server; send only the items",
        ));
    }
    let submitted_by = rater(caller);
    if !may_submit(submitted_by, body.instrument) {
        return Err(ApiError::invalid(
            "instrument",
            "is rated by a clinician; a patient may not submit it",
        ));
    }
    let now = clock::now();
    time::recorded("taken_at", body.taken_at, now)?;
    let scored = Scored::score(body.instrument, &body.items).map_err(rules_broken)?;
    let db_now = clock::to_db(now);
    Ok(AssessmentRow {
        id,
        patient_id: patient_id.to_owned(),
        instrument: body.instrument.as_str().to_owned(),
        taken_at: clock::to_db(body.taken_at),
        items: serde_json::to_string(&scored.items).unwrap_or_default(),
        total: scored.total,
        band: scored.band.map(str::to_owned),
        submitted_by: submitted_by.as_str().to_owned(),
        recorded_by: caller.user_id.clone(),
        body_hash: body_hash(body),
        created_at: db_now,
        updated_at: db_now,
        version: 1,
        deleted_at: None,
        deleted_reason: None,
    })
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients/{id}/assessments")]
pub async fn create_assessment(
    caller: Caller,
    patient: web::Path<Uuid>,
    body: web::Json<CreateAssessmentRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    submit(
        clinical,
        caller,
        patient.into_inner().to_string(),
        body.into_inner(),
        ctx,
        &db,
    )
    .await
}

/// Submits one of the caller's own questionnaires (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = CreateAssessmentRequest,
    responses(
        (status = 201, description = "Scored and stored", body = AssessmentResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = AssessmentResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/me/assessments")]
pub async fn create_my_assessment(
    caller: Caller,
    body: web::Json<CreateAssessmentRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    submit(clinical, caller, patient_id, body.into_inner(), ctx, &db).await
}

async fn submit(
    clinical: ClinicalSettings,
    caller: Caller,
    patient_id: String,
    body: CreateAssessmentRequest,
    ctx: RequestContext,
    db: &Db,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let response = db
        .transaction(move |conn| {
            patients::find(conn, &scope, &patient_id)?;
            let row = build(&body, id.clone(), &patient_id, &caller)?;
            let creation = created_or_replayed(
                conn,
                |conn| optional(assessments::find(conn, &scope, &id)),
                |found| found.body_hash == row.body_hash && found.patient_id == patient_id,
                |conn| {
                    assessments::insert(conn, &row)?;
                    evaluation::refresh(conn, &clinical, &patient_id)?;
                    audit::record(
                        conn,
                        &patient_event(
                            &ctx,
                            &caller,
                            "assessment_created",
                            "assessment",
                            &id,
                            &patient_id,
                        ),
                    )
                },
            )?;
            let (created, response) = created_with_flags::<_, AssessmentResponse>(conn, creation)?;
            Ok::<_, ApiError>((created, with_crisis_message(conn, response)?))
        })
        .await?;
    Ok(created_or_replayed_response(response))
}

/// Lists a patient's assessments by time taken, or by change with `updated_since`.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of assessments", body = Paged<AssessmentResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/assessments")]
pub async fn list_assessments(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    list_of_patient::<_, AssessmentResponse>(
        caller,
        patient.into_inner().to_string(),
        (&query, &page),
        ctx,
        &db,
        "assessments_listed",
        assessments::list,
    )
    .await
}

/// The caller's own assessments (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the caller's assessments", body = Paged<AssessmentResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/me/assessments")]
pub async fn list_my_assessments(
    caller: Caller,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    list_of_patient::<_, AssessmentResponse>(
        caller,
        patient_id,
        (&query, &page),
        ctx,
        &db,
        "assessments_listed",
        assessments::list,
    )
    .await
}

/// One assessment.
#[utoipa::path(
    tag = "assessments",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The assessment's id")),
    responses(
        (status = 200, description = "The assessment", body = AssessmentResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/assessments/{id}")]
pub async fn get_assessment(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = id.into_inner().to_string();
    let row = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let row = assessments::find(conn, &scope, &id)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "assessment_read",
                    "assessment",
                    &id,
                    &row.patient_id,
                ),
            )?;
            let response = one_with_flags(conn, AssessmentResponse::from(row))?;
            with_crisis_message(conn, response)
        })
        .await?;
    Ok(HttpResponse::Ok().json(row))
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[delete("/v1/assessments/{id}")]
pub async fn delete_assessment(
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
                |conn| assessments::find(conn, &scope, &id),
                assessments::replace,
                |patient| {
                    patient_event(
                        &ctx,
                        &caller,
                        "assessment_entered_in_error",
                        "assessment",
                        &id,
                        patient,
                    )
                },
            )?;
            evaluation::refresh(conn, &clinical, &row.patient_id)?;
            one_with_flags(conn, AssessmentResponse::from(row))
        })
        .await?;
    Ok(HttpResponse::Ok().json(row))
}

carries_flags!(AssessmentResponse);

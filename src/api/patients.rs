//! Patients, on the wire: registered and changed by clinicians; a patient reads their own.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::{Body, IfMatch, IfMatchHeader, Patch};
use crate::api::wire::{
    body_hash, created, patched, versioned, ListKeys, PageQuery, Paged, Patchable, RecordQuery,
};
use crate::call::Call;
use crate::clock;
use crate::domain::patient::{Indication, RiskClass, RiskFactor, Sex};
use crate::error::responses::{Change, Create, List, Read};
use crate::error::ApiError;
use crate::patients::{self, PatientDraft, RiskFactorDraft};
use crate::records::id_for;
use crate::store::patients::PatientRecord;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"factor": "hypertension", "noted_at": "2026-09-01T10:00:00Z", "note": "treated, controlled"}))]
pub struct RiskFactorInput {
    pub factor: RiskFactor,
    /// When the clinic noted it; now when absent.
    pub noted_at: Option<DateTime<Utc>>,
    #[schema(
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "external_ref": "MRN-0042", "birth_year": 1984,
    "sex": "female", "indications": ["treatment_resistant_depression"],
    "risk_factors": [{"factor": "hypertension", "noted_at": "2026-09-01T10:00:00Z", "note": "treated, controlled"}],
    "research_consent": true}))]
pub struct CreatePatientRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    /// The clinic's own reference, unique within the clinic. No names, no addresses.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub external_ref: Option<String>,
    /// From 1900 to the current year.
    #[schema(minimum = 1900)]
    pub birth_year: i32,
    pub sex: Sex,
    /// One or more.
    #[schema(min_items = 1)]
    pub indications: Vec<Indication>,
    #[serde(default)]
    pub risk_factors: Vec<RiskFactorInput>,
    /// Whether the patient agreed to be counted in de-identified research.
    #[serde(default)]
    pub research_consent: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"factor": "pregnancy", "class": "contraindication", "noted_at": "2026-09-01T10:00:00Z", "note": null}))]
pub struct RiskFactorResponse {
    pub factor: RiskFactor,
    /// `contraindication` or `caution` (domain.md §1).
    pub class: RiskClass,
    pub noted_at: DateTime<Utc>,
    #[schema(required = true)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "external_ref": "MRN-0042", "birth_year": 1984, "sex": "female", "indications": ["treatment_resistant_depression"],
    "risk_factors": [{"factor": "hypertension", "class": "caution", "noted_at": "2026-09-01T10:00:00Z", "note": "treated, controlled"}],
    "has_contraindication": false, "research_consent": true, "consented_at": "2026-09-25T09:30:00Z",
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct PatientResponse {
    pub id: Uuid,
    pub clinic_id: Uuid,
    #[schema(required = true)]
    pub external_ref: Option<String>,
    pub birth_year: i32,
    pub sex: Sex,
    pub indications: Vec<Indication>,
    pub risk_factors: Vec<RiskFactorResponse>,
    /// True when any risk factor is of the contraindication class.
    pub has_contraindication: bool,
    pub research_consent: bool,
    #[schema(required = true)]
    pub consented_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl CreatePatientRequest {
    pub fn draft(self) -> PatientDraft {
        PatientDraft {
            external_ref: self.external_ref,
            birth_year: self.birth_year,
            sex: self.sex,
            indications: self.indications,
            risk_factors: self
                .risk_factors
                .into_iter()
                .map(|r| RiskFactorDraft {
                    factor: r.factor,
                    noted_at: r.noted_at,
                    note: r.note,
                })
                .collect(),
            research_consent: self.research_consent,
        }
    }
}

/// The request form of a stored patient, which a merge patch changes.
impl Patchable for CreatePatientRequest {
    const PATCH: &'static str = "PatientPatch";
}

impl From<&PatientRecord> for CreatePatientRequest {
    fn from(record: &PatientRecord) -> Self {
        CreatePatientRequest {
            id: None,
            external_ref: record.row.external_ref.clone(),
            birth_year: record.row.birth_year,
            sex: record.row.sex,
            indications: record.indications.clone(),
            risk_factors: record
                .risk_factors
                .iter()
                .map(|r| RiskFactorInput {
                    factor: r.factor,
                    noted_at: Some(clock::from_db(r.noted_at)),
                    note: r.note.clone(),
                })
                .collect(),
            research_consent: record.row.research_consent,
        }
    }
}

impl From<PatientRecord> for PatientResponse {
    fn from(record: PatientRecord) -> Self {
        let risk_factors: Vec<RiskFactorResponse> = record
            .risk_factors
            .into_iter()
            .map(|r| RiskFactorResponse {
                factor: r.factor,
                class: r.factor.class(),
                noted_at: clock::from_db(r.noted_at),
                note: r.note,
            })
            .collect();
        let row = record.row;
        Self {
            has_contraindication: risk_factors
                .iter()
                .any(|r| r.class == RiskClass::Contraindication),
            id: row.id.as_uuid(),
            clinic_id: row.clinic_id.as_uuid(),
            external_ref: row.external_ref,
            birth_year: row.birth_year,
            sex: row.sex,
            indications: record.indications,
            risk_factors,
            research_consent: row.research_consent,
            consented_at: row.consented_at.map(clock::from_db),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"granted": false, "occurred_at": "2026-10-10T14:02:11Z", "actor_id": "0f8fad5b-d9cb-469f-a165-70867728950e"}))]
pub struct ConsentEventResponse {
    /// True for a grant, false for a withdrawal.
    pub granted: bool,
    /// From this instant the patient is (or is no longer) counted in research results.
    pub occurred_at: DateTime<Utc>,
    /// The account that recorded it.
    #[schema(required = true)]
    pub actor_id: Option<Uuid>,
}

/// Every grant and withdrawal of the patient's research consent, oldest first.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The consent history", body = Vec<ConsentEventResponse>),
        Read,
    )
)]
#[get("/v1/patients/{id}/consent-history")]
pub async fn get_consent_history(
    call: Call,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let events = patients::consent_history(&call, id.into_inner().into()).await?;
    let events: Vec<_> = events
        .into_iter()
        .map(|e| ConsentEventResponse {
            granted: e.granted,
            occurred_at: clock::from_db(e.occurred_at),
            actor_id: e.actor_id.map(|a| a.as_uuid()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(events))
}

/// Registers a patient in the clinician's clinic.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    request_body = CreatePatientRequest,
    responses(
        (status = 201, description = "Created", body = PatientResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = PatientResponse),
        Create,
    )
)]
#[post("/v1/patients")]
pub async fn create_patient(
    call: Call,
    body: Body<CreatePatientRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let made = patients::register(&call, id, body.draft(), hash).await?;
    Ok(created(made, PatientResponse::from))
}

/// Lists the clinic's patients, oldest first. `from` and `to` apply to when a patient was
/// registered; `updated_since` returns the patients changed since, in order of change.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of patients", body = Paged<PatientResponse>),
        List,
    )
)]
#[get("/v1/patients")]
pub async fn list_patients(
    call: Call,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (window, page) = query.window_and_page(&page)?;
    let (records, window) = patients::list(&call, window, page.clone()).await?;
    let keys = |r: &PatientRecord| ListKeys {
        own_time: r.row.created_at,
        change_seq: r.row.change_seq,
        id: r.row.id.to_string(),
    };
    let paged = Paged::in_window(records, &page, &window, keys, PatientResponse::from);
    Ok(HttpResponse::Ok().json(paged))
}

/// One patient: a clinician of their clinic, or the patient themselves.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient", body = PatientResponse,
            headers(("ETag" = String, description = "The patient's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/patients/{id}")]
pub async fn get_patient(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let record = patients::read(&call, id.into_inner().into()).await?;
    Ok(versioned(record.row.version, PatientResponse::from(record)))
}

/// Changes a patient: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), IfMatchHeader),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"research_consent": false})),
    responses(
        (status = 200, description = "The changed patient", body = PatientResponse,
            headers(("ETag" = String, description = "The patient's new version"))),
        Change,
    )
)]
#[patch("/v1/patients/{id}")]
pub async fn update_patient(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    patch: Patch<CreatePatientRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = move |current: &PatientRecord| {
        Ok(patched(&CreatePatientRequest::from(current), &patch)?.draft())
    };
    let record = patients::update(&call, id.into_inner().into(), expected, change).await?;
    Ok(versioned(record.row.version, PatientResponse::from(record)))
}

//! Patients (clinicians; a patient reads their own).

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::idempotent::{created_or_replayed, Creation};
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::{
    body_hash, by_change, optional, patched, patient_event, MergePatch, RecordQuery,
};
use crate::api::users::if_match;
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::patient::{self, BirthYear, Indication, RiskClass, RiskFactor, Sex};
use crate::domain::text::{self, Shape};
use crate::error::ApiError;
use crate::evaluation;
use crate::store::consent::{self, ConsentEventRow};
use crate::store::patients::{self, PatientRecord, PatientRow, RiskFactorRow};
use crate::store::scope::Scope;
use crate::store::{audit, Db, DbConnection, StoreError};

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
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "external_ref": "MRN-0042", "birth_year": 1984, "sex": "female", "indications": ["treatment_resistant_depression"],
    "risk_factors": [{"factor": "hypertension", "class": "caution", "noted_at": "2026-09-01T10:00:00Z", "note": "treated, controlled"}],
    "has_contraindication": false, "research_consent": true, "consented_at": "2026-09-25T09:30:00Z",
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct PatientResponse {
    pub id: String,
    pub clinic_id: String,
    pub external_ref: Option<String>,
    pub birth_year: i32,
    pub sex: Sex,
    pub indications: Vec<Indication>,
    pub risk_factors: Vec<RiskFactorResponse>,
    /// True when any risk factor is of the contraindication class.
    pub has_contraindication: bool,
    pub research_consent: bool,
    pub consented_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<PatientRecord> for PatientResponse {
    fn from(record: PatientRecord) -> Self {
        let risk_factors: Vec<RiskFactorResponse> = record
            .risk_factors
            .into_iter()
            .filter_map(|r| {
                let factor: RiskFactor = r.factor.parse().ok()?;
                Some(RiskFactorResponse {
                    factor,
                    class: factor.class(),
                    noted_at: clock::from_db(r.noted_at),
                    note: r.note,
                })
            })
            .collect();
        let row = record.row;
        Self {
            has_contraindication: risk_factors
                .iter()
                .any(|r| r.class == RiskClass::Contraindication),
            id: row.id,
            clinic_id: row.clinic_id,
            external_ref: row.external_ref,
            birth_year: row.birth_year,
            sex: row.sex.parse().unwrap_or(Sex::Unknown),
            indications: record
                .indications
                .iter()
                .filter_map(|i| i.parse().ok())
                .collect(),
            risk_factors,
            research_consent: row.research_consent,
            consented_at: row.consented_at.map(clock::from_db),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// The request form of a stored patient, for merge patches.
fn as_request(record: &PatientRecord) -> CreatePatientRequest {
    let response = PatientResponse::from(record.clone());
    CreatePatientRequest {
        id: None,
        external_ref: response.external_ref,
        birth_year: response.birth_year,
        sex: response.sex,
        indications: response.indications,
        risk_factors: response
            .risk_factors
            .into_iter()
            .map(|r| RiskFactorInput {
                factor: r.factor,
                noted_at: Some(r.noted_at),
                note: r.note,
            })
            .collect(),
        research_consent: response.research_consent,
    }
}

/// Checks a request and builds the record it describes; `existing` keeps what a change must
/// not reset (creation time, consent time).
fn build(
    body: &CreatePatientRequest,
    id: String,
    clinic_id: String,
    existing: Option<&PatientRow>,
) -> Result<PatientRecord, ApiError> {
    let now = clock::now();
    let birth_year = BirthYear::parse(body.birth_year, now.year())?;
    let indications = patient::indications(&body.indications)?;
    let external_ref = body
        .external_ref
        .as_deref()
        .map(patient::external_ref)
        .transpose()?;
    let mut factors: Vec<RiskFactor> = body.risk_factors.iter().map(|r| r.factor).collect();
    factors.sort();
    factors.dedup();
    if factors.len() != body.risk_factors.len() {
        return Err(ApiError::invalid(
            "risk_factors",
            "must not repeat a risk factor",
        ));
    }
    let mut risk_factors = Vec::new();
    for (i, input) in body.risk_factors.iter().enumerate() {
        let noted_at = input.noted_at.unwrap_or(now);
        crate::domain::time::recorded(&format!("risk_factors.{i}.noted_at"), noted_at, now)?;
        let note = input
            .note
            .as_deref()
            .map(|n| text::optional(&format!("risk_factors.{i}.note"), n, Shape::Note, 2000))
            .transpose()?
            .flatten();
        risk_factors.push(RiskFactorRow {
            patient_id: id.clone(),
            factor: input.factor.as_str().to_owned(),
            noted_at: clock::to_db(noted_at),
            note,
        });
    }
    let db_now = clock::to_db(now);
    let consented_at = match existing {
        Some(row) if row.research_consent && body.research_consent => row.consented_at,
        _ => body.research_consent.then_some(db_now),
    };
    Ok(PatientRecord {
        row: PatientRow {
            id,
            clinic_id,
            external_ref,
            birth_year: birth_year.get(),
            sex: body.sex.as_str().to_owned(),
            research_consent: body.research_consent,
            consented_at,
            body_hash: existing.map_or_else(|| body_hash(body), |r| r.body_hash.clone()),
            created_at: existing.map_or(db_now, |r| r.created_at),
            updated_at: db_now,
            version: existing.map_or(1, |r| r.version),
        },
        indications: indications.iter().map(|i| i.as_str().to_owned()).collect(),
        risk_factors,
    })
}

/// Keeps a grant or withdrawal of research consent in the patient's consent history.
fn record_consent(
    conn: &mut DbConnection,
    row: &PatientRow,
    caller: &Caller,
) -> Result<(), StoreError> {
    consent::record(
        conn,
        &ConsentEventRow {
            id: Uuid::new_v4().to_string(),
            patient_id: row.id.clone(),
            granted: row.research_consent,
            occurred_at: row.updated_at,
            actor_id: Some(caller.user_id.clone()),
        },
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"granted": false, "occurred_at": "2026-10-10T14:02:11Z", "actor_id": "0f8fad5b-d9cb-469f-a165-70867728950e"}))]
pub struct ConsentEventResponse {
    /// True for a grant, false for a withdrawal.
    pub granted: bool,
    /// From this instant the patient is (or is no longer) counted in research results.
    pub occurred_at: DateTime<Utc>,
    /// The account that recorded it.
    pub actor_id: Option<String>,
}

/// Every grant and withdrawal of the patient's research consent, oldest first.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The consent history", body = Vec<ConsentEventResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/consent-history")]
pub async fn get_consent_history(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = id.into_inner().to_string();
    let events = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &id)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, "consent_history_read", "patient", &id, &id),
            )?;
            consent::of_patient(conn, &id)
        })
        .await?;
    let events: Vec<ConsentEventResponse> = events
        .into_iter()
        .map(|e| ConsentEventResponse {
            granted: e.granted,
            occurred_at: clock::from_db(e.occurred_at),
            actor_id: e.actor_id,
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients")]
pub async fn create_patient(
    caller: Caller,
    body: web::Json<CreatePatientRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let Scope::Clinic(clinic_id) = scope.clone() else {
        return Err(ApiError::Forbidden);
    };
    let body = body.into_inner();
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let record = build(&body, id.clone(), clinic_id, None)?;
    let creation = db
        .transaction(move |conn| {
            let hash = record.row.body_hash.clone();
            created_or_replayed(
                conn,
                |conn| optional(patients::find(conn, &scope, &id)),
                |found| found.row.body_hash == hash,
                |conn| {
                    patients::insert(conn, &record)?;
                    if record.row.research_consent {
                        record_consent(conn, &record.row, &caller)?;
                    }
                    audit::record(
                        conn,
                        &patient_event(&ctx, &caller, "patient_created", "patient", &id, &id),
                    )
                },
            )
        })
        .await?;
    Ok(match creation {
        Creation::Created(record) => HttpResponse::Created().json(PatientResponse::from(record)),
        Creation::Replayed(record) => HttpResponse::Ok().json(PatientResponse::from(record)),
    })
}

/// Lists the clinic's patients, oldest first. `from` and `to` apply to when a patient was
/// registered; `updated_since` returns the patients changed since, in order of change.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of patients", body = Paged<PatientResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients")]
pub async fn list_patients(
    caller: Caller,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let (window, page) = query.window_and_page(&page)?;
    let change_order = by_change(&window);
    let fetch = page.clone();
    let records = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let records = patients::list(conn, &scope, &window, &fetch)?;
            for record in &records {
                audit::record(
                    conn,
                    &patient_event(
                        &ctx,
                        &caller,
                        "patient_listed",
                        "patient",
                        &record.row.id,
                        &record.row.id,
                    ),
                )?;
            }
            Ok(records)
        })
        .await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        records,
        &page,
        |r| {
            (
                if change_order {
                    r.row.updated_at
                } else {
                    r.row.created_at
                },
                r.row.id.as_str(),
            )
        },
        PatientResponse::from,
    )))
}

/// One patient: a clinician of their clinic, or the patient themselves.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient", body = PatientResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}")]
pub async fn get_patient(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = id.into_inner().to_string();
    let record = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let record = patients::find(conn, &scope, &id)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, "patient_read", "patient", &id, &id),
            )?;
            Ok(record)
        })
        .await?;
    Ok(HttpResponse::Ok().json(PatientResponse::from(record)))
}

/// Changes a patient: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"research_consent": false})),
    responses(
        (status = 200, description = "The changed patient", body = PatientResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/patients/{id}")]
pub async fn update_patient(
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
    let record = db
        .transaction(move |conn| {
            let current = patients::find(conn, &scope, &id)?;
            if expected.is_some_and(|v| v != current.row.version) {
                return Err(ApiError::PreconditionFailed);
            }
            let request = patched(&as_request(&current), &body)?;
            let record = build(
                &request,
                id.clone(),
                current.row.clinic_id.clone(),
                Some(&current.row),
            )?;
            patients::replace(conn, &record, current.row.version)?;
            if record.row.research_consent != current.row.research_consent {
                record_consent(conn, &record.row, &caller)?;
            }
            evaluation::refresh(conn, &clinical, &id)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, "patient_updated", "patient", &id, &id),
            )?;
            Ok(patients::find(conn, &scope, &id)?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", record.row.version),
        ))
        .json(PatientResponse::from(record)))
}

//! HL7 FHIR R4 on the wire: a patient's record as a Bundle, a `QuestionnaireResponse` taken
//! in as an assessment, and the capability statement. Bodies and errors are
//! `application/fhir+json`; what the QuestionnaireResponse endpoint refuses is an
//! `OperationOutcome` naming each field by its FHIRPath.

use actix_web::http::header;
use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::wire::body_hash;
use crate::call::Call;
use crate::domain::fhir::{self as codes, Answer, ItemAnswers, Questionnaire, ResourceType};
use crate::domain::ids::{AssessmentId, BulkExportId, PatientId};
use crate::domain::RuleBroken;
use crate::error::responses::Unavailable;
use crate::error::{ApiError, FhirError, FHIR_JSON, MAX_BODY_BYTES};
use crate::fhir::{self, bulk, resources, resources::Refs};
use crate::records::assessments::AssessmentDraft;
use crate::records::{self, Created};
use crate::store::assessments::AssessmentRow;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BundleQuery {
    /// Only what changed after this instant (removed records as `entered-in-error`).
    #[serde(rename = "_since")]
    #[param(rename = "_since")]
    pub since: Option<DateTime<Utc>>,
}

/// A FHIR R4 resource, as `application/fhir+json`: a Bundle, a CapabilityStatement, an
/// OperationOutcome or a QuestionnaireResponse, by its `resourceType`. Its schema is FHIR's,
/// which the contract does not repeat: an object with a `resourceType`.
#[derive(Serialize)]
#[serde(transparent)]
pub struct FhirResource(Value);

impl utoipa::PartialSchema for FhirResource {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let example = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
        #[allow(deprecated)] // `example`, as the derived schemas of the contract state theirs
        ObjectBuilder::new()
            .example(Some(example))
            .description(Some(
                "A FHIR R4 resource (https://hl7.org/fhir/R4/resourcelist.html), by its \
                 resourceType",
            ))
            .property(
                "resourceType",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[A-Z][A-Za-z]{1,63}$")),
            )
            .required("resourceType")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

impl ToSchema for FhirResource {}

/// The patient's record as a FHIR R4 `Bundle` of type `collection`: Patient (no name, no
/// address; birth year only), QuestionnaireResponses and score Observations, the infusions as
/// MedicationAdministrations with their vital signs, side effects as AdverseEvents, flags as
/// DetectedIssues, research consent as Consents. Every `fullUrl` is the stable `urn:uuid:` of
/// its resource. Clinicians of the patient's clinic; a patient for their own record. Errors
/// are OperationOutcomes.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), BundleQuery),
    responses(
        (status = 200, description = "The record as a Bundle", content_type = "application/fhir+json", body = FhirResource),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "The caller's role reads no clinical record", content_type = "application/fhir+json", body = FhirResource),
        (status = 404, description = "No such patient within the caller's scope", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "A parameter broke a rule", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[get("/v1/patients/{id}/fhir")]
pub async fn get_patient_bundle(
    call: Result<Call, ApiError>,
    patient: Result<web::Path<Uuid>, actix_web::Error>,
    query: Result<web::Query<BundleQuery>, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let call = call.map_err(outcome)?;
    let patient = patient.map_err(|e| outcome(carried(e)))?.into_inner();
    let since = query.map_err(|e| outcome(carried(e)))?.since;
    let bundle = fhir::patient_bundle(&call, patient.into(), since)
        .await
        .map_err(outcome)?;
    Ok(HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .json(FhirResource(bundle)))
}

/// What the service offers in FHIR R4, for any client to read before it signs in.
#[utoipa::path(
    tag = "fhir",
    security(()),
    responses(
        (status = 200, description = "The CapabilityStatement", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, response = Unavailable),
    )
)]
#[get("/v1/fhir/metadata")]
pub async fn get_capability_statement() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(FHIR_JSON)
        .json(FhirResource(fhir::capability_statement()))
}

/// Takes a PHQ-9, GAD-7 or pain `QuestionnaireResponse` from a FHIR-based app as one of the
/// patient's assessments, through the native scoring, flags, idempotency (its UUID `id`, or
/// its `identifier`) and audit. `status` must be `completed` (a correction is the assessment's
/// removal and a new response), `authored` is the time taken, each item's `linkId` its LOINC
/// code (the LOINC forms' difficulty item 69722-7, which no score counts, is let be); a total
/// is refused (the server scores).
/// Answers with a Bundle of what was stored — the QuestionnaireResponse, its Observations, a
/// DetectedIssue per flag raised, and an OperationOutcome carrying the clinic's crisis message
/// when item 9 raised one. Clinicians; a patient for their own record.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    request_body(content = FhirResource, content_type = "application/fhir+json", description = "A QuestionnaireResponse"),
    responses(
        (status = 201, description = "Scored and stored", content_type = "application/fhir+json", body = FhirResource),
        (status = 200, description = "A repeat of an earlier create with the same id and answers", content_type = "application/fhir+json", body = FhirResource),
        (status = 400, description = "Not JSON", content_type = "application/fhir+json", body = FhirResource),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "The caller's role may not do this", content_type = "application/fhir+json", body = FhirResource),
        (status = 404, description = "No such patient within the caller's scope", content_type = "application/fhir+json", body = FhirResource),
        (status = 409, description = "The id is taken by different answers", content_type = "application/fhir+json", body = FhirResource),
        (status = 413, description = "The body is larger than 256 KiB", content_type = "application/fhir+json", body = FhirResource),
        (status = 415, description = "Not application/fhir+json or application/json", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "An OperationOutcome naming each refused field", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[post("/v1/patients/{id}/fhir/QuestionnaireResponse")]
pub async fn create_questionnaire_response(
    request: HttpRequest,
    call: Result<Call, ApiError>,
    patient: Result<web::Path<Uuid>, actix_web::Error>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let as_outcome = outcome_of("QuestionnaireResponse");
    let call = call.map_err(as_outcome)?;
    let patient: PatientId = patient
        .map_err(|e| as_outcome(carried(e)))?
        .into_inner()
        .into();
    let body = body.map_err(|e| as_outcome(carried(e)))?;
    let response = read_response(&request, &body).map_err(as_outcome)?;
    let (id, draft) = response.draft(patient).map_err(as_outcome)?;
    let hash = body_hash(&json!([draft.instrument, draft.taken_at, draft.items]));
    let made = records::create::<AssessmentRow>(&call, patient, id, draft, hash)
        .await
        .map_err(|e| as_outcome(in_fhir_terms(e)))?;
    let (status, recorded) = match made {
        Created::Now(r) => (actix_web::http::StatusCode::CREATED, r),
        Created::Replayed(r) => (actix_web::http::StatusCode::OK, r),
    };
    let location = format!(
        "/v1/patients/{}/assessments/{}",
        patient.as_uuid(),
        recorded.record.id.as_uuid()
    );
    // What was stored refers to the patient, who is not in the answer: by `Type/id`.
    let mut stored = resources::assessment(&recorded.record, Refs::Relative);
    let flags = recorded.flags.iter();
    stored.extend(flags.map(|f| resources::flag(f, Refs::Relative)));
    if let Some(message) = &recorded.crisis_message {
        stored.push(json!({
            "resourceType": "OperationOutcome",
            "id": resources::derived(recorded.record.id.as_uuid(), "crisis-message"),
            "issue": [{ "severity": "warning", "code": "informational", "diagnostics": message }],
        }));
    }
    Ok(HttpResponse::build(status)
        .content_type(FHIR_JSON)
        .insert_header((header::LOCATION, location))
        .json(FhirResource(fhir::bundle(stored, Refs::Relative))))
}

/// The native create's field names as the QuestionnaireResponse's: the time taken is
/// `authored`, the answers are the `item`s.
fn in_fhir_terms(error: ApiError) -> ApiError {
    let ApiError::Validation(fields) = error else {
        return error;
    };
    let renamed = fields.into_iter().map(|mut f| {
        f.field = match f.field.as_str() {
            "taken_at" => "authored".into(),
            "items" => "item".into(),
            "instrument" => "questionnaire".into(),
            _ => f.field,
        };
        f
    });
    ApiError::Validation(renamed.collect())
}

fn read_response(request: &HttpRequest, body: &[u8]) -> Result<QuestionnaireResponseIn, ApiError> {
    let json_like = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| matches!(v.trim(), "application/fhir+json" | "application/json"));
    if !json_like {
        return Err(ApiError::UnsupportedMediaType);
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // At the top a missing field is named in serde's message, not in the path.
        let error = if path == "." {
            crate::error::serde_field_error(message, "resourceType")
        } else {
            crate::error::FieldError::new(path, message)
        };
        ApiError::Validation(vec![error])
    })
}

/// The part of a FHIR `QuestionnaireResponse` the service reads; everything else a FHIR app
/// may send (meta, text, extensions, source…) is let be.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuestionnaireResponseIn {
    resource_type: String,
    id: Option<String>,
    identifier: Option<IdentifierIn>,
    questionnaire: Option<String>,
    status: String,
    subject: Option<ReferenceIn>,
    authored: Option<DateTime<Utc>>,
    #[serde(default)]
    item: Vec<ItemIn>,
}

#[derive(Deserialize)]
pub struct IdentifierIn {
    system: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
pub struct ReferenceIn {
    reference: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemIn {
    link_id: String,
    #[serde(default)]
    answer: Vec<Map<String, Value>>,
    #[serde(default)]
    item: Vec<ItemIn>,
}

/// The namespace of assessment ids made from a FHIR identifier that is not itself a UUID.
const IDENTIFIERS: Uuid = Uuid::from_u128(0x0b8f_6d2e_51c4_4a97_a3e1_6f20_9c7d_4b58);

impl QuestionnaireResponseIn {
    /// The assessment to create, with its id for idempotency; every broken rule named.
    pub fn draft(self, patient: PatientId) -> Result<(AssessmentId, AssessmentDraft), ApiError> {
        let mut broken = Vec::new();
        if self.resource_type != "QuestionnaireResponse" {
            broken.push(RuleBroken::new(
                "resourceType",
                "must be QuestionnaireResponse",
            ));
        }
        if self.status != "completed" {
            broken.push(RuleBroken::new(
                "status",
                "must be completed: only finished questionnaires are scored, and a correction \
                 is the assessment's removal and a new response",
            ));
        }
        let own = [
            format!("Patient/{}", patient.as_uuid()),
            format!("urn:uuid:{}", patient.as_uuid()),
        ];
        if let Some(subject) = &self.subject {
            if !subject.reference.as_ref().is_some_and(|r| own.contains(r)) {
                broken.push(RuleBroken::new(
                    "subject",
                    "must be the patient of the path, or absent",
                ));
            }
        }
        if self.authored.is_none() {
            broken.push(RuleBroken::new(
                "authored",
                "is required: the time the questionnaire was answered, with its time zone",
            ));
        }
        let questionnaire = self.questionnaire.as_deref().and_then(Questionnaire::named);
        if questionnaire.is_none() {
            let known: Vec<_> = Questionnaire::canonicals().collect();
            broken.push(RuleBroken::new(
                "questionnaire",
                format!("must be one of {}", known.join(", ")),
            ));
        }
        let mut items = Vec::new();
        flatten("item", &self.item, &mut items);
        let answers = questionnaire.map(|q| codes::answers_of(q, &items));
        if let Some(Err(more)) = &answers {
            broken.extend(more.iter().cloned());
        }
        let (Some(q), Some(Ok(values)), Some(taken_at), true) =
            (questionnaire, answers, self.authored, broken.is_empty())
        else {
            return Err(broken.into());
        };
        let id = self.idempotency_key(patient).unwrap_or_else(Uuid::new_v4);
        Ok((
            id.into(),
            AssessmentDraft {
                instrument: q.instrument,
                taken_at,
                items: values,
            },
        ))
    }

    /// The key a repeat of this response is known by: its `id` when a UUID, else its
    /// identifier (a `urn:uuid:` value as that UUID), else any other `id` — the last two,
    /// which apps choose freely ("1"), named within the patient's record, so one patient's
    /// cannot take another's.
    fn idempotency_key(&self, patient: PatientId) -> Option<Uuid> {
        let by_id = self.id.as_deref().and_then(|id| id.parse::<Uuid>().ok());
        let by_identifier = self.identifier.as_ref().and_then(|i| {
            let value = i.value.as_deref()?;
            match value.strip_prefix("urn:uuid:").map(str::parse::<Uuid>) {
                Some(Ok(uuid)) => Some(uuid),
                _ => {
                    let system = i.system.as_deref().unwrap_or_default();
                    let name = format!("{patient}|{system}|{value}");
                    Some(Uuid::new_v5(&IDENTIFIERS, name.as_bytes()))
                }
            }
        });
        let other_id = self
            .id
            .as_deref()
            .map(|id| Uuid::new_v5(&IDENTIFIERS, format!("{patient}|id|{id}").as_bytes()));
        by_id.or(by_identifier).or(other_id)
    }
}

/// The answered items, nested groups included, each named by its place in the body.
fn flatten(at: &str, items: &[ItemIn], out: &mut Vec<ItemAnswers>) {
    for (n, item) in items.iter().enumerate() {
        let here = format!("{at}[{n}]");
        if !item.item.is_empty() {
            flatten(&format!("{here}.item"), &item.item, out);
        }
        if item.item.is_empty() || !item.answer.is_empty() {
            out.push(ItemAnswers {
                at: here,
                link_id: item.link_id.clone(),
                answers: item.answer.iter().map(answer).collect(),
            });
        }
    }
}

fn answer(given: &Map<String, Value>) -> Answer {
    if let Some(coding) = given.get("valueCoding") {
        let text = |key| coding.get(key).and_then(Value::as_str).map(str::to_owned);
        return Answer::Coding {
            system: text("system"),
            code: text("code"),
        };
    }
    if let Some(v) = given.get("valueInteger").and_then(Value::as_i64) {
        return Answer::Integer(v);
    }
    let kind = given
        .keys()
        .find(|k| k.starts_with("value"))
        .cloned()
        .unwrap_or_else(|| "no value".to_owned());
    Answer::Other(kind)
}

/// The kick-off's parameters (FHIR Bulk Data).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `application/fhir+ndjson` (the default), `application/ndjson` or `ndjson`.
    #[serde(rename = "_outputFormat")]
    #[param(rename = "_outputFormat", pattern = r"^[a-z/+]{1,40}$")]
    pub output_format: Option<String>,
    /// Only what changed after this instant.
    #[serde(rename = "_since")]
    #[param(rename = "_since")]
    pub since: Option<DateTime<Utc>>,
    /// Resource types, comma-separated: Patient, QuestionnaireResponse, Observation,
    /// MedicationAdministration, AdverseEvent, DetectedIssue, Consent. All when absent.
    #[serde(rename = "_type")]
    #[param(rename = "_type", pattern = r"^[A-Za-z]{1,40}(,[A-Za-z]{1,40}){0,9}$")]
    pub types: Option<String>,
}

/// The `Prefer` header the kick-off needs.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct PreferHeader {
    /// `respond-async`: the export is asynchronous.
    #[param(rename = "Prefer", pattern = r"^respond-async(\s*[,;].*)?$")]
    pub prefer: String,
}

/// Where clients reach the service: `KO_PUBLIC_URL`, else `http://` and this request's own
/// `Host` — never a forwarded host, which would send the client's token where a header says.
fn base_url(request: &HttpRequest, call: &Call) -> String {
    call.services.public_url.clone().unwrap_or_else(|| {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        format!("http://{}", host.unwrap_or("127.0.0.1"))
    })
}

/// An extractor's failure as the ApiError it carries: a query's or a path's fields keep their
/// names, a body too large is 413.
fn carried(error: actix_web::Error) -> ApiError {
    match error.as_error::<ApiError>() {
        Some(ApiError::Validation(fields)) => ApiError::Validation(fields.clone()),
        _ if error.as_response_error().status_code() == 413 => ApiError::PayloadTooLarge,
        _ => ApiError::BadRequest(error.to_string()),
    }
}

/// Renders errors as an OperationOutcome whose expressions are FHIRPaths within `resource`.
fn outcome_of(resource: &'static str) -> impl Fn(ApiError) -> FhirError + Copy {
    move |error| FhirError { error, resource }
}

/// Renders errors whose fields are parameters (the reads and the bulk endpoints).
fn outcome(error: ApiError) -> FhirError {
    outcome_of("")(error)
}

/// 400 unless the request prefers `respond-async`, as a bulk kick-off must.
fn asks_async(request: &HttpRequest) -> Result<(), ApiError> {
    let prefer = request
        .headers()
        .get("prefer")
        .and_then(|v| v.to_str().ok());
    let preferences = prefer.into_iter().flat_map(|v| v.split(','));
    let names = preferences.filter_map(|p| p.split(';').next());
    if names.map(str::trim).any(|name| name == "respond-async") {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "a bulk export is asynchronous: send Prefer: respond-async".into(),
        ))
    }
}

/// 422 unless `_outputFormat` is absent or names NDJSON.
fn ndjson(format: Option<&str>) -> Result<(), ApiError> {
    match format {
        None | Some("application/fhir+ndjson" | "application/ndjson" | "ndjson") => Ok(()),
        Some(_) => Err(ApiError::invalid(
            "_outputFormat",
            "must be application/fhir+ndjson, application/ndjson or ndjson",
        )),
    }
}

fn job_path(id: BulkExportId) -> String {
    format!("/v1/fhir/export-jobs/{id}")
}

/// Starts a clinic-wide export by the FHIR Bulk Data pattern (`Prefer: respond-async`): 202
/// with `Content-Location`, the job to poll. Every patient of the caller's clinic registered
/// by now, each as they stand when their page is written (so a next export with
/// `_since` set to this one's transactionTime may repeat a change, never miss one). Clinicians,
/// their own clinic only; audited.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(ExportQuery, PreferHeader),
    responses(
        (status = 202, description = "Started", headers(("Content-Location" = String, description = "The job to poll"))),
        (status = 400, description = "No Prefer: respond-async", content_type = "application/fhir+json", body = FhirResource),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "Not a clinician", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "A parameter broke a rule", content_type = "application/fhir+json", body = FhirResource),
        (status = 429, description = "Another export of the clinic is being written", content_type = "application/fhir+json", body = FhirResource,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[get("/v1/fhir/$export")]
pub async fn start_bulk_export(
    request: HttpRequest,
    call: Result<Call, ApiError>,
    query: Result<web::Query<ExportQuery>, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let call = call.map_err(outcome)?;
    let query = query.map_err(|e| outcome(carried(e)))?.into_inner();
    asks_async(&request).map_err(outcome)?;
    ndjson(query.output_format.as_deref()).map_err(outcome)?;
    let types = codes::resource_types(query.types.as_deref()).map_err(|b| outcome(b.into()))?;
    let asked = bulk::Asked {
        since: query.since,
        types,
    };
    let id = bulk::kick_off(&call, asked).await.map_err(outcome)?;
    let location = format!("{}{}", base_url(&request, &call), job_path(id));
    Ok(HttpResponse::Accepted()
        .insert_header((header::CONTENT_LOCATION, location))
        .finish())
}

/// Where a bulk export stands: 202 with `Retry-After` and `X-Progress` while it is written,
/// then 200 with the manifest — one NDJSON file per resource type, each needing the bearer
/// token. The clinic's clinicians.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The manifest", body = FhirResource),
        (status = 202, description = "Still being written", headers(
            ("Retry-After" = u64, description = "Seconds to wait before polling again"),
            ("X-Progress" = String, description = "Patients written, of how many"))),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "Not a clinician", content_type = "application/fhir+json", body = FhirResource),
        (status = 404, description = "No such export of the caller's clinic", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "The id is not a UUID", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[get("/v1/fhir/export-jobs/{id}")]
pub async fn get_bulk_export(
    request: HttpRequest,
    call: Result<Call, ApiError>,
    id: Result<web::Path<Uuid>, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let call = call.map_err(outcome)?;
    let id: BulkExportId = id.map_err(|e| outcome(carried(e)))?.into_inner().into();
    match bulk::progress(&call, id).await.map_err(outcome)? {
        bulk::Progress::Running { done, total } => Ok(HttpResponse::Accepted()
            .insert_header((header::RETRY_AFTER, bulk::RETRY_AFTER_SECONDS.to_string()))
            .insert_header(("X-Progress", format!("{done} of {total} patients written")))
            .finish()),
        bulk::Progress::Complete {
            transaction_time,
            files,
            request: asked,
        } => {
            let base = base_url(&request, &call);
            let output: Vec<Value> = files
                .into_iter()
                .map(|(kind, count)| {
                    json!({"type": kind, "url": format!("{base}{}/files/{kind}", job_path(id)), "count": count})
                })
                .collect();
            Ok(HttpResponse::Ok().json(FhirResource(json!({
                "transactionTime": transaction_time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                "request": format!("{base}/v1/fhir/$export{asked}"),
                "requiresAccessToken": true,
                "output": output,
                "error": [],
            }))))
        }
    }
}

/// Cancels a bulk export and removes what it wrote.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The export's id")),
    responses(
        (status = 202, description = "Cancelled and removed"),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "Not a clinician", content_type = "application/fhir+json", body = FhirResource),
        (status = 404, description = "No such export of the caller's clinic", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "The id is not a UUID", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[delete("/v1/fhir/export-jobs/{id}")]
pub async fn cancel_bulk_export(
    call: Result<Call, ApiError>,
    id: Result<web::Path<Uuid>, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let call = call.map_err(outcome)?;
    let id: BulkExportId = id.map_err(|e| outcome(carried(e)))?.into_inner().into();
    bulk::cancel(&call, id).await.map_err(outcome)?;
    Ok(HttpResponse::Accepted().finish())
}

/// One file of a complete bulk export: every resource of one type, one per line
/// (`application/fhir+ndjson`), streamed; the patients it shows are audited as read.
#[utoipa::path(
    tag = "fhir",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The export's id"),
        ("type" = ResourceType, Path, description = "The resource type"),
    ),
    responses(
        (status = 200, description = "The resources, one per line", content_type = "application/fhir+ndjson", body = String),
        (status = 401, description = "No valid bearer token", content_type = "application/fhir+json", body = FhirResource),
        (status = 403, description = "Not a clinician", content_type = "application/fhir+json", body = FhirResource),
        (status = 404, description = "No such file of a complete export of the caller's clinic", content_type = "application/fhir+json", body = FhirResource),
        (status = 422, description = "Not a UUID, or not a resource type the service exports", content_type = "application/fhir+json", body = FhirResource),
        (status = 503, description = "The database is unavailable; retry", content_type = "application/fhir+json", body = FhirResource),
    )
)]
#[get("/v1/fhir/export-jobs/{id}/files/{type}")]
pub async fn get_bulk_export_file(
    call: Result<Call, ApiError>,
    path: Result<web::Path<(Uuid, ResourceType)>, actix_web::Error>,
) -> Result<HttpResponse, FhirError> {
    let call = call.map_err(outcome)?;
    let (id, kind) = path.map_err(|e| outcome(carried(e)))?.into_inner();
    let lines = bulk::file(&call, id.into(), kind).await.map_err(outcome)?;
    let bytes = futures_util::StreamExt::map(lines, |part| part.map(web::Bytes::from));
    Ok(HttpResponse::Ok()
        .content_type("application/fhir+ndjson")
        .streaming(bytes))
}

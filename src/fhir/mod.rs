//! The record in the clinic's EHR language, HL7 FHIR R4: a patient's record as a `Bundle` of
//! type `collection`, and what the service can do in FHIR as a `CapabilityStatement`.
//! Questionnaires arriving as `QuestionnaireResponse`s become assessments through the same
//! create as the native endpoint (`records::create`), so scoring, flags, idempotency and audit
//! are the native ones.

pub mod bulk;
pub mod resources;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::fhir::Questionnaire;
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::store::patients::PatientRow;
use crate::store::{
    assessments, consent, flags, patients, sessions, side_effects, DbConnection, StoreError,
};
use resources::Refs;

pub use crate::error::FHIR_JSON;

/// The patient's record as a FHIR `Bundle` of type `collection`: every entry's `fullUrl` the
/// stable `urn:uuid:` of its resource, and references between entries by those. With `since`,
/// only what changed after it (removed records as `entered-in-error`). Audited behind the
/// answer, as the timeline is.
pub async fn patient_bundle(
    call: &Call,
    patient: PatientId,
    since: Option<DateTime<Utc>>,
) -> Result<Value, ApiError> {
    let scope = call.clinical_scope()?;
    let since = since.map(clock::to_db);
    let resources = call
        .read(move |conn| {
            let record = patients::find(conn, &scope, patient)?;
            Ok(patient_resources(conn, &record.row, since, Refs::Bundle)?)
        })
        .await?;
    call.audit_behind([Event::record(Action::FhirExported, patient, patient)])
        .await?;
    Ok(bundle(resources, Refs::Bundle))
}

/// A patient's record as FHIR resources: the patient, their consents, sessions (with vital
/// signs), assessments (with scores), side effects and flags; with `since`, what changed after
/// it (removed records as `entered-in-error`). The Bundle and the bulk export both read this.
pub fn patient_resources(
    conn: &mut DbConnection,
    patient: &PatientRow,
    since: Option<NaiveDateTime>,
    refs: Refs,
) -> Result<Vec<Value>, StoreError> {
    let id = patient.id;
    let changed = |at: NaiveDateTime| since.is_none_or(|s| at > s);
    let mut out = Vec::new();
    if changed(patient.updated_at) {
        out.push(resources::patient(patient));
    }
    let history = consent::of_patient(conn, id)?;
    let ends = history
        .iter()
        .skip(1)
        .map(|e| Some(e.occurred_at))
        .chain([None]);
    let consents = resources::consents(&history, refs);
    for ((event, end), resource) in history.iter().zip(ends).zip(consents) {
        if changed(event.occurred_at) || end.is_some_and(changed) {
            out.push(resource);
        }
    }
    for row in sessions::of_patient_since(conn, id, since)? {
        out.extend(resources::session(&row, refs));
    }
    for row in assessments::of_patient_since(conn, id, since)? {
        out.extend(resources::assessment(&row, refs));
    }
    for row in side_effects::of_patient_since(conn, id, since)? {
        out.push(resources::side_effect(&row, refs));
    }
    for row in flags::of_patient(conn, id)? {
        if changed(row.raised_at) || row.acknowledged_at.is_some_and(changed) {
            out.push(resources::flag(&row, refs));
        }
    }
    Ok(out)
}

/// A `collection` Bundle of `resources`. Referring to one another by `urn:uuid:`
/// ([`Refs::Bundle`]), each entry's `fullUrl` is its `urn:uuid:`; referring as `Type/id`
/// ([`Refs::Relative`], resources that refer beyond the Bundle), entries have none.
pub fn bundle(resources: Vec<Value>, refs: Refs) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| match refs {
            Refs::Bundle => {
                let id = resource["id"].as_str().unwrap_or_default().to_owned();
                json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource })
            }
            Refs::Relative => json!({ "resource": resource }),
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": clock::now().to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "total": entries.len(),
        "entry": entries,
    })
}

/// What the service offers in FHIR R4.
pub fn capability_statement() -> Value {
    let questionnaires: Vec<&str> = Questionnaire::canonicals().collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": clock::now().to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "kind": "instance",
        "software": { "name": "ketamine-outcomes", "version": env!("CARGO_PKG_VERSION") },
        "implementation": { "description": "ketamine-outcomes: ketamine treatment outcomes" },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": format!(
                "Reads: GET /v1/patients/{{id}}/fhir (a Bundle of type collection; _since for \
                 changes only). Writes: POST /v1/patients/{{id}}/fhir/QuestionnaireResponse \
                 for the questionnaires {}. Bearer tokens from POST /v1/auth/login.",
                questionnaires.join(", ")
            ),
            "security": {
                "cors": false,
                "description": "OAuth-style bearer tokens of the service's own sign-in",
            },
            "resource": [
                { "type": "Patient" },
                { "type": "QuestionnaireResponse", "interaction": [{ "code": "create" }] },
                { "type": "Observation" },
                { "type": "MedicationAdministration" },
                { "type": "AdverseEvent" },
                { "type": "DetectedIssue" },
                { "type": "Consent" },
            ],
            "operation": [{
                "name": "export",
                "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
                "documentation": "GET /v1/fhir/$export with Prefer: respond-async: the clinic's \
                    records as NDJSON files per resource type (clinicians)",
            }],
        }],
    })
}

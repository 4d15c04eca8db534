//! The record in the clinic's EHR language, HL7 FHIR R4: a patient's record as a `Bundle` of
//! type `collection`, and what the service can do in FHIR as a `CapabilityStatement`.
//! Questionnaires arriving as `QuestionnaireResponse`s become assessments through the same
//! create as the native endpoint (`records::create`), so scoring, flags, idempotency and audit
//! are the native ones.

pub mod bulk;
pub mod resources;

use std::collections::HashSet;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::fhir::Questionnaire;
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::store::assessments::AssessmentRow;
use crate::store::consent::ConsentEventRow;
use crate::store::flags::FlagRow;
use crate::store::patients::PatientRow;
use crate::store::sessions::SessionRow;
use crate::store::side_effects::SideEffectRow;
use crate::store::{
    assessments, consent, flags, patients, sessions, side_effects, DbConnection, StoreError,
};
use resources::Refs;

/// The patient's record as a FHIR `Bundle` of type `collection`: every entry's `fullUrl` the
/// stable `urn:uuid:` of its resource, and references between entries by those. With `since`,
/// only what changed after it (removed records as `entered-in-error`), referring as `Type/id`
/// — what they refer to may have come in an earlier pull. Audited behind the answer, as the
/// timeline is.
pub async fn patient_bundle(
    call: &Call,
    patient: PatientId,
    since: Option<DateTime<Utc>>,
) -> Result<Value, ApiError> {
    let scope = call.clinical_scope()?;
    let since = since.map(clock::to_db);
    let bundle = call
        .read(move |conn| {
            let row = patients::find_row(conn, &scope, patient)?;
            let record = Exported::load(conn, row, since)?;
            Ok(match since {
                None => {
                    let held = record.held();
                    let present = |id| held.contains(&id);
                    let refs = Refs::Bundle { present: &present };
                    bundle(record.resources(refs), refs)
                }
                Some(_) => bundle(record.resources(Refs::Relative), Refs::Relative),
            })
        })
        .await?;
    call.audit_behind([Event::record(Action::FhirExported, patient, patient)])
        .await?;
    Ok(bundle)
}

/// A patient's record as an export reads it: the patient, their consent history, sessions,
/// assessments, side effects and flags; with `since`, the records changed after it (removed
/// ones included). The Bundle and the bulk export both read this.
pub struct Exported {
    patient: PatientRow,
    since: Option<NaiveDateTime>,
    consents: Vec<ConsentEventRow>,
    sessions: Vec<SessionRow>,
    assessments: Vec<AssessmentRow>,
    side_effects: Vec<SideEffectRow>,
    flags: Vec<FlagRow>,
}

impl Exported {
    pub fn load(
        conn: &mut DbConnection,
        patient: PatientRow,
        since: Option<NaiveDateTime>,
    ) -> Result<Self, StoreError> {
        let id = patient.id;
        Ok(Self {
            consents: consent::of_patient(conn, id)?,
            sessions: sessions::of_patient_since(conn, id, since)?,
            assessments: assessments::of_patient_since(conn, id, since)?,
            side_effects: side_effects::of_patient_since(conn, id, since)?,
            flags: flags::of_patient(conn, id)?,
            patient,
            since,
        })
    }

    /// The records (sessions, assessments, side effects) in the export, by id.
    fn held(&self) -> HashSet<uuid::Uuid> {
        let sessions = self.sessions.iter().map(|r| r.id.as_uuid());
        let assessments = self.assessments.iter().map(|r| r.id.as_uuid());
        let side_effects = self.side_effects.iter().map(|r| r.id.as_uuid());
        sessions.chain(assessments).chain(side_effects).collect()
    }

    fn changed(&self, at: NaiveDateTime) -> bool {
        self.since.is_none_or(|since| at > since)
    }

    /// The record as FHIR resources: the patient, consents, sessions (with vital signs),
    /// assessments (with scores), side effects and flags — with `since`, what changed after it.
    pub fn resources(&self, refs: Refs<'_>) -> Vec<Value> {
        let mut out = Vec::new();
        if self.changed(self.patient.updated_at) {
            out.push(resources::patient(&self.patient));
        }
        let history = &self.consents;
        let ends = history.iter().skip(1).map(|e| Some(e.occurred_at));
        let consents = resources::consents(history, refs);
        for ((event, end), resource) in history.iter().zip(ends.chain([None])).zip(consents) {
            if self.changed(event.occurred_at) || end.is_some_and(|at| self.changed(at)) {
                out.push(resource);
            }
        }
        for row in &self.sessions {
            out.extend(resources::session(row, refs));
        }
        for row in &self.assessments {
            out.extend(resources::assessment(row, refs));
        }
        for row in &self.side_effects {
            out.push(resources::side_effect(row, refs));
        }
        for row in &self.flags {
            if self.changed(row.raised_at) || row.acknowledged_at.is_some_and(|at| self.changed(at))
            {
                out.push(resources::flag(row, refs));
            }
        }
        out
    }
}

/// A `collection` Bundle of `resources`. Referring to one another by `urn:uuid:`
/// ([`Refs::Bundle`]), each entry's `fullUrl` is its own; referring as `Type/id`
/// ([`Refs::Relative`]), entries have none.
pub fn bundle(resources: Vec<Value>, refs: Refs<'_>) -> Value {
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| match refs {
            Refs::Bundle { .. } => {
                let kind = resource["resourceType"].as_str().unwrap_or_default();
                let id = resource["id"].as_str().and_then(|id| id.parse().ok());
                let url = resources::bundle_url(kind, id.unwrap_or_default());
                json!({ "fullUrl": url, "resource": resource })
            }
            Refs::Relative => json!({ "resource": resource }),
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": clock::now().to_rfc3339_opts(SecondsFormat::AutoSi, true),
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
                { "type": "QuestionnaireResponse" },
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

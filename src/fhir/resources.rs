//! A patient's record as FHIR R4 resources, one function per kind of record, with the codes of
//! `domain::fhir`. The same resources serve the patient's Bundle and the clinic's bulk export;
//! only how they refer to one another differs ([`Refs`]).

use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::clock;
use crate::domain::fhir::{self as codes, Code, Given, Questionnaire};
use crate::domain::flags::FlaggedRecord;
use crate::domain::instrument::Rater;
use crate::domain::treatment::VitalSigns;
use crate::store::assessments::AssessmentRow;
use crate::store::consent::ConsentEventRow;
use crate::store::flags::FlagRow;
use crate::store::patients::PatientRow;
use crate::store::sessions::SessionRow;
use crate::store::side_effects::SideEffectRow;

/// The namespace of the ids of resources derived from one record (a score's observations,
/// a session's vital signs): stable, so a receiver updates rather than duplicates them.
const DERIVED: Uuid = Uuid::from_u128(0x5c1e_40b7_8d2a_4f63_9e0b_71a4_c3d8_e215);

/// How resources refer to one another: inside a Bundle by the `urn:uuid:` of each entry's
/// `fullUrl` ([`bundle_url`]); standing alone (a bulk export's lines, what a create stored) as
/// `Type/id`. In a Bundle, `present` says which records it holds: a link to one it does not
/// (a flag on a removed assessment) is left out, since it could not resolve.
#[derive(Clone, Copy)]
pub enum Refs<'a> {
    Bundle { present: &'a dyn Fn(Uuid) -> bool },
    Relative,
}

impl Refs<'_> {
    pub fn to(self, kind: &str, id: Uuid) -> Value {
        match self {
            Refs::Bundle { .. } => json!({ "reference": bundle_url(kind, id) }),
            Refs::Relative => json!({ "reference": format!("{kind}/{id}") }),
        }
    }

    /// Whether a link to the record `id` resolves.
    fn holds(self, id: Uuid) -> bool {
        match self {
            Refs::Bundle { present } => present(id),
            Refs::Relative => true,
        }
    }
}

/// The `fullUrl` of a resource in a Bundle: a UUID of its type and id, since an id is unique
/// only among records of one kind (a client chooses the ids of what it creates).
pub fn bundle_url(kind: &str, id: Uuid) -> String {
    format!("urn:uuid:{}", derived(id, kind))
}

/// The id of the resource `role` derived from the record `of`.
pub fn derived(of: Uuid, role: &str) -> Uuid {
    Uuid::new_v5(&DERIVED, format!("{of}/{role}").as_bytes())
}

/// A record's status as FHIR states it: `entered-in-error` once removed, else `live`.
fn status_of(deleted: Option<NaiveDateTime>, live: &'static str) -> &'static str {
    if deleted.is_some() {
        "entered-in-error"
    } else {
        live
    }
}

fn instant(at: NaiveDateTime) -> String {
    clock::from_db(at).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn coding(code: Code) -> Value {
    json!({ "system": code.system, "code": code.code, "display": code.display })
}

fn concept(codes: &[Code], text: &str) -> Value {
    json!({ "coding": codes.iter().map(|c| coding(*c)).collect::<Vec<_>>(), "text": text })
}

fn meta(updated_at: NaiveDateTime) -> Value {
    json!({ "lastUpdated": instant(updated_at) })
}

fn uuid_identifier(id: Uuid) -> Value {
    json!({ "system": codes::URI_IDENTIFIER, "value": format!("urn:uuid:{id}") })
}

pub fn patient(row: &PatientRow) -> Value {
    let id = row.id.as_uuid();
    let mut identifiers = vec![uuid_identifier(id)];
    if let Some(reference) = &row.external_ref {
        identifiers
            .push(json!({ "type": { "text": "the clinic's reference" }, "value": reference }));
    }
    json!({
        "resourceType": "Patient",
        "id": id,
        "meta": meta(row.updated_at),
        "identifier": identifiers,
        "gender": codes::gender(row.sex),
        "birthDate": format!("{:04}", row.birth_year),
    })
}

/// The resources of one assessment: its `QuestionnaireResponse` (for the instruments
/// exchanged as one), the score `Observation`, and for an instrument with a LOINC panel the
/// panel with its members (PHQ-9 item 9 among them). A removed assessment's resources are
/// `entered-in-error`.
pub fn assessment(row: &AssessmentRow, refs: Refs<'_>) -> Vec<Value> {
    let id = row.id.as_uuid();
    let subject = refs.to("Patient", row.patient_id.as_uuid());
    let status = status_of(row.deleted_at, "final");
    let definition = row.instrument.definition();
    let mut out = Vec::new();
    let questionnaire = Questionnaire::of(row.instrument);
    if let Some(q) = questionnaire {
        out.push(questionnaire_response(row, q, refs));
    }
    let observation = |oid: Uuid, code: Code, value: Value| {
        let mut o = json!({
            "resourceType": "Observation",
            "id": oid,
            "meta": meta(row.updated_at),
            "status": status,
            "category": [{ "coding": [{ "system": codes::OBSERVATION_CATEGORY, "code": "survey", "display": "Survey" }] }],
            "code": concept(&[code], code.display),
            "subject": subject,
            "effectiveDateTime": instant(row.taken_at),
        });
        if !value.is_null() {
            o["valueInteger"] = value;
        }
        if questionnaire.is_some() {
            o["derivedFrom"] = json!([refs.to("QuestionnaireResponse", id)]);
        }
        o
    };
    let score_id = derived(id, "score");
    let mut score = observation(
        score_id,
        codes::score_code(row.instrument),
        json!(row.total),
    );
    if let Some(band) = &row.band {
        score["interpretation"] = json!([{ "text": band }]);
    }
    out.push(score);
    if let Some(panel) = codes::panel_code(row.instrument) {
        let mut members = vec![refs.to("Observation", score_id)];
        let item9 = definition.loinc.and_then(|l| l.item9);
        if let (Some(code), Some(value)) = (item9, row.items.0.get(8)) {
            let item9_id = derived(id, "item9");
            let item_code = questionnaire
                .and_then(|q| q.items.iter().find(|c| c.code == code))
                .copied()
                .unwrap_or(Code {
                    system: codes::LOINC,
                    code,
                    display: "item 9",
                });
            out.push(observation(item9_id, item_code, json!(value)));
            members.push(refs.to("Observation", item9_id));
        }
        let mut panel_observation = observation(derived(id, "panel"), panel, Value::Null);
        panel_observation["hasMember"] = json!(members);
        out.push(panel_observation);
    }
    out
}

fn questionnaire_response(row: &AssessmentRow, q: &Questionnaire, refs: Refs<'_>) -> Value {
    let id = row.id.as_uuid();
    let items: Vec<Value> = codes::items_of(q, &row.items.0)
        .into_iter()
        .map(|(code, given)| {
            let value = match given {
                Given::Coding(answer) => json!({ "valueCoding": coding(answer) }),
                Given::Integer(v) => json!({ "valueInteger": v }),
            };
            json!({ "linkId": code.code, "text": code.display, "answer": [value] })
        })
        .collect();
    let mut response = json!({
        "resourceType": "QuestionnaireResponse",
        "id": id,
        "meta": {
            "lastUpdated": instant(row.updated_at),
            "profile": [codes::US_CORE_QUESTIONNAIRE_RESPONSE],
        },
        "identifier": uuid_identifier(id),
        "questionnaire": q.canonical,
        "status": status_of(row.deleted_at, "completed"),
        "subject": refs.to("Patient", row.patient_id.as_uuid()),
        "authored": instant(row.taken_at),
        "item": items,
    });
    if row.submitted_by == Rater::Patient {
        response["author"] = refs.to("Patient", row.patient_id.as_uuid());
    }
    response
}

/// A session as a `MedicationAdministration`, followed by its vital signs as `Observation`s
/// (before, each reading during, after), each part of the administration.
pub fn session(row: &SessionRow, refs: Refs<'_>) -> Vec<Value> {
    let id = row.id.as_uuid();
    let route = codes::route_code(row.route);
    let mut period = json!({ "start": instant(row.started_at) });
    if let Some(end) = row.ended_at {
        period["end"] = json!(instant(end));
    }
    let status = status_of(row.deleted_at, codes::administration_status(row.status));
    let mut administration = json!({
        "resourceType": "MedicationAdministration",
        "id": id,
        "meta": meta(row.updated_at),
        "status": status,
        "medicationCodeableConcept": { "text": "ketamine" },
        "subject": refs.to("Patient", row.patient_id.as_uuid()),
        "effectivePeriod": period,
        "dosage": {
            "text": format!("{} mg/kg at {} kg", row.dose_mg_per_kg, row.weight_kg),
            "route": concept(&[route], route.display),
            "dose": { "value": row.total_dose_mg, "unit": "mg", "system": codes::UCUM, "code": "mg" },
        },
    });
    if let Some(reason) = &row.hold_reason {
        administration["statusReason"] = json!([{ "text": reason }]);
    }
    let mut out = vec![administration];
    let part_of = refs.to("MedicationAdministration", id);
    let start = clock::from_db(row.started_at);
    let given = row.administration();
    let mut measured = vec![("pre".to_owned(), start, given.pre)];
    for (n, reading) in given.readings.iter().enumerate() {
        let at = start + Duration::minutes(reading.minutes_after_start.into());
        measured.push((format!("reading-{n}"), at, reading.vitals));
    }
    let end = row.ended_at.map_or(start, clock::from_db);
    measured.push(("post".to_owned(), end, given.post));
    for (role, at, v) in measured {
        out.extend(vital_signs(row, refs, &part_of, &role, at, v));
    }
    out
}

fn vital_signs(
    row: &SessionRow,
    refs: Refs<'_>,
    part_of: &Value,
    role: &str,
    at: DateTime<Utc>,
    v: VitalSigns,
) -> Vec<Value> {
    let session = row.id.as_uuid();
    let status = status_of(row.deleted_at, "final");
    let base = |kind: &str, profile: &str, code: Value| {
        json!({
            "resourceType": "Observation",
            "id": derived(session, &format!("{role}/{kind}")),
            "meta": { "lastUpdated": instant(row.updated_at), "profile": [profile] },
            "status": status,
            "category": [{ "coding": [{ "system": codes::OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs" }] }],
            "code": code,
            "subject": refs.to("Patient", row.patient_id.as_uuid()),
            "effectiveDateTime": at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "partOf": [part_of],
        })
    };
    let quantity = |value: i32, unit: &str| json!({ "value": value, "unit": unit, "system": codes::UCUM, "code": unit });
    let mut out = Vec::new();
    if let (Some(systolic), Some(diastolic)) = (v.systolic, v.diastolic) {
        let mut bp = base(
            "bp",
            codes::PROFILE_BLOOD_PRESSURE,
            concept(&[codes::BLOOD_PRESSURE_PANEL], "Blood pressure"),
        );
        bp["component"] = json!([
            { "code": concept(&[codes::SYSTOLIC], "Systolic"), "valueQuantity": quantity(systolic, "mm[Hg]") },
            { "code": concept(&[codes::DIASTOLIC], "Diastolic"), "valueQuantity": quantity(diastolic, "mm[Hg]") },
        ]);
        out.push(bp);
    }
    if let Some(rate) = v.heart_rate {
        let mut hr = base(
            "hr",
            codes::PROFILE_HEART_RATE,
            concept(&[codes::HEART_RATE], "Heart rate"),
        );
        hr["valueQuantity"] = quantity(rate, "/min");
        out.push(hr);
    }
    if let Some(spo2) = v.spo2 {
        let mut o = base(
            "spo2",
            codes::PROFILE_OXYGEN_SATURATION,
            concept(&codes::OXYGEN_SATURATION, "Oxygen saturation"),
        );
        o["valueQuantity"] = quantity(spo2, "%");
        out.push(o);
    }
    out
}

/// A side effect as an `AdverseEvent` suspected of the session's administration. R4's
/// AdverseEvent has no status: a removed one is tagged `entered-in-error`.
pub fn side_effect(row: &SideEffectRow, refs: Refs<'_>) -> Value {
    let (grade, number) = codes::ctcae_grade(row.severity);
    let serious = codes::is_serious(row.severity);
    let mut event = json!({
        "resourceType": "AdverseEvent",
        "id": row.id.as_uuid(),
        "meta": meta(row.updated_at),
        "extension": [{ "url": codes::AE_GRADE, "valueCodeableConcept": concept(&[grade], &format!("CTCAE grade {number}")) }],
        "actuality": "actual",
        "event": concept(&codes::effect_codes(row.effect), row.effect.as_str()),
        "subject": refs.to("Patient", row.patient_id.as_uuid()),
        "date": instant(row.onset_at),
        "seriousness": { "coding": [{
            "system": codes::ADVERSE_EVENT_SERIOUSNESS,
            "code": if serious { "serious" } else { "non-serious" },
            "display": if serious { "Serious" } else { "Non-serious" },
        }] },
        "severity": { "coding": [{
            "system": codes::ADVERSE_EVENT_SEVERITY,
            "code": codes::adverse_event_severity(row.severity),
        }] },
        "outcome": { "coding": [{
            "system": codes::ADVERSE_EVENT_OUTCOME,
            "code": if row.resolved_at.is_some() { "resolved" } else { "ongoing" },
        }] },
    });
    let session = row.session_id.as_uuid();
    if refs.holds(session) {
        let suspect = refs.to("MedicationAdministration", session);
        event["suspectEntity"] = json!([{ "instance": suspect }]);
    }
    if let Some(resolved) = row.resolved_at {
        event["extension"]
            .as_array_mut()
            .expect("the extension list built above")
            .push(json!({ "url": format!("{}/StructureDefinition/resolved-at", codes::SERVICE), "valueDateTime": instant(resolved) }));
    }
    if row.deleted_at.is_some() {
        event["meta"]["tag"] = json!([{ "system": format!("{}/CodeSystem/record-state", codes::SERVICE), "code": "entered-in-error" }]);
    }
    event
}

/// A flag as a `DetectedIssue`: its evidence the score or the adverse event that raised it,
/// or the administration it concerns; an acknowledgement is its mitigation.
pub fn flag(row: &FlagRow, refs: Refs<'_>) -> Value {
    let code = codes::flag_code(row.kind);
    let mut issue = json!({
        "resourceType": "DetectedIssue",
        "id": row.id.as_uuid(),
        "status": "final",
        "code": concept(&[code], row.kind.as_str()),
        "severity": codes::issue_severity(row.level),
        "patient": refs.to("Patient", row.patient_id.as_uuid()),
        "identifiedDateTime": instant(row.raised_at),
        "detail": row.detail,
    });
    // What raised it: the score or the adverse event (evidence), or the administration it
    // concerns (implicated).
    let linked = match (row.record_type, row.record_id.parse::<Uuid>().ok()) {
        (FlaggedRecord::Assessment, Some(id)) => Some((id, "Observation", derived(id, "score"))),
        (FlaggedRecord::SideEffect, Some(id)) => Some((id, "AdverseEvent", id)),
        (FlaggedRecord::Session, Some(id)) => Some((id, "MedicationAdministration", id)),
        _ => None,
    };
    if let Some((_, kind, target)) = linked.filter(|(record, ..)| refs.holds(*record)) {
        let reference = refs.to(kind, target);
        if row.record_type == FlaggedRecord::Session {
            issue["implicated"] = json!([reference]);
        } else {
            issue["evidence"] = json!([{ "detail": [reference] }]);
        }
    }
    if let Some(at) = row.acknowledged_at {
        let mut mitigation =
            json!({ "action": { "text": "acknowledged by a clinician" }, "date": instant(at) });
        if let Some(note) = &row.note {
            mitigation["action"]["text"] = json!(format!("acknowledged by a clinician: {note}"));
        }
        issue["mitigation"] = json!([mitigation]);
    }
    issue
}

/// The consent history as `Consent`s, one per change: each grant or withdrawal holds from
/// its moment until the next change (then `inactive`), the latest one `active`.
pub fn consents(history: &[ConsentEventRow], refs: Refs<'_>) -> Vec<Value> {
    history
        .iter()
        .enumerate()
        .map(|(n, event)| {
            let next = history.get(n + 1);
            let mut period = json!({ "start": instant(event.occurred_at) });
            if let Some(next) = next {
                period["end"] = json!(instant(next.occurred_at));
            }
            json!({
                "resourceType": "Consent",
                "id": event.id.as_uuid(),
                "status": if next.is_some() { "inactive" } else { "active" },
                "scope": { "coding": [{ "system": codes::CONSENT_SCOPE, "code": "research", "display": "Research" }] },
                "category": [{ "coding": [{ "system": codes::CONSENT_CATEGORY, "code": "research", "display": "research information access" }] }],
                "patient": refs.to("Patient", event.patient_id.as_uuid()),
                "dateTime": instant(event.occurred_at),
                "policyRule": { "coding": [{
                    "system": codes::ACT_CODE,
                    "code": if event.granted { "OPTIN" } else { "OPTOUT" },
                }] },
                "provision": { "type": if event.granted { "permit" } else { "deny" }, "period": period },
            })
        })
        .collect()
}

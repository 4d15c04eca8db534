//! Patients: registered by a clinician of their clinic, read by their clinicians and by
//! themselves, changed by their clinicians; each grant or withdrawal of research consent kept.

use chrono::{DateTime, Datelike, Utc};

use crate::call::caller::Caller;
use crate::call::{Call, Event, Expected};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::{ClinicId, ConsentEventId, PatientId};
use crate::domain::patient::{self, BirthYear, Indication, RiskFactor, Sex};
use crate::domain::text::{self, Shape};
use crate::domain::time;
use crate::error::ApiError;
use crate::evaluation::{self, Change};
use crate::records::{created_or_replayed, optional, Created};
use crate::store::consent::{self, ConsentEventRow};
use crate::store::patients::{self, PatientRecord, PatientRow, RiskFactorRow};
use crate::store::scope::Scope;
use crate::store::{DbConnection, Page, StoreError, Window};

/// A patient as a registration or a change describes them.
pub struct PatientDraft {
    pub external_ref: Option<String>,
    pub birth_year: i32,
    pub sex: Sex,
    pub indications: Vec<Indication>,
    pub risk_factors: Vec<RiskFactorDraft>,
    pub research_consent: bool,
}

pub struct RiskFactorDraft {
    pub factor: RiskFactor,
    /// When the clinic noted it; now when absent.
    pub noted_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
}

/// Checks a draft and builds the record it describes; `current` keeps what a change must not
/// reset (the creation time, the time consent was given).
fn build(
    draft: PatientDraft,
    id: PatientId,
    clinic: ClinicId,
    body_hash: String,
    current: Option<&PatientRow>,
) -> Result<PatientRecord, ApiError> {
    let now = clock::now();
    let birth_year = BirthYear::parse(draft.birth_year, now.year())?;
    let indications = patient::indications(&draft.indications)?;
    let external_ref = draft
        .external_ref
        .as_deref()
        .map(patient::external_ref)
        .transpose()?;
    let mut factors: Vec<RiskFactor> = draft.risk_factors.iter().map(|r| r.factor).collect();
    factors.sort();
    factors.dedup();
    if factors.len() != draft.risk_factors.len() {
        return Err(ApiError::invalid(
            "risk_factors",
            "must not repeat a risk factor",
        ));
    }
    let mut risk_factors = Vec::new();
    for (i, factor) in draft.risk_factors.into_iter().enumerate() {
        let noted_at = factor.noted_at.unwrap_or(now);
        time::recorded(&format!("risk_factors.{i}.noted_at"), noted_at, now)?;
        let note = factor
            .note
            .as_deref()
            .map(|n| text::optional(&format!("risk_factors.{i}.note"), n, Shape::Note, 2000))
            .transpose()?
            .flatten();
        risk_factors.push(RiskFactorRow {
            patient_id: id,
            factor: factor.factor,
            noted_at: clock::to_db(noted_at),
            note,
        });
    }
    let db_now = clock::to_db(now);
    let consented_at = match current {
        Some(row) if row.research_consent && draft.research_consent => row.consented_at,
        _ => draft.research_consent.then_some(db_now),
    };
    Ok(PatientRecord {
        row: PatientRow {
            change_seq: crate::store::UNSYNCED,
            id,
            clinic_id: clinic,
            external_ref,
            birth_year: birth_year.get(),
            sex: draft.sex,
            research_consent: draft.research_consent,
            consented_at,
            body_hash: current.map_or(body_hash, |r| r.body_hash.clone()),
            created_at: current.map_or(db_now, |r| r.created_at),
            updated_at: db_now,
            version: current.map_or(1, |r| r.version),
        },
        indications,
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
            id: ConsentEventId::random(),
            patient_id: row.id,
            granted: row.research_consent,
            occurred_at: row.updated_at,
            actor_id: Some(caller.user_id),
        },
    )
}

/// Registers a patient in the clinician's clinic; idempotent by client id.
pub async fn register(
    call: &Call,
    id: PatientId,
    draft: PatientDraft,
    body_hash: String,
) -> Result<Created<PatientRecord>, ApiError> {
    let scope = call.clinician_scope()?;
    let Scope::Clinic(clinic) = scope else {
        return Err(ApiError::Forbidden);
    };
    let record = build(draft, id, clinic, body_hash, None)?;
    call.transaction(move |conn, call| {
        created_or_replayed(
            conn,
            |conn| optional(patients::find(conn, &scope, id)),
            |found| found.row.body_hash == record.row.body_hash,
            |conn| {
                if !patients::insert(conn, &record)? {
                    return Ok(None);
                }
                if record.row.research_consent {
                    record_consent(conn, &record.row, &call.caller)?;
                }
                call.audit(conn, Event::record(Action::PatientCreated, id, id))?;
                patients::find(conn, &scope, id).map(Some)
            },
        )
    })
    .await
}

/// The clinic's patients, registered in a range or changed since an instant; one audit event
/// for each patient on the page.
pub async fn list(
    call: &Call,
    window: Window,
    page: Page,
) -> Result<(Vec<PatientRecord>, Window), ApiError> {
    let scope = call.clinician_scope()?;
    call.transaction(move |conn, call| {
        let window = window.fixed(conn)?;
        let records = patients::list(conn, &scope, &window, &page)?;
        for record in &records {
            let id = record.row.id;
            call.audit(conn, Event::record(Action::PatientListed, id, id))?;
        }
        Ok((records, window))
    })
    .await
}

/// One patient: for a clinician of their clinic, or the patient themselves.
pub async fn read(call: &Call, id: PatientId) -> Result<PatientRecord, ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        let record = patients::find(conn, &scope, id)?;
        call.audit(conn, Event::record(Action::PatientRead, id, id))?;
        Ok(record)
    })
    .await
}

/// Changes a patient: `change` turns the stored record into the draft of its new form.
pub async fn update(
    call: &Call,
    id: PatientId,
    expected: Expected,
    change: impl FnOnce(&PatientRecord) -> Result<PatientDraft, ApiError> + Send + 'static,
) -> Result<PatientRecord, ApiError> {
    let scope = call.clinician_scope()?;
    call.transaction(move |conn, call| {
        let current = patients::find(conn, &scope, id)?;
        if !expected.admits(current.row.version) {
            return Err(ApiError::PreconditionFailed);
        }
        let draft = change(&current)?;
        let record = build(
            draft,
            id,
            current.row.clinic_id,
            String::new(),
            Some(&current.row),
        )?;
        patients::replace(conn, &record, current.row.version)?;
        if record.row.research_consent != current.row.research_consent {
            record_consent(conn, &record.row, &call.caller)?;
        }
        evaluation::refresh(conn, &call.clinical(), id, Change::Patient)?;
        call.audit(conn, Event::record(Action::PatientUpdated, id, id))?;
        Ok(patients::find(conn, &scope, id)?)
    })
    .await
}

/// Every grant and withdrawal of the patient's research consent, oldest first.
pub async fn consent_history(call: &Call, id: PatientId) -> Result<Vec<ConsentEventRow>, ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, id)?;
        call.audit(conn, Event::record(Action::ConsentHistoryRead, id, id))?;
        Ok(consent::of_patient(conn, id)?)
    })
    .await
}

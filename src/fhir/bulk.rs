//! The clinic-wide export by the FHIR Bulk Data pattern, for a clinic's EHR to pull: a
//! clinician kicks it off, any process writes it a page of patients at a time (one part per
//! resource type, committed with the job's cursor and lease, so a job survives the process
//! that began it), the client polls the job, reads the manifest and downloads one NDJSON file
//! per resource type, streamed a part at a time; memory stays flat at both ends. Each
//! download names the patients it shows in the audit trail.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde_json::Value;

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::fhir::{ExportStatus, ResourceType};
use crate::domain::ids::{BulkExportId, ClinicId, PatientId};
use crate::error::ApiError;
use crate::store::fhir_exports::{self, ExportRow, PartRow};
use crate::store::scope::Scope;
use crate::store::{self, Db, StoreError};

use super::resources::Refs;
use super::Exported;

/// Patients per page: one part per resource type.
pub const PAGE: i64 = 50;
/// How long a process holds a job between two pages before another may take it over.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often each process looks for a job to write.
pub const POLL: Duration = Duration::from_secs(1);
/// What a poll of a running job is told to wait, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 2;
/// How long a finished export's files are kept (the manifest's links work until then).
pub const KEPT: Duration = Duration::from_secs(24 * 60 * 60);

/// What an export asks for.
pub struct Asked {
    pub since: Option<DateTime<Utc>>,
    pub types: Vec<ResourceType>,
}

/// Where a job stands, as its status poll tells it.
pub enum Progress {
    Running {
        done: i32,
        total: i32,
    },
    Complete {
        transaction_time: DateTime<Utc>,
        files: Vec<(ResourceType, i64)>,
        /// The kick-off's query string, as the manifest repeats it.
        request: String,
    },
}

fn clinic_of(call: &Call) -> Result<ClinicId, ApiError> {
    match call.clinician_scope()? {
        Scope::Clinic(clinic) => Ok(clinic),
        Scope::Patient(_) => Err(ApiError::Forbidden),
    }
}

/// Starts an export of the caller's clinic; its id. 429 while another of the clinic's is
/// being written. Audited.
pub async fn kick_off(call: &Call, asked: Asked) -> Result<BulkExportId, ApiError> {
    let clinic = clinic_of(call)?;
    let requested_by = call.caller.user_id;
    call.transaction(move |conn, call| {
        let now = clock::to_db(clock::now());
        let total = fhir_exports::patients_count(conn, clinic, now)?;
        let types: Vec<&str> = asked.types.iter().map(|t| t.as_str()).collect();
        let row = ExportRow {
            id: BulkExportId::random(),
            clinic_id: clinic,
            requested_by,
            transaction_time: now,
            since: asked.since.map(clock::to_db),
            types: types.join(","),
            status: ExportStatus::InProgress,
            after_patient: None,
            patients_done: 0,
            patients_total: i32::try_from(total).unwrap_or(i32::MAX),
            pages: 0,
            leased_until: None,
            finished_at: None,
        };
        // One export at a time per clinic, since each copies the clinic's records: the
        // database's unique index of the clinic's export in progress holds it, races included.
        match fhir_exports::insert(conn, &row) {
            Err(StoreError::Conflict) => {
                return Err(ApiError::TooManyRequests {
                    retry_after: RETRY_AFTER_SECONDS,
                })
            }
            written => written?,
        }
        call.audit(conn, Event::new(Action::FhirBulkExportStarted).on(row.id))?;
        Ok(row.id)
    })
    .await
}

/// Where the clinic's export stands; 404 for another clinic's or a cancelled one.
pub async fn progress(call: &Call, id: BulkExportId) -> Result<Progress, ApiError> {
    let clinic = clinic_of(call)?;
    call.read(move |conn| {
        let job = fhir_exports::find(conn, clinic, id)?;
        Ok(match job.status {
            ExportStatus::InProgress => Progress::Running {
                done: job.patients_done,
                total: job.patients_total,
            },
            ExportStatus::Complete => Progress::Complete {
                transaction_time: clock::from_db(job.transaction_time),
                files: fhir_exports::line_counts(conn, id)?,
                request: kick_off_query(&job),
            },
        })
    })
    .await
}

/// The query string of the kick-off that made `job`.
fn kick_off_query(job: &ExportRow) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("_type", &job.types);
    if let Some(since) = job.since {
        let since = clock::from_db(since).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        query.append_pair("_since", &since);
    }
    format!("?{}", query.finish())
}

/// Cancels the clinic's export and removes what it wrote. Audited.
pub async fn cancel(call: &Call, id: BulkExportId) -> Result<(), ApiError> {
    let clinic = clinic_of(call)?;
    call.transaction(move |conn, call| {
        if !fhir_exports::delete(conn, clinic, id)? {
            return Err(ApiError::NotFound);
        }
        call.audit(conn, Event::new(Action::FhirBulkExportCancelled).on(id))?;
        Ok(())
    })
    .await
}

/// The NDJSON file of one resource type of the clinic's complete export, a part at a time;
/// each part's patients are audited as read by the caller when it is sent. 404 for a type
/// the export has no line of, or an export not yet complete.
pub async fn file(
    call: &Call,
    id: BulkExportId,
    kind: ResourceType,
) -> Result<impl Stream<Item = Result<String, ApiError>>, ApiError> {
    let clinic = clinic_of(call)?;
    let first = call
        .read(move |conn| {
            let job = fhir_exports::find(conn, clinic, id)?;
            if job.status != ExportStatus::Complete {
                return Err(ApiError::NotFound);
            }
            fhir_exports::part_after(conn, id, kind, None)?.ok_or(ApiError::NotFound)
        })
        .await?;
    let call = call.clone();
    let parts = futures_util::stream::try_unfold(Some(first), move |next| {
        let call = call.clone();
        async move {
            let Some(part) = next else {
                return Ok(None);
            };
            let patients: Vec<PatientId> =
                serde_json::from_str(&part.patients).map_err(|e| ApiError::Internal(e.into()))?;
            call.audit_behind(
                patients
                    .into_iter()
                    .map(|p| Event::record(Action::FhirExported, p, p)),
            )
            .await?;
            let after = part.part;
            let following = call
                .read(move |conn| Ok(fhir_exports::part_after(conn, id, kind, Some(after))?))
                .await?;
            Ok(Some((part.body, following)))
        }
    });
    Ok(parts)
}

/// Writes the exports in progress, in every process: each tick claims one whose lease ran
/// out and writes it to the end, and removes the exports finished more than [`KEPT`] ago.
pub async fn run(db: Db) {
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = write_one(&db).await {
            tracing::warn!(error = %err, "a FHIR bulk export stopped; another tick resumes it");
        }
        if let Err(err) = remove_expired(&db).await {
            tracing::warn!(error = %err, "expired FHIR bulk exports were not removed");
        }
    }
}

fn lease_from_now() -> chrono::NaiveDateTime {
    clock::to_db(clock::now()) + chrono::Duration::from_std(LEASE).unwrap_or_default()
}

/// Claims one export and writes it to the end; whether there was one. A page is read in a
/// read-only transaction (on SQLite, no write lock while fifty records are read) and stored
/// in a short write transaction that holds only if the job is still where this process left
/// it — another that took the job over after a lapsed lease, or a cancel, stops this one.
pub async fn write_one(db: &Db) -> Result<bool, StoreError> {
    let now = clock::to_db(clock::now());
    if !db
        .snapshot(move |conn| fhir_exports::any_due(conn, now))
        .await?
    {
        return Ok(false);
    }
    let claimed = db
        .transaction(move |conn| fhir_exports::claim(conn, now, lease_from_now()))
        .await?;
    let Some(mut job) = claimed else {
        return Ok(false);
    };
    loop {
        let read = job.clone();
        let (next, parts) = db.snapshot(move |conn| next_page(conn, read)).await?;
        let written = job.pages;
        let complete = next.status == ExportStatus::Complete;
        let stored = next.clone();
        db.transaction(move |conn| fhir_exports::write_page(conn, &stored, written, &parts))
            .await?;
        if complete {
            return Ok(true);
        }
        job = next;
    }
}

/// The job's next page: the job as it stands after it, and its parts, one per resource type.
fn next_page(
    conn: &mut store::DbConnection,
    mut job: ExportRow,
) -> Result<(ExportRow, Vec<PartRow>), StoreError> {
    let types = job.resource_types()?;
    let patients = fhir_exports::patients_page(
        conn,
        job.clinic_id,
        job.transaction_time,
        job.after_patient,
        PAGE,
    )?;
    let mut lines: BTreeMap<ResourceType, (Vec<String>, Vec<PatientId>)> = BTreeMap::new();
    for patient in &patients {
        let id = patient.id;
        let record = Exported::load(conn, patient.clone(), job.since)?;
        for resource in record.resources(Refs::Relative) {
            let Some(kind) = type_of(&resource).filter(|k| types.contains(k)) else {
                continue;
            };
            let (text, shown) = lines.entry(kind).or_default();
            text.push(resource.to_string());
            if shown.last() != Some(&id) {
                shown.push(id);
            }
        }
    }
    let mut parts = Vec::new();
    for (kind, (text, shown)) in lines {
        parts.push(PartRow {
            export_id: job.id,
            resource_type: kind,
            part: job.pages,
            lines: i32::try_from(text.len()).unwrap_or(i32::MAX),
            patients: serde_json::to_string(&shown).map_err(|e| StoreError::Integrity(e.into()))?,
            body: text.join("\n") + "\n",
        });
    }
    let complete = (patients.len() as i64) < PAGE;
    job.after_patient = patients.last().map(|p| p.id).or(job.after_patient);
    job.patients_done += i32::try_from(patients.len()).unwrap_or(i32::MAX);
    job.pages += 1;
    job.leased_until = Some(lease_from_now());
    if complete {
        job.status = ExportStatus::Complete;
        job.finished_at = Some(clock::to_db(clock::now()));
    }
    Ok((job, parts))
}

/// Removes the exports finished more than [`KEPT`] ago, with their files.
async fn remove_expired(db: &Db) -> Result<(), StoreError> {
    let before = clock::to_db(clock::now()) - chrono::Duration::from_std(KEPT).unwrap_or_default();
    if db
        .snapshot(move |conn| fhir_exports::any_finished_before(conn, before))
        .await?
    {
        db.transaction(move |conn| fhir_exports::remove_finished_before(conn, before))
            .await?;
    }
    Ok(())
}

fn type_of(resource: &Value) -> Option<ResourceType> {
    resource["resourceType"].as_str()?.parse().ok()
}

//! The controlled tier's export, streamed in two passes over the same patients, a hundred at
//! a time (memory stays flat however many rows): the first counts the quasi-identifier
//! combinations (`research::export::Census`), the second writes the rows k-anonymity allows.
//! Audited when it starts (what it asked, how far it generalised) and when it ends (rows
//! written).

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use futures_util::stream;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::api::context::{Audited, RequestContext};
use crate::api::research::ResearchQuery;
use crate::auth::caller::Caller;
use crate::config::ResearchSettings;
use crate::domain::privacy::Tier;
use crate::error::ApiError;
use crate::research::access;
use crate::research::export::{self, Anonymity, Census, ExportFilter, ExportPatient, ExportRow};
use crate::store::research::{self as facts, ExportBatch};
use crate::store::{audit, Db, DbConnection, StoreError};

/// Patients per database round trip.
const BATCH: i64 = 100;

/// One batch of patients and everything the export needs of them: their records, and each
/// course's adherence band (read only when the filter asks for one).
struct Batch {
    patients: Vec<ExportPatient>,
    records: ExportBatch,
    bands: HashMap<String, &'static str>,
}

fn batch(
    conn: &mut DbConnection,
    after: Option<&str>,
    filter: &ExportFilter,
) -> Result<Batch, StoreError> {
    let patients = facts::patients_page(conn, after, BATCH, filter.sex.as_deref())?;
    let ids: Vec<String> = patients.iter().map(|p| p.0.clone()).collect();
    let records = facts::export_batch(conn, &ids)?;
    let mut bands = HashMap::new();
    if filter.adherence_band.is_some() {
        let plans = crate::api::plan::PlanRecords::load(conn, &ids)?;
        let now = crate::clock::now();
        for course in &records.courses {
            let (completed, due) =
                crate::domain::plan::adherence(&plans.due_for_course(course, now));
            bands.insert(
                course.id.clone(),
                crate::domain::research::adherence_band(completed, due),
            );
        }
    }
    Ok(Batch {
        patients,
        records,
        bands,
    })
}

/// The first pass: how rare each quasi-identifier combination is, at each level.
fn census(
    conn: &mut DbConnection,
    filter: &ExportFilter,
    k: usize,
) -> Result<Anonymity, StoreError> {
    let mut census = Census::default();
    let mut after: Option<String> = None;
    loop {
        let b = batch(conn, after.as_deref(), filter)?;
        for patient in &b.patients {
            let rows = export::rows_of_patient(patient, "", &b.records, filter, &b.bands);
            census.add_patient(&rows);
        }
        if (b.patients.len() as i64) < BATCH {
            return Ok(census.plan(k));
        }
        after = b.patients.last().map(|p| p.0.clone());
    }
}

pub async fn stream(
    caller: Caller,
    query: ResearchQuery,
    ctx: RequestContext,
    (primary, research): (&Db, &Db),
    settings: &ResearchSettings,
) -> Result<HttpResponse, ApiError> {
    let csv = query.csv()?;
    let filter = query.export_filter()?;
    let researcher = caller.user_id.clone();
    if primary
        .run(move |conn| access::tier_of(conn, &researcher))
        .await?
        != Tier::Controlled
    {
        return Err(ApiError::NeedsGrant);
    }
    let k = settings.min_cell;
    let first_pass = filter.clone();
    let plan = research
        .run(move |conn| census(conn, &first_pass, k))
        .await?;
    let audited = |action| {
        ctx.audit(
            Some(&caller),
            Audited {
                action,
                resource_type: "research",
                resource_id: None,
                patient_id: None,
            },
        )
    };
    let mut started = audited("research_export_started");
    started.detail = Some(
        serde_json::json!({"query": query.audit_detail(), "format": if csv { "csv" } else { "ndjson" },
            "generalisation": plan.level, "rows_before_suppression": plan.rows,
            "suppressed_rows": plan.suppressed_rows})
        .to_string(),
    );
    let finished = audited("research_export_completed");
    primary
        .run(move |conn| audit::record(conn, &started))
        .await?;
    let (level, suppressed) = (plan.level, plan.suppressed_rows);
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let (research, primary) = (research.clone(), primary.clone());
    let plan = std::sync::Arc::new(plan);
    let pages = stream::try_unfold(
        (None::<String>, true, false, 0usize),
        move |(after, first_page, done, written)| {
            let (research, primary, filter, plan) = (
                research.clone(),
                primary.clone(),
                filter.clone(),
                plan.clone(),
            );
            let mut finished = finished.clone();
            async move {
                if done {
                    return Ok::<_, ApiError>(None);
                }
                let (cursor, wanted) = (after.clone(), filter.clone());
                let b = research
                    .run(move |conn| batch(conn, cursor.as_deref(), &wanted))
                    .await?;
                let last = b.patients.last().map(|p| p.0.clone());
                let rows: Vec<ExportRow> = b
                    .patients
                    .iter()
                    .flat_map(|p| {
                        let pseudonym = pseudonym(&secret, &p.0);
                        export::rows_of_patient(p, &pseudonym, &b.records, &filter, &b.bands)
                    })
                    .filter_map(|row| plan.apply(row))
                    .collect();
                let written = written + rows.len();
                let out = encode(&rows, csv, first_page)?;
                let done = last.is_none() || b.patients.len() < BATCH as usize;
                if done {
                    finished.detail = Some(serde_json::json!({"rows": written}).to_string());
                    primary
                        .run(move |conn| audit::record(conn, &finished))
                        .await?;
                }
                Ok(Some((web::Bytes::from(out), (last, false, done, written))))
            }
        },
    );
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("X-Export-Generalisation", level.to_string()))
        .insert_header(("X-Export-Suppressed-Rows", suppressed.to_string()))
        .streaming(pages))
}

/// One page of rows as CSV (the header first on the first page, even when there are no rows)
/// or as NDJSON.
fn encode(rows: &[ExportRow], csv: bool, first_page: bool) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    if csv {
        if first_page {
            out.extend(export::csv_header());
        }
        let mut writer = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut out);
        for row in rows {
            writer
                .serialize(row)
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
        }
        writer
            .flush()
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
    } else {
        for row in rows {
            serde_json::to_writer(&mut out, row).map_err(|e| ApiError::Internal(Box::new(e)))?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// A keyed hash of the patient id with this export's secret: stable within the export,
/// unlinkable across exports.
fn pseudonym(secret: &[u8], patient_id: &str) -> String {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(patient_id.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

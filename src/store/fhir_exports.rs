//! Clinic-wide FHIR Bulk Data exports (migration 000017): the jobs, claimed by one process at
//! a time for a lease, and their parts, a page of patients' NDJSON lines per resource type.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::patients::PatientRow;
use super::schema::{fhir_export_parts as fp, fhir_exports as fe, patients};
use super::{DbConnection, StoreError};
use crate::domain::fhir::{ExportStatus, ResourceType};
use crate::domain::ids::{BulkExportId, ClinicId, PatientId, UserId};

#[derive(Debug, Clone, Insertable, Queryable, Selectable, AsChangeset)]
#[diesel(table_name = fe, treat_none_as_null = true)]
pub struct ExportRow {
    pub id: BulkExportId,
    pub clinic_id: ClinicId,
    pub requested_by: UserId,
    pub transaction_time: NaiveDateTime,
    pub since: Option<NaiveDateTime>,
    /// The resource types asked for, comma-separated.
    pub types: String,
    pub status: ExportStatus,
    pub after_patient: Option<PatientId>,
    pub patients_done: i32,
    pub patients_total: i32,
    pub pages: i32,
    pub leased_until: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

impl ExportRow {
    /// The resource types asked for; a stored name outside the set is an integrity error.
    pub fn resource_types(&self) -> Result<Vec<ResourceType>, StoreError> {
        self.types
            .split(',')
            .map(|t| {
                t.parse()
                    .map_err(|e: String| StoreError::Integrity(e.into()))
            })
            .collect()
    }
}

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = fp)]
pub struct PartRow {
    pub export_id: BulkExportId,
    pub resource_type: ResourceType,
    pub part: i32,
    pub lines: i32,
    /// The patients whose data the part holds, as a JSON array of ids.
    pub patients: String,
    pub body: String,
}

pub fn insert(conn: &mut DbConnection, row: &ExportRow) -> Result<(), StoreError> {
    diesel::insert_into(fe::table).values(row).execute(conn)?;
    Ok(())
}

/// The clinic's export.
pub fn find(
    conn: &mut DbConnection,
    clinic: ClinicId,
    id: BulkExportId,
) -> Result<ExportRow, StoreError> {
    Ok(fe::table
        .filter(fe::id.eq(id))
        .filter(fe::clinic_id.eq(clinic))
        .select(ExportRow::as_select())
        .first(conn)?)
}

/// Cancels the clinic's export: the job goes, and its parts with it (ON DELETE CASCADE).
/// Whether there was one.
pub fn delete(
    conn: &mut DbConnection,
    clinic: ClinicId,
    id: BulkExportId,
) -> Result<bool, StoreError> {
    let gone = diesel::delete(
        fe::table
            .filter(fe::id.eq(id))
            .filter(fe::clinic_id.eq(clinic)),
    )
    .execute(conn)?;
    Ok(gone == 1)
}

/// Whether an export in progress has no live lease: a cheap read before a claim's write.
pub fn any_due(conn: &mut DbConnection, now: NaiveDateTime) -> Result<bool, StoreError> {
    let query = fe::table
        .filter(fe::status.eq(ExportStatus::InProgress))
        .filter(fe::leased_until.is_null().or(fe::leased_until.lt(now)));
    Ok(diesel::select(diesel::dsl::exists(query)).get_result(conn)?)
}

/// Whether an export finished before `before`.
pub fn any_finished_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> Result<bool, StoreError> {
    let query = fe::table.filter(fe::finished_at.lt(before));
    Ok(diesel::select(diesel::dsl::exists(query)).get_result(conn)?)
}

/// Removes the exports finished before `before`, with their parts.
pub fn remove_finished_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(fe::table.filter(fe::finished_at.lt(before))).execute(conn)?;
    Ok(())
}

/// Claims the oldest export in progress whose lease has run out, for a lease until
/// `lease_until`; on PostgreSQL skipping one another process holds. Call in a write
/// transaction.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> Result<Option<ExportRow>, StoreError> {
    macro_rules! due {
        () => {
            fe::table
                .filter(fe::status.eq(ExportStatus::InProgress))
                .filter(fe::leased_until.is_null().or(fe::leased_until.lt(now)))
                .order(fe::transaction_time.asc())
                .select(ExportRow::as_select())
        };
    }
    let found: Option<ExportRow> = match conn {
        DbConnection::Postgres(pg) => due!().for_update().skip_locked().first(pg).optional()?,
        DbConnection::Sqlite(lite) => due!().first(lite).optional()?,
    };
    let Some(mut row) = found else {
        return Ok(None);
    };
    diesel::update(fe::table.find(row.id))
        .set(fe::leased_until.eq(lease_until))
        .execute(conn)?;
    row.leased_until = Some(lease_until);
    Ok(Some(row))
}

/// The clinic's patients registered by `registered_by`, in id order after `after`: one page.
pub fn patients_page(
    conn: &mut DbConnection,
    clinic: ClinicId,
    registered_by: NaiveDateTime,
    after: Option<PatientId>,
    limit: i64,
) -> Result<Vec<PatientRow>, StoreError> {
    let mut query = patients::table
        .filter(patients::clinic_id.eq(clinic))
        .filter(patients::created_at.le(registered_by))
        .select(PatientRow::as_select())
        .order(patients::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(patients::id.gt(after));
    }
    Ok(query.load(conn)?)
}

/// How many of the clinic's patients were registered by `registered_by`.
pub fn patients_count(
    conn: &mut DbConnection,
    clinic: ClinicId,
    registered_by: NaiveDateTime,
) -> Result<i64, StoreError> {
    Ok(patients::table
        .filter(patients::clinic_id.eq(clinic))
        .filter(patients::created_at.le(registered_by))
        .count()
        .get_result(conn)?)
}

/// Stores one page's parts and the job as it stands after them (its cursor, counts, status
/// and renewed lease) — only if the job still has `written` pages, as the writer left it: a
/// job another process took over, or one cancelled, is Stale, and nothing is stored.
pub fn write_page(
    conn: &mut DbConnection,
    job: &ExportRow,
    written: i32,
    parts: &[PartRow],
) -> Result<(), StoreError> {
    let moved = diesel::update(fe::table.find(job.id).filter(fe::pages.eq(written)))
        .set(job)
        .execute(conn)?;
    if moved == 0 {
        return Err(StoreError::Stale);
    }
    for part in parts {
        diesel::insert_into(fp::table).values(part).execute(conn)?;
    }
    Ok(())
}

/// The resource types that have lines in the export, with how many, in the service's order.
pub fn line_counts(
    conn: &mut DbConnection,
    id: BulkExportId,
) -> Result<Vec<(ResourceType, i64)>, StoreError> {
    let counts: Vec<(ResourceType, Option<i64>)> = fp::table
        .filter(fp::export_id.eq(id))
        .group_by(fp::resource_type)
        .select((fp::resource_type, diesel::dsl::sum(fp::lines)))
        .load(conn)?;
    let mut counts: Vec<_> = counts
        .into_iter()
        .map(|(kind, n)| (kind, n.unwrap_or(0)))
        .collect();
    counts.sort();
    Ok(counts)
}

/// The part of `kind` after part `after`: one part at a time, so a download holds one.
pub fn part_after(
    conn: &mut DbConnection,
    id: BulkExportId,
    kind: ResourceType,
    after: Option<i32>,
) -> Result<Option<PartRow>, StoreError> {
    Ok(fp::table
        .filter(fp::export_id.eq(id))
        .filter(fp::resource_type.eq(kind))
        .filter(fp::part.gt(after.unwrap_or(-1)))
        .order(fp::part.asc())
        .select(PartRow::as_select())
        .first(conn)
        .optional()?)
}

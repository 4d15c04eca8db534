//! The flag worklist. Raising is idempotent: one flag per kind per record, however many
//! writers race, because the database's unique key refuses the second.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{flags, patients};
use super::scope::Scope;
use super::{DbConnection, Page, StoreError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = flags)]
pub struct FlagRow {
    pub id: String,
    pub patient_id: String,
    pub kind: String,
    pub level: String,
    pub level_rank: i32,
    pub record_type: String,
    pub record_id: String,
    pub detail: String,
    pub raised_at: NaiveDateTime,
    pub status: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub note: Option<String>,
}

/// Inserts the flag unless one of its kind exists for its record; true when inserted.
pub fn raise(conn: &mut DbConnection, row: &FlagRow) -> Result<bool, StoreError> {
    // A savepoint, so that a refused duplicate does not abort the writer's transaction.
    let inserted =
        conn.transaction(|conn| diesel::insert_into(flags::table).values(row).execute(conn));
    match inserted.map_err(StoreError::from) {
        Ok(n) => Ok(n == 1),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The (kind, record) pairs already flagged for a patient.
pub fn existing(
    conn: &mut DbConnection,
    patient_id: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(flags::table
        .filter(flags::patient_id.eq(patient_id))
        .select((flags::kind, flags::record_id))
        .load(conn)?)
}

pub fn for_records(
    conn: &mut DbConnection,
    record_ids: &[String],
) -> Result<Vec<FlagRow>, StoreError> {
    Ok(flags::table
        .filter(flags::record_id.eq_any(record_ids))
        .order((flags::level_rank.asc(), flags::raised_at.asc()))
        .select(FlagRow::as_select())
        .load(conn)?)
}

#[derive(Debug, Default)]
pub struct FlagFilter {
    pub status: Option<String>,
    pub level: Option<String>,
    pub kind: Option<String>,
    pub patient_id: Option<String>,
}

/// The worklist in its order: urgent first, then high, then info; oldest first within a
/// level. The page cursor's id carries the level rank as `rank:id`.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &FlagFilter,
    page: &Page,
) -> Result<Vec<FlagRow>, StoreError> {
    let query = flags::table
        .inner_join(patients::table)
        .select(FlagRow::as_select())
        .into_boxed();
    let mut query = in_scope!(query, scope);
    if let Some(status) = &filter.status {
        query = query.filter(flags::status.eq(status.clone()));
    }
    if let Some(level) = &filter.level {
        query = query.filter(flags::level.eq(level.clone()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(flags::kind.eq(kind.clone()));
    }
    if let Some(patient) = &filter.patient_id {
        query = query.filter(flags::patient_id.eq(patient.clone()));
    }
    if let Some((at, key)) = &page.after {
        // Checked by the handler; a malformed key matches from the start.
        let (rank, id) = key.split_once(':').unwrap_or(("0", ""));
        let rank: i32 = rank.parse().unwrap_or(0);
        query = query.filter(
            flags::level_rank
                .gt(rank)
                .or(flags::level_rank.eq(rank).and(
                    flags::raised_at
                        .gt(*at)
                        .or(flags::raised_at.eq(*at).and(flags::id.gt(id.to_owned()))),
                )),
        );
    }
    Ok(query
        .order((
            flags::level_rank.asc(),
            flags::raised_at.asc(),
            flags::id.asc(),
        ))
        .limit(page.limit)
        .load(conn)?)
}

pub fn find(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<FlagRow, StoreError> {
    find_in_scope!(conn, flags, FlagRow, scope, id)
}

/// Acknowledges an open flag; false when it was acknowledged already.
pub fn acknowledge(
    conn: &mut DbConnection,
    id: &str,
    by: &str,
    note: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let updated = diesel::update(flags::table.find(id).filter(flags::status.eq("open")))
        .set((
            flags::status.eq("acknowledged"),
            flags::acknowledged_by.eq(by),
            flags::acknowledged_at.eq(now),
            flags::note.eq(note),
        ))
        .execute(conn)?;
    Ok(updated == 1)
}

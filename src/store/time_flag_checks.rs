//! When the sweep next reads each patient's record for the flags that time raises (migration
//! 000012): removed by a write that could bring such a flag closer, put back by the sweep.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::{patients, time_flag_checks as tfc};
use super::{DbConnection, StoreError};
use crate::domain::ids::PatientId;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tfc)]
pub struct TimeFlagCheckRow {
    pub patient_id: PatientId,
    /// The first instant another flag falls due; `None` while none will.
    pub next_at: Option<NaiveDateTime>,
    /// The persistence times of side effects the instant was found with.
    pub persistence: String,
}

/// Removes the patient's row: the write may have brought a flag closer.
pub fn forget_patient(conn: &mut DbConnection, patient: PatientId) -> Result<(), StoreError> {
    diesel::delete(tfc::table.filter(tfc::patient_id.eq(patient))).execute(conn)?;
    Ok(())
}

/// The patients whose record the sweep must read at `now`: those with no row holding past
/// `now` for these persistence times. Every patient is read once and then only again when
/// their row passes or a write removes it, so no guess at who could have such a flag (an open
/// course, say: a closed course's last session can still miss its follow-up) can leave one out.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    persistence: &str,
) -> Result<Vec<PatientId>, StoreError> {
    let holding = tfc::table
        .filter(tfc::patient_id.eq(patients::id))
        .filter(tfc::persistence.eq(persistence))
        .filter(tfc::next_at.is_null().or(tfc::next_at.gt(now)));
    Ok(patients::table
        .filter(not(exists(holding)))
        .select(patients::id)
        .order(patients::id)
        .load(conn)?)
}

/// Stores `rows`, in place of any their patients had.
pub fn put(conn: &mut DbConnection, rows: &[TimeFlagCheckRow]) -> Result<(), StoreError> {
    let ids: Vec<PatientId> = rows.iter().map(|r| r.patient_id).collect();
    diesel::delete(tfc::table.filter(tfc::patient_id.eq_any(&ids))).execute(conn)?;
    // One statement for the rows; diesel inserts several rows per engine, not through the
    // connection both share.
    let insert = diesel::insert_into(tfc::table).values(rows);
    match conn {
        DbConnection::Postgres(pg) => insert.execute(pg)?,
        DbConnection::Sqlite(lite) => insert.execute(lite)?,
    };
    Ok(())
}

//! When the sweep next reads each patient's record for the flags that time raises (migration
//! 000012): removed by a write that could bring such a flag closer, put back by the sweep.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::{courses, patients, side_effects, time_flag_checks as tfc};
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

/// The patients whose record the sweep must read at `now`: those who could have a flag that
/// time raises (an unresolved side effect, an open course) and have no row holding past
/// `now` for these persistence times.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    persistence: &str,
) -> Result<Vec<PatientId>, StoreError> {
    let holding = tfc::table
        .filter(tfc::patient_id.eq(patients::id))
        .filter(tfc::persistence.eq(persistence))
        .filter(tfc::next_at.is_null().or(tfc::next_at.gt(now)));
    let unresolved = side_effects::table
        .filter(side_effects::patient_id.eq(patients::id))
        .filter(side_effects::resolved_at.is_null())
        .filter(side_effects::deleted_at.is_null());
    let open_course = courses::table
        .filter(courses::patient_id.eq(patients::id))
        .filter(courses::closed.eq(false));
    Ok(patients::table
        .filter(exists(unresolved).or(exists(open_course)))
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

//! Each course's measurement-plan adherence as it stands until an instant (migration 000011):
//! removed by the database itself on every write to the patient's courses, sessions and scores
//! (migration 000019's triggers), put back by the sweep.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{course_adherence as ca, courses, patients};
use super::{DbConnection, StoreError};
use crate::domain::ids::{CourseId, PatientId};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = ca)]
pub struct CourseAdherenceRow {
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub completed: i32,
    pub due: i32,
    /// The instant the counts were computed for.
    pub computed_at: NaiveDateTime,
    /// The first instant the counts may no longer hold.
    pub valid_until: NaiveDateTime,
}

/// The courses of consenting patients — the only ones research reads — whose counts are
/// missing or no longer hold at `now`, with their patients.
pub fn expired(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<Vec<(CourseId, PatientId)>, StoreError> {
    Ok(courses::table
        .inner_join(patients::table)
        .left_join(ca::table)
        .filter(patients::research_consent.eq(true))
        .filter(ca::course_id.is_null().or(ca::valid_until.le(now)))
        .select((courses::id, courses::patient_id))
        .load(conn)?)
}

/// The counts (completed, due) of those of `ids` that hold at `now`: computed for no later, and
/// valid past it.
pub fn holding(
    conn: &mut DbConnection,
    ids: &[CourseId],
    now: NaiveDateTime,
) -> Result<HashMap<CourseId, (usize, usize)>, StoreError> {
    let mut counts = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(super::ids_per_statement(conn)) {
        let rows: Vec<(CourseId, i32, i32)> = ca::table
            .filter(ca::course_id.eq_any(chunk))
            .filter(ca::computed_at.le(now).and(ca::valid_until.gt(now)))
            .select((ca::course_id, ca::completed, ca::due))
            .load(conn)?;
        for (id, completed, due) in rows {
            // The table's checks keep both counts at zero or above.
            if let (Ok(completed), Ok(due)) = (usize::try_from(completed), usize::try_from(due)) {
                counts.insert(id, (completed, due));
            }
        }
    }
    Ok(counts)
}

/// Stores `rows`, in place of any their courses had.
pub fn put(conn: &mut DbConnection, rows: &[CourseAdherenceRow]) -> Result<(), StoreError> {
    for chunk in rows.chunks(500) {
        let ids: Vec<CourseId> = chunk.iter().map(|r| r.course_id).collect();
        diesel::delete(ca::table.filter(ca::course_id.eq_any(&ids))).execute(conn)?;
        // One statement for the chunk; diesel inserts several rows per engine, not through
        // the connection both share.
        let insert = diesel::insert_into(ca::table).values(chunk);
        match conn {
            DbConnection::Postgres(pg) => insert.execute(pg)?,
            DbConnection::Sqlite(lite) => insert.execute(lite)?,
        };
    }
    Ok(())
}

//! Side-effect reports.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::side_effects;
use super::scope::Scope;
use super::{DbConnection, Page, StoreError, Window};
use crate::clock;
use crate::domain::ids::{PatientId, SessionId, SideEffectId, UserId};
use crate::domain::instrument::Rater;
use crate::domain::side_effect::{Effect, Severity, SideEffectReport};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
// An absent value is inserted as NULL, as the column would default to: the insert's text
// is then one, and PostgreSQL keeps it prepared (DEFAULT in it made diesel send it unprepared).
#[diesel(table_name = side_effects, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct SideEffectRow {
    pub id: SideEffectId,
    pub patient_id: PatientId,
    pub session_id: SessionId,
    pub effect: Effect,
    pub severity: Severity,
    pub onset_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub reported_by: Rater,
    pub note: Option<String>,
    pub recorded_by: UserId,
    pub body_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_reason: Option<String>,
    /// Where the row's latest change stands in the order phones sync in; the database sets it
    /// on every insert and update (migration 000009), never the application.
    #[diesel(skip_insertion, skip_update)]
    pub change_seq: i64,
}

impl SideEffectRow {
    /// The report as the domain sees it.
    pub fn report(&self) -> SideEffectReport {
        SideEffectReport {
            effect: self.effect,
            severity: self.severity,
            onset_at: clock::from_db(self.onset_at),
            resolved_at: self.resolved_at.map(clock::from_db),
            reported_by: self.reported_by,
            note: self.note.clone(),
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &SideEffectRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(side_effects::table).values(row))
}

pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: SideEffectId,
) -> Result<SideEffectRow, StoreError> {
    find_in_scope!(conn, side_effects, SideEffectRow, scope, id)
}

pub fn list(
    conn: &mut DbConnection,
    patient_id: PatientId,
    window: &Window,
    page: &Page,
) -> Result<Vec<SideEffectRow>, StoreError> {
    Ok(list_for_patient!(
        conn,
        side_effects,
        onset_at,
        SideEffectRow,
        patient_id,
        window,
        page
    )?)
}

pub fn replace(
    conn: &mut DbConnection,
    row: &SideEffectRow,
    expected: i32,
) -> Result<(), StoreError> {
    replace_versioned!(conn, side_effects, row, expected)
}

/// The patient's records for an export (`of_patient_since!`), oldest first.
pub fn of_patient_since(
    conn: &mut DbConnection,
    patient_id: PatientId,
    since: Option<NaiveDateTime>,
) -> Result<Vec<SideEffectRow>, StoreError> {
    of_patient_since!(
        conn,
        side_effects,
        onset_at,
        SideEffectRow,
        patient_id,
        since
    )
}

/// Every live side effect of a patient, oldest first.
pub fn live_of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<SideEffectRow>, StoreError> {
    Ok(side_effects::table
        .filter(side_effects::patient_id.eq(patient_id))
        .filter(side_effects::deleted_at.is_null())
        .order((side_effects::onset_at.asc(), side_effects::id.asc()))
        .select(SideEffectRow::as_select())
        .load(conn)?)
}

//! Side-effect reports.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::side_effects;
use super::scope::Scope;
use super::{DbConnection, Page, StoreError, Window};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = side_effects, treat_none_as_null = true)]
pub struct SideEffectRow {
    pub id: String,
    pub patient_id: String,
    pub session_id: String,
    pub effect: String,
    pub severity: String,
    pub onset_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub reported_by: String,
    pub note: Option<String>,
    pub recorded_by: String,
    pub body_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    pub deleted_at: Option<NaiveDateTime>,
    pub deleted_reason: Option<String>,
}

pub fn insert(conn: &mut DbConnection, row: &SideEffectRow) -> Result<(), StoreError> {
    diesel::insert_into(side_effects::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<SideEffectRow, StoreError> {
    find_in_scope!(conn, side_effects, SideEffectRow, scope, id)
}

pub fn list(
    conn: &mut DbConnection,
    patient_id: &str,
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

/// Every live side effect of a patient, oldest first.
pub fn live_of_patient(
    conn: &mut DbConnection,
    patient_id: &str,
) -> Result<Vec<SideEffectRow>, StoreError> {
    Ok(side_effects::table
        .filter(side_effects::patient_id.eq(patient_id))
        .filter(side_effects::deleted_at.is_null())
        .order((side_effects::onset_at.asc(), side_effects::id.asc()))
        .select(SideEffectRow::as_select())
        .load(conn)?)
}

/// Patients in scope with an unresolved live side effect: the candidates for a
/// persistent-side-effect flag.
pub fn patients_with_unresolved(
    conn: &mut DbConnection,
    scope: &Scope,
) -> Result<Vec<String>, StoreError> {
    let query = side_effects::table
        .inner_join(crate::store::schema::patients::table)
        .filter(side_effects::resolved_at.is_null())
        .filter(side_effects::deleted_at.is_null())
        .select(side_effects::patient_id)
        .distinct()
        .into_boxed();
    Ok(in_scope!(query, scope).load(conn)?)
}

//! Clinics.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{clinics, patients};
use super::{DbConnection, Page, StoreError};
use crate::domain::ids::{ClinicId, PatientId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = clinics)]
pub struct ClinicRow {
    pub id: ClinicId,
    pub name: String,
    pub crisis_message: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = clinics)]
pub struct NewClinicRow<'a> {
    pub id: ClinicId,
    pub name: &'a str,
    pub crisis_message: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Inserts the clinic unless its id is taken (whether it did); a taken name is
/// [`StoreError::Taken`].
pub fn insert(conn: &mut DbConnection, row: &NewClinicRow<'_>) -> Result<bool, StoreError> {
    let insert = diesel::insert_into(clinics::table).values(row);
    super::inserted_unless_taken_or(conn, insert, "name", |conn| {
        Ok(find(conn, row.id)?.is_some())
    })
}

pub fn find(conn: &mut DbConnection, id: ClinicId) -> Result<Option<ClinicRow>, StoreError> {
    Ok(clinics::table
        .find(id)
        .select(ClinicRow::as_select())
        .first(conn)
        .optional()?)
}

/// The crisis-resources message of the patient's clinic, in one statement.
pub fn crisis_message_of_patient(
    conn: &mut DbConnection,
    patient: PatientId,
) -> Result<String, StoreError> {
    Ok(patients::table
        .inner_join(clinics::table)
        .filter(patients::id.eq(patient))
        .select(clinics::crisis_message)
        .first(conn)?)
}

pub fn list(conn: &mut DbConnection, page: &Page) -> Result<Vec<ClinicRow>, StoreError> {
    let query = clinics::table.select(ClinicRow::as_select()).into_boxed();
    Ok(page_of!(query, clinics::created_at, clinics::id, page).load(conn)?)
}

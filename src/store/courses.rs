//! Courses of treatment.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::columns::Json;
use super::schema::courses;
use super::scope::Scope;
use super::{DbConnection, Page, StoreError, Window};
use crate::domain::ids::{CourseId, PatientId};
use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::plan::MeasurementPlan;
use crate::domain::schedule::Protocol;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
// An absent value is inserted as NULL, as the column would default to: the insert's text
// is then one, and PostgreSQL keeps it prepared (DEFAULT in it made diesel send it unprepared).
#[diesel(table_name = courses, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct CourseRow {
    pub id: CourseId,
    pub patient_id: PatientId,
    pub indication: Indication,
    pub protocol: Protocol,
    pub primary_instrument: Instrument,
    pub start_date: NaiveDate,
    pub planned_dates: Option<Json<Vec<NaiveDate>>>,
    pub closed: bool,
    pub body_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    /// The course's own measurement plan; null is the default plan.
    pub measurement_plan: Option<Json<MeasurementPlan>>,
    /// Where the row's latest change stands in the order phones sync in; the database sets it
    /// on every insert and update (migration 000009), never the application.
    #[diesel(skip_insertion, skip_update)]
    pub change_seq: i64,
}

impl CourseRow {
    /// The course's measurement plan: its own, or the default.
    pub fn plan(&self) -> MeasurementPlan {
        self.measurement_plan
            .as_ref()
            .map_or_else(MeasurementPlan::default, |p| p.0.clone())
    }

    /// The planned dates of a custom course; none for the standard one.
    pub fn custom_dates(&self) -> &[NaiveDate] {
        self.planned_dates.as_ref().map_or(&[], |d| &d.0)
    }
}

pub fn insert(conn: &mut DbConnection, row: &CourseRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(courses::table).values(row))
}

/// The given courses, for evaluating their measurement plans.
pub fn by_id(conn: &mut DbConnection, ids: &[CourseId]) -> Result<Vec<CourseRow>, StoreError> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(super::ids_per_statement(conn)) {
        rows.extend(
            courses::table
                .filter(courses::id.eq_any(chunk))
                .select(CourseRow::as_select())
                .load(conn)?,
        );
    }
    Ok(rows)
}

pub fn find(conn: &mut DbConnection, scope: &Scope, id: CourseId) -> Result<CourseRow, StoreError> {
    find_in_scope!(conn, courses, CourseRow, scope, id)
}

/// A patient's courses, planned in a range or changed since an instant.
pub fn list(
    conn: &mut DbConnection,
    patient_id: PatientId,
    window: &Window,
    page: &Page,
) -> Result<Vec<CourseRow>, StoreError> {
    let query = courses::table
        .filter(courses::patient_id.eq(patient_id))
        .select(CourseRow::as_select())
        .into_boxed();
    Ok(in_window!(conn, query, courses, created_at, window, page)?)
}

/// The patient's most recently started course that is not closed.
pub fn latest_open(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Option<CourseRow>, StoreError> {
    Ok(courses::table
        .filter(courses::patient_id.eq(patient_id))
        .filter(courses::closed.eq(false))
        .order((courses::start_date.desc(), courses::created_at.desc()))
        .select(CourseRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn replace(conn: &mut DbConnection, row: &CourseRow, expected: i32) -> Result<(), StoreError> {
    replace_versioned!(conn, courses, row, expected)
}

/// Every course of a patient, oldest first.
pub fn of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<CourseRow>, StoreError> {
    Ok(courses::table
        .filter(courses::patient_id.eq(patient_id))
        .order((courses::start_date.asc(), courses::id.asc()))
        .select(CourseRow::as_select())
        .load(conn)?)
}

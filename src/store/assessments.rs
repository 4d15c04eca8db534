//! Scored questionnaires.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::columns::Json;
use super::schema::assessments;
use super::scope::Scope;
use super::{DbConnection, Page, StoreError, Window};
use crate::domain::ids::{AssessmentId, PatientId, UserId};
use crate::domain::instrument::{Instrument, Rater};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
// An absent value is inserted as NULL, as the column would default to: the insert's text
// is then one, and PostgreSQL keeps it prepared (DEFAULT in it made diesel send it unprepared).
#[diesel(table_name = assessments, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct AssessmentRow {
    pub id: AssessmentId,
    pub patient_id: PatientId,
    pub instrument: Instrument,
    pub taken_at: NaiveDateTime,
    pub items: Json<Vec<i32>>,
    pub total: i32,
    pub band: Option<String>,
    pub submitted_by: Rater,
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

pub fn insert(conn: &mut DbConnection, row: &AssessmentRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(assessments::table).values(row))
}

pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: AssessmentId,
) -> Result<AssessmentRow, StoreError> {
    find_in_scope!(conn, assessments, AssessmentRow, scope, id)
}

pub fn list(
    conn: &mut DbConnection,
    patient_id: PatientId,
    window: &Window,
    page: &Page,
) -> Result<Vec<AssessmentRow>, StoreError> {
    Ok(list_for_patient!(
        conn,
        assessments,
        taken_at,
        AssessmentRow,
        patient_id,
        window,
        page
    )?)
}

pub fn replace(
    conn: &mut DbConnection,
    row: &AssessmentRow,
    expected: i32,
) -> Result<(), StoreError> {
    replace_versioned!(conn, assessments, row, expected)
}

/// The live scores of one instrument of a patient taken from `from` up to `to` (both
/// included; no end when `to` is `None`), narrowly — (id, time, total) — and in the order
/// [`live_of_patient`] reads them: what an outcome whose window lies there is computed from.
pub fn scores_between(
    conn: &mut DbConnection,
    patient_id: PatientId,
    instrument: Instrument,
    from: NaiveDateTime,
    to: Option<NaiveDateTime>,
) -> Result<Vec<(AssessmentId, NaiveDateTime, i32)>, StoreError> {
    let mut query = assessments::table
        .filter(assessments::patient_id.eq(patient_id))
        .filter(assessments::taken_at.ge(from))
        .filter(assessments::instrument.eq(instrument))
        .filter(assessments::deleted_at.is_null())
        .into_boxed();
    if let Some(to) = to {
        query = query.filter(assessments::taken_at.le(to));
    }
    Ok(query
        .order((assessments::taken_at.asc(), assessments::id.asc()))
        .select((assessments::id, assessments::taken_at, assessments::total))
        .load(conn)?)
}

/// The patient's records for an export (`of_patient_since!`), oldest first.
pub fn of_patient_since(
    conn: &mut DbConnection,
    patient_id: PatientId,
    since: Option<NaiveDateTime>,
) -> Result<Vec<AssessmentRow>, StoreError> {
    of_patient_since!(
        conn,
        assessments,
        taken_at,
        AssessmentRow,
        patient_id,
        since
    )
}

/// Every live assessment of a patient, oldest first.
pub fn live_of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<AssessmentRow>, StoreError> {
    Ok(assessments::table
        .filter(assessments::patient_id.eq(patient_id))
        .filter(assessments::deleted_at.is_null())
        .order((assessments::taken_at.asc(), assessments::id.asc()))
        .select(AssessmentRow::as_select())
        .load(conn)?)
}

/// The live scores of many patients, narrowly: (patient, id, instrument, time), in no
/// order (sorting text keys in the database cost more than the query). In chunks, as SQLite
/// caps the parameters of one statement.
pub fn times_of_patients(
    conn: &mut DbConnection,
    patient_ids: &[PatientId],
) -> Result<Vec<(PatientId, AssessmentId, Instrument, NaiveDateTime)>, StoreError> {
    let mut rows = Vec::new();
    for chunk in patient_ids.chunks(500) {
        rows.extend(
            assessments::table
                .filter(assessments::patient_id.eq_any(chunk))
                .filter(assessments::deleted_at.is_null())
                .select((
                    assessments::patient_id,
                    assessments::id,
                    assessments::instrument,
                    assessments::taken_at,
                ))
                .load::<(PatientId, AssessmentId, Instrument, NaiveDateTime)>(conn)?,
        );
    }
    Ok(rows)
}

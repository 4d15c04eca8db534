//! Stored outcomes, written only where a recomputation changed them.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use super::courses::CourseRow;
use super::schema::{course_outcomes, courses, session_outcomes};
use super::{DbConnection, StoreError};
use crate::domain::ids::{AssessmentId, CourseId, PatientId, SessionId};
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::domain::patient::Indication;
use crate::domain::schedule::Protocol;
use crate::domain::treatment::Route;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = session_outcomes, treat_none_as_null = true)]
pub struct SessionOutcomeRow {
    pub session_id: SessionId,
    pub patient_id: PatientId,
    pub course_id: CourseId,
    pub instrument: Instrument,
    pub status: BenefitStatus,
    pub baseline: Option<i32>,
    pub nadir: Option<i32>,
    pub gain: Option<i32>,
    pub durability_days: Option<f64>,
    pub censored: bool,
    pub wears_off_within_days: bool,
    pub computed_at: NaiveDateTime,
    /// What research groups and filters the session by, kept with its outcome so that a
    /// question reads one row per session (`store::research`): the session's own …
    pub started_at: NaiveDateTime,
    pub route: Route,
    pub dose_mg_per_kg: f64,
    pub charge_cents: Option<i64>,
    /// … and its course's.
    pub indication: Indication,
    pub protocol: Protocol,
    pub course_start_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = course_outcomes, treat_none_as_null = true)]
pub struct CourseOutcomeRow {
    pub course_id: CourseId,
    pub patient_id: PatientId,
    pub instrument: Instrument,
    pub first_session_at: Option<NaiveDateTime>,
    pub baseline: Option<i32>,
    pub end_of_induction_assessment_id: Option<AssessmentId>,
    pub end_of_induction_response: Option<bool>,
    pub end_of_induction_remission: Option<bool>,
    pub time_to_response_days: Option<f64>,
    pub computed_at: NaiveDateTime,
}

pub fn sessions_of(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<SessionOutcomeRow>, StoreError> {
    Ok(session_outcomes::table
        .filter(session_outcomes::patient_id.eq(patient_id))
        .select(SessionOutcomeRow::as_select())
        .load(conn)?)
}

pub fn courses_of(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<CourseOutcomeRow>, StoreError> {
    Ok(course_outcomes::table
        .filter(course_outcomes::patient_id.eq(patient_id))
        .select(CourseOutcomeRow::as_select())
        .load(conn)?)
}

/// The patient's courses whose primary instrument is `instrument`, each with its stored
/// outcome when it has one, in the order of `courses::of_patient`: what a score can move, in
/// one statement.
pub fn courses_reading(
    conn: &mut DbConnection,
    patient_id: PatientId,
    instrument: Instrument,
) -> Result<Vec<(CourseRow, Option<CourseOutcomeRow>)>, StoreError> {
    Ok(courses::table
        .left_join(course_outcomes::table.on(course_outcomes::course_id.eq(courses::id)))
        .filter(courses::patient_id.eq(patient_id))
        .filter(courses::primary_instrument.eq(instrument))
        .order((courses::start_date.asc(), courses::id.asc()))
        .select((
            CourseRow::as_select(),
            Option::<CourseOutcomeRow>::as_select(),
        ))
        .load(conn)?)
}

pub fn put_session(conn: &mut DbConnection, row: &SessionOutcomeRow) -> Result<(), StoreError> {
    let updated = diesel::update(session_outcomes::table.find(&row.session_id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(session_outcomes::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn put_course(conn: &mut DbConnection, row: &CourseOutcomeRow) -> Result<(), StoreError> {
    let updated = diesel::update(course_outcomes::table.find(&row.course_id))
        .set(row)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(course_outcomes::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn remove_sessions(
    conn: &mut DbConnection,
    session_ids: &[SessionId],
) -> Result<(), StoreError> {
    diesel::delete(
        session_outcomes::table.filter(session_outcomes::session_id.eq_any(session_ids)),
    )
    .execute(conn)?;
    Ok(())
}

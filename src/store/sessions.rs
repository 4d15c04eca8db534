//! Sessions (infusions), with their vital signs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::columns::Json;
use super::schema::sessions;
use super::scope::Scope;
use super::{DbConnection, Page, StoreError, Window};
use crate::clock;
use crate::domain::ids::{CourseId, PatientId, SessionId, UserId};
use crate::domain::treatment::{
    Administration, Reading, Route, Sedation, SessionStatus, VitalSigns,
};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable, AsChangeset)]
// An absent value is inserted as NULL, as the column would default to: the insert's text
// is then one, and PostgreSQL keeps it prepared (DEFAULT in it made diesel send it unprepared).
#[diesel(table_name = sessions, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct SessionRow {
    pub id: SessionId,
    pub patient_id: PatientId,
    pub course_id: CourseId,
    pub route: Route,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub dose_mg_per_kg: f64,
    pub weight_kg: f64,
    pub total_dose_mg: f64,
    pub status: SessionStatus,
    pub hold_reason: Option<String>,
    pub charge_cents: Option<i64>,
    pub pre_systolic: Option<i32>,
    pub pre_diastolic: Option<i32>,
    pub pre_heart_rate: Option<i32>,
    pub pre_spo2: Option<i32>,
    pub post_systolic: Option<i32>,
    pub post_diastolic: Option<i32>,
    pub post_heart_rate: Option<i32>,
    pub post_spo2: Option<i32>,
    pub readings: Json<Vec<Reading>>,
    pub monitoring_minutes: Option<i32>,
    pub sedation: Option<Sedation>,
    pub respiratory_concern: bool,
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

impl SessionRow {
    /// The session as the domain sees it.
    pub fn administration(&self) -> Administration {
        let vitals = |systolic, diastolic, heart_rate, spo2| VitalSigns {
            systolic,
            diastolic,
            heart_rate,
            spo2,
        };
        Administration {
            route: self.route,
            started_at: clock::from_db(self.started_at),
            ended_at: self.ended_at.map(clock::from_db),
            dose_mg_per_kg: self.dose_mg_per_kg,
            weight_kg: self.weight_kg,
            status: self.status,
            hold_reason: self.hold_reason.clone(),
            charge_cents: self.charge_cents,
            pre: vitals(
                self.pre_systolic,
                self.pre_diastolic,
                self.pre_heart_rate,
                self.pre_spo2,
            ),
            post: vitals(
                self.post_systolic,
                self.post_diastolic,
                self.post_heart_rate,
                self.post_spo2,
            ),
            readings: self.readings.0.clone(),
            monitoring_minutes: self.monitoring_minutes,
            sedation: self.sedation,
            respiratory_concern: self.respiratory_concern,
        }
    }
}

pub fn insert(conn: &mut DbConnection, row: &SessionRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(sessions::table).values(row))
}

pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: SessionId,
) -> Result<SessionRow, StoreError> {
    find_in_scope!(conn, sessions, SessionRow, scope, id)
}

pub fn list(
    conn: &mut DbConnection,
    patient_id: PatientId,
    window: &Window,
    page: &Page,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(list_for_patient!(
        conn, sessions, started_at, SessionRow, patient_id, window, page
    )?)
}

/// The patient's live completed sessions of a course, oldest first.
pub fn completed_in_course(
    conn: &mut DbConnection,
    course_id: CourseId,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sessions::table
        .filter(sessions::course_id.eq(course_id))
        .filter(sessions::status.eq(SessionStatus::Completed))
        .filter(sessions::deleted_at.is_null())
        .order(sessions::started_at.asc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// The patient's most recent live completed session starting no later than `at`.
pub fn latest_completed_before(
    conn: &mut DbConnection,
    patient_id: PatientId,
    at: NaiveDateTime,
) -> Result<Option<SessionRow>, StoreError> {
    Ok(sessions::table
        .filter(sessions::patient_id.eq(patient_id))
        .filter(sessions::status.eq(SessionStatus::Completed))
        .filter(sessions::deleted_at.is_null())
        .filter(sessions::started_at.le(at))
        .order(sessions::started_at.desc())
        .select(SessionRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn replace(conn: &mut DbConnection, row: &SessionRow, expected: i32) -> Result<(), StoreError> {
    replace_versioned!(conn, sessions, row, expected)
}

/// The patient's records for an export (`of_patient_since!`), oldest first.
pub fn of_patient_since(
    conn: &mut DbConnection,
    patient_id: PatientId,
    since: Option<NaiveDateTime>,
) -> Result<Vec<SessionRow>, StoreError> {
    of_patient_since!(conn, sessions, started_at, SessionRow, patient_id, since)
}

/// Every live session of a patient, oldest first.
pub fn live_of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<SessionRow>, StoreError> {
    Ok(sessions::table
        .filter(sessions::patient_id.eq(patient_id))
        .filter(sessions::deleted_at.is_null())
        .order((sessions::started_at.asc(), sessions::id.asc()))
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// A live session, narrowly: (patient, id, course, status, start).
pub type SessionStart = (PatientId, SessionId, CourseId, SessionStatus, NaiveDateTime);

/// The live sessions of many patients, in no order. In chunks, as SQLite caps the parameters
/// of one statement.
pub fn starts_of_patients(
    conn: &mut DbConnection,
    patient_ids: &[PatientId],
) -> Result<Vec<SessionStart>, StoreError> {
    let mut rows = Vec::new();
    for chunk in patient_ids.chunks(500) {
        rows.extend(
            sessions::table
                .filter(sessions::patient_id.eq_any(chunk))
                .filter(sessions::deleted_at.is_null())
                .select((
                    sessions::patient_id,
                    sessions::id,
                    sessions::course_id,
                    sessions::status,
                    sessions::started_at,
                ))
                .load::<SessionStart>(conn)?,
        );
    }
    Ok(rows)
}

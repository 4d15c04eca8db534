//! The measurement plan at work (domain.md §5a): what a patient's app must ask now, next,
//! and what was missed — for one patient's app, for a patient's outcomes, and for research's
//! adherence bands, from the same records.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::{AssessmentId, CourseId, PatientId, SessionId};
use crate::domain::instrument::Instrument;
use crate::domain::plan::{self, DueItem, PlanInput};
use crate::domain::schedule::{self, SlotStatus};
use crate::domain::time;
use crate::error::ApiError;
use crate::store::courses::{self, CourseRow};
use crate::store::{assessments, patients, sessions, DbConnection, StoreError};

/// How far back daily items are listed.
const DAILY_LOOKBACK_DAYS: i64 = 30;

/// A completed live session as a measurement plan sees it.
struct PlanSession {
    id: SessionId,
    course_id: CourseId,
    started_at: DateTime<Utc>,
}

/// What measurement plans are checked against: the completed live sessions and the live
/// scores of some patients, loaded for all of them in two queries.
#[derive(Default)]
pub struct PlanRecords {
    sessions: HashMap<PatientId, Vec<PlanSession>>,
    scores: HashMap<PatientId, Vec<(AssessmentId, Instrument, DateTime<Utc>)>>,
}

impl PlanRecords {
    pub fn load(conn: &mut DbConnection, patients: &[PatientId]) -> Result<Self, StoreError> {
        let mut records = Self::default();
        // Only completed sessions carry a plan's items.
        for (patient, id, course_id, status, started_at) in
            sessions::starts_of_patients(conn, patients)?
        {
            if status == crate::domain::treatment::SessionStatus::Completed {
                let session = PlanSession {
                    id,
                    course_id,
                    started_at: clock::from_db(started_at),
                };
                records.sessions.entry(patient).or_default().push(session);
            }
        }
        for (patient, id, instrument, taken_at) in assessments::times_of_patients(conn, patients)? {
            let score = (id, instrument, clock::from_db(taken_at));
            records.scores.entry(patient).or_default().push(score);
        }
        // Each patient's records in time order, ties by id, as the plan reads them.
        for sessions in records.sessions.values_mut() {
            sessions.sort_by_key(|s| (s.started_at, s.id));
        }
        for scores in records.scores.values_mut() {
            scores.sort_by_key(|s| (s.2, s.0));
        }
        Ok(records)
    }

    /// The items `course`'s plan asks for, with their status at `at`.
    pub fn due_for_course(&self, course: &CourseRow, at: DateTime<Utc>) -> Vec<DueItem> {
        let completed: Vec<(SessionId, DateTime<Utc>)> = self
            .sessions
            .get(&course.patient_id)
            .into_iter()
            .flatten()
            .filter(|s| s.course_id == course.id && s.started_at <= at)
            .map(|s| (s.id, s.started_at))
            .collect();
        let scores = self
            .scores
            .get(&course.patient_id)
            .map_or(&[][..], Vec::as_slice);
        due_items(course, &completed, scores, at)
    }
}

fn due_items(
    course: &CourseRow,
    completed: &[(SessionId, DateTime<Utc>)],
    scores: &[(AssessmentId, Instrument, DateTime<Utc>)],
    at: DateTime<Utc>,
) -> Vec<DueItem> {
    let days: Vec<_> = completed
        .iter()
        .map(|(id, t)| (*id, t.date_naive()))
        .collect();
    let today = at.date_naive();
    let next_planned = (!course.closed)
        .then(|| {
            schedule::slots(
                course.protocol,
                course.start_date,
                course.custom_dates(),
                &days,
                today,
            )
        })
        .and_then(|slots| {
            slots
                .into_iter()
                .find(|s| s.status == SlotStatus::Open && s.planned_date >= today)
        })
        .map(|s| s.planned_date);
    let daily_from = completed.first().map(|(_, t)| {
        t.date_naive()
            .max((at - Duration::days(DAILY_LOOKBACK_DAYS)).date_naive())
    });
    plan::due_items(
        &PlanInput {
            plan: &course.plan(),
            primary: course.primary_instrument,
            sessions: completed,
            next_planned,
            scores,
            daily_from,
        },
        at,
    )
}

/// What one patient's plan asks at `at` (now when absent, at most 5 minutes ahead): the
/// course whose plan applies (the most recently started open course) and its items, audited.
pub async fn due(
    call: &Call,
    patient: PatientId,
    at: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, Option<CourseRow>, Vec<DueItem>), ApiError> {
    let scope = call.clinical_scope()?;
    let now = clock::now();
    let at = at.unwrap_or(now);
    time::recorded("at", at, now)?;
    let (course, items) = call
        .transaction(move |conn, call| {
            patients::clinic_in_scope(conn, &scope, patient)?;
            call.audit(
                conn,
                Event::record(Action::DueAssessmentsRead, patient, patient),
            )?;
            let Some(course) = courses::latest_open(conn, patient)? else {
                return Ok((None, vec![]));
            };
            let records = PlanRecords::load(conn, &[patient])?;
            let items = records.due_for_course(&course, at);
            Ok((Some(course), items))
        })
        .await?;
    Ok((at, course, items))
}

//! The measurement plan at work (`domain::plan`): what a patient's app must ask now, next,
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
use crate::store::course_adherence::{self, CourseAdherenceRow};
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

    /// `course`'s adherence at `at` (completed, due), and the first instant it may not hold.
    pub fn adherence_of(
        &self,
        course: &CourseRow,
        at: DateTime<Utc>,
    ) -> ((usize, usize), DateTime<Utc>) {
        let items = self.due_for_course(course, at);
        let sessions = self.sessions.get(&course.patient_id).into_iter().flatten();
        let scores = self.scores.get(&course.patient_id).into_iter().flatten();
        let later = sessions
            .filter(|s| s.course_id == course.id)
            .map(|s| s.started_at)
            .chain(scores.map(|s| s.2));
        let until = plan::adherence_holds_until(&items, later, at);
        (plan::adherence(&items), until)
    }
}

/// Each course's adherence at `now` (completed, due): the stored counts where they still hold,
/// computed from the records — a few hundred patients at a time — where they do not.
pub fn adherence_of_courses(
    conn: &mut DbConnection,
    ids: &[CourseId],
    now: DateTime<Utc>,
) -> Result<HashMap<CourseId, (usize, usize)>, StoreError> {
    let mut adherence = course_adherence::holding(conn, ids, clock::to_db(now))?;
    let missing: Vec<CourseId> = ids
        .iter()
        .filter(|id| !adherence.contains_key(id))
        .copied()
        .collect();
    let mut by_patient: HashMap<PatientId, Vec<CourseRow>> = HashMap::new();
    for course in courses::by_id(conn, &missing)? {
        by_patient
            .entry(course.patient_id)
            .or_default()
            .push(course);
    }
    let patients: Vec<PatientId> = by_patient.keys().copied().collect();
    for chunk in patients.chunks(500) {
        let records = PlanRecords::load(conn, chunk)?;
        for course in chunk.iter().flat_map(|p| &by_patient[p]) {
            adherence.insert(course.id, records.adherence_of(course, now).0);
        }
    }
    Ok(adherence)
}

/// Computes and stores the adherence of every course whose stored counts are missing or no
/// longer hold at `now`, in batches of patients held against writes
/// (`patients::in_held_batches`): a write to one of them either commits before the batch reads
/// their records or removes what the batch stored. A batch that fails is left to readers and
/// the next sweep. How many courses it stored.
pub fn store_expired_adherence(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut expired: HashMap<PatientId, Vec<CourseId>> = HashMap::new();
    for (course, patient) in course_adherence::expired(conn, clock::to_db(now))? {
        expired.entry(patient).or_default().push(course);
    }
    let patients: Vec<PatientId> = expired.keys().copied().collect();
    let batches = patients::in_held_batches(conn, &patients, |conn, batch| {
        let ids: Vec<CourseId> = batch
            .iter()
            .flat_map(|p| expired[p].iter().copied())
            .collect();
        // Read again under the hold: a write may have changed a course since the list.
        let courses = courses::by_id(conn, &ids)?;
        let records = PlanRecords::load(conn, batch)?;
        let rows: Vec<CourseAdherenceRow> = courses
            .iter()
            .filter_map(|course| {
                let ((completed, due), until) = records.adherence_of(course, now);
                // Counts too large for the column are not stored; readers compute them.
                Some(CourseAdherenceRow {
                    course_id: course.id,
                    patient_id: course.patient_id,
                    completed: i32::try_from(completed).ok()?,
                    due: i32::try_from(due).ok()?,
                    computed_at: clock::to_db(now),
                    valid_until: clock::to_db(until),
                })
            })
            .collect();
        course_adherence::put(conn, &rows)?;
        Ok(rows.len())
    });
    let mut stored = 0;
    for (batch, done) in batches {
        match done {
            Ok(courses) => stored += courses,
            Err(err) => tracing::warn!(
                patients = ?batch,
                error = %err,
                "these patients' adherence could not be stored; research computes it meanwhile"
            ),
        }
    }
    Ok(stored)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::patient::Indication;
    use crate::domain::plan::MeasurementPlan;
    use crate::domain::schedule::Protocol;
    use crate::store::columns::Json;
    use proptest::prelude::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    /// A course whose plan has the given daily mood and window widths (hours).
    fn course(closed: bool, daily_mood: bool, hours: (i64, i64, i64)) -> CourseRow {
        let plan = MeasurementPlan {
            daily_mood,
            pre_session_hours: hours.0,
            first_day_window_hours: hours.1,
            window_hours: hours.2,
            ..MeasurementPlan::default()
        };
        CourseRow {
            id: CourseId::numbered(1),
            patient_id: PatientId::numbered(1),
            indication: Indication::MajorDepression,
            protocol: Protocol::StandardInduction,
            primary_instrument: Instrument::Phq9,
            start_date: at(0).date_naive(),
            planned_dates: None,
            closed,
            body_hash: String::new(),
            created_at: clock::to_db(at(0)),
            updated_at: clock::to_db(at(0)),
            version: 1,
            measurement_plan: Some(Json(plan)),
            change_seq: 0,
        }
    }

    /// A course's completed sessions and a patient's scores, minutes from an origin, over
    /// about 75 days: out of order, some after the instant asked about.
    fn records(sessions: &[i64], scores: &[(bool, i64)]) -> PlanRecords {
        let mut records = PlanRecords::default();
        for (n, minutes) in sessions.iter().enumerate() {
            records
                .sessions
                .entry(PatientId::numbered(1))
                .or_default()
                .push(PlanSession {
                    id: SessionId::numbered(n as u128),
                    course_id: CourseId::numbered(1),
                    started_at: at(*minutes),
                });
        }
        for (n, (mood, minutes)) in scores.iter().enumerate() {
            let instrument = if *mood {
                Instrument::DailyMood
            } else {
                Instrument::Phq9
            };
            let score = (AssessmentId::numbered(n as u128), instrument, at(*minutes));
            records
                .scores
                .entry(PatientId::numbered(1))
                .or_default()
                .push(score);
        }
        for sessions in records.sessions.values_mut() {
            sessions.sort_by_key(|s| (s.started_at, s.id));
        }
        for scores in records.scores.values_mut() {
            scores.sort_by_key(|s| (s.2, s.0));
        }
        records
    }

    const DAYS: i64 = 24 * 60;

    proptest! {
        /// What the sweep stores (a plan's adherence, with the instant it holds until) is
        /// what a reader computing from the records would find at every instant before it.
        #[test]
        fn stored_adherence_holds_until_its_instant(
            sessions in prop::collection::vec(0..60 * DAYS, 0..8),
            scores in prop::collection::vec((any::<bool>(), -2 * DAYS..75 * DAYS), 0..60),
            asked in 0..75 * DAYS,
            probes in prop::collection::vec(0.0f64..1.0, 1..6),
            closed in any::<bool>(),
            daily_mood in any::<bool>(),
            hours in (1i64..=72, 1i64..=72, 1i64..=72),
        ) {
            let records = records(&sessions, &scores);
            let course = course(closed, daily_mood, hours);
            let (counts, until) = records.adherence_of(&course, at(asked));
            prop_assert!(until > at(asked));
            let span = (until - at(asked)).num_microseconds().unwrap();
            let last = until - Duration::microseconds(1);
            let within = probes.iter().map(|f| at(asked) + Duration::microseconds((span as f64 * f) as i64));
            for probe in within.chain([last]) {
                prop_assert_eq!(records.adherence_of(&course, probe).0, counts, "at {}", probe);
            }
        }
    }
}

//! A patient's outcomes (domain.md §6) as their clinicians and they themselves read them:
//! the stored results that every write keeps current, the plan's adherence, and the score
//! over time with its infusions and wear-off points.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use crate::call::{Call, Event};
use crate::charts::Trajectory;
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::PatientId;
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::domain::plan::DueItem;
use crate::domain::treatment::SessionStatus;
use crate::error::ApiError;
use crate::plan::PlanRecords;
use crate::store::outcomes::{self as stored, CourseOutcomeRow, SessionOutcomeRow};
use crate::store::{assessments, courses, patients, sessions};

/// Everything the outcomes read answers.
pub struct PatientOutcomes {
    pub patient: PatientId,
    /// W, the deployment's wear-off threshold in days.
    pub wear_off_days: f64,
    /// Every due item of every course (the patient's adherence).
    pub items: Vec<DueItem>,
    /// Each completed session's outcome with its start, oldest first.
    pub sessions: Vec<(SessionOutcomeRow, NaiveDateTime)>,
    /// Each course's outcome with its plan's items.
    pub courses: Vec<(CourseOutcomeRow, Vec<DueItem>)>,
}

/// The patient's outcomes: per session, benefit and durability; per course, response,
/// remission and adherence. Audited.
pub async fn of_patient(call: &Call, patient: PatientId) -> Result<PatientOutcomes, ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, patient)?;
        let started: HashMap<_, _> = sessions::live_of_patient(conn, patient)?
            .into_iter()
            .map(|s| (s.id, s.started_at))
            .collect();
        let mut sessions: Vec<_> = stored::sessions_of(conn, patient)?
            .into_iter()
            .filter_map(|o| Some((started.get(&o.session_id).copied()?, o)))
            .collect();
        sessions.sort_by_key(|(at, o)| (*at, o.session_id));
        let now = clock::now();
        let records = PlanRecords::load(conn, &[patient])?;
        let mut items_by_course: HashMap<_, _> = courses::of_patient(conn, patient)?
            .iter()
            .map(|course| (course.id, records.due_for_course(course, now)))
            .collect();
        let items = items_by_course.values().flatten().cloned().collect();
        let courses = stored::courses_of(conn, patient)?
            .into_iter()
            .map(|o| {
                let items = items_by_course.remove(&o.course_id).unwrap_or_default();
                (o, items)
            })
            .collect();
        call.audit(conn, Event::record(Action::OutcomesRead, patient, patient))?;
        Ok(PatientOutcomes {
            patient,
            wear_off_days: call.clinical().wear_off_days,
            items,
            sessions: sessions.into_iter().map(|(at, o)| (o, at)).collect(),
            courses,
        })
    })
    .await
}

/// The score over time of `instrument` (by default the latest course's primary
/// instrument): the scores, the completed infusions, and the scores where benefit wore off.
/// Audited.
pub async fn trajectory(
    call: &Call,
    patient: PatientId,
    instrument: Option<Instrument>,
) -> Result<Trajectory<'static>, ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, patient)?;
        let latest_course = courses::of_patient(conn, patient)?.pop();
        let instrument = instrument
            .or(latest_course.map(|c| c.primary_instrument))
            .unwrap_or(Instrument::Phq9);
        let scores: Vec<_> = assessments::live_of_patient(conn, patient)?
            .into_iter()
            .filter(|a| a.instrument == instrument)
            .map(|a| (clock::from_db(a.taken_at), a.total))
            .collect();
        let completed: HashMap<_, _> = sessions::live_of_patient(conn, patient)?
            .into_iter()
            .filter(|s| s.status == SessionStatus::Completed)
            .map(|s| (s.id, clock::from_db(s.started_at)))
            .collect();
        let wore_off: Vec<DateTime<Utc>> = stored::sessions_of(conn, patient)?
            .into_iter()
            .filter(|o| o.status == BenefitStatus::WoreOff && o.instrument == instrument)
            .filter_map(|o| {
                let started = completed.get(&o.session_id)?;
                let micros = (o.durability_days? * 86_400e6).round() as i64;
                Some(*started + Duration::microseconds(micros))
            })
            .collect();
        call.audit(
            conn,
            Event::record(Action::TrajectoryRead, patient, patient),
        )?;
        // Durability is stored to a tenth of a day: the wear-off point is the score nearest it.
        let wear_offs = wore_off
            .iter()
            .filter_map(|at| {
                scores
                    .iter()
                    .min_by_key(|(t, _)| (*t - *at).num_seconds().abs())
                    .copied()
            })
            .collect();
        let mut infusions: Vec<_> = completed.into_values().collect();
        infusions.sort();
        Ok(Trajectory {
            instrument: instrument.definition(),
            scores,
            infusions,
            wear_offs,
        })
    })
    .await
}

//! How long a patient's infusions last (domain.md §6a), as their clinicians and they read it:
//! per course, each completed infusion's benefit, the personal median and its trend, when the
//! latest infusion's benefit is expected to fade, the next planned infusion and the gap
//! between them, a suggested maintenance interval; exposure and cost over the whole record.
//! Read from the outcomes every write keeps stored; nothing here is computed from raw scores.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::durability::{
    self, DurabilitySettings, Estimate, Exposure, Infusion, Median, Trend,
};
use crate::domain::ids::{CourseId, PatientId, SessionId};
use crate::domain::treatment::SessionStatus;
use crate::error::ApiError;
use crate::evaluation;
use crate::store::outcomes::{self as stored};
use crate::store::{courses, patients, sessions};

/// One completed infusion of a course, with its §6 outcome.
pub struct InfusionBenefit {
    pub session: SessionId,
    pub infusion: Infusion,
    pub gain: Option<i32>,
    pub censored: bool,
}

/// A course's figures of §6a.
pub struct CourseDurability {
    pub course: CourseId,
    pub infusions: Vec<InfusionBenefit>,
    pub median: Estimate<Median>,
    pub trend: Estimate<Trend>,
    pub latest: Option<SessionId>,
    pub expected_wear_off: Option<DateTime<Utc>>,
    /// The earliest open planned day after today, at its start (00:00 UTC).
    pub next_planned: Option<DateTime<Utc>>,
    pub gap_days: Option<f64>,
    pub gap_expected: bool,
    pub suggested_interval_days: Option<u32>,
}

/// Everything the durability read answers.
pub struct PatientDurability {
    pub patient: PatientId,
    pub settings: DurabilitySettings,
    pub courses: Vec<CourseDurability>,
    pub exposure: Exposure,
    pub charges_to_date_cents: i64,
    pub charge_per_benefit_week_cents: Option<f64>,
}

/// The patient's durability figures; audited as a read of the outcomes.
pub async fn of_patient(call: &Call, patient: PatientId) -> Result<PatientDurability, ApiError> {
    let scope = call.clinical_scope()?;
    let settings = call.clinical().durability;
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, patient)?;
        let outcomes: HashMap<_, _> = stored::sessions_of(conn, patient)?
            .into_iter()
            .map(|o| (o.session_id, o))
            .collect();
        let completed: Vec<_> = sessions::live_of_patient(conn, patient)?
            .into_iter()
            .filter(|s| s.status == SessionStatus::Completed)
            .collect();
        let now = clock::now();
        let mut all = Vec::new();
        let mut figures = Vec::new();
        for course in courses::of_patient(conn, patient)? {
            let mut of_course: Vec<_> = completed
                .iter()
                .filter(|s| s.course_id == course.id)
                .collect();
            of_course.sort_by_key(|s| (s.started_at, s.id));
            let infusions: Vec<InfusionBenefit> = of_course
                .iter()
                .zip(1..)
                .map(|(s, number)| {
                    let outcome = outcomes.get(&s.id);
                    InfusionBenefit {
                        session: s.id,
                        infusion: evaluation::infusion(s, outcome, number),
                        gain: outcome.and_then(|o| o.gain),
                        censored: outcome.is_some_and(|o| o.censored),
                    }
                })
                .collect();
            // A closed course plans nothing more. The schedule is read from the sessions
            // already loaded, not queried again per course.
            let slots = if course.closed {
                Vec::new()
            } else {
                evaluation::course_slots(&course, of_course.iter().copied(), now.date_naive())
            };
            let next_planned = durability::next_planned(&slots, now.date_naive());
            all.extend(infusions.iter().map(|i| i.infusion.clone()));
            figures.push(course_figures(
                course.id,
                infusions,
                next_planned,
                &settings,
            ));
        }
        call.audit(
            conn,
            Event::record(Action::DurabilityRead, patient, patient),
        )?;
        Ok(PatientDurability {
            patient,
            settings,
            courses: figures,
            exposure: durability::exposure(&all, now),
            charges_to_date_cents: durability::charges_to_date_cents(&all),
            charge_per_benefit_week_cents: durability::charge_per_benefit_week_cents(&all),
        })
    })
    .await
}

/// §6a for one course from its infusions in time order.
fn course_figures(
    course: CourseId,
    infusions: Vec<InfusionBenefit>,
    next_planned: Option<DateTime<Utc>>,
    settings: &DurabilitySettings,
) -> CourseDurability {
    let plain: Vec<Infusion> = infusions.iter().map(|i| i.infusion.clone()).collect();
    let figures = durability::course_figures(&plain, next_planned, settings);
    CourseDurability {
        course,
        latest: infusions.last().map(|l| l.session),
        median: figures.median,
        trend: figures.trend,
        expected_wear_off: figures.expected_wear_off,
        next_planned,
        gap_days: figures.gap_days.map(durability::one_decimal),
        gap_expected: figures.gap_expected,
        suggested_interval_days: figures.suggested_interval_days,
        infusions,
    }
}

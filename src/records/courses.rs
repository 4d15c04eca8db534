//! Courses of treatment and their schedules (domain.md §2): clinicians plan them.

use chrono::NaiveDate;

use crate::clock;
use crate::domain::audit::Action;
use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::plan::MeasurementPlan;
use crate::domain::schedule::{self, Protocol, Slot};
use crate::domain::time;
use crate::error::ApiError;
use crate::evaluation::Change;
use crate::records::{Actions, Kind, Making, Recorded, Writers};
use crate::store::columns::Json;
use crate::store::courses::CourseRow;
use crate::store::{patients, sessions, DbConnection, StoreError};

/// A course as a create or a change describes it.
pub struct CourseDraft {
    /// One of the patient's indications.
    pub indication: Indication,
    pub protocol: Protocol,
    /// By default the indication's instrument.
    pub primary_instrument: Option<Instrument>,
    /// Day 0 of the schedule.
    pub start_date: NaiveDate,
    /// The dates of a `custom` course.
    pub planned_dates: Option<Vec<NaiveDate>>,
    pub closed: bool,
    /// What the app must ask and when; the default plan when absent.
    pub measurement_plan: Option<MeasurementPlan>,
}

/// A course with its schedule as of now: every planned slot and what became of it.
#[derive(Clone, Debug)]
pub struct Course {
    pub recorded: Recorded<CourseRow>,
    pub slots: Vec<Slot>,
}

impl AsRef<CourseRow> for Course {
    fn as_ref(&self) -> &CourseRow {
        &self.recorded.record
    }
}

impl Kind for CourseRow {
    type Draft = CourseDraft;
    const ACTIONS: Actions = Actions {
        created: Action::CourseCreated,
        read: Action::CourseRead,
        listed: Action::CoursesListed,
        updated: Some(Action::CourseUpdated),
        entered_in_error: None,
    };
    const WRITERS: Writers = Writers::Clinicians;

    fn build(
        conn: &mut DbConnection,
        draft: CourseDraft,
        making: Making<'_, Self>,
    ) -> Result<Self, ApiError> {
        if !patients::indications(conn, making.patient)?.contains(&draft.indication) {
            return Err(ApiError::invalid(
                "indication",
                "must be one of the patient's indications",
            ));
        }
        let instrument = draft
            .primary_instrument
            .unwrap_or_else(|| draft.indication.default_instrument());
        if !instrument.definition().is_outcome {
            return Err(ApiError::invalid(
                "primary_instrument",
                "must be an outcome instrument (not cadss)",
            ));
        }
        let today = making.now.date_naive();
        time::planned("start_date", draft.start_date, today)?;
        for (i, date) in draft.planned_dates.iter().flatten().enumerate() {
            time::planned(&format!("planned_dates.{i}"), *date, today)?;
        }
        let planned_dates = match (draft.protocol, draft.planned_dates) {
            (Protocol::Custom, Some(dates)) => Some(schedule::custom_dates(&dates)?),
            (Protocol::Custom, None) => {
                return Err(ApiError::invalid(
                    "planned_dates",
                    "are required for a custom course",
                ))
            }
            (Protocol::StandardInduction, Some(_)) => {
                return Err(ApiError::invalid(
                    "planned_dates",
                    "are planned by the protocol for standard_induction",
                ))
            }
            (Protocol::StandardInduction, None) => None,
        };
        let measurement_plan = draft.measurement_plan.map(|p| p.check()).transpose()?;
        let now = clock::to_db(making.now);
        Ok(CourseRow {
            change_seq: crate::store::UNSYNCED,
            id: making.id,
            patient_id: making.patient,
            indication: draft.indication,
            protocol: draft.protocol,
            primary_instrument: instrument,
            start_date: draft.start_date,
            planned_dates: planned_dates.map(Json),
            closed: draft.closed,
            body_hash: making.body_hash(),
            created_at: making.current.map_or(now, |c| c.created_at),
            updated_at: now,
            version: making.version(),
            measurement_plan: measurement_plan.map(Json),
        })
    }

    fn change<'a>(&'a self, _before: Option<&'a Self>) -> Change<'a> {
        Change::Course(self)
    }

    type View = Course;
    fn view(conn: &mut DbConnection, recorded: Recorded<Self>) -> Result<Course, StoreError> {
        let slots = schedule_of(conn, &recorded.record)?;
        Ok(Course { recorded, slots })
    }
}

/// The course's schedule as of today, from its completed sessions.
pub fn schedule_of(conn: &mut DbConnection, course: &CourseRow) -> Result<Vec<Slot>, StoreError> {
    let completed: Vec<_> = sessions::completed_in_course(conn, course.id)?
        .into_iter()
        .map(|s| (s.id, s.started_at.date()))
        .collect();
    Ok(schedule::slots(
        course.protocol,
        course.start_date,
        course.custom_dates(),
        &completed,
        clock::now().date_naive(),
    ))
}

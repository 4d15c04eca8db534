//! Sessions (infusions) with dose and vital signs (domain.md §3): clinicians record them.

use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::CourseId;
use crate::domain::treatment::Administration;
use crate::error::ApiError;
use crate::evaluation::Change;
use crate::records::{optional, viewed_as_recorded, Actions, Kind, Making, Writers};
use crate::store::columns::Json;
use crate::store::scope::Scope;
use crate::store::sessions::SessionRow;
use crate::store::{courses, DbConnection};

/// A session as a create or a change describes it, before the rules of §3 are checked.
pub struct SessionDraft {
    /// The course; when absent, the patient's most recent open course.
    pub course: Option<CourseId>,
    pub administration: Administration,
}

impl Kind for SessionRow {
    type Draft = SessionDraft;
    const ACTIONS: Actions = Actions {
        created: Action::SessionCreated,
        read: Action::SessionRead,
        listed: Action::SessionsListed,
        updated: Some(Action::SessionUpdated),
        entered_in_error: Some(Action::SessionEnteredInError),
    };
    const WRITERS: Writers = Writers::Clinicians;
    const KEPT_AS_IS: &'static str = "the session was entered in error and cannot change";

    fn build(
        conn: &mut DbConnection,
        draft: SessionDraft,
        making: Making<'_, Self>,
    ) -> Result<Self, ApiError> {
        let a = draft.administration.check(making.now)?;
        let patient = making.patient;
        let course_id = match draft.course {
            Some(course) => {
                optional(courses::find(conn, &Scope::Patient(patient), course))?
                    .ok_or_else(|| {
                        ApiError::invalid("course_id", "no such course for this patient")
                    })?
                    .id
            }
            None => {
                courses::latest_open(conn, patient)?
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "course_id",
                            "the patient has no open course; plan one first",
                        )
                    })?
                    .id
            }
        };
        let now = clock::to_db(making.now);
        let current = making.current;
        Ok(SessionRow {
            change_seq: crate::store::UNSYNCED,
            id: making.id,
            patient_id: patient,
            course_id,
            route: a.route,
            started_at: clock::to_db(a.started_at),
            ended_at: a.ended_at.map(clock::to_db),
            dose_mg_per_kg: a.dose_mg_per_kg,
            weight_kg: a.weight_kg,
            total_dose_mg: a.total_dose_mg(),
            status: a.status,
            hold_reason: a.hold_reason,
            charge_cents: a.charge_cents,
            pre_systolic: a.pre.systolic,
            pre_diastolic: a.pre.diastolic,
            pre_heart_rate: a.pre.heart_rate,
            pre_spo2: a.pre.spo2,
            post_systolic: a.post.systolic,
            post_diastolic: a.post.diastolic,
            post_heart_rate: a.post.heart_rate,
            post_spo2: a.post.spo2,
            readings: Json(a.readings),
            monitoring_minutes: a.monitoring_minutes,
            sedation: a.sedation,
            respiratory_concern: a.respiratory_concern,
            recorded_by: current.map_or(making.by.user_id, |c| c.recorded_by),
            body_hash: making.body_hash(),
            created_at: current.map_or(now, |c| c.created_at),
            updated_at: now,
            version: making.version(),
            deleted_at: None,
            deleted_reason: None,
        })
    }

    fn entered_in_error(&self) -> bool {
        self.deleted_at.is_some()
    }

    fn change<'a>(&'a self, before: Option<&'a Self>) -> Change<'a> {
        Change::Session {
            session: self,
            before,
        }
    }

    viewed_as_recorded!();
}

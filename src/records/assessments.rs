//! Questionnaires, scored by the server (domain.md §5). Clinicians submit any instrument;
//! patients submit their own, of the instruments marked `patient`.

use chrono::{DateTime, Utc};

use crate::clock;
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::instrument::{may_submit, Instrument, Rater, Scored};
use crate::domain::time;
use crate::error::ApiError;
use crate::evaluation::Change;
use crate::records::{viewed_as_recorded, Actions, Kind, Making, Writers};
use crate::store::assessments::AssessmentRow;
use crate::store::columns::Json;
use crate::store::DbConnection;

/// A questionnaire as submitted: the answers in the instrument's item order.
pub struct AssessmentDraft {
    pub instrument: Instrument,
    pub taken_at: DateTime<Utc>,
    pub items: Vec<i32>,
}

/// The rater a caller submits as: a patient rates themselves; anyone else is a clinician.
pub fn rater(role: Role) -> Rater {
    if role == Role::Patient {
        Rater::Patient
    } else {
        Rater::Clinician
    }
}

impl Kind for AssessmentRow {
    type Draft = AssessmentDraft;
    const ACTIONS: Actions = Actions {
        created: Action::AssessmentCreated,
        read: Action::AssessmentRead,
        listed: Action::AssessmentsListed,
        updated: None,
        entered_in_error: Some(Action::AssessmentEnteredInError),
    };
    const WRITERS: Writers = Writers::CliniciansAndPatient;

    fn build(
        _: &mut DbConnection,
        draft: AssessmentDraft,
        making: Making<'_, Self>,
    ) -> Result<Self, ApiError> {
        let submitted_by = rater(making.by.role);
        // A clinician-rated instrument is a matter of role, not of the body (quality.md's
        // matrix): 403, as for any other act the caller's role does not allow.
        if !may_submit(submitted_by, draft.instrument) {
            return Err(ApiError::Forbidden);
        }
        time::recorded("taken_at", draft.taken_at, making.now)?;
        let scored = Scored::score(draft.instrument, &draft.items)?;
        let now = clock::to_db(making.now);
        Ok(AssessmentRow {
            change_seq: crate::store::UNSYNCED,
            id: making.id,
            patient_id: making.patient,
            instrument: draft.instrument,
            taken_at: clock::to_db(draft.taken_at),
            items: Json(scored.items),
            total: scored.total,
            band: scored.band.map(str::to_owned),
            submitted_by,
            recorded_by: making.by.user_id,
            body_hash: making.body_hash(),
            created_at: now,
            updated_at: now,
            version: making.version(),
            deleted_at: None,
            deleted_reason: None,
        })
    }

    fn entered_in_error(&self) -> bool {
        self.deleted_at.is_some()
    }

    fn change<'a>(&'a self, _before: Option<&'a Self>) -> Change<'a> {
        Change::Assessment(self)
    }

    viewed_as_recorded!();
}

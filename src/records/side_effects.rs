//! Side-effect reports (domain.md §4). Clinicians report for their patients; patients report
//! their own and mark them resolved.

use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::SessionId;
use crate::domain::instrument::Rater;
use crate::domain::side_effect::{ReportContext, SideEffectReport};
use crate::error::ApiError;
use crate::evaluation::Change;
use crate::records::assessments::rater;
use crate::records::{optional, viewed_as_recorded, Actions, Kind, Making, Writers};
use crate::store::scope::Scope;
use crate::store::side_effects::SideEffectRow;
use crate::store::{sessions, DbConnection};

/// A report as a create or a change describes it. The reporter (`reported_by`) is the
/// caller's role on a create, and stays as it was through changes.
pub struct SideEffectDraft {
    /// The session; when absent, the patient's most recent completed session.
    pub session: Option<SessionId>,
    pub report: SideEffectReport,
}

impl Kind for SideEffectRow {
    type Draft = SideEffectDraft;
    const ACTIONS: Actions = Actions {
        created: Action::SideEffectCreated,
        read: Action::SideEffectRead,
        listed: Action::SideEffectsListed,
        updated: Some(Action::SideEffectUpdated),
        entered_in_error: Some(Action::SideEffectEnteredInError),
    };
    const WRITERS: Writers = Writers::CliniciansAndPatient;
    const KEPT_AS_IS: &'static str = "the report was entered in error and cannot change";

    fn build(
        conn: &mut DbConnection,
        draft: SideEffectDraft,
        making: Making<'_, Self>,
    ) -> Result<Self, ApiError> {
        let patient = making.patient;
        if let Some(current) = making.current {
            if rater(making.by.role) == Rater::Patient {
                patient_changes_only_resolution(current, &draft)?;
            }
        }
        let session = match draft.session {
            Some(session) => optional(sessions::find(conn, &Scope::Patient(patient), session))?
                .filter(|s| s.deleted_at.is_none())
                .ok_or_else(|| {
                    ApiError::invalid("session_id", "no such session for this patient")
                })?,
            None => sessions::latest_completed_before(conn, patient, clock::to_db(making.now))?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "session_id",
                        "the patient has no completed session to attach it to",
                    )
                })?,
        };
        let (reported_by, recorded_by) = making
            .current
            .map_or((rater(making.by.role), making.by.user_id), |c| {
                (c.reported_by, c.recorded_by)
            });
        let report = SideEffectReport::new(
            SideEffectReport {
                reported_by,
                ..draft.report
            },
            &ReportContext {
                session_started_at: clock::from_db(session.started_at),
                now: making.now,
            },
        )?;
        let now = clock::to_db(making.now);
        Ok(SideEffectRow {
            change_seq: crate::store::UNSYNCED,
            id: making.id,
            patient_id: patient,
            session_id: session.id,
            effect: report.effect,
            severity: report.severity,
            onset_at: clock::to_db(report.onset_at),
            resolved_at: report.resolved_at.map(clock::to_db),
            reported_by: report.reported_by,
            note: report.note,
            recorded_by,
            body_hash: making.body_hash(),
            created_at: making.current.map_or(now, |c| c.created_at),
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
        Change::SideEffect(self)
    }

    viewed_as_recorded!();
}

/// A patient may mark their report resolved (or not), and change nothing else of it.
fn patient_changes_only_resolution(
    current: &SideEffectRow,
    draft: &SideEffectDraft,
) -> Result<(), ApiError> {
    let was = current.report();
    let now = &draft.report;
    let changed = [
        (
            "session_id",
            draft.session.is_some_and(|s| s != current.session_id),
        ),
        ("effect", now.effect != was.effect),
        ("severity", now.severity != was.severity),
        ("onset_at", now.onset_at != was.onset_at),
        ("note", now.note != was.note),
    ];
    match changed.iter().find(|(_, changed)| *changed) {
        Some((field, _)) => Err(ApiError::invalid(
            *field,
            "a patient may change only resolved_at",
        )),
        None => Ok(()),
    }
}

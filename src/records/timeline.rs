//! A patient's sessions, assessments and side effects in one time order, each as its own
//! read shows it (with its flags and any crisis message).

use chrono::NaiveDateTime;

use crate::call::{Call, Event};
use crate::domain::audit::Action;
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::records::{with_flags, Recorded};
use crate::store::assessments::AssessmentRow;
use crate::store::sessions::SessionRow;
use crate::store::side_effects::SideEffectRow;
use crate::store::{patients, Page, Stored, Window};

/// One entry of the timeline.
pub enum Entry {
    Session(Recorded<SessionRow>),
    Assessment(Recorded<AssessmentRow>),
    SideEffect(Recorded<SideEffectRow>),
}

impl Entry {
    /// The session's start, the assessment's time taken, or the side effect's onset.
    pub fn at(&self) -> NaiveDateTime {
        match self {
            Entry::Session(r) => r.record.own_time(),
            Entry::Assessment(r) => r.record.own_time(),
            Entry::SideEffect(r) => r.record.own_time(),
        }
    }

    pub fn id(&self) -> String {
        match self {
            Entry::Session(r) => r.record.id.to_string(),
            Entry::Assessment(r) => r.record.id.to_string(),
            Entry::SideEffect(r) => r.record.id.to_string(),
        }
    }
}

/// The patient's live records in a time range, one page (plus one, when another follows)
/// after the page's cursor, audited.
pub async fn timeline(
    call: &Call,
    patient: PatientId,
    range: Window,
    page: Page,
) -> Result<Vec<Entry>, ApiError> {
    let scope = call.clinical_scope()?;
    let mut entries = call
        .transaction(move |conn, call| {
            patients::find(conn, &scope, patient)?;
            let mut entries = Vec::new();
            let sessions = SessionRow::list(conn, patient, &range, &page)?;
            entries.extend(with_flags(conn, sessions)?.into_iter().map(Entry::Session));
            let scores = AssessmentRow::list(conn, patient, &range, &page)?;
            entries.extend(with_flags(conn, scores)?.into_iter().map(Entry::Assessment));
            let effects = SideEffectRow::list(conn, patient, &range, &page)?;
            entries.extend(
                with_flags(conn, effects)?
                    .into_iter()
                    .map(Entry::SideEffect),
            );
            call.audit(conn, Event::record(Action::TimelineRead, patient, patient))?;
            Ok(entries)
        })
        .await?;
    // Each list returned its first page (plus one) after the cursor; merged, the union's first
    // page (plus one) is among them.
    entries.sort_by_cached_key(|e| (e.at(), e.id()));
    Ok(entries)
}

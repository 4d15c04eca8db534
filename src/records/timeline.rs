//! A patient's sessions, assessments and side effects in one time order, each as its own
//! read shows it (with its flags and any crisis message).

use chrono::NaiveDateTime;

use crate::call::{Call, Event};
use crate::domain::audit::Action;
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::records::{ids_of, FlagsOf, Recorded};
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
/// after the page's cursor: read in one read-only transaction, with the flags of every entry in
/// one query, and audited behind the answer (`call::audit_behind`), as the worklist is.
pub async fn timeline(
    call: &Call,
    patient: PatientId,
    range: Window,
    page: Page,
) -> Result<Vec<Entry>, ApiError> {
    let scope = call.clinical_scope()?;
    let mut entries = call
        .read(move |conn| {
            patients::clinic_in_scope(conn, &scope, patient)?;
            let sessions = SessionRow::list(conn, patient, &range, &page)?;
            let scores = AssessmentRow::list(conn, patient, &range, &page)?;
            let effects = SideEffectRow::list(conn, patient, &range, &page)?;
            let ids: Vec<String> = ids_of(&sessions)
                .chain(ids_of(&scores))
                .chain(ids_of(&effects))
                .collect();
            let mut flags = FlagsOf::read(conn, &ids)?;
            let mut entries = Vec::with_capacity(ids.len());
            for session in sessions {
                entries.push(Entry::Session(flags.attach(conn, session)?));
            }
            for score in scores {
                entries.push(Entry::Assessment(flags.attach(conn, score)?));
            }
            for effect in effects {
                entries.push(Entry::SideEffect(flags.attach(conn, effect)?));
            }
            Ok(entries)
        })
        .await?;
    call.audit_behind([Event::record(Action::TimelineRead, patient, patient)])
        .await?;
    // Each list returned its first page (plus one) after the cursor; merged, the union's first
    // page (plus one) is among them.
    entries.sort_by_cached_key(|e| (e.at(), e.id()));
    Ok(entries)
}

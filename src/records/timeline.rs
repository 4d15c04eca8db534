//! A patient's sessions, assessments and side effects in one time order, each as its own
//! read shows it (with its flags and any crisis message).

use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::call::{Call, Event};
use crate::domain::audit::Action;
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::records::{FlagsOf, Recorded};
use crate::store::assessments::AssessmentRow;
use crate::store::sessions::SessionRow;
use crate::store::side_effects::SideEffectRow;
use crate::store::{self, Page, Stored, TimeRange};

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

/// The patient's live records in `[from, to)`, one page (plus one, when another follows) after
/// the page's cursor: read in one statement with the flags of every entry and the clinic's
/// crisis message (`store::timeline`), and audited behind the answer (`call::audit_behind`), as
/// the worklist is.
pub async fn timeline(
    call: &Call,
    patient: PatientId,
    range: TimeRange,
    page: Page,
) -> Result<Vec<Entry>, ApiError> {
    let scope = call.clinical_scope()?;
    let mut entries = call
        .run(move |conn| -> Result<_, ApiError> {
            let read = store::timeline::page(conn, scope, patient, range, &page)?;
            let crisis = HashMap::from([(patient, read.crisis_message)]);
            let mut flags = FlagsOf::of(read.flags, crisis);
            let mut entries = Vec::with_capacity(
                read.sessions.len() + read.assessments.len() + read.side_effects.len(),
            );
            for session in read.sessions {
                entries.push(Entry::Session(flags.attach(conn, session)?));
            }
            for score in read.assessments {
                entries.push(Entry::Assessment(flags.attach(conn, score)?));
            }
            for effect in read.side_effects {
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

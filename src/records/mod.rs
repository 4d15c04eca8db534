//! A patient's clinical records — courses, sessions, assessments, side effects — created,
//! read, listed, changed and marked entered in error the same way for every kind, written
//! once here. Each kind adds its own rules ([`Kind::build`]) in its module.
//!
//! Every write runs in one transaction with the recomputation it sets in motion
//! (`evaluation::refresh`) and its audit event; every read of a patient's data is audited.

pub mod assessments;
pub mod courses;
pub mod sessions;
pub mod side_effects;
pub mod timeline;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::call::caller::Caller;
use crate::call::{Call, Event, Expected};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::events::EventBody;
use crate::domain::flags::{FlagKind, FlaggedRecord};
use crate::domain::ids::PatientId;
use crate::error::ApiError;
use crate::evaluation::{self, Change};
use crate::store::flags::{self as flag_store, FlagRow};
use crate::store::patients;
use crate::store::scope::Scope;
use crate::store::{clinics, Correctable, DbConnection, Page, StoreError, Stored, Window};

/// The audit actions of one kind of record.
pub struct Actions {
    pub created: Action,
    pub read: Action,
    pub listed: Action,
    pub updated: Option<Action>,
    pub entered_in_error: Option<Action>,
}

/// Who may write a kind of record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// The patient's clinicians.
    Clinicians,
    /// The patient's clinicians and the patient (through the app).
    CliniciansAndPatient,
}

/// What a new or changed record is made from, besides its draft.
pub struct Making<'a, R: Stored> {
    pub id: R::Id,
    pub patient: PatientId,
    pub by: &'a Caller,
    pub body_hash: &'a str,
    /// The stored record a change replaces.
    pub current: Option<&'a R>,
    pub now: DateTime<Utc>,
}

impl<R: Stored> Making<'_, R> {
    /// The version the row will have, the time it was first made, and the hash of the
    /// request that made it (kept through changes: a replayed create still matches).
    pub fn version(&self) -> i32 {
        self.current.map_or(1, |c| c.version() + 1)
    }

    pub fn body_hash(&self) -> String {
        self.current
            .map_or(self.body_hash, |c| c.body_hash())
            .to_owned()
    }
}

/// A kind of clinical record.
pub trait Kind: Stored {
    /// What a create or a change says, as domain values (the wire form is `api`'s).
    type Draft: Send + 'static;
    const ACTIONS: Actions;
    const WRITERS: Writers;
    /// Why a record entered in error cannot change.
    const KEPT_AS_IS: &'static str = "the record was entered in error and cannot change";

    /// The row to store: the draft checked against the rules that need the database (the
    /// patient's indications, the course a session joins) and the time of writing.
    fn build(
        conn: &mut DbConnection,
        draft: Self::Draft,
        making: Making<'_, Self>,
    ) -> Result<Self, ApiError>;

    /// Whether the record was entered in error (only correctable kinds can be).
    fn entered_in_error(&self) -> bool {
        false
    }

    /// What writing this record (as it was `before`, when it was changed) can move in the
    /// patient's evaluation.
    fn change<'a>(&'a self, before: Option<&'a Self>) -> Change<'a>;

    /// What a client is shown of a record: the record with its flags, and whatever else its
    /// kind adds (a course's schedule).
    type View: Send + 'static;
    fn view(conn: &mut DbConnection, recorded: Recorded<Self>) -> Result<Self::View, StoreError>;
}

/// The kinds whose view is the record and its flags.
macro_rules! viewed_as_recorded {
    () => {
        type View = $crate::records::Recorded<Self>;
        fn view(
            _: &mut $crate::store::DbConnection,
            recorded: $crate::records::Recorded<Self>,
        ) -> Result<Self::View, $crate::store::StoreError> {
            Ok(recorded)
        }
    };
}
pub(crate) use viewed_as_recorded;

/// A record with what a client sees with it: the flags it raised and, when one of them is a
/// suicidal-ideation flag, the clinic's crisis-resources message.
#[derive(Clone, Debug)]
pub struct Recorded<R> {
    pub record: R,
    pub flags: Vec<FlagRow>,
    pub crisis_message: Option<String>,
}

impl<R> AsRef<R> for Recorded<R> {
    fn as_ref(&self) -> &R {
        &self.record
    }
}

/// A create: made now, or a repeat of an earlier create with the same id and body.
pub enum Created<T> {
    Now(T),
    Replayed(T),
}

impl<T> Created<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Created<U> {
        match self {
            Created::Now(t) => Created::Now(f(t)),
            Created::Replayed(t) => Created::Replayed(f(t)),
        }
    }
}

fn write_scope<R: Kind>(call: &Call) -> Result<Scope, ApiError> {
    match R::WRITERS {
        Writers::Clinicians => call.clinician_scope(),
        Writers::CliniciansAndPatient => call.clinical_scope(),
    }
}

/// Creates a record for a patient within the caller's scope; idempotent by client id
/// (api.md, Conventions): the same id and body again returns the stored record, a different
/// body is a conflict.
pub async fn create<R: Kind>(
    call: &Call,
    patient: PatientId,
    id: R::Id,
    draft: R::Draft,
    body_hash: String,
) -> Result<Created<R::View>, ApiError> {
    let scope = write_scope::<R>(call)?;
    call.transaction_holding(scope, patient, move |conn, call| {
        let row = R::build(
            conn,
            draft,
            Making {
                id,
                patient,
                by: &call.caller,
                body_hash: &body_hash,
                current: None,
                now: clock::now(),
            },
        )?;
        let mut raised = Vec::new();
        let created = created_or_replayed(
            conn,
            |conn| optional(R::find(conn, &scope, id)),
            |found| found.body_hash() == row.body_hash() && found.patient_id() == patient,
            |conn| {
                if !R::insert(conn, &row)? {
                    return Ok(None);
                }
                // Before evaluation, whose flags tell the outbox after the record's own event.
                let told = EventBody::created(R::FLAGGED, &id.to_string(), patient, clock::now());
                let event = Event::record(R::ACTIONS.created, id, patient);
                call.audit_telling(conn, event, told)?;
                raised = evaluation::refresh(conn, &call.clinical(), patient, row.change(None))?;
                Ok(Some(row.clone()))
            },
        )?;
        Ok(match created {
            // A new record's flags are the ones its write raised: none stood on its id before.
            // Its change position is the database's alone and not known here; no create's
            // answer shows it (lists page by it).
            Created::Now(row) => {
                let recorded = FlagsOf::of(raised, HashMap::new()).attach(conn, row)?;
                Created::Now(R::view(conn, recorded)?)
            }
            Created::Replayed(row) => Created::Replayed(view::<R>(conn, row)?),
        })
    })
    .await
}

/// The idempotent-create rule (api.md, Conventions), for any record. `create` writes it, its
/// first statement an insert that leaves a taken id as it is (`store::inserted_unless_taken`),
/// and gives what it made — or `None`, having written nothing, when the id was taken. The
/// record found under a taken id is then a replay when it has the same body, and a conflict
/// when it has another or lies outside the caller's scope (never a view of that record). Two
/// identical creates racing each other both end well: the loser waits for the winner to
/// commit (for the patient's row, or at the insert), writes nothing, and reads the winner's
/// record.
pub fn created_or_replayed<T>(
    conn: &mut DbConnection,
    find: impl FnOnce(&mut DbConnection) -> Result<Option<T>, StoreError>,
    same_body: impl FnOnce(&T) -> bool,
    create: impl FnOnce(&mut DbConnection) -> Result<Option<T>, StoreError>,
) -> Result<Created<T>, ApiError> {
    if let Some(made) = create(conn)? {
        return Ok(Created::Now(made));
    }
    match find(conn)? {
        Some(existing) if same_body(&existing) => Ok(Created::Replayed(existing)),
        _ => Err(ApiError::Conflict(
            "a record with this id exists with a different body".into(),
        )),
    }
}

/// One record within the caller's scope, audited.
pub async fn read<R: Kind>(call: &Call, id: R::Id) -> Result<R::View, ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        let row = R::find(conn, &scope, id)?;
        call.audit(conn, Event::record(R::ACTIONS.read, id, row.patient_id()))?;
        Ok(view::<R>(conn, row)?)
    })
    .await
}

/// One page of a patient's records of a kind — by their own time, or by change for sync —
/// audited, each with its flags, and the window it was read in (a sync's with its horizon).
/// The page holds one row more than its limit when another page follows (`Page`).
pub async fn list<R: Kind>(
    call: &Call,
    patient: PatientId,
    window: Window,
    page: Page,
) -> Result<(Vec<R::View>, Window), ApiError> {
    let scope = call.clinical_scope()?;
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, patient)?;
        let window = window.fixed(conn)?;
        let rows = R::list(conn, patient, &window, &page)?;
        call.audit(conn, Event::record(R::ACTIONS.listed, patient, patient))?;
        let views = with_flags(conn, rows)?
            .into_iter()
            .map(|recorded| R::view(conn, recorded))
            .collect::<Result<_, _>>()?;
        Ok((views, window))
    })
    .await
}

/// A record within the scope, read again once its patient's row is held (`patients::hold`):
/// what a change is based on is then what no other write to the record can still change.
fn held<R: Kind>(conn: &mut DbConnection, scope: &Scope, id: R::Id) -> Result<R, StoreError> {
    let patient = R::find(conn, scope, id)?.patient_id();
    patients::hold(conn, patient)?;
    R::find(conn, scope, id)
}

/// Changes a record: `change` turns the stored record into the draft of its new form (the
/// API applies a merge patch to it), which meets the same rules as a create. `expected` is
/// the version the client holds (If-Match); a stale one is refused.
pub async fn update<R: Kind>(
    call: &Call,
    id: R::Id,
    expected: Expected,
    change: impl FnOnce(&R) -> Result<R::Draft, ApiError> + Send + 'static,
) -> Result<R::View, ApiError> {
    let scope = write_scope::<R>(call)?;
    let action = R::ACTIONS.updated.ok_or(ApiError::MethodNotAllowed)?;
    call.transaction(move |conn, call| {
        let current = held::<R>(conn, &scope, id)?;
        if !expected.admits(current.version()) {
            return Err(ApiError::PreconditionFailed);
        }
        if current.entered_in_error() {
            return Err(ApiError::Conflict(R::KEPT_AS_IS.into()));
        }
        let patient = current.patient_id();
        let draft = change(&current)?;
        let row = R::build(
            conn,
            draft,
            Making {
                id,
                patient,
                by: &call.caller,
                body_hash: "",
                current: Some(&current),
                now: clock::now(),
            },
        )?;
        R::replace(conn, &row, current.version())?;
        call.audit(conn, Event::record(action, id, patient))?;
        evaluation::refresh(conn, &call.clinical(), patient, row.change(Some(&current)))?;
        let row = R::find(conn, &scope, id)?;
        Ok(view::<R>(conn, row)?)
    })
    .await
}

/// Marks a record entered in error (once; a repeat changes nothing): kept and audited,
/// excluded from every outcome and research figure, returned to sync as deleted.
pub async fn correct<R: Kind + Correctable>(
    call: &Call,
    id: R::Id,
    reason: String,
) -> Result<R::View, ApiError> {
    let scope = call.clinician_scope()?;
    let action = R::ACTIONS
        .entered_in_error
        .ok_or(ApiError::MethodNotAllowed)?;
    call.transaction(move |conn, call| {
        let current = held::<R>(conn, &scope, id)?;
        let patient = current.patient_id();
        if !current.is_entered_in_error() {
            let version = current.version();
            R::replace(
                conn,
                &current.marked(reason, clock::to_db(clock::now())),
                version,
            )?;
            call.audit(conn, Event::record(action, id, patient))?;
        }
        let row = R::find(conn, &scope, id)?;
        // Entered in error, the record is what it was in all but that: where it was, it is.
        evaluation::refresh(conn, &call.clinical(), patient, row.change(None))?;
        Ok(view::<R>(conn, row)?)
    })
    .await
}

/// The id a create asks for (a client-generated id makes it idempotent), or a new one.
pub fn id_for<I: From<uuid::Uuid>>(asked: Option<uuid::Uuid>) -> I {
    I::from(asked.unwrap_or_else(uuid::Uuid::new_v4))
}

/// Maps a missing record to `None`, for lookups where absence is an answer.
pub fn optional<T>(found: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match found {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The flags of some records, read in one query, handed to each record with — where a flag
/// calls for it — its clinic's crisis message, looked up once per patient.
pub struct FlagsOf {
    /// By the kind and id of the record: ids a client chooses are unique within a kind only.
    by_record: HashMap<(FlaggedRecord, String), Vec<FlagRow>>,
    crisis_messages: HashMap<PatientId, String>,
}

impl FlagsOf {
    pub fn read(conn: &mut DbConnection, ids: &[String]) -> Result<Self, StoreError> {
        Ok(Self::of(
            flag_store::for_records(conn, ids)?,
            HashMap::new(),
        ))
    }

    /// Flags at hand, with the crisis messages known of their patients; each record's are
    /// handed to it most urgent first.
    pub fn of(mut rows: Vec<FlagRow>, crisis_messages: HashMap<PatientId, String>) -> Self {
        rows.sort_by(flag_store::by_urgency);
        let mut by_record: HashMap<(FlaggedRecord, String), Vec<FlagRow>> = HashMap::new();
        for row in rows {
            by_record
                .entry((row.record_type, row.record_id.clone()))
                .or_default()
                .push(row);
        }
        Self {
            by_record,
            crisis_messages,
        }
    }

    /// `record` with its flags.
    pub fn attach<R: Stored>(
        &mut self,
        conn: &mut DbConnection,
        record: R,
    ) -> Result<Recorded<R>, StoreError> {
        let flags = self
            .by_record
            .remove(&(R::FLAGGED, record.id().to_string()))
            .unwrap_or_default();
        let crisis_message = if flags.iter().any(|f| f.kind == FlagKind::SuicidalIdeation) {
            Some(self.crisis_message(conn, record.patient_id())?)
        } else {
            None
        };
        Ok(Recorded {
            record,
            flags,
            crisis_message,
        })
    }

    /// The clinic's crisis-resources message, so the app can show it at once (domain.md §7).
    fn crisis_message(
        &mut self,
        conn: &mut DbConnection,
        patient: PatientId,
    ) -> Result<String, StoreError> {
        if let Some(message) = self.crisis_messages.get(&patient) {
            return Ok(message.clone());
        }
        let message = clinics::crisis_message_of_patient(conn, patient)?;
        self.crisis_messages.insert(patient, message.clone());
        Ok(message)
    }
}

/// The ids of `rows`, as flags name their records.
fn ids_of<R: Stored>(rows: &[R]) -> impl Iterator<Item = String> + '_ {
    rows.iter().map(|r| r.id().to_string())
}

/// Each record with its flags and, where a flag calls for it, its clinic's crisis message.
pub fn with_flags<R: Stored>(
    conn: &mut DbConnection,
    rows: Vec<R>,
) -> Result<Vec<Recorded<R>>, StoreError> {
    let mut flags = FlagsOf::read(conn, &ids_of(&rows).collect::<Vec<_>>())?;
    rows.into_iter()
        .map(|record| flags.attach(conn, record))
        .collect()
}

fn view<R: Kind>(conn: &mut DbConnection, row: R) -> Result<R::View, StoreError> {
    let recorded = with_flags(conn, vec![row])?.remove(0);
    R::view(conn, recorded)
}

//! The flag worklist. Raising is idempotent: one flag per kind per record, however many
//! writers race, because the database's unique key refuses the second.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{flags, patients};
use super::scope::Scope;
use super::{outbox, DbConnection, StoreError};
use crate::clock;
use crate::domain::events::{EventBody, EventType, FlagEvent};
use crate::domain::flags::{FlagKind, FlagLevel, FlagStatus, FlaggedRecord};
use crate::domain::ids::{FlagId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = flags)]
pub struct FlagRow {
    pub id: FlagId,
    pub patient_id: PatientId,
    pub kind: FlagKind,
    pub level: FlagLevel,
    pub level_rank: i32,
    pub record_type: FlaggedRecord,
    /// The record's id; for a planned slot, `course_id:date`.
    pub record_id: String,
    pub detail: String,
    pub raised_at: NaiveDateTime,
    pub status: FlagStatus,
    pub acknowledged_by: Option<UserId>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub note: Option<String>,
    /// When it was escalated: urgent, and left open past the escalation time.
    pub escalated_at: Option<NaiveDateTime>,
}

impl FlagRow {
    /// A new open flag of `kind` (at its kind's level) on a record of `patient`.
    pub fn open(
        patient_id: PatientId,
        kind: FlagKind,
        record_type: FlaggedRecord,
        record_id: String,
        detail: String,
        raised_at: NaiveDateTime,
    ) -> Self {
        let level = kind.level();
        Self {
            id: FlagId::random(),
            patient_id,
            kind,
            level,
            level_rank: level.rank(),
            record_type,
            record_id,
            detail,
            raised_at,
            status: FlagStatus::Open,
            acknowledged_by: None,
            acknowledged_at: None,
            note: None,
            escalated_at: None,
        }
    }
}

/// What follows any change of a flag (raised, acknowledged, escalated): its record's sync
/// position moves, and the outbox is told `event_type`, at `at`.
fn changed(
    conn: &mut DbConnection,
    flag: &FlagRow,
    event_type: EventType,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    touch(conn, flag.record_type, &flag.record_id)?;
    let event = FlagEvent {
        flag: flag.id,
        patient: flag.patient_id,
        kind: flag.kind,
        level: flag.level,
        record_type: flag.record_type,
        record_id: &flag.record_id,
    };
    outbox::tell(
        conn,
        &EventBody::flag(event_type, &event, clock::from_db(at)),
    )
}

/// Inserts the flag unless one of its kind exists for its record, and tells the outbox; true
/// when inserted.
pub fn raise(conn: &mut DbConnection, row: &FlagRow) -> Result<bool, StoreError> {
    // A duplicate (the kind on the record) is left alone in the same statement: no savepoint.
    let inserted =
        super::inserted_unless_taken(conn, diesel::insert_into(flags::table).values(row))?;
    if inserted {
        changed(conn, row, EventType::FlagRaised, row.raised_at)?;
    }
    Ok(inserted)
}

/// Moves the flagged record's sync position (the database's trigger does, on any update), so a
/// phone syncing it by cursor receives it again with its flags as they now stand (a flag the
/// sweep raised, an acknowledgement). Its version is the clinician's, for its own fields, and
/// its time of change is its data's: research releases are keyed on it, and a flag changing
/// them would buy a researcher a fresh noisy answer to the same question. A missed induction
/// slot is its course's.
fn touch(
    conn: &mut DbConnection,
    record_type: FlaggedRecord,
    record_id: &str,
) -> Result<(), StoreError> {
    use super::schema::{assessments, courses, sessions, side_effects};
    match record_type {
        FlaggedRecord::Assessment => diesel::update(assessments::table)
            .filter(assessments::id.eq(record_id))
            .set(assessments::change_seq.eq(assessments::change_seq))
            .execute(conn)?,
        FlaggedRecord::Session => diesel::update(sessions::table)
            .filter(sessions::id.eq(record_id))
            .set(sessions::change_seq.eq(sessions::change_seq))
            .execute(conn)?,
        FlaggedRecord::SideEffect => diesel::update(side_effects::table)
            .filter(side_effects::id.eq(record_id))
            .set(side_effects::change_seq.eq(side_effects::change_seq))
            .execute(conn)?,
        FlaggedRecord::Course | FlaggedRecord::PlannedSlot => {
            let course = record_id.split(':').next().unwrap_or(record_id);
            diesel::update(courses::table)
                .filter(courses::id.eq(course))
                .set(courses::change_seq.eq(courses::change_seq))
                .execute(conn)?
        }
    };
    Ok(())
}

/// The (kind, record) pairs already flagged for a patient.
/// The flags the patient has on these records, as (kind, record).
pub fn existing_on(
    conn: &mut DbConnection,
    patient_id: PatientId,
    record_ids: &[String],
) -> Result<Vec<(FlagKind, String)>, StoreError> {
    Ok(flags::table
        .filter(flags::patient_id.eq(patient_id))
        .filter(flags::record_id.eq_any(record_ids))
        .select((flags::kind, flags::record_id))
        .load(conn)?)
}

/// Every flag of a patient, oldest first.
pub fn of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<FlagRow>, StoreError> {
    Ok(flags::table
        .filter(flags::patient_id.eq(patient_id))
        .order((flags::raised_at.asc(), flags::id.asc()))
        .select(FlagRow::as_select())
        .load(conn)?)
}

/// The flags of some records, in no order ([`by_urgency`] gives theirs).
pub fn for_records(
    conn: &mut DbConnection,
    record_ids: &[String],
) -> Result<Vec<FlagRow>, StoreError> {
    Ok(flags::table
        .filter(flags::record_id.eq_any(record_ids))
        .select(FlagRow::as_select())
        .load(conn)?)
}

/// The order a record's flags are shown in, the same in every read: most urgent first, then
/// the oldest, then by id.
pub fn by_urgency(a: &FlagRow, b: &FlagRow) -> std::cmp::Ordering {
    (a.level_rank, a.raised_at, a.id).cmp(&(b.level_rank, b.raised_at, b.id))
}

#[derive(Debug, Default)]
pub struct FlagFilter {
    pub status: Option<FlagStatus>,
    pub level: Option<FlagLevel>,
    pub kind: Option<FlagKind>,
    pub patient_id: Option<PatientId>,
}

/// Where a page of the worklist starts: after the flag with this level rank, time and id.
#[derive(Clone, Copy, Debug)]
pub struct After {
    pub rank: i32,
    pub raised_at: NaiveDateTime,
    pub id: FlagId,
}

/// The worklist in its order: urgent first, then high, then info; oldest first within a
/// level; `limit` flags after `after`.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    filter: &FlagFilter,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<FlagRow>, StoreError> {
    let query = flags::table
        .inner_join(patients::table)
        .select(FlagRow::as_select())
        .into_boxed();
    let mut query = in_scope!(query, scope);
    if let Some(status) = &filter.status {
        query = query.filter(flags::status.eq(*status));
    }
    if let Some(level) = &filter.level {
        query = query.filter(flags::level.eq(*level));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(flags::kind.eq(*kind));
    }
    if let Some(patient) = &filter.patient_id {
        query = query.filter(flags::patient_id.eq(*patient));
    }
    if let Some(After {
        rank,
        raised_at,
        id,
    }) = after
    {
        query = query.filter(
            flags::level_rank
                .gt(rank)
                .or(flags::level_rank.eq(rank).and(
                    flags::raised_at
                        .gt(raised_at)
                        .or(flags::raised_at.eq(raised_at).and(flags::id.gt(id))),
                )),
        );
    }
    Ok(query
        .order((
            flags::level_rank.asc(),
            flags::raised_at.asc(),
            flags::id.asc(),
        ))
        .limit(limit)
        .load(conn)?)
}

pub fn find(conn: &mut DbConnection, scope: &Scope, id: FlagId) -> Result<FlagRow, StoreError> {
    find_in_scope!(conn, flags, FlagRow, scope, id)
}

/// Acknowledges an open flag and tells the outbox; false when it was acknowledged already.
pub fn acknowledge(
    conn: &mut DbConnection,
    id: FlagId,
    by: UserId,
    note: &str,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        flags::table
            .find(id)
            .filter(flags::status.eq(FlagStatus::Open)),
    )
    .set((
        flags::status.eq(FlagStatus::Acknowledged),
        flags::acknowledged_by.eq(by),
        flags::acknowledged_at.eq(now),
        flags::note.eq(note),
    ))
    .execute(conn)?;
    if updated == 1 {
        let flag: FlagRow = flags::table
            .find(id)
            .select(FlagRow::as_select())
            .first(conn)?;
        changed(conn, &flag, EventType::FlagAcknowledged, now)?;
    }
    Ok(updated == 1)
}

/// Removes the patient's open flags of `kind` on records other than `keep`: a flag that
/// stands only while its condition does (`benefit_gap_expected`) and that nobody acknowledged.
/// Each record's sync position moves, so phones see the flag gone. How many it removed.
pub fn clear_open_except(
    conn: &mut DbConnection,
    patient_id: PatientId,
    kind: FlagKind,
    keep: &[String],
) -> Result<usize, StoreError> {
    let stale: Vec<FlagRow> = flags::table
        .filter(flags::patient_id.eq(patient_id))
        .filter(flags::kind.eq(kind))
        .filter(flags::status.eq(FlagStatus::Open))
        .filter(flags::record_id.ne_all(keep))
        .select(FlagRow::as_select())
        .load(conn)?;
    for flag in &stale {
        diesel::delete(flags::table.find(flag.id)).execute(conn)?;
        touch(conn, flag.record_type, &flag.record_id)?;
    }
    Ok(stale.len())
}

/// Escalates every open urgent flag raised at or before `raised_by` and not yet escalated:
/// marks it at `now`, moves its record's sync position and tells the outbox — once per flag
/// however many processes check at once, since only the update that finds it unmarked
/// escalates it. The flags escalated.
pub fn escalate_due(
    conn: &mut DbConnection,
    raised_by: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Vec<FlagRow>, StoreError> {
    let awaiting = || {
        flags::table
            .filter(flags::status.eq(FlagStatus::Open))
            .filter(flags::level.eq(FlagLevel::Urgent))
            .filter(flags::escalated_at.is_null())
    };
    let due: Vec<FlagRow> = awaiting()
        .filter(flags::raised_at.le(raised_by))
        .select(FlagRow::as_select())
        .load(conn)?;
    let mut escalated = Vec::with_capacity(due.len());
    for mut flag in due {
        let marked = diesel::update(awaiting().filter(flags::id.eq(flag.id)))
            .set(flags::escalated_at.eq(now))
            .execute(conn)?;
        if marked == 1 {
            flag.escalated_at = Some(now);
            changed(conn, &flag, EventType::FlagEscalated, now)?;
            escalated.push(flag);
        }
    }
    Ok(escalated)
}

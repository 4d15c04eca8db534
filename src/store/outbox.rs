//! The outbox: each event written in the transaction of the change that causes it, and read
//! back by clinic in commit-safe order (below the [`horizon`]), so a reader that resumes after
//! a position never misses an event that committed later below it.

use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::{Text, Timestamp};

use super::schema::{outbox, patients};
use super::{horizon, DbConnection, MultiBackend, Position, StoreError};
use crate::clock;
use crate::domain::events::{EventBody, EventType};
use crate::domain::ids::{ClinicId, EventId, PatientId};

/// One stored event; `payload` is its body as sent.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: EventId,
    pub patient_id: PatientId,
    pub event_type: EventType,
    pub payload: String,
    pub change_seq: i64,
}

/// Writes `body` to the outbox, with its patient's clinic, inside the caller's transaction:
/// one statement, the clinic read by the insert itself.
pub fn tell(conn: &mut DbConnection, body: &EventBody) -> Result<(), StoreError> {
    one_written(insert(body)?.execute(conn)?)
}

/// Runs the write `first`, then writes `body` to the outbox as [`tell`] does: one statement on
/// PostgreSQL ([`super::written_together`]).
pub fn tell_after<F>(conn: &mut DbConnection, first: F, body: &EventBody) -> Result<(), StoreError>
where
    F: QueryFragment<MultiBackend> + QueryId,
{
    one_written(super::written_together(conn, first, insert(body)?)?)
}

/// The insert of `body`, which reads its patient's clinic itself: it writes nothing when the
/// patient is not there.
fn insert(
    body: &EventBody,
) -> Result<impl QueryFragment<MultiBackend> + QueryId + RunQueryDsl<DbConnection>, StoreError> {
    let payload = serde_json::to_string(body)
        .map_err(|e| StoreError::Integrity(format!("an event that is not JSON: {e}").into()))?;
    let patient = PatientId::from(body.data.patient_id);
    let event = patients::table.filter(patients::id.eq(patient)).select((
        EventId::next().to_string().into_sql::<Text>(),
        patients::clinic_id,
        patients::id,
        body.event_type.as_str().into_sql::<Text>(),
        payload.into_sql::<Text>(),
        clock::to_db(body.timestamp).into_sql::<Timestamp>(),
    ));
    Ok(diesel::insert_into(outbox::table)
        .values(event)
        .into_columns((
            outbox::id,
            outbox::clinic_id,
            outbox::patient_id,
            outbox::event_type,
            outbox::payload,
            outbox::occurred_at,
        )))
}

fn one_written(written: usize) -> Result<(), StoreError> {
    if written == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound)
    }
}

/// Up to `limit` events of the clinic's patients after `after` and below the horizon, in
/// position order; and that horizon, which no later commit lands below. A position at or past
/// it was never handed out by this database ([`StoreError::AheadOfDatabase`]).
pub fn of_clinic_after(
    conn: &mut DbConnection,
    clinic: ClinicId,
    after: &Position,
    limit: i64,
) -> Result<(Vec<OutboxRow>, i64), StoreError> {
    let horizon = horizon(conn)?;
    if after.change_seq >= horizon {
        return Err(StoreError::AheadOfDatabase);
    }
    let query = outbox::table
        .filter(outbox::clinic_id.eq(clinic))
        .select(OutboxRow::as_select())
        .into_boxed();
    let rows = changes_after!(query, outbox, Some(after), Some(&horizon))
        .limit(limit)
        .load(conn)?;
    Ok((rows, horizon))
}

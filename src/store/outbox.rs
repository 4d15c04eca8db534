//! The outbox: each event written in the transaction of the change that causes it, and read
//! back by clinic in commit-safe order (`Window::fixed`'s horizon), so a reader that resumes
//! after a position never misses an event that committed later below it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{outbox, patients};
use super::{horizon, DbConnection, Position, StoreError};
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
    pub occurred_at: NaiveDateTime,
    pub change_seq: i64,
}

/// Writes `body` to the outbox, inside the caller's transaction.
pub fn tell(conn: &mut DbConnection, body: &EventBody) -> Result<(), StoreError> {
    let payload = serde_json::to_string(body)
        .map_err(|e| StoreError::Integrity(format!("an event that is not JSON: {e}").into()))?;
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(EventId::next()),
            outbox::patient_id.eq(PatientId::from(body.data.patient_id)),
            outbox::event_type.eq(body.event_type),
            outbox::payload.eq(payload),
            outbox::occurred_at.eq(clock::to_db(body.timestamp)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Up to `limit` events of the clinic's patients after `after` (from the first one when
/// `None`) and below the [`horizon`], in position order.
pub fn of_clinic_after(
    conn: &mut DbConnection,
    clinic: ClinicId,
    after: &Position,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let horizon = horizon(conn)?;
    let mut query = outbox::table
        .inner_join(patients::table)
        .filter(patients::clinic_id.eq(clinic))
        .filter(outbox::change_seq.lt(horizon))
        .select(OutboxRow::as_select())
        .order((outbox::change_seq, outbox::id))
        .limit(limit)
        .into_boxed();
    query = match &after.id {
        Some(id) => query.filter(
            outbox::change_seq
                .gt(after.change_seq)
                .or(outbox::change_seq
                    .eq(after.change_seq)
                    .and(outbox::id.gt(id.clone()))),
        ),
        None => query.filter(outbox::change_seq.gt(after.change_seq)),
    };
    Ok(query.load(conn)?)
}

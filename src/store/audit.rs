//! The audit trail. There is an insert and a read here and nothing else: no code path updates
//! or deletes an event, and database triggers refuse it too.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events as ae;
use diesel::sql_types::{Nullable, Text, Timestamp};

use super::{DbConnection, MultiBackend, Page, StoreError};
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::ids::{AuditEventId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = ae)]
pub struct AuditEventRow {
    pub id: AuditEventId,
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<UserId>,
    pub actor_role: Option<Role>,
    pub action: Action,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub patient_id: Option<PatientId>,
    pub request_id: String,
    pub client_address: Option<String>,
    /// What a research query or export asked (JSON), for the controlled tier's audit.
    pub detail: Option<String>,
}

/// The most events one statement appends: 11 parameters each, within SQLite's 32 766 (and
/// PostgreSQL's 65 535) parameters per statement.
pub const MOST_IN_ONE_STATEMENT: usize = 2_000;

/// Appends `events` to the trail, up to [`MOST_IN_ONE_STATEMENT`] in one multi-row `INSERT`:
/// one round trip, and atomic without a transaction around it. (Written as SQL because
/// diesel's connection over both engines has no multi-row insert.)
pub fn record(conn: &mut DbConnection, events: &[AuditEventRow]) -> Result<(), StoreError> {
    for chunk in events.chunks(MOST_IN_ONE_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let first = i * 11;
                let params: Vec<String> = (1..=11).map(|n| format!("${}", first + n)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_events (id, occurred_at, actor_id, actor_role, action, \
             resource_type, resource_id, patient_id, request_id, client_address, detail) \
             VALUES {}",
            rows.join(", ")
        );
        let mut insert =
            diesel::sql_query(super::numbered_parameters(conn, sql)).into_boxed::<MultiBackend>();
        for event in chunk {
            insert = insert
                .bind::<Text, _>(&event.id)
                .bind::<Timestamp, _>(event.occurred_at)
                .bind::<Nullable<Text>, _>(&event.actor_id)
                .bind::<Nullable<Text>, _>(&event.actor_role)
                .bind::<Text, _>(&event.action)
                .bind::<Text, _>(&event.resource_type)
                .bind::<Nullable<Text>, _>(&event.resource_id)
                .bind::<Nullable<Text>, _>(&event.patient_id)
                .bind::<Text, _>(&event.request_id)
                .bind::<Nullable<Text>, _>(&event.client_address)
                .bind::<Nullable<Text>, _>(&event.detail);
        }
        insert.execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub patient_id: Option<PatientId>,
    pub actor_id: Option<UserId>,
    pub action: Option<Action>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &AuditFilter,
    page: &Page,
) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut query = ae::table.select(AuditEventRow::as_select()).into_boxed();
    if let Some(patient) = &filter.patient_id {
        query = query.filter(ae::patient_id.eq(*patient));
    }
    if let Some(actor) = &filter.actor_id {
        query = query.filter(ae::actor_id.eq(*actor));
    }
    if let Some(action) = &filter.action {
        query = query.filter(ae::action.eq(*action));
    }
    if let Some(from) = filter.from {
        query = query.filter(ae::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(ae::occurred_at.lt(to));
    }
    Ok(page_of!(query, ae::occurred_at, ae::id, page).load(conn)?)
}

//! The audit trail. There is an insert and a read here and nothing else: no code path updates
//! or deletes an event, and database triggers refuse it too.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events as ae;
use super::{DbConnection, Page, StoreError};
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

/// Appends `events` to the trail (a statement each: diesel's connection over both engines
/// has no multi-row insert).
pub fn record(conn: &mut DbConnection, events: &[AuditEventRow]) -> Result<(), StoreError> {
    for event in events {
        diesel::insert_into(ae::table).values(event).execute(conn)?;
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

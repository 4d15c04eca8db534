//! The audit trail. There is an insert and a read here and nothing else: no code path updates
//! or deletes an event, and database triggers refuse it too.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Nullable, Text, Timestamp};

use super::outbox;
use super::schema::audit_events as ae;
use super::{DbConnection, MultiBackend, Page, StoreError};
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::events::EventBody;
use crate::domain::ids::{AuditEventId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
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

/// Appends `events` to the trail, up to [`MOST_IN_ONE_STATEMENT`] in one multi-row `INSERT`
/// ([`Appended`], which diesel's connection over both engines cannot build): one round trip,
/// and atomic without a transaction around it.
pub fn record(conn: &mut DbConnection, events: &[AuditEventRow]) -> Result<(), StoreError> {
    for chunk in events.chunks(MOST_IN_ONE_STATEMENT) {
        Appended(chunk).execute(conn)?;
    }
    Ok(())
}

/// Appends `event` to the trail and writes `told` to the outbox: one statement on PostgreSQL
/// (the two writes of a create that nothing reads back), two on SQLite.
pub fn record_telling(
    conn: &mut DbConnection,
    event: &AuditEventRow,
    told: &EventBody,
) -> Result<(), StoreError> {
    outbox::tell_after(conn, Appended(std::slice::from_ref(event)), told)
}

/// The columns [`Appended`] binds, in its order (a unit test holds them to `AuditEventRow`'s).
const APPENDED_COLUMNS: [&str; 11] = [
    "id",
    "occurred_at",
    "actor_id",
    "actor_role",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "request_id",
    "client_address",
    "detail",
];

/// Events as one multi-row `INSERT`, written by diesel's AST pass so that each engine numbers
/// its own parameters.
struct Appended<'a>(&'a [AuditEventRow]);

impl QueryFragment<MultiBackend> for Appended<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        // A batch's text grows with it: not one to keep prepared. One event's — every write's
        // own — is always the same, and kept prepared (diesel keys it by its text).
        if self.0.len() != 1 {
            out.unsafe_to_cache_prepared();
        }
        out.push_sql(&format!(
            "INSERT INTO audit_events ({}) VALUES ",
            APPENDED_COLUMNS.join(", ")
        ));
        for (i, event) in self.0.iter().enumerate() {
            out.push_sql(if i == 0 { "(" } else { ", (" });
            out.push_bind_param::<Text, _>(&event.id)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamp, _>(&event.occurred_at)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.actor_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.actor_role)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&event.action)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&event.resource_type)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.resource_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.patient_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(&event.request_id)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.client_address)?;
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(&event.detail)?;
            out.push_sql(")");
        }
        Ok(())
    }
}

impl QueryId for Appended<'_> {
    type QueryId = ();
    // Cached by its text when it is one event; `true` would give every batch size one key.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Conn> RunQueryDsl<Conn> for Appended<'_> {}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::selected;

    #[test]
    fn a_batch_binds_every_column_of_an_event() {
        assert_eq!(
            APPENDED_COLUMNS.to_vec(),
            selected(ae::table.select(AuditEventRow::as_select()))
        );
    }
}

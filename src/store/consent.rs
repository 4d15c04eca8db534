//! The history of a patient's research consent: every grant and withdrawal.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::consent_events;
use super::{DbConnection, StoreError};
use crate::domain::ids::{ConsentEventId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consent_events)]
pub struct ConsentEventRow {
    pub id: ConsentEventId,
    pub patient_id: PatientId,
    pub granted: bool,
    pub occurred_at: NaiveDateTime,
    pub actor_id: Option<UserId>,
}

pub fn record(conn: &mut DbConnection, row: &ConsentEventRow) -> Result<(), StoreError> {
    diesel::insert_into(consent_events::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn of_patient(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Vec<ConsentEventRow>, StoreError> {
    Ok(consent_events::table
        .filter(consent_events::patient_id.eq(patient_id))
        .order((consent_events::occurred_at.asc(), consent_events::id.asc()))
        .select(ConsentEventRow::as_select())
        .load(conn)?)
}

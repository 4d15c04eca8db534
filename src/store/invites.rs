//! Single-use invites that link a patient's app account to their record.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::invites;
use super::{DbConnection, StoreError};
use crate::domain::ids::{InviteId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invites)]
pub struct InviteRow {
    pub id: InviteId,
    pub patient_id: PatientId,
    pub code_hash: String,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &InviteRow) -> Result<(), StoreError> {
    diesel::insert_into(invites::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The invite with this code hash, if it is unused and unexpired. Looked up by the SHA-256
/// of the code: whoever guesses codes cannot steer the digest's bytes, so the index
/// comparison's timing tells them nothing about the digests stored.
pub fn find_live(
    conn: &mut DbConnection,
    code_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<InviteRow>, StoreError> {
    Ok(invites::table
        .filter(invites::code_hash.eq(code_hash))
        .filter(invites::used_at.is_null())
        .filter(invites::expires_at.gt(now))
        .select(InviteRow::as_select())
        .first(conn)
        .optional()?)
}

/// Uses the live invite with this code hash, once: the conditional update lets only one of
/// two concurrent registrations through. Returns the patient it was made for.
pub fn redeem(
    conn: &mut DbConnection,
    code_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<PatientId>, StoreError> {
    let invite: Option<InviteRow> = invites::table
        .filter(invites::code_hash.eq(code_hash))
        .select(InviteRow::as_select())
        .first(conn)
        .optional()?;
    let Some(invite) = invite.filter(|i| i.used_at.is_none() && i.expires_at > now) else {
        return Ok(None);
    };
    let used = diesel::update(
        invites::table
            .find(&invite.id)
            .filter(invites::used_at.is_null()),
    )
    .set(invites::used_at.eq(now))
    .execute(conn)?;
    Ok((used == 1).then_some(invite.patient_id))
}

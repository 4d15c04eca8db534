//! Refresh tokens: issue, rotate (single use), and revoke by family or by user.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::refresh_tokens as rt;
use super::{DbConnection, StoreError};
use crate::domain::ids::{RefreshTokenId, TokenFamilyId, UserId};

#[derive(Debug, Insertable)]
#[diesel(table_name = rt)]
pub struct NewRefreshTokenRow<'a> {
    pub id: RefreshTokenId,
    pub family_id: TokenFamilyId,
    pub user_id: UserId,
    pub token_hash: &'a str,
    pub issued_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, row: &NewRefreshTokenRow<'_>) -> Result<(), StoreError> {
    diesel::insert_into(rt::table).values(row).execute(conn)?;
    Ok(())
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = rt)]
struct TokenState {
    id: RefreshTokenId,
    user_id: UserId,
    family_id: TokenFamilyId,
    expires_at: NaiveDateTime,
    spent_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
}

/// What presenting a refresh token found.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented {
    /// Live: it is now spent, and its family continues with the caller's new token.
    Spent {
        user_id: UserId,
        family_id: TokenFamilyId,
    },
    /// Already spent: someone replayed it, so its whole family is now revoked.
    Reused {
        user_id: UserId,
        family_id: TokenFamilyId,
    },
    /// Unknown, expired or revoked.
    Invalid,
}

/// Spends the token with `hash`. The conditional update makes this single-use even when two
/// API processes receive the same token at the same instant: only one update matches.
pub fn spend(
    conn: &mut DbConnection,
    hash: &str,
    now: NaiveDateTime,
) -> Result<Presented, StoreError> {
    let found: Option<TokenState> = rt::table
        .filter(rt::token_hash.eq(hash))
        .select(TokenState::as_select())
        .first(conn)
        .optional()?;
    let Some(TokenState {
        id,
        user_id,
        family_id,
        expires_at,
        spent_at,
        revoked_at,
    }) = found
    else {
        return Ok(Presented::Invalid);
    };
    if revoked_at.is_some() || expires_at <= now {
        return Ok(Presented::Invalid);
    }
    let spent_now = spent_at.is_none()
        && diesel::update(rt::table.find(&id).filter(rt::spent_at.is_null()))
            .set(rt::spent_at.eq(now))
            .execute(conn)?
            == 1;
    if spent_now {
        return Ok(Presented::Spent { user_id, family_id });
    }
    revoke_family(conn, family_id, now)?;
    Ok(Presented::Reused { user_id, family_id })
}

pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: TokenFamilyId,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(now))
    .execute(conn)?)
}

/// The family and owner of a token, if it exists at all.
pub fn family_of(
    conn: &mut DbConnection,
    hash: &str,
) -> Result<Option<(TokenFamilyId, UserId)>, StoreError> {
    Ok(rt::table
        .filter(rt::token_hash.eq(hash))
        .select((rt::family_id, rt::user_id))
        .first(conn)
        .optional()?)
}

pub fn revoke_all_for_user(
    conn: &mut DbConnection,
    user_id: UserId,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        rt::table
            .filter(rt::user_id.eq(user_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(now))
    .execute(conn)?)
}

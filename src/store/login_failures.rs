//! Failed sign-ins per throttle key, counted in the database so every API process sees them.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, max, min};
use diesel::prelude::*;

use super::schema::login_failures as lf;
use super::{DbConnection, StoreError};

/// Failures of one key since a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentFailures {
    pub count: u32,
    pub first: Option<NaiveDateTime>,
    pub last: Option<NaiveDateTime>,
}

pub fn recent(
    conn: &mut DbConnection,
    key: &str,
    since: NaiveDateTime,
) -> Result<RecentFailures, StoreError> {
    let (count, first, last): (i64, Option<NaiveDateTime>, Option<NaiveDateTime>) = lf::table
        .filter(lf::throttle_key.eq(key))
        .filter(lf::failed_at.gt(since))
        .select((count_star(), min(lf::failed_at), max(lf::failed_at)))
        .first(conn)?;
    Ok(RecentFailures {
        count: u32::try_from(count).unwrap_or(u32::MAX),
        first,
        last,
    })
}

/// Records one failure and forgets this key's failures older than `forget_before`.
pub fn record(
    conn: &mut DbConnection,
    key: &str,
    now: NaiveDateTime,
    forget_before: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::delete(
        lf::table
            .filter(lf::throttle_key.eq(key))
            .filter(lf::failed_at.lt(forget_before)),
    )
    .execute(conn)?;
    diesel::insert_into(lf::table)
        .values((
            lf::id.eq(uuid::Uuid::new_v4().to_string()),
            lf::throttle_key.eq(key),
            lf::failed_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn clear(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    diesel::delete(lf::table.filter(lf::throttle_key.eq(key))).execute(conn)?;
    Ok(())
}

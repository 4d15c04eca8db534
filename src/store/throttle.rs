//! Sign-in reservations per throttle key (`domain::throttle`), kept in the database so every
//! API process sees them.
//!
//! Each key is one row, read under a row lock and rewritten, so two attempts on one key never
//! both count from the same number: on PostgreSQL `SELECT … FOR UPDATE`, on SQLite the write
//! lock that `BEGIN IMMEDIATE` already holds. Run these inside [`super::Db::transaction`].

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::schema::sign_in_throttle as st;
use super::{DbConnection, StoreError};
use crate::clock;
use crate::domain::throttle::{self, Attempts, Limit};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = st)]
struct ThrottleRow {
    throttle_key: String,
    attempts: i32,
    window_started_at: NaiveDateTime,
    last_attempt_at: NaiveDateTime,
}

impl ThrottleRow {
    /// The attempts the row counts; a negative count (which the column's CHECK forbids) is
    /// corrupt, never read as none.
    fn attempts(&self) -> Result<Attempts, StoreError> {
        let count = u32::try_from(self.attempts).map_err(|e| StoreError::Integrity(e.into()))?;
        Ok(Attempts {
            count,
            window_started_at: clock::from_db(self.window_started_at),
            last_at: clock::from_db(self.last_attempt_at),
        })
    }

    fn new(key: &str, attempts: Attempts) -> Self {
        Self {
            throttle_key: key.to_owned(),
            attempts: i32::try_from(attempts.count).unwrap_or(i32::MAX),
            window_started_at: clock::to_db(attempts.window_started_at),
            last_attempt_at: clock::to_db(attempts.last_at),
        }
    }
}

/// The key's row, locked until the transaction ends.
fn locked(conn: &mut DbConnection, key: &str) -> Result<Option<ThrottleRow>, StoreError> {
    let row = match conn {
        DbConnection::Postgres(pg) => st::table
            .find(key)
            .select(ThrottleRow::as_select())
            .for_update()
            .first(pg)
            .optional()?,
        DbConnection::Sqlite(lite) => st::table
            .find(key)
            .select(ThrottleRow::as_select())
            .first(lite)
            .optional()?,
    };
    Ok(row)
}

fn write(conn: &mut DbConnection, key: &str, attempts: Attempts) -> Result<(), StoreError> {
    diesel::update(st::table.find(key))
        .set(&ThrottleRow::new(key, attempts))
        .execute(conn)?;
    Ok(())
}

/// Reserves one attempt on each key, in the order given (every caller gives account before
/// address, so two transactions never wait on each other's locks in a circle). `Err` is how
/// long to wait; then nothing was reserved once the transaction rolls back.
pub fn reserve(
    conn: &mut DbConnection,
    keys: &[(&str, Limit)],
) -> Result<Result<(), Duration>, StoreError> {
    let now = clock::now();
    for &(key, limit) in keys {
        let current = lock_or_create(conn, key)?;
        let current = current.as_ref().map(ThrottleRow::attempts).transpose()?;
        let current = current.filter(|attempts| attempts.count > 0);
        match throttle::reserve(current, limit, now) {
            Ok(next) => write(conn, key, next)?,
            Err(wait) => return Ok(Err(wait)),
        }
    }
    Ok(Ok(()))
}

/// Gives back one attempt on `key`: it was not a failure.
pub fn release(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    if let Some(row) = locked(conn, key)? {
        write(conn, key, throttle::release(row.attempts()?))?;
    }
    Ok(())
}

/// Forgets every attempt on `key`: the account signed in.
pub fn clear(conn: &mut DbConnection, key: &str) -> Result<(), StoreError> {
    diesel::delete(st::table.find(key)).execute(conn)?;
    Ok(())
}

/// Locks the key's row, creating it first if needed so that there is a row to lock: two
/// first attempts must not both see "no row". The primary key lets one insert win; the other
/// waits for it and then locks the winner's row.
fn lock_or_create(conn: &mut DbConnection, key: &str) -> Result<Option<ThrottleRow>, StoreError> {
    if let Some(row) = locked(conn, key)? {
        return Ok(Some(row));
    }
    let placeholder = ThrottleRow {
        throttle_key: key.to_owned(),
        attempts: 0,
        window_started_at: clock::to_db(clock::now()),
        last_attempt_at: clock::to_db(clock::now()),
    };
    // In a savepoint: on PostgreSQL a failed statement would otherwise end the transaction.
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(st::table)
            .values(&placeholder)
            .execute(conn)
            .map_err(StoreError::from)
    });
    match inserted {
        Ok(_) | Err(StoreError::Taken { .. } | StoreError::Conflict) => locked(conn, key),
        Err(other) => Err(other),
    }
}

//! The idempotent-create rule (api.md, Conventions): a create repeated with the same client id
//! and the same body returns the stored record (200); with a different body, 409.

use diesel::Connection;

use crate::error::ApiError;
use crate::store::{DbConnection, StoreError};

pub enum Creation<T> {
    Created(T),
    Replayed(T),
}

/// Looks the id up first; creates only when it is free. Two identical creates racing each
/// other both end well: the loser's insert hits the primary key and it re-reads the winner's.
pub fn created_or_replayed<T>(
    conn: &mut DbConnection,
    find: impl Fn(&mut DbConnection) -> Result<Option<T>, StoreError>,
    same_body: impl Fn(&T) -> bool,
    insert: impl FnOnce(&mut DbConnection) -> Result<(), StoreError>,
) -> Result<Creation<T>, ApiError> {
    let replay = |existing: T| {
        if same_body(&existing) {
            Ok(Creation::Replayed(existing))
        } else {
            Err(ApiError::Conflict(
                "a record with this id exists with a different body".into(),
            ))
        }
    };
    if let Some(existing) = find(conn)? {
        return replay(existing);
    }
    let inserted = conn.transaction(|conn| insert(conn));
    match inserted {
        Ok(()) => find(conn)?.map(Creation::Created).ok_or(ApiError::NotFound),
        Err(StoreError::Conflict { constraint }) => match find(conn)? {
            Some(existing) => replay(existing),
            None => Err(ApiError::Conflict(format!(
                "the record conflicts with an existing one ({constraint})"
            ))),
        },
        Err(other) => Err(other.into()),
    }
}

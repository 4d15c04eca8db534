//! The clinical settings every stored outcome and flag was last evaluated with: one row.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::evaluation_settings as es;
use super::{DbConnection, StoreError};

/// The settings, as text, that the stored evaluation was made with; none before the first.
pub fn current(conn: &mut DbConnection) -> Result<Option<String>, StoreError> {
    Ok(es::table
        .find(1)
        .select(es::settings)
        .first(conn)
        .optional()?)
}

/// Records that every record has been evaluated with `settings`.
pub fn record(
    conn: &mut DbConnection,
    settings: &str,
    at: NaiveDateTime,
) -> Result<(), StoreError> {
    let updated = diesel::update(es::table.find(1))
        .set((es::settings.eq(settings), es::evaluated_at.eq(at)))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(es::table)
            .values((
                es::id.eq(1),
                es::settings.eq(settings),
                es::evaluated_at.eq(at),
            ))
            .execute(conn)?;
    }
    Ok(())
}

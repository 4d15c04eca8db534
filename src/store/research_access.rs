//! Who may see what of research, and what it has cost (domain.md §8a): controlled-tier
//! grants, each researcher's privacy-loss spending per budget period, released aggregate
//! answers, and the data version they were computed on. Kept in the primary database, never
//! the research replica: every process must see the same grants and the same spending.

use chrono::NaiveDateTime;
use diesel::dsl::max;
use diesel::prelude::*;

use super::schema::{
    assessments, courses, patients, research_budgets as rb, research_grants as rg,
    research_releases as rr, sessions, side_effects, users,
};
use super::{DbConnection, Page, StoreError};
use crate::domain::account::Role;
use crate::domain::ids::{GrantId, UserId};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rg)]
pub struct GrantRow {
    pub id: GrantId,
    pub researcher_id: UserId,
    pub purpose: String,
    pub reference: String,
    pub granted_by: UserId,
    pub granted_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<UserId>,
    pub body_hash: String,
}

/// Inserts the grant unless its id is taken: whether it did.
pub fn insert_grant(conn: &mut DbConnection, row: &GrantRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(rg::table).values(row))
}

pub fn find_grant(conn: &mut DbConnection, id: GrantId) -> Result<GrantRow, StoreError> {
    Ok(rg::table
        .find(id)
        .select(GrantRow::as_select())
        .first(conn)?)
}

/// The researcher's grant in force at `now`: unrevoked and unexpired (the latest to expire).
pub fn grant_in_force(
    conn: &mut DbConnection,
    researcher_id: UserId,
    now: NaiveDateTime,
) -> Result<Option<GrantRow>, StoreError> {
    Ok(rg::table
        .filter(rg::researcher_id.eq(researcher_id))
        .filter(rg::revoked_at.is_null())
        .filter(rg::expires_at.gt(now))
        .order(rg::expires_at.desc())
        .select(GrantRow::as_select())
        .first(conn)
        .optional()?)
}

/// Grants in order of granting, optionally of one researcher.
pub fn list_grants(
    conn: &mut DbConnection,
    researcher_id: Option<UserId>,
    page: &Page,
) -> Result<Vec<GrantRow>, StoreError> {
    let mut query = rg::table.select(GrantRow::as_select()).into_boxed();
    if let Some(researcher) = researcher_id {
        query = query.filter(rg::researcher_id.eq(researcher));
    }
    Ok(page_of!(query, rg::granted_at, rg::id, page).load(conn)?)
}

/// Revokes a grant once; false when it was revoked already.
pub fn revoke_grant(
    conn: &mut DbConnection,
    id: GrantId,
    by: UserId,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let revoked = diesel::update(rg::table.find(id).filter(rg::revoked_at.is_null()))
        .set((rg::revoked_at.eq(now), rg::revoked_by.eq(by)))
        .execute(conn)?;
    Ok(revoked == 1)
}

/// Millionths of ε: spending is counted in whole units so that comparing it with the budget
/// is exact in SQL on both engines.
pub fn micro(epsilon: f64) -> i64 {
    // Up, so that spending is never under-counted; less a hair of floating-point noise, so
    // that ε 6 summed from its shares (5.999999999999999 or 6.000000000000001) is 6.
    (epsilon * 1e6 - 1e-6).ceil() as i64
}

/// The researcher's spending in the period starting at `period_start`: (millionths of ε,
/// queries answered).
pub fn spending(
    conn: &mut DbConnection,
    researcher_id: UserId,
    period_start: NaiveDateTime,
) -> Result<(i64, i32), StoreError> {
    Ok(rb::table
        .find((researcher_id, period_start))
        .select((rb::spent_micro_epsilon, rb::queries))
        .first(conn)
        .optional()?
        .unwrap_or((0, 0)))
}

/// Spends `cost` millionths of ε if the researcher's spending stays within `budget`: one
/// conditional update, so that two processes spending at once can never overspend together.
/// False when it would overspend (and then nothing is spent).
pub fn spend(
    conn: &mut DbConnection,
    researcher_id: UserId,
    period_start: NaiveDateTime,
    cost: i64,
    budget: i64,
) -> Result<bool, StoreError> {
    // The period's row, so that there is one to update; a racing insert is a no-op.
    let created = conn.transaction(|conn| {
        diesel::insert_into(rb::table)
            .values((
                rb::researcher_id.eq(researcher_id),
                rb::period_start.eq(period_start),
                rb::spent_micro_epsilon.eq(0i64),
                rb::queries.eq(0),
            ))
            .execute(conn)
            .map_err(StoreError::from)
    });
    match created {
        Ok(_) | Err(StoreError::Taken { .. } | StoreError::Conflict) => {}
        Err(other) => return Err(other),
    }
    let spent = diesel::update(
        rb::table
            .find((researcher_id, period_start))
            .filter(rb::spent_micro_epsilon.le(budget - cost)),
    )
    .set((
        rb::spent_micro_epsilon.eq(rb::spent_micro_epsilon + cost),
        rb::queries.eq(rb::queries + 1),
    ))
    .execute(conn)?;
    Ok(spent == 1)
}

/// Every researcher's spending in a period: (researcher id, email, millionths of ε, queries).
pub fn all_spending(
    conn: &mut DbConnection,
    period_start: NaiveDateTime,
) -> Result<Vec<(UserId, String, i64, i32)>, StoreError> {
    Ok(users::table
        .left_join(
            rb::table.on(rb::researcher_id
                .eq(users::id)
                .and(rb::period_start.eq(period_start))),
        )
        .filter(users::role.eq(Role::Researcher))
        .order(users::email)
        .select((
            users::id,
            users::email,
            rb::spent_micro_epsilon.nullable(),
            rb::queries.nullable(),
        ))
        .load::<(UserId, String, Option<i64>, Option<i32>)>(conn)?
        .into_iter()
        .map(|(id, email, spent, queries)| (id, email, spent.unwrap_or(0), queries.unwrap_or(0)))
        .collect())
}

/// The stored release of a query over a data version, if it was answered before.
pub fn release(
    conn: &mut DbConnection,
    query_key: &str,
    data_version: &str,
) -> Result<Option<(String, f64)>, StoreError> {
    Ok(rr::table
        .find((query_key, data_version))
        .select((rr::body, rr::epsilon))
        .first(conn)
        .optional()?)
}

/// Keeps a release; when another process stored one for the same query and version first,
/// that one stands and is returned.
pub fn keep_release(
    conn: &mut DbConnection,
    query_key: &str,
    data_version: &str,
    body: &str,
    epsilon: f64,
    now: NaiveDateTime,
) -> Result<String, StoreError> {
    let kept = conn.transaction(|conn| {
        diesel::insert_into(rr::table)
            .values((
                rr::query_key.eq(query_key),
                rr::data_version.eq(data_version),
                rr::body.eq(body),
                rr::epsilon.eq(epsilon),
                rr::released_at.eq(now),
            ))
            .execute(conn)
            .map_err(StoreError::from)
    });
    match kept {
        Ok(_) => Ok(body.to_owned()),
        Err(StoreError::Taken { .. } | StoreError::Conflict) => {
            Ok(release(conn, query_key, data_version)?
                .map_or_else(|| body.to_owned(), |(stored, _)| stored))
        }
        Err(other) => Err(other),
    }
}

/// The latest change to anything research reads (patients and their consent, courses,
/// sessions, scores, side effects; outcomes change with them), as text: a research answer is
/// for the data as of this version.
pub fn data_version(conn: &mut DbConnection) -> Result<String, StoreError> {
    let latest: [Option<NaiveDateTime>; 5] = [
        patients::table
            .select(max(patients::updated_at))
            .first(conn)?,
        courses::table
            .select(max(courses::updated_at))
            .first(conn)?,
        sessions::table
            .select(max(sessions::updated_at))
            .first(conn)?,
        assessments::table
            .select(max(assessments::updated_at))
            .first(conn)?,
        side_effects::table
            .select(max(side_effects::updated_at))
            .first(conn)?,
    ];
    Ok(latest
        .iter()
        .map(|t| {
            t.map_or_else(
                || "-".to_owned(),
                |t| t.and_utc().timestamp_micros().to_string(),
            )
        })
        .collect::<Vec<_>>()
        .join("/"))
}

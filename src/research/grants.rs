//! The controlled tier of research access, granted by administrators (domain.md §8a): a
//! recorded data-use agreement (purpose, reference, expiry) per researcher, revocable; and
//! every researcher's privacy-budget spending, for administrators to read.

use chrono::{DateTime, Utc};

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::ids::{GrantId, UserId};
use crate::domain::text::{self, Shape};
use crate::domain::{privacy, time, RuleBroken};
use crate::error::ApiError;
use crate::records::{created_or_replayed, optional, Created};
use crate::store::research_access::{self as store, GrantRow};
use crate::store::{users, Page};

/// A grant as an administrator asks for it.
pub struct GrantDraft {
    pub researcher: UserId,
    pub purpose: String,
    pub reference: String,
    pub expires_at: DateTime<Utc>,
}

/// Grants a researcher the controlled tier; idempotent by client id.
pub async fn grant(
    call: &Call,
    id: GrantId,
    draft: GrantDraft,
    body_hash: String,
) -> Result<Created<GrantRow>, ApiError> {
    call.require(&[Role::Admin])?;
    let now = clock::now();
    let purpose = text::required("purpose", &draft.purpose, Shape::Note, 2000);
    let reference = text::required("reference", &draft.reference, Shape::Line, 200);
    let expiry = time::query_bound("expires_at", draft.expires_at).and_then(|()| {
        let horizon = now + time::PLANNING_HORIZON;
        if draft.expires_at <= now || draft.expires_at > horizon {
            Err(RuleBroken::new(
                "expires_at",
                "must be in the future, at most five years ahead",
            ))
        } else {
            Ok(())
        }
    });
    let (purpose, reference) = match (purpose, reference, expiry) {
        (Ok(p), Ok(r), Ok(())) => (p, r),
        (p, r, e) => {
            let broken: Vec<RuleBroken> =
                [p.err(), r.err(), e.err()].into_iter().flatten().collect();
            return Err(broken.into());
        }
    };
    let row = GrantRow {
        id,
        researcher_id: draft.researcher,
        purpose,
        reference,
        granted_by: call.caller.user_id,
        granted_at: clock::to_db(now),
        expires_at: clock::to_db(draft.expires_at),
        revoked_at: None,
        revoked_by: None,
        body_hash,
    };
    call.transaction(move |conn, call| {
        let researcher = optional(users::find(conn, row.researcher_id))?;
        if researcher.is_none_or(|u| u.role != Role::Researcher) {
            return Err(ApiError::invalid(
                "researcher_id",
                "is not a researcher's account",
            ));
        }
        created_or_replayed(
            conn,
            |conn| optional(store::find_grant(conn, id)),
            |found| found.body_hash == row.body_hash,
            |conn| {
                if !store::insert_grant(conn, &row)? {
                    return Ok(None);
                }
                call.audit(conn, Event::new(Action::ResearchGrantCreated).on(id))?;
                Ok(Some(row.clone()))
            },
        )
    })
    .await
}

/// One page of grants, active, expired or revoked, in order of granting.
pub async fn list(
    call: &Call,
    researcher: Option<UserId>,
    page: Page,
) -> Result<Vec<GrantRow>, ApiError> {
    call.require(&[Role::Admin])?;
    call.run(move |conn| store::list_grants(conn, researcher, &page))
        .await
}

/// Revokes a grant: the researcher falls back to the aggregate tier at once, on every
/// process. Revoking a revoked grant changes nothing.
pub async fn revoke(call: &Call, id: GrantId) -> Result<GrantRow, ApiError> {
    call.require(&[Role::Admin])?;
    call.transaction(move |conn, call| {
        store::find_grant(conn, id)?;
        let now = clock::to_db(clock::now());
        if store::revoke_grant(conn, id, call.caller.user_id, now)? {
            call.audit(conn, Event::new(Action::ResearchGrantRevoked).on(id))?;
        }
        Ok(store::find_grant(conn, id)?)
    })
    .await
}

/// A researcher's spending in the current period.
pub struct Spending {
    pub researcher: UserId,
    pub email: String,
    pub epsilon_spent: f64,
    pub queries: i32,
    pub period_start: DateTime<Utc>,
    pub renews_at: DateTime<Utc>,
}

/// Every researcher's privacy-budget spending in the current period (administrators).
pub async fn spending(call: &Call) -> Result<Vec<Spending>, ApiError> {
    call.require(&[Role::Admin])?;
    let (start, end) = privacy::budget_period(clock::now(), call.services.research.budget_days);
    let rows = call
        .run(move |conn| store::all_spending(conn, clock::to_db(start)))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(researcher, email, micro, queries)| Spending {
            researcher,
            email,
            epsilon_spent: micro as f64 / 1e6,
            queries,
            period_start: start,
            renews_at: end,
        })
        .collect())
}

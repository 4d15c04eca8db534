//! Research access as a use case (domain.md §8a): which tier a researcher has now, what an
//! answer costs them, and the answer itself.
//!
//! A `controlled`-tier researcher (an administrator's grant in force) gets exact answers, small
//! cells withheld; an `aggregate`-tier one gets differentially private answers. For the latter
//! an answer is first looked up among the releases already made for the same canonical query
//! over the same data version, and given again at no cost; otherwise the query's ε must fit the
//! researcher's remaining budget, the answer is computed on the research pool, the ε is spent
//! by one conditional update in the primary database (two processes cannot overspend
//! together), and the release is kept. Grants, spending and releases live in the primary
//! database; the data the answers are computed on, in the research pool.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::call::{Call, Event};
use crate::clock;
use crate::config::ResearchSettings;
use crate::domain::audit::Action;
use crate::domain::ids::UserId;
use crate::domain::privacy::{self, Tier};
use crate::error::ApiError;
use crate::research::private::Spent;
use crate::store::research_access as store;
use crate::store::{DbConnection, StoreError};

/// What an answer says about itself: its tier and its privacy cost.
#[derive(Clone, Debug, Serialize, serde::Deserialize, ToSchema)]
#[schema(example = json!({"tier": "aggregate", "epsilon_spent": 4.0, "epsilon_remaining": 36.0, "epsilon_budget": 40.0,
    "budget_renews_at": "2026-12-20T00:00:00Z", "delta": 0.000001, "release_threshold": 28, "repeated": false}))]
pub struct PrivacyStatement {
    pub tier: Tier,
    /// ε this request spent: 0 in the controlled tier and for a repeated query.
    pub epsilon_spent: f64,
    /// What is left of the aggregate-tier budget in this period.
    pub epsilon_remaining: f64,
    pub epsilon_budget: f64,
    pub budget_renews_at: DateTime<Utc>,
    /// δ of the group-key selection (aggregate tier).
    #[schema(required = true)]
    pub delta: Option<f64>,
    /// Groups whose noisy patient count fell below this were withheld (aggregate tier).
    #[schema(required = true)]
    pub release_threshold: Option<i64>,
    /// True when the same query over the same data was answered before: this is that release.
    pub repeated: bool,
}

/// The caller's tier now: read from the database on every request, so an expired or revoked
/// grant falls back to `aggregate` at once, on every process.
pub fn tier_of(conn: &mut DbConnection, researcher_id: UserId) -> Result<Tier, StoreError> {
    let now = clock::to_db(clock::now());
    Ok(match store::grant_in_force(conn, researcher_id, now)? {
        Some(_) => Tier::Controlled,
        None => Tier::Aggregate,
    })
}

/// The researcher's budget in the current period: (spent ε, queries, renews at).
pub fn spending(
    conn: &mut DbConnection,
    researcher_id: UserId,
    settings: &ResearchSettings,
) -> Result<(f64, i32, DateTime<Utc>, DateTime<Utc>), StoreError> {
    let (start, end) = privacy::budget_period(clock::now(), settings.budget_days);
    let (micro, queries) = store::spending(conn, researcher_id, clock::to_db(start))?;
    Ok((micro as f64 / 1e6, queries, start, end))
}

/// The key of a canonical query: the endpoint and its normalised parameters.
pub fn query_key(endpoint: &str, parameters: &impl Serialize) -> String {
    let canonical = serde_json::to_vec(&(endpoint, parameters)).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// How an answer is computed in each tier, on a connection of the research pool.
pub trait Answerable: Send + 'static {
    type Body: Serialize + DeserializeOwned + Send + 'static;
    fn exact(self, conn: &mut DbConnection) -> Result<Self::Body, ApiError>;
    fn private(self, conn: &mut DbConnection) -> Result<(Self::Body, Spent), ApiError>;
}

/// One research query, answered in the caller's tier and audited (`action`) with what it
/// asked (`detail`) and what it cost. `key` is the canonical query's ([`query_key`]).
pub async fn answer<Q: Answerable>(
    call: &Call,
    action: Action,
    (key, detail): (String, serde_json::Value),
    query: Q,
) -> Result<(Q::Body, PrivacyStatement), ApiError> {
    let research = &call.services.research_db.db;
    let settings = &call.services.research;
    let researcher = call.caller.user_id;
    let tier = call.run(move |conn| tier_of(conn, researcher)).await?;
    let (body, spent, repeated) = match tier {
        Tier::Controlled => (
            research.run(move |conn| query.exact(conn)).await?,
            None,
            false,
        ),
        Tier::Aggregate => aggregate(call, &key, query).await?,
    };
    let epsilon = spent.map_or(0.0, |s| s.epsilon);
    let event = Event::new(action).detail(
        serde_json::json!({"tier": tier, "query": detail, "epsilon_spent": epsilon, "repeated": repeated})
            .to_string(),
    );
    let settings_now = *settings;
    let used = call
        .transaction(move |conn, call| {
            call.audit(conn, event)?;
            Ok(spending(conn, researcher, &settings_now)?)
        })
        .await?;
    let (used, _, _, renews) = used;
    let statement = PrivacyStatement {
        tier,
        epsilon_spent: round6(epsilon),
        epsilon_remaining: round6((settings.epsilon_budget - used).max(0.0)),
        epsilon_budget: settings.epsilon_budget,
        budget_renews_at: renews,
        delta: spent.map(|s| s.delta),
        release_threshold: spent.map(|s| s.release_threshold),
        repeated,
    };
    Ok((body, statement))
}

/// The aggregate tier: a repeated release, or a new one paid for.
async fn aggregate<Q: Answerable>(
    call: &Call,
    key: &str,
    query: Q,
) -> Result<(Q::Body, Option<Spent>, bool), ApiError> {
    let (primary, research) = (&call.services.db, &call.services.research_db.db);
    let settings = &call.services.research;
    let researcher = call.caller.user_id;
    let version = research.run(store::data_version).await?;
    let version = hex::encode(Sha256::digest(version.as_bytes()));
    let (lookup_key, lookup_version) = (key.to_owned(), version.clone());
    let released = primary
        .run(move |conn| store::release(conn, &lookup_key, &lookup_version))
        .await?;
    if let Some((body, epsilon)) = released {
        let body = serde_json::from_str(&body).map_err(|e| ApiError::Internal(Box::new(e)))?;
        let spent = Spent {
            epsilon,
            delta: settings.delta,
            release_threshold: 0,
        };
        return Ok((
            body,
            Some(Spent {
                epsilon: 0.0,
                ..spent
            }),
            true,
        ));
    }
    let s = *settings;
    let (used, _, _, renews) = primary
        .run(move |conn| spending(conn, researcher, &s))
        .await?;
    if used + settings.epsilon_per_query > settings.epsilon_budget + 1e-9 {
        return Err(exhausted(settings, used, renews));
    }
    let (body, spent) = research.run(move |conn| query.private(conn)).await?;
    let text = serde_json::to_string(&body).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let key = key.to_owned();
    let kept = primary
        .transaction(move |conn| {
            let (start, _) = privacy::budget_period(clock::now(), s.budget_days);
            let budget = store::micro(s.epsilon_budget);
            let cost = store::micro(spent.epsilon);
            if !store::spend(conn, researcher, clock::to_db(start), cost, budget)? {
                return Ok(None);
            }
            let now = clock::to_db(clock::now());
            Ok::<_, StoreError>(Some(store::keep_release(
                conn,
                &key,
                &version,
                &text,
                spent.epsilon,
                now,
            )?))
        })
        .await?;
    let Some(kept) = kept else {
        // Another request spent the rest first: nothing is released.
        let (used, _, _, renews) = primary
            .run(move |conn| spending(conn, researcher, &s))
            .await?;
        return Err(exhausted(settings, used, renews));
    };
    let body = serde_json::from_str(&kept).map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((body, Some(spent), false))
}

fn exhausted(settings: &ResearchSettings, used: f64, renews_at: DateTime<Utc>) -> ApiError {
    ApiError::BudgetExhausted {
        remaining: round6((settings.epsilon_budget - used).max(0.0)),
        needed: settings.epsilon_per_query,
        renews_at,
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

//! Webhook endpoints, and their deliveries made from the outbox: one per event and endpoint,
//! claimed for a lease while it is posted, each attempt logged.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::columns::Json;
use super::outbox::{self, OutboxRow};
use super::schema::webhook_endpoints as we;
use super::schema::{outbox as ob, webhook_attempts as wa, webhook_deliveries as wd};
use super::{DbConnection, Page, Position, StoreError};
use crate::domain::events::{EventBody, EventType};
use crate::domain::ids::{ClinicId, DeliveryId, EventId, PatientId, UserId, WebhookId};
use crate::domain::webhooks::{DeliveryStatus, Secret, Subscription};

/// An endpoint as stored. Its secrets are read through [`EndpointRow::secrets`]; it has no
/// `Debug`, so no log can print them.
#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = we, treat_none_as_null = true)]
pub struct EndpointRow {
    pub id: WebhookId,
    pub clinic_id: ClinicId,
    pub url: String,
    pub description: String,
    pub subscription: Json<Subscription>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<NaiveDateTime>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub read_seq: i64,
    pub read_id: Option<String>,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
}

impl EndpointRow {
    /// The secrets that sign a delivery at `now`: the current one, and the one it replaced
    /// until its grace period ends.
    pub fn secrets(&self, now: NaiveDateTime) -> Result<Vec<Secret>, StoreError> {
        let read = |text: &str| Secret::parse(text).map_err(|e| StoreError::Integrity(Box::new(e)));
        let mut secrets = vec![read(&self.secret)?];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until) {
            if until > now {
                secrets.push(read(previous)?);
            }
        }
        Ok(secrets)
    }
}

/// Inserts the endpoint unless its id is taken: whether it did.
pub fn insert(conn: &mut DbConnection, row: &EndpointRow) -> Result<bool, StoreError> {
    super::inserted_unless_taken(conn, diesel::insert_into(we::table).values(row))
}

/// The clinic's endpoint `id`; not found when it is another clinic's.
pub fn find(
    conn: &mut DbConnection,
    clinic: ClinicId,
    id: WebhookId,
) -> Result<EndpointRow, StoreError> {
    Ok(we::table
        .find(id)
        .filter(we::clinic_id.eq(clinic))
        .select(EndpointRow::as_select())
        .first(conn)?)
}

/// One page of the clinic's endpoints, oldest first.
pub fn list(
    conn: &mut DbConnection,
    clinic: ClinicId,
    page: &Page,
) -> Result<Vec<EndpointRow>, StoreError> {
    let query = we::table
        .filter(we::clinic_id.eq(clinic))
        .select(EndpointRow::as_select())
        .into_boxed();
    Ok(page_of!(query, we::created_at, we::id, page).load(conn)?)
}

/// Replaces what an administrator sets of the endpoint when it is still at `expected`, as the
/// next version — never its outbox position, which delivery moves without a version.
pub fn replace(
    conn: &mut DbConnection,
    row: &EndpointRow,
    expected: i32,
) -> Result<(), StoreError> {
    let updated = diesel::update(we::table.find(row.id).filter(we::version.eq(expected)))
        .set((
            we::url.eq(&row.url),
            we::description.eq(&row.description),
            we::subscription.eq(&row.subscription),
            we::secret.eq(&row.secret),
            we::previous_secret.eq(&row.previous_secret),
            we::previous_secret_until.eq(row.previous_secret_until),
            we::enabled.eq(row.enabled),
            we::disabled_reason.eq(&row.disabled_reason),
            we::updated_at.eq(row.updated_at),
            we::version.eq(expected + 1),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::Stale);
    }
    Ok(())
}

/// Makes every delivery of the endpoint that has not arrived — waiting, or failed when the
/// schedule ran out — due at `now` with a new round of the schedule: an endpoint enabled
/// again after an outage receives its backlog at once, in commit order per patient (a failed
/// delivery is pending again, so its patient's later events wait for it as before). A
/// delivery still being posted is left to its post.
pub fn resume(
    conn: &mut DbConnection,
    endpoint: WebhookId,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    let none: Option<NaiveDateTime> = None;
    Ok(diesel::update(
        wd::table
            .filter(wd::endpoint_id.eq(endpoint))
            .filter(wd::status.ne(DeliveryStatus::Delivered))
            .filter(wd::leased_until.is_null().or(wd::leased_until.lt(now))),
    )
    .set((
        wd::status.eq(DeliveryStatus::Pending),
        wd::step.eq(0),
        wd::next_attempt_at.eq(now),
        wd::leased_until.eq(none),
    ))
    .execute(conn)?)
}

/// Deletes the endpoint, its deliveries and their log.
pub fn delete(conn: &mut DbConnection, id: WebhookId) -> Result<(), StoreError> {
    let deliveries = wd::table.filter(wd::endpoint_id.eq(id)).select(wd::id);
    diesel::delete(wa::table.filter(wa::delivery_id.eq_any(deliveries))).execute(conn)?;
    diesel::delete(wd::table.filter(wd::endpoint_id.eq(id))).execute(conn)?;
    diesel::delete(we::table.find(id)).execute(conn)?;
    Ok(())
}

/// The enabled endpoints whose clinic has told the outbox something past their position
/// (below no horizon: a cheap look, before a transaction takes the write lock).
pub fn behind(conn: &mut DbConnection) -> Result<Vec<WebhookId>, StoreError> {
    // Past the whole position: one transaction's events share a change position, and a
    // batch may end among them.
    let later = ob::table.filter(ob::clinic_id.eq(we::clinic_id)).filter(
        ob::change_seq.gt(we::read_seq).or(ob::change_seq
            .eq(we::read_seq)
            .and(ob::id.nullable().gt(we::read_id))),
    );
    Ok(we::table
        .filter(we::enabled.eq(true))
        .filter(exists(later))
        .select(we::id)
        .load(conn)?)
}

/// Makes the deliveries of the events the endpoint has not read yet (up to `limit`, below
/// the horizon, in order), and moves its position past them; how many it made. The endpoint's
/// row is locked first, so two processes never read the same events for it at once.
pub fn fan_out(
    conn: &mut DbConnection,
    endpoint: WebhookId,
    limit: i64,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    let row = locked(conn, endpoint)?;
    if !row.enabled {
        return Ok(0);
    }
    let after = Position {
        change_seq: row.read_seq,
        id: row.read_id.clone(),
    };
    let (events, _) = outbox::of_clinic_after(conn, row.clinic_id, &after, limit)?;
    let Some(last) = events.last() else {
        return Ok(0);
    };
    let (read_seq, read_id) = (last.change_seq, last.id.to_string());
    let deliveries = events
        .iter()
        .filter_map(|event| wanted(&row.subscription.0, event).transpose())
        .map(|event| event.map(|e| NewDelivery::of(endpoint, e, now)))
        .collect::<Result<Vec<_>, _>>()?;
    if !deliveries.is_empty() {
        // The endpoint's lock keeps two processes from reading the same events; a delivery
        // already made (by a fan-out whose position update was lost) is left as it is.
        match conn {
            DbConnection::Postgres(pg) => diesel::insert_into(wd::table)
                .values(&deliveries)
                .on_conflict_do_nothing()
                .execute(pg)?,
            // SQLite inserts several rows with a conflict clause one at a time.
            DbConnection::Sqlite(lite) => deliveries.iter().try_fold(0, |n, delivery| {
                diesel::insert_into(wd::table)
                    .values(delivery)
                    .on_conflict_do_nothing()
                    .execute(lite)
                    .map(|one| n + one)
            })?,
        };
    }
    diesel::update(we::table.find(endpoint))
        .set((we::read_seq.eq(read_seq), we::read_id.eq(Some(read_id))))
        .execute(conn)?;
    Ok(deliveries.len())
}

/// The event, when the subscription wants it.
fn wanted<'e>(
    subscription: &Subscription,
    event: &'e OutboxRow,
) -> Result<Option<&'e OutboxRow>, StoreError> {
    let body: EventBody =
        serde_json::from_str(&event.payload).map_err(|e| StoreError::Integrity(Box::new(e)))?;
    Ok(subscription.wants(&body).then_some(event))
}

fn locked(conn: &mut DbConnection, id: WebhookId) -> Result<EndpointRow, StoreError> {
    Ok(match conn {
        DbConnection::Postgres(pg) => we::table
            .find(id)
            .select(EndpointRow::as_select())
            .for_update()
            .first(pg)?,
        DbConnection::Sqlite(lite) => we::table
            .find(id)
            .select(EndpointRow::as_select())
            .first(lite)?,
    })
}

#[derive(Insertable)]
#[diesel(table_name = wd)]
struct NewDelivery {
    id: DeliveryId,
    endpoint_id: WebhookId,
    event_id: EventId,
    patient_id: PatientId,
    change_seq: i64,
    status: DeliveryStatus,
    step: i32,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

impl NewDelivery {
    fn of(endpoint: WebhookId, event: &OutboxRow, now: NaiveDateTime) -> Self {
        Self {
            id: DeliveryId::random(),
            endpoint_id: endpoint,
            event_id: event.id,
            patient_id: event.patient_id,
            change_seq: event.change_seq,
            status: DeliveryStatus::Pending,
            step: 0,
            attempts: 0,
            next_attempt_at: now,
            created_at: now,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = wd)]
pub struct DeliveryRow {
    pub id: DeliveryId,
    pub endpoint_id: WebhookId,
    pub event_id: EventId,
    pub status: DeliveryStatus,
    pub step: i32,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

diesel::alias!(wd as earlier: EarlierDelivery);

/// Up to `limit` deliveries due at `now` to enabled endpoints, each its patient's earliest
/// pending one for its endpoint (a patient's events arrive in commit order), and not leased.
macro_rules! due {
    ($now:expr, $limit:expr) => {{
        let before_it = earlier
            .filter(earlier.field(wd::endpoint_id).eq(wd::endpoint_id))
            .filter(earlier.field(wd::patient_id).eq(wd::patient_id))
            .filter(earlier.field(wd::status).eq(DeliveryStatus::Pending))
            .filter(
                earlier.field(wd::change_seq).lt(wd::change_seq).or(earlier
                    .field(wd::change_seq)
                    .eq(wd::change_seq)
                    .and(earlier.field(wd::event_id).lt(wd::event_id))),
            );
        let enabled = we::table.filter(we::enabled.eq(true)).select(we::id);
        wd::table
            .filter(wd::status.eq(DeliveryStatus::Pending))
            .filter(wd::next_attempt_at.le($now))
            .filter(wd::leased_until.is_null().or(wd::leased_until.lt($now)))
            .filter(wd::endpoint_id.eq_any(enabled))
            .filter(not(exists(before_it)))
            .order(wd::next_attempt_at.asc())
            .limit($limit)
            .select(wd::id)
    }};
}

/// Whether any delivery is due at `now`: a read, before a claim takes the write lock.
pub fn any_due(conn: &mut DbConnection, now: NaiveDateTime) -> Result<bool, StoreError> {
    Ok(!due!(now, 1).load::<DeliveryId>(conn)?.is_empty())
}

/// One delivery claimed for posting: its attempt number, the event's body, and where and
/// with what to post it.
#[derive(Clone)]
pub struct Claimed {
    pub delivery: DeliveryId,
    pub event: EventId,
    pub event_type: EventType,
    pub payload: String,
    pub attempt: i32,
    pub step: i32,
    pub endpoint: EndpointRow,
}

/// Claims up to `limit` due deliveries until `lease_until`: counts the attempt, so that a
/// process that dies mid-post leaves it to be claimed again when the lease runs out. On
/// PostgreSQL rows another process is claiming are skipped, not waited for.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let ids: Vec<DeliveryId> = match conn {
        DbConnection::Postgres(pg) => due!(now, limit).for_update().skip_locked().load(pg)?,
        DbConnection::Sqlite(lite) => due!(now, limit).load(lite)?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    diesel::update(wd::table.filter(wd::id.eq_any(&ids)))
        .set((
            wd::leased_until.eq(lease_until),
            wd::attempts.eq(wd::attempts + 1),
            wd::step.eq(wd::step + 1),
        ))
        .execute(conn)?;
    let rows: Vec<(DeliveryRow, OutboxRow, EndpointRow)> = wd::table
        .inner_join(ob::table)
        .inner_join(we::table)
        .filter(wd::id.eq_any(&ids))
        .select((
            DeliveryRow::as_select(),
            OutboxRow::as_select(),
            EndpointRow::as_select(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(delivery, event, endpoint)| Claimed {
            delivery: delivery.id,
            event: event.id,
            event_type: event.event_type,
            payload: event.payload,
            attempt: delivery.attempts,
            step: delivery.step,
            endpoint,
        })
        .collect())
}

/// One attempt's result, as logged.
#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = wa)]
pub struct AttemptRow {
    pub delivery_id: DeliveryId,
    pub number: i32,
    pub started_at: NaiveDateTime,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub error: Option<String>,
}

/// What follows an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterAttempt {
    Delivered,
    /// Tried again at this instant.
    Retry(NaiveDateTime),
    /// The schedule is spent: the delivery failed, and its endpoint is disabled for this
    /// reason.
    GiveUp(String),
}

/// Logs `attempt` and moves its delivery on — unless the lease ran out and another process
/// claimed it meanwhile (its attempt count moved past this one), which then decides. Whether
/// this attempt's outcome was the one stored.
pub fn record(
    conn: &mut DbConnection,
    attempt: &AttemptRow,
    endpoint: WebhookId,
    next: &AfterAttempt,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    diesel::insert_into(wa::table)
        .values(attempt)
        .execute(conn)?;
    let mine = wd::table
        .find(attempt.delivery_id)
        .filter(wd::attempts.eq(attempt.number))
        .filter(wd::status.eq(DeliveryStatus::Pending));
    let none: Option<NaiveDateTime> = None;
    let moved = match next {
        AfterAttempt::Delivered => diesel::update(mine)
            .set((
                wd::status.eq(DeliveryStatus::Delivered),
                wd::delivered_at.eq(now),
                wd::leased_until.eq(none),
            ))
            .execute(conn)?,
        AfterAttempt::Retry(at) => diesel::update(mine)
            .set((wd::next_attempt_at.eq(*at), wd::leased_until.eq(none)))
            .execute(conn)?,
        AfterAttempt::GiveUp(reason) => {
            let moved = diesel::update(mine)
                .set((
                    wd::status.eq(DeliveryStatus::Failed),
                    wd::leased_until.eq(none),
                ))
                .execute(conn)?;
            if moved == 1 {
                diesel::update(we::table.find(endpoint))
                    .set((
                        we::enabled.eq(false),
                        we::disabled_reason.eq(reason),
                        we::updated_at.eq(now),
                        we::version.eq(we::version + 1),
                    ))
                    .execute(conn)?;
            }
            moved
        }
    };
    Ok(moved == 1)
}

/// A delivery with its event's type and its attempts, for the log.
#[derive(Debug, Clone)]
pub struct LoggedDelivery {
    pub delivery: DeliveryRow,
    pub event_type: EventType,
    pub attempts: Vec<AttemptRow>,
}

/// One page of the endpoint's deliveries, oldest first, each with its attempts.
pub fn deliveries(
    conn: &mut DbConnection,
    endpoint: WebhookId,
    page: &Page,
) -> Result<Vec<LoggedDelivery>, StoreError> {
    let query = wd::table
        .inner_join(ob::table)
        .filter(wd::endpoint_id.eq(endpoint))
        .select((DeliveryRow::as_select(), ob::event_type))
        .into_boxed();
    let rows: Vec<(DeliveryRow, EventType)> =
        page_of!(query, wd::created_at, wd::id, page).load(conn)?;
    let ids: Vec<DeliveryId> = rows.iter().map(|(d, _)| d.id).collect();
    let mut attempts: Vec<AttemptRow> = wa::table
        .filter(wa::delivery_id.eq_any(&ids))
        .order((wa::delivery_id.asc(), wa::number.asc()))
        .select(AttemptRow::as_select())
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(delivery, event_type)| {
            let (its, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut attempts)
                .into_iter()
                .partition(|a| a.delivery_id == delivery.id);
            attempts = rest;
            LoggedDelivery {
                delivery,
                event_type,
                attempts: its,
            }
        })
        .collect())
}

/// Makes a delivery of the endpoint due again at `now`, with a new round of the schedule;
/// [`StoreError::Conflict`] while it is being posted (the post's outcome would undo it).
pub fn replay(
    conn: &mut DbConnection,
    endpoint: WebhookId,
    delivery: DeliveryId,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let none: Option<NaiveDateTime> = None;
    let replayed = diesel::update(
        wd::table
            .find(delivery)
            .filter(wd::endpoint_id.eq(endpoint))
            .filter(wd::leased_until.is_null().or(wd::leased_until.lt(now))),
    )
    .set((
        wd::status.eq(DeliveryStatus::Pending),
        wd::step.eq(0),
        wd::next_attempt_at.eq(now),
        wd::leased_until.eq(none),
    ))
    .execute(conn)?;
    match replayed {
        1 => Ok(()),
        // Not found (another endpoint's, or none), or leased: a conflict only when it exists.
        _ => self::delivery(conn, endpoint, delivery).and(Err(StoreError::Conflict)),
    }
}

/// One delivery of the endpoint, with its attempts.
pub fn delivery(
    conn: &mut DbConnection,
    endpoint: WebhookId,
    id: DeliveryId,
) -> Result<LoggedDelivery, StoreError> {
    let (delivery, event_type): (DeliveryRow, EventType) = wd::table
        .inner_join(ob::table)
        .filter(wd::endpoint_id.eq(endpoint))
        .filter(wd::id.eq(id))
        .select((DeliveryRow::as_select(), ob::event_type))
        .first(conn)?;
    let attempts = wa::table
        .filter(wa::delivery_id.eq(id))
        .order(wa::number.asc())
        .select(AttemptRow::as_select())
        .load(conn)?;
    Ok(LoggedDelivery {
        delivery,
        event_type,
        attempts,
    })
}

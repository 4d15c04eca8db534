//! A clinic's webhook endpoints (api.md, Notifications): administrators create, change,
//! delete them, rotate their secrets, read their delivery logs and replay a delivery; the
//! clinic's clinicians read them (never a secret). Delivery itself is `delivery`'s.

use chrono::{Duration, NaiveDateTime};
use rand::RngCore;

use crate::call::{Call, Event, Expected};
use crate::clock;
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::egress::{Egress, WebhookUrl};
use crate::domain::events::EventType;
use crate::domain::flags::{FlagKind, FlagLevel};
use crate::domain::ids::{ClinicId, DeliveryId, WebhookId};
use crate::domain::text::{self, Shape};
use crate::domain::webhooks::{Secret, Subscription, SECRET_BYTES};
use crate::domain::RuleBroken;
use crate::error::ApiError;
use crate::records::{created_or_replayed, optional, Created};
use crate::store::columns::Json;
use crate::store::webhooks::{self, EndpointRow, LoggedDelivery};
use crate::store::{self, clinics, DbConnection, Page, StoreError};

/// How long the secret a rotation replaces still signs beside the new one, so receivers can
/// switch without missing a delivery.
pub const ROTATION_GRACE: Duration = Duration::hours(24);

/// What an endpoint is to be sent, as an administrator asked.
pub struct EndpointDraft {
    pub url: String,
    pub description: Option<String>,
    pub events: Vec<EventType>,
    pub flag_levels: Vec<FlagLevel>,
    pub flag_kinds: Vec<FlagKind>,
}

/// A change to an endpoint; what is absent stays.
#[derive(Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub flag_levels: Option<Vec<FlagLevel>>,
    pub flag_kinds: Option<Vec<FlagKind>>,
    /// Enabling clears the reason it was disabled for.
    pub enabled: Option<bool>,
}

/// An endpoint and the secret it was just given (shown on creation and rotation only).
pub struct WithSecret {
    pub endpoint: EndpointRow,
    pub secret: Secret,
}

fn new_secret() -> Secret {
    let mut key = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut key);
    Secret::from_key(key)
}

/// Collects every field a draft breaks.
fn checked<T>(broken: &mut Vec<RuleBroken>, result: Result<T, RuleBroken>) -> Option<T> {
    result.map_err(|b| broken.push(b)).ok()
}

/// Creates an endpoint of the clinic with a new secret; idempotent by client id (a repeat
/// shows the same secret, so a client that lost the answer can still learn it).
pub async fn create(
    call: &Call,
    clinic: ClinicId,
    id: WebhookId,
    draft: EndpointDraft,
) -> Result<Created<WithSecret>, ApiError> {
    call.require(&[Role::Admin])?;
    // Before the URL's host is looked up: a revoked token must not map the network's names.
    call.confirmed().await?;
    let sender = &call.services.webhooks;
    let mut broken = Vec::new();
    let url = checked(&mut broken, sender.check(&draft.url).await);
    let description = checked(
        &mut broken,
        text::optional(
            "description",
            draft.description.as_deref().unwrap_or(""),
            Shape::Line,
            200,
        ),
    );
    let subscription = Subscription::new(draft.events, draft.flag_levels, draft.flag_kinds)
        .map_err(|b| broken.extend(b))
        .ok();
    let (Some(url), Some(description), Some(subscription)) = (url, description, subscription)
    else {
        return Err(broken.into());
    };
    let (url, description) = (url.as_str().to_owned(), description.unwrap_or_default());
    let secret = new_secret();
    let by = call.caller.user_id;
    let made = call
        .transaction(move |conn, call| {
            clinic_exists(conn, clinic)?;
            created_or_replayed(
                conn,
                |conn| optional(webhooks::find(conn, clinic, id)),
                |row| {
                    row.url == url
                        && row.description == description
                        && row.subscription.0 == subscription
                },
                |conn| {
                    let now = clock::to_db(clock::now());
                    let row = EndpointRow {
                        id,
                        clinic_id: clinic,
                        url: url.clone(),
                        description: description.clone(),
                        subscription: Json(subscription.clone()),
                        secret: secret.expose(),
                        previous_secret: None,
                        previous_secret_until: None,
                        enabled: true,
                        disabled_reason: None,
                        // Sent every event that commits from now on.
                        read_seq: store::horizon(conn)? - 1,
                        read_id: None,
                        created_by: by,
                        created_at: now,
                        updated_at: now,
                        version: 1,
                    };
                    if !webhooks::insert(conn, &row)? {
                        return Ok(None);
                    }
                    call.audit(conn, Event::new(Action::WebhookCreated).on(id))?;
                    Ok(Some(row))
                },
            )
        })
        .await?;
    let with_secret = |endpoint: EndpointRow| {
        Secret::parse(&endpoint.secret)
            .map(|secret| WithSecret { endpoint, secret })
            .map_err(|e| ApiError::from(StoreError::Integrity(Box::new(e))))
    };
    Ok(match made {
        Created::Now(endpoint) => Created::Now(with_secret(endpoint)?),
        Created::Replayed(endpoint) => Created::Replayed(with_secret(endpoint)?),
    })
}

/// 404 for a clinic that does not exist, so an endpoint is never made for none.
fn clinic_exists(conn: &mut DbConnection, clinic: ClinicId) -> Result<(), ApiError> {
    clinics::find(conn, clinic)?
        .map(drop)
        .ok_or(ApiError::NotFound)
}

/// Administrators reach every clinic's endpoints; a clinician reads their own clinic's
/// (another clinic's are not found).
fn may_read(call: &Call, clinic: ClinicId) -> Result<(), ApiError> {
    call.require(&[Role::Admin, Role::Clinician])?;
    match call.caller.role {
        Role::Clinician if call.caller.clinic_id != Some(clinic) => Err(ApiError::NotFound),
        _ => Ok(()),
    }
}

pub async fn list(call: &Call, clinic: ClinicId, page: Page) -> Result<Vec<EndpointRow>, ApiError> {
    may_read(call, clinic)?;
    let rows = call
        .read(move |conn| {
            clinic_exists(conn, clinic)?;
            Ok(webhooks::list(conn, clinic, &page)?)
        })
        .await?;
    Ok(rows.into_iter().map(|row| as_seen_by(call, row)).collect())
}

pub async fn find(call: &Call, clinic: ClinicId, id: WebhookId) -> Result<EndpointRow, ApiError> {
    may_read(call, clinic)?;
    let row = call
        .read(move |conn| Ok(webhooks::find(conn, clinic, id)?))
        .await?;
    Ok(as_seen_by(call, row))
}

/// A clinician reads where an endpoint posts to, not the URL itself: receivers often carry
/// a token in its path or query, and only administrators manage endpoints.
fn as_seen_by(call: &Call, row: EndpointRow) -> EndpointRow {
    if call.caller.role == Role::Admin {
        return row;
    }
    let url = WebhookUrl::parse(&row.url, Egress::Any)
        .map(|url| url.origin_only())
        .unwrap_or_else(|_| "…".to_owned());
    EndpointRow { url, ..row }
}

/// Changes an endpoint at the version the administrator holds.
pub async fn update(
    call: &Call,
    clinic: ClinicId,
    id: WebhookId,
    expected: Expected,
    change: EndpointChange,
) -> Result<EndpointRow, ApiError> {
    call.require(&[Role::Admin])?;
    // Before the URL's host is looked up (as `create`).
    call.confirmed().await?;
    let mut broken = Vec::new();
    let url = match &change.url {
        Some(text) => checked(&mut broken, call.services.webhooks.check(text).await)
            .map(|u| Some(u.as_str().to_owned())),
        None => Some(None),
    };
    let description = match &change.description {
        Some(text) => checked(
            &mut broken,
            text::optional("description", text, Shape::Line, 200),
        )
        .map(|d| Some(d.unwrap_or_default())),
        None => Some(None),
    };
    let (Some(url), Some(description)) = (url, description) else {
        return Err(broken.into());
    };
    call.transaction(move |conn, call| {
        let current = webhooks::find(conn, clinic, id)?;
        if !expected.admits(current.version) {
            return Err(ApiError::PreconditionFailed);
        }
        let was = current.subscription.0.clone();
        let subscription = Subscription::new(
            change.events.unwrap_or(was.events),
            change.flag_levels.unwrap_or(was.flag_levels),
            change.flag_kinds.unwrap_or(was.flag_kinds),
        )?;
        let enabled = change.enabled.unwrap_or(current.enabled);
        let row = EndpointRow {
            url: url.unwrap_or(current.url.clone()),
            description: description.unwrap_or(current.description.clone()),
            subscription: Json(subscription),
            enabled,
            disabled_reason: if enabled {
                None
            } else {
                change
                    .enabled
                    .map(|_| "disabled by an administrator".to_owned())
                    .or(current.disabled_reason.clone())
            },
            updated_at: clock::to_db(clock::now()),
            ..current.clone()
        };
        webhooks::replace(conn, &row, current.version)?;
        if enabled && !current.enabled {
            webhooks::resume(conn, id, row.updated_at)?;
        }
        call.audit(conn, Event::new(Action::WebhookUpdated).on(id))?;
        Ok(webhooks::find(conn, clinic, id)?)
    })
    .await
}

/// Deletes an endpoint with its delivery log; nothing more is sent to it.
pub async fn delete(call: &Call, clinic: ClinicId, id: WebhookId) -> Result<(), ApiError> {
    call.require(&[Role::Admin])?;
    call.transaction(move |conn, call| {
        webhooks::find(conn, clinic, id)?;
        webhooks::delete(conn, id)?;
        call.audit(conn, Event::new(Action::WebhookDeleted).on(id))?;
        Ok(())
    })
    .await
}

/// Gives the endpoint a new secret; the one it replaces signs beside it for
/// [`ROTATION_GRACE`]. A rotation within the grace drops the oldest.
pub async fn rotate_secret(
    call: &Call,
    clinic: ClinicId,
    id: WebhookId,
) -> Result<WithSecret, ApiError> {
    call.require(&[Role::Admin])?;
    let secret = new_secret();
    call.transaction(move |conn, call| {
        let current = webhooks::find(conn, clinic, id)?;
        let now = clock::to_db(clock::now());
        let row = EndpointRow {
            secret: secret.expose(),
            previous_secret: Some(current.secret.clone()),
            previous_secret_until: Some(now + ROTATION_GRACE),
            updated_at: now,
            ..current.clone()
        };
        webhooks::replace(conn, &row, current.version)?;
        call.audit(conn, Event::new(Action::WebhookSecretRotated).on(id))?;
        let endpoint = webhooks::find(conn, clinic, id)?;
        Ok(WithSecret { endpoint, secret })
    })
    .await
}

/// One page of the endpoint's deliveries with their attempts (administrators).
pub async fn deliveries(
    call: &Call,
    clinic: ClinicId,
    id: WebhookId,
    page: Page,
) -> Result<Vec<LoggedDelivery>, ApiError> {
    call.require(&[Role::Admin])?;
    call.read(move |conn| {
        webhooks::find(conn, clinic, id)?;
        Ok(webhooks::deliveries(conn, id, &page)?)
    })
    .await
}

/// Makes a delivery due again with a new round of the schedule; it is posted under its own
/// webhook-id, so a receiver that already has it can tell.
pub async fn replay(
    call: &Call,
    clinic: ClinicId,
    id: WebhookId,
    delivery: DeliveryId,
) -> Result<LoggedDelivery, ApiError> {
    call.require(&[Role::Admin])?;
    call.transaction(move |conn, call| {
        webhooks::find(conn, clinic, id)?;
        let now: NaiveDateTime = clock::to_db(clock::now());
        webhooks::replay(conn, id, delivery, now)?;
        call.audit(
            conn,
            Event::new(Action::WebhookDeliveryReplayed).on(delivery),
        )?;
        Ok(webhooks::delivery(conn, id, delivery)?)
    })
    .await
}

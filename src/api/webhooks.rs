//! A clinic's webhook endpoints and their delivery logs, on the wire.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::extract::{Body, IfMatch, IfMatchHeader};
use crate::api::wire::{created, present, versioned, PageQuery, Paged};
use crate::call::Call;
use crate::clock;
use crate::domain::events::EventType;
use crate::domain::flags::{FlagKind, FlagLevel};
use crate::domain::webhooks::DeliveryStatus;
use crate::error::responses::{CreateUnder, Read, Update};
use crate::error::ApiError;
use crate::records::id_for;
use crate::store::webhooks::{AttemptRow, EndpointRow, LoggedDelivery};
use crate::webhooks::{self, EndpointChange, EndpointDraft, WithSecret};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://ehr.harbour.example/hooks/ketamine", "description": "On-call pager",
    "events": ["flag.raised", "flag.escalated"], "flag_levels": ["urgent"]}))]
pub struct CreateWebhookRequest {
    /// Client-generated id; repeating the create with the same id and body returns the stored
    /// endpoint and its secret.
    pub id: Option<Uuid>,
    /// Where events are posted: `https` in production, and never to a loopback, link-local,
    /// private or metadata address (checked after name resolution, at creation and at every
    /// delivery).
    #[schema(min_length = 1, max_length = 2000, format = "uri")]
    pub url: String,
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<String>,
    /// The event types sent (at least one).
    #[schema(min_items = 1, max_items = 6)]
    pub events: Vec<EventType>,
    /// Of the flag events, only these levels (absent or empty: every level).
    #[serde(default)]
    #[schema(max_items = 3)]
    pub flag_levels: Vec<FlagLevel>,
    /// Of the flag events, only these kinds (absent or empty: every kind).
    #[serde(default)]
    #[schema(max_items = 12)]
    pub flag_kinds: Vec<FlagKind>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub struct UpdateWebhookRequest {
    #[schema(min_length = 1, max_length = 2000, format = "uri")]
    pub url: Option<String>,
    /// Null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000-\u001F\u007F-\u009F]*$")]
    pub description: Option<Option<String>>,
    #[schema(min_items = 1, max_items = 6)]
    pub events: Option<Vec<EventType>>,
    /// Null or empty: every level.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<FlagLevel>>, max_items = 3)]
    pub flag_levels: Option<Option<Vec<FlagLevel>>>,
    /// Null or empty: every kind.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<FlagKind>>, max_items = 12)]
    pub flag_kinds: Option<Option<Vec<FlagKind>>>,
    /// Disabled, nothing is sent. Enabled again, everything that has not arrived — events
    /// meanwhile, deliveries waiting or failed — is sent at once, in commit order per
    /// patient, and the reason it was disabled is cleared.
    pub enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "5d0c7c8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "url": "https://ehr.harbour.example/hooks/ketamine", "description": "On-call pager",
    "events": ["flag.raised", "flag.escalated"], "flag_levels": ["urgent"], "flag_kinds": [],
    "enabled": true, "disabled_reason": null, "previous_secret_until": null,
    "created_at": "2026-12-06T09:00:00Z", "updated_at": "2026-12-06T09:00:00Z", "version": 1}))]
pub struct WebhookResponse {
    pub id: Uuid,
    pub clinic_id: Uuid,
    /// Administrators read the URL; the clinic's clinicians its origin only (`https://host/…`),
    /// since a receiver's URL often carries a token.
    pub url: String,
    pub description: String,
    pub events: Vec<EventType>,
    pub flag_levels: Vec<FlagLevel>,
    pub flag_kinds: Vec<FlagKind>,
    pub enabled: bool,
    /// Why it is disabled: by an administrator, or after a delivery failed every attempt.
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs beside the current one.
    #[schema(required = true)]
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send as If-Match when changing the endpoint.
    pub version: i32,
}

impl From<EndpointRow> for WebhookResponse {
    fn from(row: EndpointRow) -> Self {
        let subscription = row.subscription.0;
        Self {
            id: row.id.as_uuid(),
            clinic_id: row.clinic_id.as_uuid(),
            url: row.url,
            description: row.description,
            events: subscription.events,
            flag_levels: subscription.flag_levels,
            flag_kinds: subscription.flag_kinds,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            previous_secret_until: row.previous_secret_until.map(clock::from_db),
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// An endpoint with its signing secret: shown when it is made and when it is rotated, never
/// on a read.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwR1n5SGl8bGo=",
    "webhook": {"id": "5d0c7c8e-1a2b-4c3d-8e4f-5a6b7c8d9e0f", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "url": "https://ehr.harbour.example/hooks/ketamine", "description": "On-call pager",
    "events": ["flag.raised"], "flag_levels": ["urgent"], "flag_kinds": [], "enabled": true,
    "disabled_reason": null, "previous_secret_until": null, "created_at": "2026-12-06T09:00:00Z",
    "updated_at": "2026-12-06T09:00:00Z", "version": 1}}))]
pub struct WebhookSecretResponse {
    /// `whsec_` and the base64 of the key: verify each delivery's `webhook-signature` with it
    /// (Standard Webhooks).
    pub secret: String,
    pub webhook: WebhookResponse,
}

impl From<WithSecret> for WebhookSecretResponse {
    fn from(made: WithSecret) -> Self {
        Self {
            secret: made.secret.expose(),
            webhook: made.endpoint.into(),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookPageQuery {
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u16>,
    pub cursor: Option<String>,
}

impl WebhookPageQuery {
    fn page(self) -> Result<crate::store::Page, ApiError> {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor,
        }
        .page()
    }
}

/// Creates a webhook endpoint for the clinic, with a new signing secret (shown in this answer
/// only).
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id")),
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, description = "Created", body = WebhookSecretResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = WebhookSecretResponse),
        CreateUnder,
    )
)]
#[post("/v1/clinics/{id}/webhooks")]
pub async fn create_webhook(
    call: Call,
    clinic: web::Path<Uuid>,
    body: Body<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let draft = EndpointDraft {
        url: body.url,
        description: body.description,
        events: body.events,
        flag_levels: body.flag_levels,
        flag_kinds: body.flag_kinds,
    };
    let clinic = clinic.into_inner().into();
    let made = webhooks::create(&call, clinic, id_for(body.id), draft).await?;
    Ok(created(made, WebhookSecretResponse::from))
}

/// The clinic's webhook endpoints, oldest first (administrators; the clinic's clinicians
/// read them too). Secrets are never shown.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"), WebhookPageQuery),
    responses(
        (status = 200, description = "One page of endpoints", body = Paged<WebhookResponse>),
        Read,
    )
)]
#[get("/v1/clinics/{id}/webhooks")]
pub async fn list_webhooks(
    call: Call,
    clinic: web::Path<Uuid>,
    query: web::Query<WebhookPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().page()?;
    let rows = webhooks::list(&call, clinic.into_inner().into(), page.clone()).await?;
    let key = |r: &EndpointRow| (r.created_at, r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, WebhookResponse::from)))
}

/// One webhook endpoint.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint", body = WebhookResponse,
            headers(("ETag" = String, description = "The endpoint's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/clinics/{id}/webhooks/{wid}")]
pub async fn get_webhook(
    call: Call,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id) = path.into_inner();
    let row = webhooks::find(&call, clinic.into(), id.into()).await?;
    Ok(versioned(row.version, WebhookResponse::from(row)))
}

/// Changes an endpoint: its URL, description, events, or whether it is enabled.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id"), IfMatchHeader),
    request_body(content(
        (UpdateWebhookRequest = "application/merge-patch+json"),
        (UpdateWebhookRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "The changed endpoint", body = WebhookResponse,
            headers(("ETag" = String, description = "The endpoint's new version"))),
        Update,
    )
)]
#[patch("/v1/clinics/{id}/webhooks/{wid}")]
pub async fn update_webhook(
    call: Call,
    path: web::Path<(Uuid, Uuid)>,
    IfMatch(expected): IfMatch,
    body: Body<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id) = path.into_inner();
    let body = body.into_inner();
    let change = EndpointChange {
        url: body.url,
        description: body.description.map(Option::unwrap_or_default),
        events: body.events,
        flag_levels: body.flag_levels.map(Option::unwrap_or_default),
        flag_kinds: body.flag_kinds.map(Option::unwrap_or_default),
        enabled: body.enabled,
    };
    let row = webhooks::update(&call, clinic.into(), id.into(), expected, change).await?;
    Ok(versioned(row.version, WebhookResponse::from(row)))
}

/// Deletes an endpoint and its delivery log: nothing more is sent to it.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Deleted"),
        Read,
    )
)]
#[delete("/v1/clinics/{id}/webhooks/{wid}")]
pub async fn delete_webhook(
    call: Call,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id) = path.into_inner();
    webhooks::delete(&call, clinic.into(), id.into()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Gives the endpoint a new secret, shown in this answer only. For 24 hours deliveries carry
/// a signature by each, so a receiver can switch without missing one.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id")),
    responses(
        (status = 200, description = "The endpoint and its new secret", body = WebhookSecretResponse),
        Read,
    )
)]
#[post("/v1/clinics/{id}/webhooks/{wid}/rotate-secret")]
pub async fn rotate_webhook_secret(
    call: Call,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id) = path.into_inner();
    let rotated = webhooks::rotate_secret(&call, clinic.into(), id.into()).await?;
    Ok(HttpResponse::Ok().json(WebhookSecretResponse::from(rotated)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"number": 1, "started_at": "2026-12-06T09:00:03Z", "status_code": 503,
    "latency_ms": 41, "error": "answered 503"}))]
pub struct AttemptResponse {
    pub number: i32,
    pub started_at: DateTime<Utc>,
    /// None when no answer came (refused, no connection, timed out).
    #[schema(required = true)]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    #[schema(required = true)]
    pub error: Option<String>,
}

impl From<AttemptRow> for AttemptResponse {
    fn from(row: AttemptRow) -> Self {
        Self {
            number: row.number,
            started_at: clock::from_db(row.started_at),
            status_code: row.status_code,
            latency_ms: row.latency_ms,
            error: row.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0b6f8a3e-2d4c-4e6f-9a1b-3c5d7e9f1a2b", "webhook_id": "018f3b6e-1c2d-7e3f-8a4b-5c6d7e8f9a0b",
    "event_type": "flag.raised", "status": "delivered", "created_at": "2026-12-06T09:00:03Z",
    "next_attempt_at": null, "delivered_at": "2026-12-06T09:00:08Z",
    "attempts": [{"number": 1, "started_at": "2026-12-06T09:00:03Z", "status_code": 503, "latency_ms": 41, "error": "answered 503"},
        {"number": 2, "started_at": "2026-12-06T09:00:08Z", "status_code": 204, "latency_ms": 12, "error": null}]}))]
pub struct DeliveryResponse {
    pub id: Uuid,
    /// The `webhook-id` it is posted under: the event's id, the same on every attempt.
    pub webhook_id: Uuid,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub created_at: DateTime<Utc>,
    /// When a pending delivery is next tried.
    #[schema(required = true)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub delivered_at: Option<DateTime<Utc>>,
    pub attempts: Vec<AttemptResponse>,
}

impl From<LoggedDelivery> for DeliveryResponse {
    fn from(logged: LoggedDelivery) -> Self {
        let d = logged.delivery;
        Self {
            id: d.id.as_uuid(),
            webhook_id: d.event_id.as_uuid(),
            event_type: logged.event_type,
            status: d.status,
            created_at: clock::from_db(d.created_at),
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then(|| clock::from_db(d.next_attempt_at)),
            delivered_at: d.delivered_at.map(clock::from_db),
            attempts: logged.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

/// The endpoint's deliveries, oldest first, each with its attempts: status codes, latency
/// and why an attempt failed (a receiver's answer is never stored).
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id"), WebhookPageQuery),
    responses(
        (status = 200, description = "One page of deliveries", body = Paged<DeliveryResponse>),
        Read,
    )
)]
#[get("/v1/clinics/{id}/webhooks/{wid}/deliveries")]
pub async fn list_webhook_deliveries(
    call: Call,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<WebhookPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id) = path.into_inner();
    let page = query.into_inner().page()?;
    let rows = webhooks::deliveries(&call, clinic.into(), id.into(), page.clone()).await?;
    let key = |r: &LoggedDelivery| (r.delivery.created_at, r.delivery.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, DeliveryResponse::from)))
}

/// Sends a delivery again, with a new round of retries, under the same `webhook-id` (409 while
/// it is being posted). A disabled endpoint's delivery waits until the endpoint is enabled.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The clinic's id"),
        ("wid" = Uuid, Path, description = "The endpoint's id"),
        ("did" = Uuid, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Due again now", body = DeliveryResponse),
        CreateUnder,
    )
)]
#[post("/v1/clinics/{id}/webhooks/{wid}/deliveries/{did}/replay")]
pub async fn replay_webhook_delivery(
    call: Call,
    path: web::Path<(Uuid, Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (clinic, id, delivery) = path.into_inner();
    let replayed = webhooks::replay(&call, clinic.into(), id.into(), delivery.into()).await?;
    Ok(HttpResponse::Accepted().json(DeliveryResponse::from(replayed)))
}

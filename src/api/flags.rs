//! The safety worklist (domain.md §7), on the wire.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::extract::Body;
use crate::api::wire::{PageQuery, Paged};
use crate::call::Call;
use crate::clock;
use crate::domain::flags::{FlagKind, FlagLevel, FlagStatus, FlaggedRecord};
use crate::error::responses::{CreateUnder, List, Stream};
use crate::error::ApiError;
use crate::store::flags::{After, FlagFilter, FlagRow};
use crate::{notifications, worklist};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"id": "0d6f2b8e-3c1a-4f5e-9a7b-2c4d6e8f0a1b", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "kind": "suicidal_ideation", "level": "urgent", "record_type": "assessment", "record_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "detail": "phq9 item 9 answered 1", "raised_at": "2026-10-01T08:00:03Z", "status": "open",
    "acknowledged_by": null, "acknowledged_at": null, "note": null, "escalated_at": "2026-10-01T08:15:30Z"}))]
pub struct FlagResponse {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub kind: FlagKind,
    pub level: FlagLevel,
    /// A `planned_slot`'s id is `course_id:date`.
    pub record_type: FlaggedRecord,
    pub record_id: String,
    /// Why it was raised.
    pub detail: String,
    pub raised_at: DateTime<Utc>,
    /// An acknowledged flag is never reopened.
    pub status: FlagStatus,
    #[schema(required = true)]
    pub acknowledged_by: Option<Uuid>,
    #[schema(required = true)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub note: Option<String>,
    /// When the flag was escalated: urgent and left unacknowledged longer than the
    /// deployment's escalation time (15 minutes by default).
    #[schema(required = true)]
    pub escalated_at: Option<DateTime<Utc>>,
}

impl From<FlagRow> for FlagResponse {
    fn from(row: FlagRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            patient_id: row.patient_id.as_uuid(),
            kind: row.kind,
            level: row.level,
            record_type: row.record_type,
            record_id: row.record_id,
            detail: row.detail,
            raised_at: clock::from_db(row.raised_at),
            status: row.status,
            acknowledged_by: row.acknowledged_by.map(|a| a.as_uuid()),
            acknowledged_at: row.acknowledged_at.map(clock::from_db),
            note: row.note,
            escalated_at: row.escalated_at.map(clock::from_db),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    /// `open` or `acknowledged`.
    pub status: Option<FlagStatus>,
    pub level: Option<FlagLevel>,
    pub kind: Option<FlagKind>,
    pub patient_id: Option<Uuid>,
}

/// The clinic's flags: urgent first, then high, then info; oldest first within a level.
/// Flags that time raises (persistent side effects, missed sessions) appear by this read.
#[utoipa::path(
    tag = "flags",
    security(("bearer" = [])),
    params(FlagQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the worklist", body = Paged<FlagResponse>),
        List,
    )
)]
#[get("/v1/flags")]
pub async fn list_flags(
    call: Call,
    query: web::Query<FlagQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    // The worklist's cursor carries the level rank with the id (`rank:id`).
    let after = page
        .after
        .as_ref()
        .map(|(raised_at, key)| {
            let (rank, id) = key.split_once(':')?;
            Some(After {
                rank: rank.parse().ok()?,
                raised_at: *raised_at,
                id: id.parse().ok()?,
            })
        })
        .map(|after| {
            after.ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this server issued"))
        })
        .transpose()?;
    let filter = FlagFilter {
        status: query.status,
        level: query.level,
        kind: query.kind,
        patient_id: query.patient_id.map(Into::into),
    };
    let rows = worklist::list(&call, filter, after, page.limit).await?;
    let key = |r: &FlagRow| (r.raised_at, format!("{}:{}", r.level_rank, r.id));
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, FlagResponse::from)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "Called the patient; safety plan reviewed, crisis line given."}))]
pub struct AcknowledgeRequest {
    /// What was done: 1 to 2000 characters.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub note: String,
}

/// Acknowledges a flag with a note of what was done (audited). An acknowledged flag is
/// never reopened.
#[utoipa::path(
    tag = "flags",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The flag's id")),
    request_body = AcknowledgeRequest,
    responses(
        (status = 200, description = "Acknowledged", body = FlagResponse),
        CreateUnder,
    )
)]
#[post("/v1/flags/{id}/acknowledge")]
pub async fn acknowledge_flag(
    call: Call,
    id: web::Path<Uuid>,
    body: Body<AcknowledgeRequest>,
) -> Result<HttpResponse, ApiError> {
    let flag = worklist::acknowledge(&call, id.into_inner().into(), &body.note).await?;
    Ok(HttpResponse::Ok().json(FlagResponse::from(flag)))
}

/// The clinic's events as they commit, as `text/event-stream`: `flag.raised`,
/// `flag.acknowledged`, `flag.escalated`, `assessment.created`, `session.created` and
/// `side_effect.created`, each frame's `data` an `EventBody` (the component of that name).
/// Every frame's `id` (heartbeats' too) is the stream's position: a client that reconnects
/// with `Last-Event-ID` receives every event that committed since, from any of the service's
/// processes. Without it the stream starts after the events committed by the time it opens
/// (on PostgreSQL, those of every transaction that had ended by then). A heartbeat every 5 s
/// when nothing happens; the stream ends when the caller's access token expires (reconnect
/// with a fresh one) and within 5 s of the account being disabled or signed out. An account
/// holds at most 4 streams at once in a process (429), a process 64 (503).
#[utoipa::path(
    tag = "flags",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header,
        description = "The `id` of the last frame received, to resume after it")),
    responses(
        (status = 200, description = "The stream of events", content_type = "text/event-stream",
            body = String,
            example = "retry: 2000\nid: 4210\n\nid: 4211.0d6f2b8e-3c1a-4f5e-9a7b-2c4d6e8f0a1b\nevent: flag.raised\ndata: {\"type\":\"flag.raised\",\"timestamp\":\"2026-10-01T08:00:03Z\",\"data\":{\"patient_id\":\"3fa85f64-5717-4562-b3fc-2c963f66afa6\",\"record_type\":\"assessment\",\"record_id\":\"6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d\",\"flag_id\":\"0d6f2b8e-3c1a-4f5e-9a7b-2c4d6e8f0a1b\",\"kind\":\"suicidal_ideation\",\"level\":\"urgent\"}}\n\n"),
        Stream,
    )
)]
#[get("/v1/flags/stream")]
pub async fn stream_flags(call: Call, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let last_event_id = request
        .headers()
        .get("Last-Event-ID")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::invalid("Last-Event-ID", "is not an event id this server sent")
            })
        })
        .transpose()?;
    let events = notifications::open(call, last_event_id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        // A proxy that buffers responses (nginx does by default) would hold frames back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}

//! A patient's sessions, assessments and side effects in one time order.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::assessments::AssessmentResponse;
use crate::api::context::RequestContext;
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::{patient_event, RecordQuery};
use crate::api::sessions::SessionResponse;
use crate::api::side_effects::SideEffectResponse;
use crate::auth::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::store::{assessments, audit, patients, sessions, side_effects, Db, StoreError};

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimelineKind {
    Session,
    Assessment,
    SideEffect,
}

/// One entry: its kind and time, and the record itself under the key of its kind.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"kind": "assessment", "at": "2026-10-01T08:00:00Z", "assessment": {"id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "instrument": "phq9", "taken_at": "2026-10-01T08:00:00Z",
    "items": [2, 2, 1, 2, 1, 1, 2, 1, 0], "total": 12, "band": "moderate", "severity": 12, "submitted_by": "patient", "deleted": false,
    "deleted_reason": null, "created_at": "2026-10-01T08:00:03Z", "updated_at": "2026-10-01T08:00:03Z", "version": 1,
    "flags": [], "crisis_message": null}}))]
pub struct TimelineEntry {
    pub kind: TimelineKind,
    /// The session's start, the assessment's time taken, or the side effect's onset.
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assessment: Option<AssessmentResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side_effect: Option<SideEffectResponse>,
}

struct Keyed {
    at: NaiveDateTime,
    id: String,
    entry: TimelineEntry,
}

fn entry(kind: TimelineKind, at: NaiveDateTime, id: String) -> Keyed {
    Keyed {
        at,
        id,
        entry: TimelineEntry {
            kind,
            at: clock::from_db(at),
            session: None,
            assessment: None,
            side_effect: None,
        },
    }
}

/// The patient's records in time order (live records only; sync uses the per-kind lists).
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the timeline", body = Paged<TimelineEntry>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/timeline")]
pub async fn get_timeline(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let patient_id = patient.into_inner().to_string();
    if query.updated_since.is_some() {
        return Err(ApiError::invalid(
            "updated_since",
            "sync the sessions, assessments and side effects lists instead",
        ));
    }
    let (window, page) = query.window_and_page(&page)?;
    let fetch = page.clone();
    let mut entries = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            let mut entries = Vec::new();
            for row in sessions::list(conn, &patient_id, &window, &fetch)? {
                let mut keyed = entry(TimelineKind::Session, row.started_at, row.id.clone());
                keyed.entry.session = Some(row.into());
                entries.push(keyed);
            }
            for row in assessments::list(conn, &patient_id, &window, &fetch)? {
                let mut keyed = entry(TimelineKind::Assessment, row.taken_at, row.id.clone());
                keyed.entry.assessment = Some(row.into());
                entries.push(keyed);
            }
            for row in side_effects::list(conn, &patient_id, &window, &fetch)? {
                let mut keyed = entry(TimelineKind::SideEffect, row.onset_at, row.id.clone());
                keyed.entry.side_effect = Some(row.into());
                entries.push(keyed);
            }
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "timeline_read",
                    "patient",
                    &patient_id,
                    &patient_id,
                ),
            )?;
            Ok(entries)
        })
        .await?;
    // Each list returned its first page+1 after the cursor; merged, the first page+1 of the
    // union is among them.
    entries.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        entries,
        &page,
        |k| (k.at, k.id.as_str()),
        |k| k.entry,
    )))
}

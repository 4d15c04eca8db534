//! A patient's sessions, assessments and side effects in one time order, on the wire.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::assessments::AssessmentResponse;
use crate::api::sessions::SessionResponse;
use crate::api::side_effects::SideEffectResponse;
use crate::api::wire::{PageQuery, Paged, RecordQuery};
use crate::call::Call;
use crate::clock;
use crate::error::responses::Read;
use crate::error::ApiError;
use crate::records::timeline::{self, Entry};

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

impl From<Entry> for TimelineEntry {
    fn from(entry: Entry) -> Self {
        let mut shown = TimelineEntry {
            kind: TimelineKind::Session,
            at: clock::from_db(entry.at()),
            session: None,
            assessment: None,
            side_effect: None,
        };
        match entry {
            Entry::Session(r) => shown.session = Some(r.into()),
            Entry::Assessment(r) => {
                shown.kind = TimelineKind::Assessment;
                shown.assessment = Some(r.into());
            }
            Entry::SideEffect(r) => {
                shown.kind = TimelineKind::SideEffect;
                shown.side_effect = Some(r.into());
            }
        }
        shown
    }
}

/// The patient's records in time order (live records only; sync uses the per-kind lists),
/// each with its flags.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of the timeline", body = Paged<TimelineEntry>),
        Read,
    )
)]
#[get("/v1/patients/{id}/timeline")]
pub async fn get_timeline(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.updated_since.is_some() {
        return Err(ApiError::invalid(
            "updated_since",
            "sync the sessions, assessments and side effects lists instead",
        ));
    }
    let (range, page) = query.range_and_page(&page)?;
    let patient = patient.into_inner().into();
    let entries = timeline::timeline(&call, patient, range, page.clone()).await?;
    let key = |e: &Entry| (e.at(), e.id());
    Ok(HttpResponse::Ok().json(Paged::from_rows(entries, &page, key, TimelineEntry::from)))
}

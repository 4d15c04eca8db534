//! The measurement plan at work: what a patient's app must ask now, next, and what was
//! missed, with the share completed on time.

use actix_web::{get, web, HttpResponse};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::courses::measurement_plan;
use crate::api::records::patient_event;
use crate::auth::caller::Caller;
use crate::clock;
use crate::domain::instrument::Instrument;
use crate::domain::plan::{self, DueItem, DuePurpose, DueStatus, MeasurementPlan, PlanInput};
use crate::domain::research::{rate, Rate};
use crate::domain::schedule::{self, Protocol, SlotStatus};
use crate::error::ApiError;
use crate::store::courses::CourseRow;
use crate::store::{assessments, audit, courses, patients, sessions, Db, DbConnection, StoreError};

/// How far back daily items are listed.
const DAILY_LOOKBACK_DAYS: i64 = 30;

/// A completed live session as a measurement plan sees it.
struct PlanSession {
    id: String,
    course_id: String,
    started_at: DateTime<Utc>,
}

/// What measurement plans are checked against: the live sessions and scores of some
/// patients, loaded for all of them in two queries.
#[derive(Default)]
pub struct PlanRecords {
    sessions: HashMap<String, Vec<PlanSession>>,
    scores: HashMap<String, Vec<(String, Instrument, DateTime<Utc>)>>,
}

impl PlanRecords {
    pub fn load(conn: &mut DbConnection, patient_ids: &[String]) -> Result<Self, StoreError> {
        let mut records = Self::default();
        // Only completed sessions carry a plan's items.
        for (patient, id, course_id, status, started_at) in
            sessions::starts_of_patients(conn, patient_ids)?
        {
            if status == "completed" {
                let started_at = clock::from_db(started_at);
                let session = PlanSession {
                    id,
                    course_id,
                    started_at,
                };
                records.sessions.entry(patient).or_default().push(session);
            }
        }
        for (patient, id, instrument, taken_at) in
            assessments::times_of_patients(conn, patient_ids)?
        {
            if let Ok(instrument) = instrument.parse() {
                let score = (id, instrument, clock::from_db(taken_at));
                records.scores.entry(patient).or_default().push(score);
            }
        }
        // Each patient's records in time order, ties by id, as the plan reads them.
        for sessions in records.sessions.values_mut() {
            sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        }
        for scores in records.scores.values_mut() {
            scores.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
        }
        Ok(records)
    }

    /// The items `course`'s plan asks for, with their status at `at`.
    pub fn due_for_course(&self, course: &CourseRow, at: DateTime<Utc>) -> Vec<DueItem> {
        let completed: Vec<(String, DateTime<Utc>)> = self
            .sessions
            .get(&course.patient_id)
            .into_iter()
            .flatten()
            .filter(|s| s.course_id == course.id && s.started_at <= at)
            .map(|s| (s.id.clone(), s.started_at))
            .collect();
        let scores = self
            .scores
            .get(&course.patient_id)
            .map_or(&[][..], Vec::as_slice);
        due_items_of(course, &completed, scores, at)
    }
}

/// The items a course's plan asks for, with their status at `at`.
pub fn due_for_course(
    conn: &mut DbConnection,
    course: &CourseRow,
    at: DateTime<Utc>,
) -> Result<Vec<DueItem>, StoreError> {
    let records = PlanRecords::load(conn, std::slice::from_ref(&course.patient_id))?;
    Ok(records.due_for_course(course, at))
}

fn due_items_of(
    course: &CourseRow,
    completed: &[(String, DateTime<Utc>)],
    scores: &[(String, Instrument, DateTime<Utc>)],
    at: DateTime<Utc>,
) -> Vec<DueItem> {
    let protocol = course.protocol.parse().unwrap_or(Protocol::Custom);
    let custom: Vec<_> = course
        .planned_dates
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let days: Vec<_> = completed
        .iter()
        .map(|(id, t)| (id.clone(), t.date_naive()))
        .collect();
    let next_planned = (!course.closed)
        .then(|| schedule::slots(protocol, course.start_date, &custom, &days, at.date_naive()))
        .and_then(|slots| {
            slots
                .into_iter()
                .find(|s| s.status == SlotStatus::Open && s.planned_date >= at.date_naive())
        })
        .map(|s| s.planned_date);
    let daily_from = completed.first().map(|(_, t)| {
        t.date_naive()
            .max((at - Duration::days(DAILY_LOOKBACK_DAYS)).date_naive())
    });
    let plan = measurement_plan(course);
    let primary = course
        .primary_instrument
        .parse()
        .unwrap_or(Instrument::Phq9);
    plan::due_items(
        &PlanInput {
            plan: &plan,
            primary,
            sessions: completed,
            next_planned,
            scores,
            daily_from,
        },
        at,
    )
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"instrument": "phq9", "purpose": "follow_up", "session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c",
    "day": 3, "window_start": "2026-10-02T09:00:00Z", "window_end": "2026-10-04T09:00:00Z", "status": "due_now", "completed_by": null}))]
pub struct DueItemResponse {
    pub instrument: Instrument,
    /// `pre_session`, `follow_up` or `daily_mood`.
    pub purpose: DuePurpose,
    /// The session it is before or after; null for a planned session and for daily items.
    pub session_id: Option<String>,
    /// Days after the session, for follow-ups.
    pub day: Option<i64>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: DueStatus,
    /// The assessment that completed it.
    pub completed_by: Option<String>,
}

impl From<DueItem> for DueItemResponse {
    fn from(i: DueItem) -> Self {
        Self {
            instrument: i.instrument,
            purpose: i.purpose,
            session_id: i.session_id,
            day: i.day,
            window_start: i.window_start,
            window_end: i.window_end,
            status: i.status,
            completed_by: i.completed_by,
        }
    }
}

/// Completed on time among the items whose windows have closed or that were completed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"completed": 8, "due": 10, "rate": 0.8}))]
pub struct AdherenceResponse {
    pub completed: usize,
    pub due: usize,
    pub rate: Option<f64>,
}

impl AdherenceResponse {
    pub fn of(items: &[DueItem]) -> Self {
        let (completed, due) = plan::adherence(items);
        let Rate { rate, .. } = rate(completed, due);
        Self {
            completed,
            due,
            rate,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"at": "2026-10-03T08:00:00Z", "course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10",
    "plan": {"pre_session_hours": 24, "follow_up_days": [1, 3, 7, 14], "daily_mood": true, "first_day_window_hours": 12, "window_hours": 24},
    "adherence": {"completed": 3, "due": 4, "rate": 0.75},
    "due_now": [{"instrument": "phq9", "purpose": "follow_up", "session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "day": 3,
        "window_start": "2026-10-02T09:00:00Z", "window_end": "2026-10-04T09:00:00Z", "status": "due_now", "completed_by": null}],
    "upcoming": [], "missed": [], "completed": []}))]
pub struct DueAssessmentsResponse {
    /// The instant the list is for.
    pub at: DateTime<Utc>,
    /// The course whose plan applies: the most recently started open course; null without one.
    pub course_id: Option<String>,
    pub plan: Option<MeasurementPlan>,
    pub adherence: AdherenceResponse,
    pub due_now: Vec<DueItemResponse>,
    /// With their windows, soonest first.
    pub upcoming: Vec<DueItemResponse>,
    pub missed: Vec<DueItemResponse>,
    pub completed: Vec<DueItemResponse>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// The instant to evaluate the plan at; now when absent (at most 5 minutes ahead).
    pub at: Option<DateTime<Utc>>,
}

/// What the patient must answer now, what comes next, and what was missed.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), DueQuery),
    responses(
        (status = 200, description = "The due list", body = DueAssessmentsResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/due-assessments")]
pub async fn get_due_assessments(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<DueQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    due(caller, patient.into_inner().to_string(), query.at, ctx, &db).await
}

/// What the caller's app must ask now, what comes next, and what was missed (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(DueQuery),
    responses(
        (status = 200, description = "The due list", body = DueAssessmentsResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/me/due-assessments")]
pub async fn get_my_due_assessments(
    caller: Caller,
    query: web::Query<DueQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    due(caller, patient_id, query.at, ctx, &db).await
}

async fn due(
    caller: Caller,
    patient_id: String,
    at: Option<DateTime<Utc>>,
    ctx: RequestContext,
    db: &Db,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let now = clock::now();
    let at = at.unwrap_or(now);
    crate::domain::time::recorded("at", at, now)?;
    let (course, items) = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "due_assessments_read",
                    "patient",
                    &patient_id,
                    &patient_id,
                ),
            )?;
            let Some(course) = courses::latest_open(conn, &patient_id)? else {
                return Ok((None, vec![]));
            };
            let items = due_for_course(conn, &course, at)?;
            Ok((Some(course), items))
        })
        .await?;
    let adherence = AdherenceResponse::of(&items);
    let by_status = |status: DueStatus| -> Vec<DueItemResponse> {
        items
            .iter()
            .filter(|i| i.status == status)
            .cloned()
            .map(DueItemResponse::from)
            .collect()
    };
    Ok(HttpResponse::Ok().json(DueAssessmentsResponse {
        at,
        course_id: course.as_ref().map(|c| c.id.clone()),
        plan: course.as_ref().map(measurement_plan),
        adherence,
        due_now: by_status(DueStatus::DueNow),
        upcoming: by_status(DueStatus::Upcoming),
        missed: by_status(DueStatus::Missed),
        completed: by_status(DueStatus::Completed),
    }))
}

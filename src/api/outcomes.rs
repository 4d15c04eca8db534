//! A patient's outcomes (domain.md §6), their score over time, and what their measurement
//! plan asks of their app, on the wire.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::call::Call;
use crate::charts::trajectory_svg;
use crate::clock;
use crate::domain::ids::PatientId;
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::domain::plan::{self, DueItem, DuePurpose, DueStatus, MeasurementPlan};
use crate::domain::research::{rate, Rate};
use crate::error::responses::{List, Read, RoleOnly};
use crate::error::ApiError;
use crate::outcomes::{self, PatientOutcomes};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10",
    "started_at": "2026-09-30T09:00:00Z", "instrument": "phq9", "status": "wore_off", "baseline": 20, "nadir": 9, "gain": 11,
    "durability_days": 5.0, "censored": false, "wears_off_within_days": true}))]
pub struct SessionOutcomeResponse {
    pub session_id: Uuid,
    pub course_id: Uuid,
    pub started_at: DateTime<Utc>,
    /// The course's primary instrument, whose severities the arithmetic uses.
    pub instrument: Instrument,
    pub status: BenefitStatus,
    /// Severity of the latest score in the 7 days up to the session.
    #[schema(required = true)]
    pub baseline: Option<i32>,
    /// Lowest severity before the next session (at most 90 days).
    #[schema(required = true)]
    pub nadir: Option<i32>,
    #[schema(required = true)]
    pub gain: Option<i32>,
    /// Days to wear-off, or (censored) to the last score in the window; to one decimal.
    #[schema(required = true)]
    pub durability_days: Option<f64>,
    /// True when the benefit was still there at the last score (status sustained).
    pub censored: bool,
    /// Wore off within W days.
    pub wears_off_within_days: bool,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"assessment_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "response": true, "remission": false}))]
pub struct EndOfInduction {
    /// The latest score 28–42 days after the first session.
    #[schema(required = true)]
    pub assessment_id: Option<Uuid>,
    #[schema(required = true)]
    pub response: Option<bool>,
    #[schema(required = true)]
    pub remission: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "instrument": "phq9", "first_session_at": "2026-09-30T09:00:00Z",
    "baseline": 21, "end_of_induction": {"assessment_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "response": true, "remission": false},
    "time_to_response_days": 9.0, "adherence": {"completed": 8, "due": 10, "rate": 0.8}}))]
pub struct CourseOutcomeResponse {
    pub course_id: Uuid,
    pub instrument: Instrument,
    #[schema(required = true)]
    pub first_session_at: Option<DateTime<Utc>>,
    /// Severity of the latest score in the 14 days up to the first session.
    #[schema(required = true)]
    pub baseline: Option<i32>,
    pub end_of_induction: EndOfInduction,
    /// Days from the first session to the first response.
    #[schema(required = true)]
    pub time_to_response_days: Option<f64>,
    /// The course's measurement plan: due items completed on time.
    pub adherence: AdherenceResponse,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "wear_off_days": 7.0,
    "adherence": {"completed": 8, "due": 10, "rate": 0.8},
    "sessions": [{"session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10",
    "started_at": "2026-09-30T09:00:00Z", "instrument": "phq9", "status": "wore_off", "baseline": 20, "nadir": 9, "gain": 11,
    "durability_days": 5.0, "censored": false, "wears_off_within_days": true}],
    "courses": [{"course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "instrument": "phq9", "first_session_at": "2026-09-30T09:00:00Z",
    "baseline": 21, "end_of_induction": {"assessment_id": null, "response": null, "remission": null}, "time_to_response_days": null,
    "adherence": {"completed": 8, "due": 10, "rate": 0.8}}]}))]
pub struct OutcomesResponse {
    pub patient_id: Uuid,
    /// W, the deployment's wear-off threshold in days.
    pub wear_off_days: f64,
    /// All of the patient's courses' due items completed on time.
    pub adherence: AdherenceResponse,
    /// One entry per completed session, oldest first.
    pub sessions: Vec<SessionOutcomeResponse>,
    pub courses: Vec<CourseOutcomeResponse>,
}

impl From<PatientOutcomes> for OutcomesResponse {
    fn from(o: PatientOutcomes) -> Self {
        Self {
            patient_id: o.patient.as_uuid(),
            wear_off_days: o.wear_off_days,
            adherence: AdherenceResponse::of(&o.items),
            sessions: o
                .sessions
                .into_iter()
                .map(|(r, started_at)| SessionOutcomeResponse {
                    session_id: r.session_id.as_uuid(),
                    course_id: r.course_id.as_uuid(),
                    started_at: clock::from_db(started_at),
                    instrument: r.instrument,
                    status: r.status,
                    baseline: r.baseline,
                    nadir: r.nadir,
                    gain: r.gain,
                    durability_days: r.durability_days,
                    censored: r.censored,
                    wears_off_within_days: r.wears_off_within_days,
                })
                .collect(),
            courses: o
                .courses
                .into_iter()
                .map(|(r, items)| CourseOutcomeResponse {
                    course_id: r.course_id.as_uuid(),
                    instrument: r.instrument,
                    first_session_at: r.first_session_at.map(clock::from_db),
                    baseline: r.baseline,
                    end_of_induction: EndOfInduction {
                        assessment_id: r.end_of_induction_assessment_id.map(|a| a.as_uuid()),
                        response: r.end_of_induction_response,
                        remission: r.end_of_induction_remission,
                    },
                    time_to_response_days: r.time_to_response_days,
                    adherence: AdherenceResponse::of(&items),
                })
                .collect(),
        }
    }
}

async fn outcomes_of(call: Call, patient: PatientId) -> Result<HttpResponse, ApiError> {
    let outcomes = outcomes::of_patient(&call, patient).await?;
    Ok(HttpResponse::Ok().json(OutcomesResponse::from(outcomes)))
}

/// The patient's outcomes: per session, benefit and durability; per course, response and
/// remission.
#[utoipa::path(
    tag = "outcomes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The outcomes", body = OutcomesResponse),
        Read,
    )
)]
#[get("/v1/patients/{id}/outcomes")]
pub async fn get_outcomes(call: Call, patient: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    outcomes_of(call, patient.into_inner().into()).await
}

/// The caller's own outcomes (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's outcomes", body = OutcomesResponse),
        RoleOnly,
    )
)]
#[get("/v1/me/outcomes")]
pub async fn get_my_outcomes(call: Call) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    outcomes_of(call, patient).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrajectoryQuery {
    /// The instrument to draw; the latest course's primary instrument when absent.
    pub instrument: Option<Instrument>,
}

/// The score over time as SVG: band regions shaded, infusions as vertical lines, wear-off
/// points as red triangles.
#[utoipa::path(
    tag = "outcomes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), TrajectoryQuery),
    responses(
        (status = 200, description = "An SVG document", content_type = "image/svg+xml", body = String),
        Read,
    )
)]
#[get("/v1/patients/{id}/trajectory.svg")]
pub async fn get_trajectory(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<TrajectoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let trajectory =
        outcomes::trajectory(&call, patient.into_inner().into(), query.instrument).await?;
    let svg = trajectory_svg(&trajectory).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"instrument": "phq9", "purpose": "follow_up", "session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c",
    "day": 3, "window_start": "2026-10-02T09:00:00Z", "window_end": "2026-10-04T09:00:00Z", "status": "due_now", "completed_by": null}))]
pub struct DueItemResponse {
    pub instrument: Instrument,
    /// `pre_session`, `follow_up` or `daily_mood`.
    pub purpose: DuePurpose,
    /// The session it is before or after; null for a planned session and for daily items.
    #[schema(required = true)]
    pub session_id: Option<Uuid>,
    /// Days after the session, for follow-ups.
    #[schema(required = true)]
    pub day: Option<i64>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: DueStatus,
    /// The assessment that completed it.
    #[schema(required = true)]
    pub completed_by: Option<String>,
}

impl From<DueItem> for DueItemResponse {
    fn from(i: DueItem) -> Self {
        Self {
            instrument: i.instrument,
            purpose: i.purpose,
            session_id: i.session_id.map(|id| id.as_uuid()),
            day: i.day,
            window_start: i.window_start,
            window_end: i.window_end,
            status: i.status,
            completed_by: i.completed_by.map(|id| id.to_string()),
        }
    }
}

/// Completed on time among the items whose windows have closed or that were completed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"completed": 8, "due": 10, "rate": 0.8}))]
pub struct AdherenceResponse {
    pub completed: usize,
    pub due: usize,
    #[schema(required = true)]
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
    #[schema(required = true)]
    pub course_id: Option<Uuid>,
    #[schema(required = true)]
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

async fn due(
    call: Call,
    patient: PatientId,
    at: Option<DateTime<Utc>>,
) -> Result<HttpResponse, ApiError> {
    let (at, course, items) = crate::plan::due(&call, patient, at).await?;
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
        course_id: course.as_ref().map(|c| c.id.as_uuid()),
        plan: course.as_ref().map(|c| c.plan()),
        adherence: AdherenceResponse::of(&items),
        due_now: by_status(DueStatus::DueNow),
        upcoming: by_status(DueStatus::Upcoming),
        missed: by_status(DueStatus::Missed),
        completed: by_status(DueStatus::Completed),
    }))
}

/// What the patient must answer now, what comes next, and what was missed.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), DueQuery),
    responses(
        (status = 200, description = "The due list", body = DueAssessmentsResponse),
        Read,
    )
)]
#[get("/v1/patients/{id}/due-assessments")]
pub async fn get_due_assessments(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<DueQuery>,
) -> Result<HttpResponse, ApiError> {
    due(call, patient.into_inner().into(), query.at).await
}

/// What the caller's app must ask now, what comes next, and what was missed (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    params(DueQuery),
    responses(
        (status = 200, description = "The due list", body = DueAssessmentsResponse),
        List,
    )
)]
#[get("/v1/me/due-assessments")]
pub async fn get_my_due_assessments(
    call: Call,
    query: web::Query<DueQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    due(call, patient, query.at).await
}

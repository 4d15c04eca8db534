//! A patient's outcomes (domain.md §6), read from the stored results that every write keeps
//! current.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::plan::{AdherenceResponse, PlanRecords};
use crate::api::records::patient_event;
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::instrument::Instrument;
use crate::domain::outcomes::BenefitStatus;
use crate::error::ApiError;
use crate::store::{audit, courses, outcomes, patients, sessions, Db, StoreError};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10",
    "started_at": "2026-09-30T09:00:00Z", "instrument": "phq9", "status": "wore_off", "baseline": 20, "nadir": 9, "gain": 11,
    "durability_days": 5.0, "censored": false, "wears_off_within_days": true}))]
pub struct SessionOutcomeResponse {
    pub session_id: String,
    pub course_id: String,
    pub started_at: DateTime<Utc>,
    /// The course's primary instrument, whose severities the arithmetic uses.
    pub instrument: Instrument,
    pub status: BenefitStatus,
    /// Severity of the latest score in the 7 days up to the session.
    pub baseline: Option<i32>,
    /// Lowest severity before the next session (at most 90 days).
    pub nadir: Option<i32>,
    pub gain: Option<i32>,
    /// Days to wear-off, or (censored) to the last score in the window; to one decimal.
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
    pub assessment_id: Option<String>,
    pub response: Option<bool>,
    pub remission: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "instrument": "phq9", "first_session_at": "2026-09-30T09:00:00Z",
    "baseline": 21, "end_of_induction": {"assessment_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "response": true, "remission": false},
    "time_to_response_days": 9.0, "adherence": {"completed": 8, "due": 10, "rate": 0.8}}))]
pub struct CourseOutcomeResponse {
    pub course_id: String,
    pub instrument: Instrument,
    pub first_session_at: Option<DateTime<Utc>>,
    /// Severity of the latest score in the 14 days up to the first session.
    pub baseline: Option<i32>,
    pub end_of_induction: EndOfInduction,
    /// Days from the first session to the first response.
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
    pub patient_id: String,
    /// W, the deployment's wear-off threshold in days.
    pub wear_off_days: f64,
    /// All of the patient's courses' due items completed on time.
    pub adherence: AdherenceResponse,
    /// One entry per completed session, oldest first.
    pub sessions: Vec<SessionOutcomeResponse>,
    pub courses: Vec<CourseOutcomeResponse>,
}

/// The patient's outcomes: per session, benefit and durability; per course, response and
/// remission.
#[utoipa::path(
    tag = "outcomes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The outcomes", body = OutcomesResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/outcomes")]
pub async fn get_outcomes(
    caller: Caller,
    patient: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    outcomes_of(
        caller,
        patient.into_inner().to_string(),
        ctx,
        &db,
        clinical.wear_off_days,
    )
    .await
}

/// The caller's own outcomes (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's outcomes", body = OutcomesResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
    )
)]
#[get("/v1/me/outcomes")]
pub async fn get_my_outcomes(
    caller: Caller,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let patient_id = caller.patient_id.clone().ok_or(ApiError::Forbidden)?;
    outcomes_of(caller, patient_id, ctx, &db, clinical.wear_off_days).await
}

async fn outcomes_of(
    caller: Caller,
    patient_id: String,
    ctx: RequestContext,
    db: &Db,
    wear_off_days: f64,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let response = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            let started: std::collections::HashMap<String, _> =
                sessions::live_of_patient(conn, &patient_id)?
                    .into_iter()
                    .map(|s| (s.id, s.started_at))
                    .collect();
            let mut session_rows = outcomes::sessions_of(conn, &patient_id)?;
            session_rows.sort_by_key(|r| started.get(&r.session_id).copied());
            let sessions = session_rows
                .into_iter()
                .filter_map(|r| {
                    Some(SessionOutcomeResponse {
                        started_at: clock::from_db(*started.get(&r.session_id)?),
                        instrument: r.instrument.parse().ok()?,
                        status: r.status.parse().ok()?,
                        session_id: r.session_id,
                        course_id: r.course_id,
                        baseline: r.baseline,
                        nadir: r.nadir,
                        gain: r.gain,
                        durability_days: r.durability_days,
                        censored: r.censored,
                        wears_off_within_days: r.wears_off_within_days,
                    })
                })
                .collect();
            let now = clock::now();
            let mut all_items = Vec::new();
            let mut adherence_by_course = std::collections::HashMap::new();
            let records = PlanRecords::load(conn, std::slice::from_ref(&patient_id))?;
            for course in courses::of_patient(conn, &patient_id)? {
                let items = records.due_for_course(&course, now);
                adherence_by_course.insert(course.id.clone(), AdherenceResponse::of(&items));
                all_items.extend(items);
            }
            let adherence = AdherenceResponse::of(&all_items);
            let courses = outcomes::courses_of(conn, &patient_id)?
                .into_iter()
                .filter_map(|r| {
                    Some(CourseOutcomeResponse {
                        adherence: adherence_by_course.remove(&r.course_id)?,
                        instrument: r.instrument.parse().ok()?,
                        first_session_at: r.first_session_at.map(clock::from_db),
                        course_id: r.course_id,
                        baseline: r.baseline,
                        end_of_induction: EndOfInduction {
                            assessment_id: r.end_of_induction_assessment_id,
                            response: r.end_of_induction_response,
                            remission: r.end_of_induction_remission,
                        },
                        time_to_response_days: r.time_to_response_days,
                    })
                })
                .collect();
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "outcomes_read",
                    "patient",
                    &patient_id,
                    &patient_id,
                ),
            )?;
            Ok(OutcomesResponse {
                patient_id,
                wear_off_days,
                adherence,
                sessions,
                courses,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

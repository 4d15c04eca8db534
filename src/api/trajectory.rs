//! A patient's score over time, drawn as SVG with bands shaded, infusions marked and the
//! points where benefit wore off.

use actix_web::{get, web, HttpResponse};
use chrono::Duration;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::records::patient_event;
use crate::auth::caller::Caller;
use crate::charts::{trajectory_svg, Trajectory};
use crate::clock;
use crate::domain::instrument::Instrument;
use crate::error::ApiError;
use crate::store::{assessments, audit, courses, outcomes, patients, sessions, Db, StoreError};

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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/trajectory.svg")]
pub async fn get_trajectory(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<TrajectoryQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let patient_id = patient.into_inner().to_string();
    let asked = query.instrument;
    let (instrument, scores, infusions, wore_off) = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            let latest_course = courses::of_patient(conn, &patient_id)?.pop();
            let instrument = asked
                .or_else(|| latest_course.and_then(|c| c.primary_instrument.parse().ok()))
                .unwrap_or(Instrument::Phq9);
            let scores: Vec<_> = assessments::live_of_patient(conn, &patient_id)?
                .into_iter()
                .filter(|a| a.instrument == instrument.as_str())
                .map(|a| (clock::from_db(a.taken_at), a.total))
                .collect();
            let completed: Vec<_> = sessions::live_of_patient(conn, &patient_id)?
                .into_iter()
                .filter(|s| s.status == "completed")
                .collect();
            let wore_off: Vec<_> = outcomes::sessions_of(conn, &patient_id)?
                .into_iter()
                .filter(|o| o.status == "wore_off" && o.instrument == instrument.as_str())
                .filter_map(|o| {
                    let session = completed.iter().find(|s| s.id == o.session_id)?;
                    let micros = (o.durability_days? * 86_400e6).round() as i64;
                    Some(clock::from_db(session.started_at) + Duration::microseconds(micros))
                })
                .collect();
            let infusions = completed
                .iter()
                .map(|s| clock::from_db(s.started_at))
                .collect();
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "trajectory_read",
                    "patient",
                    &patient_id,
                    &patient_id,
                ),
            )?;
            Ok((instrument, scores, infusions, wore_off))
        })
        .await?;
    // Durability is stored to a tenth of a day: the wear-off point is the score nearest it.
    let wear_offs = wore_off
        .iter()
        .filter_map(|at| {
            scores
                .iter()
                .min_by_key(|(t, _)| (*t - *at).num_seconds().abs())
                .copied()
        })
        .collect();
    let svg = trajectory_svg(&Trajectory {
        instrument: instrument.definition(),
        scores,
        infusions,
        wear_offs,
    })
    .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

//! A patient's personal durability (domain.md §6a), on the wire: decision support, said so in
//! every answer.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::call::Call;
use crate::charts::{swimmers_svg, SwimmerBar, Swimmers};
use crate::domain::durability::{self, Estimate, Median, Trend};
use crate::domain::ids::{CourseId, PatientId};
use crate::domain::outcomes::BenefitStatus;
use crate::durability::{CourseDurability, InfusionBenefit, PatientDurability};
use crate::error::responses::{Read, RoleOnly};
use crate::error::ApiError;

/// Why an estimate is absent: how many sessions it had and needs.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"have": 2, "need": 3}))]
pub struct TooLittleData {
    pub have: usize,
    pub need: usize,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"days": 9.0, "longer_than_days": null, "too_little_data": null}))]
pub struct MedianResponse {
    /// The Kaplan–Meier median of the recent sessions with benefit, in days.
    #[schema(required = true)]
    pub days: Option<f64>,
    /// Set when the curve never fell to one half: the benefit lasts longer than this.
    #[schema(required = true)]
    pub longer_than_days: Option<f64>,
    #[schema(required = true)]
    pub too_little_data: Option<TooLittleData>,
}

impl From<Estimate<Median>> for MedianResponse {
    fn from(estimate: Estimate<Median>) -> Self {
        let (days, longer_than_days, too_little_data) = match estimate {
            Estimate::Known(Median::Days(d)) => (Some(d), None, None),
            Estimate::Known(Median::LongerThan(d)) => (None, Some(d), None),
            Estimate::TooLittleData { have, need } => {
                (None, None, Some(TooLittleData { have, need }))
            }
        };
        Self {
            days,
            longer_than_days,
            too_little_data,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"days_per_infusion": -1.5, "sessions": 4, "too_little_data": null}))]
pub struct TrendResponse {
    /// Theil–Sen slope of durability against infusion number: positive, lengthening.
    #[schema(required = true)]
    pub days_per_infusion: Option<f64>,
    /// The `wore_off` sessions it rests on.
    #[schema(required = true)]
    pub sessions: Option<usize>,
    #[schema(required = true)]
    pub too_little_data: Option<TooLittleData>,
}

impl From<Estimate<Trend>> for TrendResponse {
    fn from(estimate: Estimate<Trend>) -> Self {
        match estimate {
            Estimate::Known(t) => Self {
                days_per_infusion: Some(t.days_per_infusion),
                sessions: Some(t.sessions),
                too_little_data: None,
            },
            Estimate::TooLittleData { have, need } => Self {
                days_per_infusion: None,
                sessions: None,
                too_little_data: Some(TooLittleData { have, need }),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "infusion_number": 3,
    "started_at": "2026-09-30T09:00:00Z", "status": "wore_off", "gain": 11, "durability_days": 9.0, "censored": false}))]
pub struct InfusionResponse {
    pub session_id: Uuid,
    /// Its number among the course's completed infusions, from 1.
    pub infusion_number: u32,
    pub started_at: DateTime<Utc>,
    pub status: BenefitStatus,
    #[schema(required = true)]
    pub gain: Option<i32>,
    #[schema(required = true)]
    pub durability_days: Option<f64>,
    pub censored: bool,
}

impl From<InfusionBenefit> for InfusionResponse {
    fn from(i: InfusionBenefit) -> Self {
        Self {
            session_id: i.session.as_uuid(),
            infusion_number: i.infusion.number,
            started_at: i.infusion.started_at,
            status: i.infusion.status,
            gain: i.gain,
            durability_days: i.infusion.durability_days,
            censored: i.censored,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"course_id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "infusions": [],
    "personal_median": {"days": 9.0, "longer_than_days": null, "too_little_data": null},
    "trend": {"days_per_infusion": -1.5, "sessions": 4, "too_little_data": null},
    "latest_session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c", "expected_wear_off_at": "2026-10-09T09:00:00Z",
    "next_planned_at": "2026-10-14T00:00:00Z", "expected_gap_days": 4.6, "gap_expected": true,
    "suggested_interval_days": 9}))]
pub struct CourseDurabilityResponse {
    pub course_id: Uuid,
    /// Every completed infusion of the course, oldest first.
    pub infusions: Vec<InfusionResponse>,
    pub personal_median: MedianResponse,
    pub trend: TrendResponse,
    #[schema(required = true)]
    pub latest_session_id: Option<Uuid>,
    /// When the latest infusion's benefit is expected to fade.
    #[schema(required = true)]
    pub expected_wear_off_at: Option<DateTime<Utc>>,
    /// The earliest open planned infusion day after today (at 00:00 UTC).
    #[schema(required = true)]
    pub next_planned_at: Option<DateTime<Utc>>,
    /// Days from the expected wear-off to the next planned infusion; negative, no gap.
    #[schema(required = true)]
    pub expected_gap_days: Option<f64>,
    /// Whether the gap exceeds the deployment's margin.
    pub gap_expected: bool,
    /// The personal median in whole days, within the deployment's bounds.
    #[schema(required = true)]
    pub suggested_interval_days: Option<u32>,
}

impl From<CourseDurability> for CourseDurabilityResponse {
    fn from(c: CourseDurability) -> Self {
        Self {
            course_id: c.course.as_uuid(),
            infusions: c.infusions.into_iter().map(Into::into).collect(),
            personal_median: c.median.into(),
            trend: c.trend.into(),
            latest_session_id: c.latest.map(|s| s.as_uuid()),
            expected_wear_off_at: c.expected_wear_off,
            next_planned_at: c.next_planned,
            expected_gap_days: c.gap_days,
            gap_expected: c.gap_expected,
            suggested_interval_days: c.suggested_interval_days,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"sessions_28_days": 2, "dose_mg_28_days": 70.0, "sessions_90_days": 7, "dose_mg_90_days": 245.0}))]
pub struct ExposureResponse {
    pub sessions_28_days: usize,
    pub dose_mg_28_days: f64,
    pub sessions_90_days: usize,
    pub dose_mg_90_days: f64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"decision_support": durability::DECISION_SUPPORT,
    "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "recent_sessions": 6, "gap_margin_days": 3.0,
    "interval_bounds_days": [7, 56], "courses": [],
    "exposure": {"sessions_28_days": 2, "dose_mg_28_days": 70.0, "sessions_90_days": 7, "dose_mg_90_days": 245.0},
    "charges_to_date_cents": 280000, "charge_per_benefit_week_cents": 31111.11}))]
pub struct DurabilityResponse {
    /// These figures support a clinician's decision; they prescribe nothing.
    pub decision_support: String,
    pub patient_id: Uuid,
    /// R: the recent sessions with benefit of a course the estimates read.
    pub recent_sessions: usize,
    /// G: a gap above this many days is flagged.
    pub gap_margin_days: f64,
    /// The bounds of a suggested maintenance interval, in days.
    pub interval_bounds_days: [u32; 2],
    pub courses: Vec<CourseDurabilityResponse>,
    pub exposure: ExposureResponse,
    pub charges_to_date_cents: i64,
    /// Charges of the sessions with benefit per week of their benefit; none without benefit.
    #[schema(required = true)]
    pub charge_per_benefit_week_cents: Option<f64>,
}

impl From<PatientDurability> for DurabilityResponse {
    fn from(p: PatientDurability) -> Self {
        let e = p.exposure;
        Self {
            decision_support: durability::DECISION_SUPPORT.to_owned(),
            patient_id: p.patient.as_uuid(),
            recent_sessions: p.settings.recent,
            gap_margin_days: p.settings.gap_margin_days,
            interval_bounds_days: [
                p.settings.shortest_interval_days,
                p.settings.longest_interval_days,
            ],
            courses: p.courses.into_iter().map(Into::into).collect(),
            exposure: ExposureResponse {
                sessions_28_days: e.sessions_28_days,
                dose_mg_28_days: e.dose_mg_28_days,
                sessions_90_days: e.sessions_90_days,
                dose_mg_90_days: e.dose_mg_90_days,
            },
            charges_to_date_cents: p.charges_to_date_cents,
            charge_per_benefit_week_cents: p.charge_per_benefit_week_cents,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SwimmersQuery {
    /// The course to draw; the one with the latest infusion when absent.
    pub course_id: Option<Uuid>,
}

/// The swimmer plot of a course as SVG: one bar per infusion from its start to its wear-off
/// (an arrow where the benefit was still there at the last score), coloured by status; the
/// next planned infusion and the expected gap marked. Decision support.
#[utoipa::path(
    tag = "outcomes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), SwimmersQuery),
    responses(
        (status = 200, description = "An SVG document", content_type = "image/svg+xml", body = String),
        Read,
    )
)]
#[get("/v1/patients/{id}/durability.svg")]
pub async fn get_durability_svg(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<SwimmersQuery>,
) -> Result<HttpResponse, ApiError> {
    let figures = crate::durability::of_patient(&call, patient.into_inner().into()).await?;
    let wanted = query.into_inner().course_id.map(CourseId::from);
    let course = match wanted {
        Some(id) => figures.courses.into_iter().find(|c| c.course == id),
        None => figures
            .courses
            .into_iter()
            .filter(|c| !c.infusions.is_empty())
            .max_by_key(|c| c.infusions.last().map(|i| i.infusion.started_at)),
    };
    let swimmers = match course {
        Some(c) => Swimmers {
            bars: c
                .infusions
                .iter()
                .map(|i| SwimmerBar {
                    number: i.infusion.number,
                    start: i.infusion.started_at,
                    status: i.infusion.status,
                    durability_days: i.infusion.durability_days,
                    censored: i.censored,
                })
                .collect(),
            expected_wear_off: c.expected_wear_off,
            next_planned: c.next_planned,
            gap_days: c.gap_days,
            caption: durability::DECISION_SUPPORT,
        },
        None if wanted.is_some() => return Err(ApiError::NotFound),
        None => Swimmers {
            bars: Vec::new(),
            expected_wear_off: None,
            next_planned: None,
            gap_days: None,
            caption: durability::DECISION_SUPPORT,
        },
    };
    let svg = swimmers_svg(&swimmers).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().content_type("image/svg+xml").body(svg))
}

async fn durability_of(call: Call, patient: PatientId) -> Result<HttpResponse, ApiError> {
    let figures = crate::durability::of_patient(&call, patient).await?;
    Ok(HttpResponse::Ok().json(DurabilityResponse::from(figures)))
}

/// How long each of the patient's infusions lasts, per course: the personal median and its
/// trend, the latest infusion's expected wear-off, the gap before the next planned infusion, a
/// suggested maintenance interval, exposure and cost (domain.md §6a). Decision support.
#[utoipa::path(
    tag = "outcomes",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The patient's durability", body = DurabilityResponse),
        Read,
    )
)]
#[get("/v1/patients/{id}/durability")]
pub async fn get_durability(
    call: Call,
    patient: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    durability_of(call, patient.into_inner().into()).await
}

/// The caller's own durability figures (patients).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's durability", body = DurabilityResponse),
        RoleOnly,
    )
)]
#[get("/v1/me/durability")]
pub async fn get_my_durability(call: Call) -> Result<HttpResponse, ApiError> {
    let patient = call.own_patient()?;
    durability_of(call, patient).await
}

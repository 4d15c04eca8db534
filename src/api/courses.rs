//! Courses of treatment and their schedules (domain.md §2), on the wire.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::{Body, IfMatch, IfMatchHeader, Patch};
use crate::api::flags::FlagResponse;
use crate::api::wire::{
    body_hash, created, list_of, patched, versioned, PageQuery, Paged, Patchable, RecordQuery,
};
use crate::call::Call;
use crate::clock;
use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::plan::MeasurementPlan;
use crate::domain::schedule::{Phase, Protocol, SlotStatus};
use crate::error::responses::{CreateUnder, Read, Update};
use crate::error::ApiError;
use crate::records::courses::{Course, CourseDraft};
use crate::records::{self, id_for};
use crate::store::courses::CourseRow;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "indication": "treatment_resistant_depression",
    "protocol": "standard_induction", "start_date": "2026-09-30"}))]
pub struct CreateCourseRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    /// One of the patient's indications.
    pub indication: Indication,
    #[serde(default = "standard")]
    pub protocol: Protocol,
    /// Defaults by indication: depression kinds and bipolar `phq9`, anxiety `gad7`, OCD
    /// `ybocs`, PTSD `pcl5`, pain kinds `pain_nrs`. Never `cadss`.
    pub primary_instrument: Option<Instrument>,
    /// Day 0 of the schedule.
    pub start_date: NaiveDate,
    /// The planned dates of a `custom` course; absent for `standard_induction`.
    pub planned_dates: Option<Vec<NaiveDate>>,
    /// A closed course takes no more sessions by default.
    #[serde(default)]
    pub closed: bool,
    /// What the app must ask and when; the default plan when absent.
    pub measurement_plan: Option<MeasurementPlan>,
}

fn standard() -> Protocol {
    Protocol::StandardInduction
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"planned_date": "2026-10-02", "phase": "induction", "status": "filled", "session_id": "1c4e2a9b-7f3d-4e8a-9b1c-2d3e4f5a6b7c"}))]
pub struct SlotResponse {
    pub planned_date: NaiveDate,
    pub phase: Phase,
    /// `filled` by a completed session within ±3 days, `open`, or `missed` (more than 3 days
    /// overdue).
    pub status: SlotStatus,
    #[schema(required = true)]
    pub session_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": [], "id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "indication": "treatment_resistant_depression", "protocol": "standard_induction", "primary_instrument": "phq9",
    "start_date": "2026-09-30", "planned_dates": null, "closed": false,
    "measurement_plan": {"pre_session_hours": 24, "follow_up_days": [1, 3, 7, 14], "daily_mood": true, "first_day_window_hours": 12, "window_hours": 24},
    "slots": [{"planned_date": "2026-09-30", "phase": "induction", "status": "open", "session_id": null}],
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct CourseResponse {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub indication: Indication,
    pub protocol: Protocol,
    pub primary_instrument: Instrument,
    pub start_date: NaiveDate,
    #[schema(required = true)]
    pub planned_dates: Option<Vec<NaiveDate>>,
    pub closed: bool,
    /// The schedule as of now: every planned slot and what became of it.
    pub slots: Vec<SlotResponse>,
    /// The flags on the course itself (a contraindication); missed slots are on the worklist.
    pub flags: Vec<FlagResponse>,
    /// What the app must ask and when.
    pub measurement_plan: MeasurementPlan,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl CreateCourseRequest {
    pub fn draft(self) -> CourseDraft {
        CourseDraft {
            indication: self.indication,
            protocol: self.protocol,
            primary_instrument: self.primary_instrument,
            start_date: self.start_date,
            planned_dates: self.planned_dates,
            closed: self.closed,
            measurement_plan: self.measurement_plan,
        }
    }
}

/// The request form of a stored course, which a merge patch changes.
impl Patchable for CreateCourseRequest {
    const PATCH: &'static str = "CoursePatch";
}

impl From<&CourseRow> for CreateCourseRequest {
    fn from(row: &CourseRow) -> Self {
        CreateCourseRequest {
            id: None,
            indication: row.indication,
            protocol: row.protocol,
            primary_instrument: Some(row.primary_instrument),
            start_date: row.start_date,
            planned_dates: row.planned_dates.as_ref().map(|d| d.0.clone()),
            closed: row.closed,
            measurement_plan: row.measurement_plan.as_ref().map(|p| p.0.clone()),
        }
    }
}

impl From<Course> for CourseResponse {
    fn from(course: Course) -> Self {
        let row = course.recorded.record;
        Self {
            flags: course.recorded.flags.into_iter().map(Into::into).collect(),
            slots: course
                .slots
                .into_iter()
                .map(|s| SlotResponse {
                    planned_date: s.planned_date,
                    phase: s.phase,
                    status: s.status,
                    session_id: s.session_id.map(|id| id.as_uuid()),
                })
                .collect(),
            measurement_plan: row.plan(),
            id: row.id.as_uuid(),
            patient_id: row.patient_id.as_uuid(),
            indication: row.indication,
            protocol: row.protocol,
            primary_instrument: row.primary_instrument,
            start_date: row.start_date,
            planned_dates: row.planned_dates.map(|d| d.0),
            closed: row.closed,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Plans a course for a patient.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    request_body = CreateCourseRequest,
    responses(
        (status = 201, description = "Created", body = CourseResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = CourseResponse),
        CreateUnder,
    )
)]
#[post("/v1/patients/{id}/courses")]
pub async fn create_course(
    call: Call,
    patient: web::Path<Uuid>,
    body: Body<CreateCourseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (id, hash) = (id_for(body.id), body_hash(&body));
    let patient = patient.into_inner().into();
    let made = records::create::<CourseRow>(&call, patient, id, body.draft(), hash).await?;
    Ok(created(made, CourseResponse::from))
}

/// Lists a patient's courses, oldest first. `from` and `to` apply to when a course was
/// planned; `updated_since` returns the courses changed since, in order of change.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of courses", body = Paged<CourseResponse>),
        Read,
    )
)]
#[get("/v1/patients/{id}/courses")]
pub async fn list_courses(
    call: Call,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let patient = patient.into_inner().into();
    list_of::<CourseRow, CourseResponse>(&call, patient, &query, &page).await
}

/// One course, with its schedule.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The course's id")),
    responses(
        (status = 200, description = "The course", body = CourseResponse,
            headers(("ETag" = String, description = "The course's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/courses/{id}")]
pub async fn get_course(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let course = records::read::<CourseRow>(&call, id.into_inner().into()).await?;
    Ok(versioned(
        course.recorded.record.version,
        CourseResponse::from(course),
    ))
}

/// Changes a course: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The course's id"), IfMatchHeader),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"closed": true})),
    responses(
        (status = 200, description = "The changed course", body = CourseResponse,
            headers(("ETag" = String, description = "The course's new version"))),
        Update,
    )
)]
#[patch("/v1/courses/{id}")]
pub async fn update_course(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    patch: Patch<CreateCourseRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = move |current: &CourseRow| {
        Ok(patched(&CreateCourseRequest::from(current), &patch)?.draft())
    };
    let id = id.into_inner().into();
    let course = records::update::<CourseRow>(&call, id, expected, change).await?;
    Ok(versioned(
        course.recorded.record.version,
        CourseResponse::from(course),
    ))
}

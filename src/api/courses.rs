//! Courses of treatment and their schedules (domain.md §2).

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::RequestContext;
use crate::api::flags::{flags_by_record, FlagResponse};
use crate::api::idempotent::{created_or_replayed, Creation};
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::{
    body_hash, by_change, optional, patched, patient_event, MergePatch, RecordQuery,
};
use crate::api::users::if_match;
use crate::auth::caller::Caller;
use crate::clock;
use crate::config::ClinicalSettings;
use crate::domain::instrument::Instrument;
use crate::domain::patient::Indication;
use crate::domain::plan::MeasurementPlan;
use crate::domain::schedule::{self, Phase, Protocol, SlotStatus};
use crate::domain::time;
use crate::error::ApiError;
use crate::evaluation;
use crate::store::courses::{self, CourseRow};
use crate::store::{audit, patients, sessions, Db, DbConnection, StoreError};

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
    pub session_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"flags": [], "id": "9b2f7c1e-1d0a-4b53-9f3e-5d8c2a7e6b10", "patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "indication": "treatment_resistant_depression", "protocol": "standard_induction", "primary_instrument": "phq9",
    "start_date": "2026-09-30", "planned_dates": null, "closed": false,
    "measurement_plan": {"pre_session_hours": 24, "follow_up_days": [1, 3, 7, 14], "daily_mood": true, "first_day_window_hours": 12, "window_hours": 24},
    "slots": [{"planned_date": "2026-09-30", "phase": "induction", "status": "open", "session_id": null}],
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct CourseResponse {
    pub id: String,
    pub patient_id: String,
    pub indication: Indication,
    pub protocol: Protocol,
    pub primary_instrument: Instrument,
    pub start_date: NaiveDate,
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

/// The course's plan: its own, or the default.
pub fn measurement_plan(row: &CourseRow) -> MeasurementPlan {
    row.measurement_plan
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default()
}

fn planned_dates(row: &CourseRow) -> Option<Vec<NaiveDate>> {
    row.planned_dates
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
}

/// The response, with the schedule computed from the course's completed sessions.
pub fn course_response(
    conn: &mut DbConnection,
    row: CourseRow,
) -> Result<CourseResponse, StoreError> {
    let completed: Vec<(String, NaiveDate)> = sessions::completed_in_course(conn, &row.id)?
        .into_iter()
        .map(|s| (s.id, s.started_at.date()))
        .collect();
    let protocol: Protocol = row.protocol.parse().unwrap_or(Protocol::Custom);
    let dates = planned_dates(&row);
    let slots = schedule::slots(
        protocol,
        row.start_date,
        dates.as_deref().unwrap_or_default(),
        &completed,
        clock::now().date_naive(),
    )
    .into_iter()
    .map(|s| SlotResponse {
        planned_date: s.planned_date,
        phase: s.phase,
        status: s.status,
        session_id: s.session_id,
    })
    .collect();
    let flags = flags_by_record(conn, std::slice::from_ref(&row.id))?
        .remove(&row.id)
        .unwrap_or_default();
    Ok(CourseResponse {
        flags,
        measurement_plan: measurement_plan(&row),
        indication: row.indication.parse().unwrap_or(Indication::Other),
        primary_instrument: row.primary_instrument.parse().unwrap_or(Instrument::Phq9),
        protocol,
        planned_dates: dates,
        slots,
        id: row.id,
        patient_id: row.patient_id,
        start_date: row.start_date,
        closed: row.closed,
        created_at: clock::from_db(row.created_at),
        updated_at: clock::from_db(row.updated_at),
        version: row.version,
    })
}

fn as_request(row: &CourseRow) -> CreateCourseRequest {
    CreateCourseRequest {
        id: None,
        indication: row.indication.parse().unwrap_or(Indication::Other),
        protocol: row.protocol.parse().unwrap_or(Protocol::Custom),
        primary_instrument: row.primary_instrument.parse().ok(),
        start_date: row.start_date,
        planned_dates: planned_dates(row),
        closed: row.closed,
        measurement_plan: row
            .measurement_plan
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok()),
    }
}

/// Checks a course request against the patient's indications and the protocol's rules.
fn build(
    body: &CreateCourseRequest,
    id: String,
    patient_indications: &[String],
    existing: Option<&CourseRow>,
) -> Result<CourseRow, ApiError> {
    if !patient_indications
        .iter()
        .any(|i| i == body.indication.as_str())
    {
        return Err(ApiError::invalid(
            "indication",
            "must be one of the patient's indications",
        ));
    }
    let instrument = body
        .primary_instrument
        .unwrap_or_else(|| body.indication.default_instrument());
    if !instrument.definition().is_outcome {
        return Err(ApiError::invalid(
            "primary_instrument",
            "must be an outcome instrument (not cadss)",
        ));
    }
    let today = clock::now().date_naive();
    time::planned("start_date", body.start_date, today)?;
    for (i, date) in body.planned_dates.iter().flatten().enumerate() {
        time::planned(&format!("planned_dates.{i}"), *date, today)?;
    }
    let planned_dates = match (body.protocol, &body.planned_dates) {
        (Protocol::Custom, Some(dates)) => Some(schedule::custom_dates(dates)?),
        (Protocol::Custom, None) => {
            return Err(ApiError::invalid(
                "planned_dates",
                "are required for a custom course",
            ))
        }
        (Protocol::StandardInduction, Some(_)) => {
            return Err(ApiError::invalid(
                "planned_dates",
                "are planned by the protocol for standard_induction",
            ))
        }
        (Protocol::StandardInduction, None) => None,
    };
    let now = clock::to_db(clock::now());
    Ok(CourseRow {
        id,
        patient_id: String::new(),
        indication: body.indication.as_str().to_owned(),
        protocol: body.protocol.as_str().to_owned(),
        primary_instrument: instrument.as_str().to_owned(),
        start_date: body.start_date,
        planned_dates: planned_dates.map(|d| serde_json::to_string(&d).unwrap_or_default()),
        closed: body.closed,
        body_hash: existing.map_or_else(|| body_hash(body), |c| c.body_hash.clone()),
        created_at: existing.map_or(now, |c| c.created_at),
        updated_at: now,
        version: existing.map_or(1, |c| c.version + 1),
        measurement_plan: body
            .measurement_plan
            .clone()
            .map(|p| {
                p.check()
                    .map(|p| serde_json::to_string(&p).unwrap_or_default())
            })
            .transpose()?,
    })
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients/{id}/courses")]
pub async fn create_course(
    caller: Caller,
    patient: web::Path<Uuid>,
    body: web::Json<CreateCourseRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let patient_id = patient.into_inner().to_string();
    let body = body.into_inner();
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let (creation, response) = db
        .transaction(move |conn| {
            let patient = patients::find(conn, &scope, &patient_id)?;
            let row = CourseRow {
                patient_id: patient_id.clone(),
                ..build(&body, id.clone(), &patient.indications, None)?
            };
            let creation = created_or_replayed(
                conn,
                |conn| optional(courses::find(conn, &scope, &id)),
                |found| found.body_hash == row.body_hash && found.patient_id == patient_id,
                |conn| {
                    courses::insert(conn, &row)?;
                    evaluation::refresh(conn, &clinical, &patient_id)?;
                    audit::record(
                        conn,
                        &patient_event(&ctx, &caller, "course_created", "course", &id, &patient_id),
                    )
                },
            )?;
            let (created, row) = match creation {
                Creation::Created(row) => (true, row),
                Creation::Replayed(row) => (false, row),
            };
            Ok::<_, ApiError>((created, course_response(conn, row)?))
        })
        .await?;
    Ok(if creation {
        HttpResponse::Created().json(response)
    } else {
        HttpResponse::Ok().json(response)
    })
}

/// Lists a patient's courses, oldest first. `from` and `to` apply to when a course was
/// planned; `updated_since` returns the courses changed since, in order of change.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), RecordQuery, PageQuery),
    responses(
        (status = 200, description = "One page of courses", body = Paged<CourseResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/courses")]
pub async fn list_courses(
    caller: Caller,
    patient: web::Path<Uuid>,
    query: web::Query<RecordQuery>,
    page: web::Query<PageQuery>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let patient_id = patient.into_inner().to_string();
    let (window, page) = query.window_and_page(&page)?;
    let change_order = by_change(&window);
    let fetch = page.clone();
    let paged = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            let rows = courses::list(conn, &patient_id, &window, &fetch)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "courses_listed",
                    "patient",
                    &patient_id,
                    &patient_id,
                ),
            )?;
            let keys: Vec<_> = rows
                .iter()
                .map(|r| {
                    (
                        if change_order {
                            r.updated_at
                        } else {
                            r.created_at
                        },
                        r.id.clone(),
                    )
                })
                .collect();
            let responses = rows
                .into_iter()
                .map(|r| course_response(conn, r))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Paged::from_rows(
                responses.into_iter().zip(keys).collect(),
                &fetch,
                |(_, (at, id))| (*at, id.as_str()),
                |(r, _)| r,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(paged))
}

/// One course, with its schedule.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The course's id")),
    responses(
        (status = 200, description = "The course", body = CourseResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/courses/{id}")]
pub async fn get_course(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinical_scope()?;
    let id = id.into_inner().to_string();
    let response = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let row = courses::find(conn, &scope, &id)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, "course_read", "course", &id, &row.patient_id),
            )?;
            course_response(conn, row)
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

/// Changes a course: a JSON merge patch (RFC 7396) of the create request's fields.
#[utoipa::path(
    tag = "courses",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The course's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body(content = Object, description = "The fields to change (JSON merge patch)", example = json!({"closed": true})),
    responses(
        (status = 200, description = "The changed course", body = CourseResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/courses/{id}")]
pub async fn update_course(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<MergePatch>,
    req: HttpRequest,
    ctx: RequestContext,
    db: web::Data<Db>,
    clinical: web::Data<ClinicalSettings>,
) -> Result<HttpResponse, ApiError> {
    let clinical = **clinical;
    let scope = caller.clinician_scope()?;
    let expected = if_match(&req)?;
    let id = id.into_inner().to_string();
    let response = db
        .transaction(move |conn| {
            let current = courses::find(conn, &scope, &id)?;
            if expected.is_some_and(|v| v != current.version) {
                return Err(ApiError::PreconditionFailed);
            }
            let patient = patients::find(conn, &scope, &current.patient_id)?;
            let request = patched(&as_request(&current), &body)?;
            let row = CourseRow {
                patient_id: current.patient_id.clone(),
                ..build(&request, id.clone(), &patient.indications, Some(&current))?
            };
            courses::replace(conn, &row, current.version)?;
            evaluation::refresh(conn, &clinical, &current.patient_id)?;
            audit::record(
                conn,
                &patient_event(
                    &ctx,
                    &caller,
                    "course_updated",
                    "course",
                    &id,
                    &current.patient_id,
                ),
            )?;
            let row = courses::find(conn, &scope, &id)?;
            Ok(course_response(conn, row)?)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", response.version),
        ))
        .json(response))
}

//! Clinics (administrators only).

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::context::{Audited, RequestContext};
use crate::api::idempotent::{created_or_replayed, Creation};
use crate::api::pagination::{PageQuery, Paged};
use crate::api::records::rules_broken;
use crate::auth::caller::Caller;
use crate::clock;
use crate::domain::account::Role;
use crate::domain::text::{self, Shape};
use crate::error::ApiError;
use crate::store::clinics::{self, ClinicRow, NewClinicRow};
use crate::store::{audit, Db};

/// Shown by the app at once when a questionnaire raises a suicidal-ideation flag, until the
/// clinic sets its own.
pub const DEFAULT_CRISIS_MESSAGE: &str =
    "If you are thinking about harming yourself or ending your life, \
call your local emergency number now, or your clinic's crisis line.";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Harbour Ketamine Clinic",
    "crisis_message": "Call 988 (Suicide & Crisis Lifeline) or 911 now."}))]
pub struct CreateClinicRequest {
    /// Client-generated id; repeating the create with the same id and body returns the stored
    /// clinic.
    pub id: Option<Uuid>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Shown to a patient whose answers raise a suicidal-ideation flag.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub crisis_message: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "name": "Harbour Ketamine Clinic",
    "crisis_message": "Call 988 (Suicide & Crisis Lifeline) or 911 now.",
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct ClinicResponse {
    pub id: String,
    pub name: String,
    pub crisis_message: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl From<ClinicRow> for ClinicResponse {
    fn from(row: ClinicRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            crisis_message: row.crisis_message,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Creates a clinic.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    request_body = CreateClinicRequest,
    responses(
        (status = 201, description = "Created", body = ClinicResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = ClinicResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/clinics")]
pub async fn create_clinic(
    caller: Caller,
    body: web::Json<CreateClinicRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let body = body.into_inner();
    let name = text::required("name", &body.name, Shape::Line, 200);
    let crisis_message = text::required(
        "crisis_message",
        body.crisis_message
            .as_deref()
            .unwrap_or(DEFAULT_CRISIS_MESSAGE),
        Shape::Note,
        2000,
    );
    let (name, crisis_message) = match (name, crisis_message) {
        (Ok(name), Ok(message)) => (name, message),
        (name, message) => {
            return Err(rules_broken(
                name.err().into_iter().chain(message.err()).collect(),
            ))
        }
    };
    let id = body.id.unwrap_or_else(Uuid::new_v4).to_string();
    let creation = db
        .run(move |conn| {
            created_or_replayed(
                conn,
                |conn| clinics::find(conn, &id),
                |row| row.name == name && row.crisis_message == crisis_message,
                |conn| {
                    let now = clock::to_db(clock::now());
                    clinics::insert(
                        conn,
                        &NewClinicRow {
                            id: &id,
                            name: &name,
                            crisis_message: &crisis_message,
                            created_at: now,
                            updated_at: now,
                        },
                    )?;
                    let event = ctx.audit(
                        Some(&caller),
                        Audited {
                            action: "clinic_created",
                            resource_type: "clinic",
                            resource_id: Some(&id),
                            patient_id: None,
                        },
                    );
                    audit::record(conn, &event)
                },
            )
        })
        .await?;
    Ok(match creation {
        Creation::Created(row) => HttpResponse::Created().json(ClinicResponse::from(row)),
        Creation::Replayed(row) => HttpResponse::Ok().json(ClinicResponse::from(row)),
    })
}

/// Lists clinics, oldest first.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "One page of clinics", body = Paged<ClinicResponse>),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/clinics")]
pub async fn list_clinics(
    caller: Caller,
    query: web::Query<PageQuery>,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    let page = query.page()?;
    let fetch = page.clone();
    let rows = db.run(move |conn| clinics::list(conn, &fetch)).await?;
    Ok(HttpResponse::Ok().json(Paged::from_rows(
        rows,
        &page,
        |r| (r.created_at, r.id.as_str()),
        ClinicResponse::from,
    )))
}

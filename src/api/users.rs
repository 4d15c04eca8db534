//! Accounts on the wire: staff accounts (administrators), and a patient's app account as
//! their clinicians see it. Patients' accounts come from invites.

use actix_web::{get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::accounts::{self, StaffDraft, UserChange};
use crate::api::extract::{Body, IfMatch, IfMatchHeader};
use crate::api::wire::{created, present, versioned, PageQuery, Paged};
use crate::call::Call;
use crate::clock;
use crate::domain::account::Role;
use crate::error::responses::{List, Read, Update};
use crate::error::ApiError;
use crate::records::id_for;
use crate::store::users::{UserFilter, UserRow};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "email": "ana.moreno@clinic.example",
    "password": "lantern orbit kettle", "role": "clinician", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7"}))]
pub struct CreateUserRequest {
    /// Client-generated id for an idempotent create.
    pub id: Option<Uuid>,
    pub email: String,
    /// The initial password: 12–128 characters, not common.
    pub password: String,
    /// `admin`, `clinician` or `researcher`; patients join through an invite.
    pub role: Role,
    /// Required for clinicians; absent for administrators and researchers.
    pub clinic_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "0f8fad5b-d9cb-469f-a165-70867728950e", "email": "ana.moreno@clinic.example",
    "role": "clinician", "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "disabled": false,
    "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub role: String,
    #[schema(required = true)]
    pub clinic_id: Option<Uuid>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send as If-Match when changing the account.
    pub version: i32,
}

impl From<UserRow> for UserResponse {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            email: row.email,
            role: row.role.as_str().to_owned(),
            clinic_id: row.clinic_id.map(|c| c.as_uuid()),
            disabled: row.disabled,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

/// Creates a staff account.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = UserResponse),
        (status = 200, description = "A repeat of an earlier create with the same id and body", body = UserResponse),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 401, response = crate::error::responses::Unauthorized),
        (status = 403, response = crate::error::responses::Forbidden),
        (status = 409, response = crate::error::responses::Conflict),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 429, response = crate::error::responses::TooManyRequests),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/users")]
pub async fn create_user(
    call: Call,
    body: Body<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let draft = StaffDraft {
        email: body.email,
        password: body.password,
        role: body.role,
        clinic: body.clinic_id.map(Into::into),
    };
    let made = accounts::create_staff(&call, id_for(body.id), draft).await?;
    Ok(created(made, UserResponse::from))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    pub role: Option<Role>,
    pub clinic_id: Option<Uuid>,
}

/// Lists accounts, oldest first.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(UserListQuery, PageQuery),
    responses(
        (status = 200, description = "One page of accounts", body = Paged<UserResponse>),
        List,
    )
)]
#[get("/v1/users")]
pub async fn list_users(
    call: Call,
    filter: web::Query<UserListQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.page()?;
    let filter = UserFilter {
        role: filter.role,
        clinic_id: filter.clinic_id.map(Into::into),
    };
    let rows = accounts::list_users(&call, filter, page.clone()).await?;
    let key = |r: &UserRow| (r.created_at, r.id.to_string());
    Ok(HttpResponse::Ok().json(Paged::from_rows(rows, &page, key, UserResponse::from)))
}

/// One account.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id")),
    responses(
        (status = 200, description = "The account", body = UserResponse,
            headers(("ETag" = String, description = "The account's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/users/{id}")]
pub async fn get_user(call: Call, id: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let row = accounts::find_user(&call, id.into_inner().into()).await?;
    Ok(versioned(row.version, UserResponse::from(row)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": true}))]
pub struct UpdateUserRequest {
    pub role: Option<Role>,
    /// A clinic id, or null to remove the clinic (with a role that has none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub clinic_id: Option<Option<Uuid>>,
    /// A disabled account cannot sign in, its refresh tokens are revoked at once, and its
    /// access tokens stop working on their next use.
    pub disabled: Option<bool>,
}

/// Changes an account's role, clinic or disabled state. A patient's app account can only be
/// disabled or enabled again. Disabling revokes every token the account holds at once.
#[utoipa::path(
    tag = "administration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The account's id"), IfMatchHeader),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "The changed account", body = UserResponse,
            headers(("ETag" = String, description = "The account's new version"))),
        Update,
    )
)]
#[patch("/v1/users/{id}")]
pub async fn update_user(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    body: Body<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = UserChange {
        role: body.role,
        clinic: body.clinic_id.map(|c| c.map(Into::into)),
        disabled: body.disabled,
    };
    let row = accounts::update_user(&call, id.into_inner().into(), expected, change).await?;
    Ok(versioned(row.version, UserResponse::from(row)))
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "9a1b2c3d-0000-4000-8000-000000000001", "email": "sam@example.org",
    "disabled": false, "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct PatientAccountResponse {
    pub id: Uuid,
    pub email: String,
    /// A disabled account cannot sign in, and every token it held stopped working.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send as If-Match when changing the account.
    pub version: i32,
}

impl From<UserRow> for PatientAccountResponse {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id.as_uuid(),
            email: row.email,
            disabled: row.disabled,
            created_at: clock::from_db(row.created_at),
            updated_at: clock::from_db(row.updated_at),
            version: row.version,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"disabled": true}))]
pub struct UpdatePatientAccountRequest {
    /// True shuts the app out at once: it cannot sign in and its tokens stop working.
    /// False lets it sign in again (with a new sign-in; old tokens stay revoked).
    pub disabled: bool,
}

/// The patient's app account.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The app account", body = PatientAccountResponse,
            headers(("ETag" = String, description = "The account's version: send it as If-Match to change it"))),
        Read,
    )
)]
#[get("/v1/patients/{id}/account")]
pub async fn get_patient_account(
    call: Call,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let row = accounts::patient_account(&call, id.into_inner().into()).await?;
    Ok(versioned(row.version, PatientAccountResponse::from(row)))
}

/// Disables the patient's app account (a lost or stolen phone), or enables it again.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id"), IfMatchHeader),
    request_body = UpdatePatientAccountRequest,
    responses(
        (status = 200, description = "The changed account", body = PatientAccountResponse,
            headers(("ETag" = String, description = "The account's new version"))),
        Update,
    )
)]
#[patch("/v1/patients/{id}/account")]
pub async fn update_patient_account(
    call: Call,
    id: web::Path<Uuid>,
    IfMatch(expected): IfMatch,
    body: Body<UpdatePatientAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    let patient = id.into_inner().into();
    let row = accounts::set_patient_access(&call, patient, expected, body.disabled).await?;
    Ok(versioned(row.version, PatientAccountResponse::from(row)))
}

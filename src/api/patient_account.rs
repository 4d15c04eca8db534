//! A patient's app account as their clinic sees it: which account registered, and whether it
//! may sign in. A stolen or lost phone is shut out here at once (clinicians of the patient's
//! clinic; administrators do the same through `/v1/users/{id}`).

use actix_web::{get, patch, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts;
use crate::api::context::RequestContext;
use crate::api::records::patient_event;
use crate::api::users::if_match;
use crate::auth::caller::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::store::scope::Scope;
use crate::store::users::{self, UserChanges, UserRow};
use crate::store::{audit, patients, Db, DbConnection, StoreError};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "9a1b2c3d-0000-4000-8000-000000000001", "email": "sam@example.org",
    "disabled": false, "created_at": "2026-09-25T09:30:00Z", "updated_at": "2026-09-25T09:30:00Z", "version": 1}))]
pub struct PatientAccountResponse {
    pub id: String,
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
            id: row.id,
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

/// The patient's app account, within the clinician's scope: 404 when there is none.
fn account_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    patient_id: &str,
) -> Result<UserRow, StoreError> {
    patients::find(conn, scope, patient_id)?;
    let user_id = patients::account_of(conn, patient_id)?.ok_or(StoreError::NotFound)?;
    users::find(conn, &user_id)
}

/// The patient's app account.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 200, description = "The app account", body = PatientAccountResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[get("/v1/patients/{id}/account")]
pub async fn get_patient_account(
    caller: Caller,
    id: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let patient_id = id.into_inner().to_string();
    let account = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let account = account_in_scope(conn, &scope, &patient_id)?;
            let event = patient_event(
                &ctx,
                &caller,
                "patient_account_read",
                "account",
                &account.id,
                &patient_id,
            );
            audit::record(conn, &event)?;
            Ok(account)
        })
        .await?;
    Ok(versioned(account))
}

/// Disables the patient's app account (a lost or stolen phone), or enables it again.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The patient's id"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#, description = "The version the change is based on, such as \"3\"; 412 when stale"),
    ),
    request_body = UpdatePatientAccountRequest,
    responses(
        (status = 200, description = "The changed account", body = PatientAccountResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 412, response = crate::openapi::responses::PreconditionFailed),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[patch("/v1/patients/{id}/account")]
pub async fn update_patient_account(
    caller: Caller,
    id: web::Path<Uuid>,
    body: web::Json<UpdatePatientAccountRequest>,
    req: HttpRequest,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let expected_version = if_match(&req)?;
    let patient_id = id.into_inner().to_string();
    let disabled = body.disabled;
    let account = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let current = account_in_scope(conn, &scope, &patient_id)?;
            let now = clock::to_db(clock::now());
            let changes = UserChanges {
                disabled: Some(disabled),
                ..UserChanges::default()
            };
            users::update(conn, &current.id, expected_version, &changes, now)?;
            if disabled && !current.disabled {
                accounts::revoke_access(conn, &current.id, now)?;
            }
            let action = if disabled {
                "patient_account_disabled"
            } else {
                "patient_account_enabled"
            };
            let event = patient_event(&ctx, &caller, action, "account", &current.id, &patient_id);
            audit::record(conn, &event)?;
            users::find(conn, &current.id)
        })
        .await?;
    Ok(versioned(account))
}

fn versioned(row: UserRow) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::ETAG,
            format!("\"{}\"", row.version),
        ))
        .json(PatientAccountResponse::from(row))
}

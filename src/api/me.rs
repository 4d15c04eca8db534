//! The signed-in caller's own account, on the wire.

use actix_web::{get, post, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::Body;
use crate::call::Call;
use crate::domain::account::Role;
use crate::error::responses::SignedIn;
use crate::error::ApiError;
use crate::{accounts, sign_in};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "email": "ana.moreno@clinic.example",
    "role": "clinician",
    "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "patient_id": null
}))]
pub struct MeResponse {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// The caller's clinic; null for administrators and researchers.
    #[schema(required = true)]
    pub clinic_id: Option<Uuid>,
    /// The caller's patient record, for a patient's app account; null otherwise.
    #[schema(required = true)]
    pub patient_id: Option<Uuid>,
}

/// The caller's account.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = MeResponse),
        SignedIn,
    )
)]
#[get("/v1/me")]
pub async fn get_me(call: Call) -> Result<HttpResponse, ApiError> {
    let (account, patient) = accounts::me(&call).await?;
    Ok(HttpResponse::Ok().json(MeResponse {
        id: account.id.as_uuid(),
        email: account.email,
        role: account.role,
        clinic_id: account.clinic_id.map(|c| c.as_uuid()),
        patient_id: patient.map(|p| p.as_uuid()),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "lantern orbit kettle", "new_password": "tiny grey heron wades"}))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and signs out every one of their sessions: their refresh
/// tokens are revoked and every access token issued before, this request's included, stops
/// working at once. The app signs in again with the new password.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every token of the caller is revoked"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 401, response = crate::error::responses::Unauthorized),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 429, response = crate::error::responses::TooManyRequests),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/me/password")]
pub async fn change_password(
    call: Call,
    body: Body<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    sign_in::change_password(&call, &body.current_password, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Signs the caller out everywhere: every refresh token is revoked and every access token
/// issued so far, this request's included, stops working at once (a lost phone, a shared
/// computer).
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out everywhere"),
        SignedIn,
    )
)]
#[post("/v1/me/sign-out-everywhere")]
pub async fn sign_out_everywhere(call: Call) -> Result<HttpResponse, ApiError> {
    sign_in::sign_out_everywhere(&call).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! The signed-in caller's own account.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::{record_failure, wait_if_throttled, ThrottleKeys};
use crate::api::context::{Audited, RequestContext};
use crate::auth::caller::Caller;
use crate::auth::password::{PasswordHasher, Verified};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::{Password, Role};
use crate::error::ApiError;
use crate::store::{audit, login_failures, refresh_tokens, users, Db, StoreError};

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
    "email": "ana.moreno@clinic.example",
    "role": "clinician",
    "clinic_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "patient_id": null
}))]
pub struct MeResponse {
    pub id: String,
    pub email: String,
    pub role: Role,
    /// The caller's clinic; null for administrators and researchers.
    pub clinic_id: Option<String>,
    /// The caller's patient record, for a patient's app account; null otherwise.
    pub patient_id: Option<String>,
}

/// The caller's account.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = MeResponse),
        (status = 401, response = crate::openapi::responses::Unauthorized),
    )
)]
#[get("/v1/me")]
pub async fn get_me(caller: Caller) -> HttpResponse {
    HttpResponse::Ok().json(MeResponse {
        id: caller.user_id,
        email: caller.email,
        role: caller.role,
        clinic_id: caller.clinic_id,
        patient_id: caller.patient_id,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"current_password": "lantern orbit kettle", "new_password": "tiny grey heron wades"}))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's password and signs out every one of their sessions.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every refresh token of the caller is revoked"),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
    )
)]
#[post("/v1/me/password")]
pub async fn change_password(
    caller: Caller,
    body: web::Json<ChangePasswordRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    hasher: web::Data<PasswordHasher>,
    settings: web::Data<AuthSettings>,
) -> Result<HttpResponse, ApiError> {
    // Guessing the current password here is throttled like guessing it at sign-in.
    let throttle_keys = ThrottleKeys::new(&caller.email, &ctx);
    wait_if_throttled(&db, &throttle_keys, &settings).await?;
    let new_password = Password::parse(&body.new_password, &[&caller.email])
        .map_err(|rule| ApiError::invalid("new_password", rule.message()))?;
    let id = caller.user_id.clone();
    let stored = db
        .run(move |conn| users::find(conn, &id))
        .await?
        .password_hash;
    let verified = hasher
        .verify(&body.current_password, Some(&stored))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    if verified == Verified::No {
        let event = ctx.audit(
            Some(&caller),
            audited("password_change_failed", &caller.user_id),
        );
        record_failure(&db, throttle_keys, event).await?;
        return Err(ApiError::invalid("current_password", "is not correct"));
    }
    let hash = hasher
        .hash(&new_password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let event = ctx.audit(Some(&caller), audited("password_changed", &caller.user_id));
    db.transaction(move |conn| -> Result<_, StoreError> {
        let now = clock::to_db(clock::now());
        users::set_password_hash(conn, &caller.user_id, &hash, now)?;
        refresh_tokens::revoke_all_for_user(conn, &caller.user_id, now)?;
        login_failures::clear(conn, &throttle_keys.account)?;
        audit::record(conn, &event)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

fn audited<'a>(action: &'a str, user_id: &'a str) -> Audited<'a> {
    Audited {
        action,
        resource_type: "account",
        resource_id: Some(user_id),
        patient_id: None,
    }
}

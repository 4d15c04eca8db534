//! The signed-in caller's own account.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::accounts;
use crate::api::auth::{begin_attempt, ThrottleKeys};
use crate::api::context::{Audited, RequestContext};
use crate::auth::caller::Caller;
use crate::auth::password::{PasswordHasher, Verified};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::{Password, Role};
use crate::error::ApiError;
use crate::store::{audit, users, Db, StoreError};

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

/// Changes the caller's password and signs out every one of their sessions: their refresh
/// tokens are revoked and every access token issued before, this request's included, stops
/// working at once. The app signs in again with the new password.
#[utoipa::path(
    tag = "me",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed; every token of the caller is revoked"),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 503, response = crate::openapi::responses::Unavailable),
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
    let new_password = Password::parse(&body.new_password, &[&caller.email])
        .map_err(|rule| ApiError::invalid("new_password", rule.message()))?;
    // Guessing the current password here is throttled like guessing it at sign-in.
    let throttle = ThrottleKeys::new(Some(&caller.email), &ctx);
    let id = caller.user_id.clone();
    let (stored, admitted) =
        begin_attempt(&hasher, &db, &settings, (&ctx, &throttle), move |conn| {
            users::find(conn, &id)
        })
        .await?;
    let stored = stored.password_hash;
    let verified = admitted
        .verify(&body.current_password, Some(&stored))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    if verified == Verified::No {
        let event = ctx.audit(
            Some(&caller),
            audited("password_change_failed", &caller.user_id),
        );
        db.run(move |conn| audit::record(conn, &event)).await?;
        return Err(ApiError::invalid("current_password", "is not correct"));
    }
    let hash = admitted
        .hash(&new_password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    let event = ctx.audit(Some(&caller), audited("password_changed", &caller.user_id));
    db.transaction(move |conn| -> Result<_, StoreError> {
        let now = clock::to_db(clock::now());
        users::set_password_hash(conn, &caller.user_id, &hash, now)?;
        accounts::revoke_access(conn, &caller.user_id, now)?;
        throttle.settle_success(conn)?;
        audit::record(conn, &event)
    })
    .await?;
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
        (status = 401, response = crate::openapi::responses::Unauthorized),
    )
)]
#[post("/v1/me/sign-out-everywhere")]
pub async fn sign_out_everywhere(
    caller: Caller,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let event = ctx.audit(
        Some(&caller),
        audited("signed_out_everywhere", &caller.user_id),
    );
    db.transaction(move |conn| -> Result<_, StoreError> {
        accounts::revoke_access(conn, &caller.user_id, clock::to_db(clock::now()))?;
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

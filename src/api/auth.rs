//! Sign-in, token refresh and sign-out (api.md, Authentication), and the invites that link a
//! patient's app to their record, on the wire.

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::accounts;
use crate::api::extract::Body;
use crate::call::{Call, Origin, Services};
use crate::error::responses::Read;
use crate::error::ApiError;
use crate::sign_in::{self, Registration, Tokens};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana.moreno@clinic.example", "password": "lantern orbit kettle"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// How the access token is presented: in the Authorization header as `Bearer` (RFC 6750).
#[derive(Serialize, ToSchema)]
pub enum TokenType {
    Bearer,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({
    "access_token": "eyJhbGciOiJIUzI1NiIsImtpZCI6IjFhMmIzYzRkNWU2ZjcwODEiLCJ0eXAiOiJKV1QifQ.e30.sig",
    "token_type": "Bearer",
    "expires_in": 900,
    "refresh_token": "q9Jx3hV0n2m1uYb6Xo4c8kPz7Ww5tRr2Lh0eSgAaDfE"
}))]
pub struct TokenResponse {
    /// A JWT for the Authorization header.
    pub access_token: String,
    pub token_type: TokenType,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Single use: exchange it at /v1/auth/refresh for a new pair.
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"refresh_token": "q9Jx3hV0n2m1uYb6Xo4c8kPz7Ww5tRr2Lh0eSgAaDfE"}))]
pub struct RefreshRequest {
    pub refresh_token: String,
}

impl From<Tokens> for TokenResponse {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: TokenType::Bearer,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

/// Signs in with an email and a password.
///
/// A wrong password and an unknown email get the same answer, in content and in time. Each
/// attempt is counted before the password is checked; after repeated failures the account
/// (and, at a higher limit, the client address) must wait: 429 with Retry-After, even for the
/// right password. While too many sign-ins are being checked the answer is 503 with
/// Retry-After, and no password is checked.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 401, response = crate::error::responses::InvalidCredentials),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 429, response = crate::error::responses::TooManyRequests),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/auth/login")]
pub async fn login(
    services: web::Data<Services>,
    origin: Origin,
    body: Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sign_in::login(&services, &origin, &body.email, &body.password).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(tokens)))
}

/// Exchanges a refresh token for a new pair; the presented token is spent.
///
/// Presenting a token that was already spent means it was stolen or replayed: the whole family
/// (the sign-in and all its rotations) is revoked and the event is audited.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenResponse),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 401, response = crate::error::responses::Unauthorized),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/auth/refresh")]
pub async fn refresh(
    services: web::Data<Services>,
    origin: Origin,
    body: Body<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let tokens = sign_in::refresh(&services, &origin, &body.refresh_token).await?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(tokens)))
}

/// Signs out: revokes the given refresh token's family.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out; the family is revoked"),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 401, response = crate::error::responses::Unauthorized),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/auth/logout")]
pub async fn logout(call: Call, body: Body<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    sign_in::logout(&call, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"invite_code": "hV3k9Qz2LmP8xR4tYw6n", "expires_at": "2026-10-02T09:30:00Z"}))]
pub struct InviteResponse {
    /// Give this to the patient; it is shown once and stored only as a hash.
    pub invite_code: String,
    pub expires_at: DateTime<Utc>,
}

/// Issues a single-use invite, valid for 7 days, for the patient's app.
#[utoipa::path(
    tag = "patients",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The patient's id")),
    responses(
        (status = 201, description = "Issued", body = InviteResponse),
        Read,
    )
)]
#[post("/v1/patients/{id}/invites")]
pub async fn create_invite(call: Call, patient: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let (invite_code, expires_at) = accounts::invite(&call, patient.into_inner().into()).await?;
    Ok(HttpResponse::Created().json(InviteResponse {
        invite_code,
        expires_at,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"invite_code": "hV3k9Qz2LmP8xR4tYw6n", "email": "sam@example.org", "password": "tiny grey heron wades"}))]
pub struct RegisterRequest {
    pub invite_code: String,
    pub email: String,
    pub password: String,
}

/// Creates a patient's app account from an invite and signs it in.
///
/// The invite is checked before the password is hashed: a wrong code costs no hash. Wrong
/// codes count against the client address like failed sign-ins (429 with Retry-After once
/// the address has used its attempts).
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = TokenResponse),
        (status = 400, response = crate::error::responses::BadRequest),
        (status = 409, response = crate::error::responses::Conflict),
        (status = 422, response = crate::error::responses::Unprocessable),
        (status = 429, response = crate::error::responses::TooManyRequests),
        (status = 503, response = crate::error::responses::Unavailable),
    )
)]
#[post("/v1/auth/register")]
pub async fn register(
    services: web::Data<Services>,
    origin: Origin,
    body: Body<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let registration = Registration {
        invite_code: &body.invite_code,
        email: &body.email,
        password: &body.password,
    };
    let tokens = sign_in::register(&services, &origin, registration).await?;
    Ok(HttpResponse::Created().json(TokenResponse::from(tokens)))
}

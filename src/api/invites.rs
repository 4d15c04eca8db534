//! Linking a patient's app to their record: a clinician issues a single-use invite, the patient
//! registers with it.

use actix_web::{post, web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::auth::{begin_attempt, store_refresh_token, tokens, ThrottleKeys, TokenResponse};
use crate::api::context::{Audited, RequestContext};
use crate::api::records::patient_event;
use crate::auth::caller::Caller;
use crate::auth::password::PasswordHasher;
use crate::auth::token::{hash_refresh_token, RefreshToken, TokenKeys};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::{Email, Password, Role};
use crate::error::{ApiError, FieldError};
use crate::store::invites::{self, InviteRow};
use crate::store::scope::Scope;
use crate::store::{audit, patients, users, Db};

/// How long an invite can be used.
pub const INVITE_LIFETIME: Duration = Duration::days(7);

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
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 403, response = crate::openapi::responses::Forbidden),
        (status = 404, response = crate::openapi::responses::NotFound),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/patients/{id}/invites")]
pub async fn create_invite(
    caller: Caller,
    patient: web::Path<Uuid>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let scope = caller.clinician_scope()?;
    let patient_id = patient.into_inner().to_string();
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let code = URL_SAFE_NO_PAD.encode(bytes);
    let now = clock::now();
    let expires_at = now + INVITE_LIFETIME;
    let row = InviteRow {
        id: Uuid::new_v4().to_string(),
        patient_id: patient_id.clone(),
        code_hash: hash_refresh_token(&code),
        created_by: caller.user_id.clone(),
        created_at: clock::to_db(now),
        expires_at: clock::to_db(expires_at),
        used_at: None,
    };
    db.transaction(move |conn| {
        patients::find(conn, &scope, &patient_id)?;
        invites::insert(conn, &row)?;
        audit::record(
            conn,
            &patient_event(
                &ctx,
                &caller,
                "invite_created",
                "invite",
                &row.id,
                &patient_id,
            ),
        )
    })
    .await?;
    Ok(HttpResponse::Created().json(InviteResponse {
        invite_code: code,
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 409, response = crate::openapi::responses::Conflict),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 503, response = crate::openapi::responses::Unavailable),
    )
)]
#[post("/v1/auth/register")]
pub async fn register(
    body: web::Json<RegisterRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    hasher: web::Data<PasswordHasher>,
    keys: web::Data<TokenKeys>,
    settings: web::Data<AuthSettings>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut errors = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|rule| errors.push(FieldError::new("email", rule.message())))
        .ok();
    let password = Password::parse(&body.password, &[body.email.as_str()])
        .map_err(|rule| errors.push(FieldError::new("password", rule.message())))
        .ok();
    let code = body.invite_code.trim();
    if !looks_like_an_invite_code(code) {
        errors.push(FieldError::new("invite_code", NOT_AN_INVITE));
    }
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let throttle = ThrottleKeys::new(None, &ctx);
    let code_hash = hash_refresh_token(code);
    let lookup = code_hash.clone();
    let (invite, admitted) =
        begin_attempt(&hasher, &db, &settings, (&ctx, &throttle), move |conn| {
            invites::find_live(conn, &lookup, clock::to_db(clock::now()))
        })
        .await?;
    if invite.is_none() {
        // The attempt stays counted against the address: it was a wrong code.
        let event = ctx.audit(None, registration_failed());
        db.run(move |conn| audit::record(conn, &event)).await?;
        return Err(ApiError::invalid("invite_code", NOT_AN_INVITE));
    }
    let hash = admitted
        .hash(&password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    let refresh = RefreshToken::generate();
    let refresh_hash = refresh.hash.clone();
    let user = db
        .transaction(move |conn| {
            let now = clock::to_db(clock::now());
            // Redeemed once: of two registrations racing with one code, one wins.
            let patient_id = invites::redeem(conn, &code_hash, now)?
                .ok_or_else(|| ApiError::invalid("invite_code", NOT_AN_INVITE))?;
            if patients::account_of(conn, &patient_id)?.is_some() {
                return Err(ApiError::Conflict(
                    "the patient already has an app account".into(),
                ));
            }
            let patient = patients::find(conn, &Scope::Patient(patient_id.clone()), &patient_id)?;
            let user_id = Uuid::new_v4().to_string();
            users::insert(
                conn,
                &users::NewUserRow {
                    id: &user_id,
                    email: email.as_str(),
                    password_hash: &hash,
                    role: Role::Patient.as_str(),
                    clinic_id: Some(&patient.row.clinic_id),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            patients::link_account(conn, &user_id, &patient_id)?;
            store_refresh_token(conn, &user_id, &Uuid::new_v4().to_string(), &refresh_hash)?;
            throttle.settle_success(conn)?;
            let event = ctx.audit_by(
                Some((&user_id, Role::Patient.as_str())),
                Audited {
                    action: "patient_registered",
                    resource_type: "account",
                    resource_id: Some(&user_id),
                    patient_id: Some(&patient_id),
                },
            );
            audit::record(conn, &event)?;
            Ok::<_, ApiError>(users::find(conn, &user_id)?)
        })
        .await?;
    Ok(HttpResponse::Created().json(tokens(&keys, &user, Role::Patient, refresh)))
}

const NOT_AN_INVITE: &str = "is not valid, was used, or has expired";

/// Invite codes are 20 characters of URL-safe base64; anything else cannot be one, and is
/// refused before it reaches the database.
fn looks_like_an_invite_code(code: &str) -> bool {
    (16..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn registration_failed() -> Audited<'static> {
    Audited {
        action: "registration_failed",
        resource_type: "invite",
        resource_id: None,
        patient_id: None,
    }
}

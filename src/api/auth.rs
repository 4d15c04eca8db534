//! Sign-in, token refresh and sign-out (api.md, Authentication).

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::context::{Audited, RequestContext};
use sha2::{Digest, Sha256};

use crate::auth::caller::Caller;
use crate::auth::password::{PasswordHasher, Verified};
use crate::auth::token::{hash_refresh_token, RefreshToken, TokenKeys, REFRESH_TOKEN_LIFETIME};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::Role;
use crate::domain::throttle::{self, Failures};
use crate::error::ApiError;
use crate::store::refresh_tokens::{self, NewRefreshTokenRow, Presented};
use crate::store::{audit, login_failures, users, Db, DbConnection, StoreError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana.moreno@clinic.example", "password": "lantern orbit kettle"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
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
    /// Always `Bearer`.
    pub token_type: &'static str,
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

/// Signs in with an email and a password.
///
/// A wrong password and an unknown email get the same answer, in content and in time. After
/// repeated failures the account (and, at a higher limit, the client address) must wait: 429
/// with Retry-After, even for the right password.
#[utoipa::path(
    tag = "auth",
    security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::InvalidCredentials),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
    )
)]
#[post("/v1/auth/login")]
pub async fn login(
    body: web::Json<LoginRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    hasher: web::Data<PasswordHasher>,
    keys: web::Data<TokenKeys>,
    settings: web::Data<AuthSettings>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { email, password } = body.into_inner();
    let email = email.trim().to_lowercase();
    let keys_for_throttle = ThrottleKeys::new(&email, &ctx);
    wait_if_throttled(&db, &keys_for_throttle, &settings).await?;

    let lookup = email.clone();
    let user = db
        .run(move |conn| users::find_by_email(conn, &lookup))
        .await?;
    let verified = hasher
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;

    match (user, verified) {
        (Some(user), Verified::Yes { rehashed }) if !user.disabled => {
            let role: Role = user
                .role
                .parse()
                .map_err(|_| ApiError::InvalidCredentials)?;
            let issued = RefreshToken::generate();
            let event = ctx.audit_by(
                Some((&user.id, role.as_str())),
                Audited {
                    action: "login_succeeded",
                    resource_type: "account",
                    resource_id: Some(&user.id),
                    patient_id: None,
                },
            );
            let (user_id, hash) = (user.id.clone(), issued.hash.clone());
            let account_key = keys_for_throttle.account.clone();
            db.transaction(move |conn| -> Result<_, StoreError> {
                login_failures::clear(conn, &account_key)?;
                let now = clock::to_db(clock::now());
                if let Some(new_hash) = rehashed {
                    users::set_password_hash(conn, &user_id, &new_hash, now)?;
                }
                store_refresh_token(conn, &user_id, &uuid::Uuid::new_v4().to_string(), &hash)?;
                audit::record(conn, &event)
            })
            .await?;
            Ok(HttpResponse::Ok().json(tokens(
                &keys,
                &user.id,
                role,
                user.clinic_id.as_deref(),
                issued,
            )))
        }
        (user, _) => {
            let event = ctx.audit_by(
                user.as_ref().map(|u| (u.id.as_str(), u.role.as_str())),
                Audited {
                    action: "login_failed",
                    resource_type: "account",
                    resource_id: user.as_ref().map(|u| u.id.as_str()),
                    patient_id: None,
                },
            );
            record_failure(&db, keys_for_throttle, event).await?;
            Err(ApiError::InvalidCredentials)
        }
    }
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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/auth/refresh")]
pub async fn refresh(
    body: web::Json<RefreshRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
    keys: web::Data<TokenKeys>,
) -> Result<HttpResponse, ApiError> {
    let presented = hash_refresh_token(&body.refresh_token);
    let next = RefreshToken::generate();
    let next_hash = next.hash.clone();
    let ctx_in = ctx.clone();
    let outcome = db
        .transaction(move |conn| -> Result<_, StoreError> {
            let now = clock::to_db(clock::now());
            match refresh_tokens::spend(conn, &presented, now)? {
                Presented::Spent { user_id, family_id } => {
                    let user = users::find(conn, &user_id)?;
                    if user.disabled {
                        refresh_tokens::revoke_family(conn, &family_id, now)?;
                        return Ok(None);
                    }
                    store_refresh_token(conn, &user_id, &family_id, &next_hash)?;
                    Ok(Some(user))
                }
                Presented::Reused { user_id, family_id } => {
                    let role = users::find(conn, &user_id)?.role;
                    let event = ctx_in.audit_by(
                        Some((&user_id, &role)),
                        Audited {
                            action: "refresh_token_reused",
                            resource_type: "token_family",
                            resource_id: Some(&family_id),
                            patient_id: None,
                        },
                    );
                    audit::record(conn, &event)?;
                    Ok(None)
                }
                Presented::Invalid => Ok(None),
            }
        })
        .await?;
    let user = outcome.ok_or(ApiError::Unauthorized)?;
    let role: Role = user.role.parse().map_err(|_| ApiError::Unauthorized)?;
    Ok(HttpResponse::Ok().json(tokens(
        &keys,
        &user.id,
        role,
        user.clinic_id.as_deref(),
        next,
    )))
}

/// Signs out: revokes the given refresh token's family.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out; the family is revoked"),
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::Unauthorized),
        (status = 422, response = crate::openapi::responses::Unprocessable),
    )
)]
#[post("/v1/auth/logout")]
pub async fn logout(
    caller: Caller,
    body: web::Json<RefreshRequest>,
    ctx: RequestContext,
    db: web::Data<Db>,
) -> Result<HttpResponse, ApiError> {
    let presented = hash_refresh_token(&body.refresh_token);
    db.transaction(move |conn| -> Result<_, StoreError> {
        let Some((family_id, owner)) = refresh_tokens::family_of(conn, &presented)? else {
            return Ok(());
        };
        // Another account's token is not the caller's to revoke.
        if owner != caller.user_id {
            return Ok(());
        }
        refresh_tokens::revoke_family(conn, &family_id, clock::to_db(clock::now()))?;
        let event = ctx.audit(
            Some(&caller),
            Audited {
                action: "logout",
                resource_type: "token_family",
                resource_id: Some(&family_id),
                patient_id: None,
            },
        );
        audit::record(conn, &event)
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The pair of throttle keys one sign-in attempt counts against.
pub(crate) struct ThrottleKeys {
    pub account: String,
    pub address: Option<String>,
}

impl ThrottleKeys {
    pub fn new(email: &str, ctx: &RequestContext) -> Self {
        Self {
            // Hashed: a fixed-length key whatever the client sent, and no email kept in the
            // throttle table.
            account: format!("account:{}", hex::encode(Sha256::digest(email.as_bytes()))),
            address: ctx.client_address.as_ref().map(|a| format!("address:{a}")),
        }
    }
}

/// 429 while the account or the address must wait.
pub(crate) async fn wait_if_throttled(
    db: &Db,
    keys: &ThrottleKeys,
    settings: &AuthSettings,
) -> Result<(), ApiError> {
    let (account, address) = (keys.account.clone(), keys.address.clone());
    let since = clock::to_db(clock::now() - throttle::WINDOW);
    let (account_failures, address_failures) = db
        .run(move |conn| {
            let account = login_failures::recent(conn, &account, since)?;
            let address = address
                .map(|a| login_failures::recent(conn, &a, since))
                .transpose()?;
            Ok::<_, StoreError>((account, address))
        })
        .await?;
    let now = clock::now();
    let as_failures = |f: login_failures::RecentFailures| Failures {
        count: f.count,
        first: f.first.map(clock::from_db),
        last: f.last.map(clock::from_db),
    };
    let wait = throttle::account_wait(
        as_failures(account_failures),
        settings.account_failure_limit,
        now,
    )
    .or_else(|| {
        address_failures.and_then(|f| {
            throttle::address_wait(as_failures(f), settings.address_failure_limit, now)
        })
    });
    match wait {
        Some(wait) => Err(ApiError::TooManyRequests {
            retry_after: throttle::retry_after_seconds(wait),
        }),
        None => Ok(()),
    }
}

pub(crate) async fn record_failure(
    db: &Db,
    keys: ThrottleKeys,
    event: audit::AuditEventRow,
) -> Result<(), ApiError> {
    db.transaction(move |conn| -> Result<_, StoreError> {
        let now = clock::now();
        let forget_before = clock::to_db(now - throttle::WINDOW);
        for key in std::iter::once(&keys.account).chain(keys.address.as_ref()) {
            login_failures::record(conn, key, clock::to_db(now), forget_before)?;
        }
        audit::record(conn, &event)
    })
    .await?;
    Ok(())
}

pub(crate) fn store_refresh_token(
    conn: &mut DbConnection,
    user_id: &str,
    family_id: &str,
    hash: &str,
) -> Result<(), StoreError> {
    let now = clock::now();
    let expires = now
        + chrono::Duration::from_std(REFRESH_TOKEN_LIFETIME).unwrap_or(chrono::Duration::days(30));
    refresh_tokens::insert(
        conn,
        &NewRefreshTokenRow {
            id: &uuid::Uuid::new_v4().to_string(),
            family_id,
            user_id,
            token_hash: hash,
            issued_at: clock::to_db(now),
            expires_at: clock::to_db(expires),
        },
    )
}

fn tokens(
    keys: &TokenKeys,
    user_id: &str,
    role: Role,
    clinic: Option<&str>,
    issued: RefreshToken,
) -> TokenResponse {
    TokenResponse {
        access_token: keys.issue(user_id, role, clinic, clock::now()),
        token_type: "Bearer",
        expires_in: keys.lifetime().as_secs(),
        refresh_token: issued.token,
    }
}

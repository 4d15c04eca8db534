//! Sign-in, token refresh and sign-out (api.md, Authentication).

use actix_web::{post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::context::{Audited, RequestContext};
use sha2::{Digest, Sha256};

use crate::auth::admission::Refusal;
use crate::auth::caller::Caller;
use crate::auth::password::{Admitted, PasswordHasher, Verified};
use crate::auth::token::{
    hash_refresh_token, RefreshToken, TokenKeys, TokenSubject, REFRESH_TOKEN_LIFETIME,
};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::{Email, EmailRule, Role};
use crate::domain::throttle::Limit;
use crate::error::ApiError;
use crate::store::refresh_tokens::{self, NewRefreshTokenRow, Presented};
use crate::store::users::UserRow;
use crate::store::{audit, throttle, users, Db, DbConnection, StoreError};

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
        (status = 400, response = crate::openapi::responses::BadRequest),
        (status = 401, response = crate::openapi::responses::InvalidCredentials),
        (status = 422, response = crate::openapi::responses::Unprocessable),
        (status = 429, response = crate::openapi::responses::TooManyRequests),
        (status = 503, response = crate::openapi::responses::Unavailable),
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
    // An address that cannot be one is checked like an unknown account; only what can never be
    // stored or looked up (control and invisible characters) is refused outright.
    let email = match Email::parse(&email) {
        Ok(email) => email.as_str().to_owned(),
        Err(rule @ EmailRule::Invisible) => return Err(ApiError::invalid("email", rule.message())),
        Err(EmailRule::NotAnAddress) => email.trim().to_lowercase(),
    };
    let throttle = ThrottleKeys::new(Some(&email), &ctx);
    let (user, admitted) = begin_attempt(&hasher, &db, &settings, (&ctx, &throttle), move |conn| {
        users::find_by_email(conn, &email)
    })
    .await?;
    let verified = admitted
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);

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
            db.transaction(move |conn| -> Result<_, StoreError> {
                throttle.settle_success(conn)?;
                let now = clock::to_db(clock::now());
                if let Some(new_hash) = rehashed {
                    users::set_password_hash(conn, &user_id, &new_hash, now)?;
                }
                store_refresh_token(conn, &user_id, &uuid::Uuid::new_v4().to_string(), &hash)?;
                audit::record(conn, &event)
            })
            .await?;
            Ok(HttpResponse::Ok().json(tokens(&keys, &user, role, issued)))
        }
        (user, _) => {
            // The attempt stays counted: it was a failure.
            let event = ctx.audit_by(
                user.as_ref().map(|u| (u.id.as_str(), u.role.as_str())),
                Audited {
                    action: "login_failed",
                    resource_type: "account",
                    resource_id: user.as_ref().map(|u| u.id.as_str()),
                    patient_id: None,
                },
            );
            db.run(move |conn| audit::record(conn, &event)).await?;
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
    Ok(HttpResponse::Ok().json(tokens(&keys, &user, role, next)))
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

/// The throttle keys one attempt counts against: the account (when an email is given) and
/// the client address.
#[derive(Clone)]
pub(crate) struct ThrottleKeys {
    pub account: Option<String>,
    pub address: Option<String>,
}

impl ThrottleKeys {
    /// `email` as normalised (an unparseable one as sent, lower-cased: it still names the
    /// account an attacker is after).
    pub fn new(email: Option<&str>, ctx: &RequestContext) -> Self {
        Self {
            // Hashed: a fixed-length key whatever the client sent, and no email kept in the
            // throttle table.
            account: email
                .map(|e| format!("account:{}", hex::encode(Sha256::digest(e.as_bytes())))),
            address: ctx.client_address.as_ref().map(|a| format!("address:{a}")),
        }
    }

    /// The keys with their limits, account first (the order every transaction locks them in).
    fn limits(&self, settings: &AuthSettings) -> Vec<(&str, Limit)> {
        let account =
            (self.account.as_deref()).map(|k| (k, Limit::Account(settings.account_failure_limit)));
        let address =
            (self.address.as_deref()).map(|k| (k, Limit::Address(settings.address_failure_limit)));
        account.into_iter().chain(address).collect()
    }

    /// The attempt succeeded: the account's attempts are forgotten and the address gets its
    /// reservation back.
    pub fn settle_success(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        if let Some(account) = &self.account {
            throttle::clear(conn, account)?;
        }
        if let Some(address) = &self.address {
            throttle::release(conn, address)?;
        }
        Ok(())
    }

    /// The attempt was never checked: each key gets its reservation back.
    fn release(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        for key in self.account.iter().chain(&self.address) {
            throttle::release(conn, key)?;
        }
        Ok(())
    }
}

/// 429 when this client address or account has used its hashes for now: told after a
/// second's hold (see [`PasswordHasher::hold_refusal`]).
async fn within_ceiling(
    hasher: &PasswordHasher,
    ctx: &RequestContext,
    account: Option<&str>,
) -> Result<(), ApiError> {
    match hasher.within_ceiling(ctx.client_address.as_deref(), account) {
        Ok(()) => Ok(()),
        Err(refusal) => {
            hasher.hold_refusal().await;
            Err(ApiError::TooManyRequests {
                retry_after: hasher.retry_after(refusal),
            })
        }
    }
}

fn busy(hasher: &PasswordHasher) -> ApiError {
    ApiError::Busy {
        retry_after: hasher.retry_after(Refusal::Busy),
    }
}

/// A place to hash a password for a caller who is not guessing one (an administrator creating
/// an account): within the client address's ceiling, then in the queue.
pub(crate) async fn begin_hash(
    hasher: &PasswordHasher,
    ctx: &RequestContext,
) -> Result<Admitted, ApiError> {
    within_ceiling(hasher, ctx, None).await?;
    hasher.admit().map_err(|_| busy(hasher))
}

/// The start of every password check, cheapest refusal first: the cost ceilings (memory),
/// one attempt reserved on every throttle key (database) with `then` run in the same
/// transaction, and a place in the hashing queue. When the queue is full the reservation is
/// given back: nothing was checked.
pub(crate) async fn begin_attempt<T: Send + 'static>(
    hasher: &PasswordHasher,
    db: &Db,
    settings: &AuthSettings,
    (ctx, keys): (&RequestContext, &ThrottleKeys),
    then: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<(T, Admitted), ApiError> {
    within_ceiling(hasher, ctx, keys.account.as_deref()).await?;
    let found = reserve_attempt(db, keys, settings, then).await?;
    match hasher.admit() {
        Ok(admitted) => Ok((found, admitted)),
        Err(_) => {
            let keys = keys.clone();
            db.transaction(move |conn| keys.release(conn)).await?;
            Err(busy(hasher))
        }
    }
}

/// Counts one attempt on every throttle key in the database, then runs `then` in the same
/// transaction; 429 when a key must wait, and then nothing is counted.
async fn reserve_attempt<T: Send + 'static>(
    db: &Db,
    keys: &ThrottleKeys,
    settings: &AuthSettings,
    then: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let limits: Vec<(String, Limit)> = keys
        .limits(settings)
        .into_iter()
        .map(|(k, l)| (k.to_owned(), l))
        .collect();
    db.transaction(move |conn| {
        let limits: Vec<(&str, Limit)> = limits.iter().map(|(k, l)| (k.as_str(), *l)).collect();
        if let Err(wait) = throttle::reserve(conn, &limits)? {
            return Err(ApiError::TooManyRequests {
                retry_after: crate::domain::throttle::retry_after_seconds(wait),
            });
        }
        Ok(then(conn)?)
    })
    .await
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

pub(crate) fn tokens(
    keys: &TokenKeys,
    user: &UserRow,
    role: Role,
    issued: RefreshToken,
) -> TokenResponse {
    let subject = TokenSubject {
        user_id: &user.id,
        role,
        clinic: user.clinic_id.as_deref(),
        generation: user.token_generation,
    };
    TokenResponse {
        access_token: keys.issue(&subject, clock::now()),
        token_type: "Bearer",
        expires_in: keys.lifetime().as_secs(),
        refresh_token: issued.token,
    }
}

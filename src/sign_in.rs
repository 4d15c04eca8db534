//! Signing in and staying signed in (api.md, Authentication; quality.md, Security): sign-in,
//! token refresh and sign-out, a patient's registration from an invite, a password change,
//! and signing out everywhere.
//!
//! Every check of a password is throttled the same way, cheapest refusal first: the hashing
//! ceilings per client address and account (memory), one attempt reserved on each throttle
//! key (database), then a place in the hashing queue.

use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::auth::admission::Refusal;
use crate::auth::password::{Admitted, PasswordHasher, Verified};
use crate::auth::token::{hash_refresh_token, RefreshToken, TokenSubject, REFRESH_TOKEN_LIFETIME};
use crate::call::{Call, Event, Origin, Services};
use crate::clock;
use crate::config::AuthSettings;
use crate::domain::account::{Email, EmailRule, Password, Role};
use crate::domain::audit::Action;
use crate::domain::ids::{PatientId, RefreshTokenId, TokenFamilyId, UserId};
use crate::domain::throttle::{self, Limit};
use crate::error::{ApiError, FieldError};
use crate::store::refresh_tokens::{self, NewRefreshTokenRow, Presented};
use crate::store::scope::Scope;
use crate::store::users::{self, NewUserRow, UserRow};
use crate::store::{invites, patients, throttle as throttle_store, Db, DbConnection, StoreError};

/// A signed-in session: a short-lived access token and a single-use refresh token.
pub struct Tokens {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
}

/// Signs in with an email and a password. A wrong password and an unknown email get the same
/// answer, in content and in time.
pub async fn login(
    services: &Services,
    origin: &Origin,
    email: &str,
    password: &str,
) -> Result<Tokens, ApiError> {
    // An address that cannot be one is checked like an unknown account; only what can never
    // be stored or looked up (control and invisible characters) is refused outright.
    let email = match Email::parse(email) {
        Ok(email) => email.as_str().to_owned(),
        Err(rule @ EmailRule::Invisible) => return Err(ApiError::invalid("email", rule.message())),
        Err(EmailRule::NotAnAddress) => email.trim().to_lowercase(),
    };
    let keys = ThrottleKeys::new(Some(&email), origin);
    let (user, admitted) = begin_attempt(services, origin, &keys, move |conn| {
        users::find_by_email(conn, &email)
    })
    .await?;
    let verified = admitted
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    let origin = origin.clone();
    match (user, verified) {
        (Some(user), Verified::Yes { rehashed }) if !user.disabled => {
            let issued = RefreshToken::generate();
            let (id, role, hash) = (user.id, user.role, issued.hash.clone());
            let account = services
                .db
                .transaction(move |conn| -> Result<_, StoreError> {
                    keys.settle_success(conn)?;
                    if let Some(new_hash) = rehashed {
                        users::set_password_hash(conn, id, &new_hash, clock::to_db(clock::now()))?;
                    }
                    store_refresh_token(conn, id, TokenFamilyId::random(), &hash)?;
                    origin.audit(
                        conn,
                        Some((id, role)),
                        Event::new(Action::LoginSucceeded).on(id),
                    )?;
                    users::find_with_patient(conn, id)
                })
                .await?;
            Ok(tokens(services, &account, issued))
        }
        (user, _) => {
            // The attempt stays counted: it was a failure.
            let actor = user.as_ref().map(|u| (u.id, u.role));
            let event = match &user {
                Some(user) => Event::new(Action::LoginFailed).on(user.id),
                None => Event::new(Action::LoginFailed),
            };
            services
                .db
                .run(move |conn| origin.audit(conn, actor, event))
                .await?;
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// Exchanges a refresh token for a new pair; the presented token is spent. A token already
/// spent was stolen or replayed: its whole family (the sign-in and all its rotations) is
/// revoked and the event audited.
pub async fn refresh(
    services: &Services,
    origin: &Origin,
    token: &str,
) -> Result<Tokens, ApiError> {
    let presented = hash_refresh_token(token);
    let next = RefreshToken::generate();
    let next_hash = next.hash.clone();
    let origin = origin.clone();
    let user = services
        .db
        .transaction(move |conn| -> Result<_, StoreError> {
            let now = clock::to_db(clock::now());
            match refresh_tokens::spend(conn, &presented, now)? {
                Presented::Spent { user_id, family_id } => {
                    let user = users::find_with_patient(conn, user_id)?;
                    if user.0.disabled {
                        refresh_tokens::revoke_family(conn, family_id, now)?;
                        return Ok(None);
                    }
                    store_refresh_token(conn, user_id, family_id, &next_hash)?;
                    Ok(Some(user))
                }
                Presented::Reused { user_id, family_id } => {
                    let role = users::find(conn, user_id)?.role;
                    let event = Event::new(Action::RefreshTokenReused).on(family_id);
                    origin.audit(conn, Some((user_id, role)), event)?;
                    Ok(None)
                }
                Presented::Invalid => Ok(None),
            }
        })
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(tokens(services, &user, next))
}

/// Signs out: revokes the given refresh token's family, when it is the caller's.
pub async fn logout(call: &Call, token: &str) -> Result<(), ApiError> {
    let presented = hash_refresh_token(token);
    call.transaction(move |conn, call| {
        let Some((family, owner)) = refresh_tokens::family_of(conn, &presented)? else {
            return Ok(());
        };
        // Another account's token is not the caller's to revoke.
        if owner != call.caller.user_id {
            return Ok(());
        }
        refresh_tokens::revoke_family(conn, family, clock::to_db(clock::now()))?;
        Ok(call.audit(conn, Event::new(Action::Logout).on(family))?)
    })
    .await
}

/// A patient's registration: the invite the clinic gave them, their email and password.
pub struct Registration<'a> {
    pub invite_code: &'a str,
    pub email: &'a str,
    pub password: &'a str,
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

/// Creates a patient's app account from an invite and signs it in. The invite is checked
/// before the password is hashed (a wrong code costs no hash); wrong codes count against the
/// client address like failed sign-ins.
pub async fn register(
    services: &Services,
    origin: &Origin,
    registration: Registration<'_>,
) -> Result<Tokens, ApiError> {
    let mut errors = Vec::new();
    let email = Email::parse(registration.email)
        .map_err(|rule| errors.push(FieldError::new("email", rule.message())))
        .ok();
    let password = Password::parse(registration.password, &[registration.email])
        .map_err(|rule| errors.push(FieldError::new("password", rule.message())))
        .ok();
    let code = registration.invite_code.trim();
    if !looks_like_an_invite_code(code) {
        errors.push(FieldError::new("invite_code", NOT_AN_INVITE));
    }
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let keys = ThrottleKeys::new(None, origin);
    let code_hash = hash_refresh_token(code);
    let lookup = code_hash.clone();
    let (invite, admitted) = begin_attempt(services, origin, &keys, move |conn| {
        invites::find_live(conn, &lookup, clock::to_db(clock::now()))
    })
    .await?;
    let origin = origin.clone();
    if invite.is_none() {
        // The attempt stays counted against the address: it was a wrong code.
        let event = Event::new(Action::RegistrationFailed);
        services
            .db
            .run(move |conn| origin.audit(conn, None, event))
            .await?;
        return Err(ApiError::invalid("invite_code", NOT_AN_INVITE));
    }
    let hash = admitted
        .hash(&password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    let refresh = RefreshToken::generate();
    let refresh_hash = refresh.hash.clone();
    let user = services
        .db
        .transaction(move |conn| {
            let now = clock::to_db(clock::now());
            // Redeemed once: of two registrations racing with one code, one wins.
            let patient = invites::redeem(conn, &code_hash, now)?
                .ok_or_else(|| ApiError::invalid("invite_code", NOT_AN_INVITE))?;
            if patients::account_of(conn, patient)?.is_some() {
                return Err(ApiError::Conflict(
                    "the patient already has an app account".into(),
                ));
            }
            let record = patients::find(conn, &Scope::Patient(patient), patient)?;
            let id = UserId::random();
            let inserted = users::insert(
                conn,
                &NewUserRow {
                    id,
                    email: email.as_str(),
                    password_hash: &hash,
                    role: Role::Patient,
                    clinic_id: Some(record.row.clinic_id),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            // A new random id: taken, it would be the one write that stops here.
            if !inserted {
                return Err(StoreError::Taken { field: "id" }.into());
            }
            patients::link_account(conn, id, patient)?;
            store_refresh_token(conn, id, TokenFamilyId::random(), &refresh_hash)?;
            keys.settle_success(conn)?;
            let event = Event::new(Action::PatientRegistered).on(id).of(patient);
            origin.audit(conn, Some((id, Role::Patient)), event)?;
            Ok(users::find_with_patient(conn, id)?)
        })
        .await?;
    Ok(tokens(services, &user, refresh))
}

/// Changes the caller's password and ends every session they hold (their refresh tokens are
/// revoked; every access token issued before, this request's included, stops working).
/// Guessing the current password here is throttled like guessing it at sign-in.
pub async fn change_password(call: &Call, current: &str, new: &str) -> Result<(), ApiError> {
    let id = call.caller.user_id;
    let email = call.account().await?.0.email;
    let new = Password::parse(new, &[&email])
        .map_err(|rule| ApiError::invalid("new_password", rule.message()))?;
    let keys = ThrottleKeys::new(Some(&email), &call.origin);
    let (stored, admitted) = begin_attempt(&call.services, &call.origin, &keys, move |conn| {
        users::find(conn, id)
    })
    .await?;
    let verified = admitted
        .verify(current, Some(&stored.password_hash))
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    if verified == Verified::No {
        let event = Event::new(Action::PasswordChangeFailed).on(id);
        call.transaction(move |conn, call| Ok(call.audit(conn, event)?))
            .await?;
        return Err(ApiError::invalid("current_password", "is not correct"));
    }
    let hash = admitted
        .hash(&new)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    call.transaction(move |conn, call| {
        let now = clock::to_db(clock::now());
        users::set_password_hash(conn, id, &hash, now)?;
        users::revoke_access(conn, id, now)?;
        keys.settle_success(conn)?;
        Ok(call.audit(conn, Event::new(Action::PasswordChanged).on(id))?)
    })
    .await
}

/// Signs the caller out everywhere (a lost phone, a shared computer).
pub async fn sign_out_everywhere(call: &Call) -> Result<(), ApiError> {
    call.transaction(|conn, call| {
        let id = call.caller.user_id;
        users::revoke_access(conn, id, clock::to_db(clock::now()))?;
        Ok(call.audit(conn, Event::new(Action::SignedOutEverywhere).on(id))?)
    })
    .await
}

/// The throttle keys one attempt counts against: the account (when an email is given) and
/// the client address.
#[derive(Clone)]
struct ThrottleKeys {
    account: Option<String>,
    address: Option<String>,
}

impl ThrottleKeys {
    /// `email` as normalised (an unparseable one as sent, lower-cased: it still names the
    /// account an attacker is after).
    fn new(email: Option<&str>, origin: &Origin) -> Self {
        Self {
            // Hashed: a fixed-length key whatever the client sent, and no email kept in the
            // throttle table.
            account: email
                .map(|e| format!("account:{}", hex::encode(Sha256::digest(e.as_bytes())))),
            address: origin
                .client_address
                .as_ref()
                .map(|a| format!("address:{a}")),
        }
    }

    /// The keys with their limits, account first (the order every transaction locks them in).
    fn limits(&self, settings: &AuthSettings) -> Vec<(String, Limit)> {
        let account =
            (self.account.clone()).map(|k| (k, Limit::Account(settings.account_failure_limit)));
        let address =
            (self.address.clone()).map(|k| (k, Limit::Address(settings.address_failure_limit)));
        account.into_iter().chain(address).collect()
    }

    /// The attempt succeeded: the account's attempts are forgotten and the address gets its
    /// reservation back.
    fn settle_success(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        if let Some(account) = &self.account {
            throttle_store::clear(conn, account)?;
        }
        if let Some(address) = &self.address {
            throttle_store::release(conn, address)?;
        }
        Ok(())
    }

    /// The attempt was never checked: each key gets its reservation back.
    fn release(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        for key in self.account.iter().chain(&self.address) {
            throttle_store::release(conn, key)?;
        }
        Ok(())
    }
}

/// 429 when this client address or account has used its hashes for now: told after a
/// second's hold (see [`PasswordHasher::hold_refusal`]).
async fn within_ceiling(
    hasher: &PasswordHasher,
    origin: &Origin,
    account: Option<&str>,
) -> Result<(), ApiError> {
    match hasher.within_ceiling(origin.client_address.as_deref(), account) {
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
pub async fn begin_hash(hasher: &PasswordHasher, origin: &Origin) -> Result<Admitted, ApiError> {
    within_ceiling(hasher, origin, None).await?;
    hasher.admit().map_err(|_| busy(hasher))
}

/// The start of every password check: the ceilings, one attempt reserved on every throttle
/// key with `then` run in the same transaction, and a place in the hashing queue. When the
/// queue is full the reservation is given back: nothing was checked.
async fn begin_attempt<T: Send + 'static>(
    services: &Services,
    origin: &Origin,
    keys: &ThrottleKeys,
    then: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<(T, Admitted), ApiError> {
    let hasher = &services.hasher;
    within_ceiling(hasher, origin, keys.account.as_deref()).await?;
    let found = reserve_attempt(&services.db, keys.limits(&services.auth), then).await?;
    match hasher.admit() {
        Ok(admitted) => Ok((found, admitted)),
        Err(_) => {
            let keys = keys.clone();
            services
                .db
                .transaction(move |conn| keys.release(conn))
                .await?;
            Err(busy(hasher))
        }
    }
}

/// Counts one attempt on every throttle key, then runs `then` in the same transaction; 429
/// when a key must wait, and then nothing is counted.
async fn reserve_attempt<T: Send + 'static>(
    db: &Db,
    limits: Vec<(String, Limit)>,
    then: impl FnOnce(&mut DbConnection) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    db.transaction(move |conn| {
        let limits: Vec<(&str, Limit)> = limits.iter().map(|(k, l)| (k.as_str(), *l)).collect();
        if let Err(wait) = throttle_store::reserve(conn, &limits)? {
            return Err(ApiError::TooManyRequests {
                retry_after: throttle::retry_after_seconds(wait),
            });
        }
        Ok(then(conn)?)
    })
    .await
}

fn store_refresh_token(
    conn: &mut DbConnection,
    user: UserId,
    family: TokenFamilyId,
    hash: &str,
) -> Result<(), StoreError> {
    let now = clock::now();
    let lifetime = Duration::from_std(REFRESH_TOKEN_LIFETIME).unwrap_or(Duration::days(30));
    refresh_tokens::insert(
        conn,
        &NewRefreshTokenRow {
            id: RefreshTokenId::random(),
            family_id: family,
            user_id: user,
            token_hash: hash,
            issued_at: clock::to_db(now),
            expires_at: clock::to_db(now + lifetime),
        },
    )
}

/// A new access token for `account` (as just read, with its patient record), and `issued`.
fn tokens(
    services: &Services,
    (user, patient): &(UserRow, Option<PatientId>),
    issued: RefreshToken,
) -> Tokens {
    let subject = TokenSubject {
        user_id: user.id,
        role: user.role,
        clinic: user.clinic_id,
        patient: *patient,
        generation: user.token_generation,
    };
    Tokens {
        access_token: services.keys.issue(&subject, clock::now()),
        expires_in: services.keys.lifetime().as_secs(),
        refresh_token: issued.token,
    }
}

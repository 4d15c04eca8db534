//! Accounts: creating a staff account from the command line with the same rules as the API,
//! and ending every access an account holds.

use crate::auth::password::PasswordHasher;
use crate::clock;
use crate::config::Settings;
use crate::domain::account::{Email, Password, Role};
use crate::store::{audit, clinics, refresh_tokens, users, Db, DbConnection, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("--email {0}")]
    Email(&'static str),
    #[error("--role {0}")]
    Role(&'static str),
    #[error("the password {0}")]
    Password(&'static str),
    #[error("--clinic is required for a clinician and not allowed otherwise")]
    ClinicMismatch,
    #[error("no clinic with that id")]
    NoSuchClinic,
    #[error("an account with that email already exists")]
    Exists,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Hash(#[from] crate::auth::password::HashError),
}

/// Ends every access the account holds: its refresh tokens are revoked and its access tokens
/// stop working at their next use (a password change, a disable, a sign-out everywhere).
pub fn revoke_access(
    conn: &mut DbConnection,
    user_id: &str,
    now: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    refresh_tokens::revoke_all_for_user(conn, user_id, now)?;
    users::end_token_generation(conn, user_id, now)
}

/// Creates the account and an audit event naming the command line as its source.
pub fn create_staff_account(
    db: &Db,
    settings: &Settings,
    email: &str,
    role: &str,
    clinic: Option<uuid::Uuid>,
    password: &str,
) -> Result<String, AccountError> {
    let email = Email::parse(email).map_err(|rule| AccountError::Email(rule.message()))?;
    let role: Role = role.parse().map_err(AccountError::Role)?;
    let password = Password::parse(password, &[email.as_str()])
        .map_err(|r| AccountError::Password(r.message()))?;
    if role.belongs_to_a_clinic() != clinic.is_some() {
        return Err(AccountError::ClinicMismatch);
    }
    let hasher = PasswordHasher::new(
        settings.auth.argon2_memory_kib,
        settings.auth.argon2_iterations,
        settings.auth.hash_limits,
    )?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    // The command line has the hasher to itself: its queue always has a place.
    let admitted = hasher
        .admit()
        .map_err(|_| crate::auth::password::HashError)?;
    let hash = runtime.block_on(admitted.hash(&password))?;
    let id = uuid::Uuid::new_v4().to_string();
    let clinic = clinic.map(|c| c.to_string());
    let new_id = id.clone();
    runtime.block_on(db.run(move |conn| {
        if let Some(c) = &clinic {
            clinics::find(conn, c)?.ok_or(AccountError::NoSuchClinic)?;
        }
        if users::find_by_email(conn, email.as_str())?.is_some() {
            return Err(AccountError::Exists);
        }
        let now = clock::to_db(clock::now());
        users::insert(
            conn,
            &users::NewUserRow {
                id: &new_id,
                email: email.as_str(),
                password_hash: &hash,
                role: role.as_str(),
                clinic_id: clinic.as_deref(),
                created_at: now,
                updated_at: now,
            },
        )?;
        let event = audit::AuditEventRow {
            id: uuid::Uuid::new_v4().to_string(),
            occurred_at: now,
            actor_id: None,
            actor_role: None,
            action: "user_created".into(),
            resource_type: "account".into(),
            resource_id: Some(new_id.clone()),
            patient_id: None,
            request_id: "command-line".into(),
            client_address: None,
            detail: None,
        };
        audit::record(conn, &event)?;
        Ok(())
    }))?;
    Ok(id)
}

//! Accounts: staff accounts made by administrators (and from the command line, with the same
//! rules), patients' app accounts as their clinicians see them, the invites that make those,
//! and ending every access an account holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

use crate::auth::password::{PasswordHasher, Verified};
use crate::auth::token::hash_refresh_token;
use crate::call::{Call, Event, Expected, Origin};
use crate::clock;
use crate::config::Settings;
use crate::domain::account::{Email, Password, Role};
use crate::domain::audit::Action;
use crate::domain::ids::{ClinicId, InviteId, PatientId, UserId};
use crate::error::{ApiError, FieldError};
use crate::records::{created_or_replayed, optional, Created};
use crate::sign_in::begin_hash;
use crate::store::invites::{self, InviteRow};
use crate::store::scope::Scope;
use crate::store::users::{self, NewUserRow, UserChanges, UserFilter, UserRow};
use crate::store::{clinics, patients, Db, DbConnection, Page, StoreError};

/// How long an invite can be used.
pub const INVITE_LIFETIME: Duration = Duration::days(7);

/// A role and a clinic that go together (`Role::staff_account`), with a clinic that exists.
fn check_staff(
    conn: &mut DbConnection,
    role: Role,
    clinic: Option<ClinicId>,
) -> Result<(), ApiError> {
    role.staff_account(clinic.is_some())?;
    match clinic {
        Some(id) if clinics::find(conn, id)?.is_none() => {
            Err(ApiError::invalid("clinic_id", "no such clinic"))
        }
        _ => Ok(()),
    }
}

/// A staff account as an administrator asks for it.
pub struct StaffDraft {
    pub email: String,
    /// The initial password.
    pub password: String,
    pub role: Role,
    pub clinic: Option<ClinicId>,
}

/// Creates a staff account (administrators); idempotent by client id: a retry carries the
/// same password, which must match the stored hash.
pub async fn create_staff(
    call: &Call,
    id: UserId,
    draft: StaffDraft,
) -> Result<Created<UserRow>, ApiError> {
    call.require(&[Role::Admin])?;
    let mut errors = Vec::new();
    let email = Email::parse(&draft.email)
        .map_err(|rule| errors.push(FieldError::new("email", rule.message())))
        .ok();
    let password = Password::parse(&draft.password, &[draft.email.as_str()])
        .map_err(|rule| errors.push(FieldError::new("password", rule.message())))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Validation(errors));
    };
    let (role, clinic) = (draft.role, draft.clinic);
    let same = move |row: &UserRow, email: &Email| {
        row.email == email.as_str() && row.role == role && row.clinic_id == clinic
    };
    // The account confirmed (by the read) before a place among the hashes is asked for.
    let existing = call
        .run(move |conn| optional(users::find(conn, id)))
        .await?;
    let admitted = begin_hash(&call.services.hasher, &call.origin).await?;
    if let Some(existing) = existing {
        let verified = admitted
            .verify(&draft.password, Some(&existing.password_hash))
            .await
            .ok();
        return if same(&existing, &email) && verified == Some(Verified::Yes { rehashed: None }) {
            Ok(Created::Replayed(existing))
        } else {
            Err(ApiError::Conflict(
                "a record with this id exists with a different body".into(),
            ))
        };
    }
    let hash = admitted
        .hash(&password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    drop(admitted);
    call.transaction(move |conn, call| {
        check_staff(conn, role, clinic)?;
        created_or_replayed(
            conn,
            |conn| optional(users::find(conn, id)),
            |row| same(row, &email),
            |conn| {
                let (email, hash) = (&email, hash.as_str());
                let account = NewStaff {
                    id,
                    email,
                    hash,
                    role,
                    clinic,
                };
                let by = Some((call.caller.user_id, call.caller.role));
                if !account.insert(conn, &call.origin, by)? {
                    return Ok(None);
                }
                users::find(conn, id).map(Some)
            },
        )
    })
    .await
}

/// A staff account about to be written, from the API or the command line alike.
struct NewStaff<'a> {
    id: UserId,
    email: &'a Email,
    hash: &'a str,
    role: Role,
    clinic: Option<ClinicId>,
}

impl NewStaff<'_> {
    /// Writes the account and its audit event, done `by` an administrator (none from the
    /// command line); writes nothing and says so when the id is taken.
    fn insert(
        &self,
        conn: &mut DbConnection,
        origin: &Origin,
        by: Option<(UserId, Role)>,
    ) -> Result<bool, StoreError> {
        let now = clock::to_db(clock::now());
        let inserted = users::insert(
            conn,
            &NewUserRow {
                id: self.id,
                email: self.email.as_str(),
                password_hash: self.hash,
                role: self.role,
                clinic_id: self.clinic,
                created_at: now,
                updated_at: now,
            },
        )?;
        if inserted {
            origin.audit(conn, by, Event::new(Action::UserCreated).on(self.id))?;
        }
        Ok(inserted)
    }
}

/// One page of accounts, oldest first (administrators).
pub async fn list_users(
    call: &Call,
    filter: UserFilter,
    page: Page,
) -> Result<Vec<UserRow>, ApiError> {
    call.require(&[Role::Admin])?;
    call.run(move |conn| users::list(conn, &filter, &page))
        .await
}

/// The caller's own account, with its patient record for a patient's app account.
pub async fn me(call: &Call) -> Result<(UserRow, Option<PatientId>), ApiError> {
    call.account().await
}

/// One account (administrators).
pub async fn find_user(call: &Call, id: UserId) -> Result<UserRow, ApiError> {
    call.require(&[Role::Admin])?;
    call.run(move |conn| users::find(conn, id)).await
}

/// What an administrator may change of an account.
pub struct UserChange {
    pub role: Option<Role>,
    /// A clinic, or `Some(None)` to remove it.
    pub clinic: Option<Option<ClinicId>>,
    pub disabled: Option<bool>,
}

/// Changes an account's role, clinic or disabled state (administrators). A patient's app
/// account follows its patient: only its access can change. Disabling ends every access the
/// account holds at once.
pub async fn update_user(
    call: &Call,
    id: UserId,
    expected: Expected,
    change: UserChange,
) -> Result<UserRow, ApiError> {
    call.require(&[Role::Admin])?;
    call.transaction(move |conn, call| {
        let current = users::find(conn, id)?;
        if !expected.admits(current.version) {
            return Err(ApiError::PreconditionFailed);
        }
        if current.role == Role::Patient {
            patient_account_keeps_its_patient(&change)?;
        } else {
            let role = change.role.unwrap_or(current.role);
            let clinic = change.clinic.unwrap_or(current.clinic_id);
            check_staff(conn, role, clinic)?;
        }
        let changes = UserChanges {
            role: change.role,
            clinic_id: change.clinic,
            disabled: change.disabled,
        };
        let now = clock::to_db(clock::now());
        let updated = users::update(conn, id, current.version, &changes, now)?;
        if updated.disabled && !current.disabled {
            users::revoke_access(conn, id, now)?;
        }
        call.audit(conn, Event::new(Action::UserUpdated).on(id))?;
        Ok(users::find(conn, id)?)
    })
    .await
}

/// A patient's app account may be disabled and enabled again; its role and clinic never
/// change (it would stay linked to the patient's record).
fn patient_account_keeps_its_patient(change: &UserChange) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if change.role.is_some() {
        errors.push(FieldError::new(
            "role",
            "a patient's app account keeps its role",
        ));
    }
    if change.clinic.is_some() {
        errors.push(FieldError::new(
            "clinic_id",
            "a patient's app account keeps its patient's clinic",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The patient's app account, within the clinician's scope: not found when there is none.
fn account_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    patient: PatientId,
) -> Result<UserRow, StoreError> {
    patients::clinic_in_scope(conn, scope, patient)?;
    let user = patients::account_of(conn, patient)?.ok_or(StoreError::NotFound)?;
    users::find(conn, user)
}

/// The patient's app account (their clinicians), audited.
pub async fn patient_account(call: &Call, patient: PatientId) -> Result<UserRow, ApiError> {
    let scope = call.clinician_scope()?;
    call.transaction(move |conn, call| {
        let account = account_in_scope(conn, &scope, patient)?;
        let event = Event::record(Action::PatientAccountRead, account.id, patient);
        call.audit(conn, event)?;
        Ok(account)
    })
    .await
}

/// Disables the patient's app account (a lost or stolen phone), ending every access it
/// holds, or enables it again (a new sign-in; old tokens stay revoked).
pub async fn set_patient_access(
    call: &Call,
    patient: PatientId,
    expected: Expected,
    disabled: bool,
) -> Result<UserRow, ApiError> {
    let scope = call.clinician_scope()?;
    call.transaction(move |conn, call| {
        let current = account_in_scope(conn, &scope, patient)?;
        if !expected.admits(current.version) {
            return Err(ApiError::PreconditionFailed);
        }
        let now = clock::to_db(clock::now());
        let changes = UserChanges {
            disabled: Some(disabled),
            ..UserChanges::default()
        };
        users::update(conn, current.id, current.version, &changes, now)?;
        if disabled && !current.disabled {
            users::revoke_access(conn, current.id, now)?;
        }
        let action = if disabled {
            Action::PatientAccountDisabled
        } else {
            Action::PatientAccountEnabled
        };
        call.audit(conn, Event::record(action, current.id, patient))?;
        Ok(users::find(conn, current.id)?)
    })
    .await
}

/// Issues a single-use invite for the patient's app, valid for 7 days: the code (shown once,
/// stored only as a hash) and when it expires.
pub async fn invite(call: &Call, patient: PatientId) -> Result<(String, DateTime<Utc>), ApiError> {
    let scope = call.clinician_scope()?;
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let code = URL_SAFE_NO_PAD.encode(bytes);
    let now = clock::now();
    let expires_at = now + INVITE_LIFETIME;
    let row = InviteRow {
        id: InviteId::random(),
        patient_id: patient,
        code_hash: hash_refresh_token(&code),
        created_by: call.caller.user_id,
        created_at: clock::to_db(now),
        expires_at: clock::to_db(expires_at),
        used_at: None,
    };
    call.transaction(move |conn, call| {
        patients::clinic_in_scope(conn, &scope, patient)?;
        invites::insert(conn, &row)?;
        Ok(call.audit(conn, Event::record(Action::InviteCreated, row.id, patient))?)
    })
    .await?;
    Ok((code, expires_at))
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("--email {0}")]
    Email(&'static str),
    #[error("--role {0}")]
    Role(String),
    #[error("--clinic {0}")]
    Clinic(&'static str),
    #[error("the password {0}")]
    Password(&'static str),
    #[error("no clinic with that id")]
    NoSuchClinic,
    #[error("an account with that email already exists")]
    Exists,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Hash(#[from] crate::auth::password::HashError),
}

/// Creates a staff account from the command line, with the rules the API applies, and an
/// audit event naming the command line as its source.
pub fn create_staff_account(
    db: &Db,
    settings: &Settings,
    email: &str,
    role: &str,
    clinic: Option<uuid::Uuid>,
    password: &str,
) -> Result<UserId, AccountError> {
    let email = Email::parse(email).map_err(|rule| AccountError::Email(rule.message()))?;
    let role: Role = role.parse().map_err(AccountError::Role)?;
    let clinic = clinic.map(ClinicId::from);
    role.staff_account(clinic.is_some())
        .map_err(|broken| match broken.field.as_str() {
            "role" => AccountError::Role(broken.rule),
            _ if clinic.is_some() => AccountError::Clinic("is not allowed for this role"),
            _ => AccountError::Clinic("is required for this role"),
        })?;
    let password = Password::parse(password, &[email.as_str()])
        .map_err(|r| AccountError::Password(r.message()))?;
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
    let id = UserId::random();
    let origin = Origin {
        request_id: "command-line".into(),
        client_address: None,
    };
    runtime.block_on(db.run(move |conn| {
        if let Some(c) = clinic {
            clinics::find(conn, c)?.ok_or(AccountError::NoSuchClinic)?;
        }
        if users::find_by_email(conn, email.as_str())?.is_some() {
            return Err(AccountError::Exists);
        }
        let (email, hash) = (&email, hash.as_str());
        let account = NewStaff {
            id,
            email,
            hash,
            role,
            clinic,
        };
        // A new random id: taken, it would be the one write that stops here.
        if !account.insert(conn, &origin, None)? {
            return Err(StoreError::Taken { field: "id" }.into());
        }
        Ok(())
    }))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each bad argument of `create-account` is reported as itself: a bad role as the role,
    /// not as the email.
    #[test]
    fn the_command_line_names_the_bad_argument() {
        let settings = crate::config::Settings::from_lookup(|_| None).unwrap();
        let db = Db::new(
            &crate::config::DatabaseUrl::Sqlite(":memory:".into()),
            1,
            std::time::Duration::from_secs(1),
        );
        let make = |email: &str, role: &str, clinic: Option<uuid::Uuid>| {
            create_staff_account(&db, &settings, email, role, clinic, "lantern orbit kettle")
                .unwrap_err()
                .to_string()
        };
        let cases = [
            ("not an address", "admin", None, "--email"),
            (
                "ana@clinic.example",
                "superuser",
                None,
                "--role must be one of",
            ),
            ("ana@clinic.example", "patient", None, "--role patients get"),
            (
                "ana@clinic.example",
                "clinician",
                None,
                "--clinic is required",
            ),
            (
                "ana@clinic.example",
                "researcher",
                Some(uuid::Uuid::nil()),
                "--clinic is not allowed",
            ),
        ];
        for (email, role, clinic, expected) in cases {
            let said = make(email, role, clinic);
            assert!(said.starts_with(expected), "{email} {role}: {said}");
        }
    }
}

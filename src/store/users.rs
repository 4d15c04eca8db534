//! Accounts.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::{DbConnection, Page, StoreError};
use crate::domain::account::Role;
use crate::domain::ids::{ClinicId, PatientId, UserId};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub clinic_id: Option<ClinicId>,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    /// Access tokens of an older generation are refused.
    pub token_generation: i32,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUserRow<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub clinic_id: Option<ClinicId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The fields an administrator may change.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub role: Option<Role>,
    pub clinic_id: Option<Option<ClinicId>>,
    pub disabled: Option<bool>,
}

/// Inserts the account unless its id is taken (whether it did); a taken email is
/// [`StoreError::Taken`].
pub fn insert(conn: &mut DbConnection, row: &NewUserRow<'_>) -> Result<bool, StoreError> {
    let insert = diesel::insert_into(users::table).values(row);
    super::inserted_unless_taken_or(conn, insert, "email", |conn| {
        Ok(users::table.find(row.id).count().get_result::<i64>(conn)? > 0)
    })
}

pub fn find(conn: &mut DbConnection, id: UserId) -> Result<UserRow, StoreError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)?)
}

pub fn find_by_email(conn: &mut DbConnection, email: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub clinic_id: Option<ClinicId>,
}

pub fn list(
    conn: &mut DbConnection,
    filter: &UserFilter,
    page: &Page,
) -> Result<Vec<UserRow>, StoreError> {
    let mut query = users::table.select(UserRow::as_select()).into_boxed();
    if let Some(role) = &filter.role {
        query = query.filter(users::role.eq(*role));
    }
    if let Some(clinic) = &filter.clinic_id {
        query = query.filter(users::clinic_id.eq(*clinic));
    }
    Ok(page_of!(query, users::created_at, users::id, page).load(conn)?)
}

/// Applies `changes` when the stored version is still `version`; bumps the version.
pub fn update(
    conn: &mut DbConnection,
    id: UserId,
    version: i32,
    changes: &UserChanges,
    now: NaiveDateTime,
) -> Result<UserRow, StoreError> {
    let updated = diesel::update(users::table.find(id).filter(users::version.eq(version)))
        .set((
            changes,
            users::updated_at.eq(now),
            users::version.eq(version + 1),
        ))
        .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::Stale);
    }
    find(conn, id)
}

/// Moves the account's token generation on: every access token issued before is refused at
/// its next use.
pub fn end_token_generation(
    conn: &mut DbConnection,
    id: UserId,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(id))
        .set((
            users::token_generation.eq(users::token_generation + 1),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ends every access the account holds: its refresh tokens are revoked and its access tokens
/// stop working at their next use (a password change, a disable, a sign-out everywhere).
pub fn revoke_access(
    conn: &mut DbConnection,
    id: UserId,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    super::refresh_tokens::revoke_all_for_user(conn, id, now)?;
    end_token_generation(conn, id, now)
}

pub fn set_password_hash(
    conn: &mut DbConnection,
    id: UserId,
    hash: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(hash),
            users::updated_at.eq(now),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// An account as a caller's access token describes it, to be held against the account as
/// it is stored now.
#[derive(Clone, Copy, Debug)]
pub struct Described {
    pub id: UserId,
    pub generation: i32,
    pub role: Role,
    pub clinic: Option<ClinicId>,
    pub patient: Option<PatientId>,
}

impl Described {
    /// Whether the account (with its patient record) still admits the token: enabled, of the
    /// token's generation, role, clinic and patient record. `patients::hold_in_scope`
    /// spells the same rule in SQL; `security::a_refused_account_is_401_on_every_endpoint`
    /// holds both to it.
    fn admitted_by(&self, account: &UserRow, patient: Option<PatientId>) -> bool {
        !account.disabled
            && account.token_generation == self.generation
            && account.role == self.role
            && account.clinic_id == self.clinic
            && patient == self.patient
    }
}

/// The account `described`, with its patient record, when it still admits its token (no
/// such account does not).
pub fn admitting(
    conn: &mut DbConnection,
    described: &Described,
) -> Result<Option<(UserRow, Option<PatientId>)>, StoreError> {
    match find_with_patient(conn, described.id) {
        Ok((account, patient)) if described.admitted_by(&account, patient) => {
            Ok(Some((account, patient)))
        }
        Ok(_) | Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The account and, for a patient's app account, the patient it belongs to.
pub fn find_with_patient(
    conn: &mut DbConnection,
    id: UserId,
) -> Result<(UserRow, Option<PatientId>), StoreError> {
    use super::schema::patient_accounts;
    Ok(users::table
        .left_join(patient_accounts::table.on(patient_accounts::user_id.eq(users::id)))
        .filter(users::id.eq(id))
        .select((
            UserRow::as_select(),
            patient_accounts::patient_id.nullable(),
        ))
        .first(conn)?)
}

//! The signed-in caller, extracted from the bearer token on every request that needs one.
//!
//! The token proves who the caller is; their role, clinic, whether they are disabled and
//! which generation of tokens is still valid are read from the database on every request, so
//! a change by an administrator, a password change or a sign-out everywhere takes effect at
//! once rather than when the token expires.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use futures_util::future::LocalBoxFuture;

use super::Services;
use crate::domain::account::Role;
use crate::domain::ids::{ClinicId, PatientId, UserId};
use crate::error::ApiError;
use crate::store::scope::Scope;
use crate::store::users::UserRow;
use crate::store::{users, DbConnection, StoreError};

#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
    pub email: String,
    pub role: Role,
    pub clinic_id: Option<ClinicId>,
    /// The patient record of a patient's app account.
    pub patient_id: Option<PatientId>,
    /// The account's token generation the caller's token carries.
    pub token_generation: i32,
    /// When the caller's token expires.
    pub token_expires_at: DateTime<Utc>,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The clinical records this caller may reach: a clinician their clinic's, a patient their
    /// own; administrators and researchers none (403).
    pub fn clinical_scope(&self) -> Result<Scope, ApiError> {
        match (self.role, &self.clinic_id, &self.patient_id) {
            (Role::Clinician, Some(clinic), _) => Ok(Scope::Clinic(*clinic)),
            (Role::Patient, _, Some(patient)) => Ok(Scope::Patient(*patient)),
            _ => Err(ApiError::Forbidden),
        }
    }

    /// 403 unless the caller is a clinician; returns their clinic's scope.
    pub fn clinician_scope(&self) -> Result<Scope, ApiError> {
        self.require(&[Role::Clinician])?;
        self.clinical_scope()
    }

    /// Whether the caller's account still admits their token with the same role and clinic,
    /// read again: for a call that lasts (a stream), which must end when the account is
    /// disabled, signed out or moved.
    pub fn still_admitted(&self, conn: &mut DbConnection) -> Result<bool, StoreError> {
        match users::find_with_patient(conn, self.user_id) {
            Ok((row, _)) => Ok(admits(&row, self.token_generation)
                && row.role == self.role
                && row.clinic_id == self.clinic_id),
            Err(StoreError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

/// Whether the account still admits a token of `generation`: a disabled account, or a token
/// from before a password change, a disable or a sign-out everywhere, is refused at once
/// rather than when the token expires.
fn admits(row: &UserRow, generation: i32) -> bool {
    !row.disabled && row.token_generation == generation
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let services = req.app_data::<web::Data<Services>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(services)) = (token, services) else {
                return Err(ApiError::Unauthorized);
            };
            let claims = services
                .keys
                .verify(&token)
                .map_err(|_| ApiError::Unauthorized)?;
            let user: UserId = claims.sub.parse().map_err(|_| ApiError::Unauthorized)?;
            let (row, patient_id) = services
                .db
                .run(move |conn| users::find_with_patient(conn, user))
                .await
                .map_err(|e| match e {
                    StoreError::NotFound => ApiError::Unauthorized,
                    other => other.into(),
                })?;
            if !admits(&row, claims.generation) {
                return Err(ApiError::Unauthorized);
            }
            Ok(Caller {
                user_id: row.id,
                email: row.email,
                role: row.role,
                clinic_id: row.clinic_id,
                patient_id,
                token_generation: claims.generation,
                token_expires_at: DateTime::from_timestamp(claims.exp, 0)
                    .ok_or(ApiError::Unauthorized)?,
            })
        })
    }
}

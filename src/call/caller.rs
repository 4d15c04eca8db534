//! The signed-in caller, taken from the bearer token on every request that needs one.
//!
//! The token proves who the caller is and says their role, clinic, patient record and token
//! generation. Whether the account still admits all of that — not disabled, not moved to
//! another role or clinic, no password change or sign-out everywhere since — is read from the
//! database on every request, so an administrator's change takes effect at once rather than
//! when the token expires. That read is [`Caller::confirm`], which every database entry of a
//! call runs first on the connection and in the transaction the call's own work then uses
//! (`call::Call`): it costs no round trip of its own to the pool or the blocking threads.

use actix_web::http::header;
use actix_web::HttpRequest;
use chrono::{DateTime, Utc};

use super::Services;
use crate::auth::token::Claims;
use crate::domain::account::Role;
use crate::domain::ids::{ClinicId, PatientId, UserId};
use crate::error::ApiError;
use crate::store::scope::Scope;
use crate::store::{users, DbConnection};

#[derive(Clone, Debug)]
pub struct Caller {
    pub user_id: UserId,
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

    /// Unauthorized unless the account still admits the caller's token as it was issued:
    /// enabled, of the token's generation, role, clinic and patient record. A token from
    /// before a password change, a disable or a sign-out everywhere is refused, and so is one
    /// from before the account moved to another role or clinic (its holder refreshes it).
    pub fn confirm(&self, conn: &mut DbConnection) -> Result<(), ApiError> {
        users::admits(conn, &self.described())?
            .then_some(())
            .ok_or(ApiError::Unauthorized)
    }

    /// The account as the caller's token describes it.
    pub fn described(&self) -> users::Described {
        users::Described {
            id: self.user_id,
            generation: self.token_generation,
            role: self.role,
            clinic: self.clinic_id,
            patient: self.patient_id,
        }
    }

    /// The caller as the request's bearer token says, once its signature, issuer, audience
    /// and expiry hold; not yet confirmed against the account ([`Caller::confirm`]).
    pub fn of_request(req: &HttpRequest, services: &Services) -> Result<Self, ApiError> {
        bearer_token(req)
            .and_then(|token| services.keys.verify(&token).ok())
            .and_then(Caller::of)
            .ok_or(ApiError::Unauthorized)
    }

    /// The caller a verified token names; malformed ids make it no token at all.
    fn of(claims: Claims) -> Option<Self> {
        Some(Self {
            user_id: claims.sub.parse().ok()?,
            role: claims.role,
            clinic_id: claims.clinic.map(|c| c.parse()).transpose().ok()?,
            patient_id: claims.patient.map(|p| p.parse()).transpose().ok()?,
            token_generation: claims.generation,
            token_expires_at: DateTime::from_timestamp(claims.exp, 0)?,
        })
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

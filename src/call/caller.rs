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
use crate::store::users::{self, UserRow};
use crate::store::DbConnection;

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
        self.account(conn).map(drop)
    }

    /// The caller's account with its patient record, read once they are confirmed by it
    /// ([`Caller::confirm`]).
    pub fn account(
        &self,
        conn: &mut DbConnection,
    ) -> Result<(UserRow, Option<PatientId>), ApiError> {
        users::admitting(conn, &self.described())?.ok_or(ApiError::Unauthorized)
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

    /// The caller a verified token names; malformed ids make it no token at all, and so does
    /// a patient's token without its record (issued before tokens carried it: a 401, which
    /// an app answers with a refresh, where a 403 would leave it stuck) or a staff token with
    /// one.
    fn of(claims: Claims) -> Option<Self> {
        let patient_id = claims.patient.map(|p| p.parse()).transpose().ok()?;
        if patient_id.is_some() != (claims.role == Role::Patient) {
            return None;
        }
        Some(Self {
            user_id: claims.sub.parse().ok()?,
            role: claims.role,
            clinic_id: claims.clinic.map(|c| c.parse()).transpose().ok()?,
            patient_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, clinic: Option<String>, patient: Option<String>) -> Claims {
        Claims {
            sub: UserId::numbered(1).to_string(),
            role,
            clinic,
            patient,
            iat: 0,
            exp: 900,
            iss: crate::auth::token::ISSUER.into(),
            aud: crate::auth::token::AUDIENCE.into(),
            generation: 0,
        }
    }

    /// A patient's scope is their record, which only their token can name: without it the
    /// token is no token (401, so the app refreshes), and a staff token naming one is forged
    /// or broken.
    #[test]
    fn a_token_names_a_patient_record_exactly_when_it_is_a_patients() {
        let record = Some(PatientId::numbered(5).to_string());
        let clinic = Some(ClinicId::numbered(2).to_string());
        let cases = [
            (claims(Role::Patient, clinic.clone(), record.clone()), true),
            (claims(Role::Patient, clinic.clone(), None), false),
            (claims(Role::Clinician, clinic.clone(), None), true),
            (
                claims(Role::Clinician, clinic.clone(), record.clone()),
                false,
            ),
            (claims(Role::Admin, None, record), false),
            (
                claims(Role::Clinician, Some("not an id".into()), None),
                false,
            ),
        ];
        for (claims, admitted) in cases {
            let described = format!("{claims:?}");
            assert_eq!(Caller::of(claims).is_some(), admitted, "{described}");
        }
        let patient = Caller::of(claims(
            Role::Patient,
            clinic,
            Some(PatientId::numbered(5).to_string()),
        ))
        .unwrap();
        assert_eq!(
            patient.clinical_scope().unwrap(),
            Scope::Patient(PatientId::numbered(5))
        );
    }
}

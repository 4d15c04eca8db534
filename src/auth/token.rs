//! Access tokens (HS256 JWTs, verified against one fixed algorithm) and refresh tokens
//! (256 random bits, of which only the SHA-256 is stored).

use crate::domain::ids::{ClinicId, PatientId, UserId};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::account::Role;

pub const ISSUER: &str = "ketamine-outcomes";
pub const AUDIENCE: &str = "ketamine-outcomes-api";
/// Clock skew tolerated on `exp` (and `iat`) between API processes.
const LEEWAY_SECONDS: u64 = 30;
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub clinic: Option<String>,
    /// The patient record of a patient's app account (an account's link to its record never
    /// changes); absent for staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The account's token generation when the token was issued; a password change, a
    /// disable or a sign-out everywhere moves the account's on, and older tokens stop working.
    pub generation: i32,
}

/// One signing key and its id.
pub struct SigningKey {
    pub kid: String,
    secret: Vec<u8>,
}

impl SigningKey {
    pub fn from_secret(secret: Vec<u8>) -> Self {
        // The id reveals nothing of the key: the first 8 bytes of its SHA-256.
        let kid = hex::encode(&Sha256::digest(&secret)[..8]);
        Self { kid, secret }
    }
}

/// Whom an access token is issued to.
#[derive(Clone, Copy, Debug)]
pub struct TokenSubject {
    pub user_id: UserId,
    pub role: Role,
    pub clinic: Option<ClinicId>,
    pub patient: Option<PatientId>,
    pub generation: i32,
}

/// Signs with the current key; verifies with it and with keys being rotated out.
pub struct TokenKeys {
    current: SigningKey,
    previous: Vec<SigningKey>,
    lifetime: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid access token")]
pub struct InvalidToken;

impl TokenKeys {
    pub fn new(current: SigningKey, previous: Vec<SigningKey>, lifetime: Duration) -> Self {
        Self {
            current,
            previous,
            lifetime,
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn issue(&self, account: &TokenSubject, now: DateTime<Utc>) -> String {
        let claims = Claims {
            sub: account.user_id.to_string(),
            role: account.role,
            clinic: account.clinic.map(|c| c.to_string()),
            patient: account.patient.map(|p| p.to_string()),
            generation: account.generation,
            iat: now.timestamp(),
            exp: now.timestamp() + self.lifetime.as_secs() as i64,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&self.current.secret),
        )
        .expect("HMAC signing of a serialisable claim set cannot fail")
    }

    /// Checks the signature (HS256 only), `exp`, `iss` and `aud`.
    pub fn verify(&self, token: &str) -> Result<Claims, InvalidToken> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidToken)?;
        if header.alg != Algorithm::HS256 {
            return Err(InvalidToken);
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| header.kid.as_deref() == Some(k.kid.as_str()))
            .ok_or(InvalidToken)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // A token without a generation (issued before generations existed) fails to decode.
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation)
            .map(|data| data.claims)
            .map_err(|_| InvalidToken)
    }
}

/// A new refresh token: what the client keeps, and what the database keeps.
pub struct RefreshToken {
    pub token: String,
    pub hash: String,
}

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_refresh_token(&token);
        Self { token, hash }
    }
}

pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(
            SigningKey::from_secret(vec![7; 32]),
            vec![],
            Duration::from_secs(900),
        )
    }

    fn admin() -> TokenSubject {
        TokenSubject {
            user_id: UserId::numbered(1),
            role: Role::Admin,
            clinic: None,
            patient: None,
            generation: 0,
        }
    }

    /// jsonwebtoken picks its crypto backend at run time; this fails if none is compiled in.
    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let now = Utc::now();
        let token = keys().issue(
            &TokenSubject {
                user_id: UserId::numbered(1),
                role: Role::Clinician,
                clinic: Some(ClinicId::numbered(2)),
                patient: None,
                generation: 3,
            },
            now,
        );
        let claims = keys().verify(&token).expect("valid");
        assert_eq!(claims.sub, UserId::numbered(1).to_string());
        assert_eq!(claims.role, Role::Clinician);
        assert_eq!(claims.clinic, Some(ClinicId::numbered(2).to_string()));
        assert_eq!(claims.generation, 3);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            (ISSUER, AUDIENCE)
        );
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys().current.kid.as_str()));
    }

    /// The patient record rides in a patient's token, so that a request knows its scope
    /// before it reads anything (`Caller::confirm` then checks it against the account).
    #[test]
    fn a_patients_token_names_their_record_and_a_staff_token_none() {
        let patient = TokenSubject {
            user_id: UserId::numbered(4),
            role: Role::Patient,
            clinic: None,
            patient: Some(PatientId::numbered(5)),
            generation: 0,
        };
        let claims = keys().verify(&keys().issue(&patient, Utc::now())).unwrap();
        assert_eq!(claims.patient, Some(PatientId::numbered(5).to_string()));
        let staff = keys().verify(&keys().issue(&admin(), Utc::now())).unwrap();
        assert_eq!(staff.patient, None);
    }

    #[test]
    fn expiry_is_enforced_with_thirty_seconds_of_leeway() {
        let keys = keys();
        let just_inside = Utc::now() - chrono::Duration::seconds(900 + 20);
        assert!(keys.verify(&keys.issue(&admin(), just_inside)).is_ok());
        let outside = Utc::now() - chrono::Duration::seconds(900 + 40);
        assert_eq!(
            keys.verify(&keys.issue(&admin(), outside)),
            Err(InvalidToken)
        );
    }

    #[test]
    fn a_previous_key_still_verifies_during_rotation_and_an_unknown_one_does_not() {
        let old = TokenKeys::new(
            SigningKey::from_secret(vec![1; 32]),
            vec![],
            Duration::from_secs(900),
        );
        let token = old.issue(&admin(), Utc::now());
        let rotated = TokenKeys::new(
            SigningKey::from_secret(vec![2; 32]),
            vec![SigningKey::from_secret(vec![1; 32])],
            Duration::from_secs(900),
        );
        assert!(rotated.verify(&token).is_ok());
        assert_eq!(keys().verify(&token), Err(InvalidToken));
    }

    #[test]
    fn refresh_tokens_are_256_random_bits_stored_as_sha256() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a.token, b.token);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.token).unwrap().len(), 32);
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert_eq!(a.hash.len(), 64);
    }
}

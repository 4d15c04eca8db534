//! argon2id password hashing on a bounded pool.
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU and 19 MiB each). Requests wait
//! for a slot asynchronously and hash on blocking threads, at most one per core, so a login
//! flood queues up instead of starving every other request.

use std::sync::Arc;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::account::Password;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed")]
pub struct HashError;

/// What a verification found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// The password matches. `rehashed` holds a new hash when the stored one used weaker
    /// parameters than the configured ones.
    Yes {
        rehashed: Option<String>,
    },
    No,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    slots: Arc<Semaphore>,
    /// Verified against when the account does not exist, so both answers take as long.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|_| HashError)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let dummy_hash = hash_with(&params, "an account that does not exist")?;
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(cores)),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        self.on_pool(move || hash_with(&params, &password)).await
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// account, so that an unknown email costs the same time as a wrong password.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let params = self.params.clone();
        let password = password.to_owned();
        let exists = stored.is_some();
        let stored = stored.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        self.on_pool(move || {
            let parsed = PasswordHash::new(&stored).map_err(|_| HashError)?;
            let matches = argon2id(&params)
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            if !(matches && exists) {
                return Ok(Verified::No);
            }
            let rehashed = weaker_than(&parsed, &params)
                .then(|| hash_with(&params, &password))
                .transpose()?;
            Ok(Verified::Yes { rehashed })
        })
        .await
    }

    async fn on_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.slots.acquire().await.map_err(|_| HashError)?;
        actix_web::rt::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError)?
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2id(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| HashError)
}

/// True when the stored hash is not argon2id or used less memory or fewer passes.
fn weaker_than(stored: &PasswordHash<'_>, params: &Params) -> bool {
    let Ok(old) = Params::try_from(stored) else {
        return true;
    };
    stored.algorithm.as_str() != "argon2id"
        || old.m_cost() < params.m_cost()
        || old.t_cost() < params.t_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password() -> Password {
        Password::parse("lantern orbit kettle", &[]).expect("a good password")
    }

    #[actix_web::test]
    async fn hashes_are_argon2id_phc_strings_with_the_configured_cost() {
        let hasher = PasswordHasher::new(19_456, 2).unwrap();
        let hash = hasher.hash(&password()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify("lantern orbit kettle", Some(&hash))
                .await
                .unwrap(),
            Verified::Yes { rehashed: None }
        );
        assert_eq!(
            hasher
                .verify("lantern orbit kettlf", Some(&hash))
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[actix_web::test]
    async fn an_unknown_account_never_verifies() {
        let hasher = PasswordHasher::new(19_456, 2).unwrap();
        assert_eq!(
            hasher
                .verify("an account that does not exist", None)
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[actix_web::test]
    async fn a_hash_made_with_weaker_parameters_is_replaced_on_sign_in() {
        let old = PasswordHasher::new(19_456, 2).unwrap();
        let hash = old.hash(&password()).await.unwrap();
        let stronger = PasswordHasher::new(19_456, 3).unwrap();
        let Verified::Yes {
            rehashed: Some(new_hash),
        } = stronger
            .verify("lantern orbit kettle", Some(&hash))
            .await
            .unwrap()
        else {
            panic!("a rehash is due");
        };
        assert!(new_hash.contains("m=19456,t=3,p=1"), "{new_hash}");
    }
}

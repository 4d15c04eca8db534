//! argon2id password hashing on threads of its own, behind a bounded admission.
//!
//! Hashing is deliberately slow (tens of milliseconds of CPU and 19 MiB each). It runs on a
//! fixed set of threads, one fewer than the cores (at least one), so that every other request
//! keeps a core (quality.md, login), and the process holds at most one 19 MiB working area per
//! hashing thread. A hash starts only with a place in [`Admission`]'s short queue, and a
//! request asks for one only within its client address's and account's ceilings of hashes per
//! minute, so a flood is refused before it costs a hash instead of queueing without end.
//!
//! The threads keep the normal CPU priority. At the lowest one the benchmark's `/v1/me` p99
//! under a login flood rose from about 6 ms to 43–61 ms: a starved hashing thread holding a
//! lock that request threads also take (the allocator's, most likely) stalls them behind it.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::auth::admission::{Admission, Refusal, Ticket};
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

/// Hashes waiting per hashing thread, beyond the one it works on.
const QUEUE_PER_THREAD: usize = 8;

pub use crate::config::HashLimits;

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    admission: Arc<Admission>,
    threads: HashingThreads,
    /// Verified against when the account does not exist, so both answers take as long.
    dummy_hash: Arc<String>,
    /// Refusals being held before they are answered (see [`PasswordHasher::hold_refusal`]).
    holds: Arc<tokio::sync::Semaphore>,
    /// Hashes and verifications run so far, for /metrics.
    computed: Arc<std::sync::atomic::AtomicU64>,
}

/// How long a refusal for a cost ceiling is held before it is answered, and how many may be
/// held at once (beyond that they are answered at once).
const REFUSAL_HOLD: std::time::Duration = std::time::Duration::from_secs(1);
const MAX_HELD_REFUSALS: usize = 512;

/// A request's place in the hashing queue, held until it is dropped; the request runs its
/// hashes (a verification, then perhaps a new hash) one after another.
pub struct Admitted {
    hasher: PasswordHasher,
    _ticket: Ticket,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32, limits: HashLimits) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, 1, None).map_err(|_| HashError)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        let dummy_hash = hash_with(&params, "an account that does not exist")?;
        Ok(Self {
            params,
            admission: Admission::new(
                threads * (1 + QUEUE_PER_THREAD),
                limits.per_address,
                limits.per_account,
            ),
            threads: HashingThreads::start(threads),
            dummy_hash: Arc::new(dummy_hash),
            holds: Arc::new(tokio::sync::Semaphore::new(MAX_HELD_REFUSALS)),
            computed: Arc::default(),
        })
    }

    /// Spends one hash of this client address's and account's cost ceilings (either may be
    /// unknown, as on the command line), or refuses.
    pub fn within_ceiling(
        &self,
        address: Option<&str>,
        account: Option<&str>,
    ) -> Result<(), Refusal> {
        self.admission
            .within_ceiling(address, account, Instant::now())
    }

    /// A place in the hashing queue, or [`Refusal::Busy`].
    pub fn admit(&self) -> Result<Admitted, Refusal> {
        Ok(Admitted {
            hasher: self.clone(),
            _ticket: self.admission.ticket()?,
        })
    }

    /// How many hashes and verifications this process has run.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Seconds a refused client should wait before trying again.
    pub fn retry_after(&self, refusal: Refusal) -> u64 {
        self.admission.retry_after(refusal).as_secs().max(1)
    }

    /// Waits a second before a client over its cost ceiling is told so. A flooding client
    /// sends its next request as soon as it has an answer; answered at once, its refusals
    /// would become a flood of their own, costing this machine's cores what the hashes would
    /// have. Held, they cost a sleeping task. At most [`MAX_HELD_REFUSALS`] are held at once.
    pub async fn hold_refusal(&self) {
        if let Ok(_permit) = self.holds.try_acquire() {
            tokio::time::sleep(REFUSAL_HOLD).await;
        }
    }
}

impl Admitted {
    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let params = self.hasher.params.clone();
        let password = password.expose().to_owned();
        self.on_thread(move || hash_with(&params, &password)).await
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no
    /// account, so that an unknown email costs the same time as a wrong password.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let params = self.hasher.params.clone();
        let password = password.to_owned();
        let exists = stored.is_some();
        let stored = stored.map_or_else(|| self.hasher.dummy_hash.to_string(), str::to_owned);
        self.on_thread(move || {
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

    /// Runs `work` on a hashing thread.
    async fn on_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, HashError> + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = tokio::sync::oneshot::channel();
        (self.hasher.computed).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.hasher.threads.run(Box::new(move || {
            let _ = done.send(work());
        }))?;
        result.await.map_err(|_| HashError)?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and the queue they take work from. They end when the last
/// [`PasswordHasher`] clone is dropped.
#[derive(Clone)]
struct HashingThreads {
    jobs: mpsc::Sender<Job>,
}

impl HashingThreads {
    fn start(count: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..count {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    // The lock is held only while waiting for the next job, not while hashing.
                    while let Ok(job) = queue
                        .lock()
                        .map_err(drop)
                        .and_then(|q| q.recv().map_err(drop))
                    {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password hashing thread");
            }
        }
        Self { jobs }
    }

    fn run(&self, job: Job) -> Result<(), HashError> {
        self.jobs.send(job).map_err(|_| HashError)
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
    use crate::config::HashRate as Rate;

    fn password() -> Password {
        Password::parse("lantern orbit kettle", &[]).expect("a good password")
    }

    const OPEN: Rate = Rate {
        per_minute: 1_000_000,
        burst: 1_000_000,
    };

    fn hasher(iterations: u32) -> PasswordHasher {
        let limits = HashLimits {
            per_address: OPEN,
            per_account: OPEN,
        };
        PasswordHasher::new(19_456, iterations, limits).unwrap()
    }

    fn admitted(hasher: &PasswordHasher) -> Admitted {
        hasher.admit().expect("a free place")
    }

    #[actix_web::test]
    async fn hashes_are_argon2id_phc_strings_with_the_configured_cost() {
        let hasher = hasher(2);
        let hash = admitted(&hasher).hash(&password()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            admitted(&hasher)
                .verify("lantern orbit kettle", Some(&hash))
                .await
                .unwrap(),
            Verified::Yes { rehashed: None }
        );
        assert_eq!(
            admitted(&hasher)
                .verify("lantern orbit kettlf", Some(&hash))
                .await
                .unwrap(),
            Verified::No
        );
    }

    /// quality.md, login: no hash starts beyond the short queue; a place frees when its hash
    /// ends.
    #[actix_web::test]
    async fn no_hash_starts_beyond_the_queue() {
        let hasher = hasher(2);
        let capacity = hasher.admission.capacity();
        let held: Vec<Admitted> = (0..capacity).map(|_| admitted(&hasher)).collect();
        assert_eq!(hasher.admit().err(), Some(Refusal::Busy));
        drop(held);
        assert!(hasher.admit().is_ok());
    }

    #[actix_web::test]
    async fn hashing_runs_on_its_own_threads() {
        let hasher = hasher(2);
        let name = admitted(&hasher)
            .on_thread(|| Ok(std::thread::current().name().map(str::to_owned)))
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("argon2-")));
    }

    #[actix_web::test]
    async fn an_unknown_account_never_verifies() {
        let hasher = hasher(2);
        assert_eq!(
            admitted(&hasher)
                .verify("an account that does not exist", None)
                .await
                .unwrap(),
            Verified::No
        );
    }

    #[actix_web::test]
    async fn a_hash_made_with_weaker_parameters_is_replaced_on_sign_in() {
        let old = hasher(2);
        let hash = admitted(&old).hash(&password()).await.unwrap();
        let stronger = hasher(3);
        let Verified::Yes {
            rehashed: Some(new_hash),
        } = admitted(&stronger)
            .verify("lantern orbit kettle", Some(&hash))
            .await
            .unwrap()
        else {
            panic!("a rehash is due");
        };
        assert!(new_hash.contains("m=19456,t=3,p=1"), "{new_hash}");
    }
}

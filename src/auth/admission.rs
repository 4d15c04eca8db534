//! Who may start a password hash now, decided in memory before any other work is done.
//!
//! A hash costs tens of milliseconds of a core, so a login flood must not be able to buy them
//! without limit (quality.md, login). Three bounds, each answered at once and never with a hash:
//! - the hashing threads' queue is short (`capacity`): beyond it, [`Refusal::Busy`] (503);
//! - each client address and each account has a cost ceiling, a token bucket of hashes per
//!   minute: beyond it, [`Refusal::OverCeiling`] (429).
//!
//! These are per process on purpose: they protect this process's cores. The sign-in throttle
//! in the database (`domain::throttle`) is what limits password guessing across processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::config::HashRate as Rate;

/// Why a hash was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hashing threads' queue is full.
    Busy,
    /// The client address or the account has used its hashes for now.
    OverCeiling,
}

/// A token bucket: `burst` hashes at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: f64::from(rate.burst),
            at: now,
        }
    }

    fn refilled(self, rate: Rate, now: Instant) -> Self {
        let minutes = now.saturating_duration_since(self.at).as_secs_f64() / 60.0;
        Self {
            tokens: (self.tokens + minutes * f64::from(rate.per_minute)).min(f64::from(rate.burst)),
            at: now,
        }
    }
}

/// Buckets beyond this many keys are pruned of the full ones (keys not seen for a while), so
/// an attacker with many addresses cannot grow the map without bound.
const MAX_TRACKED_KEYS: usize = 10_000;

#[derive(Default)]
struct State {
    admitted: usize,
    buckets: HashMap<String, Bucket>,
}

pub struct Admission {
    capacity: usize,
    address_rate: Rate,
    account_rate: Rate,
    state: Mutex<State>,
}

/// One admitted hash; dropping it frees its place in the queue.
pub struct Ticket {
    admission: Arc<Admission>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        state.admitted = state.admitted.saturating_sub(1);
    }
}

impl Admission {
    pub fn new(capacity: usize, address_rate: Rate, account_rate: Rate) -> Arc<Self> {
        Arc::new(Self {
            capacity: capacity.max(1),
            address_rate,
            account_rate,
            state: Mutex::new(State::default()),
        })
    }

    /// How many hashes may be admitted at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent under a panic (each change is one assignment).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Spends one hash of the cost ceilings of `address` and `account` (either may be
    /// unknown), or refuses: both must allow it, and a refusal spends neither.
    pub fn within_ceiling(
        &self,
        address: Option<&str>,
        account: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let mut state = self.lock();
        let keys = [
            address.map(|a| (format!("address:{a}"), self.address_rate)),
            account.map(|a| (format!("account:{a}"), self.account_rate)),
        ];
        let keys: Vec<(String, Rate)> = keys.into_iter().flatten().collect();
        let refilled: Vec<Bucket> = keys
            .iter()
            .map(|(key, rate)| {
                state
                    .buckets
                    .get(key)
                    .map_or_else(|| Bucket::full(*rate, now), |b| b.refilled(*rate, now))
            })
            .collect();
        if refilled.iter().any(|b| b.tokens < 1.0) {
            return Err(Refusal::OverCeiling);
        }
        for ((key, _), bucket) in keys.into_iter().zip(refilled) {
            state.buckets.insert(
                key,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    ..bucket
                },
            );
        }
        if state.buckets.len() > MAX_TRACKED_KEYS {
            self.prune(&mut state, now);
        }
        Ok(())
    }

    /// A place in the hashing queue, or [`Refusal::Busy`] when it is full.
    pub fn ticket(self: &Arc<Self>) -> Result<Ticket, Refusal> {
        let mut state = self.lock();
        if state.admitted >= self.capacity {
            return Err(Refusal::Busy);
        }
        state.admitted += 1;
        Ok(Ticket {
            admission: Arc::clone(self),
        })
    }

    fn prune(&self, state: &mut State, now: Instant) {
        let burst = self.address_rate.burst.min(self.account_rate.burst);
        let rate = Rate {
            per_minute: self
                .address_rate
                .per_minute
                .min(self.account_rate.per_minute),
            burst,
        };
        state
            .buckets
            .retain(|_, b| b.refilled(rate, now).tokens < f64::from(burst));
    }

    /// How long until `Refusal::Busy` or `OverCeiling` is worth retrying, for Retry-After.
    pub fn retry_after(&self, refusal: Refusal) -> Duration {
        match refusal {
            Refusal::Busy => Duration::from_secs(1),
            Refusal::OverCeiling => {
                let per_minute = self
                    .address_rate
                    .per_minute
                    .min(self.account_rate.per_minute);
                Duration::from_secs((60 / u64::from(per_minute.max(1))).max(1))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Rate = Rate {
        per_minute: 1_000_000,
        burst: 1_000_000,
    };

    /// quality.md, login: the queue is bounded; a place frees when its hash ends.
    #[test]
    fn the_queue_admits_up_to_its_capacity() {
        let admission = Admission::new(2, OPEN, OPEN);
        let one = admission.ticket().unwrap();
        let _two = admission.ticket().unwrap();
        assert_eq!(admission.ticket().err(), Some(Refusal::Busy));
        drop(one);
        assert!(admission.ticket().is_ok());
    }

    /// issue 12 (3): an address has a burst and then its rate; another address is not affected.
    #[test]
    fn each_address_has_a_cost_ceiling() {
        let rate = Rate {
            per_minute: 30,
            burst: 3,
        };
        let admission = Admission::new(100, rate, OPEN);
        let start = Instant::now();
        for _ in 0..3 {
            admission
                .within_ceiling(Some("198.51.100.7"), None, start)
                .unwrap();
        }
        assert_eq!(
            admission
                .within_ceiling(Some("198.51.100.7"), None, start)
                .err(),
            Some(Refusal::OverCeiling)
        );
        assert!(admission
            .within_ceiling(Some("203.0.113.1"), None, start)
            .is_ok());
        // 30 a minute: one more every two seconds.
        let later = start + Duration::from_millis(1_900);
        assert!(admission
            .within_ceiling(Some("198.51.100.7"), None, later)
            .is_err());
        let later = start + Duration::from_millis(2_000);
        assert!(admission
            .within_ceiling(Some("198.51.100.7"), None, later)
            .is_ok());
        assert_eq!(
            admission.retry_after(Refusal::OverCeiling),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn an_account_has_its_own_ceiling_and_a_refusal_spends_neither() {
        let account_rate = Rate {
            per_minute: 6,
            burst: 1,
        };
        let address_rate = Rate {
            per_minute: 60,
            burst: 2,
        };
        let admission = Admission::new(100, address_rate, account_rate);
        let now = Instant::now();
        admission.within_ceiling(Some("a"), Some("x"), now).unwrap();
        assert_eq!(
            admission.within_ceiling(Some("a"), Some("x"), now).err(),
            Some(Refusal::OverCeiling),
            "the account's ceiling"
        );
        // The refused attempt did not spend the address's second token.
        assert!(admission.within_ceiling(Some("a"), Some("y"), now).is_ok());
    }

    #[test]
    fn the_tracked_keys_stay_bounded() {
        let rate = Rate {
            per_minute: 60,
            burst: 1,
        };
        let admission = Admission::new(1, rate, rate);
        let start = Instant::now();
        for i in 0..(MAX_TRACKED_KEYS + 10) {
            let at = start + Duration::from_secs(i as u64);
            admission
                .within_ceiling(Some(&i.to_string()), None, at)
                .unwrap();
        }
        assert!(admission.lock().buckets.len() <= MAX_TRACKED_KEYS);
    }
}

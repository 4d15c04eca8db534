//! How many sign-in attempts a key may make, and how long it must wait (api.md,
//! Authentication; quality.md, Security).
//!
//! An attempt is counted when it is admitted, *before* the password is verified: a reservation.
//! Forty attempts sent at once therefore meet the limit together instead of all reading a count
//! taken before any of them failed. A failed attempt keeps its reservation; a successful one
//! releases it (and, for an account, clears the account's record).
//!
//! Per account: from the `limit`-th attempt, each further one waits 30 s × 2^(attempts − limit)
//! after the last, capped at the window; 15 quiet minutes forget the account's attempts. Per
//! client address: a higher limit, because a clinic's staff share one address and one person's
//! typos must not lock out the others; once reached, the address waits until its window (from
//! its first counted attempt) has passed.

use chrono::{DateTime, Duration, Utc};

/// Attempts older than this are forgotten.
pub const WINDOW: Duration = Duration::minutes(15);
const FIRST_BACK_OFF: Duration = Duration::seconds(30);

/// What a throttle key limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// One account (an email, whether or not an account has it).
    Account(u32),
    /// One client address.
    Address(u32),
}

/// The attempts counted against one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempts {
    pub count: u32,
    pub window_started_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// Admits one more attempt, or says how long to wait. `current` is the key's record, if any.
pub fn reserve(
    current: Option<Attempts>,
    limit: Limit,
    now: DateTime<Utc>,
) -> Result<Attempts, Duration> {
    let fresh = Attempts {
        count: 0,
        window_started_at: now,
        last_at: now,
    };
    let current = current
        .filter(|a| !forgotten(a, limit, now))
        .unwrap_or(fresh);
    if let Some(wait) = wait(&current, limit, now) {
        return Err(wait);
    }
    Ok(Attempts {
        count: current.count + 1,
        last_at: now,
        ..current
    })
}

/// Gives back an attempt that turned out not to be a failure.
pub fn release(attempts: Attempts) -> Attempts {
    Attempts {
        count: attempts.count.saturating_sub(1),
        ..attempts
    }
}

fn forgotten(attempts: &Attempts, limit: Limit, now: DateTime<Utc>) -> bool {
    match limit {
        Limit::Account(_) => now - attempts.last_at >= WINDOW,
        Limit::Address(_) => now - attempts.window_started_at >= WINDOW,
    }
}

fn wait(attempts: &Attempts, limit: Limit, now: DateTime<Utc>) -> Option<Duration> {
    let until = match limit {
        Limit::Account(limit) if attempts.count >= limit => {
            let doublings = (attempts.count - limit).min(10);
            attempts.last_at + (FIRST_BACK_OFF * 2i32.pow(doublings)).min(WINDOW)
        }
        Limit::Address(limit) if attempts.count >= limit => attempts.window_started_at + WINDOW,
        _ => return None,
    };
    let wait = until - now;
    (wait > Duration::zero()).then_some(wait)
}

/// Whole seconds for a Retry-After header, never zero.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    u64::try_from(wait.num_milliseconds()).map_or(1, |ms| ms.div_ceil(1000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn attempts(count: u32, window_started: i64, last: i64) -> Option<Attempts> {
        Some(Attempts {
            count,
            window_started_at: at(window_started),
            last_at: at(last),
        })
    }

    fn outcome(result: Result<Attempts, Duration>) -> Result<u32, i64> {
        result.map(|a| a.count).map_err(|w| w.num_seconds())
    }

    /// Per account: five attempts, then 30 s after the last, doubling, capped at the window;
    /// 15 quiet minutes forget them.
    #[test]
    fn account_reservation_table() {
        let limit = Limit::Account(5);
        let cases = [
            // (attempts so far, now, admitted as the nth or the wait in seconds)
            (None, 0, Ok(1)),
            (attempts(4, 0, 100), 100, Ok(5)),
            (attempts(5, 0, 100), 100, Err(30)),
            (attempts(5, 0, 100), 129, Err(1)),
            (attempts(5, 0, 100), 130, Ok(6)),
            (attempts(6, 0, 100), 100, Err(60)),
            (attempts(7, 0, 100), 110, Err(110)),
            (attempts(20, 0, 100), 100, Err(900)),
            (attempts(20, 0, 100), 1000, Ok(1)),
        ];
        for (current, now, expected) in cases {
            assert_eq!(
                outcome(reserve(current, limit, at(now))),
                expected,
                "{current:?} at {now}"
            );
        }
    }

    /// Per address: a higher limit, free again when the window from its first attempt ends.
    #[test]
    fn address_reservation_table() {
        let limit = Limit::Address(50);
        assert_eq!(outcome(reserve(attempts(49, 0, 10), limit, at(10))), Ok(50));
        assert_eq!(
            outcome(reserve(attempts(50, 0, 10), limit, at(10))),
            Err(890)
        );
        assert_eq!(outcome(reserve(attempts(50, 0, 10), limit, at(900))), Ok(1));
    }

    /// issue 12 (1): attempts made at the same instant meet the limit one by one, each seeing
    /// the reservations before it, so at most `limit` are admitted.
    #[test]
    fn simultaneous_attempts_are_admitted_up_to_the_limit() {
        let mut current = None;
        let mut admitted = 0;
        for _ in 0..40 {
            if let Ok(next) = reserve(current, Limit::Account(5), at(0)) {
                current = Some(next);
                admitted += 1;
            }
        }
        assert_eq!(admitted, 5);
    }

    #[test]
    fn a_released_attempt_is_given_back() {
        let reserved = reserve(attempts(3, 0, 5), Limit::Address(50), at(6)).unwrap();
        assert_eq!(release(reserved).count, 3);
        assert_eq!(
            release(Attempts {
                count: 0,
                ..reserved
            })
            .count,
            0
        );
    }

    #[test]
    fn retry_after_rounds_up_to_a_whole_second() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::milliseconds(30_001)), 31);
        assert_eq!(retry_after_seconds(Duration::seconds(30)), 30);
    }
}

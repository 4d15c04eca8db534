//! How long a sign-in must wait after failures (api.md, Authentication; quality.md, Security).
//!
//! Per account: from the `limit`-th failure in the window, each further attempt waits
//! 30 s × 2^(failures − limit) after the last failure, capped at the window. Per client address:
//! a higher limit, because a clinic's staff share one address and one person's typos must not
//! lock out the others; once reached, the address waits until its oldest failure in the window
//! ages out.

use chrono::{DateTime, Duration, Utc};

/// Failures older than this are forgotten.
pub const WINDOW: Duration = Duration::minutes(15);
const FIRST_BACK_OFF: Duration = Duration::seconds(30);

/// Failures of one throttle key within [`WINDOW`].
#[derive(Debug, Clone, Copy)]
pub struct Failures {
    pub count: u32,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

pub fn account_wait(failures: Failures, limit: u32, now: DateTime<Utc>) -> Option<Duration> {
    let last = failures.last.filter(|_| failures.count >= limit)?;
    let doublings = (failures.count - limit).min(10);
    let back_off = (FIRST_BACK_OFF * 2i32.pow(doublings)).min(WINDOW);
    positive(last + back_off - now)
}

pub fn address_wait(failures: Failures, limit: u32, now: DateTime<Utc>) -> Option<Duration> {
    let first = failures.first.filter(|_| failures.count >= limit)?;
    positive(first + WINDOW - now)
}

fn positive(wait: Duration) -> Option<Duration> {
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

    fn failures(count: u32, first: i64, last: i64) -> Failures {
        Failures {
            count,
            first: Some(at(first)),
            last: Some(at(last)),
        }
    }

    /// Per account, back-off after 5 failures, doubling, capped at the window.
    #[test]
    fn account_back_off_table() {
        let cases = [
            // (failures, last failure at, now, expected wait in seconds)
            (4, 100, 100, None),
            (5, 100, 100, Some(30)),
            (5, 100, 129, Some(1)),
            (5, 100, 130, None),
            (6, 100, 100, Some(60)),
            (7, 100, 110, Some(110)),
            (20, 100, 100, Some(900)),
        ];
        for (count, last, now, expected) in cases {
            let wait = account_wait(failures(count, 0, last), 5, at(now));
            assert_eq!(
                wait.map(|w| w.num_seconds()),
                expected,
                "{count} failures, now {now}"
            );
        }
    }

    /// Per address, a higher limit; free again when the oldest failure leaves the window.
    #[test]
    fn address_limit_table() {
        assert_eq!(address_wait(failures(49, 0, 10), 50, at(10)), None);
        assert_eq!(
            address_wait(failures(50, 0, 10), 50, at(10)).map(|w| w.num_seconds()),
            Some(890)
        );
        assert_eq!(address_wait(failures(50, 0, 10), 50, at(900)), None);
    }

    #[test]
    fn retry_after_rounds_up_to_a_whole_second() {
        assert_eq!(retry_after_seconds(Duration::milliseconds(1)), 1);
        assert_eq!(retry_after_seconds(Duration::milliseconds(30_001)), 31);
        assert_eq!(retry_after_seconds(Duration::seconds(30)), 30);
    }
}

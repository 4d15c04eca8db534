//! The rules of differentially private research answers (domain.md §8a) that need no noise:
//! what one patient may contribute, how the privacy budget renews and is split over the
//! statistics of an answer, and the post-processing that turns noisy counts into rates,
//! means and medians. Pure: the noise itself is added by `research::noise` (OpenDP).

use chrono::{DateTime, Duration, Utc};

vocabulary!(
    /// A researcher's tier of access (domain.md §8a): differentially private aggregates for
    /// every researcher; exact aggregates and the export under a grant.
    Tier { Aggregate = "aggregate", Controlled = "controlled" }
);

/// What one patient may add to one aggregate-tier answer: the first so many of each, in time
/// order (domain.md §8a, contribution bounding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Completed sessions counted per patient.
    pub sessions: u32,
    /// Courses counted per patient.
    pub courses: u32,
    /// Side effects (kinds) counted per patient.
    pub effects: u32,
    /// Reports of one kind counted per patient.
    pub reports: u32,
    /// Weeks of a trajectory a patient contributes a score to.
    pub weeks: u32,
    /// Measurement-plan items due counted per patient.
    pub due_items: u32,
    /// The largest charge of one session counted, in cents.
    pub charge_cents: i64,
}

/// Day counts (durability, time to response) are clamped to 0–90 and counted in whole-day bins.
pub const MAX_DAYS: usize = 90;

/// The whole-day bin of a day count: 0–90.
pub fn day_bin(days: f64) -> usize {
    if days.is_nan() || days <= 0.0 {
        return 0;
    }
    (days.floor() as usize).min(MAX_DAYS)
}

/// Hours to resolution are clamped to 0–72 and counted in whole-hour bins.
pub const MAX_HOURS: usize = 72;

pub fn hour_bin(hours: f64) -> usize {
    if hours.is_nan() || hours <= 0.0 {
        return 0;
    }
    (hours.floor() as usize).min(MAX_HOURS)
}

/// The budget period `now` falls in: fixed windows of `days` from the Unix epoch, so every
/// process agrees when a budget renews.
pub fn budget_period(now: DateTime<Utc>, days: u32) -> (DateTime<Utc>, DateTime<Utc>) {
    let length = i64::from(days.max(1)) * 86_400;
    let start = now.timestamp().div_euclid(length) * length;
    let start = DateTime::from_timestamp(start, 0).expect("a window start within range");
    (start, start + Duration::seconds(length))
}

/// ε for one statistic of an answer with `statistics` of them, the key selection taking
/// `key_shares` shares: the shares compose sequentially to `epsilon` (disjoint groups compose
/// in parallel, each patient being in one group).
pub fn share(epsilon: f64, statistics: usize, key_shares: usize) -> (f64, f64) {
    let per = epsilon / (statistics + key_shares) as f64;
    (per * key_shares as f64, per)
}

/// A count released with noise, as a count: never below zero.
pub fn count(noisy: i64) -> usize {
    usize::try_from(noisy.max(0)).unwrap_or(0)
}

/// A rate from a noisy numerator and denominator, clamped to [0, 1]; none without a positive
/// denominator.
pub fn rate(numerator: i64, denominator: i64) -> Option<f64> {
    (denominator > 0)
        .then(|| round4((numerator.max(0) as f64 / denominator as f64).clamp(0.0, 1.0)))
}

/// Mean and sample SD from noisy moments: n, Σx and Σx², each clamped to what `[0, max]` allows.
pub fn mean_sd(n: i64, sum: i64, squares: i64, max: f64) -> (Option<f64>, Option<f64>) {
    if n <= 0 {
        return (None, None);
    }
    let nf = n as f64;
    let mean = (sum as f64 / nf).clamp(0.0, max);
    let sd = (n > 1).then(|| {
        let variance = (squares as f64 - nf * mean * mean) / (nf - 1.0);
        variance.max(0.0).sqrt().min(max)
    });
    (Some(round4(mean)), sd.map(round4))
}

/// The Kaplan–Meier median from per-day-bin event and censoring counts (noisy ones clamped at
/// zero): the first bin where survival falls to 0.5 or below, events before censorings.
pub fn kaplan_meier_median_binned(events: &[i64], censored: &[i64]) -> Option<f64> {
    let events: Vec<f64> = events.iter().map(|e| (*e).max(0) as f64).collect();
    let censored: Vec<f64> = censored.iter().map(|c| (*c).max(0) as f64).collect();
    let mut at_risk: f64 = events.iter().sum::<f64>() + censored.iter().sum::<f64>();
    let mut survival = 1.0;
    for (day, (d, c)) in events.iter().zip(&censored).enumerate() {
        if *d > 0.0 && at_risk > 0.0 {
            survival *= (1.0 - d / at_risk).max(0.0);
            if survival <= 0.5 + 1e-12 {
                return Some(day as f64);
            }
        }
        at_risk -= d + c;
    }
    None
}

/// The median bin of a histogram (noisy counts clamped at zero); none when it is empty.
pub fn histogram_median(bins: &[i64]) -> Option<f64> {
    let bins: Vec<f64> = bins.iter().map(|b| (*b).max(0) as f64).collect();
    let total: f64 = bins.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let mut seen = 0.0;
    for (bin, n) in bins.iter().enumerate() {
        seen += n;
        if seen >= total / 2.0 {
            return Some(bin as f64);
        }
    }
    None
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// domain.md §8a: day counts clamped to 0–90, whole-day bins.
    #[test]
    fn bins() {
        for (days, bin) in [
            (-1.0, 0),
            (0.0, 0),
            (0.9, 0),
            (4.5, 4),
            (90.0, 90),
            (400.0, 90),
            (f64::NAN, 0),
        ] {
            assert_eq!(day_bin(days), bin, "{days}");
        }
        assert_eq!(hour_bin(3.5), 3);
        assert_eq!(hour_bin(100.0), MAX_HOURS);
    }

    /// Budgets renew at fixed instants every process computes alike.
    #[test]
    fn budget_periods_are_fixed_windows() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let (start, end) = budget_period(at("2026-12-01T12:00:00Z"), 30);
        assert_eq!(end - start, Duration::days(30));
        assert!(start <= at("2026-12-01T12:00:00Z") && at("2026-12-01T12:00:00Z") < end);
        assert_eq!(budget_period(start, 30).0, start);
        assert_eq!(budget_period(end, 30).0, end);
        assert_eq!(start.timestamp() % (30 * 86_400), 0);
    }

    #[test]
    fn shares_compose_to_the_query_epsilon() {
        let (keys, each) = share(4.0, 14, 2);
        assert!((keys + 14.0 * each - 4.0).abs() < 1e-12);
        assert!((keys - 2.0 * each).abs() < 1e-12);
    }

    /// Post-processing of noisy parts: clamped to what the statistic can be.
    #[test]
    fn derived_statistics_stay_in_range() {
        assert_eq!(count(-3), 0);
        assert_eq!(rate(5, 10), Some(0.5));
        assert_eq!(rate(12, 10), Some(1.0));
        assert_eq!(rate(-2, 10), Some(0.0));
        assert_eq!(rate(3, 0), None);
        assert_eq!(rate(3, -4), None);
        // 2, 4, 4, 4, 5, 5, 7, 9: n 8, Σ 40, Σx² 232 → mean 5, SD 2.1381.
        assert_eq!(mean_sd(8, 40, 232, 27.0), (Some(5.0), Some(2.1381)));
        assert_eq!(mean_sd(0, 40, 232, 27.0), (None, None));
        assert_eq!(mean_sd(1, 3, 9, 27.0), (Some(3.0), None));
        assert_eq!(
            mean_sd(3, 300, 0, 27.0).0,
            Some(27.0),
            "a mean past the scale is clamped"
        );
        assert_eq!(
            mean_sd(3, 30, 0, 27.0).1,
            Some(0.0),
            "a negative variance is zero"
        );
    }

    /// The binned Kaplan–Meier median is the exact one when times are whole days: the cases of
    /// `research::kaplan_meier_median`'s table.
    #[test]
    fn binned_kaplan_meier_medians() {
        let hist = |list: &[(usize, bool)]| {
            let (mut e, mut c) = (vec![0i64; 10], vec![0i64; 10]);
            for (day, event) in list {
                if *event {
                    e[*day] += 1;
                } else {
                    c[*day] += 1;
                }
            }
            (e, c)
        };
        type Case<'a> = (&'a [(usize, bool)], Option<f64>);
        let cases: [Case; 5] = [
            (&[(2, true), (4, true), (6, true), (8, true)], Some(4.0)),
            (&[(2, true), (3, false), (5, true), (9, false)], Some(5.0)),
            (&[(3, true), (3, false), (6, true), (7, false)], Some(6.0)),
            (&[(3, true), (3, true), (3, false), (7, false)], Some(3.0)),
            (&[(2, true), (3, false), (4, false), (5, false)], None),
        ];
        for (list, median) in cases {
            let (e, c) = hist(list);
            assert_eq!(kaplan_meier_median_binned(&e, &c), median, "{list:?}");
        }
        assert_eq!(kaplan_meier_median_binned(&[-5, 0], &[-1, 0]), None);
    }

    #[test]
    fn histogram_medians() {
        assert_eq!(histogram_median(&[0, 0, 3, 1, 1]), Some(2.0));
        assert_eq!(histogram_median(&[1, 1, 0, 1, 1]), Some(1.0));
        assert_eq!(histogram_median(&[-4, 0]), None);
    }
}

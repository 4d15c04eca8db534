//! How long one patient's infusions last (domain.md §6a): decision support for a clinician
//! booking the next infusion — the personal median durability, its trend across infusions,
//! when today's benefit is expected to fade, whether the next planned infusion comes in time,
//! a maintenance interval inside the deployment's bounds, exposure and cost. Each estimate
//! says when there is too little data for it instead of guessing. These figures prescribe
//! nothing.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

use super::outcomes::BenefitStatus;
use super::research::{kaplan_meier_median, median, Observation};
use super::schedule::{Slot, SlotStatus};

/// Said by every answer and chart that carries these figures.
pub const DECISION_SUPPORT: &str = "Decision support from this patient's own record: \
    estimates for a clinician's judgement, not a prescription.";

/// The deployment's settings of §6a.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DurabilitySettings {
    /// R: the most recent sessions with benefit of a course that the estimates read.
    pub recent: usize,
    /// G: a gap longer than this many days raises `benefit_gap_expected`.
    pub gap_margin_days: f64,
    /// The bounds of a suggested maintenance interval, in whole days.
    pub shortest_interval_days: u32,
    pub longest_interval_days: u32,
}

impl Default for DurabilitySettings {
    fn default() -> Self {
        Self {
            recent: 6,
            gap_margin_days: 3.0,
            shortest_interval_days: 7,
            longest_interval_days: 56,
        }
    }
}

/// Sessions with benefit the personal median needs, and `wore_off` sessions the trend needs.
pub const MEDIAN_NEEDS: usize = 3;
pub const TREND_NEEDS: usize = 3;

/// One completed session of a course, as §6 left it.
#[derive(Clone, Debug, PartialEq)]
pub struct Infusion {
    /// Its number among the course's completed sessions, from 1, in time order.
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub status: BenefitStatus,
    pub durability_days: Option<f64>,
    pub dose_mg: f64,
    pub charge_cents: Option<i64>,
}

impl Infusion {
    pub fn has_benefit(&self) -> bool {
        self.status.has_benefit()
    }
}

/// An estimate, or how much data it had and needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Estimate<T> {
    Known(T),
    TooLittleData { have: usize, need: usize },
}

impl<T> Estimate<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Estimate::Known(value) => Some(value),
            Estimate::TooLittleData { .. } => None,
        }
    }
}

/// A personal median durability: days, or — when the curve never falls to one half —
/// longer than the longest observed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Median {
    Days(f64),
    LongerThan(f64),
}

/// The trend of durability across a course's infusions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    pub days_per_infusion: f64,
    /// The `wore_off` sessions it rests on.
    pub sessions: usize,
}

/// §6a: the course's sessions with benefit, most recent first, at most `R`.
pub fn recent_with_benefit(course: &[Infusion], settings: &DurabilitySettings) -> Vec<Infusion> {
    let mut with_benefit: Vec<Infusion> =
        course.iter().filter(|i| i.has_benefit()).cloned().collect();
    with_benefit.sort_by_key(|i| std::cmp::Reverse(i.started_at));
    with_benefit.truncate(settings.recent);
    with_benefit
}

/// §6a personal median: Kaplan–Meier over the recent sessions with benefit (`wore_off` an
/// event, `sustained` censored; events before censorings at ties), at least 3 of them.
pub fn personal_median(recent: &[Infusion]) -> Estimate<Median> {
    let observed: Vec<Observation> = recent
        .iter()
        .filter_map(|i| {
            i.durability_days.map(|time| Observation {
                time,
                event: i.status == BenefitStatus::WoreOff,
            })
        })
        .collect();
    if observed.len() < MEDIAN_NEEDS {
        return Estimate::TooLittleData {
            have: observed.len(),
            need: MEDIAN_NEEDS,
        };
    }
    Estimate::Known(match kaplan_meier_median(&observed) {
        Some(days) => Median::Days(days),
        None => Median::LongerThan(observed.iter().map(|o| o.time).fold(0.0, f64::max)),
    })
}

/// The Theil–Sen slope: the median of the slopes of every pair of points, pairs with equal
/// `x` skipped; none without such a pair.
pub fn theil_sen(points: &[(f64, f64)]) -> Option<f64> {
    let mut slopes = Vec::new();
    for (i, (x1, y1)) in points.iter().enumerate() {
        for (x2, y2) in &points[i + 1..] {
            if x1 != x2 {
                slopes.push((y2 - y1) / (x2 - x1));
            }
        }
    }
    median(&slopes)
}

/// §6a trend: the Theil–Sen slope of the recent `wore_off` sessions' durability against their
/// infusion number, in days per infusion; at least 3 of them.
pub fn trend(recent: &[Infusion]) -> Estimate<Trend> {
    let points: Vec<(f64, f64)> = recent
        .iter()
        .filter(|i| i.status == BenefitStatus::WoreOff)
        .filter_map(|i| i.durability_days.map(|d| (f64::from(i.number), d)))
        .collect();
    let too_little = Estimate::TooLittleData {
        have: points.len(),
        need: TREND_NEEDS,
    };
    if points.len() < TREND_NEEDS {
        return too_little;
    }
    match theil_sen(&points) {
        Some(slope) => Estimate::Known(Trend {
            days_per_infusion: round1(slope),
            sessions: points.len(),
        }),
        None => too_little,
    }
}

/// §6a expected wear-off of the latest completed session: its own wear-off when it wore
/// off; when it is sustained or has no follow-up yet, its start plus the personal median;
/// none without a median, or when it brought no benefit to fade.
pub fn expected_wear_off(latest: &Infusion, median: &Estimate<Median>) -> Option<DateTime<Utc>> {
    let after = |days: f64| latest.started_at + days_duration(days);
    match (latest.status, median) {
        (BenefitStatus::WoreOff, _) => latest.durability_days.map(after),
        (
            BenefitStatus::Sustained | BenefitStatus::NoFollowUp,
            Estimate::Known(Median::Days(days)),
        ) => Some(after(*days)),
        _ => None,
    }
}

/// §6a expected benefit gap: days from the expected wear-off to the next planned infusion
/// (negative: the infusion comes before the benefit fades), unrounded: the margin is compared
/// with it, and [`one_decimal`] is for showing it.
pub fn benefit_gap_days(next_planned: DateTime<Utc>, expected_wear_off: DateTime<Utc>) -> f64 {
    (next_planned - expected_wear_off).num_milliseconds() as f64 / 86_400_000.0
}

/// Days as §6 reports them: to one decimal.
pub fn one_decimal(days: f64) -> f64 {
    round1(days)
}

/// §6a: a gap above the margin raises `benefit_gap_expected`; one of exactly the margin does
/// not.
pub fn gap_expected(gap_days: f64, settings: &DurabilitySettings) -> bool {
    gap_days > settings.gap_margin_days
}

/// §6a suggested maintenance interval: the personal median rounded down to whole days,
/// clamped to the deployment's bounds; none without a median.
pub fn suggested_interval_days(
    median: &Estimate<Median>,
    settings: &DurabilitySettings,
) -> Option<u32> {
    match median {
        Estimate::Known(Median::Days(days)) => {
            let whole = days.floor().max(0.0) as u32;
            Some(whole.clamp(
                settings.shortest_interval_days,
                settings.longest_interval_days,
            ))
        }
        _ => None,
    }
}

/// A course's figures of §6a, from its completed infusions in time order and its next planned
/// infusion.
#[derive(Clone, Debug, PartialEq)]
pub struct CourseFigures {
    pub median: Estimate<Median>,
    pub trend: Estimate<Trend>,
    pub expected_wear_off: Option<DateTime<Utc>>,
    /// Unrounded (see [`benefit_gap_days`]).
    pub gap_days: Option<f64>,
    pub gap_expected: bool,
    pub suggested_interval_days: Option<u32>,
}

/// §6a for one course: what the durability read shows and what raises `benefit_gap_expected`
/// (on the latest infusion), computed once for both.
pub fn course_figures(
    infusions: &[Infusion],
    next_planned: Option<DateTime<Utc>>,
    settings: &DurabilitySettings,
) -> CourseFigures {
    let recent = recent_with_benefit(infusions, settings);
    let median = personal_median(&recent);
    let expected_wear_off = infusions
        .iter()
        .max_by_key(|i| i.started_at)
        .and_then(|latest| expected_wear_off(latest, &median));
    let gap_days = next_planned
        .zip(expected_wear_off)
        .map(|(next, wear_off)| benefit_gap_days(next, wear_off));
    CourseFigures {
        trend: trend(&recent),
        expected_wear_off,
        gap_days,
        gap_expected: gap_days.is_some_and(|g| gap_expected(g, settings)),
        suggested_interval_days: suggested_interval_days(&median, settings),
        median,
    }
}

/// §6a next planned infusion: the earliest open planned day after `today`, at its start
/// (00:00 UTC; slots are days).
pub fn next_planned(slots: &[Slot], today: NaiveDate) -> Option<DateTime<Utc>> {
    slots
        .iter()
        .filter(|slot| slot.status == SlotStatus::Open && slot.planned_date > today)
        .map(|slot| slot.planned_date)
        .min()
        .map(|day| day.and_time(NaiveTime::MIN).and_utc())
}

/// The `benefit_gap_expected` flag's detail.
pub fn gap_detail(figures: &CourseFigures, next_planned: DateTime<Utc>) -> String {
    format!(
        "benefit expected to wear off {:.1} days before the next planned infusion on {}",
        figures.gap_days.unwrap_or_default(),
        next_planned.format("%Y-%m-%d")
    )
}

/// Completed sessions and their total dose in the last 28 and 90 days.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exposure {
    pub sessions_28_days: usize,
    pub dose_mg_28_days: f64,
    pub sessions_90_days: usize,
    pub dose_mg_90_days: f64,
}

/// §6a exposure over the patient's completed sessions: those started within the last 28 (90)
/// days up to `now` — `now − 28 d` itself excluded.
pub fn exposure(sessions: &[Infusion], now: DateTime<Utc>) -> Exposure {
    let within = |days: i64| {
        let since = now - Duration::days(days);
        let inside: Vec<&Infusion> = sessions
            .iter()
            .filter(|s| s.started_at > since && s.started_at <= now)
            .collect();
        (inside.len(), round1(inside.iter().map(|s| s.dose_mg).sum()))
    };
    let ((sessions_28_days, dose_mg_28_days), (sessions_90_days, dose_mg_90_days)) =
        (within(28), within(90));
    Exposure {
        sessions_28_days,
        dose_mg_28_days,
        sessions_90_days,
        dose_mg_90_days,
    }
}

/// §6a cost: the charges of the sessions with benefit over their summed durability in weeks,
/// in cents per benefit-week; none when that sum is 0. A session whose charge was not recorded
/// is left out of both sums (its benefit-weeks are not free).
pub fn charge_per_benefit_week_cents(sessions: &[Infusion]) -> Option<f64> {
    let charged = sessions.iter().filter(|s| s.has_benefit()).filter_map(|s| {
        s.charge_cents
            .map(|c| (c, s.durability_days.unwrap_or(0.0)))
    });
    let (charges, days) = charged.fold((0i64, 0.0), |(c, d), (charge, lasted)| {
        (c + charge, d + lasted)
    });
    (days > 0.0).then(|| (charges as f64 / (days / 7.0) * 100.0).round() / 100.0)
}

/// The charges of every completed session, in cents.
pub fn charges_to_date_cents(sessions: &[Infusion]) -> i64 {
    sessions.iter().filter_map(|s| s.charge_cents).sum()
}

fn days_duration(days: f64) -> Duration {
    Duration::milliseconds((days * 86_400_000.0).round() as i64)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use BenefitStatus::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// Infusion `number`, `days` after 2026-09-01T09:00Z, with its §6 status and durability.
    fn infusion(number: u32, day: i64, status: BenefitStatus, durability: Option<f64>) -> Infusion {
        Infusion {
            number,
            started_at: at("2026-09-01T09:00:00Z") + Duration::days(day),
            status,
            durability_days: durability,
            dose_mg: 35.0,
            charge_cents: Some(40_000),
        }
    }

    fn sessions(durabilities: &[(BenefitStatus, f64)]) -> Vec<Infusion> {
        durabilities
            .iter()
            .enumerate()
            .map(|(i, (status, d))| infusion(i as u32 + 1, 14 * i as i64, *status, Some(*d)))
            .collect()
    }

    #[test]
    fn the_personal_median_is_kaplan_meiers_over_sessions_with_benefit() {
        let cases = [
            (
                "§6a median: S(5)=2/3, S(8)=1/3 ≤ 0.5",
                vec![(WoreOff, 5.0), (WoreOff, 8.0), (Sustained, 12.0)],
                Estimate::Known(Median::Days(8.0)),
            ),
            (
                "§6a median: a censoring at 4 leaves 3 at risk; S(6)=2/3, S(10)=0",
                vec![
                    (Sustained, 4.0),
                    (WoreOff, 6.0),
                    (Sustained, 6.0),
                    (WoreOff, 10.0),
                ],
                Estimate::Known(Median::Days(10.0)),
            ),
            (
                "§6a median: events before censorings at a tie (else S(7) would be 1/2)",
                vec![
                    (WoreOff, 7.0),
                    (Sustained, 7.0),
                    (Sustained, 7.0),
                    (WoreOff, 20.0),
                ],
                Estimate::Known(Median::Days(20.0)),
            ),
            (
                "§6a median: never at 0.5 — longer than the longest observed",
                vec![(WoreOff, 3.0), (Sustained, 9.0), (Sustained, 12.0)],
                Estimate::Known(Median::LongerThan(12.0)),
            ),
            (
                "§6a median: every session censored",
                vec![(Sustained, 10.0), (Sustained, 20.0), (Sustained, 30.0)],
                Estimate::Known(Median::LongerThan(30.0)),
            ),
            (
                "§6a median: needs at least 3 sessions with benefit",
                vec![(WoreOff, 5.0), (WoreOff, 8.0)],
                Estimate::TooLittleData { have: 2, need: 3 },
            ),
        ];
        for (rule, durabilities, expected) in cases {
            assert_eq!(
                personal_median(&sessions(&durabilities)),
                expected,
                "{rule}"
            );
        }
    }

    #[test]
    fn the_estimates_read_the_last_r_sessions_with_benefit_only() {
        let mut course = sessions(&[(WoreOff, 30.0), (WoreOff, 30.0), (WoreOff, 30.0)]);
        course.push(infusion(4, 60, NoBenefit, None));
        course.push(infusion(5, 70, NoBaseline, None));
        course.extend(
            [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
                .iter()
                .enumerate()
                .map(|(i, d)| infusion(6 + i as u32, 80 + 7 * i as i64, WoreOff, Some(*d))),
        );
        let settings = DurabilitySettings::default();
        let recent = recent_with_benefit(&course, &settings);
        assert_eq!(recent.len(), 6, "§6a: at most R = 6");
        assert_eq!(recent[0].number, 11, "§6a: most recent first");
        assert!(recent.iter().all(|i| i.durability_days == Some(2.0)));
        assert_eq!(personal_median(&recent), Estimate::Known(Median::Days(2.0)));
    }

    #[test]
    fn the_trend_is_theil_sens_slope_of_the_wore_off_sessions() {
        let slope = |points: &[(f64, f64)]| theil_sen(points);
        // Two points: one pair, its slope.
        assert_eq!(slope(&[(1.0, 10.0), (2.0, 14.0)]), Some(4.0));
        // Three: pairwise slopes 2, 5, 8 — the median 5.
        assert_eq!(slope(&[(1.0, 10.0), (2.0, 12.0), (3.0, 20.0)]), Some(5.0));
        // Seven, with ties in durability: 21 pairwise slopes, the 11th in order is 1.
        let seven: Vec<(f64, f64)> = [10.0, 10.0, 12.0, 12.0, 12.0, 15.0, 30.0]
            .iter()
            .enumerate()
            .map(|(i, y)| (i as f64 + 1.0, *y))
            .collect();
        assert_eq!(slope(&seven), Some(1.0));
        // Pairs with equal infusion numbers are skipped: slopes 2 and −2, the median 0.
        assert_eq!(slope(&[(2.0, 10.0), (2.0, 14.0), (3.0, 12.0)]), Some(0.0));
        assert_eq!(slope(&[(2.0, 10.0), (2.0, 14.0)]), None);

        let course = sessions(&[
            (WoreOff, 10.0),
            (Sustained, 40.0),
            (WoreOff, 12.0),
            (WoreOff, 20.0),
        ]);
        assert_eq!(
            trend(&course),
            Estimate::Known(Trend {
                days_per_infusion: 3.3,
                sessions: 3
            }),
            "§6a trend: (1,10), (3,12), (4,20): slopes 1, 3.33, 8 — the sustained one left out"
        );
        let two = sessions(&[(WoreOff, 10.0), (Sustained, 40.0), (WoreOff, 12.0)]);
        assert_eq!(trend(&two), Estimate::TooLittleData { have: 2, need: 3 });
    }

    #[test]
    fn the_expected_wear_off_is_the_sessions_own_or_its_start_plus_the_median() {
        let median = Estimate::Known(Median::Days(14.0));
        let start = "2026-10-01T09:00:00Z";
        let latest = |status, durability| Infusion {
            started_at: at(start),
            ..infusion(4, 0, status, durability)
        };
        let cases = [
            (
                "§6a: it wore off — its own wear-off",
                latest(WoreOff, Some(12.5)),
                median,
                Some("2026-10-13T21:00:00Z"),
            ),
            (
                "§6a: sustained — start + median",
                latest(Sustained, Some(3.0)),
                median,
                Some("2026-10-15T09:00:00Z"),
            ),
            (
                "§6a: no follow-up yet — start + median",
                latest(NoFollowUp, None),
                median,
                Some("2026-10-15T09:00:00Z"),
            ),
            (
                "§6a: sustained without a median",
                latest(Sustained, Some(3.0)),
                Estimate::Known(Median::LongerThan(30.0)),
                None,
            ),
            (
                "§6a: too little data for a median",
                latest(NoFollowUp, None),
                Estimate::TooLittleData { have: 1, need: 3 },
                None,
            ),
            (
                "no benefit, nothing to fade",
                latest(NoBenefit, None),
                median,
                None,
            ),
        ];
        for (rule, latest, median, expected) in cases {
            assert_eq!(
                expected_wear_off(&latest, &median),
                expected.map(at),
                "{rule}"
            );
        }
    }

    #[test]
    fn a_gap_is_flagged_only_above_the_margin() {
        let settings = DurabilitySettings::default();
        let wear_off = at("2026-10-17T09:00:00Z");
        let cases = [
            ("2026-10-20T09:00:00Z", 3.0, false),
            // 3.04 days shows as 3.0 but is above the margin.
            ("2026-10-20T09:57:36Z", 3.04, true),
            ("2026-10-20T11:24:00Z", 3.1, true),
            ("2026-10-16T09:00:00Z", -1.0, false),
        ];
        for (next, gap, flagged) in cases {
            let days = benefit_gap_days(at(next), wear_off);
            assert!((days - gap).abs() < 1e-9, "{next}: {days}");
            assert_eq!(gap_expected(days, &settings), flagged, "§6a: G = 3, {next}");
        }
        assert_eq!(one_decimal(3.04), 3.0);
    }

    #[test]
    fn the_suggested_interval_is_the_median_in_whole_days_within_the_bounds() {
        let settings = DurabilitySettings::default();
        let cases = [
            (Estimate::Known(Median::Days(20.7)), Some(20)),
            (Estimate::Known(Median::Days(5.9)), Some(7)),
            (Estimate::Known(Median::Days(80.0)), Some(56)),
            (Estimate::Known(Median::LongerThan(30.0)), None),
            (Estimate::TooLittleData { have: 2, need: 3 }, None),
        ];
        for (median, expected) in cases {
            assert_eq!(
                suggested_interval_days(&median, &settings),
                expected,
                "§6a: {median:?}"
            );
        }
    }

    #[test]
    fn exposure_counts_the_last_28_and_90_days_and_cost_the_benefit_weeks() {
        let now = at("2026-12-01T09:00:00Z");
        let ago = |days: f64, dose| Infusion {
            started_at: now - days_duration(days),
            dose_mg: dose,
            ..infusion(1, 0, NoBenefit, None)
        };
        let record = [
            ago(1.0, 35.0),
            ago(27.9, 35.0),
            ago(28.0, 35.0),
            ago(60.0, 40.0),
            ago(90.0, 50.0),
        ];
        assert_eq!(
            exposure(&record, now),
            Exposure {
                sessions_28_days: 2,
                dose_mg_28_days: 70.0,
                sessions_90_days: 4,
                dose_mg_90_days: 145.0,
            },
            "§6a: 28.0 and 90.0 days ago are outside"
        );
        let paid = sessions(&[(WoreOff, 7.0), (Sustained, 14.0)]);
        let mut with_none = paid.clone();
        with_none.push(infusion(3, 30, NoBenefit, None));
        // 80 000 cents over 21 days = 3 weeks.
        assert_eq!(charge_per_benefit_week_cents(&with_none), Some(26_666.67));
        assert_eq!(charges_to_date_cents(&with_none), 120_000);
        let mut unpriced = paid.clone();
        unpriced.push(Infusion {
            charge_cents: None,
            ..infusion(3, 30, WoreOff, Some(70.0))
        });
        assert_eq!(
            charge_per_benefit_week_cents(&unpriced),
            Some(26_666.67),
            "a session without a recorded charge is left out of both sums"
        );
        let zero = sessions(&[(WoreOff, 0.0), (Sustained, 0.0)]);
        assert_eq!(
            charge_per_benefit_week_cents(&zero),
            None,
            "§6a: null when the sum is 0"
        );
    }
}

//! Outcomes (domain.md §6): each infusion's benefit and how long it lasts, whether it wears
//! off within days, and each course's response and remission. Pure arithmetic on instants and
//! severities; the caller supplies the records.

use crate::domain::ids::AssessmentId;
use chrono::{DateTime, Duration, Utc};

use crate::domain::instrument::{Definition, ResponseRule};

/// The default wear-off threshold W, in days (a deployment setting).
pub const DEFAULT_WEAR_OFF_DAYS: f64 = 7.0;
const BASELINE_LOOKBACK: Duration = Duration::days(7);
const WINDOW_CAP: Duration = Duration::days(90);
const COURSE_BASELINE_LOOKBACK: Duration = Duration::days(14);
const END_OF_INDUCTION_FROM: Duration = Duration::days(28);
const END_OF_INDUCTION_TO: Duration = Duration::days(42);

vocabulary!(
    /// What became of one infusion's benefit (§6 steps 1–4).
    BenefitStatus {
        NoBaseline = "no_baseline",
        NoFollowUp = "no_follow_up",
        NoBenefit = "no_benefit",
        WoreOff = "wore_off",
        Sustained = "sustained",
    }
);

/// One score of the course's primary instrument, as severity (lower is better).
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub id: AssessmentId,
    pub taken_at: DateTime<Utc>,
    pub severity: i32,
    /// The total, for remission cut-offs, which are stated on totals.
    pub total: i32,
}

impl BenefitStatus {
    /// §6a: a session with benefit wore off or is sustained.
    pub fn has_benefit(self) -> bool {
        matches!(self, BenefitStatus::WoreOff | BenefitStatus::Sustained)
    }
}

/// One infusion's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionOutcome {
    pub status: BenefitStatus,
    pub baseline: Option<i32>,
    pub nadir: Option<i32>,
    pub gain: Option<i32>,
    /// Days, to one decimal, to wear-off or (censored) to the last score in the window.
    pub durability_days: Option<f64>,
    pub censored: bool,
    pub wears_off_within_days: bool,
}

/// The instants whose scores a session's outcome reads (§6 steps 1–2), both ends included:
/// from 7 days before the session to the end of its follow-up window (the next completed
/// session, or 90 days) — or to the session itself when that window is empty. A score taken
/// outside them cannot move the outcome.
pub fn session_reads(
    started_at: DateTime<Utc>,
    next_session: Option<DateTime<Utc>>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let end = follow_up_end(started_at, next_session);
    (started_at - BASELINE_LOOKBACK, end.max(started_at))
}

/// Whether a score taken at `taken_at` is read by the outcome of the session at `started_at`:
/// its baseline window [t_s − 7 d, t_s] or its follow-up window (t_s, end).
pub fn session_reads_score_at(
    started_at: DateTime<Utc>,
    next_session: Option<DateTime<Utc>>,
    taken_at: DateTime<Utc>,
) -> bool {
    taken_at >= started_at - BASELINE_LOOKBACK
        && (taken_at <= started_at || taken_at < follow_up_end(started_at, next_session))
}

/// The end, not included, of a session's follow-up window (§6 step 2).
fn follow_up_end(started_at: DateTime<Utc>, next_session: Option<DateTime<Utc>>) -> DateTime<Utc> {
    next_session.map_or(started_at + WINDOW_CAP, |next| {
        next.min(started_at + WINDOW_CAP)
    })
}

/// The instants, both included, whose scores decide a course's baseline and end-of-induction
/// status and any response in the first 42 days (§6 "Course response"): from 14 days before
/// the first session to 42 days after it. A response later than that is the first only when
/// none falls in here.
pub fn course_induction_reads(first_session: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        first_session - COURSE_BASELINE_LOOKBACK,
        first_session + END_OF_INDUCTION_TO,
    )
}

/// Whether a score taken at `taken_at` is in the window of a course's baseline (§6: the 14
/// days up to the first session).
pub fn in_course_baseline_window(first_session: DateTime<Utc>, taken_at: DateTime<Utc>) -> bool {
    taken_at >= first_session - COURSE_BASELINE_LOOKBACK && taken_at <= first_session
}

/// Days between two instants, to one decimal.
pub fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    let days = (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 86_400e6;
    (days * 10.0).round() / 10.0
}

/// §6 "Session benefit and durability" for the session at `started_at`.
///
/// `scores` are the patient's live scores of the course's primary instrument in time order;
/// `next_session` is the start of the patient's next completed session; `mic` the
/// instrument's minimal important change; `wear_off_days` is W.
pub fn session_outcome(
    started_at: DateTime<Utc>,
    next_session: Option<DateTime<Utc>>,
    scores: &[Score],
    mic: i32,
    wear_off_days: f64,
) -> SessionOutcome {
    let none = |status| SessionOutcome {
        status,
        baseline: None,
        nadir: None,
        gain: None,
        durability_days: None,
        censored: false,
        wears_off_within_days: false,
    };
    // Step 1: the latest score in [t_s − 7 d, t_s].
    let Some(baseline) = scores
        .iter()
        .filter(|s| s.taken_at >= started_at - BASELINE_LOOKBACK && s.taken_at <= started_at)
        .max_by_key(|s| s.taken_at)
        .map(|s| s.severity)
    else {
        return none(BenefitStatus::NoBaseline);
    };
    // Step 2: scores in (t_s, min(t_next, t_s + 90 d)).
    let end = follow_up_end(started_at, next_session);
    let window: Vec<&Score> = scores
        .iter()
        .filter(|s| s.taken_at > started_at && s.taken_at < end)
        .collect();
    if window.is_empty() {
        return SessionOutcome {
            baseline: Some(baseline),
            ..none(BenefitStatus::NoFollowUp)
        };
    }
    // Step 3: the lowest severity, the first if tied.
    let (nadir_index, nadir) =
        window
            .iter()
            .enumerate()
            .fold((0, window[0]), |(bi, best), (i, s)| {
                if s.severity < best.severity {
                    (i, s)
                } else {
                    (bi, best)
                }
            });
    let gain = baseline - nadir.severity;
    let measured = SessionOutcome {
        baseline: Some(baseline),
        nadir: Some(nadir.severity),
        gain: Some(gain),
        ..none(BenefitStatus::NoBenefit)
    };
    if gain < mic {
        return measured;
    }
    // Step 4: the first score after the nadir that has lost half the gain.
    let threshold = f64::from(baseline) - f64::from(gain) / 2.0;
    let wear = window[nadir_index + 1..]
        .iter()
        .find(|s| f64::from(s.severity) >= threshold);
    match wear {
        Some(wear) => {
            let durability = days_between(started_at, wear.taken_at);
            SessionOutcome {
                status: BenefitStatus::WoreOff,
                durability_days: Some(durability),
                // Step 5.
                wears_off_within_days: durability <= wear_off_days,
                ..measured
            }
        }
        None => {
            let last = window.last().map_or(started_at, |s| s.taken_at);
            SessionOutcome {
                status: BenefitStatus::Sustained,
                durability_days: Some(days_between(started_at, last)),
                censored: true,
                ..measured
            }
        }
    }
}

/// One course's response (§6 "Course response").
#[derive(Clone, Debug, PartialEq)]
pub struct CourseOutcome {
    pub baseline: Option<i32>,
    /// The latest score 28–42 days after the first session, if any.
    pub end_of_induction_score: Option<AssessmentId>,
    pub end_of_induction_response: Option<bool>,
    pub end_of_induction_remission: Option<bool>,
    pub time_to_response_days: Option<f64>,
}

/// Whether a severity is a response against the course baseline under the instrument's rule.
pub fn is_response(rule: ResponseRule, baseline: i32, severity: i32) -> bool {
    match rule {
        ResponseRule::PercentFall(fraction) => {
            f64::from(severity) <= f64::from(baseline) * (1.0 - fraction)
        }
        ResponseRule::PointsFall(points) => baseline - severity >= points,
    }
}

/// §6 "Course response" from the course's first completed session and the scores of its
/// primary instrument; `remission_max` is the deployment's cut-off for that instrument.
pub fn course_outcome(
    first_session: Option<DateTime<Utc>>,
    scores: &[Score],
    instrument: &Definition,
    remission_max: Option<i32>,
) -> CourseOutcome {
    let empty = CourseOutcome {
        baseline: None,
        end_of_induction_score: None,
        end_of_induction_response: None,
        end_of_induction_remission: None,
        time_to_response_days: None,
    };
    let Some(first) = first_session else {
        return empty;
    };
    let baseline = scores
        .iter()
        .filter(|s| s.taken_at >= first - COURSE_BASELINE_LOOKBACK && s.taken_at <= first)
        .max_by_key(|s| s.taken_at)
        .map(|s| s.severity);
    let end_of_induction = scores
        .iter()
        .filter(|s| {
            s.taken_at >= first + END_OF_INDUCTION_FROM && s.taken_at <= first + END_OF_INDUCTION_TO
        })
        .max_by_key(|s| s.taken_at);
    let responds = |s: &Score| match (instrument.response, baseline) {
        (Some(rule), Some(b)) => Some(is_response(rule, b, s.severity)),
        _ => None,
    };
    let first_response = scores
        .iter()
        .filter(|s| s.taken_at > first)
        .find(|s| responds(s) == Some(true));
    CourseOutcome {
        baseline,
        end_of_induction_score: end_of_induction.map(|s| s.id),
        end_of_induction_response: end_of_induction.and_then(responds),
        end_of_induction_remission: end_of_induction
            .and_then(|s| remission_max.map(|cut_off| s.total <= cut_off)),
        time_to_response_days: first_response.map(|s| days_between(first, s.taken_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instrument::Instrument;

    fn t(days: f64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
            + Duration::seconds((days * 86_400.0) as i64)
    }

    fn scores(points: &[(f64, i32)]) -> Vec<Score> {
        points
            .iter()
            .enumerate()
            .map(|(i, (d, sev))| Score {
                id: AssessmentId::numbered(i as u128),
                taken_at: t(*d),
                severity: *sev,
                total: *sev,
            })
            .collect()
    }

    // §6 steps 1–2: a score is read by a session's outcome in [t_s − 7 d, t_s] and in
    // (t_s, min(t_next, t_s + 90 d)); nowhere else.
    #[test]
    fn a_session_reads_the_scores_of_its_two_windows_only() {
        let cases = [
            // (score day, next session day, read?)
            (-7.0, None, true),
            (-7.1, None, false),
            (0.0, None, true),
            (89.9, None, true),
            (90.0, None, false),
            (9.9, Some(10.0), true),
            (10.0, Some(10.0), false),
            (0.0, Some(0.0), true),
            (0.1, Some(0.0), false),
        ];
        for (day, next, read) in cases {
            assert_eq!(
                session_reads_score_at(t(0.0), next.map(t), t(day)),
                read,
                "score on day {day}, next session {next:?}"
            );
            let (from, to) = session_reads(t(0.0), next.map(t));
            if read {
                assert!(from <= t(day) && t(day) <= to, "day {day} within the span");
            }
        }
    }

    // §6 "Course response": the baseline window is the 14 days up to the first session, ends
    // included; the induction span runs on to 42 days after it.
    #[test]
    fn a_course_baseline_window_is_the_fourteen_days_up_to_the_first_session() {
        for (day, inside) in [(-14.0, true), (-14.1, false), (0.0, true), (0.1, false)] {
            assert_eq!(
                in_course_baseline_window(t(0.0), t(day)),
                inside,
                "day {day}"
            );
        }
        assert_eq!(course_induction_reads(t(0.0)), (t(-14.0), t(42.0)));
    }

    fn outcome(points: &[(f64, i32)], next: Option<f64>) -> SessionOutcome {
        session_outcome(
            t(0.0),
            next.map(t),
            &scores(points),
            5,
            DEFAULT_WEAR_OFF_DAYS,
        )
    }

    /// Each row: the step of §6 it pins, the scores (day, severity), the next session's day,
    /// and the expected (status, baseline, nadir, gain, durability, censored, within W).
    #[test]
    fn session_outcome_table() {
        use BenefitStatus::*;
        type Row = (
            &'static str,
            Vec<(f64, i32)>,
            Option<f64>,
            (
                BenefitStatus,
                Option<i32>,
                Option<i32>,
                Option<i32>,
                Option<f64>,
                bool,
                bool,
            ),
        );
        let rows: Vec<Row> = vec![
            (
                "step 1: no score in the 7 days before",
                vec![(-7.5, 20), (2.0, 10)],
                None,
                (NoBaseline, None, None, None, None, false, false),
            ),
            (
                "step 1: a score exactly 7 days before counts",
                vec![(-7.0, 20), (2.0, 10)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(2.0),
                    true,
                    false,
                ),
            ),
            (
                "step 1: a score at the session's instant is the baseline",
                vec![(-3.0, 25), (0.0, 20), (2.0, 10)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(2.0),
                    true,
                    false,
                ),
            ),
            (
                "step 1: the latest score in the lookback is the baseline",
                vec![(-5.0, 10), (-1.0, 20), (2.0, 12)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(12),
                    Some(8),
                    Some(2.0),
                    true,
                    false,
                ),
            ),
            (
                "step 2: nothing after the session",
                vec![(-1.0, 20)],
                None,
                (NoFollowUp, Some(20), None, None, None, false, false),
            ),
            (
                "step 2: the next session cuts the window",
                vec![(-1.0, 20), (3.0, 10)],
                Some(3.0),
                (NoFollowUp, Some(20), None, None, None, false, false),
            ),
            (
                "step 2: the 90-day cap",
                vec![(-1.0, 20), (90.0, 10)],
                None,
                (NoFollowUp, Some(20), None, None, None, false, false),
            ),
            (
                "step 2: just inside the 90-day cap",
                vec![(-1.0, 20), (89.9, 10)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(89.9),
                    true,
                    false,
                ),
            ),
            (
                "step 3: gain below the MIC",
                vec![(-1.0, 20), (2.0, 16)],
                None,
                (NoBenefit, Some(20), Some(16), Some(4), None, false, false),
            ),
            (
                "step 3: gain equal to the MIC is a benefit",
                vec![(-1.0, 20), (2.0, 15)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(15),
                    Some(5),
                    Some(2.0),
                    true,
                    false,
                ),
            ),
            (
                "step 3: ties at the nadir take the first",
                vec![(-1.0, 20), (2.0, 10), (3.0, 15), (4.0, 10)],
                None,
                (
                    WoreOff,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(3.0),
                    false,
                    true,
                ),
            ),
            (
                "step 4: a score exactly at b - gain/2 is wear-off",
                vec![(-1.0, 20), (2.0, 10), (5.0, 15)],
                None,
                (
                    WoreOff,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(5.0),
                    false,
                    true,
                ),
            ),
            (
                "step 4: just under b - gain/2 is not",
                vec![(-1.0, 20), (2.0, 10), (5.0, 14)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(5.0),
                    true,
                    false,
                ),
            ),
            (
                "step 4: half of an odd gain",
                vec![(-1.0, 20), (2.0, 9), (5.0, 14)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(9),
                    Some(11),
                    Some(5.0),
                    true,
                    false,
                ),
            ),
            (
                "step 4: half of an odd gain, reached",
                vec![(-1.0, 20), (2.0, 9), (5.0, 15)],
                None,
                (WoreOff, Some(20), Some(9), Some(11), Some(5.0), false, true),
            ),
            (
                "step 4: only scores after the nadir count",
                vec![(-1.0, 20), (1.0, 18), (2.0, 10)],
                None,
                (
                    Sustained,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(2.0),
                    true,
                    false,
                ),
            ),
            (
                "step 5: durability exactly W is within days",
                vec![(-1.0, 20), (2.0, 10), (7.0, 16)],
                None,
                (
                    WoreOff,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(7.0),
                    false,
                    true,
                ),
            ),
            (
                "step 5: just over W is not",
                vec![(-1.0, 20), (2.0, 10), (7.1, 16)],
                None,
                (
                    WoreOff,
                    Some(20),
                    Some(10),
                    Some(10),
                    Some(7.1),
                    false,
                    false,
                ),
            ),
        ];
        for (step, points, next, expected) in rows {
            let o = outcome(&points, next);
            let got = (
                o.status,
                o.baseline,
                o.nadir,
                o.gain,
                o.durability_days,
                o.censored,
                o.wears_off_within_days,
            );
            assert_eq!(got, expected, "{step}");
        }
    }

    /// §5 and §6: daily_mood's severity is 10 − score, so a rising mood is a benefit.
    #[test]
    fn daily_mood_is_reversed_before_the_arithmetic() {
        let mood = Instrument::DailyMood.definition();
        let points: Vec<(f64, i32)> = [(-1.0, 2), (2.0, 8), (5.0, 5)]
            .iter()
            .map(|(d, score)| (*d, mood.severity(*score)))
            .collect();
        let o = session_outcome(t(0.0), None, &scores(&points), mood.mic.unwrap(), 7.0);
        assert_eq!(
            (o.status, o.baseline, o.nadir, o.gain),
            (BenefitStatus::WoreOff, Some(8), Some(2), Some(6))
        );
        assert_eq!(o.durability_days, Some(5.0));
    }

    /// §6 course response: the percentage rule and the points rule, at their boundaries.
    #[test]
    fn response_rules_at_their_boundaries() {
        use ResponseRule::*;
        assert!(is_response(PercentFall(0.5), 20, 10));
        assert!(!is_response(PercentFall(0.5), 20, 11));
        assert!(is_response(PercentFall(0.35), 20, 13));
        assert!(!is_response(PercentFall(0.35), 20, 14));
        assert!(is_response(PointsFall(10), 50, 40));
        assert!(!is_response(PointsFall(10), 50, 41));
    }

    #[test]
    fn course_response_table() {
        let phq9 = Instrument::Phq9.definition();
        let first = Some(t(0.0));
        type Case = (&'static str, Vec<(f64, i32)>, CourseOutcome);
        let cases: Vec<Case> = vec![
            (
                "baseline from the 14 days before; response at day 10; end of induction at day 35, a remission",
                vec![(-15.0, 26), (-14.0, 22), (3.0, 14), (10.0, 11), (12.0, 10), (35.0, 4), (43.0, 20)],
                CourseOutcome {
                    baseline: Some(22),
                    end_of_induction_score: Some(AssessmentId::numbered(5)),
                    end_of_induction_response: Some(true),
                    end_of_induction_remission: Some(true),
                    time_to_response_days: Some(10.0),
                },
            ),
            (
                "no baseline: no response can be judged, remission still can",
                vec![(-15.0, 26), (30.0, 4)],
                CourseOutcome {
                    baseline: None,
                    end_of_induction_score: Some(AssessmentId::numbered(1)),
                    end_of_induction_response: None,
                    end_of_induction_remission: Some(true),
                    time_to_response_days: None,
                },
            ),
            (
                "the latest score in days 28-42 decides; day 42 counts",
                vec![(0.0, 20), (28.0, 5), (42.0, 12)],
                CourseOutcome {
                    baseline: Some(20),
                    end_of_induction_score: Some(AssessmentId::numbered(2)),
                    end_of_induction_response: Some(false),
                    end_of_induction_remission: Some(false),
                    time_to_response_days: Some(28.0),
                },
            ),
        ];
        for (case, points, expected) in cases {
            assert_eq!(
                course_outcome(first, &scores(&points), phq9, phq9.remission_max),
                expected,
                "{case}"
            );
        }
        let pcl5 = Instrument::Pcl5.definition();
        let points = scores(&[(-1.0, 50), (30.0, 40), (31.0, 32)]);
        let o = course_outcome(first, &points, pcl5, pcl5.remission_max);
        assert_eq!(
            (o.end_of_induction_response, o.end_of_induction_remission),
            (Some(true), Some(true))
        );
        assert_eq!(
            o.time_to_response_days,
            Some(30.0),
            "a 10-point fall is the PCL-5 response"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn history() -> impl Strategy<Value = (Vec<(f64, i32)>, Option<f64>)> {
            (
                prop::collection::vec((-10.0f64..100.0, 0i32..28), 0..20),
                prop::option::of(0.5f64..100.0),
            )
                .prop_map(|(mut points, next)| {
                    points.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
                    (points, next)
                })
        }

        proptest! {
            #[test]
            fn durability_is_never_negative((points, next) in history()) {
                let o = outcome(&points, next);
                prop_assert!(o.durability_days.unwrap_or(0.0) >= 0.0);
            }

            #[test]
            fn censored_exactly_when_sustained((points, next) in history()) {
                let o = outcome(&points, next);
                prop_assert_eq!(o.censored, o.status == BenefitStatus::Sustained);
                prop_assert_eq!(o.wears_off_within_days, o.status == BenefitStatus::WoreOff && o.durability_days.unwrap() <= 7.0);
            }

            #[test]
            fn a_score_after_the_window_changes_nothing((points, next) in history(), late in 0.0f64..50.0, severity in 0i32..28) {
                let before = outcome(&points, next);
                let end = next.map_or(90.0, |n| n.min(90.0));
                let mut more = points.clone();
                more.push((end + late, severity));
                prop_assert_eq!(outcome(&more, next), before);
            }
        }
    }
}

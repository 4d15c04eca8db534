//! The measurement plan: what a patient's app must ask and when, so that every infusion's
//! durability can be measured (domain.md §6 needs scores after each session). The plan
//! restarts at each completed session and stops at the next one.

use crate::domain::ids::{AssessmentId, SessionId};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::instrument::Instrument;
use crate::domain::RuleBroken;

/// A course's plan; the clinic may change it per course.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"pre_session_hours": 24, "follow_up_days": [1, 3, 7, 14], "daily_mood": true,
    "first_day_window_hours": 12, "window_hours": 24}))]
pub struct MeasurementPlan {
    /// The primary instrument is due within this many hours before each session.
    #[serde(default = "pre_session_hours")]
    pub pre_session_hours: i64,
    /// Days after each session when the primary instrument is due (stopping at the next
    /// session).
    #[serde(default = "follow_up_days")]
    pub follow_up_days: Vec<i64>,
    /// Whether `daily_mood` is asked every day.
    #[serde(default = "yes")]
    pub daily_mood: bool,
    /// Half-width of the completion window of a day-1 follow-up, in hours.
    #[serde(default = "first_day_window_hours")]
    pub first_day_window_hours: i64,
    /// Half-width of the completion window of the later follow-ups, in hours.
    #[serde(default = "window_hours")]
    pub window_hours: i64,
}

fn pre_session_hours() -> i64 {
    24
}
fn follow_up_days() -> Vec<i64> {
    vec![1, 3, 7, 14]
}
fn yes() -> bool {
    true
}
fn first_day_window_hours() -> i64 {
    12
}
fn window_hours() -> i64 {
    24
}

impl Default for MeasurementPlan {
    fn default() -> Self {
        Self {
            pre_session_hours: pre_session_hours(),
            follow_up_days: follow_up_days(),
            daily_mood: true,
            first_day_window_hours: first_day_window_hours(),
            window_hours: window_hours(),
        }
    }
}

impl MeasurementPlan {
    pub fn check(self) -> Result<Self, RuleBroken> {
        let days = &self.follow_up_days;
        if days.len() > 30
            || days.iter().any(|d| !(1..=90).contains(d))
            || days.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(RuleBroken::new(
                "measurement_plan.follow_up_days",
                "must be at most 30 increasing days from 1 to 90",
            ));
        }
        for (field, hours) in [
            ("pre_session_hours", self.pre_session_hours),
            ("first_day_window_hours", self.first_day_window_hours),
            ("window_hours", self.window_hours),
        ] {
            if !(1..=72).contains(&hours) {
                return Err(RuleBroken::new(
                    format!("measurement_plan.{field}"),
                    "must be from 1 to 72 hours",
                ));
            }
        }
        Ok(self)
    }
}

vocabulary!(
    /// Why an item is due.
    DuePurpose { PreSession = "pre_session", FollowUp = "follow_up", DailyMood = "daily_mood" }
);

vocabulary!(
    /// Where a due item stands at an instant.
    DueStatus {
        /// A score of the instrument was taken inside the window.
        Completed = "completed",
        /// The window is open and nothing completes it yet.
        DueNow = "due_now",
        /// The window opens later.
        Upcoming = "upcoming",
        /// The window closed with nothing in it.
        Missed = "missed",
    }
);

/// One questionnaire the plan asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueItem {
    pub instrument: Instrument,
    pub purpose: DuePurpose,
    /// The session it is before or after.
    pub session_id: Option<SessionId>,
    /// Days after the session, for follow-ups.
    pub day: Option<i64>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub status: DueStatus,
    /// The score that completed it.
    pub completed_by: Option<AssessmentId>,
}

/// What the plan is laid over.
pub struct PlanInput<'a> {
    pub plan: &'a MeasurementPlan,
    pub primary: Instrument,
    /// Completed sessions (id, start), oldest first.
    pub sessions: &'a [(SessionId, DateTime<Utc>)],
    /// The next planned infusion day, when one is still ahead.
    pub next_planned: Option<NaiveDate>,
    /// The patient's scores (id, instrument, time taken).
    pub scores: &'a [(AssessmentId, Instrument, DateTime<Utc>)],
    /// Daily items are listed from this day on (the first session, or a recent bound).
    pub daily_from: Option<NaiveDate>,
}

/// Every item due under the plan, with its status at `now`, in window order.
pub fn due_items(input: &PlanInput<'_>, now: DateTime<Utc>) -> Vec<DueItem> {
    let plan = input.plan;
    let item =
        |instrument, purpose, session_id: Option<&SessionId>, day, window_start, window_end| {
            DueItem {
                instrument,
                purpose,
                session_id: session_id.copied(),
                day,
                window_start,
                window_end,
                status: DueStatus::Upcoming,
                completed_by: None,
            }
        };
    let mut items = Vec::new();
    for (i, (id, start)) in input.sessions.iter().enumerate() {
        let pre = *start - Duration::hours(plan.pre_session_hours);
        items.push(item(
            input.primary,
            DuePurpose::PreSession,
            Some(id),
            None,
            pre,
            *start,
        ));
        let next = input.sessions.get(i + 1).map(|(_, t)| *t);
        for day in &plan.follow_up_days {
            let target = *start + Duration::days(*day);
            if next.is_some_and(|n| target >= n) {
                break;
            }
            let half = Duration::hours(if *day == 1 {
                plan.first_day_window_hours
            } else {
                plan.window_hours
            });
            items.push(item(
                input.primary,
                DuePurpose::FollowUp,
                Some(id),
                Some(*day),
                target - half,
                target + half,
            ));
        }
    }
    let midnight = |day: NaiveDate| day.and_hms_opt(0, 0, 0).map_or(now, |d| d.and_utc());
    if let Some(day) = input.next_planned {
        let start = midnight(day);
        let opens = start - Duration::hours(plan.pre_session_hours);
        items.push(item(
            input.primary,
            DuePurpose::PreSession,
            None,
            None,
            opens,
            start + Duration::days(1),
        ));
    }
    if let (true, Some(from)) = (plan.daily_mood, input.daily_from) {
        let last = (now + Duration::days(1)).date_naive();
        let mut day = from;
        while day <= last {
            let start = midnight(day);
            items.push(item(
                Instrument::DailyMood,
                DuePurpose::DailyMood,
                None,
                None,
                start,
                start + Duration::days(1),
            ));
            day += Duration::days(1);
        }
    }
    items.sort_by_key(|i| (i.window_start, i.window_end));
    for i in &mut items {
        i.completed_by = input
            .scores
            .iter()
            .find(|(_, instrument, at)| {
                *instrument == i.instrument
                    && *at >= i.window_start
                    && *at <= i.window_end
                    && *at <= now
            })
            .map(|(id, _, _)| *id);
        i.status = match i.completed_by {
            Some(_) => DueStatus::Completed,
            None if now > i.window_end => DueStatus::Missed,
            None if now >= i.window_start => DueStatus::DueNow,
            None => DueStatus::Upcoming,
        };
    }
    items
}

/// The share of due items completed on time: completed over completed and missed.
pub fn adherence(items: &[DueItem]) -> (usize, usize) {
    let completed = items
        .iter()
        .filter(|i| i.status == DueStatus::Completed)
        .count();
    let missed = items
        .iter()
        .filter(|i| i.status == DueStatus::Missed)
        .count();
    (completed, completed + missed)
}

/// The first instant at which time alone could change the adherence of `items` (it holds at
/// every instant before, and is computed again from then on), always after `now`: the
/// microsecond after an open window closes, when it counts as missed; a record dated after
/// `now` (`later`) coming to count; or the next midnight UTC, when the day's items move on and
/// the daily items look back a day less far.
pub fn adherence_holds_until(
    items: &[DueItem],
    later: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let midnight = now
        .date_naive()
        .succ_opt()
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map_or(now, |m| m.and_utc());
    items
        .iter()
        .filter(|i| matches!(i.status, DueStatus::DueNow | DueStatus::Upcoming))
        .map(|i| i.window_end + Duration::microseconds(1))
        .chain(later.into_iter().filter(|at| *at > now))
        .fold(midnight, DateTime::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(day: f64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
            + Duration::seconds((day * 86_400.0) as i64)
    }

    fn plan_without_mood() -> MeasurementPlan {
        MeasurementPlan {
            daily_mood: false,
            ..MeasurementPlan::default()
        }
    }

    /// (purpose, day, window start, window end, status) in days from the first session.
    fn table(items: &[DueItem]) -> Vec<(&'static str, Option<i64>, f64, f64, &'static str)> {
        let days = |at: DateTime<Utc>| {
            ((at - t(0.0)).num_seconds() as f64 / 86_400.0 * 100.0).round() / 100.0
        };
        items
            .iter()
            .map(|i| {
                (
                    i.purpose.as_str(),
                    i.day,
                    days(i.window_start),
                    days(i.window_end),
                    i.status.as_str(),
                )
            })
            .collect()
    }

    /// The plan's default: the primary instrument in the 24 h before each session; days 1, 3,
    /// 7, 14 after it (day 1 ± 12 h, later ± 1 day), stopping at the next session.
    #[test]
    fn the_due_list_at_chosen_instants() {
        let plan = plan_without_mood();
        let sessions = [
            (SessionId::numbered(1), t(0.0)),
            (SessionId::numbered(2), t(2.0)),
            (SessionId::numbered(3), t(4.0)),
        ];
        let scores = vec![
            (AssessmentId::numbered(97), Instrument::Phq9, t(-0.5)),
            (AssessmentId::numbered(98), Instrument::Phq9, t(1.2)),
            (AssessmentId::numbered(99), Instrument::Phq9, t(3.9)),
        ];
        let input = |n: usize| PlanInput {
            plan: &plan,
            primary: Instrument::Phq9,
            sessions: &sessions[..n],
            next_planned: None,
            scores: &scores,
            daily_from: None,
        };
        // Half a day after the first session: its pre-session item is done, day 1 not open.
        assert_eq!(
            table(&due_items(&input(1), t(0.4))),
            [
                ("pre_session", None, -1.0, 0.0, "completed"),
                ("follow_up", Some(1), 0.5, 1.5, "upcoming"),
                ("follow_up", Some(3), 2.0, 4.0, "upcoming"),
                ("follow_up", Some(7), 6.0, 8.0, "upcoming"),
                ("follow_up", Some(14), 13.0, 15.0, "upcoming"),
            ]
        );
        // Day 1.7, before the second session: day 1 was completed at 1.2.
        assert_eq!(
            table(&due_items(&input(1), t(1.7)))[1],
            ("follow_up", Some(1), 0.5, 1.5, "completed")
        );
        // After the second session at day 2: the first session's follow-ups stop there (day 3
        // is after it); its pre-session window (day 1–2) was met by the score at 1.2.
        assert_eq!(
            table(&due_items(&input(2), t(2.8))),
            [
                ("pre_session", None, -1.0, 0.0, "completed"),
                ("follow_up", Some(1), 0.5, 1.5, "completed"),
                ("pre_session", None, 1.0, 2.0, "completed"),
                ("follow_up", Some(1), 2.5, 3.5, "due_now"),
                ("follow_up", Some(3), 4.0, 6.0, "upcoming"),
                ("follow_up", Some(7), 8.0, 10.0, "upcoming"),
                ("follow_up", Some(14), 15.0, 17.0, "upcoming"),
            ]
        );
        // After the third session at day 4: the second's day 1 was missed; the score at 3.9
        // met the third's pre-session window.
        assert_eq!(
            table(&due_items(&input(3), t(4.2))),
            [
                ("pre_session", None, -1.0, 0.0, "completed"),
                ("follow_up", Some(1), 0.5, 1.5, "completed"),
                ("pre_session", None, 1.0, 2.0, "completed"),
                ("follow_up", Some(1), 2.5, 3.5, "missed"),
                ("pre_session", None, 3.0, 4.0, "completed"),
                ("follow_up", Some(1), 4.5, 5.5, "upcoming"),
                ("follow_up", Some(3), 6.0, 8.0, "upcoming"),
                ("follow_up", Some(7), 10.0, 12.0, "upcoming"),
                ("follow_up", Some(14), 17.0, 19.0, "upcoming"),
            ]
        );
        assert_eq!(adherence(&due_items(&input(3), t(4.2))), (4, 5));
    }

    #[test]
    fn daily_mood_is_asked_each_day_and_a_planned_session_has_its_pre_session_item() {
        let plan = MeasurementPlan::default();
        let sessions = vec![(SessionId::numbered(1), t(0.0))];
        let scores = vec![(AssessmentId::numbered(7), Instrument::DailyMood, t(0.3))];
        let items = due_items(
            &PlanInput {
                plan: &plan,
                primary: Instrument::Gad7,
                sessions: &sessions,
                next_planned: Some(t(2.0).date_naive()),
                scores: &scores,
                daily_from: Some(t(0.0).date_naive()),
            },
            t(0.5),
        );
        let moods: Vec<&DueItem> = items
            .iter()
            .filter(|i| i.purpose == DuePurpose::DailyMood)
            .collect();
        assert_eq!(moods.len(), 2, "today and tomorrow");
        assert_eq!(moods[0].completed_by, Some(AssessmentId::numbered(7)));
        assert!(items.iter().any(|i| i.purpose == DuePurpose::PreSession
            && i.session_id.is_none()
            && i.instrument == Instrument::Gad7));
    }

    #[test]
    fn plans_are_checked() {
        assert!(MeasurementPlan::default().check().is_ok());
        assert!(MeasurementPlan {
            follow_up_days: vec![3, 1],
            ..MeasurementPlan::default()
        }
        .check()
        .is_err());
        assert!(MeasurementPlan {
            follow_up_days: vec![0],
            ..MeasurementPlan::default()
        }
        .check()
        .is_err());
        assert!(MeasurementPlan {
            window_hours: 0,
            ..MeasurementPlan::default()
        }
        .check()
        .is_err());
    }
}

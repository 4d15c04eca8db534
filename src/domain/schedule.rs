//! Courses and the treatment schedule (domain.md §2): which days a course plans an infusion
//! on, which completed session fills which planned slot, and which slots were missed.

use crate::domain::ids::SessionId;
use chrono::{Duration, NaiveDate};

use crate::domain::RuleBroken;

vocabulary!(
    /// How a course plans its infusions.
    Protocol { StandardInduction = "standard_induction", Custom = "custom" }
);

vocabulary!(
    /// Induction (the tapered first series) or maintenance (monthly, as needed).
    Phase { Induction = "induction", Maintenance = "maintenance" }
);

vocabulary!(
    /// Where a planned slot stands.
    SlotStatus {
        /// A completed session within ±3 days filled it.
        Filled = "filled",
        /// Not filled, and not more than 3 days overdue.
        Open = "open",
        /// More than 3 days overdue and not filled.
        Missed = "missed",
    }
);

/// Day offsets of the standard induction from the course's start (day 0): week 1 three
/// infusions, week 2 two, weeks 3–5 one a week.
pub const INDUCTION_DAY_OFFSETS: [i64; 8] = [0, 2, 4, 7, 10, 14, 21, 28];
/// Maintenance is planned this many days after the last induction or maintenance session.
pub const MAINTENANCE_INTERVAL_DAYS: i64 = 28;
/// A session fills a slot within this many days either side; a slot later than this is missed.
pub const SLOT_TOLERANCE_DAYS: i64 = 3;

/// The phase of a session on `day`: after a standard course's induction (its last planned
/// day and the tolerance) it is maintenance.
pub fn phase_of(protocol: Protocol, start: NaiveDate, day: NaiveDate) -> Phase {
    let last_induction =
        INDUCTION_DAY_OFFSETS[INDUCTION_DAY_OFFSETS.len() - 1] + SLOT_TOLERANCE_DAYS;
    if protocol == Protocol::StandardInduction && (day - start).num_days() > last_induction {
        Phase::Maintenance
    } else {
        Phase::Induction
    }
}

/// One planned infusion day and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub planned_date: NaiveDate,
    pub phase: Phase,
    pub status: SlotStatus,
    /// The session that filled it.
    pub session_id: Option<SessionId>,
}

/// A custom protocol's explicit dates: at least one, no repeats, at most 200.
pub fn custom_dates(dates: &[NaiveDate]) -> Result<Vec<NaiveDate>, RuleBroken> {
    let mut sorted = dates.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() || sorted.len() > 200 {
        return Err(RuleBroken::new(
            "planned_dates",
            "a custom course needs 1 to 200 planned dates",
        ));
    }
    if sorted.len() != dates.len() {
        return Err(RuleBroken::new("planned_dates", "must not repeat a date"));
    }
    Ok(sorted)
}

/// The course's slots as of `today`, given its completed sessions (id and date).
///
/// Each completed session, in time order, fills the earliest open slot within ±3 days of it.
/// For the standard protocol, one maintenance slot follows: 28 days after the later of the
/// last induction day and the latest completed session.
pub fn slots(
    protocol: Protocol,
    start: NaiveDate,
    custom: &[NaiveDate],
    completed: &[(SessionId, NaiveDate)],
    today: NaiveDate,
) -> Vec<Slot> {
    let planned: Vec<NaiveDate> = match protocol {
        Protocol::StandardInduction => INDUCTION_DAY_OFFSETS
            .iter()
            .map(|d| start + Duration::days(*d))
            .collect(),
        Protocol::Custom => custom.to_vec(),
    };
    let mut filled: Vec<Option<SessionId>> = vec![None; planned.len()];
    let mut sessions = completed.to_vec();
    sessions.sort_by_key(|(_, date)| *date);
    for (id, date) in &sessions {
        let open = planned.iter().enumerate().find(|(i, p)| {
            filled[*i].is_none() && (**p - *date).num_days().abs() <= SLOT_TOLERANCE_DAYS
        });
        if let Some((i, _)) = open {
            filled[i] = Some(*id);
        }
    }
    let mut result: Vec<Slot> = planned
        .iter()
        .zip(filled)
        .map(|(date, session_id)| slot(*date, Phase::Induction, session_id, today))
        .collect();
    if protocol == Protocol::StandardInduction {
        let last_induction = *planned.last().unwrap_or(&start);
        let latest_session = sessions.last().map(|(_, d)| *d);
        let anchor = latest_session.map_or(last_induction, |d| d.max(last_induction));
        let next = anchor + Duration::days(MAINTENANCE_INTERVAL_DAYS);
        result.push(slot(next, Phase::Maintenance, None, today));
    }
    result
}

/// The first day an unfilled slot counts as missed: more than `SLOT_TOLERANCE_DAYS` after the
/// day it was planned for (none for a date at the calendar's end).
pub fn missed_from(planned_date: NaiveDate) -> Option<NaiveDate> {
    planned_date.checked_add_days(chrono::Days::new(SLOT_TOLERANCE_DAYS as u64 + 1))
}

fn slot(
    planned_date: NaiveDate,
    phase: Phase,
    session_id: Option<SessionId>,
    today: NaiveDate,
) -> Slot {
    let status = match &session_id {
        Some(_) => SlotStatus::Filled,
        None if missed_from(planned_date).is_some_and(|day| today >= day) => SlotStatus::Missed,
        None => SlotStatus::Open,
    };
    Slot {
        planned_date,
        phase,
        status,
        session_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(n: i64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + Duration::days(n)
    }

    fn statuses(slots: &[Slot]) -> Vec<(i64, SlotStatus)> {
        slots
            .iter()
            .map(|s| ((s.planned_date - day(0)).num_days(), s.status))
            .collect()
    }

    /// domain.md §2: the standard induction's planned day offsets and the first maintenance.
    #[test]
    fn standard_induction_plans_days_0_2_4_7_10_14_21_28_then_maintenance() {
        let slots = slots(Protocol::StandardInduction, day(0), &[], &[], day(-1));
        let days: Vec<i64> = slots
            .iter()
            .map(|s| (s.planned_date - day(0)).num_days())
            .collect();
        assert_eq!(days, [0, 2, 4, 7, 10, 14, 21, 28, 56]);
        assert!(slots[..8]
            .iter()
            .all(|s| s.phase == Phase::Induction && s.status == SlotStatus::Open));
        assert_eq!(slots[8].phase, Phase::Maintenance);
    }

    /// domain.md §2: a completed session fills the earliest open slot within ±3 days; a slot
    /// more than 3 days overdue is missed.
    #[test]
    fn filling_and_missing_slots() {
        let sessions = vec![
            (SessionId::numbered(0), day(0)),
            (SessionId::numbered(1), day(3)), // fills day 2 (earliest open within ±3), not day 4
            (SessionId::numbered(2), day(5)), // fills day 4
            // nothing near day 7
            (SessionId::numbered(3), day(13)), // fills day 10 (3 days late), not day 14
        ];
        let slots = slots(Protocol::StandardInduction, day(0), &[], &sessions, day(18));
        use SlotStatus::*;
        assert_eq!(
            statuses(&slots),
            [
                (0, Filled),
                (2, Filled),
                (4, Filled),
                (7, Missed),
                (10, Filled),
                (14, Missed),
                (21, Open),
                (28, Open),
                (56, Open)
            ]
        );
        assert_eq!(slots[1].session_id, Some(SessionId::numbered(1)));
        assert_eq!(slots[4].session_id, Some(SessionId::numbered(3)));
    }

    #[test]
    fn a_slot_exactly_three_days_overdue_is_still_open() {
        let slots = slots(Protocol::StandardInduction, day(0), &[], &[], day(3));
        assert_eq!(slots[0].status, SlotStatus::Open);
        let slots = super::slots(Protocol::StandardInduction, day(0), &[], &[], day(4));
        assert_eq!(slots[0].status, SlotStatus::Missed);
        assert_eq!(
            missed_from(day(0)),
            Some(day(4)),
            "the day the sweep raises it"
        );
        assert_eq!(
            missed_from(NaiveDate::MAX),
            None,
            "no day after the calendar's end"
        );
    }

    #[test]
    fn a_session_more_than_three_days_from_every_slot_fills_none() {
        let sessions = vec![(SessionId::numbered(1), day(-4))];
        let slots = slots(Protocol::StandardInduction, day(0), &[], &sessions, day(0));
        assert!(slots.iter().all(|s| s.session_id.is_none()));
    }

    /// domain.md §2: maintenance every 28 days after the last induction session, one at a time.
    #[test]
    fn maintenance_follows_the_latest_session() {
        let sessions = vec![
            (SessionId::numbered(1), day(29)),
            (SessionId::numbered(2), day(60)),
        ];
        let slots = slots(Protocol::StandardInduction, day(0), &[], &sessions, day(61));
        assert_eq!(slots.len(), 9);
        assert_eq!(slots[7].session_id, Some(SessionId::numbered(1)));
        assert_eq!((slots[8].planned_date - day(0)).num_days(), 88);
    }

    #[test]
    fn maintenance_begins_after_the_last_induction_day_and_its_tolerance() {
        assert_eq!(
            phase_of(Protocol::StandardInduction, day(0), day(31)),
            Phase::Induction
        );
        assert_eq!(
            phase_of(Protocol::StandardInduction, day(0), day(32)),
            Phase::Maintenance
        );
        assert_eq!(
            phase_of(Protocol::Custom, day(0), day(300)),
            Phase::Induction
        );
    }

    #[test]
    fn custom_courses_plan_their_listed_dates() {
        let dates = custom_dates(&[day(10), day(0), day(5)]).unwrap();
        let slots = slots(
            Protocol::Custom,
            day(0),
            &dates,
            &[(SessionId::numbered(1), day(1))],
            day(20),
        );
        use SlotStatus::*;
        assert_eq!(statuses(&slots), [(0, Filled), (5, Missed), (10, Missed)]);
        assert!(custom_dates(&[]).is_err());
        assert!(custom_dates(&[day(1), day(1)]).is_err());
    }
}

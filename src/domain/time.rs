//! Which instants and dates a client may send.
//!
//! Every instant that says when something happened (a score taken, an infusion started, a side
//! effect's onset) lies between 1900 and the server's clock plus five minutes (domain.md §4).
//! The bounds also keep both engines alike: PostgreSQL refuses timestamps before 4713 BC that
//! SQLite would store as text, so without them the same request was a 500 on one and a 201 on
//! the other.

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::RuleBroken;

/// Nothing may be dated more than this far ahead of the server's clock (domain.md §4).
pub const FUTURE_TOLERANCE: Duration = Duration::minutes(5);

/// How far ahead a course may plan its infusions.
pub const PLANNING_HORIZON: Duration = Duration::days(5 * 366);

/// The earliest instant and date any client value may name.
pub fn earliest() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(1900, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .expect("1900-01-01 is a valid date")
}

/// The end of the range a query may name: ranges and "as at" instants may reach into the
/// future (a week that has not ended yet), but not past this.
pub fn latest_query_bound() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2200, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .expect("2200-01-01 is a valid date")
}

/// An instant something happened at: from 1900 to `now` plus the tolerance.
pub fn recorded(field: &str, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), RuleBroken> {
    if at < earliest() {
        return Err(RuleBroken::new(field, "must not be before 1900-01-01"));
    }
    if at > now + FUTURE_TOLERANCE {
        return Err(RuleBroken::new(
            field,
            "must not be more than 5 minutes in the future",
        ));
    }
    Ok(())
}

/// An instant a query names (a range's end, a sync position, "due at"): from 1900 to 2200.
pub fn query_bound(field: &str, at: DateTime<Utc>) -> Result<(), RuleBroken> {
    if at < earliest() || at >= latest_query_bound() {
        return Err(RuleBroken::new(
            field,
            "must be from 1900-01-01 to before 2200-01-01",
        ));
    }
    Ok(())
}

/// A planned day: from 1900 to five years after `today`.
pub fn planned(field: &str, date: NaiveDate, today: NaiveDate) -> Result<(), RuleBroken> {
    let last = today + PLANNING_HORIZON;
    if date < earliest().date_naive() || date > last {
        return Err(RuleBroken::new(
            field,
            format!("must be from 1900-01-01 to {last}"),
        ));
    }
    Ok(())
}

/// A query's time range `[from, to)`: each end within the query bounds, `to` after `from`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Range {
    pub fn parse(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, Vec<RuleBroken>> {
        let mut broken: Vec<RuleBroken> = [("from", from), ("to", to)]
            .into_iter()
            .filter_map(|(field, at)| query_bound(field, at?).err())
            .collect();
        if let (Some(from), Some(to), true) = (from, to, broken.is_empty()) {
            if to <= from {
                broken.push(RuleBroken::new("to", "must be after from"));
            }
        }
        if broken.is_empty() {
            Ok(Self { from, to })
        } else {
            Err(broken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    /// issue 12 (4) and domain.md §4: an instant that something happened at lies between 1900
    /// and now + 5 minutes; a query's bound between 1900 and 2200.
    #[test]
    fn instant_bounds() {
        let now = at("2026-12-01T12:00:00Z");
        let new_year = |year: i32| {
            NaiveDate::from_ymd_opt(year, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .unwrap()
                .and_utc()
        };
        let cases = [
            (at("1899-12-31T23:59:59Z"), false),
            (at("1900-01-01T00:00:00Z"), true),
            (new_year(-4714), false),
            (at("2026-12-01T12:05:00Z"), true),
            (at("2026-12-01T12:05:01Z"), false),
            (new_year(20_000), false),
        ];
        for (instant, ok) in cases {
            assert_eq!(recorded("t", instant, now).is_ok(), ok, "{instant}");
        }
        assert!(query_bound("to", at("2199-12-31T23:59:59Z")).is_ok());
        assert!(query_bound("to", at("2200-01-01T00:00:00Z")).is_err());
        assert!(query_bound("from", at("1899-12-31T23:59:59Z")).is_err());
        assert!(query_bound("from", at("1900-01-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn a_range_ends_after_it_starts_within_the_query_bounds() {
        let (a, b) = (at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"));
        assert_eq!(
            Range::parse(Some(a), Some(b)),
            Ok(Range {
                from: Some(a),
                to: Some(b)
            })
        );
        assert_eq!(Range::parse(None, None), Ok(Range::default()));
        let fields = |r: Result<Range, Vec<RuleBroken>>| {
            r.unwrap_err()
                .into_iter()
                .map(|b| b.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(Range::parse(Some(b), Some(a))), ["to"]);
        assert_eq!(fields(Range::parse(Some(a), Some(a))), ["to"]);
        let ancient = earliest() - Duration::days(1);
        let far = latest_query_bound();
        assert_eq!(
            fields(Range::parse(Some(ancient), Some(far))),
            ["from", "to"]
        );
    }

    #[test]
    fn planned_days_reach_five_years_ahead() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert!(planned("start_date", today + PLANNING_HORIZON, today).is_ok());
        assert!(planned(
            "start_date",
            today + PLANNING_HORIZON + Duration::days(1),
            today
        )
        .is_err());
        assert!(planned(
            "start_date",
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap(),
            today
        )
        .is_ok());
        assert!(planned(
            "start_date",
            NaiveDate::from_ymd_opt(1899, 12, 31).unwrap(),
            today
        )
        .is_err());
    }
}

//! domain.md §6 over arbitrary score histories: the outcome functions never panic, whatever
//! the times and severities, and what they return keeps §6's invariants.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, Duration, Utc};
use ketamine_outcomes::domain::ids::AssessmentId;
use ketamine_outcomes::domain::instrument::Instrument;
use ketamine_outcomes::domain::outcomes::{course_outcome, session_outcome, BenefitStatus, Score};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct History {
    instrument: u8,
    /// Minutes after an origin, and severity.
    scores: Vec<(i32, i8)>,
    session_minute: i32,
    next_session_minute: Option<i32>,
    wear_off_days: u8,
}

fn at(origin: DateTime<Utc>, minute: i32) -> DateTime<Utc> {
    origin + Duration::minutes(i64::from(minute))
}

fuzz_target!(|history: History| {
    let instrument = Instrument::ALL[usize::from(history.instrument) % Instrument::ALL.len()];
    let definition = instrument.definition();
    let origin = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap();
    let mut scores: Vec<Score> = history
        .scores
        .iter()
        .enumerate()
        .map(|(i, (minute, severity))| Score {
            id: AssessmentId::from(uuid::Uuid::from_u128(i as u128)),
            taken_at: at(origin, *minute),
            severity: i32::from(*severity),
            total: i32::from(*severity).abs(),
        })
        .collect();
    scores.sort_by_key(|s| s.taken_at);
    let started_at = at(origin, history.session_minute);
    let next = history.next_session_minute.map(|m| at(origin, m));
    let mic = definition.mic.unwrap_or(1);
    let wear_off_days = f64::from(history.wear_off_days.max(1));

    let outcome = session_outcome(started_at, next, &scores, mic, wear_off_days);
    if let Some(days) = outcome.durability_days {
        assert!(days >= 0.0, "durability is never negative: {outcome:?}");
    }
    assert_eq!(outcome.censored, outcome.status == BenefitStatus::Sustained);
    if outcome.wears_off_within_days {
        assert!(outcome.durability_days.is_some_and(|d| d <= wear_off_days));
    }
    let course = course_outcome(Some(started_at), &scores, definition, definition.remission_max);
    if let Some(days) = course.time_to_response_days {
        assert!(days >= 0.0, "time to response is never negative: {course:?}");
    }
});

//! issue 16 (1): a write evaluates only what it can move — yet stores what evaluating the
//! whole record would. Random histories (assessments of the course's instrument and of
//! another, arriving out of order; sessions completed and cancelled, before and after the
//! scores; side effects; assessments and sessions entered in error) are written through the
//! API, and after every write the whole record is evaluated again in a transaction that is
//! rolled back: it must find nothing to change — no outcome row, no missing flag.

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use ketamine_outcomes::evaluation::{self, Change};
use ketamine_outcomes::store::outcomes::{
    self as outcome_store, CourseOutcomeRow, SessionOutcomeRow,
};
use ketamine_outcomes::store::schema::flags;
use ketamine_outcomes::store::{write_transaction, DbConnection, StoreError};

use crate::api_test;
use crate::helpers::TestApp;

/// Histories per database, and writes in each.
const HISTORIES: u64 = 10;
const WRITES: usize = 36;

const TIME_RAISED: [&str; 3] = [
    "persistent_side_effect",
    "missed_session",
    "missed_follow_up",
];

/// What is stored of a patient's evaluation, with when it was computed left out.
#[derive(Debug, PartialEq)]
struct Evaluation {
    sessions: Vec<SessionOutcomeRow>,
    courses: Vec<CourseOutcomeRow>,
    /// (kind, record, detail) of every flag.
    flags: Vec<(String, String, String)>,
}

fn stored(conn: &mut DbConnection, patient: &str) -> Result<Evaluation, StoreError> {
    let id = patient.parse().unwrap();
    let mut sessions = outcome_store::sessions_of(conn, id)?;
    let mut courses = outcome_store::courses_of(conn, id)?;
    for row in &mut sessions {
        row.computed_at = NaiveDateTime::default();
    }
    for row in &mut courses {
        row.computed_at = NaiveDateTime::default();
    }
    sessions.sort_by_key(|r| r.session_id);
    courses.sort_by_key(|r| r.course_id);
    // The flags that time raises are the sweep's, which runs beside the test.
    let flags = flags::table
        .filter(flags::patient_id.eq(patient))
        .filter(flags::kind.ne_all(TIME_RAISED))
        .select((flags::kind, flags::record_id, flags::detail))
        .order((flags::kind, flags::record_id))
        .load(conn)?;
    Ok(Evaluation {
        sessions,
        courses,
        flags,
    })
}

/// What is stored, and what evaluating the whole record would store instead (evaluated in a
/// transaction that is then rolled back).
async fn stored_and_whole(app: &TestApp, patient: &str) -> (Evaluation, Evaluation) {
    let (patient, settings) = (patient.to_owned(), app.settings.clinical);
    app.database()
        .run(move |conn| {
            let mut seen = None;
            // A write transaction (SQLite's BEGIN IMMEDIATE), for it writes whatever differs.
            let rolled_back = write_transaction::<(), StoreError, _>(conn, |conn| {
                let before = stored(conn, &patient)?;
                evaluation::refresh(conn, &settings, patient.parse().unwrap(), Change::Whole)?;
                seen = Some((before, stored(conn, &patient)?));
                Err(StoreError::Conflict)
            });
            assert!(
                matches!(rolled_back, Err(StoreError::Conflict)),
                "{rolled_back:?}"
            );
            Ok::<_, StoreError>(seen.unwrap())
        })
        .await
        .unwrap()
}

fn items(rng: &mut StdRng, count: usize) -> Vec<i32> {
    // Mostly low or mostly high, so that benefit, wear-off and response all happen.
    let high = rng.gen_bool(0.5);
    (0..count)
        .map(|_| {
            if high {
                rng.gen_range(1..=3)
            } else {
                rng.gen_range(0..=1)
            }
        })
        .collect()
}

/// One random write; what it was, for the failure message.
async fn write(
    app: &TestApp,
    token: &str,
    patient: &str,
    rng: &mut StdRng,
    start: chrono::DateTime<Utc>,
    written: &mut (Vec<String>, Vec<String>),
) -> String {
    let at = |rng: &mut StdRng, from_day: i64, to_day: i64| {
        let minutes = rng.gen_range(from_day * 1440..to_day * 1440);
        (start + Duration::minutes(minutes)).min(Utc::now() - Duration::minutes(1))
    };
    let (assessments, sessions) = written;
    let roll = rng.gen_range(0..100);
    let (path, body, method) = if roll < 45 {
        let body =
            json!({"instrument": "phq9", "taken_at": at(rng, -20, 110), "items": items(rng, 9)});
        (format!("/v1/patients/{patient}/assessments"), body, "post")
    } else if roll < 52 {
        let body =
            json!({"instrument": "gad7", "taken_at": at(rng, -20, 110), "items": items(rng, 7)});
        (format!("/v1/patients/{patient}/assessments"), body, "post")
    } else if roll < 72 {
        let status = if rng.gen_bool(0.85) {
            "completed"
        } else {
            "cancelled"
        };
        let body = json!({"route": "iv", "started_at": at(rng, 0, 100), "dose_mg_per_kg": 0.5,
            "weight_kg": 70, "status": status});
        (format!("/v1/patients/{patient}/sessions"), body, "post")
    } else if roll < 80 && !sessions.is_empty() {
        let session = &sessions[rng.gen_range(0..sessions.len())];
        let severity = ["mild", "moderate", "severe"][rng.gen_range(0..3)];
        let body = json!({"session_id": session, "effect": "nausea", "severity": severity,
            "onset_at": Utc::now() - Duration::minutes(5)});
        (format!("/v1/patients/{patient}/side-effects"), body, "post")
    } else if roll < 93 && !assessments.is_empty() {
        let id = assessments[rng.gen_range(0..assessments.len())].clone();
        (
            format!("/v1/assessments/{id}"),
            json!({"reason": "wrong form"}),
            "delete",
        )
    } else if !sessions.is_empty() {
        let id = sessions[rng.gen_range(0..sessions.len())].clone();
        (
            format!("/v1/sessions/{id}"),
            json!({"reason": "wrong patient"}),
            "delete",
        )
    } else {
        return "nothing".into();
    };
    let res = match method {
        "post" => app.post_as(&path, token, &body).await,
        _ => app.delete_as(&path, token, &body).await,
    };
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    // A side effect's onset must follow its session's start: one on a later session is
    // refused, and that is fine — the history goes on.
    assert!(
        matches!(status, 200 | 201 | 422),
        "{method} {path} {body}: {status} {answer}"
    );
    if status == 201 && path.ends_with("/assessments") {
        assessments.push(answer["id"].as_str().unwrap().to_owned());
    }
    if status == 201 && path.ends_with("/sessions") {
        sessions.push(answer["id"].as_str().unwrap().to_owned());
    }
    format!("{method} {path} {body} → {status}")
}

api_test!(
    each_write_stores_what_evaluating_the_whole_record_would,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let start = Utc::now() - Duration::days(120);
        let mut statuses = std::collections::BTreeSet::new();
        let (mut responses, mut flag_kinds) = (0, std::collections::BTreeSet::new());
        for seed in 0..HISTORIES {
            let mut rng = StdRng::seed_from_u64(seed);
            let patient = app.new_patient(&clinic.clinician).await;
            app.new_course(&clinic.clinician, &patient, &start.date_naive().to_string())
                .await;
            let mut written = (Vec::new(), Vec::new());
            let mut history = Vec::new();
            for _ in 0..WRITES {
                history.push(write(&app, &token, &patient, &mut rng, start, &mut written).await);
                let (stored, whole) = stored_and_whole(&app, &patient).await;
                assert_eq!(
                    stored,
                    whole,
                    "history {seed}, after:\n{}",
                    history.join("\n")
                );
                statuses.extend(stored.sessions.iter().map(|o| format!("{:?}", o.status)));
                responses += stored
                    .courses
                    .iter()
                    .filter(|c| c.time_to_response_days.is_some())
                    .count();
                flag_kinds.extend(stored.flags.iter().map(|f| f.0.clone()));
            }
        }
        // The histories reached what they are about: every session status, courses that
        // respond, and the flags that outcomes raise as well as those records raise.
        assert_eq!(statuses.len(), 5, "session statuses seen: {statuses:?}");
        assert!(responses > 0, "no course responded");
        assert!(
            flag_kinds.contains("wears_off_within_days")
                && flag_kinds.contains("suicidal_ideation"),
            "flags seen: {flag_kinds:?}"
        );
    }
);

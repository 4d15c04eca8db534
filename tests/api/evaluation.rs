//! issue 16 (1): a write evaluates only what it can move — yet stores what evaluating the
//! whole record would. Random histories (assessments of the course's instrument and of
//! another, arriving out of order; sessions completed and cancelled, before and after the
//! scores, then moved in time, completed or cancelled by a change; side effects; assessments
//! and sessions entered in error — at the edges of the rules' windows and at the very
//! instants of earlier records) are written through the API, with courses whose state, start
//! or instrument change and a contraindication noted and withdrawn between them; after every
//! write the whole record is evaluated again in a transaction that is rolled back: it must
//! find nothing to change — no outcome row, no missing flag.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use ketamine_outcomes::evaluation::{self, Change};
use ketamine_outcomes::store::outcomes::{
    self as outcome_store, CourseOutcomeRow, SessionOutcomeRow,
};
use ketamine_outcomes::store::patients;
use ketamine_outcomes::store::schema::flags;
use ketamine_outcomes::store::{write_transaction, DbConnection, StoreError};

use crate::api_test;
use crate::helpers::TestApp;

/// Histories per database, and writes in each.
const HISTORIES: u64 = 12;
const WRITES: usize = 40;

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
            // A write transaction (SQLite's BEGIN IMMEDIATE), for it writes whatever differs,
            // holding the patient as every writer does: on PostgreSQL the sweep, which runs
            // beside the test, would otherwise raise a flag between the two readings.
            let rolled_back = write_transaction::<(), StoreError, _>(conn, |conn| {
                patients::hold(conn, patient.parse().unwrap())?;
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

/// What a history has written so far: ids with their instants; the patient's two courses, of
/// two instruments (sessions are given in the first and moved between them), and the course
/// each session is in.
#[derive(Default)]
struct Written {
    courses: Vec<String>,
    course_of: std::collections::HashMap<String, usize>,
    assessments: Vec<(String, DateTime<Utc>)>,
    sessions: Vec<(String, DateTime<Utc>)>,
}

/// An instant for the next record: on a six-hour grid; or at a window's edge (domain.md §6:
/// −14, −7, 0, +28, +42, +90 days) of a session written before — the earliest, which starts
/// the course's windows, as often as all the others — give or take a microsecond; or at the
/// very instant of a record written before: where the rules' boundaries and ties are.
fn instant(rng: &mut StdRng, start: DateTime<Utc>, written: &Written) -> DateTime<Utc> {
    let sessions: Vec<DateTime<Utc>> = written.sessions.iter().map(|(_, t)| *t).collect();
    let earlier: Vec<DateTime<Utc>> = written
        .assessments
        .iter()
        .map(|(_, t)| *t)
        .chain(sessions.iter().copied())
        .collect();
    let roll = rng.gen_range(0..20);
    let t = if roll < 7 || earlier.is_empty() {
        start + Duration::hours(6 * rng.gen_range(-80..440))
    } else if roll < 16 && !sessions.is_empty() {
        let anchor = if rng.gen_bool(0.5) {
            *sessions.iter().min().unwrap()
        } else {
            sessions[rng.gen_range(0..sessions.len())]
        };
        let days = [-14, -7, 0, 28, 42, 90][rng.gen_range(0..6)];
        anchor + Duration::days(days) + Duration::microseconds(rng.gen_range(-1..=1))
    } else {
        earlier[rng.gen_range(0..earlier.len())]
    };
    t.min(Utc::now() - Duration::minutes(1))
}

/// One random write; what it was, for the failure message.
async fn write(
    app: &TestApp,
    token: &str,
    patient: &str,
    rng: &mut StdRng,
    start: DateTime<Utc>,
    written: &mut Written,
) -> String {
    let at = instant(rng, start, written);
    let roll = rng.gen_range(0..100);
    let (path, body, method) = if roll < 45 {
        let body = json!({"instrument": "phq9", "taken_at": at, "items": items(rng, 9)});
        (format!("/v1/patients/{patient}/assessments"), body, "post")
    } else if roll < 52 {
        let body = json!({"instrument": "gad7", "taken_at": at, "items": items(rng, 7)});
        (format!("/v1/patients/{patient}/assessments"), body, "post")
    } else if roll < 72 {
        let status = if rng.gen_bool(0.85) {
            "completed"
        } else {
            "cancelled"
        };
        let body = json!({"route": "iv", "started_at": at.max(start), "dose_mg_per_kg": 0.5,
            "weight_kg": 70, "status": status, "course_id": written.courses[0]});
        (format!("/v1/patients/{patient}/sessions"), body, "post")
    } else if roll < 82 && !written.sessions.is_empty() {
        // A session moved in time or to the other course, completed or cancelled: the
        // outcomes around where it was and where it is move with it.
        let n = rng.gen_range(0..written.sessions.len());
        let status = if rng.gen_bool(0.8) {
            "completed"
        } else {
            "cancelled"
        };
        let moved = if rng.gen_bool(0.7) {
            at.max(start)
        } else {
            written.sessions[n].1
        };
        let id = written.sessions[n].0.clone();
        written.sessions[n].1 = moved;
        let mut body = json!({"started_at": moved, "status": status});
        if rng.gen_bool(0.3) {
            let other = 1 - written.course_of[&id];
            written.course_of.insert(id.clone(), other);
            body["course_id"] = json!(written.courses[other]);
        }
        (format!("/v1/sessions/{id}"), body, "patch")
    } else if roll < 88 && !written.sessions.is_empty() {
        let (session, given) = &written.sessions[rng.gen_range(0..written.sessions.len())];
        let severity = ["mild", "moderate", "severe"][rng.gen_range(0..3)];
        // Not before its session, which a change may have moved to a minute ago.
        let onset = (Utc::now() - Duration::minutes(5)).max(*given);
        let body = json!({"session_id": session, "effect": "nausea", "severity": severity,
            "onset_at": onset});
        (format!("/v1/patients/{patient}/side-effects"), body, "post")
    } else if roll < 96 && !written.assessments.is_empty() {
        let (id, _) = &written.assessments[rng.gen_range(0..written.assessments.len())];
        (
            format!("/v1/assessments/{id}"),
            json!({"reason": "wrong form"}),
            "delete",
        )
    } else if !written.sessions.is_empty() {
        // A session entered in error takes no more side effects.
        let (id, _) = written
            .sessions
            .swap_remove(rng.gen_range(0..written.sessions.len()));
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
        "patch" => app.patch(&path, token, None, &body).await,
        _ => app.delete_as(&path, token, &body).await,
    };
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    assert!(
        matches!(status, 200 | 201),
        "{method} {path} {body}: {status} {answer}"
    );
    let created = || (answer["id"].as_str().unwrap().to_owned(), at);
    if status == 201 && path.ends_with("/assessments") {
        written.assessments.push(created());
    }
    if status == 201 && path.ends_with("/sessions") {
        written.course_of.insert(created().0, 0);
        written.sessions.push((created().0, at.max(start)));
    }
    format!("{method} {path} {body} → {status}")
}

/// One change of a course or of the patient, besides the history's writes (from a random
/// stream of its own, so the histories stay as they are); what it was.
async fn reshape(
    app: &TestApp,
    token: &str,
    patient: &str,
    rng: &mut StdRng,
    start: DateTime<Utc>,
    written: &Written,
) -> String {
    let (path, body) = if rng.gen_bool(0.3) {
        // A contraindication noted or withdrawn: the treatment's flags move with it.
        let factors = if rng.gen_bool(0.5) {
            json!([{"factor": "psychosis", "noted_at": start}])
        } else {
            json!([])
        };
        let body = json!({"risk_factors": factors});
        (format!("/v1/patients/{patient}"), body)
    } else {
        // A course's state, start or instrument changed: its outcome, its sessions' outcomes
        // and research facts, and the treatment's flags move with it. The first course keeps
        // its instrument, so that histories still reach what PHQ-9 scores make (a benefit
        // that wears off); the second changes its own.
        let k = rng.gen_range(0..2);
        let course = &written.courses[k];
        let body = match rng.gen_range(0..2 + k) {
            0 => json!({"closed": rng.gen_bool(0.5)}),
            1 => {
                json!({"start_date": (start + Duration::days(rng.gen_range(-10..40))).date_naive()})
            }
            _ => {
                let instrument = ["phq9", "gad7"][rng.gen_range(0..2)];
                json!({"primary_instrument": instrument})
            }
        };
        (format!("/v1/courses/{course}"), body)
    };
    let res = app.patch(&path, token, None, &body).await;
    let status = res.status().as_u16();
    assert_eq!(
        status,
        200,
        "patch {path} {body}: {}",
        res.text().await.unwrap()
    );
    format!("patch {path} {body} → {status}")
}

/// A clinician's token and a patient of theirs whose course started on `course_start`'s day.
async fn patient_with_course(app: &TestApp, course_start: DateTime<Utc>) -> (String, String) {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let start = course_start.date_naive().to_string();
    app.new_course(&clinic.clinician, &patient, &start).await;
    (clinic.clinician.access_token, patient)
}

/// A completed infusion at `at`.
async fn infusion(app: &TestApp, token: &str, patient: &str, at: DateTime<Utc>) {
    let session = json!({"route": "iv", "started_at": at, "dose_mg_per_kg": 0.5, "weight_kg": 70});
    let path = format!("/v1/patients/{patient}/sessions");
    assert_eq!(app.post_as(&path, token, &session).await.status(), 201);
}

api_test!(
    each_write_stores_what_evaluating_the_whole_record_would,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        // Whole seconds: instants at the windows' edges stay exact in the database.
        let start =
            DateTime::from_timestamp((Utc::now() - Duration::days(120)).timestamp(), 0).unwrap();
        let mut statuses = std::collections::BTreeSet::new();
        let (mut responses, mut flag_kinds) = (0, std::collections::BTreeSet::new());
        for seed in 0..HISTORIES {
            let mut rng = StdRng::seed_from_u64(seed);
            let patient = app.new_patient(&clinic.clinician).await;
            let mut written = Written::default();
            let course = app
                .new_course(&clinic.clinician, &patient, &start.date_naive().to_string())
                .await;
            written.courses.push(course);
            // The other course reads GAD-7, which the histories also write, from day 20.
            let other = json!({"indication": "treatment_resistant_depression", "primary_instrument": "gad7",
                "start_date": (start + Duration::days(20)).date_naive()});
            let res = app
                .post_as(&format!("/v1/patients/{patient}/courses"), &token, &other)
                .await;
            assert_eq!(res.status(), 201);
            let other = res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned();
            written.courses.push(other);
            let mut history = Vec::new();
            let mut reshapes = StdRng::seed_from_u64(seed + 1_000);
            for step in 0..2 * WRITES {
                // Every write of the history, and after one in six a course or the patient
                // changed.
                let done = if step % 2 == 0 {
                    write(&app, &token, &patient, &mut rng, start, &mut written).await
                } else if reshapes.gen_ratio(1, 6) {
                    reshape(&app, &token, &patient, &mut reshapes, start, &written).await
                } else {
                    continue;
                };
                history.push(done);
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

// Writes to one patient's record at once: each is evaluated with the others in view (the
// patient's row is held by each write in turn), so what is stored at the end is what
// evaluating the whole record gives — on PostgreSQL as on SQLite's one writer.
api_test!(
    writes_at_once_to_one_record_store_what_the_whole_record_would,
    |app| async move {
        let start = Utc::now() - Duration::days(60);
        let (token, patient) = patient_with_course(&app, start).await;
        let day = |d: f64| start + Duration::minutes((d * 1440.0) as i64);
        let scores = format!("/v1/patients/{patient}/assessments");
        let phq9 = |d: f64, item: i32| json!({"instrument": "phq9", "taken_at": day(d), "items": vec![item; 9]});
        let baseline = app.post_as(&scores, &token, &phq9(1.0, 2)).await;
        assert_eq!(baseline.status(), 201);
        infusion(&app, &token, &patient, day(2.0)).await;
        // Scores in the session's follow-up window and the course's induction, all at once:
        // low ones (benefit, a response) and high ones (wear-off).
        let posts = (0..24).map(|i| {
            let (app, scores, token) = (&app, &scores, &token);
            let body = phq9(2.5 + f64::from(i) * 0.5, if i % 3 == 0 { 0 } else { 2 });
            async move { app.post_as(scores, token, &body).await.status().as_u16() }
        });
        let statuses = futures_util::future::join_all(posts).await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        let (stored, whole) = stored_and_whole(&app, &patient).await;
        assert_eq!(stored, whole);
        assert!(!stored.sessions.is_empty() && stored.courses[0].time_to_response_days.is_some());
    }
);

// New clinical settings reach every stored outcome, not only those a later write moves: the
// first sweep under them evaluates every record again. W goes from 7 to 10 days (a process
// restarted with KO_WEAR_OFF_DAYS=10; the first one sweeps no more during the test): an
// infusion whose benefit wore off after 8.5 days is flagged with no write in between.
api_test!(
    new_settings_reach_every_stored_outcome_without_a_write,
    overrides = &[("KO_SWEEP_SECS", "60")],
    |app| async move {
        let session_at =
            DateTime::from_timestamp((Utc::now() - Duration::days(30)).timestamp(), 0).unwrap();
        let (token, patient) = patient_with_course(&app, session_at - Duration::days(2)).await;
        let scores = format!("/v1/patients/{patient}/assessments");
        let at = |days: f64| session_at + Duration::minutes((days * 1440.0) as i64);
        let phq9 = |days: f64, items: [i32; 9]| json!({"instrument": "phq9", "taken_at": at(days), "items": items});
        for (days, items) in [
            (-1.0, [3, 3, 2, 2, 2, 2, 2, 2, 0]),
            (2.0, [1, 1, 1, 1, 1, 0, 0, 0, 0]),
            (8.5, [2, 2, 2, 2, 2, 2, 2, 2, 0]),
        ] {
            assert_eq!(
                app.post_as(&scores, &token, &phq9(days, items))
                    .await
                    .status(),
                201
            );
        }
        infusion(&app, &token, &patient, session_at).await;
        let (before, _) = stored_and_whole(&app, &patient).await;
        let outcome = &before.sessions[0];
        assert_eq!(
            (
                format!("{:?}", outcome.status),
                outcome.durability_days,
                outcome.wears_off_within_days
            ),
            ("WoreOff".to_owned(), Some(8.5), false)
        );

        let restarted = app
            .second_instance_with(|s| {
                s.clinical.wear_off_days = 10.0;
                s.sweep_interval = std::time::Duration::from_secs(1);
            })
            .await;
        let after = crate::helpers::eventually(
            || async { stored_and_whole(&restarted, &patient).await.0 },
            |after| after.sessions[0].wears_off_within_days,
        )
        .await;
        assert!(after.sessions[0].wears_off_within_days, "{after:?}");
        assert!(
            after
                .flags
                .iter()
                .any(|(kind, record, _)| kind == "wears_off_within_days"
                    && *record == outcome.session_id.to_string()),
            "{:?}",
            after.flags
        );
    }
);

// A sweep that takes long — every record evaluated again under new settings while a writer
// holds the patients — keeps no slot a request waits for: with a pool of one connection the
// restarted process still answers its readiness check (which reads the database), where the
// sweep on the request pool would hold that one slot past the 2 s the request waits.
api_test!(
    a_long_sweep_holds_no_slot_a_request_waits_for,
    overrides = &[("KO_SWEEP_SECS", "60"), ("KO_DB_POOL_SIZE", "1")],
    |app| async move {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        use ketamine_outcomes::store::DbConnection;
        patient_with_course(&app, Utc::now() - Duration::days(2)).await;
        let url = app.settings.database_url.connection_string();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let mut conn = DbConnection::establish(&url).unwrap();
            let lock = match conn {
                DbConnection::Sqlite(_) => "BEGIN IMMEDIATE",
                DbConnection::Postgres(_) => "BEGIN; LOCK TABLE patients IN EXCLUSIVE MODE",
            };
            conn.batch_execute(lock).unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(4));
            conn.batch_execute("ROLLBACK").unwrap();
        });
        held_rx.recv().unwrap();
        let restarted = app
            .second_instance_with(|s| {
                s.clinical.wear_off_days = 10.0;
                s.sweep_interval = std::time::Duration::from_secs(1);
            })
            .await;
        // The restarted process's first sweep has begun and waits on the writer.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let ready = restarted.get("/readyz").await.status();
        holder.join().unwrap();
        assert_eq!(ready, 200);
    }
);

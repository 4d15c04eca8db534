//! The measurement plan through the API: the due list at chosen instants, adherence, the
//! missed-follow-up flag and the consent history.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::{json, Value};

use ketamine_outcomes::store::schema::course_adherence as ca;
use ketamine_outcomes::store::StoreError;

use crate::api_test;
use crate::helpers::{eventually, Session, TestApp};

struct Course {
    patient: String,
    t0: DateTime<Utc>,
    sessions: Vec<String>,
    scores: Vec<String>,
}

/// Sessions on days 0, 2 and 4 of a standard course (day 0 is 20 days ago, 10:00), PHQ-9
/// scores at days −0.5, 1.2 and 3.9, no daily mood in the plan.
async fn course(app: &TestApp, clinician: &Session) -> Course {
    let t0: DateTime<Utc> = (Utc::now() - Duration::days(20))
        .format("%Y-%m-%dT10:00:00Z")
        .to_string()
        .parse()
        .unwrap();
    let at = |d: f64| (t0 + Duration::seconds((d * 86_400.0) as i64)).to_rfc3339();
    let patient = app.new_patient(clinician).await;
    let body = json!({"indication": "treatment_resistant_depression", "start_date": t0.date_naive(),
        "measurement_plan": {"daily_mood": false}});
    let res = app
        .post_as(
            &format!("/v1/patients/{patient}/courses"),
            &clinician.access_token,
            &body,
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(
        created["measurement_plan"],
        json!({"pre_session_hours": 24, "follow_up_days": [1, 3, 7, 14], "daily_mood": false,
        "first_day_window_hours": 12, "window_hours": 24}),
        "the defaults fill what the clinic did not change"
    );
    let mut scores = Vec::new();
    let mut sessions = Vec::new();
    // The scores first: a sweep between a session and its follow-up score would find the
    // follow-up missed, and a flag once raised stays.
    for (kind, day) in [
        ("score", -0.5),
        ("score", 1.2),
        ("score", 3.9),
        ("session", 0.0),
        ("session", 2.0),
        ("session", 4.0),
    ] {
        if kind == "session" {
            sessions.push(app.new_session(clinician, &patient, &at(day)).await);
        } else {
            let body = json!({"instrument": "phq9", "taken_at": at(day), "items": [2, 2, 2, 2, 2, 1, 1, 1, 0]});
            let res = app
                .post_as(
                    &format!("/v1/patients/{patient}/assessments"),
                    &clinician.access_token,
                    &body,
                )
                .await;
            scores.push(
                res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    Course {
        patient,
        t0,
        sessions,
        scores,
    }
}

/// The session items of a due list as (status, session index, day, window start, window end)
/// in days from day 0.
fn session_items(body: &Value, c: &Course) -> Vec<(String, usize, Option<i64>, f64, f64)> {
    let days = |v: &Value| {
        let at: DateTime<Utc> = v.as_str().unwrap().parse().unwrap();
        ((at - c.t0).num_seconds() as f64 / 86_400.0 * 100.0).round() / 100.0
    };
    let mut items: Vec<_> = ["completed", "due_now", "missed", "upcoming"]
        .iter()
        .flat_map(|status| body[*status].as_array().unwrap().iter())
        .filter(|i| !i["session_id"].is_null())
        .map(|i| {
            let session = c
                .sessions
                .iter()
                .position(|s| i["session_id"] == s.as_str())
                .unwrap();
            (
                i["status"].as_str().unwrap().to_owned(),
                session,
                i["day"].as_i64(),
                days(&i["window_start"]),
                days(&i["window_end"]),
            )
        })
        .collect();
    items.sort_by(|a, b| a.3.total_cmp(&b.3));
    items
}

api_test!(
    the_due_list_at_chosen_instants_matches_the_plan,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let c = course(&app, &clinic.clinician).await;
        let at = |d: f64| {
            (c.t0 + Duration::seconds((d * 86_400.0) as i64))
                .to_rfc3339()
                .replace('+', "%2B")
        };
        let due = |d: f64| {
            let (app, token, path) = (
                &app,
                clinic.clinician.access_token.clone(),
                format!("/v1/patients/{}/due-assessments?at={}", c.patient, at(d)),
            );
            async move {
                let res = app.get_as(&path, &token).await;
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.unwrap()
            }
        };
        let row =
            |status: &str, session, day, from, to| (status.to_owned(), session, day, from, to);

        // Before the first session: nothing tied to a session yet; the first planned day's
        // pre-session item is already met by the score taken the evening before.
        let before = due(-0.3).await;
        assert!(session_items(&before, &c).is_empty());
        assert_eq!(before["completed"][0]["purpose"], "pre_session", "{before}");
        assert_eq!(before["completed"][0]["completed_by"], c.scores[0].as_str());
        assert!(before["due_now"].as_array().unwrap().is_empty());

        // After the first session.
        assert_eq!(
            session_items(&due(0.4).await, &c),
            [
                row("completed", 0, None, -1.0, 0.0),
                row("upcoming", 0, Some(1), 0.5, 1.5),
                row("upcoming", 0, Some(3), 2.0, 4.0),
                row("upcoming", 0, Some(7), 6.0, 8.0),
                row("upcoming", 0, Some(14), 13.0, 15.0),
            ]
        );
        // Before the second session: day 1 was completed at 1.2; the second session's
        // pre-session item is the planned one, not yet tied to a session.
        assert_eq!(
            session_items(&due(1.7).await, &c)[1],
            row("completed", 0, Some(1), 0.5, 1.5)
        );
        // After the second session: the first session's follow-ups stop at it.
        assert_eq!(
            session_items(&due(2.8).await, &c),
            [
                row("completed", 0, None, -1.0, 0.0),
                row("completed", 0, Some(1), 0.5, 1.5),
                row("completed", 1, None, 1.0, 2.0),
                row("due_now", 1, Some(1), 2.5, 3.5),
                row("upcoming", 1, Some(3), 4.0, 6.0),
                row("upcoming", 1, Some(7), 8.0, 10.0),
                row("upcoming", 1, Some(14), 15.0, 17.0),
            ]
        );
        // After the third: the second session's day 1 was missed.
        let third = due(4.2).await;
        assert_eq!(
            session_items(&third, &c),
            [
                row("completed", 0, None, -1.0, 0.0),
                row("completed", 0, Some(1), 0.5, 1.5),
                row("completed", 1, None, 1.0, 2.0),
                row("missed", 1, Some(1), 2.5, 3.5),
                row("completed", 2, None, 3.0, 4.0),
                row("upcoming", 2, Some(1), 4.5, 5.5),
                row("upcoming", 2, Some(3), 6.0, 8.0),
                row("upcoming", 2, Some(7), 10.0, 12.0),
                row("upcoming", 2, Some(14), 17.0, 19.0),
            ]
        );
        assert_eq!(third["missed"][0]["completed_by"], Value::Null);
        assert_eq!(third["completed"][0]["completed_by"], c.scores[0].as_str());
    }
);

api_test!(
    adherence_is_the_share_of_due_items_completed_on_time,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let c = course(&app, &clinic.clinician).await;
        // Now (day 20): completed — pre-session of sessions 1, 2, 3 and session 1's day 1 (4);
        // missed — session 2's day 1, session 3's days 1, 3, 7 and 14 (5). Planned days that
        // passed without a session are missed sessions, not missed questionnaires.
        let outcomes: Value = app
            .get_as(
                &format!("/v1/patients/{}/outcomes", c.patient),
                &clinic.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            outcomes["courses"][0]["adherence"],
            json!({"completed": 4, "due": 9, "rate": 0.4444})
        );
        assert_eq!(outcomes["adherence"], outcomes["courses"][0]["adherence"]);
        let phone = app.patient_app(&clinic.clinician, &c.patient).await;
        let mine: Value = app
            .get_as("/v1/me/due-assessments", &phone.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            mine["adherence"],
            json!({"completed": 4, "due": 9, "rate": 0.4444})
        );
    }
);

api_test!(
    a_missing_follow_up_after_three_days_raises_an_info_flag_once,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let c = course(&app, &clinic.clinician).await;
        let token = &clinic.clinician.access_token;
        let first = missed_follow_ups_once_flagged(&app, token, "").await;
        let records: Vec<&str> = first["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["record_id"].as_str().unwrap())
            .collect();
        // Session 1 was followed up at day 1.2 and session 2 at day 3.9; session 3 never was.
        assert_eq!(records, [c.sessions[2].as_str()]);
        assert!(first["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["level"] == "info"));
        assert_eq!(
            missed_follow_ups(&app, token, "").await["items"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "de-duplicated like every flag"
        );
    }
);

api_test!(
    consent_history_keeps_every_grant_and_withdrawal,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        app.patch(
            &format!("/v1/patients/{patient}"),
            token,
            None,
            &json!({"research_consent": false}),
        )
        .await;
        app.patch(
            &format!("/v1/patients/{patient}"),
            token,
            None,
            &json!({"sex": "unknown"}),
        )
        .await;
        app.patch(
            &format!("/v1/patients/{patient}"),
            token,
            None,
            &json!({"research_consent": true}),
        )
        .await;
        let history: Value = app
            .get_as(&format!("/v1/patients/{patient}/consent-history"), token)
            .await
            .json()
            .await
            .unwrap();
        let granted: Vec<bool> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["granted"].as_bool().unwrap())
            .collect();
        assert_eq!(
            granted,
            [true, false, true],
            "a change that leaves consent alone adds nothing"
        );
        assert!(history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_id"] == clinic.clinician.user_id.as_str()));
        let phone = app.patient_app(&clinic.clinician, &patient).await;
        assert_eq!(
            app.get_as(
                &format!("/v1/patients/{patient}/consent-history"),
                &phone.access_token
            )
            .await
            .status(),
            200
        );
        let other = app.clinic(&admin, "Lighthouse").await;
        assert_eq!(
            app.get_as(
                &format!("/v1/patients/{patient}/consent-history"),
                &other.clinician.access_token
            )
            .await
            .status(),
            404
        );
    }
);

/// The research outcomes of every PHQ-9 course (one row, when it is not withheld).
async fn phq9_research(app: &TestApp, researcher: &Session) -> Value {
    app.get_as(
        "/v1/research/outcomes?instrument=phq9",
        &researcher.access_token,
    )
    .await
    .json()
    .await
    .unwrap()
}

api_test!(
    research_reports_adherence_and_follow_up_with_the_small_cell_rule,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let researcher = app.controlled_researcher(&admin).await;
        let mut patients = Vec::new();
        for _ in 0..5 {
            patients.push(course(&app, &clinic.clinician).await.patient);
        }
        let row = &phq9_research(&app, &researcher).await["rows"][0];
        // Each patient: 4 of 9 due items on time (see the adherence test); sessions 1 and 2 had a
        // follow-up, session 3 none.
        assert_eq!(
            row["adherence"],
            json!({"numerator": 20, "denominator": 45, "rate": 0.4444})
        );
        assert_eq!(row["sessions_with_follow_up"], 10);
        assert_eq!(row["sessions"], 15);

        // Adherence is also a dimension: 4 of 9 is below 50 %.
        let by_band: Value = app
            .get_as(
                "/v1/research/outcomes?instrument=phq9&group_by=adherence_band",
                &researcher.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            by_band["rows"][0]["group"],
            json!({"adherence_band": "lt_50"})
        );
        assert_eq!(by_band["rows"][0]["patients"], 5);
        let well: Value = app
            .get_as(
                "/v1/research/outcomes?adherence_band=ge_80",
                &researcher.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(well["rows"].as_array().unwrap().is_empty());
        assert_eq!(
            app.get_as(
                "/v1/research/outcomes?adherence_band=most",
                &researcher.access_token
            )
            .await
            .status(),
            422
        );

        // Withdrawing one patient's consent leaves 4: a small cell, withheld.
        let res = app
            .patch(
                &format!("/v1/patients/{}", patients[0]),
                &clinic.clinician.access_token,
                None,
                &json!({"research_consent": false}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body = phq9_research(&app, &researcher).await;
        assert!(body["rows"].as_array().unwrap().is_empty(), "{body}");
        assert_eq!(
            body["withheld_groups"], 1,
            "the small cell is withheld, key and figures"
        );
        let history: Value = app
            .get_as(
                &format!("/v1/patients/{}/consent-history", patients[0]),
                &clinic.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            history.as_array().unwrap().last().unwrap()["granted"],
            false,
            "the withdrawal is in the history"
        );
    }
);

/// (completed, due) of each of the patient's courses as stored for research.
async fn stored_adherence(app: &TestApp, patient: &str) -> Vec<(i32, i32)> {
    let patient = patient.to_owned();
    app.database()
        .run(move |conn| {
            Ok::<_, StoreError>(
                ca::table
                    .filter(ca::patient_id.eq(patient))
                    .select((ca::completed, ca::due))
                    .load(conn)?,
            )
        })
        .await
        .unwrap()
}

// issue 16 (3): research reads each course's adherence as the sweep stored it, and a write to
// the record — a new score, or one marked entered in error — takes the stored counts away at
// once (the database's own triggers, migration 000019), before any sweep could store them again.
api_test!(
    research_reads_the_stored_adherence_that_a_write_takes_away,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let researcher = app.controlled_researcher(&admin).await;
        let mut courses = Vec::new();
        for _ in 0..5 {
            courses.push(course(&app, &clinic.clinician).await);
        }
        let first = &courses[0];
        // The sweep (every second in the tests) stores each course's counts: 4 of 9.
        assert_eq!(swept_adherence(&app, &first.patient).await, vec![(4, 9)]);
        // Counts the records do not warrant: research reports them, so it read them and not
        // the records.
        store_unwarranted_adherence(&app, &first.patient).await;
        assert_eq!(
            phq9_research(&app, &researcher).await["rows"][0]["adherence"],
            json!({"numerator": 25, "denominator": 45, "rate": 0.5556})
        );
        // A PHQ-9 on day 7, in the third session's 3-day follow-up window: the write removes
        // the patient's stored counts, and research finds 5 of 9 at once.
        let day_7 = (first.t0 + Duration::days(7)).to_rfc3339();
        let res = app
            .post_as(
                &format!("/v1/patients/{}/assessments", first.patient),
                &clinic.clinician.access_token,
                &json!({"instrument": "phq9", "taken_at": day_7, "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let day_7_score = res.json::<Value>().await.unwrap()["id"].clone();
        assert_eq!(
            phq9_research(&app, &researcher).await["rows"][0]["adherence"],
            json!({"numerator": 21, "denominator": 45, "rate": 0.4667})
        );
        // The sweep stores 5 of 9; counts it did not are put in their place again, and the
        // score marked entered in error (a change, not an insert) takes them away: 4 of 9.
        assert_eq!(swept_adherence(&app, &first.patient).await, vec![(5, 9)]);
        store_unwarranted_adherence(&app, &first.patient).await;
        let res = app
            .delete_as(
                &format!("/v1/assessments/{}", day_7_score.as_str().unwrap()),
                &clinic.clinician.access_token,
                &json!({"reason": "entered for the wrong day"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            phq9_research(&app, &researcher).await["rows"][0]["adherence"],
            json!({"numerator": 20, "denominator": 45, "rate": 0.4444})
        );
    }
);

// issue 16 (3): every kind of write adherence is computed from — a session recorded, changed
// or entered in error, a course changed — takes the patient's stored counts away in its own
// transaction (migration 000019's triggers, written once per engine); acknowledging a flag,
// which moves its record's sync position and not its version, leaves them.
api_test!(
    every_write_adherence_reads_takes_the_stored_counts_away,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let c = course(&app, &clinic.clinician).await;
        let courses: Value = app
            .get_as(&format!("/v1/patients/{}/courses", c.patient), token)
            .await
            .json()
            .await
            .unwrap();
        let course_id = courses["items"][0]["id"].as_str().unwrap().to_owned();
        // The third session's follow-up was never taken: the sweep flags it.
        let query = format!("&patient_id={}", c.patient);
        let flags = missed_follow_ups_once_flagged(&app, token, &query).await;
        let flag = flags["items"][0]["id"].as_str().unwrap().to_owned();

        swept_adherence(&app, &c.patient).await;
        store_unwarranted_adherence(&app, &c.patient).await;
        let res = app
            .post_as(
                &format!("/v1/flags/{flag}/acknowledge"),
                token,
                &json!({"note": "called the patient"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            stored_adherence(&app, &c.patient).await,
            vec![(9, 9)],
            "a flag acknowledged changes no record adherence reads"
        );

        let day_6 = (c.t0 + Duration::days(6)).to_rfc3339();
        let session =
            json!({"route": "iv", "started_at": day_6, "dose_mg_per_kg": 0.5, "weight_kg": 70.0});
        let reason = json!({"reason": "entered for the wrong patient"});
        for what in [
            "a session recorded",
            "a session changed",
            "a session entered in error",
            "a course changed",
        ] {
            swept_adherence(&app, &c.patient).await;
            store_unwarranted_adherence(&app, &c.patient).await;
            let res = match what {
                "a session recorded" => {
                    let path = format!("/v1/patients/{}/sessions", c.patient);
                    app.post_as(&path, token, &session).await
                }
                "a session changed" => {
                    let path = format!("/v1/sessions/{}", c.sessions[0]);
                    let change = json!({"dose_mg_per_kg": 0.6});
                    app.patch(&path, token, None, &change).await
                }
                "a session entered in error" => {
                    let path = format!("/v1/sessions/{}", c.sessions[1]);
                    app.delete_as(&path, token, &reason).await
                }
                _ => {
                    let path = format!("/v1/courses/{course_id}");
                    app.patch(&path, token, None, &json!({"closed": true}))
                        .await
                }
            };
            assert!(res.status().is_success(), "{what}: {}", res.status());
            // Gone, or stored again by a sweep since: never the counts the records do not
            // warrant.
            let stored = stored_adherence(&app, &c.patient).await;
            assert!(!stored.contains(&(9, 9)), "{what}: {stored:?}");
        }
    }
);

/// The worklist's missed-follow-up flags, narrowed by `query` (`&name=value…`).
async fn missed_follow_ups(app: &TestApp, token: &str, query: &str) -> Value {
    let path = format!("/v1/flags?kind=missed_follow_up{query}");
    app.get_as(&path, token).await.json().await.unwrap()
}

/// [`missed_follow_ups`] once the sweep has raised one.
async fn missed_follow_ups_once_flagged(app: &TestApp, token: &str, query: &str) -> Value {
    let some = |v: &Value| v["items"].as_array().is_some_and(|i| !i.is_empty());
    eventually(|| missed_follow_ups(app, token, query), some).await
}

/// The patient's stored counts, once the sweep has stored them.
async fn swept_adherence(app: &TestApp, patient: &str) -> Vec<(i32, i32)> {
    eventually(|| stored_adherence(app, patient), |rows| !rows.is_empty()).await
}

/// Puts 9 of 9, holding for a day, in place of the patient's stored counts.
async fn store_unwarranted_adherence(app: &TestApp, patient: &str) {
    let patient = patient.to_owned();
    let tomorrow = (Utc::now() + Duration::days(1)).naive_utc();
    let changed = app
        .database()
        .run(move |conn| {
            diesel::update(ca::table.filter(ca::patient_id.eq(patient)))
                .set((
                    ca::completed.eq(9),
                    ca::due.eq(9),
                    ca::valid_until.eq(tomorrow),
                ))
                .execute(conn)
                .map_err(StoreError::from)
        })
        .await
        .unwrap();
    assert_eq!(changed, 1);
}

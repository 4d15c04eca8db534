//! Outcomes through HTTP (domain.md §6): a history built with the API, read back as exact
//! stored figures, and kept current when a record is corrected.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{painted, Session, TestApp, QUIET_SWEEP};

/// Answers adding up to a PHQ-9 total, with item 9 at 0.
fn phq9(total: i64) -> Vec<i64> {
    let mut left = total;
    (0..9)
        .map(|i| {
            let v = if i == 8 { 0 } else { left.min(3) };
            left -= v;
            v
        })
        .collect()
}

struct History {
    patient: String,
    sessions: [String; 2],
    scores: Vec<String>,
}

/// PHQ-9 at day −1 (20); session 1 at day 0; 8 at day 2; 14 at day 5; session 2 at day 7;
/// 6 at day 10; 7 at day 30. Day 0 is 35 days ago. Written a record at a time, so a sweep
/// between a session and its follow-up score would find the follow-up missed: the tests that
/// build it keep the sweep to its first tick, at start (`QUIET_SWEEP`).
async fn history(app: &TestApp, clinician: &Session) -> History {
    let t0: DateTime<Utc> = (Utc::now() - Duration::days(35))
        .format("%Y-%m-%dT%H:00:00Z")
        .to_string()
        .parse()
        .unwrap();
    let at = |days: i64| (t0 + Duration::days(days)).to_rfc3339();
    let patient = app.new_patient(clinician).await;
    app.new_course(clinician, &patient, &t0.date_naive().to_string())
        .await;
    let mut scores = Vec::new();
    let score = |days: i64, total: i64| {
        let body = json!({"instrument": "phq9", "taken_at": at(days), "items": phq9(total)});
        let path = format!("/v1/patients/{patient}/assessments");
        async move {
            let res = app.post_as(&path, &clinician.access_token, &body).await;
            assert_eq!(res.status(), 201);
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    scores.push(score(-1, 20).await);
    let first = app.new_session(clinician, &patient, &at(0)).await;
    scores.push(score(2, 8).await);
    scores.push(score(5, 14).await);
    let second = app.new_session(clinician, &patient, &at(7)).await;
    scores.push(score(10, 6).await);
    scores.push(score(30, 7).await);
    History {
        patient,
        sessions: [first, second],
        scores,
    }
}

async fn outcomes(app: &TestApp, clinician: &Session, patient: &str) -> Value {
    let res = app
        .get_as(
            &format!("/v1/patients/{patient}/outcomes"),
            &clinician.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn session_fields(o: &Value) -> Value {
    json!([
        o["status"],
        o["baseline"],
        o["nadir"],
        o["gain"],
        o["durability_days"],
        o["censored"],
        o["wears_off_within_days"]
    ])
}

api_test!(
    a_history_built_through_the_api_reads_back_exact_outcomes,
    overrides = QUIET_SWEEP,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let h = history(&app, &clinic.clinician).await;
        let o = outcomes(&app, &clinic.clinician, &h.patient).await;
        assert_eq!(o["wear_off_days"], 7.0);
        let sessions = o["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions[0]["session_id"], h.sessions[0].as_str());
        // Session 1: baseline 20, nadir 8, gain 12; 14 at day 5 has lost half the gain.
        assert_eq!(
            session_fields(&sessions[0]),
            json!(["wore_off", 20, 8, 12, 5.0, false, true])
        );
        // Session 2: baseline 14 (day 5), nadir 6; 7 at day 30 is below 14 − 8/2: still there.
        assert_eq!(
            session_fields(&sessions[1]),
            json!(["sustained", 14, 6, 8, 23.0, true, false])
        );
        let course = &o["courses"][0];
        assert_eq!(course["baseline"], 20);
        assert_eq!(
            course["end_of_induction"],
            json!({"assessment_id": h.scores[4], "response": true, "remission": false})
        );
        assert_eq!(course["time_to_response_days"], 2.0);

        // The wear-off raised its flag, visible on the session.
        let session: Value = app
            .get_as(
                &format!("/v1/sessions/{}", h.sessions[0]),
                &clinic.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let kinds: Vec<&str> = session["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["wears_off_within_days"]);

        let phone = app.patient_app(&clinic.clinician, &h.patient).await;
        let own: Value = app
            .get_as("/v1/me/outcomes", &phone.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            own["sessions"], o["sessions"],
            "the patient reads the same figures"
        );
    }
);

api_test!(
    a_correction_recomputes_the_outcomes_it_touches,
    overrides = QUIET_SWEEP,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let h = history(&app, &clinic.clinician).await;
        let res = app
            .delete_as(
                &format!("/v1/assessments/{}", h.scores[2]),
                &clinic.clinician.access_token,
                &json!({"reason": "wrong patient"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let o = outcomes(&app, &clinic.clinician, &h.patient).await;
        let sessions = o["sessions"].as_array().unwrap();
        // Without the day-5 score: session 1 never wore off; session 2's baseline is day 2's 8.
        assert_eq!(
            session_fields(&sessions[0]),
            json!(["sustained", 20, 8, 12, 2.0, true, false])
        );
        assert_eq!(
            session_fields(&sessions[1]),
            json!(["no_benefit", 8, 6, 2, null, false, false])
        );

        let res = app
            .delete_as(
                &format!("/v1/sessions/{}", h.sessions[1]),
                &clinic.clinician.access_token,
                &json!({"reason": "never given"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let o = outcomes(&app, &clinic.clinician, &h.patient).await;
        let sessions = o["sessions"].as_array().unwrap();
        assert_eq!(
            sessions.len(),
            1,
            "an infusion entered in error has no outcome"
        );
        // Session 1's window now runs to day 90: its nadir is day 10's 6.
        assert_eq!(
            session_fields(&sessions[0]),
            json!(["sustained", 20, 6, 14, 30.0, true, false])
        );
    }
);

api_test!(
    sessions_without_a_baseline_or_follow_up_say_so,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let day = |n: i64| (Utc::now() - Duration::days(20) + Duration::days(n)).to_rfc3339();
        app.new_course(
            &clinic.clinician,
            &patient,
            &(Utc::now() - Duration::days(20)).date_naive().to_string(),
        )
        .await;
        app.new_session(&clinic.clinician, &patient, &day(0)).await;
        let body = json!({"instrument": "phq9", "taken_at": day(1), "items": phq9(10)});
        app.post_as(
            &format!("/v1/patients/{patient}/assessments"),
            &clinic.clinician.access_token,
            &body,
        )
        .await;
        app.new_session(&clinic.clinician, &patient, &day(2)).await;
        let o = outcomes(&app, &clinic.clinician, &patient).await;
        let statuses: Vec<&str> = o["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["no_baseline", "no_follow_up"]);
    }
);

api_test!(
    the_trajectory_svg_marks_scores_bands_infusions_and_wear_off,
    overrides = QUIET_SWEEP,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let h = history(&app, &clinic.clinician).await;
        let res = app
            .get_as(
                &format!("/v1/patients/{}/trajectory.svg?instrument=phq9", h.patient),
                &clinic.clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/svg+xml");
        let svg = res.text().await.unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(
            painted(&doc, "circle", "fill", "#1F77B4"),
            5,
            "one point per PHQ-9 score"
        );
        assert_eq!(
            painted(&doc, "polygon", "fill", "#D62728"),
            1 + 1,
            "the one wear-off point, and its legend mark"
        );
        assert_eq!(
            painted(&doc, "polyline", "stroke", "#9467BD"),
            2 + 1,
            "two infusions, and the legend line"
        );
        let texts: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        for band in ["minimal", "mild", "moderate", "moderately severe", "severe"] {
            assert!(texts.contains(&band), "band {band} is labelled: {texts:?}");
        }
        assert!(texts.contains(&"wore off") && texts.contains(&"infusion"));
        let width: f64 = doc
            .root_element()
            .attribute("width")
            .unwrap()
            .parse()
            .unwrap();
        assert!(width <= 640.0, "fits a phone held sideways and scales down");

        let phone = app.patient_app(&clinic.clinician, &h.patient).await;
        assert_eq!(
            app.get_as(
                &format!("/v1/patients/{}/trajectory.svg", h.patient),
                &phone.access_token
            )
            .await
            .status(),
            200
        );
        let other = app.clinic(&admin, "Lighthouse").await;
        assert_eq!(
            app.get_as(
                &format!("/v1/patients/{}/trajectory.svg", h.patient),
                &other.clinician.access_token
            )
            .await
            .status(),
            404
        );
    }
);

//! The timeline read (issue 16 (2): one statement where it was six in a transaction).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{Session, TestApp};

/// An instant `minutes` before `now`, as the API writes one (and a query string takes it).
fn before(now: DateTime<Utc>, minutes: i64) -> String {
    (now - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn post(app: &TestApp, clinician: &Session, path: &str, body: Value) -> Value {
    let res = app.post_as(path, &clinician.access_token, &body).await;
    assert_eq!(res.status(), 201, "{path} {body}");
    res.json().await.unwrap()
}

/// Every page of the timeline from `query` on, each entry as `(its kind, its record)`.
async fn walk(
    app: &TestApp,
    clinician: &Session,
    patient: &str,
    query: &str,
) -> Vec<(String, Value)> {
    let mut entries = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/patients/{patient}/timeline?limit=2{query}{cursor}");
        let page = app.read(&path, &clinician.access_token).await;
        for entry in page["items"].as_array().unwrap() {
            let kind = entry["kind"].as_str().unwrap().to_owned();
            entries.push((kind.clone(), entry[&kind].clone()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return entries,
        }
    }
}

// Each entry of every page is exactly what its record's own read shows — every field, its
// flags, a crisis message where one is due — in time order, records of the three kinds
// interleaved; a record entered in error is left out, and `from`/`to` bound the union as they
// bound each list. The reference is the per-record read, which the single statement replaced
// nothing of.
api_test!(
    each_timeline_entry_is_its_records_own_read_in_time_order_within_the_range,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let clinician = &clinic.clinician;
        let patient = app.new_patient(clinician).await;
        let now = Utc::now();
        app.new_course(clinician, &patient, &now.date_naive().to_string())
            .await;
        let sessions = format!("/v1/patients/{patient}/sessions");
        let assessments = format!("/v1/patients/{patient}/assessments");
        let effects = format!("/v1/patients/{patient}/side-effects");

        let early = post(
            &app,
            clinician,
            &sessions,
            json!({"route": "iv", "started_at": before(now, 300),
            "dose_mg_per_kg": 0.5, "weight_kg": 70.0}),
        )
        .await;
        let session = post(
            &app,
            clinician,
            &sessions,
            json!({"route": "iv", "started_at": before(now, 240),
            "ended_at": before(now, 200), "dose_mg_per_kg": 0.5, "weight_kg": 70.0,
            "pre": {"systolic": 168, "diastolic": 96}}),
        )
        .await;
        let effect = post(
            &app,
            clinician,
            &effects,
            json!({"session_id": session["id"], "effect": "nausea",
            "severity": "mild", "onset_at": before(now, 220), "resolved_at": before(now, 210),
            "note": "settled with water"}),
        )
        .await;
        let ideation = post(
            &app,
            clinician,
            &assessments,
            json!({"instrument": "phq9",
            "taken_at": before(now, 180), "items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}),
        )
        .await;
        let mistaken = post(
            &app,
            clinician,
            &assessments,
            json!({"instrument": "phq9",
            "taken_at": before(now, 170), "items": [0, 0, 0, 0, 0, 0, 0, 0, 0]}),
        )
        .await;
        let removed = app
            .delete_as(
                &format!("/v1/assessments/{}", mistaken["id"].as_str().unwrap()),
                &clinician.access_token,
                &json!({"reason": "wrong patient"}),
            )
            .await;
        assert_eq!(removed.status(), 200);
        let mood = post(
            &app,
            clinician,
            &assessments,
            json!({"instrument": "daily_mood",
            "taken_at": before(now, 120), "items": [6]}),
        )
        .await;
        let late = post(
            &app,
            clinician,
            &assessments,
            json!({"instrument": "gad7",
            "taken_at": before(now, 60), "items": [1, 1, 1, 1, 1, 1, 1]}),
        )
        .await;

        let whole = walk(&app, clinician, &patient, "").await;
        let ids: Vec<&str> = whole
            .iter()
            .map(|(_, r)| r["id"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = [&early, &session, &effect, &ideation, &mood, &late]
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids, expected,
            "time order, three kinds, the mistaken one left out"
        );
        for (kind, shown) in &whole {
            let path = match kind.as_str() {
                "session" => "sessions",
                "assessment" => "assessments",
                _ => "side-effects",
            };
            let own = app
                .read(
                    &format!("/v1/{path}/{}", shown["id"].as_str().unwrap()),
                    &clinician.access_token,
                )
                .await;
            assert_eq!(shown, &own, "the {kind} as its own read shows it");
        }
        let flagged = |i: usize| whole[i].1["flags"].as_array().unwrap().len();
        assert!(
            flagged(1) > 0 && flagged(3) > 0,
            "the hypertension and the ideation flags are there"
        );
        assert!(whole[3].1["crisis_message"].is_string());
        assert!(whole[4].1["crisis_message"].is_null());

        let range = format!("&from={}&to={}", before(now, 240), before(now, 120));
        let bounded = walk(&app, clinician, &patient, &range).await;
        let ids: Vec<&str> = bounded
            .iter()
            .map(|(_, r)| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            expected[1..4],
            "[from, to): the session at `from` in, the mood at `to` out"
        );
    }
);

// The one statement checks the scope itself (issue 16 (2)): the patient's own app reads the
// same entries as the clinician; a clinician of another clinic and another patient's app get a
// 404, as for a patient who does not exist.
api_test!(
    the_timeline_is_read_within_the_callers_scope_only,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let lighthouse = app.clinic(&admin, "Lighthouse").await;
        let clinician = &harbour.clinician;
        let patient = app.new_patient(clinician).await;
        let neighbour = app.new_patient(clinician).await;
        let now = Utc::now();
        for (at, items) in [(90, [1; 7]), (30, [2; 7])] {
            let body = json!({"instrument": "gad7", "taken_at": before(now, at), "items": items});
            post(
                &app,
                clinician,
                &format!("/v1/patients/{patient}/assessments"),
                body,
            )
            .await;
        }
        let ids = |entries: Vec<(String, Value)>| -> Vec<String> {
            entries
                .into_iter()
                .map(|(_, record)| record["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let seen = ids(walk(&app, clinician, &patient, "").await);
        assert_eq!(seen.len(), 2);
        let own_app = app.patient_app(clinician, &patient).await;
        assert_eq!(ids(walk(&app, &own_app, &patient, "").await), seen);

        let neighbours_app = app.patient_app(clinician, &neighbour).await;
        let path = format!("/v1/patients/{patient}/timeline");
        for (outsider, who) in [
            (&lighthouse.clinician, "another clinic's clinician"),
            (&neighbours_app, "another patient's app"),
        ] {
            let res = app.get_as(&path, &outsider.access_token).await;
            assert_eq!(res.status(), 404, "{who}");
        }
    }
);

//! Every validation rule of domain.md §1-5 through the API: 422 naming the field, and nothing
//! stored. Both ends of every band of every instrument, scored by the server.

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::{days_from_now, minutes_from_now};
use crate::helpers::{problem, TestApp};

/// Posts each body and expects 422 naming `field`.
async fn expect_rule(app: &TestApp, token: &str, path: &str, cases: Vec<(Value, &str)>) {
    for (body, field) in cases {
        let (status, content_type, problem) = problem(app.post_as(path, token, &body).await).await;
        assert_eq!(
            (status, content_type.as_str()),
            (422, "application/problem+json"),
            "{path} {body}"
        );
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{path} {body}: expected {field}, got {fields:?}"
        );
    }
}

fn with(base: &Value, changes: Value) -> Value {
    let mut body = base.clone();
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

api_test!(patient_rules, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let base = json!({"birth_year": 1980, "sex": "female", "indications": ["ocd"]});
    let cases = vec![
        (with(&base, json!({"birth_year": 1899})), "birth_year"),
        (with(&base, json!({"birth_year": 2100})), "birth_year"),
        (with(&base, json!({"indications": []})), "indications"),
        (
            with(&base, json!({"indications": ["ocd", "ocd"]})),
            "indications",
        ),
        (
            with(&base, json!({"indications": ["flu"]})),
            "indications[0]",
        ),
        (with(&base, json!({"sex": "other"})), "sex"),
        (
            with(&base, json!({"external_ref": "x".repeat(65)})),
            "external_ref",
        ),
        (
            with(
                &base,
                json!({"risk_factors": [{"factor": "pregnancy"}, {"factor": "pregnancy"}]}),
            ),
            "risk_factors",
        ),
        (
            with(
                &base,
                json!({"risk_factors": [{"factor": "pregnancy", "noted_at": days_from_now(1)}]}),
            ),
            "risk_factors.0.noted_at",
        ),
        (with(&base, json!({"name": "Jane Doe"})), "name"),
    ];
    expect_rule(&app, &clinic.clinician.access_token, "/v1/patients", cases).await;
    let list: Value = app
        .get_as("/v1/patients", &clinic.clinician.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );
});

api_test!(course_rules, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let base = json!({"indication": "treatment_resistant_depression", "start_date": "2026-12-01"});
    let cases = vec![
        (with(&base, json!({"indication": "ocd"})), "indication"),
        (with(&base, json!({"protocol": "custom"})), "planned_dates"),
        (
            with(&base, json!({"protocol": "custom", "planned_dates": []})),
            "planned_dates",
        ),
        (
            with(
                &base,
                json!({"protocol": "custom", "planned_dates": ["2026-12-01", "2026-12-01"]}),
            ),
            "planned_dates",
        ),
        (
            with(&base, json!({"planned_dates": ["2026-12-01"]})),
            "planned_dates",
        ),
        (
            with(&base, json!({"primary_instrument": "cadss"})),
            "primary_instrument",
        ),
        (
            with(&base, json!({"start_date": "yesterday"})),
            "start_date",
        ),
    ];
    expect_rule(
        &app,
        &clinic.clinician.access_token,
        &format!("/v1/patients/{patient}/courses"),
        cases,
    )
    .await;
});

api_test!(session_rules, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let path = format!("/v1/patients/{patient}/sessions");
    let base = json!({"route": "iv", "started_at": days_from_now(-1), "dose_mg_per_kg": 0.5, "weight_kg": 70});
    expect_rule(
        &app,
        &clinic.clinician.access_token,
        &path,
        vec![(base.clone(), "course_id")],
    )
    .await;

    app.new_course(&clinic.clinician, &patient, "2026-01-05")
        .await;
    let other_patient = app.new_patient(&clinic.clinician).await;
    let other_course = app
        .new_course(&clinic.clinician, &other_patient, "2026-01-05")
        .await;
    let cases = vec![
        (with(&base, json!({"dose_mg_per_kg": 0})), "dose_mg_per_kg"),
        (
            with(&base, json!({"dose_mg_per_kg": 5.01})),
            "dose_mg_per_kg",
        ),
        (with(&base, json!({"weight_kg": 19.9})), "weight_kg"),
        (with(&base, json!({"weight_kg": 350.1})), "weight_kg"),
        (
            with(&base, json!({"pre": {"systolic": 59, "diastolic": 40}})),
            "pre.systolic",
        ),
        (
            with(&base, json!({"pre": {"systolic": 261}})),
            "pre.systolic",
        ),
        (
            with(&base, json!({"pre": {"diastolic": 29}})),
            "pre.diastolic",
        ),
        (
            with(&base, json!({"pre": {"diastolic": 161}})),
            "pre.diastolic",
        ),
        (
            with(&base, json!({"post": {"systolic": 120, "diastolic": 120}})),
            "post.diastolic",
        ),
        (
            with(&base, json!({"post": {"heart_rate": 29}})),
            "post.heart_rate",
        ),
        (
            with(&base, json!({"post": {"heart_rate": 221}})),
            "post.heart_rate",
        ),
        (with(&base, json!({"pre": {"spo2": 49}})), "pre.spo2"),
        (with(&base, json!({"pre": {"spo2": 101}})), "pre.spo2"),
        (
            with(
                &base,
                json!({"readings": [{"minutes_after_start": 40, "systolic": 300}]}),
            ),
            "readings.0.systolic",
        ),
        (
            with(&base, json!({"readings": [{"minutes_after_start": -1}]})),
            "readings.0.minutes_after_start",
        ),
        (
            with(&base, json!({"started_at": minutes_from_now(10)})),
            "started_at",
        ),
        (
            with(&base, json!({"ended_at": days_from_now(-2)})),
            "ended_at",
        ),
        (with(&base, json!({"status": "held"})), "hold_reason"),
        (
            with(&base, json!({"hold_reason": "blood pressure"})),
            "hold_reason",
        ),
        (with(&base, json!({"charge_cents": -1})), "charge_cents"),
        (
            with(&base, json!({"monitoring_minutes": 2000})),
            "monitoring_minutes",
        ),
        (with(&base, json!({"course_id": other_course})), "course_id"),
        (with(&base, json!({"route": "rectal"})), "route"),
    ];
    expect_rule(&app, &clinic.clinician.access_token, &path, cases).await;
    let ok = app
        .post_as(
            &path,
            &clinic.clinician.access_token,
            &with(&base, json!({"dose_mg_per_kg": 5, "weight_kg": 20})),
        )
        .await;
    assert_eq!(ok.status(), 201, "both upper and lower limits are allowed");
    assert_eq!(ok.json::<Value>().await.unwrap()["total_dose_mg"], 100.0);
});

api_test!(side_effect_rules, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let path = format!("/v1/patients/{patient}/side-effects");
    let base = json!({"effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-60)});
    expect_rule(
        &app,
        &clinic.clinician.access_token,
        &path,
        vec![(base.clone(), "session_id")],
    )
    .await;

    app.new_course(&clinic.clinician, &patient, "2026-01-05")
        .await;
    app.new_session(&clinic.clinician, &patient, &minutes_from_now(-120))
        .await;
    let cases = vec![
        (
            with(&base, json!({"onset_at": minutes_from_now(-121)})),
            "onset_at",
        ),
        (
            with(&base, json!({"onset_at": minutes_from_now(10)})),
            "onset_at",
        ),
        (
            with(&base, json!({"resolved_at": minutes_from_now(-61)})),
            "resolved_at",
        ),
        (
            with(&base, json!({"resolved_at": minutes_from_now(10)})),
            "resolved_at",
        ),
        (with(&base, json!({"effect": "other"})), "note"),
        (
            with(&base, json!({"effect": "other", "note": "  "})),
            "note",
        ),
        (
            with(&base, json!({"session_id": uuid::Uuid::new_v4()})),
            "session_id",
        ),
        (with(&base, json!({"severity": "grave"})), "severity"),
    ];
    expect_rule(&app, &clinic.clinician.access_token, &path, cases).await;

    let phone = app.patient_app(&clinic.clinician, &patient).await;
    let life_threatening = with(&base, json!({"severity": "life_threatening"}));
    expect_rule(
        &app,
        &phone.access_token,
        "/v1/me/side-effects",
        vec![(life_threatening.clone(), "severity")],
    )
    .await;
    assert_eq!(
        app.post_as(&path, &clinic.clinician.access_token, &life_threatening)
            .await
            .status(),
        201,
        "a clinician may"
    );
});

api_test!(assessment_rules, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let path = format!("/v1/patients/{patient}/assessments");
    let base = json!({"instrument": "phq9", "taken_at": minutes_from_now(-5), "items": [0, 1, 2, 3, 0, 1, 2, 3, 0]});
    let cases = vec![
        (with(&base, json!({"items": [0, 1, 2]})), "items"),
        (
            with(&base, json!({"items": [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]})),
            "items",
        ),
        (
            with(&base, json!({"items": [0, 1, 2, 3, 4, 1, 2, 3, 0]})),
            "items.4",
        ),
        (
            with(&base, json!({"items": [-1, 1, 2, 3, 0, 1, 2, 3, 0]})),
            "items.0",
        ),
        (with(&base, json!({"total": 12})), "total"),
        (
            with(&base, json!({"taken_at": minutes_from_now(10)})),
            "taken_at",
        ),
        (with(&base, json!({"instrument": "hamd"})), "instrument"),
    ];
    expect_rule(&app, &clinic.clinician.access_token, &path, cases).await;

    let phone = app.patient_app(&clinic.clinician, &patient).await;
    for instrument in ["madrs", "ybocs", "cadss"] {
        let items = match instrument {
            "cadss" => vec![0; 23],
            _ => vec![0; 10],
        };
        let body =
            json!({"instrument": instrument, "taken_at": minutes_from_now(-5), "items": items});
        // issue 15 (13): a role that may not rate this instrument is refused as a role: 403.
        let (status, _, refused) = problem(
            app.post_as("/v1/me/assessments", &phone.access_token, &body)
                .await,
        )
        .await;
        assert_eq!(
            (status, refused["type"].as_str()),
            (403, Some("/problems/forbidden")),
            "{instrument}"
        );
        assert_eq!(
            app.post_as(&path, &clinic.clinician.access_token, &body)
                .await
                .status(),
            201,
            "a clinician may submit {instrument}"
        );
    }
});

/// Answers of an instrument's size adding up to `total`.
fn answers(items: usize, item_max: i64, total: i64) -> Vec<i64> {
    let mut left = total;
    (0..items)
        .map(|_| {
            let v = left.min(item_max);
            left -= v;
            v
        })
        .collect()
}

api_test!(
    both_ends_of_every_band_are_scored_by_the_server,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let path = format!("/v1/patients/{patient}/assessments");
        // domain.md §5, the band column, as written there.
        type Bands = &'static [(&'static str, i64, i64)];
        let table: [(&str, usize, i64, Bands); 8] = [
            (
                "phq9",
                9,
                3,
                &[
                    ("minimal", 0, 4),
                    ("mild", 5, 9),
                    ("moderate", 10, 14),
                    ("moderately_severe", 15, 19),
                    ("severe", 20, 27),
                ],
            ),
            (
                "gad7",
                7,
                3,
                &[
                    ("minimal", 0, 4),
                    ("mild", 5, 9),
                    ("moderate", 10, 14),
                    ("severe", 15, 21),
                ],
            ),
            (
                "madrs",
                10,
                6,
                &[
                    ("normal", 0, 6),
                    ("mild", 7, 19),
                    ("moderate", 20, 34),
                    ("severe", 35, 60),
                ],
            ),
            (
                "pcl5",
                20,
                4,
                &[("below_threshold", 0, 32), ("probable_ptsd", 33, 80)],
            ),
            (
                "ybocs",
                10,
                4,
                &[
                    ("subclinical", 0, 7),
                    ("mild", 8, 15),
                    ("moderate", 16, 23),
                    ("severe", 24, 31),
                    ("extreme", 32, 40),
                ],
            ),
            (
                "pain_nrs",
                1,
                10,
                &[
                    ("none", 0, 0),
                    ("mild", 1, 3),
                    ("moderate", 4, 6),
                    ("severe", 7, 10),
                ],
            ),
            ("daily_mood", 1, 10, &[]),
            ("cadss", 23, 4, &[]),
        ];
        for (instrument, items, item_max, bands) in table {
            let mut ends: Vec<(i64, Option<&str>)> = bands
                .iter()
                .flat_map(|(name, lo, hi)| [(*lo, Some(*name)), (*hi, Some(*name))])
                .collect();
            if bands.is_empty() {
                ends = vec![(0, None), (items as i64 * item_max, None)];
            }
            for (total, band) in ends {
                let body = json!({"instrument": instrument, "taken_at": minutes_from_now(-5), "items": answers(items, item_max, total)});
                let res = app
                    .post_as(&path, &clinic.clinician.access_token, &body)
                    .await;
                assert_eq!(res.status(), 201, "{instrument} {total}");
                let scored: Value = res.json().await.unwrap();
                assert_eq!(scored["total"], total, "{instrument}");
                assert_eq!(scored["band"], json!(band), "{instrument} {total}");
            }
        }
        let mood: Value = app
        .post_as(&path, &clinic.clinician.access_token, &json!({"instrument": "daily_mood", "taken_at": minutes_from_now(-5), "items": [8]}))
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(
            mood["severity"], 2,
            "daily_mood is reversed: severity = 10 - score"
        );
    }
);

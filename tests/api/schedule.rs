//! The standard schedule through the API (domain.md §2): planned dates, slot filling by
//! completed sessions within ±3 days, and missed slots.

use serde_json::{json, Value};

use crate::api_test;

api_test!(
    the_standard_schedule_fills_and_misses_slots,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let today = chrono::Utc::now().date_naive();
        let day = |n: i64| today - chrono::Duration::days(20) + chrono::Duration::days(n);
        let course = app
            .new_course(&clinic.clinician, &patient, &day(0).to_string())
            .await;
        let at = |n: i64| format!("{}T10:00:00Z", day(n));
        let mut sessions = Vec::new();
        for n in [0, 3, 5, 13] {
            sessions.push(app.new_session(&clinic.clinician, &patient, &at(n)).await);
        }
        // A held session is not a completed one and fills nothing.
        let held = json!({"route": "iv", "started_at": at(7), "dose_mg_per_kg": 0.5, "weight_kg": 70, "status": "held", "hold_reason": "BP 172/104"});
        assert_eq!(
            app.post_as(&format!("/v1/patients/{patient}/sessions"), token, &held)
                .await
                .status(),
            201
        );

        let course: Value = app
            .get_as(&format!("/v1/courses/{course}"), token)
            .await
            .json()
            .await
            .unwrap();
        let slots: Vec<(String, String, String, Value)> = course["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["planned_date"].as_str().unwrap().to_owned(),
                    s["phase"].as_str().unwrap().to_owned(),
                    s["status"].as_str().unwrap().to_owned(),
                    s["session_id"].clone(),
                )
            })
            .collect();
        let expected = [
            (0, "induction", "filled", json!(sessions[0])),
            (2, "induction", "filled", json!(sessions[1])),
            (4, "induction", "filled", json!(sessions[2])),
            (7, "induction", "missed", Value::Null),
            (10, "induction", "filled", json!(sessions[3])),
            (14, "induction", "missed", Value::Null),
            (21, "induction", "open", Value::Null),
            (28, "induction", "open", Value::Null),
            (56, "maintenance", "open", Value::Null),
        ];
        let expected: Vec<(String, String, String, Value)> = expected
            .iter()
            .map(|(d, p, s, id)| {
                (
                    day(*d).to_string(),
                    p.to_string(),
                    s.to_string(),
                    id.clone(),
                )
            })
            .collect();
        assert_eq!(slots, expected);
    }
);

api_test!(
    a_session_without_a_course_joins_the_latest_open_one,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let first = app
            .new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        let second = app
            .new_course(&clinic.clinician, &patient, "2026-06-01")
            .await;
        let session = app
            .new_session(&clinic.clinician, &patient, "2026-06-01T10:00:00Z")
            .await;
        let stored: Value = app
            .get_as(&format!("/v1/sessions/{session}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stored["course_id"], second.as_str());

        app.patch(
            &format!("/v1/courses/{second}"),
            token,
            None,
            &json!({"closed": true}),
        )
        .await;
        let session = app
            .new_session(&clinic.clinician, &patient, "2026-06-03T10:00:00Z")
            .await;
        let stored: Value = app
            .get_as(&format!("/v1/sessions/{session}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            stored["course_id"],
            first.as_str(),
            "a closed course takes no sessions by default"
        );
    }
);

api_test!(reference_data_carries_the_whole_tables, |app| async move {
    let admin = app.sign_in_admin().await;
    let instruments: Value = app
        .get_as("/v1/instruments", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    let codes: Vec<&str> = instruments
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "phq9",
            "gad7",
            "madrs",
            "pcl5",
            "ybocs",
            "pain_nrs",
            "daily_mood",
            "cadss"
        ]
    );
    let phq9 = &instruments[0];
    assert_eq!(
        phq9["loinc"],
        json!({"panel": "44249-1", "total": "44261-6", "item9": "44260-8"})
    );
    assert_eq!(phq9["minimal_important_change"], 5);
    assert_eq!(
        phq9["response"],
        json!({"kind": "percent_fall", "value": 0.5})
    );
    assert_eq!(
        instruments[3]["response"],
        json!({"kind": "points_fall", "value": 10.0})
    );
    assert_eq!(instruments[6]["direction"], "higher_is_better");
    assert_eq!(instruments[2]["rated_by"], "clinician");

    let kinds: Value = app
        .get_as("/v1/side-effect-kinds", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kinds.as_array().unwrap().len(), 19);
    let bladder = kinds
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["effect"] == "bladder_symptoms")
        .unwrap();
    assert_eq!(
        (
            bladder["always_flagged"].as_bool(),
            bladder["expected_resolution_hours"].is_null()
        ),
        (Some(true), true)
    );

    let protocols: Value = app
        .get_as("/v1/protocols", &admin.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        protocols[0]["induction_day_offsets"],
        json!([0, 2, 4, 7, 10, 14, 21, 28])
    );
    assert_eq!(app.get("/v1/instruments").await.status(), 401);

    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let description = document["paths"]["/v1/instruments"]["get"]["description"]
        .as_str()
        .unwrap();
    assert!(
        description.contains("| `phq9` | PHQ-9 depression | patient | 9 × 0–3 | 0–27 |"),
        "{description}"
    );
});

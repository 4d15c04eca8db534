//! `ketamine-outcomes demo` writes a clinic that shows every flag kind — but `webhook_failed`,
//! which needs a receiver that fails — and every session outcome status.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api_test;
use crate::helpers::eventually;

api_test!(
    the_demo_clinic_shows_every_flag_kind_and_every_session_status,
    |app| async move {
        let settings = app.settings.clone();
        let sign_ins =
            tokio::task::spawn_blocking(move || ketamine_outcomes::demo::run(&settings, 42, 0))
                .await
                .unwrap()
                .expect("demo runs");
        let roles: Vec<&str> = sign_ins.iter().map(|s| s.role).collect();
        assert_eq!(roles, ["admin", "clinician", "researcher", "patient"]);
        for s in &sign_ins {
            app.sign_in(&s.email, &s.password).await;
        }
        let clinician = app.sign_in(&sign_ins[1].email, &sign_ins[1].password).await;

        let all: BTreeSet<String> = [
            "suicidal_ideation",
            "hypertensive_response",
            "life_threatening_side_effect",
            "contraindication",
            "pre_session_hypertension",
            "bladder_symptoms",
            "dependence_risk",
            "mania_symptoms",
            "persistent_side_effect",
            "wears_off_within_days",
            "missed_session",
            "missed_follow_up",
            // Some demo patients' benefit fades before their next planned infusion.
            "benefit_gap_expected",
        ]
        .map(String::from)
        .into();
        // The demo's own sweep raises the flags that time raises — unless the test server's
        // sweep (every second) held the sweep at that moment: then its next tick does.
        let kinds = eventually(
            || async {
                let flags: Value = app
                    .get_as("/v1/flags?limit=500", &clinician.access_token)
                    .await
                    .json()
                    .await
                    .unwrap();
                flags["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["kind"].as_str().unwrap().to_owned())
                    .collect::<BTreeSet<String>>()
            },
            |kinds| *kinds == all,
        )
        .await;
        assert_eq!(kinds, all);

        let patients: Value = app
            .get_as("/v1/patients?limit=500", &clinician.access_token)
            .await
            .json()
            .await
            .unwrap();
        let patients = patients["items"].as_array().unwrap();
        assert!(patients.len() >= 36, "several dozen patients");
        // Issue 18: personal durability that lengthens, shortens and stays flat, and one
        // expected gap — the shortening patient's.
        for (reference, slope, gap) in [
            ("DEMO-LENGTHENS", 2.0, false),
            ("DEMO-SHORTENS", -2.0, true),
            ("DEMO-FLAT", 0.0, false),
        ] {
            let patient = patients
                .iter()
                .find(|p| p["external_ref"] == reference)
                .unwrap_or_else(|| panic!("{reference}"));
            let figures: Value = app
                .get_as(
                    &format!(
                        "/v1/patients/{}/durability",
                        patient["id"].as_str().unwrap()
                    ),
                    &clinician.access_token,
                )
                .await
                .json()
                .await
                .unwrap();
            let course = &figures["courses"][0];
            assert_eq!(
                course["trend"]["days_per_infusion"], slope,
                "{reference}: {course}"
            );
            assert_eq!(course["gap_expected"], gap, "{reference}: {course}");
        }
        let consenting = patients
            .iter()
            .filter(|p| p["research_consent"] == true)
            .count();
        assert!(
            consenting > 0 && consenting < patients.len(),
            "mixed research consent"
        );
        let mut statuses = BTreeSet::new();
        for p in patients {
            let o: Value = app
                .get_as(
                    &format!("/v1/patients/{}/outcomes", p["id"].as_str().unwrap()),
                    &clinician.access_token,
                )
                .await
                .json()
                .await
                .unwrap();
            statuses.extend(
                o["sessions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["status"].as_str().unwrap().to_owned()),
            );
        }
        let expected: BTreeSet<String> = [
            "no_baseline",
            "no_follow_up",
            "no_benefit",
            "wore_off",
            "sustained",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(statuses, expected);
    }
);

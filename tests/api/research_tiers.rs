//! The controlled tier (issue 13, domain.md §8a): grants, their expiry and revocation on every
//! process, and the export it opens — every documented filter applied, clinic refused,
//! k-anonymity counted in the file, audited with its filters and rows.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::{days_from_now, minutes_from_now};
use crate::helpers::{problem, Session, TestApp};

async fn grant(app: &TestApp, admin: &Session, researcher: &Session, expires_at: &str) -> Value {
    let body = json!({"researcher_id": researcher.user_id, "purpose": "Durability by route",
        "reference": "DUA-2026-014", "expires_at": expires_at});
    let res = app
        .post_as("/v1/research-grants", &admin.access_token, &body)
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn tier(app: &TestApp, researcher: &Session) -> String {
    let budget: Value = app
        .get_as("/v1/research/budget", &researcher.access_token)
        .await
        .json()
        .await
        .unwrap();
    budget["tier"].as_str().unwrap().to_owned()
}

async fn export_status(app: &TestApp, researcher: &Session) -> u16 {
    app.get_as("/v1/research/export", &researcher.access_token)
        .await
        .status()
        .as_u16()
}

api_test!(
    a_grant_opens_the_controlled_tier_until_it_is_revoked_on_every_process,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let other = app.second_instance().await;
        assert_eq!(tier(&app, &researcher).await, "aggregate");
        let (status, _, body) = problem(
            app.get_as("/v1/research/export", &researcher.access_token)
                .await,
        )
        .await;
        assert_eq!(
            (status, body["type"].as_str()),
            (403, Some("/problems/controlled-tier"))
        );

        let granted = grant(&app, &admin, &researcher, &days_from_now(90)).await;
        assert_eq!(granted["status"], "active");
        assert_eq!(granted["granted_by"], admin.user_id.as_str());
        for instance in [&app, &other] {
            assert_eq!(tier(instance, &researcher).await, "controlled");
            assert_eq!(export_status(instance, &researcher).await, 200);
        }
        let outcomes: Value = app
            .get_as("/v1/research/outcomes", &researcher.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(outcomes["privacy"]["tier"], "controlled");

        // Only administrators grant, list and revoke; a grant is for a researcher's account.
        let body = json!({"researcher_id": researcher.user_id, "purpose": "x", "reference": "y", "expires_at": days_from_now(9)});
        let res = app
            .post_as("/v1/research-grants", &researcher.access_token, &body)
            .await;
        assert_eq!(res.status(), 403);
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let body = json!({"researcher_id": clinician.user_id, "purpose": "x", "reference": "y", "expires_at": days_from_now(9)});
        let (status, _, refused) = problem(
            app.post_as("/v1/research-grants", &admin.access_token, &body)
                .await,
        )
        .await;
        assert_eq!(
            (status, refused["errors"][0]["field"].as_str()),
            (422, Some("researcher_id"))
        );
        for expires in [minutes_from_now(-1), days_from_now(6 * 366)] {
            let body = json!({"researcher_id": researcher.user_id, "purpose": "x", "reference": "y", "expires_at": expires});
            let (status, _, refused) = problem(
                app.post_as("/v1/research-grants", &admin.access_token, &body)
                    .await,
            )
            .await;
            assert_eq!(
                (status, refused["errors"][0]["field"].as_str()),
                (422, Some("expires_at"))
            );
        }
        let listed: Value = app
            .get_as("/v1/research-grants", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);

        let id = granted["id"].as_str().unwrap();
        let res = app
            .delete_as(
                &format!("/v1/research-grants/{id}"),
                &admin.access_token,
                &json!(null),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "revoked");
        for instance in [&app, &other] {
            assert_eq!(
                tier(instance, &researcher).await,
                "aggregate",
                "revoked at once, everywhere"
            );
            assert_eq!(export_status(instance, &researcher).await, 403);
        }
        let again = app
            .delete_as(
                &format!("/v1/research-grants/{id}"),
                &admin.access_token,
                &json!(null),
            )
            .await;
        assert_eq!(again.json::<Value>().await.unwrap()["status"], "revoked");

        let events: Value = app
            .get_as("/v1/audit-events?limit=500", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let actions: Vec<&str> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for action in [
            "research_grant_created",
            "research_grant_revoked",
            "research_outcomes",
        ] {
            assert!(
                actions.contains(&action),
                "{action} is audited: {actions:?}"
            );
        }
        assert_eq!(
            actions
                .iter()
                .filter(|a| **a == "research_grant_revoked")
                .count(),
            1
        );
    }
);

api_test!(
    an_expired_grant_falls_back_to_the_aggregate_tier_at_once,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let other = app.second_instance().await;
        let expiry = chrono::Utc::now() + chrono::Duration::seconds(2);
        grant(&app, &admin, &researcher, &expiry.to_rfc3339()).await;
        assert_eq!(tier(&other, &researcher).await, "controlled");
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        for instance in [&app, &other] {
            assert_eq!(tier(instance, &researcher).await, "aggregate");
            assert_eq!(export_status(instance, &researcher).await, 403);
        }
        let listed: Value = app
            .get_as("/v1/research-grants", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed["items"][0]["status"], "expired");
    }
);

/// The rows of a CSV export as header → value maps, and its response headers.
async fn export(
    app: &TestApp,
    researcher: &Session,
    query: &str,
) -> (Vec<BTreeMap<String, String>>, reqwest::header::HeaderMap) {
    let res = app
        .get_as(
            &format!("/v1/research/export?{query}"),
            &researcher.access_token,
        )
        .await;
    assert_eq!(res.status(), 200, "{query}");
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let names: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| {
            names
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (rows, headers)
}

/// A man born 1950 with PTSD, followed by GAD-7, with one intravenous session of 0.9 mg/kg
/// 35 days ago.
async fn unlike_the_cohorts(app: &TestApp, clinician: &Session) {
    let token = &clinician.access_token;
    let body = json!({"birth_year": 1950, "sex": "male", "indications": ["ptsd"], "research_consent": true});
    let patient: Value = app
        .post_as("/v1/patients", token, &body)
        .await
        .json()
        .await
        .unwrap();
    let patient = patient["id"].as_str().unwrap();
    let day0 = chrono::Utc::now() - chrono::Duration::days(35);
    let course = json!({"indication": "ptsd", "primary_instrument": "gad7", "start_date": day0.date_naive()});
    let res = app
        .post_as(&format!("/v1/patients/{patient}/courses"), token, &course)
        .await;
    assert_eq!(res.status(), 201);
    let session = json!({"route": "iv", "started_at": day0.to_rfc3339(), "dose_mg_per_kg": 0.9, "weight_kg": 80, "charge_cents": 40000});
    let res = app
        .post_as(&format!("/v1/patients/{patient}/sessions"), token, &session)
        .await;
    assert_eq!(res.status(), 201);
}

const QUASI: [&str; 6] = [
    "age_band",
    "sex",
    "indication",
    "route",
    "dose_band",
    "phase",
];

api_test!(
    the_export_is_k_anonymous_honours_its_filters_and_never_names_a_clinic,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        crate::research::cohorts(&app, &clinic.clinician).await;
        // Beside the cohorts (women born 1980, TRD, 0.5 mg/kg): men unlike them in every
        // filtered field, so each filter has rows to leave out.
        for _ in 0..6 {
            unlike_the_cohorts(&app, &clinic.clinician).await;
        }
        let researcher = app.controlled_researcher(&admin).await;

        let (rows, headers) = export(&app, &researcher, "").await;
        assert!(!rows.is_empty());
        // k-anonymity, counted in the file: each combination of quasi-identifiers, by the
        // distinct pseudonyms that have a row of it.
        let mut coverage: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
        for row in &rows {
            let key = QUASI.iter().map(|q| row[*q].clone()).collect();
            coverage
                .entry(key)
                .or_default()
                .insert(row["patient"].clone());
        }
        for (combination, patients) in &coverage {
            assert!(
                patients.len() >= 5,
                "{combination:?} covers {} patients",
                patients.len()
            );
        }
        assert!(headers.contains_key("x-export-generalisation"));
        let suppressed: usize = headers["x-export-suppressed-rows"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            suppressed * 20 <= rows.len() + suppressed || headers["x-export-generalisation"] == "5"
        );
        // Whole days, charge bands, no dose per kg, no total dose, no weight, no clinic.
        for row in &rows {
            assert!(row["day"].parse::<i64>().is_ok(), "{row:?}");
            for absent in [
                "dose_mg_per_kg",
                "total_dose_mg",
                "weight_kg",
                "charge_cents",
                "clinic",
            ] {
                assert!(!row.contains_key(absent), "{absent}");
            }
            if row["kind"] == "session" {
                assert_eq!(row["charge_band"], "300_to_450");
            }
        }

        // Every documented filter applies (the value shown may be the generalised one).
        let checks: [(&str, &str, &[&str]); 4] = [
            ("sex=female", "sex", &["female"]),
            (
                "indication=treatment_resistant_depression",
                "indication",
                &["treatment_resistant_depression", "depression"],
            ),
            ("route=intranasal", "route", &["intranasal", "other"]),
            (
                "dose_band=0.5_to_0.75",
                "dose_band",
                &["0.5_to_0.75", "lt_0.75"],
            ),
        ];
        let (all, _) = export(&app, &researcher, "").await;
        for (query, column, values) in checks {
            let (filtered, _) = export(&app, &researcher, query).await;
            assert!(!filtered.is_empty(), "{query}");
            assert!(filtered.len() < all.len(), "{query} narrows the export");
            for row in &filtered {
                let shown = row[column].as_str();
                assert!(
                    shown.is_empty() || values.contains(&shown) || row["kind"] == "assessment",
                    "{query}: {row:?}"
                );
            }
        }
        let (phq9, _) = export(&app, &researcher, "instrument=phq9").await;
        assert!(phq9.len() < all.len(), "the men's courses follow GAD-7");
        assert!(phq9
            .iter()
            .all(|r| r["kind"] != "assessment" || r["instrument"] == "phq9"));
        let (men, _) = export(&app, &researcher, "sex=male").await;
        assert!(!men.is_empty() && men.len() < all.len());
        assert!(men
            .iter()
            .all(|r| r["sex"] == "male" || r["sex"].is_empty()));
        let (old, _) = export(&app, &researcher, "age_band=90%2B").await;
        assert!(old.is_empty());
        let (maintenance, _) = export(&app, &researcher, "phase=maintenance").await;
        assert!(
            maintenance.is_empty(),
            "every session is on an induction day"
        );
        let (adherent, _) = export(&app, &researcher, "adherence_band=ge_80").await;
        assert!(adherent.len() < all.len());
        let to = chrono::Utc::now() - chrono::Duration::days(34);
        let (early, _) = export(
            &app,
            &researcher,
            &format!(
                "to={}",
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
        .await;
        assert!(
            !early.is_empty() && early.len() < all.len(),
            "a time range narrows the export"
        );
        assert!(early.iter().all(|r| r["day"].parse::<i64>().unwrap() <= 1));

        // What it does not take is refused, by name.
        let clinic_id = clinic.clinician.user_id.clone();
        for (query, field) in [
            (format!("clinic={}", uuid::Uuid::new_v4()), "clinic"),
            ("group_by=route".to_owned(), "group_by"),
            ("wear_off_days=7".to_owned(), "wear_off_days"),
            ("grup_by=route".to_owned(), "grup_by"),
            (format!("patient={clinic_id}"), "patient"),
        ] {
            let (status, _, body) = problem(
                app.get_as(
                    &format!("/v1/research/export?{query}"),
                    &researcher.access_token,
                )
                .await,
            )
            .await;
            assert_eq!(
                (status, body["errors"][0]["field"].as_str()),
                (422, Some(field)),
                "{query}"
            );
        }
        for path in [
            "/v1/research/outcomes?route=iv&colour=blue",
            "/v1/research/budget?colour=blue",
            "/v1/research/side-effects?instrument=phq9",
            "/v1/research/trajectories?instrument=phq9&format=csv",
        ] {
            let (status, _, body) = problem(app.get_as(path, &researcher.access_token).await).await;
            assert_eq!(status, 422, "{path}");
            let named = body["errors"][0]["field"].as_str();
            assert!(
                path.contains(&format!("{}=", named.unwrap_or("?"))),
                "{path}: {body}"
            );
        }

        // Audited with what it asked and how many rows it wrote.
        let events: Value = app
            .get_as("/v1/audit-events?limit=500", &admin.access_token)
            .await
            .json()
            .await
            .unwrap();
        let details: Vec<Value> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "research_export_completed")
            .map(|e| serde_json::from_str(e["detail"].as_str().unwrap()).unwrap())
            .collect();
        assert!(
            details.iter().any(|d| d["rows"] == all.len()),
            "{details:?}"
        );
        let started = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "research_export_started")
            .unwrap();
        assert!(started["detail"].as_str().unwrap().contains("query"));
        assert!(
            details
                .iter()
                .all(|d| d["generalisation"].is_u64() && d["suppressed_rows"].is_u64()),
            "{details:?}"
        );
    }
);

// The export's two passes read one snapshot (`Db::snapshot`): what commits between its
// reads — here a clinic; in an export a new record or a consent withdrawn — is not seen, so
// the rows written are the rows the census counted.
api_test!(
    a_snapshot_sees_nothing_that_commits_while_it_reads,
    |app| async move {
        use diesel::{QueryDsl, RunQueryDsl};
        use ketamine_outcomes::store::{schema::clinics, StoreError};
        use std::sync::mpsc;

        let admin = app.sign_in_admin().await;
        let (paused, wait_paused) = mpsc::channel::<()>();
        let (resume, wait_resume) = mpsc::channel::<()>();
        let db = app.database();
        let reads = tokio::spawn(async move {
            db.snapshot(move |conn| {
                let before: i64 = clinics::table.count().get_result(conn)?;
                paused.send(()).unwrap();
                wait_resume.recv().unwrap();
                let after: i64 = clinics::table.count().get_result(conn)?;
                Ok::<_, StoreError>((before, after))
            })
            .await
        });
        tokio::task::spawn_blocking(move || wait_paused.recv().unwrap())
            .await
            .unwrap();
        app.clinic(&admin, "Harbour").await;
        resume.send(()).unwrap();
        let (before, after) = reads.await.unwrap().unwrap();
        assert_eq!(
            before, after,
            "the snapshot saw a commit made while it read"
        );
        let now: i64 = app
            .database()
            .run(|conn| Ok::<_, StoreError>(clinics::table.count().get_result(conn)?))
            .await
            .unwrap();
        assert_eq!(now, before + 1, "the clinic was committed meanwhile");
    }
);

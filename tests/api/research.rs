//! The research API on fixture cohorts with hand-computed rows (domain.md §8), small-cell and
//! complementary suppression, consent withdrawal, the identifier scan, and the export.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{Session, TestApp};

fn phq9(total: i64) -> Vec<i64> {
    let mut left = total;
    (0..9)
        .map(|i| {
            if i == 8 {
                0
            } else {
                let v = left.min(3);
                left -= v;
                v
            }
        })
        .collect()
}

/// One patient: a baseline the day before one infusion, scores on the given days after it,
/// and the given side effects (effect, severity, hours to resolution).
struct Fixture {
    route: &'static str,
    dose_mg_per_kg: f64,
    baseline: i64,
    scores: Vec<(i64, i64)>,
    side_effects: Vec<(&'static str, &'static str, Option<i64>)>,
}

async fn enrol(app: &TestApp, clinician: &Session, day0: DateTime<Utc>, f: &Fixture) -> String {
    let token = &clinician.access_token;
    let body = json!({"external_ref": format!("MRN-{}", uuid::Uuid::new_v4().simple()), "birth_year": 1980, "sex": "female",
        "indications": ["treatment_resistant_depression"], "research_consent": true,
        "risk_factors": [{"factor": "hypertension", "note": "a note that must never reach research"}]});
    let patient: Value = app
        .post_as("/v1/patients", token, &body)
        .await
        .json()
        .await
        .unwrap();
    let patient = patient["id"].as_str().unwrap().to_owned();
    app.new_course(clinician, &patient, &day0.date_naive().to_string())
        .await;
    let score = |day: i64, total: i64| json!({"instrument": "phq9", "taken_at": (day0 + Duration::days(day)).to_rfc3339(), "items": phq9(total)});
    let assessments = format!("/v1/patients/{patient}/assessments");
    assert_eq!(
        app.post_as(&assessments, token, &score(-1, f.baseline))
            .await
            .status(),
        201
    );
    let session = json!({"route": f.route, "started_at": day0.to_rfc3339(), "dose_mg_per_kg": f.dose_mg_per_kg, "weight_kg": 80, "charge_cents": 40000});
    let session: Value = app
        .post_as(&format!("/v1/patients/{patient}/sessions"), token, &session)
        .await
        .json()
        .await
        .unwrap();
    for (day, total) in &f.scores {
        assert_eq!(
            app.post_as(&assessments, token, &score(*day, *total))
                .await
                .status(),
            201
        );
    }
    for (effect, severity, hours) in &f.side_effects {
        let onset = day0 + Duration::minutes(20);
        let body = json!({"session_id": session["id"], "effect": effect, "severity": severity, "onset_at": onset.to_rfc3339(),
            "resolved_at": hours.map(|h| (onset + Duration::hours(h)).to_rfc3339()), "note": "free text never exported"});
        assert_eq!(
            app.post_as(
                &format!("/v1/patients/{patient}/side-effects"),
                token,
                &body
            )
            .await
            .status(),
            201
        );
    }
    patient
}

fn plain(route: &'static str) -> Fixture {
    Fixture {
        route,
        dose_mg_per_kg: 0.5,
        baseline: 20,
        scores: vec![(2, 9)],
        side_effects: vec![],
    }
}

/// The cohorts' day 0: 35 days ago, at 10:00.
fn cohorts_day0() -> DateTime<Utc> {
    (Utc::now() - Duration::days(35))
        .format("%Y-%m-%dT10:00:00Z")
        .to_string()
        .parse()
        .unwrap()
}

/// Cohort A (iv, 5 patients) has hand-computed outcomes; B (im, 3) is a small cell; C
/// (intranasal, 6) is not. Day 0 is 35 days ago. k is 5.
pub(crate) async fn cohorts(app: &TestApp, clinician: &Session) -> Vec<String> {
    let day0 = cohorts_day0();
    let dizzy = |hours| vec![("dizziness", "mild", hours)];
    let a = [
        Fixture {
            route: "iv",
            dose_mg_per_kg: 0.5,
            baseline: 20,
            scores: vec![(2, 8), (5, 14), (30, 9)],
            side_effects: vec![
                ("dizziness", "mild", Some(2)),
                ("dizziness", "moderate", Some(4)),
            ],
        },
        Fixture {
            route: "iv",
            dose_mg_per_kg: 0.5,
            baseline: 20,
            scores: vec![(2, 10), (4, 15), (30, 10)],
            side_effects: dizzy(Some(2)),
        },
        Fixture {
            route: "iv",
            dose_mg_per_kg: 0.5,
            baseline: 20,
            scores: vec![(2, 10), (6, 12), (30, 12)],
            side_effects: dizzy(Some(2)),
        },
        Fixture {
            route: "iv",
            dose_mg_per_kg: 0.5,
            baseline: 18,
            scores: vec![(2, 16), (30, 17)],
            side_effects: dizzy(Some(2)),
        },
        Fixture {
            route: "iv",
            dose_mg_per_kg: 0.5,
            baseline: 22,
            scores: vec![(3, 6), (9, 8), (30, 11)],
            side_effects: dizzy(None),
        },
    ];
    let mut patients = Vec::new();
    for f in a
        .iter()
        .chain(std::iter::repeat_n(&plain("im"), 3))
        .chain(std::iter::repeat_n(&plain("intranasal"), 6))
    {
        patients.push(enrol(app, clinician, day0, f).await);
    }
    patients
}

/// The fixture cohorts in a clinic of their own, and the accounts that study them.
struct Study {
    admin: Session,
    clinician: Session,
    researcher: Session,
    patients: Vec<String>,
}

async fn study(app: &TestApp) -> Study {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let researcher = app.controlled_researcher(&admin).await;
    let patients = cohorts(app, &clinic.clinician).await;
    Study {
        admin,
        clinician: clinic.clinician,
        researcher,
        patients,
    }
}

async fn research(app: &TestApp, researcher: &Session, path: &str) -> Value {
    app.read(path, &researcher.access_token).await
}

fn row<'a>(body: &'a Value, key: &str, value: &str) -> &'a Value {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group"][key] == value)
        .unwrap_or_else(|| panic!("no row {key}={value}: {body}"))
}

api_test!(
    outcome_rows_match_hand_computation,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study { researcher, .. } = study(&app).await;
        let body = research(
            &app,
            &researcher,
            "/v1/research/outcomes?instrument=phq9&group_by=route,dose_band&route=iv",
        )
        .await;
        assert_eq!(
            (body["k"].as_u64(), body["wear_off_days"].as_f64()),
            (Some(5), Some(7.0))
        );
        let iv = row(&body, "route", "iv");
        assert_eq!(
            iv["group"],
            json!({"route": "iv", "dose_band": "0.5_to_0.75"})
        );
        assert_eq!(
            (
                iv["patients"].as_u64(),
                iv["courses"].as_u64(),
                iv["sessions"].as_u64()
            ),
            (Some(5), Some(5), Some(5))
        );
        // Baselines 20, 20, 20, 18, 22: mean 20, sample SD √2.
        assert_eq!(
            (
                iv["course_baseline_mean"].as_f64(),
                iv["course_baseline_sd"].as_f64(),
                iv["course_baseline_n"].as_u64()
            ),
            (
                Some(20.0),
                Some((std::f64::consts::SQRT_2 * 1e4).round() / 1e4),
                Some(5)
            )
        );
        // Day 30: 9, 10, 12, 17, 11 against half of 20, 20, 20, 18, 22 → 3 of 5 respond; none ≤ 4.
        assert_eq!(
            iv["end_of_induction_response"],
            json!({"numerator": 3, "denominator": 5, "rate": 0.6})
        );
        assert_eq!(
            iv["end_of_induction_remission"],
            json!({"numerator": 0, "denominator": 5, "rate": 0.0})
        );
        // First responses at days 2, 2, 2 and 3; the fourth patient never responds.
        assert_eq!(iv["median_time_to_response_days"], 2.0);
        // Benefit in 4 of 5 sessions: wore off at days 5 and 4; sustained (censored) at day 30 twice.
        assert_eq!(
            iv["session_benefit"],
            json!({"numerator": 4, "denominator": 5, "rate": 0.8})
        );
        // KM: at day 4, 1 of 4 → 0.75; at day 5, 1 of 3 → 0.5: the median is day 5.
        assert_eq!(iv["km_median_durability_days"], 5.0);
        assert_eq!(
            iv["wears_off_within_days"],
            json!({"numerator": 2, "denominator": 4, "rate": 0.5})
        );
        // 5 sessions at $400: $400 per course; $2000 over 3 responders.
        assert_eq!(iv["mean_charge_per_course_cents"], 40000.0);
        assert!((iv["charge_per_responder_cents"].as_f64().unwrap() - 200000.0 / 3.0).abs() < 0.01);

        let narrower = research(
            &app,
            &researcher,
            "/v1/research/outcomes?instrument=phq9&route=iv&wear_off_days=4",
        )
        .await;
        assert_eq!(
            narrower["rows"][0]["wears_off_within_days"],
            json!({"numerator": 1, "denominator": 4, "rate": 0.25}),
            "W overridden to 4 days"
        );
        // One documented range for W, refused outside it on every research endpoint.
        for path in [
            "/v1/research/outcomes?wear_off_days=61",
            "/v1/research/side-effects?wear_off_days=0",
            "/v1/research/export?wear_off_days=0",
            "/v1/research/trajectories?instrument=phq9&wear_off_days=61",
        ] {
            let (status, _, body) =
                crate::helpers::problem(app.get_as(path, &researcher.access_token).await).await;
            assert_eq!(status, 422, "{path}");
            assert_eq!(body["errors"][0]["field"], "wear_off_days");
        }
    }
);

api_test!(
    every_dimension_groups_and_filters_by_what_its_session_holds,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        // A question reads only the columns its dimensions come from (the others come back
        // NULL): each dimension must still find its value in every session it groups.
        let Study { researcher, .. } = study(&app).await;
        let everyone = research(&app, &researcher, "/v1/research/outcomes").await;
        let all_sessions = everyone["rows"][0]["sessions"].as_u64().unwrap();
        assert_eq!(all_sessions, 14, "{everyone}");
        let mut released = 0;
        for (dimension, filtered) in [
            ("dose_band", true),
            ("sex", false),
            ("clinic", false),
            ("age_band", true),
            ("phase", true),
            ("adherence_band", true),
            ("infusion_number", false),
        ] {
            for path in ["outcomes", "side-effects"] {
                let grouped = research(
                    &app,
                    &researcher,
                    &format!("/v1/research/{path}?group_by={dimension}"),
                )
                .await;
                for row in grouped["rows"].as_array().unwrap() {
                    let value = row["group"][dimension].as_str().unwrap_or_default();
                    assert!(!value.is_empty(), "{path} by {dimension}: {row}");
                    released += 1;
                }
            }
            let grouped = research(
                &app,
                &researcher,
                &format!("/v1/research/outcomes?group_by={dimension}"),
            )
            .await;
            let rows = grouped["rows"].as_array().unwrap();
            if grouped["withheld_groups"] == 0 {
                let sessions: u64 = rows.iter().map(|r| r["sessions"].as_u64().unwrap()).sum();
                assert_eq!(sessions, all_sessions, "by {dimension}: {grouped}");
            }
            if !filtered {
                continue;
            }
            // Filtering by a group's value selects that group's sessions.
            for row in rows {
                let value = row["group"][dimension].as_str().unwrap();
                let only = research(
                    &app,
                    &researcher,
                    &format!(
                        "/v1/research/outcomes?{dimension}={}",
                        value.replace('+', "%2B")
                    ),
                )
                .await;
                assert_eq!(
                    only["rows"][0]["sessions"], row["sessions"],
                    "{dimension}={value}: {only}"
                );
            }
        }
        assert!(released >= 6, "too few groups released to tell: {released}");
    }
);

api_test!(
    side_effect_rows_match_hand_computation,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study { researcher, .. } = study(&app).await;
        let body = research(
            &app,
            &researcher,
            "/v1/research/side-effects?group_by=route&route=iv",
        )
        .await;
        let dizziness = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["effect"] == "dizziness")
            .unwrap();
        assert_eq!(dizziness["patients"], 5);
        assert_eq!(dizziness["reports"], 6);
        assert_eq!(dizziness["sessions"], 5);
        assert_eq!(dizziness["sessions_with_effect_per_100"], 100.0);
        assert_eq!(
            dizziness["severity_counts"],
            json!({"mild": 5, "moderate": 1, "severe": 0, "life_threatening": 0})
        );
        assert_eq!(dizziness["median_hours_to_resolution"], 2.0);
        assert_eq!(dizziness["share_unresolved"], 0.1667);
    }
);

// Research reads what it groups a session by from the session's stored outcome row: a
// correction of the session or of its course must move the session's group in the same write.
api_test!(
    a_corrected_session_or_course_moves_its_sessions_group_at_once,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let s = study(&app).await;
        let token = &s.clinician.access_token;
        let first_id = |path: String| {
            let app = &app;
            async move {
                app.read(&path, token).await["items"][0]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        // Cohort C: six intranasal patients (the last six), all for TRD.
        let question = "/v1/research/outcomes?group_by=indication&route=intranasal";
        let trd = "treatment_resistant_depression";
        let body = research(&app, &s.researcher, question).await;
        assert_eq!(row(&body, "indication", trd)["patients"], 6, "{body}");

        // The last one's infusion was im, recorded as intranasal in error.
        let session = first_id(format!("/v1/patients/{}/sessions", s.patients[13])).await;
        let res = app
            .patch(
                &format!("/v1/sessions/{session}"),
                token,
                None,
                &json!({"route": "im"}),
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let body = research(&app, &s.researcher, question).await;
        assert_eq!(row(&body, "indication", trd)["patients"], 5, "{body}");

        // The other five were treated for PTSD: their sessions move with their courses.
        for patient in &s.patients[8..13] {
            let indications = json!({"indications": [trd, "ptsd"]});
            let res = app
                .patch(
                    &format!("/v1/patients/{patient}"),
                    token,
                    None,
                    &indications,
                )
                .await;
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
            let course = first_id(format!("/v1/patients/{patient}/courses")).await;
            let res = app
                .patch(
                    &format!("/v1/courses/{course}"),
                    token,
                    None,
                    &json!({"indication": "ptsd"}),
                )
                .await;
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
        let body = research(&app, &s.researcher, question).await;
        assert_eq!(row(&body, "indication", "ptsd")["patients"], 5, "{body}");
        assert_eq!(body["rows"].as_array().unwrap().len(), 1, "{body}");

        // One of them was never infused: entered in error, the session leaves research, and
        // the group, now of 4, is withheld.
        let session = first_id(format!("/v1/patients/{}/sessions", s.patients[12])).await;
        let reason = json!({"reason": "recorded on the wrong patient"});
        let res = app
            .delete_as(&format!("/v1/sessions/{session}"), token, &reason)
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let body = research(&app, &s.researcher, question).await;
        assert_eq!(body["rows"], json!([]), "{body}");
        assert_eq!(body["withheld_groups"], 1, "{body}");
    }
);

// A filter on a derived dimension keeps each report with its own session: the 100 nausea
// reports of the sessions at 1.0 mg/kg never show among those of the iv cohort's sessions at
// 0.5 mg/kg (6 of dizziness). Reports arrive in no set order, so a report paired with the
// wrong session would, all but certainly, be one of nausea.
api_test!(
    a_derived_filter_keeps_each_side_effect_with_its_own_session,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study {
            clinician,
            researcher,
            ..
        } = study(&app).await;
        let day0 = cohorts_day0();
        let high = Fixture {
            dose_mg_per_kg: 1.0,
            side_effects: vec![("nausea", "moderate", Some(3)); 20],
            ..plain("im")
        };
        for _ in 0..5 {
            enrol(&app, &clinician, day0, &high).await;
        }
        let body = research(
            &app,
            &researcher,
            "/v1/research/side-effects?dose_band=0.5_to_0.75",
        )
        .await;
        let effects: Vec<(&str, &Value)> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["effect"].as_str().unwrap(), &r["reports"]))
            .collect();
        assert_eq!(effects, [("dizziness", &json!(6))], "{body}");
    }
);

api_test!(
    small_cells_and_their_complement_are_suppressed_and_consent_is_honoured,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study {
            clinician,
            researcher,
            patients,
            ..
        } = study(&app).await;
        let body = research(&app, &researcher, "/v1/research/outcomes?group_by=route").await;
        // im (3 patients) is a small cell; iv (5) is the next smallest row, withheld so that
        // im's figures cannot be recovered from a total. Neither shows, not even its key.
        let shown: Vec<&str> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["group"]["route"].as_str().unwrap())
            .collect();
        assert_eq!(shown, ["intranasal"]);
        assert_eq!(body["withheld_groups"], 2);
        let text = body.to_string();
        assert!(
            !text.contains("\"im\"") && !text.contains("\"iv\""),
            "{text}"
        );
        let intranasal = row(&body, "route", "intranasal");
        assert_eq!(intranasal["patients"].as_u64(), Some(6));
        assert_eq!(body["privacy"]["tier"], "controlled");
        assert_eq!(body["privacy"]["epsilon_spent"], 0.0);

        // Withdrawing consent removes the patient from the next result.
        let withdrawn = &patients[patients.len() - 1];
        let res = app
            .patch(
                &format!("/v1/patients/{withdrawn}"),
                &clinician.access_token,
                None,
                &json!({"research_consent": false}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body = research(&app, &researcher, "/v1/research/outcomes?route=intranasal").await;
        assert_eq!(body["rows"][0]["patients"], 5);
        let res = app
            .patch(
                &format!("/v1/patients/{}", patients[patients.len() - 2]),
                &clinician.access_token,
                None,
                &json!({"research_consent": false}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let body = research(&app, &researcher, "/v1/research/outcomes?route=intranasal").await;
        assert!(
            body["rows"].as_array().unwrap().is_empty(),
            "4 patients are now a small cell: {body}"
        );
        assert_eq!(body["withheld_groups"], 1);
    }
);

api_test!(
    research_is_for_researchers_and_never_shows_an_identifier,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study {
            admin,
            clinician,
            researcher,
            patients,
        } = study(&app).await;
        let paths = [
            "/v1/research/outcomes?group_by=indication,route,dose_band,sex,age_band,phase",
            "/v1/research/outcomes?instrument=phq9",
            "/v1/research/side-effects?group_by=route",
            "/v1/research/trajectories?instrument=phq9&group_by=sex",
            "/v1/research/export?format=csv",
            "/v1/research/export?format=ndjson",
        ];
        let patient: Value = app
            .get_as(
                &format!("/v1/patients/{}", patients[0]),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let external_ref = patient["external_ref"].as_str().unwrap().to_owned();
        let date = regex_like_date();
        for path in paths {
            for session in [&admin, &clinician] {
                assert_eq!(
                    app.get_as(path, &session.access_token).await.status(),
                    403,
                    "{path}"
                );
            }
            let res = app.get_as(path, &researcher.access_token).await;
            assert_eq!(res.status(), 200, "{path}");
            let mut text = res.text().await.unwrap();
            // The privacy statement names when the budget renews: a date, but not a patient's.
            if let Ok(mut body) = serde_json::from_str::<Value>(&text) {
                body.as_object_mut().unwrap().remove("privacy");
                text = body.to_string();
            }
            for id in &patients {
                assert!(!text.contains(id.as_str()), "{path} shows a patient id");
            }
            for secret in [
                external_ref.as_str(),
                "never reach research",
                "never exported",
                "@clinic.example",
                "@example.org",
            ] {
                assert!(!text.contains(secret), "{path} shows {secret}");
            }
            assert!(!date(&text), "{path} shows a calendar date");
        }
        let svg = app
            .client
            .get(app.url("/v1/research/trajectories?instrument=phq9"))
            .bearer_auth(&researcher.access_token)
            .header("accept", "image/svg+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(svg.headers()["content-type"], "image/svg+xml");
        assert!(roxmltree::Document::parse(&svg.text().await.unwrap()).is_ok());
    }
);

/// True when the text holds something shaped like a calendar date (YYYY-MM-DD).
fn regex_like_date() -> impl Fn(&str) -> bool {
    |text: &str| {
        let b = text.as_bytes();
        b.windows(10).any(|w| {
            w[..4].iter().all(u8::is_ascii_digit)
                && w[4] == b'-'
                && w[5..7].iter().all(u8::is_ascii_digit)
                && w[7] == b'-'
                && w[8..].iter().all(u8::is_ascii_digit)
        })
    }
}

api_test!(
    the_demo_export_parses_and_pseudonyms_differ_between_exports,
    |app| async move {
        let settings = app.settings.clone();
        let sign_ins =
            tokio::task::spawn_blocking(move || ketamine_outcomes::demo::run(&settings, 9, 0))
                .await
                .unwrap()
                .expect("demo");
        let researcher = app.sign_in(&sign_ins[2].email, &sign_ins[2].password).await;
        let admin = app.sign_in(&sign_ins[0].email, &sign_ins[0].password).await;
        let grant = json!({"researcher_id": researcher.user_id, "purpose": "The demo's study",
            "reference": "DUA-DEMO", "expires_at": crate::fixtures::days_from_now(30)});
        assert_eq!(
            app.post_as("/v1/research-grants", &admin.access_token, &grant)
                .await
                .status(),
            201
        );
        let export = |format: &'static str| {
            let (client, url, token) = (
                app.client.clone(),
                app.url(&format!("/v1/research/export?format={format}")),
                researcher.access_token.clone(),
            );
            async move {
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let first = export("csv").await;
        let mut reader = csv::Reader::from_reader(first.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[0], "kind");
        let records: Vec<csv::StringRecord> =
            reader.records().map(|r| r.expect("a CSV record")).collect();
        assert!(records.len() > 500, "{} rows", records.len());
        assert!(records.iter().all(|r| r.len() == headers.len()));
        let kinds: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            ["assessment", "session", "side_effect"]
        );
        let first_keys: std::collections::BTreeSet<String> = records
            .iter()
            .map(|r| r.get(1).unwrap().to_owned())
            .collect();

        let ndjson = export("ndjson").await;
        let rows: Vec<Value> = ndjson
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(rows.len(), records.len(), "the same rows in both formats");
        // Each line is an `ExportRow` as the served contract states it, enumerations and all.
        let document: Value = app.get("/openapi.json").await.json().await.unwrap();
        let row_schema = json!({"$ref": "#/components/schemas/ExportRow",
            "components": document["components"]});
        let contract = jsonschema::validator_for(&row_schema).unwrap();
        for row in &rows {
            let broken: Vec<String> = contract.iter_errors(row).map(|e| e.to_string()).collect();
            assert!(broken.is_empty(), "{row}: {broken:?}");
        }
        let second_keys: std::collections::BTreeSet<String> = rows
            .iter()
            .map(|r| r["patient"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            first_keys.len(),
            second_keys.len(),
            "one pseudonym per patient in each export"
        );
        assert!(
            first_keys.is_disjoint(&second_keys),
            "two exports share no pseudonym"
        );
    }
);

/// Research queries read from the research pool: pointed at another (empty) database, they
/// see none of the clinic's records.
async fn reads_from_the_research_database(backend: crate::helpers::Backend) {
    use crate::helpers::TestDatabase;
    let (Some(main), Some(replica)) =
        (TestDatabase::create(backend), TestDatabase::create(backend))
    else {
        eprintln!("skipped: {} is not set", crate::helpers::POSTGRES_VAR);
        return;
    };
    let replica_url = replica.url();
    let app = TestApp::spawn(
        main,
        &[
            ("KO_RESEARCH_DATABASE_URL", replica_url.as_str()),
            ("KO_RESEARCH_MIN_CELL", "5"),
        ],
    )
    .await;
    let settings = ketamine_outcomes::config::Settings {
        database_url: app.settings.research_database_url.clone().unwrap(),
        ..app.settings.clone()
    };
    tokio::task::spawn_blocking(move || {
        ketamine_outcomes::startup::open_database(&settings, &settings.database_url)
            .unwrap()
            .migrate()
            .unwrap()
    })
    .await
    .unwrap();
    let Study { researcher, .. } = study(&app).await;
    let body = research(&app, &researcher, "/v1/research/outcomes").await;
    assert!(
        body["rows"].as_array().unwrap().is_empty(),
        "the replica holds nothing yet: {body}"
    );
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_reads_from_the_research_database_sqlite() {
    reads_from_the_research_database(crate::helpers::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_reads_from_the_research_database_postgres() {
    reads_from_the_research_database(crate::helpers::Backend::Postgres).await;
}

// issue 14: the trajectories read the question's time range in the database (scores outside
// it count nowhere), and honour `Accept`: `q=0` refuses the drawing.
api_test!(
    trajectories_keep_to_the_range_and_to_the_accept_header,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study { researcher, .. } = study(&app).await;
        let weeks = |body: &Value| {
            let mut weeks: Vec<i64> = body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["week"].as_i64().unwrap())
                .collect();
            weeks.dedup();
            weeks
        };
        let all = research(
            &app,
            &researcher,
            "/v1/research/trajectories?instrument=phq9",
        )
        .await;
        assert_eq!(
            weeks(&all),
            [0, 4],
            "day 2 and day 30 after the first session"
        );
        // Day 0 was 35 days ago: from 20 days ago, only the day-30 scores remain.
        let from = (Utc::now() - Duration::days(20)).format("%Y-%m-%dT%H:%M:%SZ");
        let later = research(
            &app,
            &researcher,
            &format!("/v1/research/trajectories?instrument=phq9&from={from}"),
        )
        .await;
        assert_eq!(weeks(&later), [4]);
        let refused = app
            .client
            .get(app.url("/v1/research/trajectories?instrument=phq9"))
            .bearer_auth(&researcher.access_token)
            .header("accept", "image/svg+xml;q=0, application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.headers()["content-type"], "application/json");
    }
);

api_test!(
    outcomes_group_by_infusion_number_under_the_same_small_cell_rule,
    overrides = &[("KO_RESEARCH_MIN_CELL", "5")],
    |app| async move {
        let Study {
            clinician,
            researcher,
            patients,
            ..
        } = study(&app).await;
        // The six intranasal patients get a second infusion a week on.
        let day0 = Utc::now() - Duration::days(35);
        let infusion = |patient: String, day: i64| {
            let (app, token) = (&app, clinician.access_token.clone());
            async move {
                let body = json!({"route": "intranasal", "started_at": (day0 + Duration::days(day)).to_rfc3339(),
                    "dose_mg_per_kg": 0.5, "weight_kg": 80});
                let res = app
                    .post_as(&format!("/v1/patients/{patient}/sessions"), &token, &body)
                    .await;
                assert_eq!(res.status(), 201);
            }
        };
        for patient in &patients[8..] {
            infusion(patient.clone(), 7).await;
        }
        let query = "/v1/research/outcomes?group_by=infusion_number";
        let body = research(&app, &researcher, query).await;
        let first = row(&body, "infusion_number", "1");
        assert_eq!(
            (first["patients"].as_u64(), first["sessions"].as_u64()),
            (Some(14), Some(14))
        );
        let second = row(&body, "infusion_number", "2");
        assert_eq!(
            (second["patients"].as_u64(), second["sessions"].as_u64()),
            (Some(6), Some(6))
        );
        assert_eq!(body["withheld_groups"], 0);
        // Two of them a third: a group of 2, below k, is withheld — and with it the next
        // smallest, so that no total gives the small one away.
        for patient in &patients[8..10] {
            infusion(patient.clone(), 14).await;
        }
        let body = research(&app, &researcher, query).await;
        let shown: Vec<&Value> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["group"]["infusion_number"])
            .collect();
        assert_eq!(shown, [&json!("1")], "{body}");
        assert_eq!(body["withheld_groups"], 2);
        // A trajectory follows a course across infusions: not a dimension of it.
        let res = app
            .get_as(
                "/v1/research/trajectories?instrument=phq9&group_by=infusion_number",
                &researcher.access_token,
            )
            .await;
        assert_eq!(res.status(), 422);
    }
);

/// issue 20 (5): research reads a real streaming standby (`pg_basebackup` of the primary).
/// With its replay paused it answers what it has replayed — not the primary's newer records —
/// and /metrics shows the lag; resumed, it catches up. Stopped, research is refused with 503
/// and Retry-After while clinical writes go on; started again, research answers, with no
/// restart of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_reads_a_streaming_standby_and_waits_out_its_absence() {
    use crate::cluster::Cluster;
    use crate::helpers::{eventually, with_database, TestDatabase};
    let Some(primary) = Cluster::create() else {
        return;
    };
    let database = TestDatabase::on_server(&primary.url("postgres"));
    let name = database.url().rsplit('/').next().unwrap().to_owned();
    let standby = tokio::task::block_in_place(|| primary.standby());
    let standby_url = with_database(&standby.url("postgres"), &name);
    let app = TestApp::spawn(
        database,
        &[
            ("KO_RESEARCH_DATABASE_URL", standby_url.as_str()),
            ("KO_RESEARCH_MIN_CELL", "5"),
            ("KO_DB_ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let Study {
        clinician,
        researcher,
        ..
    } = study(&app).await;
    let path = "/v1/research/outcomes";
    tokio::task::block_in_place(|| standby.replay_all_of(&primary));
    let replayed = research(&app, &researcher, path).await;
    assert!(
        !replayed["rows"].as_array().unwrap().is_empty(),
        "the standby replays the records"
    );
    let lag = || replica_series(&app, "research_replica_lag_seconds");

    tokio::task::block_in_place(|| standby.pause_replay());
    cohorts(&app, &clinician).await;
    let paused = research(&app, &researcher, path).await;
    assert_eq!(
        paused["rows"], replayed["rows"],
        "the standby answers, not the primary"
    );
    let behind = eventually(lag, |l| l.is_some_and(|l| l > 0.0)).await;
    assert!(
        behind.is_some_and(|l| l > 0.0 && l < 600.0),
        "the lag is the age of the last change replayed: {behind:?}"
    );
    assert_eq!(replica_series(&app, "research_replica_up").await, Some(1.0));

    tokio::task::block_in_place(|| standby.resume_replay());
    let caught_up = eventually(
        || research(&app, &researcher, path),
        |b| b["rows"] != replayed["rows"],
    )
    .await;
    assert_ne!(
        caught_up["rows"], replayed["rows"],
        "resumed, it catches up"
    );
    assert_eq!(eventually(lag, |l| *l == Some(0.0)).await, Some(0.0));

    tokio::task::block_in_place(|| standby.stop());
    let refused = app.get_as(path, &researcher.access_token).await;
    assert_eq!(refused.status(), 503, "research waits for its replica");
    assert!(refused.headers().contains_key("retry-after"));
    app.new_patient(&clinician).await;
    assert_eq!(replica_series(&app, "research_replica_up").await, Some(0.0));
    assert_eq!(
        lag().await,
        None,
        "no lag for a replica that does not answer"
    );

    tokio::task::block_in_place(|| standby.start());
    let back = eventually(
        || async { app.get_as(path, &researcher.access_token).await.status() },
        |status| *status == 200,
    )
    .await;
    assert_eq!(
        back, 200,
        "research answers again, the server not restarted"
    );
}

/// The value of a research replica series on /metrics, when it is there.
async fn replica_series(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.unwrap();
    let prefix = format!("{name}{{database=\"research\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().unwrap())
}

//! Every flag of domain.md §7, raised by the write that causes it (or, for the time-based
//! ones, by the sweep), once per kind per record, never reopened; and a worklist that only
//! reads.

use chrono::{Duration, NaiveDateTime, Utc};
use ketamine_outcomes::clock;
use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::minutes_from_now;
use crate::helpers::{eventually, problem, Session, TestApp, QUIET_SWEEP};

fn kinds(record: &Value) -> Vec<String> {
    record["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn worklist(app: &TestApp, clinician: &Session, query: &str) -> Vec<Value> {
    let res = app
        .get_as(
            &format!("/v1/flags?limit=500{query}"),
            &clinician.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn created(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

api_test!(
    each_write_raises_its_flags_in_its_own_response,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        app.new_course(
            &clinic.clinician,
            &patient,
            &Utc::now().date_naive().to_string(),
        )
        .await;
        let sessions = format!("/v1/patients/{patient}/sessions");
        let session = |pre: Value, post: Value, readings: Value, minutes: i64| json!({"route": "iv", "started_at": minutes_from_now(minutes), "dose_mg_per_kg": 0.5, "weight_kg": 70, "pre": pre, "post": post, "readings": readings});
        let quiet = created(
            app.post_as(
                &sessions,
                &token,
                &session(
                    json!({"systolic": 159, "diastolic": 99}),
                    json!({"systolic": 179, "diastolic": 109}),
                    json!([]),
                    -900,
                ),
            )
            .await,
        )
        .await;
        assert!(kinds(&quiet).is_empty(), "just under every threshold");
        let high_pre = created(
            app.post_as(
                &sessions,
                &token,
                &session(
                    json!({"systolic": 160, "diastolic": 90}),
                    json!(null),
                    json!([]),
                    -800,
                ),
            )
            .await,
        )
        .await;
        assert_eq!(kinds(&high_pre), ["pre_session_hypertension"]);
        let peak = created(
            app.post_as(
                &sessions,
                &token,
                &session(
                    json!(null),
                    json!({"systolic": 140, "diastolic": 90}),
                    json!([{"minutes_after_start": 40, "systolic": 150, "diastolic": 110}]),
                    -700,
                ),
            )
            .await,
        )
        .await;
        assert_eq!(kinds(&peak), ["hypertensive_response"]);

        let assessments = format!("/v1/patients/{patient}/assessments");
        let ideation = created(app.post_as(&assessments, &token, &json!({"instrument": "phq9", "taken_at": minutes_from_now(-60), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]})).await).await;
        assert_eq!(kinds(&ideation), ["suicidal_ideation"]);
        assert_eq!(ideation["flags"][0]["level"], "urgent");
        assert!(
            ideation["crisis_message"]
                .as_str()
                .unwrap()
                .contains("emergency"),
            "the crisis message comes with it"
        );
        let calm = created(app.post_as(&assessments, &token, &json!({"instrument": "phq9", "taken_at": minutes_from_now(-50), "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]})).await).await;
        assert!(kinds(&calm).is_empty());
        assert!(calm["crisis_message"].is_null());
        let madrs = created(app.post_as(&assessments, &token, &json!({"instrument": "madrs", "taken_at": minutes_from_now(-40), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1, 4]})).await).await;
        assert_eq!(kinds(&madrs), ["suicidal_ideation"]);

        let effects = format!("/v1/patients/{patient}/side-effects");
        let effect = |effect: &str, severity: &str| json!({"effect": effect, "severity": severity, "onset_at": minutes_from_now(-30)});
        let cases = [
            (
                effect("nausea", "life_threatening"),
                vec!["life_threatening_side_effect"],
            ),
            (effect("bladder_symptoms", "mild"), vec!["bladder_symptoms"]),
            (effect("craving", "moderate"), vec!["dependence_risk"]),
            (effect("mania_symptoms", "severe"), vec!["mania_symptoms"]),
            (effect("headache", "severe"), vec![]),
        ];
        for (body, expected) in cases {
            let report = created(app.post_as(&effects, &token, &body).await).await;
            let mut got = kinds(&report);
            got.retain(|k| k != "persistent_side_effect");
            assert_eq!(got, expected, "{body}");
        }

        // The next read shows them too, urgent first.
        let list = worklist(&app, &clinic.clinician, "").await;
        let levels: Vec<&str> = list.iter().map(|f| f["level"].as_str().unwrap()).collect();
        let mut sorted = levels.clone();
        sorted.sort_by_key(|l| ["urgent", "high", "info"].iter().position(|x| x == l));
        assert_eq!(levels, sorted, "urgent first, then high, then info");
        assert!(levels.iter().filter(|l| **l == "urgent").count() >= 4);
    }
);

api_test!(
    a_contraindication_flags_the_course_and_every_session,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let body = json!({"birth_year": 1990, "sex": "female", "indications": ["ptsd"], "risk_factors": [{"factor": "pregnancy"}]});
        let patient = created(app.post_as("/v1/patients", &token, &body).await).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let course = created(
            app.post_as(
                &format!("/v1/patients/{patient}/courses"),
                &token,
                &json!({"indication": "ptsd", "start_date": "2026-01-05"}),
            )
            .await,
        )
        .await;
        assert_eq!(kinds(&course), ["contraindication"]);
        assert_eq!(course["flags"][0]["level"], "high");
        let session = created(app.post_as(&format!("/v1/patients/{patient}/sessions"), &token, &json!({"route": "im", "started_at": minutes_from_now(-30), "dose_mg_per_kg": 0.5, "weight_kg": 60})).await).await;
        assert_eq!(kinds(&session), ["contraindication"]);

        // A caution-class risk factor is not a contraindication.
        let body = json!({"birth_year": 1990, "sex": "male", "indications": ["ptsd"], "risk_factors": [{"factor": "hypertension"}]});
        let cautious = created(app.post_as("/v1/patients", &token, &body).await).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let course = created(
            app.post_as(
                &format!("/v1/patients/{cautious}/courses"),
                &token,
                &json!({"indication": "ptsd", "start_date": "2026-01-05"}),
            )
            .await,
        )
        .await;
        assert!(kinds(&course).is_empty());
    }
);

// The sessions have no follow-up scores: a sweep would raise `missed_follow_up` on them
// between a write and the read of what it raised, so it is kept to its tick at start.
api_test!(
    more_than_three_sessions_in_seven_days_is_a_dependence_risk,
    overrides = QUIET_SWEEP,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        app.new_course(
            &clinic.clinician,
            &patient,
            &(Utc::now() - Duration::days(10)).date_naive().to_string(),
        )
        .await;
        let day = |n: i64| (Utc::now() - Duration::days(10) + Duration::days(n)).to_rfc3339();
        for n in [0, 2, 4] {
            let id = app.new_session(&clinic.clinician, &patient, &day(n)).await;
            let s: Value = app
                .get_as(
                    &format!("/v1/sessions/{id}"),
                    &clinic.clinician.access_token,
                )
                .await
                .json()
                .await
                .unwrap();
            assert!(kinds(&s).is_empty());
        }
        let fourth = app.new_session(&clinic.clinician, &patient, &day(6)).await;
        let s: Value = app
            .get_as(
                &format!("/v1/sessions/{fourth}"),
                &clinic.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(kinds(&s), ["dependence_risk"]);
    }
);

/// The kinds of the patient's flags as the database holds them, read directly — no read of
/// the worklist — once `settled` holds of them (or after ten seconds).
async fn stored_flag_kinds(
    app: &TestApp,
    patient: &str,
    settled: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    use diesel::prelude::*;
    use ketamine_outcomes::store::schema::flags;
    let url = app.settings.database_url.connection_string();
    let ask = || {
        let (url, patient) = (url.clone(), patient.to_owned());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = ketamine_outcomes::store::DbConnection::establish(&url).unwrap();
                flags::table
                    .filter(flags::patient_id.eq(patient))
                    .select(flags::kind)
                    .load::<String>(&mut conn)
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    crate::helpers::eventually(ask, |kinds: &Vec<String>| settled(kinds)).await
}

// issue 16 (4): the flags that time raises appear with no one reading the worklist — the
// sweep raises them (every second in the tests, within a minute in service) — and the
// worklist then shows them as they were raised.
api_test!(
    time_raises_persistent_side_effects_and_missed_sessions_within_a_sweep,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let start = (Utc::now() - Duration::days(10)).date_naive();
        let course = app
            .new_course(&clinic.clinician, &patient, &start.to_string())
            .await;
        app.new_session(
            &clinic.clinician,
            &patient,
            &(Utc::now() - Duration::days(10)).to_rfc3339(),
        )
        .await;
        let effects = format!("/v1/patients/{patient}/side-effects");
        let long_ago = created(app.post_as(&effects, &token, &json!({"effect": "dissociation", "severity": "mild", "onset_at": (Utc::now() - Duration::hours(5)).to_rfc3339()})).await).await;
        let recent = created(app.post_as(&effects, &token, &json!({"effect": "dissociation", "severity": "mild", "onset_at": (Utc::now() - Duration::hours(3)).to_rfc3339()})).await).await;
        let resolved = created(app.post_as(&effects, &token, &json!({"effect": "nausea", "severity": "mild", "onset_at": (Utc::now() - Duration::hours(30)).to_rfc3339(), "resolved_at": (Utc::now() - Duration::hours(1)).to_rfc3339()})).await).await;

        let count = |kinds: &[String], kind: &str| kinds.iter().filter(|k| *k == kind).count();
        let raised = stored_flag_kinds(&app, &patient, |kinds| {
            count(kinds, "persistent_side_effect") == 1 && count(kinds, "missed_session") == 2
        })
        .await;
        assert_eq!(count(&raised, "persistent_side_effect"), 1, "{raised:?}");
        assert_eq!(count(&raised, "missed_session"), 2, "{raised:?}");

        let persistent = worklist(&app, &clinic.clinician, "&kind=persistent_side_effect").await;
        let records: Vec<&str> = persistent
            .iter()
            .map(|f| f["record_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            records,
            [long_ago["id"].as_str().unwrap()],
            "4 h after onset it persists; 3 h is not yet; resolved never"
        );
        assert!(
            !records.contains(&recent["id"].as_str().unwrap())
                && !records.contains(&resolved["id"].as_str().unwrap())
        );

        let missed = worklist(&app, &clinic.clinician, "&kind=missed_session").await;
        let mut slots: Vec<String> = missed
            .iter()
            .map(|f| f["record_id"].as_str().unwrap().to_owned())
            .collect();
        slots.sort();
        let slot = |d: i64| format!("{course}:{}", start + Duration::days(d));
        // Day 0 was filled; days 2 and 4 are more than 3 days overdue; day 7 is exactly 3.
        assert_eq!(slots, [slot(2), slot(4)]);
        assert!(missed
            .iter()
            .all(|f| f["level"] == "info" && f["record_type"] == "planned_slot"));
    }
);

/// The patient's row of the sweep's next instants: `None` when there is none, else the
/// instant (`None` inside: nothing will fall due).
async fn stored_check(app: &TestApp, patient: &str) -> Option<Option<NaiveDateTime>> {
    use diesel::prelude::*;
    use ketamine_outcomes::store::schema::time_flag_checks as tfc;
    use ketamine_outcomes::store::StoreError;
    let patient = patient.to_owned();
    app.database()
        .run(move |conn| {
            Ok::<_, StoreError>(
                tfc::table
                    .filter(tfc::patient_id.eq(patient))
                    .select(tfc::next_at)
                    .first(conn)
                    .optional()?,
            )
        })
        .await
        .unwrap()
}

/// A course and a completed session, both `ago` before now.
async fn treated(app: &TestApp, clinician: &Session, ago: Duration) -> String {
    let patient = app.new_patient(clinician).await;
    let started = Utc::now() - ago;
    app.new_course(clinician, &patient, &started.date_naive().to_string())
        .await;
    app.new_session(clinician, &patient, &started.to_rfc3339())
        .await;
    patient
}

// issue 16 (4): the sweep reads a patient's record again only when a flag falls due — here a
// side effect 4 hours (its expected time) and a microsecond after onset — and raises it then,
// with no write or read in between.
api_test!(
    the_sweep_reads_a_record_again_at_the_instant_a_flag_falls_due,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = treated(&app, &clinic.clinician, Duration::hours(5)).await;
        let onset = clock::now() - Duration::hours(4) + Duration::seconds(15);
        let effects = format!("/v1/patients/{patient}/side-effects");
        let body =
            json!({"effect": "dissociation", "severity": "mild", "onset_at": onset.to_rfc3339()});
        created(
            app.post_as(&effects, &clinic.clinician.access_token, &body)
                .await,
        )
        .await;

        // The write removed the patient's instant; the sweep reads the record and stores the
        // next one: the side effect's, before the session's follow-up (3 days) or a slot's.
        let due = onset + Duration::hours(4) + Duration::microseconds(1);
        let check = eventually(|| stored_check(&app, &patient), Option::is_some).await;
        assert_eq!(check, Some(Some(due.naive_utc())));
        assert!(
            !stored_flag_kinds(&app, &patient, |_| true)
                .await
                .contains(&"persistent_side_effect".to_owned()),
            "not persistent before its time"
        );
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let kinds = stored_flag_kinds(&app, &patient, |kinds| {
            kinds.iter().any(|k| k == "persistent_side_effect")
        })
        .await;
        assert!(
            kinds.iter().any(|k| k == "persistent_side_effect"),
            "{kinds:?}"
        );
    }
);

/// Stores "nothing will fall due" as the patient's instant — an instant the record does not
/// warrant — once the sweep has stored one, so that only a write removing it lets the sweep
/// see what follows.
async fn store_never(app: &TestApp, patient: &str) {
    use diesel::prelude::*;
    use ketamine_outcomes::store::schema::time_flag_checks as tfc;
    eventually(|| stored_check(app, patient), Option::is_some).await;
    let held = patient.to_owned();
    app.database()
        .run(move |conn| {
            diesel::update(tfc::table.filter(tfc::patient_id.eq(held)))
                .set(tfc::next_at.eq(None::<NaiveDateTime>))
                .execute(conn)
                .map_err(ketamine_outcomes::store::StoreError::from)
        })
        .await
        .unwrap();
}

// issue 16 (4): a write that may bring a time-raised flag closer takes the sweep's instant for
// the patient away at once — a follow-up score entered in error, a side effect —; a new score,
// which can only follow a session up, leaves it.
api_test!(
    a_write_that_brings_a_flag_closer_takes_the_sweeps_instant_away,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let given = Utc::now() - Duration::days(4);
        app.new_course(&clinic.clinician, &patient, &given.date_naive().to_string())
            .await;
        let scores = format!("/v1/patients/{patient}/assessments");
        let score = |at: chrono::DateTime<Utc>| json!({"instrument": "phq9", "taken_at": at.to_rfc3339(), "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]});
        // The session 4 days ago was followed up on its first day — the score written first, so
        // that no sweep ever finds the follow-up missed before the correction below.
        let follow_up = created(
            app.post_as(&scores, token, &score(Utc::now() - Duration::days(3)))
                .await,
        )
        .await;
        app.new_session(&clinic.clinician, &patient, &given.to_rfc3339())
            .await;
        store_never(&app, &patient).await;

        created(app.post_as(&scores, token, &score(Utc::now())).await).await;
        assert_eq!(
            stored_check(&app, &patient).await,
            Some(None),
            "a new score leaves it"
        );

        let follow_up = format!("/v1/assessments/{}", follow_up["id"].as_str().unwrap());
        let res = app
            .delete_as(&follow_up, token, &json!({"reason": "wrong form"}))
            .await;
        assert_eq!(res.status(), 200);
        let has = |kind: &'static str| move |kinds: &[String]| kinds.iter().any(|k| k == kind);
        let kinds = stored_flag_kinds(&app, &patient, has("missed_follow_up")).await;
        assert!(
            has("missed_follow_up")(&kinds),
            "the correction removed the instant, so the sweep read the record: {kinds:?}"
        );

        store_never(&app, &patient).await;
        let onset = (Utc::now() - Duration::hours(5)).to_rfc3339();
        let effect = json!({"effect": "dissociation", "severity": "mild", "onset_at": onset});
        created(
            app.post_as(
                &format!("/v1/patients/{patient}/side-effects"),
                token,
                &effect,
            )
            .await,
        )
        .await;
        let kinds = stored_flag_kinds(&app, &patient, has("persistent_side_effect")).await;
        assert!(
            has("persistent_side_effect")(&kinds),
            "the side effect's write removed the instant, so the sweep read the record: {kinds:?}"
        );
    }
);

api_test!(an_acknowledged_flag_stays_acknowledged, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let token = clinic.clinician.access_token.clone();
    let patient = app.new_patient(&clinic.clinician).await;
    app.new_course(
        &clinic.clinician,
        &patient,
        &Utc::now().date_naive().to_string(),
    )
    .await;
    let session = created(app.post_as(&format!("/v1/patients/{patient}/sessions"), &token, &json!({"route": "iv", "started_at": minutes_from_now(-60), "dose_mg_per_kg": 0.5, "weight_kg": 70, "pre": {"systolic": 170, "diastolic": 95}})).await).await;
    let flag = session["flags"][0]["id"].as_str().unwrap().to_owned();

    let (status, _, body) = problem(
        app.post_as(
            &format!("/v1/flags/{flag}/acknowledge"),
            &token,
            &json!({"note": " "}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("note"))
    );
    let res = app
        .post_as(
            &format!("/v1/flags/{flag}/acknowledge"),
            &token,
            &json!({"note": "Held 20 min; BP 150/90 on recheck."}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let acknowledged: Value = res.json().await.unwrap();
    assert_eq!(acknowledged["status"], "acknowledged");
    assert_eq!(
        acknowledged["acknowledged_by"],
        clinic.clinician.user_id.as_str()
    );
    assert_eq!(
        app.post_as(
            &format!("/v1/flags/{flag}/acknowledge"),
            &token,
            &json!({"note": "again"})
        )
        .await
        .status(),
        409
    );

    // A change that still warrants the flag does not reopen it or add another.
    let path = format!("/v1/sessions/{}", session["id"].as_str().unwrap());
    let changed: Value = app
        .patch(
            &path,
            &token,
            None,
            &json!({"pre": {"systolic": 175, "diastolic": 95}}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(changed["flags"].as_array().unwrap().len(), 1);
    assert_eq!(changed["flags"][0]["status"], "acknowledged");
    assert!(worklist(&app, &clinic.clinician, "&status=open")
        .await
        .is_empty());

    let trail: Value = app
        .get_as(
            &format!("/v1/audit-events?action=flag_acknowledged&patient_id={patient}"),
            &admin.access_token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(trail["items"].as_array().unwrap().len(), 1);

    let other = app.clinic(&admin, "Lighthouse").await;
    assert_eq!(
        app.post_as(
            &format!("/v1/flags/{flag}/acknowledge"),
            &other.clinician.access_token,
            &json!({"note": "x"})
        )
        .await
        .status(),
        404
    );
    assert!(
        worklist(&app, &other.clinician, "").await.is_empty(),
        "another clinic's worklist is its own"
    );
});

api_test!(
    concurrent_writers_on_two_instances_leave_one_flag_per_record,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let other = app.second_instance().await;
        let patient = app.new_patient(&clinic.clinician).await;
        let start = (Utc::now() - Duration::days(20)).date_naive();
        app.new_course(&clinic.clinician, &patient, &start.to_string())
            .await;
        let body = json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": minutes_from_now(-5), "items": [0, 0, 0, 0, 0, 0, 0, 0, 3]});
        let path = format!("/v1/patients/{patient}/assessments");
        let token = &clinic.clinician.access_token;
        let (a, b) = tokio::join!(
            app.post_as(&path, token, &body),
            other.post_as(&path, token, &body)
        );
        assert!(a.status().is_success() && b.status().is_success());
        // Two instances race to raise the same time-based flags.
        let (a, b) = tokio::join!(
            app.get_as("/v1/flags?limit=500", token),
            other.get_as("/v1/flags?limit=500", token)
        );
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        let missed =
            |all: &Vec<Value>| all.iter().filter(|f| f["kind"] == "missed_session").count();
        let swept = || worklist(&app, &clinic.clinician, "");
        let all = crate::helpers::eventually(swept, |all| missed(all) == 6).await;
        let mut keys: Vec<(String, String)> = all
            .iter()
            .map(|f| {
                (
                    f["kind"].as_str().unwrap().to_owned(),
                    f["record_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let total = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), total, "no kind is raised twice for one record");
        assert_eq!(
            all.iter()
                .filter(|f| f["kind"] == "suicidal_ideation")
                .count(),
            1
        );
        assert_eq!(
            all.iter().filter(|f| f["kind"] == "missed_session").count(),
            6,
            "days 0, 2, 4, 7, 10 and 14 of 20"
        );
    }
);

api_test!(the_worklist_filters_and_pages, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let token = clinic.clinician.access_token.clone();
    let patient = app.new_patient(&clinic.clinician).await;
    app.new_course(
        &clinic.clinician,
        &patient,
        &(Utc::now() - Duration::days(30)).date_naive().to_string(),
    )
    .await;
    let assessments = format!("/v1/patients/{patient}/assessments");
    for i in 0..3 {
        app.post_as(&assessments, &token, &json!({"instrument": "phq9", "taken_at": minutes_from_now(-10 - i), "items": [0, 0, 0, 0, 0, 0, 0, 0, 2]})).await;
    }
    let urgent = worklist(&app, &clinic.clinician, "&level=urgent").await;
    assert_eq!(urgent.len(), 3);
    // The sweep adds the missed induction slots of the month-old course, all at once.
    let swept = || worklist(&app, &clinic.clinician, "");
    let all = crate::helpers::eventually(swept, |all| all.len() > 3).await;
    let mut seen = Vec::new();
    let mut path = "/v1/flags?limit=2".to_owned();
    loop {
        let page: Value = app.get_as(&path, &token).await.json().await.unwrap();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/flags?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let ids: Vec<String> = all
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        seen, ids,
        "pages follow the worklist's order without gaps or repeats"
    );
    assert!(ids.len() > 3);
    let other_patient = app.new_patient(&clinic.clinician).await;
    assert!(worklist(
        &app,
        &clinic.clinician,
        &format!("&patient_id={other_patient}")
    )
    .await
    .is_empty());
});

api_test!(
    a_clinic_sets_its_own_persistence_times_and_remission_cut_offs,
    overrides = &[
        ("KO_PERSISTENCE_SHORT_HOURS", "2"),
        ("KO_REMISSION_PHQ9", "9")
    ],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        app.new_course(
            &clinic.clinician,
            &patient,
            &Utc::now().date_naive().to_string(),
        )
        .await;
        app.new_session(
            &clinic.clinician,
            &patient,
            &(Utc::now() - Duration::hours(4)).to_rfc3339(),
        )
        .await;
        let body = json!({"effect": "dissociation", "severity": "mild", "onset_at": (Utc::now() - Duration::hours(3)).to_rfc3339()});
        let report = created(
            app.post_as(
                &format!("/v1/patients/{patient}/side-effects"),
                &token,
                &body,
            )
            .await,
        )
        .await;
        let swept = || worklist(&app, &clinic.clinician, "&kind=persistent_side_effect");
        let persistent = crate::helpers::eventually(swept, |p| !p.is_empty()).await;
        assert_eq!(
            persistent[0]["record_id"], report["id"],
            "3 h is past this clinic's 2 h"
        );

        let kinds: Value = app
            .get_as("/v1/side-effect-kinds", &token)
            .await
            .json()
            .await
            .unwrap();
        let dissociation = kinds
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["effect"] == "dissociation")
            .unwrap();
        assert_eq!(dissociation["expected_resolution_hours"], 2);
        let instruments: Value = app
            .get_as("/v1/instruments", &token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(instruments[0]["remission_max"], 9);
        assert_eq!(
            instruments[1]["remission_max"], 4,
            "GAD-7 keeps the specification's"
        );
    }
);

api_test!(
    another_lists_cursor_is_refused_by_the_worklist,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        for _ in 0..3 {
            app.new_patient(&clinic.clinician).await;
        }
        let page: Value = app
            .get_as("/v1/patients?limit=1", &clinic.clinician.access_token)
            .await
            .json()
            .await
            .unwrap();
        let cursor = page["next_cursor"].as_str().unwrap();
        let (status, _, body) = problem(
            app.get_as(
                &format!("/v1/flags?cursor={cursor}"),
                &clinic.clinician.access_token,
            )
            .await,
        )
        .await;
        assert_eq!(status, 422);
        assert_eq!(body["errors"][0]["field"], "cursor");
    }
);

// issue 14: the timeline shows each record as its own read does — with the flags it raised
// and, for an answer that raised a suicidal-ideation flag, the clinic's crisis message (it
// used to show `flags: []` and no message for every nested record) — even where records of
// two kinds share an id.
api_test!(
    the_timeline_shows_each_records_flags_and_crisis_message,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let today = Utc::now().date_naive().to_string();
        app.new_course(&clinic.clinician, &patient, &today).await;
        let session = json!({"route": "iv", "started_at": minutes_from_now(-120), "dose_mg_per_kg": 0.5,
            "weight_kg": 70, "pre": {"systolic": 165, "diastolic": 95}});
        let session = created(
            app.post_as(
                &format!("/v1/patients/{patient}/sessions"),
                &token,
                &session,
            )
            .await,
        )
        .await;
        // The answer takes the session's id (a client chooses ids, unique within a kind only):
        // each entry still shows its own flags, not the other kind's.
        let ideation = json!({"id": session["id"], "instrument": "phq9", "taken_at": minutes_from_now(-60),
            "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]});
        let ideation = created(
            app.post_as(
                &format!("/v1/patients/{patient}/assessments"),
                &token,
                &ideation,
            )
            .await,
        )
        .await;
        let timeline: Value = app
            .get_as(&format!("/v1/patients/{patient}/timeline"), &token)
            .await
            .json()
            .await
            .unwrap();
        let entries = timeline["items"].as_array().unwrap();
        let shown = |kind: &str| {
            entries
                .iter()
                .find(|e| e["kind"] == kind)
                .map(|e| e[kind].clone())
                .unwrap()
        };
        assert_eq!(kinds(&shown("session")), kinds(&session));
        assert_eq!(kinds(&shown("session")), ["pre_session_hypertension"]);
        let assessment = shown("assessment");
        assert_eq!(kinds(&assessment), ["suicidal_ideation"]);
        assert_eq!(assessment["crisis_message"], ideation["crisis_message"]);
        assert!(assessment["crisis_message"].is_string());
        assert!(shown("session")["crisis_message"].is_null());
    }
);

/// issue 16 (4): on PostgreSQL one process sweeps at a time — a second finds the sweep taken
/// while the first is at it — and a process that dies mid-sweep frees it with its connection,
/// so the next tick of another process sweeps.
#[test]
fn one_process_sweeps_at_a_time_and_its_loss_frees_the_sweep() {
    use diesel::prelude::*;
    use ketamine_outcomes::store::{exclusively, DbConnection, Exclusive};
    let Some(database) = crate::helpers::TestDatabase::create(crate::helpers::Backend::Postgres)
    else {
        eprintln!("skipped: {} is not set", crate::helpers::POSTGRES_VAR);
        return;
    };
    let url = database.url();
    let (mut first, mut second) = (
        DbConnection::establish(&url).unwrap(),
        DbConnection::establish(&url).unwrap(),
    );
    let meanwhile = exclusively(&mut first, Exclusive::Sweep, |_| {
        exclusively(&mut second, Exclusive::Sweep, |_| Ok(()))
    })
    .unwrap();
    assert_eq!(meanwhile, Some(None), "the second found the sweep taken");
    let after = exclusively(&mut second, Exclusive::Sweep, |_| Ok(())).unwrap();
    assert_eq!(after, Some(()), "and has it once the first is done");

    // The first takes the sweep and dies holding it: its connection ends, and so does the lock.
    let mut dying = DbConnection::establish(&url).unwrap();
    let key = Exclusive::Sweep as i64;
    diesel::sql_query(format!("SELECT pg_advisory_lock({key})"))
        .execute(&mut dying)
        .unwrap();
    assert_eq!(
        exclusively(&mut second, Exclusive::Sweep, |_| Ok(())).unwrap(),
        None
    );
    drop(dying);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while exclusively(&mut second, Exclusive::Sweep, |_| Ok(()))
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its connection"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// issue 16 (2, 4): reading the worklist or a timeline writes nothing and takes no write lock.
// Another transaction holds the write lock (SQLite's one writer) or the flag and audit tables
// against every writer (PostgreSQL) while a clinician reads: each read answers, flag and all,
// without waiting for it — and each read's audit event is written once the lock is gone.
api_test!(
    the_worklist_and_timeline_answer_while_a_writer_holds_the_database,
    |app| async move {
        use diesel::connection::SimpleConnection;
        use diesel::prelude::*;
        use ketamine_outcomes::store::DbConnection;
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let ideation = json!({"instrument": "phq9", "taken_at": minutes_from_now(-5),
            "items": [1, 1, 1, 1, 1, 1, 1, 1, 2]});
        let path = format!("/v1/patients/{patient}/assessments");
        created(
            app.post_as(&path, &clinic.clinician.access_token, &ideation)
                .await,
        )
        .await;

        let url = app.settings.database_url.connection_string();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            let mut conn = DbConnection::establish(&url).unwrap();
            let lock = match conn {
                DbConnection::Sqlite(_) => "BEGIN IMMEDIATE",
                DbConnection::Postgres(_) => {
                    "BEGIN; LOCK TABLE audit_events, flags IN EXCLUSIVE MODE"
                }
            };
            conn.batch_execute(lock).unwrap();
            held_tx.send(()).unwrap();
            // Held until the test is done with the read, or a minute at most.
            let _ = release_rx.recv_timeout(std::time::Duration::from_secs(60));
            conn.batch_execute("COMMIT").unwrap();
        });
        held_rx.recv().unwrap();
        let count_of = |action| crate::helpers::audit_events(&app, &patient, Some(action));
        let count = || count_of("flags_listed");
        let before = count().await;
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            worklist(&app, &clinic.clinician, &format!("&patient_id={patient}")),
        )
        .await
        .expect("the worklist answered while the writer held the database");
        assert_eq!(
            read.iter()
                .map(|f| f["kind"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["suicidal_ideation"]
        );
        // The timeline reads as the worklist does (issue 16 (2)): the record, its flag and the
        // clinic's crisis message, while the writer still holds the database.
        let timeline = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            app.get_as(
                &format!("/v1/patients/{patient}/timeline"),
                &clinic.clinician.access_token,
            ),
        )
        .await
        .expect("the timeline answered while the writer held the database");
        assert_eq!(timeline.status(), 200);
        let timeline: serde_json::Value = timeline.json().await.unwrap();
        let entry = &timeline["items"][0]["assessment"];
        assert_eq!(entry["flags"][0]["kind"], "suicidal_ideation");
        assert!(entry["crisis_message"].is_string(), "{entry}");
        release_tx.send(()).unwrap();
        writer.join().unwrap();
        let after = crate::helpers::eventually(count, |n| *n > before).await;
        assert_eq!(
            after,
            before + 1,
            "one event for the one patient on the page"
        );
        let timeline_read = || count_of("timeline_read");
        assert_eq!(
            crate::helpers::eventually(timeline_read, |n| *n == 1).await,
            1,
            "the timeline's read is audited once the lock is gone"
        );
    }
);

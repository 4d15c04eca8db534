//! Object-level access to clinical records (quality.md, Security): a clinician of another
//! clinic and another patient get 404; a researcher and an administrator 403; a patient
//! reads their own record and writes only what the app may.

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::minutes_from_now;
use crate::helpers::{problem, Session, TestApp};

struct Record {
    patient: String,
    course: String,
    session: String,
    assessment: String,
    side_effect: String,
}

async fn record(app: &TestApp, clinician: &Session) -> Record {
    let patient = app.new_patient(clinician).await;
    let course = app.new_course(clinician, &patient, "2026-01-05").await;
    let session = app
        .new_session(clinician, &patient, &minutes_from_now(-120))
        .await;
    let assessment: Value = app
        .post_as(
            &format!("/v1/patients/{patient}/assessments"),
            &clinician.access_token,
            &json!({"instrument": "phq9", "taken_at": minutes_from_now(-60), "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let side_effect: Value = app
        .post_as(
            &format!("/v1/patients/{patient}/side-effects"),
            &clinician.access_token,
            &json!({"effect": "headache", "severity": "mild", "onset_at": minutes_from_now(-90)}),
        )
        .await
        .json()
        .await
        .unwrap();
    Record {
        patient,
        course,
        session,
        assessment: assessment["id"].as_str().unwrap().to_owned(),
        side_effect: side_effect["id"].as_str().unwrap().to_owned(),
    }
}

/// A GAD-7 as a FHIR-based app sends it: every item "several days".
fn gad7_response() -> Value {
    let items: Vec<Value> = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
        .iter()
        .map(|l| json!({"linkId": l, "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]}))
        .collect();
    json!({"resourceType": "QuestionnaireResponse", "status": "completed",
        "questionnaire": "http://loinc.org/q/69737-5", "authored": minutes_from_now(-2), "item": items})
}

/// Every endpoint that reaches one patient's record, with what the patient themselves gets.
fn endpoints(r: &Record) -> Vec<(reqwest::Method, String, Value, u16)> {
    use reqwest::Method as M;
    let p = &r.patient;
    let reason = json!({"reason": "entered for the wrong patient"});
    vec![
        (M::GET, format!("/v1/patients/{p}"), json!(null), 200),
        (
            M::PATCH,
            format!("/v1/patients/{p}"),
            json!({"research_consent": false}),
            403,
        ),
        (
            M::POST,
            format!("/v1/patients/{p}/invites"),
            json!(null),
            403,
        ),
        (
            M::GET,
            format!("/v1/patients/{p}/timeline"),
            json!(null),
            200,
        ),
        (M::GET, format!("/v1/patients/{p}/fhir"), json!(null), 200),
        (
            M::POST,
            format!("/v1/patients/{p}/fhir/QuestionnaireResponse"),
            gad7_response(),
            201,
        ),
        (
            M::POST,
            format!("/v1/patients/{p}/courses"),
            json!({"indication": "treatment_resistant_depression", "start_date": "2026-03-01"}),
            403,
        ),
        (
            M::GET,
            format!("/v1/patients/{p}/courses"),
            json!(null),
            200,
        ),
        (
            M::GET,
            format!("/v1/courses/{}", r.course),
            json!(null),
            200,
        ),
        (
            M::PATCH,
            format!("/v1/courses/{}", r.course),
            json!({"closed": true}),
            403,
        ),
        (
            M::POST,
            format!("/v1/patients/{p}/sessions"),
            json!({"route": "iv", "started_at": minutes_from_now(-30), "dose_mg_per_kg": 0.5, "weight_kg": 70}),
            403,
        ),
        (
            M::GET,
            format!("/v1/patients/{p}/sessions"),
            json!(null),
            200,
        ),
        (
            M::GET,
            format!("/v1/sessions/{}", r.session),
            json!(null),
            200,
        ),
        (
            M::PATCH,
            format!("/v1/sessions/{}", r.session),
            json!({"charge_cents": 1}),
            403,
        ),
        (
            M::POST,
            format!("/v1/patients/{p}/assessments"),
            json!({"instrument": "gad7", "taken_at": minutes_from_now(-1), "items": [0, 0, 0, 0, 0, 0, 1]}),
            201,
        ),
        (
            M::GET,
            format!("/v1/patients/{p}/assessments"),
            json!(null),
            200,
        ),
        (
            M::GET,
            format!("/v1/assessments/{}", r.assessment),
            json!(null),
            200,
        ),
        (
            M::POST,
            format!("/v1/patients/{p}/side-effects"),
            json!({"effect": "dizziness", "severity": "mild", "onset_at": minutes_from_now(-20)}),
            201,
        ),
        (
            M::GET,
            format!("/v1/patients/{p}/side-effects"),
            json!(null),
            200,
        ),
        (
            M::GET,
            format!("/v1/side-effects/{}", r.side_effect),
            json!(null),
            200,
        ),
        (
            M::PATCH,
            format!("/v1/side-effects/{}", r.side_effect),
            json!({"resolved_at": minutes_from_now(-1)}),
            200,
        ),
        (
            M::DELETE,
            format!("/v1/sessions/{}", r.session),
            reason.clone(),
            403,
        ),
        (
            M::DELETE,
            format!("/v1/assessments/{}", r.assessment),
            reason.clone(),
            403,
        ),
        (
            M::DELETE,
            format!("/v1/side-effects/{}", r.side_effect),
            reason,
            403,
        ),
    ]
}

async fn call(
    app: &TestApp,
    method: &reqwest::Method,
    path: &str,
    body: &Value,
    token: &str,
) -> u16 {
    let mut req = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if !body.is_null() {
        req = req.json(body);
    }
    req.send().await.unwrap().status().as_u16()
}

api_test!(every_record_endpoint_keeps_to_its_scope, |app| async move {
    let admin = app.sign_in_admin().await;
    let harbour = app.clinic(&admin, "Harbour").await;
    let lighthouse = app.clinic(&admin, "Lighthouse").await;
    let researcher = app.sign_in_new(&admin, "researcher", None).await;
    let ours = record(&app, &harbour.clinician).await;
    let own_phone = app.patient_app(&harbour.clinician, &ours.patient).await;
    let neighbour = app.new_patient(&harbour.clinician).await;
    let neighbour_phone = app.patient_app(&harbour.clinician, &neighbour).await;
    let theirs = app.new_patient(&lighthouse.clinician).await;
    let their_phone = app.patient_app(&lighthouse.clinician, &theirs).await;

    for (method, path, body, own_status) in endpoints(&ours) {
        // The role is checked before the scope: what no patient may do is 403 for every
        // patient; what a patient may do to their own record is 404 on anyone else's.
        let other_patient = if own_status == 403 { 403 } else { 404 };
        let who = [
            ("a clinician of another clinic", &lighthouse.clinician, 404),
            (
                "another patient of the clinic",
                &neighbour_phone,
                other_patient,
            ),
            ("a patient of another clinic", &their_phone, other_patient),
            ("a researcher", &researcher, 403),
            ("an administrator", &admin, 403),
        ];
        for (label, session, expected) in who {
            assert_eq!(
                call(&app, &method, &path, &body, &session.access_token).await,
                expected,
                "{method} {path} as {label}"
            );
        }
        assert_eq!(
            call(&app, &method, &path, &body, &own_phone.access_token).await,
            own_status,
            "{method} {path} as the patient"
        );
    }
    // The clinician of the record's own clinic may do all of it.
    for (method, path, body, _) in endpoints(&record(&app, &harbour.clinician).await) {
        let status = call(&app, &method, &path, &body, &harbour.clinician.access_token).await;
        assert!(
            matches!(status, 200 | 201),
            "{method} {path} as the clinician: {status}"
        );
    }
});

api_test!(
    clinic_wide_lists_and_creates_are_for_clinicians_only,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let patient = app.new_patient(&harbour.clinician).await;
        let phone = app.patient_app(&harbour.clinician, &patient).await;
        let body = json!({"birth_year": 1980, "sex": "male", "indications": ["ptsd"]});
        for session in [&researcher, &admin, &phone] {
            assert_eq!(
                call(
                    &app,
                    &reqwest::Method::GET,
                    "/v1/patients",
                    &json!(null),
                    &session.access_token
                )
                .await,
                403
            );
            assert_eq!(
                call(
                    &app,
                    &reqwest::Method::POST,
                    "/v1/patients",
                    &body,
                    &session.access_token
                )
                .await,
                403
            );
        }
        for path in [
            "/v1/me/sessions",
            "/v1/me/assessments",
            "/v1/me/side-effects",
        ] {
            for session in [&researcher, &admin, &harbour.clinician] {
                assert_eq!(
                    call(
                        &app,
                        &reqwest::Method::GET,
                        path,
                        &json!(null),
                        &session.access_token
                    )
                    .await,
                    403,
                    "{path}"
                );
            }
            assert_eq!(
                call(
                    &app,
                    &reqwest::Method::GET,
                    path,
                    &json!(null),
                    &phone.access_token
                )
                .await,
                200,
                "{path}"
            );
        }
        let list: Value = app
            .get_as("/v1/patients", &harbour.clinician.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
    }
);

api_test!(
    a_patient_may_change_only_the_resolution_of_their_side_effects,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let r = record(&app, &harbour.clinician).await;
        let phone = app.patient_app(&harbour.clinician, &r.patient).await;
        let path = format!("/v1/side-effects/{}", r.side_effect);
        let res = app
            .patch(
                &path,
                &phone.access_token,
                None,
                &json!({"severity": "severe"}),
            )
            .await;
        assert_eq!(res.status(), 422);
        let res = app
            .patch(
                &path,
                &phone.access_token,
                None,
                &json!({"resolved_at": minutes_from_now(-10)}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let resolved: Value = res.json().await.unwrap();
        assert_eq!(resolved["severity"], "mild");
        assert!(resolved["resolved_at"].is_string());
        assert_eq!(
            resolved["reported_by"], "clinician",
            "the reporter does not change with the editor"
        );

        let me: Value = app
            .get_as("/v1/me", &phone.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["role"], "patient");
        assert_eq!(me["patient_id"], r.patient.as_str());
    }
);

// A write names a patient first: one outside the caller's scope is 404 before any rule about
// the record is checked, so that no answer tells another clinic's patient's indications, or
// whether they have an open course or a completed session (each would be 422 for a patient
// of the caller's own clinic).
api_test!(
    a_write_to_a_patient_outside_the_scope_is_404_whatever_its_body_breaks,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let lighthouse = app.clinic(&admin, "Lighthouse").await;
        let theirs = app.new_patient(&lighthouse.clinician).await;
        let ours = app.new_patient(&harbour.clinician).await;
        let writes = [
            (
                "courses",
                json!({"indication": "bipolar_depression", "start_date": "2026-01-05"}),
            ),
            (
                "sessions",
                json!({"route": "iv", "started_at": minutes_from_now(-30), "dose_mg_per_kg": 0.5, "weight_kg": 70}),
            ),
            (
                "side-effects",
                json!({"effect": "dizziness", "severity": "mild", "onset_at": minutes_from_now(-20)}),
            ),
        ];
        for (kind, body) in &writes {
            let own = format!("/v1/patients/{ours}/{kind}");
            let res = app
                .post_as(&own, &harbour.clinician.access_token, body)
                .await;
            assert_eq!(res.status(), 422, "{kind} for the clinic's own patient");
            let other = format!("/v1/patients/{theirs}/{kind}");
            let res = app
                .post_as(&other, &harbour.clinician.access_token, body)
                .await;
            assert_eq!(res.status(), 404, "{kind} for another clinic's patient");
        }
        for list in ["timeline", "courses"] {
            let listed: Value = app
                .get_as(
                    &format!("/v1/patients/{theirs}/{list}"),
                    &lighthouse.clinician.access_token,
                )
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(listed["items"], json!([]), "nothing was written: {list}");
        }
    }
);

api_test!(
    a_create_that_reuses_an_id_taken_outside_its_scope_is_a_conflict_that_shows_nothing,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = app.clinic(&admin, "Harbour").await;
        let lighthouse = app.clinic(&admin, "Lighthouse").await;
        let ours = app.new_patient(&harbour.clinician).await;
        let our_other = app.new_patient(&harbour.clinician).await;
        let theirs = app.new_patient(&lighthouse.clinician).await;
        let their_phone = app.patient_app(&lighthouse.clinician, &theirs).await;
        // The body the record was created with, taken word for word: only the scope differs.
        let body = json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": minutes_from_now(-60), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]});
        let first = app
            .post_as(
                &format!("/v1/patients/{ours}/assessments"),
                &harbour.clinician.access_token,
                &body,
            )
            .await;
        assert_eq!(first.status(), 201);
        let stored: Value = first.json().await.unwrap();
        let attempts = [
            (
                format!("/v1/patients/{theirs}/assessments"),
                &lighthouse.clinician.access_token,
                "another clinic's clinician",
            ),
            (
                "/v1/me/assessments".to_owned(),
                &their_phone.access_token,
                "another clinic's patient",
            ),
            (
                format!("/v1/patients/{our_other}/assessments"),
                &harbour.clinician.access_token,
                "the same clinician, for another patient",
            ),
        ];
        for (path, token, who) in attempts {
            let (status, _, problem) = problem(app.post_as(&path, token, &body).await).await;
            assert_eq!(status, 409, "{who}");
            assert_eq!(problem["type"], "/problems/conflict", "{who}");
            let shown = problem.to_string();
            assert!(!shown.contains(&ours), "{who}: {shown}");
            assert!(!shown.contains("suicidal"), "{who}: {shown}");
        }
        for (patient, token) in [
            (&theirs, &lighthouse.clinician.access_token),
            (&our_other, &harbour.clinician.access_token),
        ] {
            let listed: Value = app
                .get_as(&format!("/v1/patients/{patient}/timeline"), token)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(
                listed["items"],
                json!([]),
                "nothing was written for {patient}"
            );
        }
        let again: Value = app
            .get_as(
                &format!("/v1/assessments/{}", body["id"].as_str().unwrap()),
                &harbour.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(again, stored, "the record stands as it was");
    }
);

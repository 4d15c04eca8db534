//! Every read of a patient's record leaves an audit event naming the patient (quality.md,
//! Security; issue 12 (6)): every GET of the OpenAPI document, as every role, on a patient
//! with every kind of record.

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::{days_from_now, minutes_from_now};
use crate::helpers::{eventually, TestApp};

/// Audit events naming `patient`.
async fn events_naming(app: &TestApp, patient: &str) -> i64 {
    crate::helpers::audit_events(app, patient, None).await
}

/// GETs that name a patient but carry no clinical data, or are the audit trail itself.
const NOT_CLINICAL: [&str; 2] = [
    // The caller's own account: its patient id, nothing of the record.
    "/v1/me",
    // The audit trail names patients; reading it is an administrator's job, not a read of
    // any patient's record.
    "/v1/audit-events",
];

/// A stream stays open, so the walk cannot read its body to the end; what it shows comes only
/// from events after it opens, and tests/api/notifications.rs checks those are audited.
const STREAMS: [&str; 1] = ["/v1/flags/stream"];

api_test!(
    every_get_that_returns_a_patients_data_is_audited,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let clinician = &clinic.clinician;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        let patient = app.new_patient(clinician).await;
        let course = app
            .new_course(clinician, &patient, &days_from_now(-3)[..10])
            .await;
        let session = app
            .new_session(clinician, &patient, &minutes_from_now(-120))
            .await;
        let post = |path: String, body: Value| {
            let token = clinician.access_token.clone();
            let app = &app;
            async move {
                let res = app.post_as(&path, &token, &body).await;
                assert_eq!(res.status(), 201, "{path}");
                res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        // Item 9 answered: the assessment raises a flag, so the worklist shows this patient.
        let assessment = post(
            format!("/v1/patients/{patient}/assessments"),
            json!({"instrument": "phq9", "taken_at": minutes_from_now(-60), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]}),
        )
        .await;
        let side_effect = post(
            format!("/v1/patients/{patient}/side-effects"),
            json!({"effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-90)}),
        )
        .await;
        let app_session = app.patient_app(clinician, &patient).await;

        // A finished bulk export of the clinic, so that its file is read too.
        let started = app
            .client
            .get(app.url("/v1/fhir/$export"))
            .bearer_auth(&clinician.access_token)
            .header("prefer", "respond-async")
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202);
        let job_url = started.headers()["content-location"]
            .to_str()
            .unwrap()
            .to_owned();
        let export = job_url.rsplit('/').next().unwrap().to_owned();
        let status = || async {
            let res = app
                .client
                .get(&job_url)
                .bearer_auth(&clinician.access_token)
                .send();
            res.await.unwrap().status().as_u16()
        };
        assert_eq!(eventually(status, |s| *s == 200).await, 200);

        let document: Value = app.get("/openapi.json").await.json().await.unwrap();
        let fill = |template: &str| -> String {
            let id = match template {
                t if t.starts_with("/v1/patients/") => &patient,
                t if t.starts_with("/v1/courses/") => &course,
                t if t.starts_with("/v1/sessions/") => &session,
                t if t.starts_with("/v1/assessments/") => &assessment,
                t if t.starts_with("/v1/side-effects/") => &side_effect,
                t if t.starts_with("/v1/users/") => &app_session.user_id,
                t if t.starts_with("/v1/fhir/export-jobs/") => &export,
                _ => "",
            };
            // A clinic's webhooks hold no patient's data; an unknown one answers 404.
            let path = if template.starts_with("/v1/clinics/") {
                let none = uuid::Uuid::nil().to_string();
                ["{id}", "{wid}", "{did}"]
                    .iter()
                    .fold(template.to_owned(), |p, k| p.replace(k, &none))
            } else {
                template.replace("{id}", id).replace("{type}", "Patient")
            };
            assert!(
                !path.contains('{'),
                "no value for a parameter of {template}"
            );
            path
        };
        let mut gets: Vec<String> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(path, item)| path.starts_with("/v1/") && item.get("get").is_some())
            .filter(|(path, _)| !STREAMS.contains(&path.as_str()))
            .map(|(path, _)| fill(path))
            .collect();
        gets.push(format!("/v1/flags?patient_id={patient}"));
        let roles = [
            ("admin", &admin),
            ("clinician", clinician),
            ("researcher", &researcher),
            ("patient", &app_session),
        ];
        let mut audited_reads = 0;
        for path in &gets {
            for (role, session) in roles {
                let before = events_naming(&app, &patient).await;
                let res = app.get_as(path, &session.access_token).await;
                let status = res.status();
                let body = res.text().await.unwrap();
                let template = path.split('?').next().unwrap();
                let shows_patient =
                    body.contains(&patient) || (path.contains(&patient) && status == 200);
                if !status.is_success() || !shows_patient || NOT_CLINICAL.contains(&template) {
                    continue;
                }
                // The worklist's events are written behind its answer (issue 16 (4)).
                let after =
                    eventually(|| events_naming(&app, &patient), |after| *after > before).await;
                assert!(
                    after > before,
                    "GET {path} as {role} answered {status} with the patient's data and left no audit event"
                );
                audited_reads += 1;
            }
        }
        // The walk reached the reads it is about: clinicians' and the patient's own.
        assert!(
            audited_reads >= 20,
            "only {audited_reads} reads returned the patient's data"
        );
    }
);

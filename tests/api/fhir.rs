//! Issue 19 through the API, on both databases: a patient's record as a FHIR R4 Bundle (the
//! table's codes, references that stay inside the patient's own Bundle, changes only with
//! `_since`), a QuestionnaireResponse taken in as an assessment — the round trip from an
//! export scores the same for another patient — and what it refuses, as an OperationOutcome.
//! CI validates every demo patient's Bundle against the FHIR R4 definitions (.ci/fhir-validate).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::{days_from_now, minutes_from_now};
use crate::helpers::{Session, TestApp};

const FHIR_JSON: &str = "application/fhir+json";

async fn bundle(app: &TestApp, who: &Session, patient: &str, query: &str) -> Value {
    let res = app
        .get_as(
            &format!("/v1/patients/{patient}/fhir{query}"),
            &who.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], FHIR_JSON);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["resourceType"], "Bundle");
    assert_eq!(body["type"], "collection");
    body
}

fn resources<'a>(bundle: &'a Value, kind: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == kind)
        .collect()
}

/// The one resource of `kind` whose `code.coding[0].code` is `code`.
fn coded<'a>(bundle: &'a Value, kind: &str, code: &str) -> Vec<&'a Value> {
    resources(bundle, kind)
        .into_iter()
        .filter(|r| r["code"]["coding"][0]["code"] == code)
        .collect()
}

fn references(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("reference", Value::String(r)) => out.push(r.clone()),
                    _ => references(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        _ => {}
    }
}

/// The bundle's references, each checked to name one of its own entries.
fn references_inside(bundle: &Value) -> Vec<String> {
    let own: HashSet<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    let mut all = Vec::new();
    references(&bundle["entry"], &mut all);
    for r in &all {
        assert!(
            own.contains(r.as_str()),
            "{r} is not an entry of the bundle"
        );
    }
    all
}

/// The `fullUrl` of `resource`'s entry in `bundle`.
fn full_url(bundle: &Value, resource: &Value) -> String {
    let entry = bundle["entry"].as_array().unwrap().iter().find(|e| {
        e["resource"]["resourceType"] == resource["resourceType"]
            && e["resource"]["id"] == resource["id"]
    });
    entry.expect("an entry")["fullUrl"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn phq9_response(subject: &str, values: [usize; 9]) -> Value {
    const ITEMS: [&str; 9] = [
        "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
        "44260-8",
    ];
    const ANSWERS: [&str; 4] = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"];
    let items: Vec<Value> = ITEMS
        .iter()
        .zip(values)
        .map(|(link, v)| json!({"linkId": link, "answer": [{"valueCoding": {"system": "http://loinc.org", "code": ANSWERS[v]}}]}))
        .collect();
    json!({"resourceType": "QuestionnaireResponse", "questionnaire": "http://loinc.org/q/44249-1",
        "status": "completed", "subject": {"reference": format!("Patient/{subject}")},
        "authored": minutes_from_now(-10), "item": items})
}

async fn post_response(
    app: &TestApp,
    who: &Session,
    patient: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!(
            "/v1/patients/{patient}/fhir/QuestionnaireResponse"
        )))
        .bearer_auth(&who.access_token)
        .header("content-type", FHIR_JSON)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

api_test!(
    a_patients_record_is_a_bundle_of_the_tables_resources_referring_only_to_its_own,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let patient = app.new_patient(&clinician).await;
        // A course begun yesterday: none of its planned slots is overdue, so the sweep raises no
        // `missed_session` between the reads below that compare the bundle with itself.
        let course = app
            .new_course(&clinician, &patient, &days_from_now(-1)[..10])
            .await;
        let session: Value = app
            .post_as(
                &format!("/v1/patients/{patient}/sessions"),
                &clinician.access_token,
                &json!({"course_id": course, "route": "iv", "started_at": minutes_from_now(-180),
                    "ended_at": minutes_from_now(-120), "dose_mg_per_kg": 0.5, "weight_kg": 70.0,
                    "pre": {"systolic": 128, "diastolic": 82, "heart_rate": 72, "spo2": 98},
                    "post": {"systolic": 186, "diastolic": 96, "heart_rate": 88}}),
            )
            .await
            .json()
            .await
            .unwrap();
        let assessment = app.phq9_answering(&clinician, &patient, 2).await;
        let res = app
            .post_as(
                &format!("/v1/patients/{patient}/side-effects"),
                &clinician.access_token,
                &json!({"effect": "nausea", "severity": "moderate", "onset_at": minutes_from_now(-100),
                    "session_id": session["id"]}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let side_effect: Value = res.json().await.unwrap();
        let res = app
            .patch(
                &format!("/v1/patients/{patient}"),
                &clinician.access_token,
                Some("\"1\""),
                &json!({"research_consent": false}),
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        // A neighbour with a record of their own, which must never show in this one's bundle.
        let neighbour = app.new_patient(&clinician).await;
        app.phq9_answering(&clinician, &neighbour, 3).await;

        let b = bundle(&app, &clinician, &patient, "").await;
        let text = b.to_string();
        assert!(
            !text.contains(&neighbour),
            "another patient's id in the bundle"
        );
        references_inside(&b);

        let person = resources(&b, "Patient");
        assert_eq!(person.len(), 1);
        assert_eq!(person[0]["id"], patient.as_str());
        assert_eq!(person[0]["birthDate"], "1980");
        assert_eq!(person[0]["gender"], "female");
        assert!(person[0].get("name").is_none() && person[0].get("address").is_none());

        // PHQ-9: the response with LOINC items and answers, the panel, total and item 9.
        let response = resources(&b, "QuestionnaireResponse");
        assert_eq!(response.len(), 1);
        assert_eq!(response[0]["id"], assessment.as_str());
        assert_eq!(response[0]["questionnaire"], "http://loinc.org/q/44249-1");
        assert_eq!(response[0]["item"][8]["linkId"], "44260-8");
        assert_eq!(
            response[0]["item"][8]["answer"][0]["valueCoding"]["code"],
            "LA6570-1"
        );
        assert_eq!(
            response[0]["item"][0]["answer"][0]["valueCoding"]["code"],
            "LA6569-3"
        );
        let total = coded(&b, "Observation", "44261-6");
        assert_eq!(total.len(), 1);
        assert_eq!(total[0]["valueInteger"], 10);
        assert_eq!(total[0]["category"][0]["coding"][0]["code"], "survey");
        assert_eq!(
            total[0]["derivedFrom"][0]["reference"],
            full_url(&b, response[0])
        );
        let item9 = coded(&b, "Observation", "44260-8");
        assert_eq!(item9[0]["valueInteger"], 2);
        let panel = coded(&b, "Observation", "44249-1");
        let members: Vec<_> = panel[0]["hasMember"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["reference"].clone())
            .collect();
        assert_eq!(
            members,
            [json!(full_url(&b, total[0])), json!(full_url(&b, item9[0]))]
        );

        // The infusion and its vital signs, before and after.
        let given = resources(&b, "MedicationAdministration");
        assert_eq!(given.len(), 1);
        assert_eq!(given[0]["id"], session["id"]);
        assert_eq!(given[0]["status"], "completed");
        assert_eq!(given[0]["dosage"]["route"]["coding"][0]["code"], "47625008");
        assert_eq!(given[0]["dosage"]["dose"]["value"], 35.0);
        assert_eq!(given[0]["dosage"]["dose"]["code"], "mg");
        let pressures = coded(&b, "Observation", "85354-9");
        assert_eq!(pressures.len(), 2);
        let after = pressures
            .iter()
            .find(|o| o["component"][0]["valueQuantity"]["value"] == 186)
            .unwrap();
        assert_eq!(after["component"][0]["code"]["coding"][0]["code"], "8480-6");
        assert_eq!(after["component"][1]["code"]["coding"][0]["code"], "8462-4");
        assert_eq!(after["component"][1]["valueQuantity"]["code"], "mm[Hg]");
        assert_eq!(after["partOf"][0]["reference"], full_url(&b, given[0]));
        assert_eq!(coded(&b, "Observation", "8867-4").len(), 2);
        let saturation = coded(&b, "Observation", "2708-6");
        assert_eq!(saturation.len(), 1, "only the reading before had an SpO2");
        assert_eq!(saturation[0]["code"]["coding"][1]["code"], "59408-5");
        assert_eq!(saturation[0]["valueQuantity"]["unit"], "%");

        // The side effect, suspected of the infusion, graded.
        let events = resources(&b, "AdverseEvent");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["id"], side_effect["id"]);
        assert_eq!(events[0]["event"]["coding"][0]["code"], "422587007");
        assert_eq!(events[0]["severity"]["coding"][0]["code"], "moderate");
        assert_eq!(
            events[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"],
            "C41339"
        );
        assert_eq!(
            events[0]["suspectEntity"][0]["instance"]["reference"],
            full_url(&b, given[0])
        );

        // The flags: suicidal ideation on the score, the hypertensive response on the infusion.
        let issues = resources(&b, "DetectedIssue");
        let ideation = issues
            .iter()
            .find(|i| i["code"]["coding"][0]["code"] == "suicidal_ideation")
            .unwrap();
        assert_eq!(ideation["severity"], "high");
        assert_eq!(
            ideation["evidence"][0]["detail"][0]["reference"],
            full_url(&b, total[0])
        );
        let pressure = issues
            .iter()
            .find(|i| i["code"]["coding"][0]["code"] == "hypertensive_response")
            .unwrap();
        assert_eq!(
            pressure["implicated"][0]["reference"],
            full_url(&b, given[0])
        );

        // Research consent given at registration, then withdrawn.
        let consents = resources(&b, "Consent");
        let provisions: Vec<_> = consents
            .iter()
            .map(|c| (c["status"].clone(), c["provision"]["type"].clone()))
            .collect();
        assert_eq!(
            provisions,
            [
                (json!("inactive"), json!("permit")),
                (json!("active"), json!("deny"))
            ]
        );
        assert_eq!(
            consents[0]["provision"]["period"]["end"],
            consents[1]["provision"]["period"]["start"]
        );

        // Every fullUrl is stable: the same read again names the same resources.
        let again = bundle(&app, &clinician, &patient, "").await;
        let urls = |b: &Value| -> Vec<Value> {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["fullUrl"].clone())
                .collect()
        };
        assert_eq!(urls(&b), urls(&again));

        // The patient reads their own; the read is audited.
        let phone = app.patient_app(&clinician, &patient).await;
        let own = bundle(&app, &phone, &patient, "").await;
        assert_eq!(urls(&own), urls(&b));
        let read = crate::helpers::eventually(
            || crate::helpers::audit_events(&app, &patient, Some("fhir_exported")),
            |n| *n >= 3,
        )
        .await;
        assert_eq!(read, 3);
    }
);

api_test!(
    since_gives_only_what_changed_and_a_removal_as_entered_in_error,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let patient = app.new_patient(&clinician).await;
        let kept = app.phq9_answering(&clinician, &patient, 0).await;
        let removed = app.phq9_answering(&clinician, &patient, 0).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let since = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let res = app
            .delete_as(
                &format!("/v1/assessments/{removed}"),
                &clinician.access_token,
                &json!({"reason": "entered for the wrong patient"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let query = format!("?_since={}", urlencode(&since.to_rfc3339()));
        let b = bundle(&app, &clinician, &patient, &query).await;
        // Changes refer as Type/id: what they refer to may have come in an earlier pull.
        let mut referred = Vec::new();
        references(&b["entry"], &mut referred);
        assert!(!referred.is_empty());
        assert!(
            referred.iter().all(|r| r == &format!("Patient/{patient}")
                || r.starts_with("QuestionnaireResponse/")
                || r.starts_with("Observation/")),
            "{referred:?}"
        );
        let responses = resources(&b, "QuestionnaireResponse");
        assert_eq!(responses.len(), 1, "{b}");
        assert_eq!(responses[0]["id"], removed.as_str());
        assert_eq!(responses[0]["status"], "entered-in-error");
        assert!(resources(&b, "Observation")
            .iter()
            .all(|o| o["status"] == "entered-in-error"));
        assert!(
            resources(&b, "Patient").is_empty(),
            "the patient did not change"
        );
        assert!(!b.to_string().contains(&kept));
        // Without `_since`, the live record only.
        let whole = bundle(&app, &clinician, &patient, "").await;
        let ids: Vec<_> = resources(&whole, "QuestionnaireResponse")
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(ids, [json!(kept)]);
        // Instants at the calendar's ends are answered, never a 500.
        for extreme in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            let query = format!("?_since={}", urlencode(extreme));
            let res = app
                .get_as(
                    &format!("/v1/patients/{patient}/fhir{query}"),
                    &clinician.access_token,
                )
                .await;
            assert_eq!(res.status(), 200, "{extreme}");
        }
        let res = app
            .get_as(
                &format!("/v1/patients/{patient}/fhir?_since=yesterday"),
                &clinician.access_token,
            )
            .await;
        let (status, content_type, outcome) = crate::helpers::problem(res).await;
        assert_eq!((status, content_type.as_str()), (422, FHIR_JSON));
        assert_eq!(outcome["issue"][0]["expression"][0], "_since");
    }
);

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// The assessment a QuestionnaireResponse was stored as: (total, band, flag kinds).
async fn scored(app: &TestApp, who: &Session, location: &str) -> (Value, Value, Vec<Value>) {
    let id = location.rsplit('/').next().unwrap();
    let a: Value = app
        .get_as(&format!("/v1/assessments/{id}"), &who.access_token)
        .await
        .json()
        .await
        .unwrap();
    let kinds = a["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].clone())
        .collect();
    (a["total"].clone(), a["band"].clone(), kinds)
}

api_test!(
    a_questionnaire_response_from_an_export_scores_the_same_for_another_patient,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let first = app.new_patient(&clinician).await;
        let second = app.new_patient(&clinician).await;
        let original = app.phq9_answering(&clinician, &first, 3).await;
        let exported = bundle(&app, &clinician, &first, "").await;
        let mut response = resources(&exported, "QuestionnaireResponse")[0].clone();
        // A new response made from it, for the other patient: its own id, not the original's.
        let map = response.as_object_mut().unwrap();
        map.remove("id");
        map.remove("identifier");
        map.insert(
            "subject".into(),
            json!({"reference": format!("Patient/{second}")}),
        );
        map.remove("author");
        let res = post_response(&app, &clinician, &second, &response).await;
        assert_eq!(res.status(), 201);
        assert_eq!(res.headers()["content-type"], FHIR_JSON);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let stored: Value = res.json().await.unwrap();
        // Standing beside the record, what was stored refers by `Type/id`: the patient is the
        // second one, and every other reference one of the answer's own resources.
        let mut referred = Vec::new();
        references(&stored["entry"], &mut referred);
        let own: HashSet<String> = stored["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["resource"]["resourceType"].as_str().unwrap(),
                    e["resource"]["id"].as_str().unwrap()
                )
            })
            .collect();
        assert!(!referred.is_empty());
        for r in referred {
            assert!(r == format!("Patient/{second}") || own.contains(&r), "{r}");
        }
        assert!(
            !stored.to_string().contains(&first),
            "the first patient's id in the answer"
        );
        let told = resources(&stored, "OperationOutcome");
        assert_eq!(told.len(), 1, "item 9 answered: the crisis message is told");
        assert!(!resources(&stored, "DetectedIssue").is_empty());
        let again = scored(&app, &clinician, &location).await;
        let before = scored(&app, &clinician, &format!("/{original}")).await;
        assert_eq!(again, before);
        assert_eq!(again.0, 11);
        assert_eq!(again.2, [json!("suicidal_ideation")]);

        // Idempotent by its id: the same again is 200 and the same assessment; other answers
        // under that id are a conflict, and nothing more is stored.
        let mut with_id = phq9_response(&second, [1, 1, 1, 1, 1, 1, 1, 1, 0]);
        with_id["id"] = json!(uuid::Uuid::new_v4().to_string());
        // The same response sent twice at once (a phone's retry): stored once.
        let (made, twin) = tokio::join!(
            post_response(&app, &clinician, &second, &with_id),
            post_response(&app, &clinician, &second, &with_id)
        );
        let mut statuses = [made.status().as_u16(), twin.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 201]);
        assert_eq!(made.headers()["location"], twin.headers()["location"]);
        let at = made.headers()["location"].clone();
        let replay = post_response(&app, &clinician, &second, &with_id).await;
        assert_eq!(replay.status(), 200);
        assert_eq!(replay.headers()["location"], at);
        with_id["item"][0]["answer"][0]["valueCoding"]["code"] = json!("LA6571-9");
        let clash = post_response(&app, &clinician, &second, &with_id).await;
        assert_eq!(clash.status(), 409);
        assert_eq!(
            clash.json::<Value>().await.unwrap()["resourceType"],
            "OperationOutcome"
        );
        // ... and by its identifier when the id is not a UUID.
        let mut by_identifier = phq9_response(&second, [0; 9]);
        by_identifier["id"] = json!("app-local-7");
        by_identifier["identifier"] =
            json!({"system": "https://app.example/responses", "value": "r-7"});
        assert_eq!(
            post_response(&app, &clinician, &second, &by_identifier)
                .await
                .status(),
            201
        );
        assert_eq!(
            post_response(&app, &clinician, &second, &by_identifier)
                .await
                .status(),
            200
        );
        // The same identifier from another patient's app is that patient's own: no clash.
        by_identifier["subject"] = json!({"reference": format!("Patient/{first}")});
        let theirs = post_response(&app, &clinician, &first, &by_identifier).await;
        assert_eq!(theirs.status(), 201);
        let list: Value = app
            .get_as(
                &format!("/v1/patients/{second}/assessments"),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 3);

        // The patient's app sends their own; it is theirs, rated by them.
        let phone = app.patient_app(&clinician, &second).await;
        let res = post_response(&app, &phone, &second, &phq9_response(&second, [2; 9])).await;
        assert_eq!(res.status(), 201);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let a: Value = app
            .get_as(
                &format!("/v1/assessments/{}", location.rsplit('/').next().unwrap()),
                &phone.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(a["submitted_by"], "patient");
        assert_eq!(a["total"], 18);
    }
);

api_test!(
    what_a_questionnaire_response_breaks_is_an_operation_outcome_naming_each_field,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let patient = app.new_patient(&clinician).await;
        let other = app.new_patient(&clinician).await;
        let good = phq9_response(&patient, [1; 9]);
        let mut unknown = good.clone();
        unknown["questionnaire"] = json!("http://loinc.org/q/89204-2");
        let mut missing = good.clone();
        missing["item"].as_array_mut().unwrap().pop();
        let mut out_of_range = good.clone();
        out_of_range["item"][3]["answer"][0]["valueCoding"]["code"] = json!("LA6572-7");
        let mut total = good.clone();
        total["item"]
            .as_array_mut()
            .unwrap()
            .push(json!({"linkId": "44261-6", "answer": [{"valueInteger": 9}]}));
        let mut someone_else = good.clone();
        someone_else["subject"] = json!({"reference": format!("Patient/{other}")});
        let mut unfinished = good.clone();
        unfinished["status"] = json!("in-progress");
        let mut no_time = good.clone();
        no_time["authored"] = json!("2026-10");
        let mut future = good.clone();
        future["authored"] = json!("9999-12-31T23:59:59Z");
        let mut wrong_kind = good.clone();
        wrong_kind["resourceType"] = json!("Observation");
        let mut control = good.clone();
        control["item"][0]["linkId"] = json!("44250-9\u{0000}\u{001b}");
        let mut pain_too_high = json!({"resourceType": "QuestionnaireResponse", "status": "completed",
            "questionnaire": "https://ketamine-outcomes.org/fhir/Questionnaire/pain-nrs", "authored": minutes_from_now(-5),
            "item": [{"linkId": "72514-3", "answer": [{"valueInteger": 11}]}]});
        let cases = [
            (&unknown, vec!["QuestionnaireResponse.questionnaire"]),
            (&missing, vec!["QuestionnaireResponse.item"]),
            (
                &out_of_range,
                vec!["QuestionnaireResponse.item[3].answer[0].valueCoding.code"],
            ),
            (&total, vec!["QuestionnaireResponse.item[9].linkId"]),
            (&someone_else, vec!["QuestionnaireResponse.subject"]),
            (&unfinished, vec!["QuestionnaireResponse.status"]),
            (&no_time, vec!["QuestionnaireResponse.authored"]),
            (&future, vec!["QuestionnaireResponse.authored"]),
            (&wrong_kind, vec!["QuestionnaireResponse.resourceType"]),
            (
                &pain_too_high,
                vec!["QuestionnaireResponse.item[0].answer[0].valueInteger"],
            ),
            // Control characters are named as any other wrong linkId (and item 1 as missing).
            (
                &control,
                vec![
                    "QuestionnaireResponse.item[0].linkId",
                    "QuestionnaireResponse.item",
                ],
            ),
        ];
        for (body, fields) in cases {
            let res = post_response(&app, &clinician, &patient, body).await;
            assert_eq!(res.status(), 422, "{body}");
            assert_eq!(res.headers()["content-type"], FHIR_JSON);
            let outcome: Value = res.json().await.unwrap();
            assert_eq!(outcome["resourceType"], "OperationOutcome");
            let named: Vec<_> = outcome["issue"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["expression"][0].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(named, fields, "{outcome}");
            assert!(outcome["issue"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["severity"] == "error" && i["code"] == "invalid"));
        }
        pain_too_high["item"][0]["answer"][0]["valueInteger"] = json!(7);
        assert_eq!(
            post_response(&app, &clinician, &patient, &pain_too_high)
                .await
                .status(),
            201
        );

        // Not JSON, not a FHIR type, no token, another clinic's patient: an OperationOutcome each.
        let send =
            |content_type: &'static str, body: &'static str, token: Option<String>, to: String| {
                let req = app
                    .client
                    .post(app.url(&format!("/v1/patients/{to}/fhir/QuestionnaireResponse")))
                    .header("content-type", content_type)
                    .body(body);
                let req = match token {
                    Some(t) => req.bearer_auth(t),
                    None => req,
                };
                async move { req.send().await.unwrap() }
            };
        let token = Some(clinician.access_token.clone());
        let lighthouse = app.clinic(&admin, "Lighthouse").await.clinician;
        let theirs = app.new_patient(&lighthouse).await;
        for (res, status, code) in [
            (
                send(FHIR_JSON, "{not json", token.clone(), patient.clone()).await,
                400,
                "structure",
            ),
            (
                send("text/plain", "{}", token.clone(), patient.clone()).await,
                415,
                "not-supported",
            ),
            (
                send(FHIR_JSON, "{}", None, patient.clone()).await,
                401,
                "login",
            ),
            (
                post_response(&app, &clinician, &theirs, &phq9_response(&theirs, [1; 9])).await,
                404,
                "not-found",
            ),
        ] {
            assert_eq!(res.status(), status);
            assert_eq!(res.headers()["content-type"], FHIR_JSON);
            let outcome: Value = res.json().await.unwrap();
            assert_eq!(outcome["issue"][0]["code"], code, "{outcome}");
        }
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        assert_eq!(
            post_response(&app, &researcher, &patient, &good)
                .await
                .status(),
            403
        );

        // Nothing refused was stored: the one pain score only.
        let list: Value = app
            .get_as(
                &format!("/v1/patients/{patient}/assessments"),
                &clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0]["instrument"], "pain_nrs");
    }
);

api_test!(
    the_capability_statement_says_what_the_service_offers,
    |app| async move {
        let res = app.get("/v1/fhir/metadata").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], FHIR_JSON);
        let statement: Value = res.json().await.unwrap();
        assert_eq!(statement["resourceType"], "CapabilityStatement");
        assert_eq!(statement["fhirVersion"], "4.0.1");
        let kinds: Vec<_> = statement["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        for kind in [
            "Patient",
            "QuestionnaireResponse",
            "Observation",
            "MedicationAdministration",
            "AdverseEvent",
            "DetectedIssue",
            "Consent",
        ] {
            assert!(kinds.contains(&kind), "{kind}");
        }
    }
);

/// Kicks off a bulk export (`query` its parameters) and polls it until its manifest; the
/// job's URL and the manifest. Polls say 202 with Retry-After while it is being written.
async fn exported(app: &TestApp, clinician: &Session, query: &str) -> (String, Value) {
    let res = app
        .client
        .get(app.url(&format!("/v1/fhir/$export{query}")))
        .bearer_auth(&clinician.access_token)
        .header("prefer", "respond-async")
        .header("accept", FHIR_JSON)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job = res.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        job.starts_with("http://127.0.0.1:"),
        "an absolute URL: {job}"
    );
    let poll = || async {
        let res = app
            .client
            .get(&job)
            .bearer_auth(&clinician.access_token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        if status == 202 {
            assert_eq!(res.headers()["retry-after"], "2");
            assert!(res.headers()["x-progress"]
                .to_str()
                .unwrap()
                .ends_with("patients written"));
        }
        (status, res.text().await.unwrap())
    };
    let (status, body) = crate::helpers::eventually(poll, |(s, _)| *s != 202).await;
    assert_eq!(status, 200, "{body}");
    (job, serde_json::from_str(&body).unwrap())
}

/// Every line of every file of a manifest, by resource type, checked against its count.
async fn downloaded(app: &TestApp, clinician: &Session, manifest: &Value) -> Vec<(String, Value)> {
    let mut lines = Vec::new();
    for file in manifest["output"].as_array().unwrap() {
        let res = app
            .client
            .get(file["url"].as_str().unwrap())
            .bearer_auth(&clinician.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/fhir+ndjson");
        let text = res.text().await.unwrap();
        let here: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            here.len() as u64,
            file["count"].as_u64().unwrap(),
            "{}",
            file["type"]
        );
        for resource in here {
            assert_eq!(resource["resourceType"], file["type"]);
            lines.push((file["type"].as_str().unwrap().to_owned(), resource));
        }
    }
    lines
}

api_test!(
    a_clinic_export_is_kicked_off_polled_downloaded_per_type_and_cancelled,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let lighthouse = app.clinic(&admin, "Lighthouse").await.clinician;
        // More patients than one page holds, so the job is written over several.
        let mut ours = Vec::new();
        for _ in 0..53 {
            ours.push(app.new_patient(&clinician).await);
        }
        app.phq9_answering(&clinician, &ours[0], 2).await;
        app.phq9_answering(&clinician, &ours[52], 0).await;
        let theirs = app.new_patient(&lighthouse).await;
        app.phq9_answering(&lighthouse, &theirs, 3).await;

        let (job, manifest) = exported(&app, &clinician, "").await;
        assert_eq!(manifest["requiresAccessToken"], true);
        let request = manifest["request"].as_str().unwrap();
        assert!(
            request.contains("/v1/fhir/$export?_type=Patient%2C"),
            "{request}"
        );
        assert!(manifest["transactionTime"].as_str().is_some());
        let lines = downloaded(&app, &clinician, &manifest).await;
        let text: String = lines.iter().map(|(_, r)| r.to_string()).collect();
        assert!(
            !text.contains(&theirs),
            "another clinic's patient in the export"
        );
        let mut patients: Vec<String> = lines
            .iter()
            .filter(|(t, _)| t == "Patient")
            .map(|(_, r)| r["id"].as_str().unwrap().to_owned())
            .collect();
        patients.sort();
        let mut expected = ours.clone();
        expected.sort();
        assert_eq!(patients, expected);
        let responses = lines
            .iter()
            .filter(|(t, _)| t == "QuestionnaireResponse")
            .count();
        assert_eq!(responses, 2);
        // Standing alone, each line refers by Type/id, to this clinic's patients.
        for (_, resource) in &lines {
            let mut referred = Vec::new();
            references(resource, &mut referred);
            for r in referred {
                assert!(!r.starts_with("urn:"), "{r}");
                if let Some(p) = r.strip_prefix("Patient/") {
                    assert!(ours.iter().any(|o| o == p), "{r}");
                }
            }
        }
        // The download named each patient in the audit trail, once for each file showing them.
        let last = &ours[52];
        let mut files_showing: Vec<&str> = lines
            .iter()
            .filter(|(_, r)| r.to_string().contains(last.as_str()))
            .map(|(t, _)| t.as_str())
            .collect();
        files_showing.dedup();
        assert_eq!(
            files_showing,
            ["Patient", "QuestionnaireResponse", "Observation", "Consent"]
        );
        let audited = crate::helpers::eventually(
            || crate::helpers::audit_events(&app, last, Some("fhir_exported")),
            |n| *n >= 4,
        )
        .await;
        assert_eq!(audited, 4);

        // Another clinic cannot see it, read its files or cancel it; a patient or a researcher
        // cannot start one.
        let file = manifest["output"][0]["url"].as_str().unwrap().to_owned();
        let other = &lighthouse.access_token;
        for res in [
            app.client
                .get(&job)
                .bearer_auth(other)
                .send()
                .await
                .unwrap(),
            app.client
                .get(&file)
                .bearer_auth(other)
                .send()
                .await
                .unwrap(),
            app.client
                .delete(&job)
                .bearer_auth(other)
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(res.status(), 404);
            assert_eq!(res.headers()["content-type"], FHIR_JSON);
        }
        let phone = app.patient_app(&clinician, &ours[0]).await;
        let researcher = app.sign_in_new(&admin, "researcher", None).await;
        for who in [&phone, &researcher, &admin] {
            let res = app
                .client
                .get(app.url("/v1/fhir/$export"))
                .bearer_auth(&who.access_token)
                .header("prefer", "respond-async")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403);
        }
        // Cancelled, it is gone with its files.
        let res = app
            .client
            .delete(&job)
            .bearer_auth(&clinician.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        for url in [&job, &file] {
            let res = app
                .client
                .get(url)
                .bearer_auth(&clinician.access_token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 404, "{url}");
        }
        let res = app
            .client
            .delete(&job)
            .bearer_auth(&clinician.access_token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
);

api_test!(
    an_export_asks_for_types_and_changes_and_is_refused_without_prefer,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinician = app.clinic(&admin, "Harbour").await.clinician;
        let patient = app.new_patient(&clinician).await;
        app.phq9_answering(&clinician, &patient, 0).await;
        let (_, manifest) = exported(&app, &clinician, "?_type=Patient,Consent").await;
        let request = manifest["request"].as_str().unwrap();
        assert!(request.ends_with("?_type=Patient%2CConsent"), "{request}");
        let kinds: Vec<_> = manifest["output"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["type"].clone())
            .collect();
        assert_eq!(kinds, [json!("Patient"), json!("Consent")]);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let since = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let later = app.phq9_answering(&clinician, &patient, 1).await;
        let (_, manifest) = exported(
            &app,
            &clinician,
            &format!(
                "?_since={}&_outputFormat=application/fhir%2Bndjson",
                urlencode(&since.to_rfc3339())
            ),
        )
        .await;
        let lines = downloaded(&app, &clinician, &manifest).await;
        let responses: Vec<_> = lines
            .iter()
            .filter(|(t, _)| t == "QuestionnaireResponse")
            .map(|(_, r)| r["id"].clone())
            .collect();
        assert_eq!(responses, [json!(later)]);
        assert!(
            lines.iter().all(|(t, _)| t != "Patient"),
            "the patient did not change"
        );

        let start = |query: &'static str, prefer: bool| {
            let mut req = app
                .client
                .get(app.url(&format!("/v1/fhir/$export{query}")))
                .bearer_auth(&clinician.access_token);
            if prefer {
                req = req.header("prefer", "respond-async");
            }
            async move { req.send().await.unwrap() }
        };
        // One export of a clinic at a time: of two kick-offs at once, one starts and the
        // other is 429; a third while the first is written is 429 too.
        let (one, two) = tokio::join!(start("", true), start("", true));
        let mut statuses = [one.status().as_u16(), two.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [202, 429]);
        let third = start("", true).await;
        assert_eq!(third.status(), 429);
        assert!(third.headers().contains_key("retry-after"));
        for (res, status, field) in [
            (start("", false).await, 400, None),
            (start("?_type=Medication", true).await, 422, Some("_type")),
            (
                start("?_outputFormat=text/csv", true).await,
                422,
                Some("_outputFormat"),
            ),
            (start("?_since=last-week", true).await, 422, Some("_since")),
        ] {
            assert_eq!(res.status(), status);
            assert_eq!(res.headers()["content-type"], FHIR_JSON);
            let outcome: Value = res.json().await.unwrap();
            assert_eq!(outcome["resourceType"], "OperationOutcome");
            if let Some(field) = field {
                assert_eq!(outcome["issue"][0]["expression"][0], field, "{outcome}");
            }
        }
    }
);

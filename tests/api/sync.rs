//! Mobile-grade writes and reads (api.md, Conventions): idempotent creates, If-Match, sync with
//! `updated_since`, time ranges, corrections, invites, and the audit of every read and write.

use serde_json::{json, Value};

use crate::api_test;
use crate::fixtures::minutes_from_now;
use crate::helpers::problem;

api_test!(every_create_is_idempotent_by_client_id, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let token = clinic.clinician.access_token.clone();
    let patient_body = json!({"id": uuid::Uuid::new_v4(), "birth_year": 1975, "sex": "male", "indications": ["major_depression"]});
    let first = app.post_as("/v1/patients", &token, &patient_body).await;
    assert_eq!(first.status(), 201);
    let patient = first.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The create's answer is made from what it wrote, a retry's is read back: they must agree,
    // flags and crisis message included.
    let creates = [
        (
            "/v1/patients".to_owned(),
            patient_body.clone(),
            json!({"birth_year": 1976}),
        ),
        (
            format!("/v1/patients/{patient}/courses"),
            json!({"id": uuid::Uuid::new_v4(), "indication": "major_depression", "start_date": "2026-01-05"}),
            json!({"start_date": "2026-01-06"}),
        ),
        (
            format!("/v1/patients/{patient}/sessions"),
            json!({"id": uuid::Uuid::new_v4(), "route": "iv", "started_at": minutes_from_now(-300), "dose_mg_per_kg": 0.5, "weight_kg": 80}),
            json!({"weight_kg": 81}),
        ),
        (
            format!("/v1/patients/{patient}/assessments"),
            json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": minutes_from_now(-200), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]}),
            json!({"items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}),
        ),
        (
            format!("/v1/patients/{patient}/side-effects"),
            json!({"id": uuid::Uuid::new_v4(), "effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-250)}),
            json!({"severity": "moderate"}),
        ),
        (
            format!("/v1/patients/{patient}/sessions"),
            json!({"id": uuid::Uuid::new_v4(), "route": "iv", "started_at": minutes_from_now(-400), "dose_mg_per_kg": 0.5, "weight_kg": 80, "pre": {"systolic": 165, "diastolic": 90}, "readings": [{"minutes_after_start": 40, "systolic": 150, "diastolic": 110}]}),
            json!({"weight_kg": 81}),
        ),
        (
            format!("/v1/patients/{patient}/assessments"),
            json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9", "taken_at": minutes_from_now(-100), "items": [1, 1, 1, 1, 1, 1, 1, 1, 1]}),
            json!({"items": [1, 1, 1, 1, 1, 1, 1, 1, 2]}),
        ),
    ];
    for (path, body, change) in creates {
        let first = app.post_as(&path, &token, &body).await;
        let first_status = first.status().as_u16();
        let stored: Value = first.json().await.unwrap();
        assert!(matches!(first_status, 200 | 201), "{path}: {stored}");
        let flagged = body.get("pre").is_some() || body["items"][8] == 1;
        assert_eq!(
            stored["flags"].as_array().is_some_and(|f| !f.is_empty()),
            flagged,
            "{path}: {stored}"
        );
        assert_eq!(stored["crisis_message"].is_string(), body["items"][8] == 1);
        let again = app.post_as(&path, &token, &body).await;
        assert_eq!(
            again.status(),
            200,
            "{path}: a retry returns the stored record"
        );
        assert_eq!(again.json::<Value>().await.unwrap(), stored, "{path}");
        let mut changed = body.clone();
        for (k, v) in change.as_object().unwrap() {
            changed[k] = v.clone();
        }
        let (status, _, problem) = problem(app.post_as(&path, &token, &changed).await).await;
        assert_eq!(status, 409, "{path}: same id, different body");
        assert_eq!(problem["type"], "/problems/conflict");
    }
});

api_test!(
    fifty_offline_assessments_sent_twice_out_of_order_from_two_threads_make_fifty,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let phone = app.patient_app(&clinic.clinician, &patient).await;
        let bodies: Vec<Value> = (0..50)
        .map(|i| json!({"id": uuid::Uuid::new_v4(), "instrument": "daily_mood", "taken_at": minutes_from_now(-600 + i), "items": [i % 11]}))
        .collect();
        // Every body twice, shuffled deterministically, split across two concurrent senders.
        let mut sends: Vec<Value> = bodies.iter().chain(bodies.iter()).cloned().collect();
        let mut state = 0x2545_f491_u64;
        for i in (1..sends.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            sends.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (left, right) = sends.split_at(sends.len() / 2);
        let send_all = |part: Vec<Value>| {
            let (client, url, token) = (
                app.client.clone(),
                app.url("/v1/me/assessments"),
                phone.access_token.clone(),
            );
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for body in part {
                    statuses.push(
                        client
                            .post(&url)
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await
                            .unwrap()
                            .status()
                            .as_u16(),
                    );
                }
                statuses
            })
        };
        let (a, b) = (send_all(left.to_vec()), send_all(right.to_vec()));
        let statuses: Vec<u16> = a
            .await
            .unwrap()
            .into_iter()
            .chain(b.await.unwrap())
            .collect();
        assert!(
            statuses.iter().all(|s| matches!(s, 200 | 201)),
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            50,
            "each created exactly once"
        );
        let list: Value = app
            .get_as("/v1/me/assessments?limit=500", &phone.access_token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 50);
    }
);

api_test!(
    a_stale_if_match_is_412_and_changes_nothing,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let course = app
            .new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        let session = app
            .new_session(&clinic.clinician, &patient, &minutes_from_now(-120))
            .await;
        let side_effect: Value = app
        .post_as(&format!("/v1/patients/{patient}/side-effects"), token, &json!({"effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-100)}))
        .await
        .json()
        .await
        .unwrap();
        let cases = [
            (
                format!("/v1/patients/{patient}"),
                json!({"sex": "unknown"}),
                "sex",
            ),
            (
                format!("/v1/courses/{course}"),
                json!({"closed": true}),
                "closed",
            ),
            (
                format!("/v1/sessions/{session}"),
                json!({"charge_cents": 35000}),
                "charge_cents",
            ),
            (
                format!("/v1/side-effects/{}", side_effect["id"].as_str().unwrap()),
                json!({"severity": "moderate"}),
                "severity",
            ),
        ];
        for (path, change, field) in cases {
            let res = app.patch(&path, token, Some("\"1\""), &change).await;
            assert_eq!(res.status(), 200, "{path}");
            assert_eq!(res.headers()["etag"], "\"2\"");
            let changed: Value = res.json().await.unwrap();
            assert_eq!(changed[field], change[field], "{path}");
            let (status, _, body) =
                problem(app.patch(&path, token, Some("\"1\""), &json!({})).await).await;
            assert_eq!(status, 412, "{path}");
            assert_eq!(body["type"], "/problems/precondition-failed");
            let now: Value = app.get_as(&path, token).await.json().await.unwrap();
            assert_eq!(
                now["version"], 2,
                "{path}: the stale change changed nothing"
            );
        }
        let res = app
            .patch(
                &format!("/v1/sessions/{session}"),
                token,
                None,
                &json!({"dose_mg_per_kg": 9}),
            )
            .await;
        assert_eq!(
            res.status(),
            422,
            "a change is checked by the create's rules"
        );
        let res = app
            .patch(
                &format!("/v1/sessions/{session}"),
                token,
                None,
                &json!({"id": uuid::Uuid::new_v4()}),
            )
            .await;
        assert_eq!(res.status(), 422, "the id cannot change");
    }
);

api_test!(
    sync_returns_changes_and_corrections_and_ranges_filter_by_record_time,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let path = format!("/v1/patients/{patient}/assessments");
        let mut ids = Vec::new();
        for hours in [72, 48, 24] {
            let body = json!({"instrument": "phq9", "taken_at": minutes_from_now(-hours * 60), "items": [2, 2, 2, 2, 2, 2, 2, 2, 0]});
            ids.push(
                app.post_as(&path, token, &body)
                    .await
                    .json::<Value>()
                    .await
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let checkpoint = chrono::Utc::now();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let deleted = app
            .delete_as(
                &format!("/v1/assessments/{}", ids[0]),
                token,
                &json!({"reason": "wrong patient"}),
            )
            .await;
        assert_eq!(deleted.status(), 200);
        let deleted: Value = deleted.json().await.unwrap();
        assert_eq!(
            (
                deleted["deleted"].as_bool(),
                deleted["deleted_reason"].as_str()
            ),
            (Some(true), Some("wrong patient"))
        );

        let since = checkpoint
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B");
        let some = |v: &Value| v["items"].as_array().is_some_and(|i| !i.is_empty());
        let changes = app
            .synced(&format!("{path}?updated_since={since}"), token, some)
            .await;
        let changed: Vec<&str> = changes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            changed,
            [ids[0].as_str()],
            "only the correction changed since the checkpoint"
        );
        assert_eq!(changes["items"][0]["deleted"], true);

        let live: Value = app.get_as(&path, token).await.json().await.unwrap();
        let live: Vec<&str> = live["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            live,
            [ids[1].as_str(), ids[2].as_str()],
            "a correction leaves the live list, in time order"
        );

        let from = (chrono::Utc::now() - chrono::Duration::hours(36))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let recent: Value = app
            .get_as(&format!("{path}?from={from}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(recent["items"].as_array().unwrap().len(), 1);
        let (status, _, _) = problem(
            app.get_as(&format!("{path}?from={from}&to={from}"), token)
                .await,
        )
        .await;
        assert_eq!(status, 422, "an empty range is refused");

        let again = app
            .delete_as(
                &format!("/v1/assessments/{}", ids[0]),
                token,
                &json!({"reason": "again"}),
            )
            .await;
        assert_eq!(
            again.json::<Value>().await.unwrap()["deleted_reason"],
            "wrong patient",
            "a correction is made once"
        );
        let (status, _, _) = problem(
            app.delete_as(
                &format!("/v1/assessments/{}", ids[1]),
                token,
                &json!({"reason": " "}),
            )
            .await,
        )
        .await;
        assert_eq!(status, 422, "a correction needs a reason");
    }
);

api_test!(
    pages_of_a_patients_records_follow_a_stable_cursor,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        app.new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        let mut expected = Vec::new();
        for i in 0..5 {
            expected.push(
                app.new_session(
                    &clinic.clinician,
                    &patient,
                    &minutes_from_now(-1000 + i * 60),
                )
                .await,
            );
            let body = json!({"instrument": "daily_mood", "taken_at": minutes_from_now(-990 + i * 60), "items": [5]});
            expected.push(
                app.post_as(&format!("/v1/patients/{patient}/assessments"), token, &body)
                    .await
                    .json::<Value>()
                    .await
                    .unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let mut seen = Vec::new();
        let mut path = format!("/v1/patients/{patient}/timeline?limit=3");
        loop {
            let page: Value = app.get_as(&path, token).await.json().await.unwrap();
            for entry in page["items"].as_array().unwrap() {
                let kind = entry["kind"].as_str().unwrap();
                seen.push(entry[kind]["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/v1/patients/{patient}/timeline?limit=3&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(
            seen, expected,
            "sessions and assessments interleaved in time order, each once"
        );
    }
);

api_test!(invites_are_single_use, |app| async move {
    let admin = app.sign_in_admin().await;
    let clinic = app.clinic(&admin, "Harbour").await;
    let patient = app.new_patient(&clinic.clinician).await;
    let invite: Value = app
        .post_as(
            &format!("/v1/patients/{patient}/invites"),
            &clinic.clinician.access_token,
            &json!(null),
        )
        .await
        .json()
        .await
        .unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        invite["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - chrono::Utc::now()).num_hours();
    assert!((167..=168).contains(&days), "valid for 7 days: {days} h");
    let register = |email: &str| json!({"invite_code": invite["invite_code"], "email": email, "password": crate::helpers::PASSWORD});
    assert_eq!(
        app.post("/v1/auth/register", None, &register("sam@example.org"))
            .await
            .status(),
        201
    );
    let (status, _, body) = problem(
        app.post("/v1/auth/register", None, &register("sam2@example.org"))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "invite_code");
    let (status, _, body) = problem(
        app.post(
            "/v1/auth/register",
            None,
            &json!({"invite_code": "nope", "email": "x@example.org", "password": "short"}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("password"))
    );
});

api_test!(
    every_read_and_write_of_a_record_is_audited_with_its_actor,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        app.get_as(
            &format!("/v1/patients/{patient}"),
            &clinic.clinician.access_token,
        )
        .await;
        app.new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        let session = app
            .new_session(&clinic.clinician, &patient, &minutes_from_now(-60))
            .await;
        let phone = app.patient_app(&clinic.clinician, &patient).await;
        app.get_as(&format!("/v1/sessions/{session}"), &phone.access_token)
            .await;
        app.get_as("/v1/me/assessments", &phone.access_token).await;

        let trail: Value = app
            .get_as(
                &format!("/v1/audit-events?patient_id={patient}&limit=500"),
                &admin.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let events: Vec<(String, String)> = trail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_owned(),
                    e["actor_role"].as_str().unwrap_or("-").to_owned(),
                )
            })
            .collect();
        let expected = [
            ("patient_created", "clinician"),
            ("patient_read", "clinician"),
            ("course_created", "clinician"),
            ("session_created", "clinician"),
            ("invite_created", "clinician"),
            ("patient_registered", "patient"),
            ("session_read", "patient"),
            ("assessments_listed", "patient"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, r)| (a.to_string(), r.to_string()))
            .collect();
        assert_eq!(events, expected);
    }
);

api_test!(
    patients_and_courses_sync_and_filter_by_time_too,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let first = app.new_patient(&clinic.clinician).await;
        let second = app.new_patient(&clinic.clinician).await;
        let course = app
            .new_course(&clinic.clinician, &second, "2026-01-05")
            .await;
        let checkpoint = chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .replace('+', "%2B");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.patch(
            &format!("/v1/patients/{first}"),
            token,
            None,
            &json!({"sex": "unknown"}),
        )
        .await;
        let some = |v: &Value| v["items"].as_array().is_some_and(|i| !i.is_empty());
        let changed = app
            .synced(
                &format!("/v1/patients?updated_since={checkpoint}"),
                token,
                some,
            )
            .await;
        let ids: Vec<&str> = changed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [first.as_str()]);
        let later: Value = app
            .get_as(&format!("/v1/patients?from={checkpoint}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert!(
            later["items"].as_array().unwrap().is_empty(),
            "both were registered before the checkpoint"
        );
        let courses: Value = app
            .get_as(
                &format!("/v1/patients/{second}/courses?updated_since={checkpoint}"),
                token,
            )
            .await
            .json()
            .await
            .unwrap();
        assert!(courses["items"].as_array().unwrap().is_empty());
        app.patch(
            &format!("/v1/courses/{course}"),
            token,
            None,
            &json!({"closed": true}),
        )
        .await;
        let courses = app
            .synced(
                &format!("/v1/patients/{second}/courses?updated_since={checkpoint}"),
                token,
                some,
            )
            .await;
        assert_eq!(courses["items"][0]["id"], course.as_str());
    }
);

// issue 14: every changeable record's read sends its version as a strong ETag, and a change
// compares If-Match strongly (RFC 9110 §13.1.1): the current tag or `*` is accepted, a weak
// tag never matches (412), and the change answers with the new tag.
api_test!(
    every_changeable_read_sends_an_etag_and_if_match_is_strong,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let doc = clinic.clinician.clone();
        let patient = app.new_patient(&doc).await;
        let course = app
            .new_course(&doc, &patient, &chrono::Utc::now().date_naive().to_string())
            .await;
        let session = app
            .new_session(&doc, &patient, &minutes_from_now(-120))
            .await;
        let effect = json!({"session_id": session, "effect": "nausea", "severity": "mild",
            "onset_at": minutes_from_now(-60)});
        let effect: Value = app
            .post_as(
                &format!("/v1/patients/{patient}/side-effects"),
                &doc.access_token,
                &effect,
            )
            .await
            .json()
            .await
            .unwrap();
        let effect = effect["id"].as_str().unwrap().to_owned();
        app.patient_app(&doc, &patient).await;
        let account_of_doc = doc.user_id.clone();
        let records = [
            (
                format!("/v1/patients/{patient}"),
                doc.access_token.clone(),
                json!({"research_consent": false}),
            ),
            (
                format!("/v1/courses/{course}"),
                doc.access_token.clone(),
                json!({"closed": true}),
            ),
            (
                format!("/v1/sessions/{session}"),
                doc.access_token.clone(),
                json!({"weight_kg": 71.0}),
            ),
            (
                format!("/v1/side-effects/{effect}"),
                doc.access_token.clone(),
                json!({"severity": "moderate"}),
            ),
            (
                format!("/v1/patients/{patient}/account"),
                doc.access_token.clone(),
                json!({"disabled": true}),
            ),
            (
                format!("/v1/users/{account_of_doc}"),
                admin.access_token.clone(),
                json!({"disabled": false}),
            ),
        ];
        for (path, token, change) in records {
            let res = app.get_as(&path, &token).await;
            assert_eq!(res.status(), 200, "{path}");
            let tag = res.headers()["etag"].to_str().unwrap().to_owned();
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                tag,
                format!("\"{}\"", body["version"]),
                "{path}: the tag is the version"
            );
            let weak = format!("W/{tag}");
            let (status, _, _) =
                problem(app.patch(&path, &token, Some(&weak), &change).await).await;
            assert_eq!(status, 412, "{path}: a weak tag never matches");
            let res = app.patch(&path, &token, Some(&tag), &change).await;
            assert_eq!(res.status(), 200, "{path}");
            let next = res.headers()["etag"].to_str().unwrap().to_owned();
            assert_ne!(next, tag, "{path}: the change has a new tag");
            let res = app.patch(&path, &token, Some(&tag), &change).await;
            assert_eq!(res.status(), 412, "{path}: the old tag is stale");
            let res = app.patch(&path, &token, Some("*"), &change).await;
            assert_eq!(res.status(), 200, "{path}: * matches the current version");
        }
    }
);

// issue 15 (3): a merge patch sent as `application/merge-patch+json` (RFC 7396's media type,
// which the contract offers) is accepted as JSON is: the patient's app marks a side effect
// resolved, and a null clears it again.
api_test!(
    a_merge_patch_is_accepted_under_its_own_media_type,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        app.new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        app.new_session(&clinic.clinician, &patient, &minutes_from_now(-120))
            .await;
        let phone = app.patient_app(&clinic.clinician, &patient).await;
        let reported: Value = app
            .post_as("/v1/me/side-effects", &phone.access_token, &json!({"effect": "nausea", "severity": "mild", "onset_at": minutes_from_now(-100)}))
            .await
            .json()
            .await
            .unwrap();
        let path = format!("/v1/side-effects/{}", reported["id"].as_str().unwrap());
        let send = |body: Value| {
            app.client
                .patch(app.url(&path))
                .bearer_auth(&phone.access_token)
                .header("content-type", "application/merge-patch+json")
                .body(body.to_string())
                .send()
        };
        let resolved = minutes_from_now(-10);
        let res = send(json!({"resolved_at": resolved})).await.unwrap();
        assert_eq!(res.status(), 200);
        let changed: Value = res.json().await.unwrap();
        assert!(!changed["resolved_at"].is_null(), "{changed}");
        let res = send(json!({"resolved_at": null})).await.unwrap();
        assert_eq!(res.status(), 200);
        let cleared: Value = res.json().await.unwrap();
        assert!(cleared["resolved_at"].is_null(), "{cleared}");
        assert_eq!(cleared["version"], 3);
    }
);

/// `sync_from` asked again until `settled` holds of what it returned (see `TestApp::synced`).
async fn sync_until(
    app: &crate::helpers::TestApp,
    path: &str,
    token: &str,
    since: &str,
    settled: impl Fn(&[String]) -> bool,
) -> (Vec<String>, String) {
    let ask = || sync_from(app, path, token, since, false);
    crate::helpers::eventually(ask, |(seen, _)| settled(seen)).await
}

/// Every change a sync from `since` returns, following its pages, and where to sync on from;
/// with `one_page`, only the first page of one record, as a phone cut off after it has.
async fn sync_from(
    app: &crate::helpers::TestApp,
    path: &str,
    token: &str,
    since: &str,
    one_page: bool,
) -> (Vec<String>, String) {
    let (mut ids, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut query = vec![("updated_since", since.to_owned())];
        if one_page {
            query.push(("limit", "1".to_owned()));
        }
        query.extend(cursor.clone().map(|c| ("cursor", c)));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query)
            .finish();
        let res = app.get_as(&format!("{path}?{query}"), token).await;
        let page: Value = res.json().await.unwrap();
        let items = page["items"].as_array().unwrap_or_else(|| panic!("{page}"));
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() || one_page {
            return (ids, page["sync_cursor"].as_str().unwrap().to_owned());
        }
    }
}

// issue 16 (5), issue 15 (12): a write that started first but commits last still reaches a
// phone that synced in between. Here the first assessment is changed on a connection of its
// own — stamped with the instant it began — and held open while two more assessments are
// recorded and the phone syncs one page. On PostgreSQL those commit first (the old order by
// `updated_at` then put the phone past the first's change for good, and a page's cursor past
// a change still in flight would too); on SQLite they wait for the one writer. Either way,
// once all have committed, the phone has all three.
api_test!(
    a_write_that_commits_last_still_reaches_a_phone_that_synced_past_its_start,
    |app| async move {
        use diesel::prelude::*;
        use ketamine_outcomes::store::schema::assessments;
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let list = format!("/v1/patients/{patient}/assessments");
        let phq9 = |n: i64| {
            json!({"id": uuid::Uuid::new_v4(), "instrument": "phq9",
                "taken_at": minutes_from_now(-100 + n), "items": [1, 1, 1, 1, 1, 1, 1, 1, n]})
        };
        let first = app.post_as(&list, &token, &phq9(0)).await;
        let first = first.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let since = minutes_from_now(-60);
        let (seen, cursor) = sync_until(&app, &list, &token, &since, |seen| !seen.is_empty()).await;
        assert_eq!(seen, std::slice::from_ref(&first));

        let began = chrono::Utc::now().naive_utc();
        let url = app.settings.database_url.connection_string();
        let (held, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let (held_tx, held_rx) = held;
        let (release_tx, release_rx) = release;
        let changed = first.clone();
        let writer = std::thread::spawn(move || {
            let mut conn = ketamine_outcomes::store::DbConnection::establish(&url).unwrap();
            conn.transaction::<_, diesel::result::Error, _>(|conn| {
                diesel::update(assessments::table.filter(assessments::id.eq(&changed)))
                    .set(assessments::updated_at.eq(began))
                    .execute(conn)?;
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
            .unwrap();
        });
        held_rx.recv().unwrap();
        let postgres = matches!(
            app.settings.database_url,
            ketamine_outcomes::config::DatabaseUrl::Postgres(_)
        );
        // SQLite's one writer lock is held: the second create waits for the release.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(if postgres {
                0
            } else {
                1500
            }));
            if !postgres {
                release_tx.send(()).unwrap();
            }
            release_tx
        });
        let mut recorded = Vec::new();
        for n in 1..=2 {
            let later = app.post_as(&list, &token, &phq9(n)).await;
            assert_eq!(later.status(), 201);
            let later = later.json::<Value>().await.unwrap();
            recorded.push(later["id"].as_str().unwrap().to_owned());
        }
        // The phone syncs one page and is cut off: it keeps that page's sync cursor.
        let (mut seen, mut cursor) = sync_from(&app, &list, &token, &cursor, true).await;
        let release_tx = releaser.join().unwrap();
        if postgres {
            // The others committed while the first change is in flight: the phone is not
            // moved past the first change's place.
            assert!(!seen.contains(&first), "{seen:?}");
            release_tx.send(()).unwrap();
        }
        writer.join().unwrap();
        let everything = |later: &[String]| {
            let all: Vec<&String> = seen.iter().chain(later).collect();
            all.contains(&&first) && recorded.iter().all(|id| all.contains(&id))
        };
        let (later, next) = sync_until(&app, &list, &token, &cursor, everything).await;
        seen.extend(later);
        cursor = next;
        assert!(
            seen.contains(&first),
            "the change that committed last: {seen:?}"
        );
        assert!(recorded.iter().all(|id| seen.contains(id)), "{seen:?}");
        // And a sync from where the phone now stands has nothing more.
        let (after, _) = sync_from(&app, &list, &token, &cursor, false).await;
        assert!(after.is_empty(), "{after:?}");
    }
);

// issue 16 (4, 5): a flag raised after a record was synced — by the sweep, as time passes — and
// its acknowledgement reach the phone with the record at its next sync: a flag marks its record
// changed.
api_test!(
    a_flag_raised_or_acknowledged_later_reaches_the_phone_with_its_record,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = clinic.clinician.access_token.clone();
        let patient = app.new_patient(&clinic.clinician).await;
        let start = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
        app.new_course(&clinic.clinician, &patient, &start.to_string())
            .await;
        let given = (chrono::Utc::now() - chrono::Duration::hours(6)).to_rfc3339();
        app.new_session(&clinic.clinician, &patient, &given).await;
        let list = format!("/v1/patients/{patient}/side-effects");
        // Dissociation lasts 4 h at most; this one, unresolved, reaches that 5 s from now — after
        // the first sync below, so that the flag comes after the phone has the record.
        let onset = (chrono::Utc::now() - chrono::Duration::hours(4)
            + chrono::Duration::seconds(5))
        .to_rfc3339();
        let body = json!({"effect": "dissociation", "severity": "mild", "onset_at": onset});
        let effect = app.post_as(&list, &token, &body).await;
        assert_eq!(effect.status(), 201);
        let effect = effect.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let first = |seen: &[String]| !seen.is_empty();
        let (_, cursor) = sync_until(&app, &list, &token, &minutes_from_now(-60), first).await;

        // The sweep raises the persistent-side-effect flag; the next sync brings the record.
        let app = &app;
        let sync_page = |cursor: String| {
            let (list, token) = (list.clone(), token.clone());
            async move {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("updated_since", &cursor)
                    .finish();
                let page = app.get_as(&format!("{list}?{query}"), &token).await;
                page.json::<Value>().await.unwrap()
            }
        };
        let flagged = |page: &Value| {
            page["items"][0]["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["kind"] == "persistent_side_effect"))
        };
        let page = crate::helpers::eventually(|| sync_page(cursor.clone()), flagged).await;
        assert_eq!(page["items"][0]["id"], effect.as_str(), "{page}");
        assert!(flagged(&page), "{page}");
        let flag = page["items"][0]["flags"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let cursor = page["sync_cursor"].as_str().unwrap().to_owned();

        // A clinician acknowledges it; the next sync brings the record with the flag as it is.
        let done = app
            .post_as(
                &format!("/v1/flags/{flag}/acknowledge"),
                &token,
                &json!({"note": "called the patient; resolving"}),
            )
            .await;
        assert_eq!(done.status(), 200);
        let acknowledged = |page: &Value| page["items"][0]["flags"][0]["status"] == "acknowledged";
        let page = crate::helpers::eventually(|| sync_page(cursor.clone()), acknowledged).await;
        assert!(acknowledged(&page), "{page}");
    }
);

// A sync cursor ahead of the database — as every phone's is once the database is restored from
// a backup — is refused, so the phone syncs again from the start instead of skipping every
// change below its old place.
api_test!(
    a_sync_cursor_ahead_of_the_database_is_refused_not_followed,
    |app| async move {
        use base64::Engine;
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let ahead = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1099511627776|");
        let path = format!("/v1/patients/{patient}/sessions?updated_since=sync-{ahead}");
        let (status, _, problem) =
            problem(app.get_as(&path, &clinic.clinician.access_token).await).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "updated_since", "{problem}");
    }
);

// `updated_since` at its edges: control characters, a forged cursor with a bad id, the far ends
// of time, a cursor of no known shape — each a 422 naming it, none a 500.
api_test!(
    updated_since_at_its_edges_is_refused_by_name,
    |app| async move {
        use base64::Engine;
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("5|a\u{0}b");
        for since in [
            "%00".to_owned(),
            "2026-01-01T00:00:00Z%0A".to_owned(),
            format!("sync-{forged}"),
            "sync-!!".to_owned(),
            "0001-01-01T00:00:00Z".to_owned(),
            "9999-12-31T23:59:59Z".to_owned(),
        ] {
            let path = format!("/v1/patients/{patient}/assessments?updated_since={since}");
            let (status, _, problem) =
                problem(app.get_as(&path, &clinic.clinician.access_token).await).await;
            assert_eq!(status, 422, "{since}: {problem}");
            assert_eq!(
                problem["errors"][0]["field"], "updated_since",
                "{since}: {problem}"
            );
        }
    }
);

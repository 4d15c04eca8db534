//! Webhooks (api.md, Notifications; issue 17): endpoints a clinic's administrators manage,
//! and every event that commits posted to them at least once, signed by the Standard
//! Webhooks specification (checked with its reference library), in commit order per patient,
//! through failures, slowness and a receiver that is down — never an event of a write that
//! rolled back, and never to an address production refuses.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};

use crate::api_test;
use crate::helpers::{eventually, problem, Session, TestApp};
use crate::receiver::{Behaviour, Receiver};

const ALL_EVENTS: [&str; 6] = [
    "flag.raised",
    "flag.acknowledged",
    "flag.escalated",
    "assessment.created",
    "session.created",
    "side_effect.created",
];

/// A clinic, its clinician, and the clinic's webhooks path.
struct Clinic {
    id: String,
    clinician: Session,
    webhooks: String,
}

async fn clinic(app: &TestApp, admin: &Session, name: &str) -> Clinic {
    let id = app.create_clinic(admin, name).await;
    let clinician = app.sign_in_new(admin, "clinician", Some(&id)).await;
    let webhooks = format!("/v1/clinics/{id}/webhooks");
    Clinic {
        id,
        clinician,
        webhooks,
    }
}

/// Creates an endpoint at `url` for `events`: its id and secret.
async fn endpoint(
    app: &TestApp,
    admin: &Session,
    clinic: &Clinic,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let res = app
        .post_as(
            &clinic.webhooks,
            &admin.access_token,
            &json!({"url": url, "events": events}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    (
        body["webhook"]["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// The endpoint's delivery log.
async fn deliveries(app: &TestApp, admin: &Session, clinic: &Clinic, webhook: &str) -> Value {
    let res = app
        .get_as(
            &format!("{}/{webhook}/deliveries?limit=500", clinic.webhooks),
            &admin.access_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["items"].clone()
}

/// The clinic's events in the outbox, (id, patient, record id) in position order, once
/// `expected` of them are below the sync horizon (which waits for the cluster's other
/// transactions: [`eventually`]).
async fn told(app: &TestApp, clinic: &str, expected: usize) -> Vec<(String, String, String)> {
    use ketamine_outcomes::store::{outbox, Position};
    let clinic: ketamine_outcomes::domain::ids::ClinicId = clinic.parse().unwrap();
    let db = app.database();
    let below_horizon = || async {
        db.snapshot(move |conn| {
            let start = Position {
                change_seq: 0,
                id: None,
            };
            outbox::of_clinic_after(conn, clinic, &start, 1000)
        })
        .await
        .unwrap()
        .0
    };
    eventually(below_horizon, |rows| rows.len() >= expected)
        .await
        .into_iter()
        .map(|row| {
            let body: Value = serde_json::from_str(&row.payload).unwrap();
            (
                row.id.to_string(),
                row.patient_id.to_string(),
                body["data"]["record_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until `receiver` has answered 2xx to each of `ids` ([`eventually`]'s time).
async fn all_delivered(receiver: &Receiver, ids: &[String]) {
    let answered = || async {
        receiver
            .received()
            .iter()
            .filter(|r| r.answered < 300)
            .map(|r| r.webhook_id())
            .collect::<Vec<String>>()
    };
    let every = |answered: &Vec<String>| ids.iter().all(|id| answered.contains(id));
    assert!(
        every(&eventually(answered, every).await),
        "not every event was delivered: {ids:?} vs {:?}",
        receiver.received()
    );
}

api_test!(
    administrators_manage_endpoints_and_the_clinics_clinicians_read_them,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        let ridge = clinic(&app, &admin, "Ridge").await;
        let body = json!({"url": "http://127.0.0.1:9/hooks/T0KEN", "description": "Pager",
            "events": ["flag.raised", "flag.escalated"], "flag_levels": ["urgent"]});

        // Clinicians read; they do not create.
        let res = app
            .post_as(&harbour.webhooks, &harbour.clinician.access_token, &body)
            .await;
        assert_eq!(res.status(), 403);
        let res = app
            .post_as(&harbour.webhooks, &admin.access_token, &body)
            .await;
        assert_eq!(res.status(), 201);
        let made: Value = res.json().await.unwrap();
        let secret = made["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{secret}");
        let id = made["webhook"]["id"].as_str().unwrap().to_owned();
        assert_eq!(made["webhook"]["flag_levels"], json!(["urgent"]));
        assert_eq!(made["webhook"]["enabled"], true);
        let one = format!("{}/{id}", harbour.webhooks);

        // The secret is shown once: no read shows it, to anyone.
        for token in [&admin.access_token, &harbour.clinician.access_token] {
            let res = app.get_as(&one, token).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.headers()["etag"], "\"1\"");
            let text = res.text().await.unwrap();
            assert!(
                !text.contains(&secret) && !text.contains("whsec_"),
                "{text}"
            );
            let res = app.get_as(&harbour.webhooks, token).await;
            let text = res.text().await.unwrap();
            assert!(text.contains(&id) && !text.contains("whsec_"), "{text}");
        }
        // The clinicians see where it posts, not the URL, which may carry a token.
        let seen = app.get_as(&one, &harbour.clinician.access_token).await;
        let seen: Value = seen.json().await.unwrap();
        assert_eq!(seen["url"], "http://127.0.0.1:9/…");
        let managed = app.get_as(&one, &admin.access_token).await;
        let managed: Value = managed.json().await.unwrap();
        assert_eq!(managed["url"], "http://127.0.0.1:9/hooks/T0KEN");
        // Another clinic's clinician finds nothing, and the path under their own clinic
        // does not reach it either.
        let res = app.get_as(&one, &ridge.clinician.access_token).await;
        assert_eq!(res.status(), 404);
        let res = app
            .get_as(&format!("{}/{id}", ridge.webhooks), &admin.access_token)
            .await;
        assert_eq!(res.status(), 404);
        let res = app
            .get_as(
                &format!("{}/deliveries", one),
                &harbour.clinician.access_token,
            )
            .await;
        assert_eq!(res.status(), 403, "the delivery log is the administrators'");

        // A change needs the version; a stale one is refused.
        let change = json!({"events": ["flag.raised"], "enabled": false});
        let res = app
            .patch(&one, &admin.access_token, Some("\"7\""), &change)
            .await;
        assert_eq!(res.status(), 412);
        let res = app
            .patch(&one, &admin.access_token, Some("\"1\""), &change)
            .await;
        assert_eq!(res.status(), 200);
        let changed: Value = res.json().await.unwrap();
        assert_eq!(changed["events"], json!(["flag.raised"]));
        assert_eq!(changed["enabled"], false);
        assert_eq!(changed["disabled_reason"], "disabled by an administrator");
        assert_eq!(changed["version"], 2);

        // A rotation shows a new secret; the old one signs beside it for a day.
        let res = app
            .post_as(
                &format!("{one}/rotate-secret"),
                &admin.access_token,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let rotated: Value = res.json().await.unwrap();
        let new_secret = rotated["secret"].as_str().unwrap();
        assert!(new_secret.starts_with("whsec_") && new_secret != secret);
        assert!(rotated["webhook"]["previous_secret_until"].is_string());
        let res = app
            .post_as(
                &format!("{one}/rotate-secret"),
                &harbour.clinician.access_token,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 403);

        let res = app
            .delete_as(&one, &harbour.clinician.access_token, &json!(null))
            .await;
        assert_eq!(res.status(), 403);
        let res = app.delete_as(&one, &admin.access_token, &json!(null)).await;
        assert_eq!(res.status(), 204);
        assert_eq!(app.get_as(&one, &admin.access_token).await.status(), 404);
        let res = app
            .post_as(
                &format!("/v1/clinics/{}/webhooks", uuid::Uuid::new_v4()),
                &admin.access_token,
                &body,
            )
            .await;
        assert_eq!(
            res.status(),
            404,
            "no endpoint for a clinic that does not exist"
        );
        let _ = ridge.id;
    }
);

api_test!(
    a_bad_endpoint_is_refused_naming_each_field,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        let cases = [
            (
                json!({"url": "ftp://127.0.0.1/", "events": []}),
                vec!["url", "events"],
            ),
            (
                json!({"url": "http://user:pw@127.0.0.1/", "events": ["session.created"],
                    "flag_levels": ["urgent"]}),
                vec!["url", "flag_levels"],
            ),
            (
                json!({"url": "http://127.0.0.1/\u{7}", "description": "a\u{1b}b",
                    "events": ["flag.raised", "flag.raised"]}),
                vec!["url", "description", "events"],
            ),
        ];
        for (body, fields) in cases {
            let res = app
                .post_as(&harbour.webhooks, &admin.access_token, &body)
                .await;
            let (status, content_type, problem) = problem(res).await;
            assert_eq!(status, 422, "{body}: {problem}");
            assert_eq!(content_type, "application/problem+json");
            let named: Vec<&str> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap())
                .collect();
            for field in fields {
                assert!(named.contains(&field), "{body}: {field} not in {named:?}");
            }
        }
        let res = app
            .post_as(
                &harbour.webhooks,
                &admin.access_token,
                &json!({"url": "http://127.0.0.1/", "events": ["flag.exploded"]}),
            )
            .await;
        assert_eq!(res.status(), 422);
        let listed = app.get_as(&harbour.webhooks, &admin.access_token).await;
        let listed: Value = listed.json().await.unwrap();
        assert_eq!(listed["items"], json!([]), "nothing was made");
    }
);

/// A production deployment whose webhooks may post to public addresses only.
const PRODUCTION: &[(&str, &str)] = &[
    ("KO_PRODUCTION", "true"),
    ("KO_WEBHOOK_EGRESS", "public"),
    (
        "KO_JWT_SECRET",
        "dGhpcnR5LXR3by1ieXRlcy1vZi10ZXN0LXNpZ25pbmcta2V5IQ==",
    ),
];

api_test!(
    production_refuses_urls_that_reach_inside_the_network,
    overrides = PRODUCTION,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        // Addresses written out, so no name is resolved and nothing is connected to.
        let cases = [
            ("http://93.184.216.34/hooks", "https"),
            ("https://127.0.0.1/hooks", "loopback"),
            ("https://169.254.169.254/latest/meta-data/", "link-local"),
            ("https://10.0.0.1/hooks", "private"),
            ("https://[::1]/hooks", "loopback"),
            ("https://[fd00::1]/hooks", "unique local"),
            ("https://[::ffff:169.254.169.254]/", "link-local"),
        ];
        for (url, why) in cases {
            let res = app
                .post_as(
                    &harbour.webhooks,
                    &admin.access_token,
                    &json!({"url": url, "events": ["flag.raised"]}),
                )
                .await;
            let (status, _, problem) = problem(res).await;
            assert_eq!(status, 422, "{url}");
            let error = &problem["errors"][0];
            assert_eq!(error["field"], "url");
            assert!(
                error["message"].as_str().unwrap().contains(why),
                "{url}: {problem}"
            );
        }
    }
);

api_test!(
    a_refused_administrator_has_no_webhook_host_looked_up,
    overrides = PRODUCTION,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        let signed_out = app.sign_in_new(&admin, "admin", None).await;
        let res = app
            .post_as(
                "/v1/me/sign-out-everywhere",
                &signed_out.access_token,
                &json!(null),
            )
            .await;
        assert_eq!(res.status(), 204);
        // A name the machine resolves itself (its hosts file): what it resolves to is refused.
        let hook = json!({"url": "https://localhost/hooks", "events": ["flag.raised"]});
        let (status, _, said) = problem(
            app.post_as(&harbour.webhooks, &admin.access_token, &hook)
                .await,
        )
        .await;
        assert_eq!(
            status, 422,
            "an admitted administrator learns where it resolves"
        );
        assert!(said["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("loopback"));
        // A revoked token is refused before the name is looked up: it cannot map the network.
        let (status, _, said) = problem(
            app.post_as(&harbour.webhooks, &signed_out.access_token, &hook)
                .await,
        )
        .await;
        assert_eq!(status, 401, "{said}");
    }
);

api_test!(
    every_committed_event_is_delivered_signed_in_commit_order_through_failures,
    overrides = &[("KO_WEBHOOK_RETRY_SECONDS", "0,1,1,1,1,1,1,1")],
    |app| async move {
        use ketamine_outcomes::domain::events::EventBody;
        use ketamine_outcomes::domain::flags::FlaggedRecord;
        use ketamine_outcomes::domain::ids::PatientId;
        use ketamine_outcomes::store::{outbox, StoreError};

        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        let ridge = clinic(&app, &admin, "Ridge").await;
        // The first three posts fail, whichever events they carry.
        let receiver = Receiver::start(Behaviour {
            fail_first: 3,
            ..Behaviour::HEALTHY
        })
        .await;
        let (webhook, secret) =
            endpoint(&app, &admin, &harbour, &receiver.url(), &ALL_EVENTS).await;

        let ana = app.new_patient(&harbour.clinician).await;
        let ben = app.new_patient(&harbour.clinician).await;
        let elsewhere = app.new_patient(&ridge.clinician).await;
        app.phq9_answering(&harbour.clinician, &ana, 1).await;
        app.phq9_answering(&harbour.clinician, &ben, 0).await;
        app.phq9_answering(&ridge.clinician, &elsewhere, 1).await;
        app.phq9_answering(&harbour.clinician, &ana, 0).await;
        app.phq9_answering(&harbour.clinician, &ben, 2).await;
        // A write that rolls back tells nothing; the one that commits is told.
        let patient: PatientId = ana.parse().unwrap();
        let event = |record| {
            EventBody::created(FlaggedRecord::Session, record, patient, Utc::now()).unwrap()
        };
        let (rolled_back, committed) = (event("rolled-back"), event("committed"));
        let failed: Result<(), StoreError> = app
            .database()
            .transaction(move |conn| {
                outbox::tell(conn, &rolled_back)?;
                Err(StoreError::Conflict)
            })
            .await;
        assert!(failed.is_err());
        app.database()
            .transaction(move |conn| outbox::tell(conn, &committed))
            .await
            .unwrap();

        let events = told(&app, &harbour.id, 7).await;
        assert_eq!(events.len(), 7, "{events:?}");
        let ids: Vec<String> = events.iter().map(|(id, _, _)| id.clone()).collect();
        all_delivered(&receiver, &ids).await;
        let received = receiver.received();

        // Signed: every post, failed or not, verifies with the reference implementation.
        for post in &received {
            assert!(post.verifies_with(&secret), "{post:?}");
            assert!(!post.verifies_with("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"));
            let body = post.json();
            assert!(
                ALL_EVENTS.contains(&body["type"].as_str().unwrap()),
                "{body}"
            );
            assert_ne!(
                body["data"]["patient_id"],
                elsewhere.as_str(),
                "another clinic's"
            );
            assert_ne!(body["data"]["record_id"], "rolled-back");
        }
        assert_eq!(received.iter().filter(|r| r.answered == 503).count(), 3);
        // In commit order per patient: each patient's events were first accepted in the
        // order they committed, and none was posted before an earlier one was accepted.
        for patient in [&ana, &ben] {
            let committed: Vec<&String> = events
                .iter()
                .filter(|(_, p, _)| p == patient)
                .map(|(id, _, _)| id)
                .collect();
            let mut posted: Vec<String> = Vec::new();
            for post in received
                .iter()
                .filter(|r| r.json()["data"]["patient_id"] == patient.as_str())
            {
                if posted.last() != Some(&post.webhook_id()) {
                    posted.push(post.webhook_id());
                }
            }
            let posted: Vec<&String> = posted.iter().collect();
            assert_eq!(posted, committed, "{patient}");
        }

        // The log shows each attempt: the failures with their status code.
        let log = deliveries(&app, &admin, &harbour, &webhook).await;
        let log = log.as_array().unwrap();
        assert_eq!(log.len(), 7);
        assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");
        let codes: Vec<i64> = log
            .iter()
            .flat_map(|d| d["attempts"].as_array().unwrap().clone())
            .map(|a| a["status_code"].as_i64().unwrap())
            .collect();
        assert_eq!(codes.iter().filter(|c| **c == 503).count(), 3, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 204).count(), 7, "{codes:?}");
        let by_id: HashMap<&str, &Value> = log
            .iter()
            .map(|d| (d["webhook_id"].as_str().unwrap(), d))
            .collect();
        for post in &received {
            assert!(
                by_id.contains_key(post.webhook_id().as_str()),
                "the same webhook-id on every attempt"
            );
        }
    }
);

api_test!(
    an_endpoint_that_fails_every_attempt_is_disabled_and_a_replay_delivers_it_later,
    overrides = &[("KO_WEBHOOK_RETRY_SECONDS", "0,0,0")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        let receiver = Receiver::start(Behaviour {
            status: 500,
            ..Behaviour::HEALTHY
        })
        .await;
        let (webhook, secret) = endpoint(
            &app,
            &admin,
            &harbour,
            &receiver.url(),
            &["assessment.created"],
        )
        .await;
        let patient = app.new_patient(&harbour.clinician).await;
        let assessment = app.phq9_answering(&harbour.clinician, &patient, 0).await;
        let one = format!("{}/{webhook}", harbour.webhooks);
        let disabled = eventually(
            || async {
                let res = app.get_as(&one, &admin.access_token).await;
                res.json::<Value>().await.unwrap()
            },
            |endpoint| endpoint["enabled"] == false,
        )
        .await;
        assert_eq!(disabled["enabled"], false, "{disabled}");
        let reason = disabled["disabled_reason"].as_str().unwrap();
        assert!(
            reason.contains("3 failed attempts") && reason.contains("answered 500"),
            "{reason}"
        );
        let log = deliveries(&app, &admin, &harbour, &webhook).await;
        assert_eq!(log[0]["status"], "failed");
        let attempts = log[0]["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3);
        assert!(attempts.iter().all(|a| a["status_code"] == 500));
        assert_eq!(receiver.received().len(), 3);
        // The clinic is told on its worklist, on the record whose event did not arrive.
        let worklist: Value = app
            .get_as(
                &format!("/v1/flags?kind=webhook_failed&patient_id={patient}"),
                &harbour.clinician.access_token,
            )
            .await
            .json()
            .await
            .unwrap();
        let told = &worklist["items"][0];
        assert_eq!(told["level"], "info", "{worklist}");
        assert_eq!(told["record_id"], assessment.as_str());
        let detail = told["detail"].as_str().unwrap();
        assert!(
            detail.contains("http://127.0.0.1:") && detail.contains("3 attempts"),
            "{detail}"
        );
        assert!(
            !detail.contains("/hooks"),
            "the URL's path stays out: {detail}"
        );

        // The receiver is mended; enabling the endpoint sends what did not arrive.
        receiver.set(Behaviour::HEALTHY);
        let version = disabled["version"].to_string();
        let res = app
            .patch(
                &one,
                &admin.access_token,
                Some(&format!("\"{version}\"")),
                &json!({"enabled": true}),
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.json::<Value>().await.unwrap()["disabled_reason"],
            Value::Null
        );
        let log = eventually(
            || async { deliveries(&app, &admin, &harbour, &webhook).await },
            |log| log[0]["status"] == "delivered",
        )
        .await;
        assert_eq!(log[0]["status"], "delivered", "{log}");
        assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 4);

        // A replay sends a delivered event again, under its own id.
        let delivery = log[0]["id"].as_str().unwrap();
        let res = app
            .post_as(
                &format!("{one}/deliveries/{delivery}/replay"),
                &admin.access_token,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 202);
        let log = eventually(
            || async { deliveries(&app, &admin, &harbour, &webhook).await },
            |log| log[0]["attempts"].as_array().is_some_and(|a| a.len() == 5),
        )
        .await;
        assert_eq!(log[0]["status"], "delivered", "{log}");
        assert_eq!(receiver.received().len(), 5);
        let received = receiver.received();
        let last = received.last().unwrap();
        assert_eq!(last.answered, 204);
        assert_eq!(
            last.webhook_id(),
            received[0].webhook_id(),
            "replayed under its own id"
        );
        assert!(last.verifies_with(&secret));
        let res = app
            .post_as(
                &format!("{one}/deliveries/{}/replay", uuid::Uuid::new_v4()),
                &admin.access_token,
                &json!({}),
            )
            .await;
        assert_eq!(res.status(), 404);
    }
);

api_test!(
    a_receiver_that_is_down_or_slow_gets_each_event_once_it_answers,
    overrides = &[("KO_WEBHOOK_RETRY_SECONDS", "0,1,1,1,1,1,1,1,1,1")],
    |app| async move {
        let admin = app.sign_in_admin().await;
        let harbour = clinic(&app, &admin, "Harbour").await;
        // A port nothing listens on: the receiver is down.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/hooks/ketamine");
        let (webhook, secret) =
            endpoint(&app, &admin, &harbour, &url, &["assessment.created"]).await;
        let patient = app.new_patient(&harbour.clinician).await;
        app.phq9_answering(&harbour.clinician, &patient, 0).await;
        let log = eventually(
            || async { deliveries(&app, &admin, &harbour, &webhook).await },
            |log| {
                log.as_array().is_some_and(|l| !l.is_empty())
                    && log[0]["attempts"].as_array().is_some_and(|a| !a.is_empty())
            },
        )
        .await;
        assert_eq!(log[0]["attempts"][0]["error"], "could not connect", "{log}");
        assert_eq!(log[0]["attempts"][0]["status_code"], Value::Null);

        // It comes back, answering slowly: the event arrives, once.
        let receiver = Receiver::start_on(
            port,
            Behaviour {
                delay: Duration::from_millis(1500),
                ..Behaviour::HEALTHY
            },
        )
        .await;
        let ids = vec![log[0]["webhook_id"].as_str().unwrap().to_owned()];
        all_delivered(&receiver, &ids).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let received = receiver.received();
        assert_eq!(received.len(), 1, "{received:?}");
        assert!(received[0].verifies_with(&secret));
    }
);

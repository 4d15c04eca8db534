//! Webhook delivery across real processes (issue 17, acceptance): two API processes on one
//! PostgreSQL database deliver each event once between them, and a process killed (SIGKILL)
//! while posts are in flight loses nothing — the next process posts what it held again,
//! under the same `webhook-id`, once the lease runs out.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{eventually, Backend, TestDatabase, PASSWORD};
use crate::process::{create_account, Process, SECRET};
use crate::receiver::{Behaviour, Receiver};

/// A clinic with an endpoint at `receiver` for `assessment.created`, made through `server`:
/// the clinician's token and the endpoint's secret.
async fn clinic_with_endpoint(
    client: &reqwest::Client,
    server: &Process,
    receiver: &Receiver,
) -> (String, String) {
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = client.post(server.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move {
            let res = req.send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            res.json::<Value>().await.unwrap()
        }
    };
    let login = |email: &str| json!({"email": email, "password": PASSWORD});
    let admin = post("/v1/auth/login", None, login("admin@clinic.example")).await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let clinic = post("/v1/clinics", Some(&admin), json!({"name": "Harbour"})).await;
    let clinic = clinic["id"].as_str().unwrap().to_owned();
    let user = json!({"email": "doc@clinic.example", "password": PASSWORD, "role": "clinician", "clinic_id": clinic});
    post("/v1/users", Some(&admin), user).await;
    let endpoint = json!({"url": receiver.url(), "events": ["assessment.created"]});
    let made = post(
        &format!("/v1/clinics/{clinic}/webhooks"),
        Some(&admin),
        endpoint,
    )
    .await;
    let doc = post("/v1/auth/login", None, login("doc@clinic.example")).await;
    (
        doc["access_token"].as_str().unwrap().to_owned(),
        made["secret"].as_str().unwrap().to_owned(),
    )
}

/// Records `count` PHQ-9s, each for a patient of its own (so their posts may run at once),
/// through `servers` in turn: the ids of the assessments acknowledged.
async fn assessments(
    client: &reqwest::Client,
    servers: &[&Process],
    token: &str,
    count: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let server = servers[n % servers.len()];
        let patient =
            json!({"birth_year": 1980, "sex": "male", "indications": ["major_depression"]});
        let res = client
            .post(server.url("/v1/patients"))
            .bearer_auth(token)
            .json(&patient)
            .send()
            .await
            .unwrap();
        let patient: Value = res.json().await.unwrap();
        let patient = patient["id"].as_str().unwrap();
        let taken_at = (chrono::Utc::now() - chrono::Duration::minutes(5)).to_rfc3339();
        let res = client
            .post(server.url(&format!("/v1/patients/{patient}/assessments")))
            .bearer_auth(token)
            .json(&json!({"instrument": "phq9", "taken_at": taken_at, "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        ids.push(
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    ids
}

/// Waits up to `within` until `receiver` has answered 2xx to an event of each record in
/// `records`, in a post that arrived after `since`; then every post it received, keyed by
/// record.
async fn delivered(
    receiver: &Receiver,
    records: &[String],
    since: std::time::Instant,
    within: Duration,
) -> HashMap<String, Vec<crate::receiver::Received>> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let mut by_record: HashMap<String, Vec<_>> = HashMap::new();
        for post in receiver.received() {
            let record = post.json()["data"]["record_id"]
                .as_str()
                .unwrap()
                .to_owned();
            by_record.entry(record).or_default().push(post);
        }
        let done = records.iter().all(|r| {
            by_record.get(r).is_some_and(|posts| {
                posts
                    .iter()
                    .any(|p| p.answered < 300 && p.arrived_at > since)
            })
        });
        if done {
            return by_record;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every acknowledged record was delivered: {records:?} vs {by_record:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_deliver_each_event_once_between_them() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let (one, two) = (Process::start(&env), Process::start(&env));
    // Each answer takes a moment, so both processes find due deliveries at the same time.
    let receiver = Receiver::start(Behaviour {
        delay: Duration::from_millis(100),
        ..Behaviour::HEALTHY
    })
    .await;
    let client = reqwest::Client::new();
    let (token, secret) = clinic_with_endpoint(&client, &one, &receiver).await;
    let started = std::time::Instant::now();
    let records = assessments(&client, &[&one, &two], &token, 24).await;
    let by_record = delivered(&receiver, &records, started, Duration::from_secs(60)).await;
    for record in &records {
        let posts = &by_record[record];
        assert_eq!(posts.len(), 1, "{record} was posted {} times", posts.len());
        assert!(posts[0].verifies_with(&secret));
    }
    assert_eq!(receiver.received().len(), records.len());
}

/// SIGKILL of the process while it waits on receivers; a new one on the same database
/// delivers every acknowledged event, duplicates only under the same webhook-id.
async fn a_killed_process_loses_no_delivery(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let first = Process::start(&env);
    let receiver = Receiver::start(Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::HEALTHY
    })
    .await;
    let client = reqwest::Client::new();
    let (token, secret) = clinic_with_endpoint(&client, &first, &receiver).await;
    let records = assessments(&client, &[&first], &token, 6).await;
    // Killed with posts in flight: they arrived, and their answers are still coming.
    let arrived = eventually(|| async { receiver.arrived() }, |n| *n > 0).await;
    assert!(arrived > 0, "no post arrived before the kill");
    first.signal("-KILL");
    drop(first);
    let killed = std::time::Instant::now();

    // The posts the dead process held reach the receiver again from the next one, once their
    // lease (30 s) has run out: a receiver's answer to a dead sender counts for nothing.
    let second = Process::start(&env);
    receiver.set(Behaviour::HEALTHY);
    let by_record = delivered(&receiver, &records, killed, Duration::from_secs(60)).await;
    let mut ids = HashMap::new();
    for record in &records {
        for post in &by_record[record] {
            assert!(post.verifies_with(&secret));
            // Every post of one event carries one webhook-id: a duplicate is recognisable.
            let id = ids
                .entry(record.clone())
                .or_insert_with(|| post.webhook_id());
            assert_eq!(*id, post.webhook_id(), "{record}");
        }
    }
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_no_delivery_on_postgres() {
    a_killed_process_loses_no_delivery(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_loses_no_delivery_on_sqlite() {
    a_killed_process_loses_no_delivery(Backend::Sqlite).await;
}

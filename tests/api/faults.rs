//! Faults (quality.md, Reliability): the database goes away under concurrent writes and comes
//! back, and the server is stopped under load. No write the server acknowledged is lost; every
//! write it could not make was refused with 503 and Retry-After, and succeeds once retried.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDatabase, PASSWORD};
use crate::process::{clinic_with_patient, create_account, Process, SECRET};
use crate::relay::Relay;

/// A PHQ-9 with a fresh client id, as an offline phone would send it.
fn new_assessment() -> Value {
    json!({
        "id": uuid::Uuid::new_v4(),
        "instrument": "phq9",
        "taken_at": chrono::Utc::now().to_rfc3339(),
        "items": [1, 2, 1, 0, 1, 2, 1, 0, 0],
    })
}

/// What one create got back: the body sent, the status (or None when no answer came) and
/// the Retry-After header.
#[derive(Debug)]
struct Outcome {
    body: Value,
    status: Option<u16>,
    retry_after: Option<String>,
}

/// `writers` clients each posting assessments back to back until `stop` is set.
fn spawn_writers(
    client: reqwest::Client,
    url: String,
    token: String,
    writers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinSet<Vec<Outcome>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (client, url, token, stop) = (client.clone(), url.clone(), token.clone(), stop.clone());
        set.spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = new_assessment();
                let sent = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                let (status, retry_after) = match &sent {
                    Ok(res) => (
                        Some(res.status().as_u16()),
                        res.headers()
                            .get("retry-after")
                            .map(|v| v.to_str().unwrap().to_owned()),
                    ),
                    Err(_) => (None, None),
                };
                outcomes.push(Outcome {
                    body,
                    status,
                    retry_after,
                });
                if sent.is_err() {
                    // The server is gone (shutdown): nothing more will be answered.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            outcomes
        });
    }
    set
}

async fn collect(set: tokio::task::JoinSet<Vec<Outcome>>) -> Vec<Outcome> {
    set.join_all().await.into_iter().flatten().collect()
}

/// The ids of the patient's assessments as the database holds them, read directly.
fn stored_assessment_ids(database_url: &str, patient: &str) -> HashSet<String> {
    use ketamine_outcomes::store::schema::assessments;
    let mut conn = ketamine_outcomes::store::DbConnection::establish(database_url).unwrap();
    assessments::table
        .filter(assessments::patient_id.eq(patient))
        .select(assessments::id)
        .load::<String>(&mut conn)
        .unwrap()
        .into_iter()
        .collect()
}

fn id_of(outcome: &Outcome) -> String {
    outcome.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_during_a_database_outage_are_kept_or_refused_with_retry_after() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let direct = database.url();
    let mut relay = Relay::in_front_of(&direct).await;
    let overrides = [
        ("DATABASE_URL", relay.database_url.as_str()),
        ("KO_DB_ACQUIRE_TIMEOUT_SECS", "1"),
    ];
    let app = TestApp::spawn(database, &overrides).await;
    let admin = app.sign_in_admin().await;
    let clinician = app.clinic(&admin, "Harbour").await.clinician;
    let patient = app.new_patient(&clinician).await;
    let path = app.url(&format!("/v1/patients/{patient}/assessments"));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = spawn_writers(
        app.client.clone(),
        path.clone(),
        clinician.access_token.clone(),
        8,
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    relay.cut().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = app.get("/readyz").await;
    assert_eq!(during.status(), 503, "/readyz follows the database down");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    relay.restore().await;
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "/readyz follows the database back up, no restart");
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = collect(writers).await;

    let acknowledged: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == Some(201)).collect();
    let refused: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != Some(201)).collect();
    for outcome in &refused {
        assert_eq!(outcome.status, Some(503), "a failed create: {outcome:?}");
        assert!(outcome.retry_after.is_some(), "503 without Retry-After");
    }
    assert!(
        acknowledged.len() >= 8 && refused.len() >= 8,
        "writes went through before and after the outage and were refused during it: {} acknowledged, {} refused",
        acknowledged.len(),
        refused.len()
    );

    let stored = stored_assessment_ids(&direct, &patient);
    for outcome in &acknowledged {
        assert!(stored.contains(&id_of(outcome)), "acknowledged write lost");
    }

    // Each refused create, retried with the same id and body, is stored exactly once: created
    // now (201) or found already made before the connection broke (200).
    for outcome in &refused {
        let res = app
            .post_as(
                &format!("/v1/patients/{patient}/assessments"),
                &clinician.access_token,
                &outcome.body,
            )
            .await;
        assert!(
            matches!(res.status().as_u16(), 200 | 201),
            "retry: {}",
            res.status()
        );
    }
    let stored = stored_assessment_ids(&direct, &patient);
    let sent: HashSet<String> = outcomes.iter().map(id_of).collect();
    assert_eq!(
        stored, sent,
        "every create stored, none twice, nothing else"
    );
}

/// SIGTERM while eight clients write: every create answered 201 is in the database.
async fn sigterm_under_load_loses_nothing_acknowledged(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KO_JWT_SECRET", SECRET),
        ("KO_SHUTDOWN_TIMEOUT_SECS", "20"),
    ];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let mut server = Process::start(&env);
    let client = reqwest::Client::new();
    let (doc, patient) = clinic_with_patient(&client, &server).await;
    let path = server.url(&format!("/v1/patients/{patient}/assessments"));

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers = spawn_writers(client, path, doc, 8, stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.signal("-TERM");
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let outcomes = collect(writers).await;

    let acknowledged: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == Some(201)).collect();
    assert!(acknowledged.len() >= 8, "the load ran before the signal");
    for outcome in &outcomes {
        assert!(
            matches!(outcome.status, Some(201) | None),
            "every answer was a success or no answer at all: {outcome:?}"
        );
    }
    let stored = stored_assessment_ids(&url, &patient);
    for outcome in acknowledged {
        assert!(stored.contains(&id_of(outcome)), "acknowledged write lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_acknowledged_on_sqlite() {
    sigterm_under_load_loses_nothing_acknowledged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_nothing_acknowledged_on_postgres() {
    sigterm_under_load_loses_nothing_acknowledged(Backend::Postgres).await;
}

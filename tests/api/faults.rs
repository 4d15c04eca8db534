//! Faults (quality.md, Reliability): the database goes away under concurrent writes and comes
//! back, and the server is stopped under load. No write the server acknowledged is lost; every
//! write it could not make was refused with 503 and Retry-After, and succeeds once retried.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::helpers::{Backend, TestApp, TestDatabase, PASSWORD};
use crate::process::{clinic_with_patient, create_account, Process, SECRET};
use crate::relay::Relay;

/// A PHQ-9 with a fresh client id, as an offline phone would send it. Its item 9 answer
/// raises a flag in the create's own transaction, for the tests that look for half-made
/// records.
fn new_assessment() -> Value {
    json!({
        "id": uuid::Uuid::new_v4(),
        "instrument": "phq9",
        "taken_at": chrono::Utc::now().to_rfc3339(),
        "items": [1, 2, 1, 0, 1, 2, 1, 0, 1],
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

/// A completed infusion with a fresh client id, half an hour ago.
fn new_session() -> Value {
    json!({
        "id": uuid::Uuid::new_v4(),
        "route": "iv",
        "started_at": (chrono::Utc::now() - chrono::Duration::minutes(30)).to_rfc3339(),
        "dose_mg_per_kg": 0.5,
        "weight_kg": 70,
    })
}

/// `writers` clients each posting records made by `make` back to back until `stop` is set.
fn spawn_writers(
    client: reqwest::Client,
    url: String,
    token: String,
    (writers, make): (usize, fn() -> Value),
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinSet<Vec<Outcome>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (client, url, token, stop) = (client.clone(), url.clone(), token.clone(), stop.clone());
        set.spawn(async move {
            let mut outcomes = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = make();
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

/// The ids of the patient's records of `kind` (assessments or sessions) as the database holds
/// them, read directly.
fn stored_ids(database_url: &str, kind: &str, patient: &str) -> HashSet<String> {
    use ketamine_outcomes::store::schema::{assessments, sessions};
    let mut conn = ketamine_outcomes::store::DbConnection::establish(database_url).unwrap();
    let ids: Vec<String> = match kind {
        "assessments" => assessments::table
            .filter(assessments::patient_id.eq(patient))
            .select(assessments::id)
            .load(&mut conn),
        "sessions" => sessions::table
            .filter(sessions::patient_id.eq(patient))
            .select(sessions::id)
            .load(&mut conn),
        other => panic!("no stored ids for {other}"),
    }
    .unwrap();
    ids.into_iter().collect()
}

fn id_of(outcome: &Outcome) -> String {
    outcome.body["id"].as_str().unwrap().to_owned()
}

/// Something that takes the database away from the server and gives it back.
trait Outage {
    async fn begin(&mut self);
    async fn end(&mut self);
}

/// The network to the database is cut: connections reset, new ones refused.
impl Outage for Relay {
    async fn begin(&mut self) {
        self.cut().await;
    }
    async fn end(&mut self) {
        self.restore().await;
    }
}

/// The database crashes (no checkpoint) and starts again, recovering from its log.
impl Outage for Cluster {
    async fn begin(&mut self) {
        tokio::task::block_in_place(|| self.crash());
    }
    async fn end(&mut self) {
        tokio::task::block_in_place(|| self.start());
    }
}

/// Eight clients create assessments through `database` going away (`outage`) and coming
/// back, read directly at `direct`: every create acknowledged is stored, every other was
/// refused with 503 and Retry-After and, retried, is stored exactly once; `/readyz` follows
/// the database down and up with no restart of the server.
async fn creates_through(database: TestDatabase, server_url: &str, outage: &mut impl Outage) {
    let direct = database.url();
    let overrides = [
        ("DATABASE_URL", server_url),
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
        (8, new_assessment),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    outage.begin().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = app.get("/readyz").await;
    assert_eq!(during.status(), 503, "/readyz follows the database down");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    outage.end().await;
    let mut ready = false;
    for _ in 0..100 {
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

    let stored = stored_ids(&direct, "assessments", &patient);
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
    let stored = stored_ids(&direct, "assessments", &patient);
    let sent: HashSet<String> = outcomes.iter().map(id_of).collect();
    assert_eq!(
        stored, sent,
        "every create stored, none twice, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_during_a_network_cut_are_kept_or_refused_with_retry_after() {
    let Some(database) = TestDatabase::create(Backend::Postgres) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let mut relay = Relay::in_front_of(&database.url()).await;
    let through_relay = relay.database_url.clone();
    creates_through(database, &through_relay, &mut relay).await;
}

/// issue 20 (1): PostgreSQL itself crashes under the writes (`pg_ctlcluster stop -m
/// immediate`) and recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_across_a_postgres_crash_are_kept_or_refused_with_retry_after() {
    let Some(mut cluster) = Cluster::create() else {
        return;
    };
    let database = TestDatabase::on_server(&cluster.url("postgres"));
    let url = database.url();
    creates_through(database, &url, &mut cluster).await;
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
    let writers = spawn_writers(client, path, doc, (8, new_assessment), stop.clone());
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
    let stored = stored_ids(&url, "assessments", &patient);
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

/// issue 20 (2): SIGKILL while eight clients write assessments and infusions, then a new
/// process on the same data. It starts (were the schema half-migrated, it would not) and
/// honours the tokens the killed one signed (the signing key in the data directory is intact);
/// every create answered 201 is stored, and every stored record is whole — an assessment with
/// its audit event and the flag its item 9 raises, an infusion with its audit event and its
/// stored outcome, each committed with it; each create that got no answer, sent again, is
/// stored once.
async fn sigkill_under_load_leaves_whole_records(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let data = tempfile::tempdir().unwrap();
    // No KO_JWT_SECRET: the key is the one the first process made in the data directory.
    let env = [("DATABASE_URL", url.as_str())];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let mut server = Process::start_in(data.path(), &env);
    let client = reqwest::Client::new();
    let (doc, patient) = clinic_with_patient(&client, &server).await;
    let course = json!({"indication": "major_depression",
        "start_date": chrono::Utc::now().date_naive().to_string()});
    let planned = client
        .post(server.url(&format!("/v1/patients/{patient}/courses")))
        .bearer_auth(&doc)
        .json(&course)
        .send()
        .await
        .unwrap();
    assert_eq!(planned.status(), 201);
    let kinds = [
        ("assessments", (5, new_assessment as fn() -> Value)),
        ("sessions", (3, new_session)),
    ];

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = kinds
        .iter()
        .map(|(kind, writers)| {
            let path = server.url(&format!("/v1/patients/{patient}/{kind}"));
            spawn_writers(client.clone(), path, doc.clone(), *writers, stop.clone())
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    server.signal("-KILL");
    let (exit, server) =
        tokio::task::spawn_blocking(move || (server.child.wait().unwrap(), server))
            .await
            .unwrap();
    drop(server);
    assert_eq!(exit.code(), None, "killed by the signal");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = Vec::new();
    for set in writers {
        sent.push(collect(set).await);
    }

    let restarted = Process::start_in(data.path(), &env);
    let record = client
        .get(restarted.url(&format!("/v1/patients/{patient}")))
        .bearer_auth(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(record.status(), 200, "a token signed before the kill");

    for ((kind, _), outcomes) in kinds.iter().zip(&sent) {
        let acknowledged: Vec<&Outcome> =
            outcomes.iter().filter(|o| o.status == Some(201)).collect();
        assert!(
            acknowledged.len() >= 3,
            "{kind}: the load ran before the signal"
        );
        let stored = stored_ids(&url, kind, &patient);
        for outcome in &acknowledged {
            assert!(
                stored.contains(&id_of(outcome)),
                "{kind}: acknowledged write lost"
            );
        }
        for id in &stored {
            assert_eq!(traces_of(&url, kind, id), (1, 1), "{kind} {id}: not whole");
        }
        for outcome in outcomes.iter().filter(|o| o.status != Some(201)) {
            assert_eq!(outcome.status, None, "answered, but not 201: {outcome:?}");
            let res = client
                .post(restarted.url(&format!("/v1/patients/{patient}/{kind}")))
                .bearer_auth(&doc)
                .json(&outcome.body)
                .send()
                .await
                .unwrap();
            assert!(
                matches!(res.status().as_u16(), 200 | 201),
                "retry: {}",
                res.status()
            );
        }
        let ids: HashSet<String> = outcomes.iter().map(id_of).collect();
        assert_eq!(
            stored_ids(&url, kind, &patient),
            ids,
            "{kind}: every create stored once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_leaves_whole_records_on_sqlite() {
    sigkill_under_load_leaves_whole_records(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_leaves_whole_records_on_postgres() {
    sigkill_under_load_leaves_whole_records(Backend::Postgres).await;
}

/// What a create of `kind` writes beside the record, in its transaction: its audit event, and
/// for an assessment the flag its item 9 raises, for an infusion its stored outcome.
fn traces_of(database_url: &str, kind: &str, id: &str) -> (i64, i64) {
    use ketamine_outcomes::store::schema::{audit_events as ae, flags, session_outcomes};
    let mut conn = ketamine_outcomes::store::DbConnection::establish(database_url).unwrap();
    let action = match kind {
        "assessments" => "assessment_created",
        _ => "session_created",
    };
    let events = ae::table
        .filter(ae::action.eq(action))
        .filter(ae::resource_id.eq(id))
        .count()
        .get_result(&mut conn)
        .unwrap();
    let refreshed = match kind {
        "assessments" => flags::table
            .filter(flags::record_id.eq(id))
            .count()
            .get_result(&mut conn),
        _ => session_outcomes::table
            .filter(session_outcomes::session_id.eq(id))
            .count()
            .get_result(&mut conn),
    };
    (events, refreshed.unwrap())
}

/// A write kept waiting on SQLite's one write lock past its busy timeout (5 s) — here by
/// another connection that holds the lock — is refused with 503 and Retry-After, for the
/// client to retry, not answered 500; and once the lock is gone the retry is recorded.
#[tokio::test]
async fn a_write_kept_waiting_past_sqlites_busy_timeout_is_refused_for_a_retry() {
    use diesel::connection::SimpleConnection;
    crate::helpers::run_with(Backend::Sqlite, &[], |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let patient = app.new_patient(&clinic.clinician).await;
        let path = format!("/v1/patients/{patient}/assessments");
        let url = app.settings.database_url.connection_string();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut conn = ketamine_outcomes::store::DbConnection::establish(&url).unwrap();
            conn.batch_execute("BEGIN IMMEDIATE").unwrap();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(60));
            conn.batch_execute("COMMIT").unwrap();
        });
        held_rx.recv().unwrap();
        let body = new_assessment();
        let token = &clinic.clinician.access_token;
        let refused = app.post_as(&path, token, &body).await;
        assert_eq!(refused.status(), 503);
        assert!(refused.headers().contains_key("retry-after"));
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(app.post_as(&path, token, &body).await.status(), 201);
    })
    .await;
}

/// A server on SQLite with a flag on its worklist, the database's write lock held by another
/// connection, and the worklist read `reads` times while it is held: the server, the lock's
/// holder and the database's URL.
async fn worklist_read_while_the_trail_is_locked(
    reads: usize,
) -> (
    Process,
    ketamine_outcomes::store::DbConnection,
    String,
    TestDatabase,
) {
    use diesel::connection::SimpleConnection;
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let server = Process::start(&env);
    let client = reqwest::Client::new();
    let (doc, patient) = clinic_with_patient(&client, &server).await;
    let ideation = json!({"instrument": "phq9", "taken_at": chrono::Utc::now().to_rfc3339(),
        "items": [1, 1, 1, 1, 1, 1, 1, 1, 2]});
    let recorded = client
        .post(server.url(&format!("/v1/patients/{patient}/assessments")))
        .bearer_auth(&doc)
        .json(&ideation)
        .send()
        .await
        .unwrap();
    assert_eq!(recorded.status(), 201);
    let mut holder = ketamine_outcomes::store::DbConnection::establish(&url).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    // The first read's event is being written (waiting for the lock) when the next is queued.
    for _ in 0..reads {
        let worklist = client
            .get(server.url(&format!("/v1/flags?status=open&patient_id={patient}")))
            .bearer_auth(&doc)
            .send()
            .await
            .unwrap();
        assert_eq!(worklist.status(), 200, "the read needs no write lock");
        let shown = worklist.json::<Value>().await.unwrap()["items"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(shown, 1, "the urgent flag of the item-9 answer");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    (server, holder, url, database)
}

fn worklist_events(url: &str) -> i64 {
    use ketamine_outcomes::store::schema::audit_events as ae;
    let mut conn = ketamine_outcomes::store::DbConnection::establish(url).unwrap();
    ae::table
        .filter(ae::action.eq("flags_listed"))
        .count()
        .get_result::<i64>(&mut conn)
        .unwrap()
}

/// issue 16 (4): the worklist's audit events are written behind its answer, and a graceful
/// stop writes those still queued. The events of two worklist reads cannot be written while
/// another connection holds SQLite's write lock; the process is sent SIGTERM, the lock is let
/// go within the stop's grace, and the process exits 0 with both events in the trail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_writes_the_audit_events_still_queued() {
    use diesel::connection::SimpleConnection;
    let (mut server, mut holder, url, _database) = worklist_read_while_the_trail_is_locked(2).await;
    server.signal("-TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still writing the trail"
    );
    holder.batch_execute("COMMIT").unwrap();
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert_eq!(worklist_events(&url), 2, "each worklist read's event");
}

/// A stop does not wait for ever on a trail it cannot write: the write lock is never let go,
/// and the process still exits 0, within its drain limit (10 s) and one attempt more, saying
/// what it could not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_gives_up_on_audit_events_it_cannot_write_and_says_so() {
    use diesel::connection::SimpleConnection;
    let (mut server, mut holder, url, _database) = worklist_read_while_the_trail_is_locked(1).await;
    server.signal("-TERM");
    let stopped = std::time::Instant::now();
    let (exit, server) =
        tokio::task::spawn_blocking(move || (server.child.wait().unwrap(), server))
            .await
            .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(25),
        "{:?}",
        stopped.elapsed()
    );
    let lost = server
        .log()
        .iter()
        .any(|line| line["message"] == "audit events could not be written before the stop");
    assert!(lost, "the loss is logged");
    holder.batch_execute("COMMIT").unwrap();
    assert_eq!(worklist_events(&url), 0);
}

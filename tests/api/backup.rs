//! Issue 20 (4): the embedded database backed up online, under concurrent writes, and
//! restored. SQLite only: PostgreSQL's procedure is pg_dump (README, Operations).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ketamine_outcomes::config::DatabaseUrl;
use ketamine_outcomes::store::backup;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDatabase};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn connect(path: &Path) -> SqliteConnection {
    SqliteConnection::establish(path.to_str().unwrap()).expect("open")
}

/// Every table of the file and a digest of its rows in rowid order, for comparing two files.
fn tables(path: &Path) -> Vec<(String, i64, String)> {
    let mut conn = connect(path);
    let names: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load(&mut conn)
    .unwrap();
    names
        .into_iter()
        .map(|t| {
            let rows: Vec<Name> = diesel::sql_query(format!(
                "SELECT quote(json_array(*)) AS name FROM (SELECT * FROM \"{}\" ORDER BY rowid)",
                t.name
            ))
            .load(&mut conn)
            .unwrap_or_default();
            let count: Count =
                diesel::sql_query(format!("SELECT count(*) AS n FROM \"{}\"", t.name))
                    .get_result(&mut conn)
                    .unwrap();
            let digest: String = rows
                .into_iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join("\n");
            (t.name, count.n, format!("{:x}", md5ish(&digest)))
        })
        .collect()
}

/// A cheap stable digest (FNV-1a), enough to tell two tables' rows apart.
fn md5ish(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn patient_ids(path: &Path) -> Vec<String> {
    let mut conn = connect(path);
    let rows: Vec<Name> = diesel::sql_query("SELECT id AS name FROM patients")
        .load(&mut conn)
        .unwrap();
    rows.into_iter().map(|r| r.name).collect()
}

fn audited_creations(path: &Path) -> Vec<String> {
    let mut conn = connect(path);
    let rows: Vec<Name> = diesel::sql_query(
        "SELECT patient_id AS name FROM audit_events WHERE action = 'patient_created'",
    )
    .load(&mut conn)
    .unwrap();
    rows.into_iter().map(|r| r.name).collect()
}

fn database_file(app: &TestApp) -> PathBuf {
    match &app.settings.database_url {
        DatabaseUrl::Sqlite(path) => path.clone(),
        DatabaseUrl::Postgres(_) => unreachable!("an SQLite test"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_the_moment_it_was_taken() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let app = Arc::new(TestApp::spawn(database, &[]).await);
    let admin = app.sign_in_admin().await;
    let clinician = app.clinic(&admin, "Harbour").await.clinician;
    let live = database_file(&app);
    let out = tempfile::tempdir().unwrap();
    let copy = out.path().join("backup.db");

    // Patients are registered one after another while the backup is taken; each
    // acknowledged one is noted with whether it was acknowledged before the backup began.
    let acknowledged: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (app, token) = (app.clone(), clinician.access_token.clone());
        let (acknowledged, started, stop) = (acknowledged.clone(), started.clone(), stop.clone());
        tokio::spawn(async move {
            let body = json!({"birth_year": 1980, "sex": "female", "indications": ["ptsd"]});
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let res = app.post_as("/v1/patients", &token, &body).await;
                assert_eq!(res.status(), 201);
                let id = res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let before = !started.load(std::sync::atomic::Ordering::SeqCst);
                acknowledged.lock().unwrap().push((id, before));
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 15 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    started.store(true, std::sync::atomic::Ordering::SeqCst);
    let (from, to) = (live.clone(), copy.clone());
    let migrations = tokio::task::spawn_blocking(move || backup::backup(&from, &to))
        .await
        .unwrap()
        .expect("backed up while serving");
    let at_end = acknowledged.lock().unwrap().len();
    while acknowledged.lock().unwrap().len() < at_end + 10 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    assert!(migrations >= 17, "{migrations}");

    // The copy is one moment: every patient acknowledged before it began is in it, none
    // acknowledged after it ended, and each patient in it with its audit event (a
    // transaction whole or not at all).
    let held = patient_ids(&copy);
    let acknowledged = acknowledged.lock().unwrap().clone();
    for (id, before) in &acknowledged {
        if *before {
            assert!(
                held.contains(id),
                "acknowledged before the backup, missing: {id}"
            );
        }
    }
    let after_end: Vec<_> = acknowledged[at_end + 1..]
        .iter()
        .map(|(id, _)| id)
        .collect();
    assert!(
        held.iter().all(|id| !after_end.contains(&id)),
        "a patient from after the backup"
    );
    let mut audited = audited_creations(&copy);
    let mut in_copy = held.clone();
    audited.sort();
    in_copy.sort();
    assert_eq!(audited, in_copy, "each patient with its audit event");
    assert!(
        patient_ids(&live).len() > held.len(),
        "the server wrote on after the backup"
    );

    // A restore refuses the live database while the server holds it.
    let refused = backup::restore(&live, &copy, "t0").unwrap_err();
    assert!(
        refused.to_string().contains("a server is using"),
        "{refused}"
    );

    // Restored where no server runs, every table is the backup's.
    let target = out.path().join("restored.db");
    std::fs::write(&target, b"").unwrap();
    let kept = backup::restore(&target, &copy, "t1")
        .expect("restored")
        .expect("kept aside");
    assert!(kept.exists());
    assert_eq!(tables(&target), tables(&copy));
    assert!(tables(&target)
        .iter()
        .any(|(name, n, _)| name == "patients" && *n == held.len() as i64));

    // A second backup to the same file is refused rather than overwriting it.
    assert!(backup::backup(&live, &copy)
        .unwrap_err()
        .to_string()
        .contains("exists already"));
}

#[test]
fn a_restore_refuses_a_damaged_file_or_one_from_a_newer_release() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("live.db");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x42; 8192]).unwrap();
    let refused = backup::restore(&target, &garbage, "t")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("not an SQLite database") || refused.contains("integrity"),
        "{refused}"
    );

    // A database migrated by this release, then marked with a migration it does not know.
    let newer = dir.path().join("newer.db");
    let url = DatabaseUrl::Sqlite(newer.clone());
    ketamine_outcomes::store::Db::new(&url, 1, std::time::Duration::from_secs(2))
        .migrate()
        .expect("migrated");
    diesel::sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ('29991231000099')")
        .execute(&mut connect(&newer))
        .unwrap();
    let refused = backup::restore(&target, &newer, "t")
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("release this one does not know"),
        "{refused}"
    );
    let missing = backup::restore(&target, &dir.path().join("none.db"), "t").unwrap_err();
    assert!(missing.to_string().contains("no such file"));
    assert!(!target.exists(), "nothing was written");
}

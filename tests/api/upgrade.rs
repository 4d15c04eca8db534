//! issue 20 (6): an upgrade tested on data. A database is migrated as far as the previous
//! release's last migration, filled with a record as that release stored it
//! (`tests/fixtures/upgrade-from-000012.sql`), and then served by this build, which applies
//! the rest at start as an operator's upgrade does. The record reads as it was written: its
//! outcomes, its open flag (which SQLite's rebuild of the flags table in 000016 must carry),
//! its sync cursors, and the newer reads (FHIR) of the older data.

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDatabase};

/// The last migration of the release before the outbox (issue 17): every later one — a new
/// table, a new column, SQLite's rewrite of the flags, new tables for FHIR — runs on data.
const PREVIOUS_RELEASE: &str = "000012_time_flag_checks";

const PATIENT: &str = "00000000-0000-4000-8000-000000000001";
const CLINIC: &str = "00000000-0000-4000-a000-000000000001";
const BASELINE: &str = "00000000-0000-4000-d000-000000000001";
const FOLLOW_UP: &str = "00000000-0000-4000-d000-000000000002";
const FLAG: &str = "00000000-0000-4000-f000-000000000001";

/// Applies this build's migrations of `backend` up to and including [`PREVIOUS_RELEASE`].
fn migrate_to_previous_release<DB>(conn: &mut impl MigrationHarness<DB>, backend: Backend)
where
    DB: diesel::backend::Backend,
    FileBasedMigrations: MigrationSource<DB>,
{
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let source =
        FileBasedMigrations::from_path(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    let mut migrations = MigrationSource::<DB>::migrations(&source).unwrap();
    migrations.sort_by_key(|m| m.name().version().to_string());
    let last = migrations
        .iter()
        .position(|m| m.name().to_string().ends_with(PREVIOUS_RELEASE))
        .expect("the previous release's last migration is shipped");
    assert!(last + 1 < migrations.len(), "later migrations to apply");
    // Creates the table that records applied migrations (running one by one does not).
    conn.applied_migrations().unwrap();
    for migration in &migrations[..=last] {
        conn.run_migration(&**migration).unwrap();
    }
}

/// The database of `url` as the previous release left it, with the fixture's record.
fn previous_release_with_a_record(backend: Backend, url: &str) {
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/upgrade-from-000012.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    match backend {
        Backend::Postgres => {
            let mut conn = PgConnection::establish(url).unwrap();
            migrate_to_previous_release(&mut conn, backend);
            conn.batch_execute(&fixture).unwrap();
        }
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(url).unwrap();
            conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
            migrate_to_previous_release(&mut conn, backend);
            conn.batch_execute(&fixture).unwrap();
        }
    }
}

async fn an_upgrade_keeps_the_record(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    tokio::task::spawn_blocking(move || previous_release_with_a_record(backend, &url))
        .await
        .unwrap();
    // Starting this build on it is the upgrade.
    let app = TestApp::spawn(database, &[]).await;
    let admin = app.sign_in_admin().await;
    let clinician = app.sign_in_new(&admin, "clinician", Some(CLINIC)).await;
    let token = clinician.access_token.as_str();

    // The outcomes as the record warrants: a baseline of 20, 7 the day after the infusion.
    let outcomes = app
        .read(&format!("/v1/patients/{PATIENT}/outcomes"), token)
        .await;
    let session = &outcomes["sessions"][0];
    assert_eq!(
        (&session["baseline"], &session["nadir"], &session["gain"]),
        (&json!(20), &json!(7), &json!(13)),
        "{outcomes}"
    );
    assert_eq!(outcomes["courses"][0]["baseline"], 20, "{outcomes}");

    // The urgent flag of the item-9 answer is on the worklist, and can be acknowledged.
    let worklist = app
        .read(
            &format!("/v1/flags?status=open&patient_id={PATIENT}"),
            token,
        )
        .await;
    let flag = worklist["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "suicidal_ideation")
        .unwrap_or_else(|| panic!("the old flag: {worklist}"));
    // The flag the old release raised, carried over — not one raised again at the first sweep.
    assert_eq!(
        (
            &flag["id"],
            &flag["raised_at"],
            &flag["level"],
            &flag["record_id"]
        ),
        (
            &json!(FLAG),
            &json!("2026-11-04T09:01:00Z"),
            &json!("urgent"),
            &json!(FOLLOW_UP)
        ),
        "{flag}"
    );
    let acknowledged = app
        .post_as(
            &format!("/v1/flags/{}/acknowledge", flag["id"].as_str().unwrap()),
            token,
            &json!({"note": "called after the upgrade"}),
        )
        .await;
    assert_eq!(acknowledged.status(), 200);

    // A phone's sync from the start brings the old record and a cursor; from that cursor, only
    // what was written after the upgrade.
    let list = format!("/v1/patients/{PATIENT}/assessments");
    let first = app
        .synced(
            &format!("{list}?updated_since=2000-01-01T00:00:00Z"),
            token,
            |page| page["items"].as_array().is_some_and(|i| i.len() == 2),
        )
        .await;
    assert_eq!(ids(&first), [BASELINE, FOLLOW_UP], "{first}");
    let cursor = first["sync_cursor"].as_str().unwrap().to_owned();
    let new = json!({"instrument": "phq9", "taken_at": chrono::Utc::now().to_rfc3339(),
        "items": [1, 1, 0, 1, 0, 1, 0, 0, 0]});
    let new = app.post_as(&list, token, &new).await;
    assert_eq!(new.status(), 201);
    let new: Value = new.json().await.unwrap();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("updated_since", &cursor)
        .finish();
    let next = app
        .synced(&format!("{list}?{query}"), token, |page| {
            page["items"].as_array().is_some_and(|i| !i.is_empty())
        })
        .await;
    assert_eq!(ids(&next), [new["id"].as_str().unwrap()], "{next}");

    // The FHIR read, newer than the record, reads it whole.
    let bundle = app
        .read(&format!("/v1/patients/{PATIENT}/fhir"), token)
        .await;
    let responses = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "QuestionnaireResponse")
        .count();
    assert_eq!(responses, 3, "two from before the upgrade, one after");
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_the_record_on_sqlite() {
    an_upgrade_keeps_the_record(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_keeps_the_record_on_postgres() {
    an_upgrade_keeps_the_record(Backend::Postgres).await;
}

/// issue 20 (6): every migration says in its file whether it rewrites a table, so an operator
/// knows before upgrading a large database (SQLite's change of a CHECK rebuilds the table).
#[test]
fn every_migration_says_whether_it_rewrites_a_table() {
    let root = format!("{}/migrations", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for engine in ["postgres", "sqlite"] {
        for entry in std::fs::read_dir(format!("{root}/{engine}")).unwrap() {
            let up = entry.unwrap().path().join("up.sql");
            let sql = std::fs::read_to_string(&up).unwrap().to_lowercase();
            assert!(
                sql.contains("rewrit"),
                "{} does not say whether it rewrites a table",
                up.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 34, "both engines' migrations read: {checked}");
}

//! issue 14: a stored value that does not read back as its type — an unknown name, unreadable
//! JSON — is a logged data-integrity error (500), on every read and on both engines; never a
//! plausible default (a PHQ-9 that never was) shown to a client or written back by a change.

use diesel::RunQueryDsl;
use serde_json::{json, Value};

use ketamine_outcomes::store::{Db, DbConnection};

use crate::api_test;
use crate::helpers::{problem, Backend, TestApp, TestDatabase, PASSWORD};
use crate::process::{create_account, Process, SECRET};

/// Runs one statement on `table` behind the API's back: what another program, a restore or
/// a bad migration could leave. The table's CHECK constraints would refuse it, so they are set
/// aside (SQLite: for this statement; PostgreSQL: dropped, in this test's own database).
async fn tamper_with(db: &Db, table: &'static str, statement: &'static str) {
    db.run(move |conn| {
        let lite = matches!(conn, DbConnection::Sqlite(_));
        if lite {
            diesel::sql_query("PRAGMA ignore_check_constraints = ON").execute(conn)?;
        } else {
            diesel::sql_query(format!(
                "DO $$ DECLARE c record; BEGIN FOR c IN SELECT conname FROM pg_constraint \
                 WHERE conrelid = '{table}'::regclass AND contype = 'c' LOOP \
                 EXECUTE 'ALTER TABLE {table} DROP CONSTRAINT ' || quote_ident(c.conname); \
                 END LOOP; END $$"
            ))
            .execute(conn)?;
        }
        let ran = diesel::sql_query(statement).execute(conn);
        if lite {
            diesel::sql_query("PRAGMA ignore_check_constraints = OFF").execute(conn)?;
        }
        ran?;
        Ok::<_, ketamine_outcomes::store::StoreError>(())
    })
    .await
    .expect("the statement ran");
}

async fn tamper(app: &TestApp, table: &'static str, statement: &'static str) {
    tamper_with(&app.database(), table, statement).await;
}

async fn refused_as_internal(app: &TestApp, token: &str, path: &str) {
    let res = app.get_as(path, token).await;
    let (status, _, body) = problem(res).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (500, Some("/problems/internal")),
        "{path}: {body}"
    );
    assert_eq!(body["detail"], "the error has been logged", "{path}");
}

api_test!(
    an_unreadable_stored_value_is_a_500_and_never_a_default,
    |app| async move {
        let admin = app.sign_in_admin().await;
        let clinic = app.clinic(&admin, "Harbour").await;
        let token = &clinic.clinician.access_token;
        let patient = app.new_patient(&clinic.clinician).await;
        let course = app
            .new_course(&clinic.clinician, &patient, "2026-01-05")
            .await;
        let session = app
            .new_session(&clinic.clinician, &patient, "2026-01-05T09:00:00Z")
            .await;
        let body = json!({"instrument": "phq9", "taken_at": "2026-01-05T08:00:00Z", "items": [1, 1, 1, 1, 1, 1, 1, 1, 0]});
        let res = app
            .post_as(&format!("/v1/patients/{patient}/assessments"), token, &body)
            .await;
        let assessment = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();

        tamper(&app, "sessions", "UPDATE sessions SET route = 'teleport'").await;
        refused_as_internal(&app, token, &format!("/v1/sessions/{session}")).await;
        refused_as_internal(&app, token, &format!("/v1/patients/{patient}/sessions")).await;
        // A change reads the record first: nothing is guessed and written back.
        let res = app
            .patch(
                &format!("/v1/sessions/{session}"),
                token,
                None,
                &json!({"weight_kg": 71.0}),
            )
            .await;
        assert_eq!(res.status(), 500);

        tamper(
            &app,
            "assessments",
            "UPDATE assessments SET items = '[1, 1,'",
        )
        .await;
        refused_as_internal(&app, token, &format!("/v1/assessments/{assessment}")).await;

        tamper(
            &app,
            "assessments",
            "UPDATE assessments SET items = '[1,1,1,1,1,1,1,1,0]', instrument = 'phq10'",
        )
        .await;
        refused_as_internal(&app, token, &format!("/v1/assessments/{assessment}")).await;

        tamper(
            &app,
            "courses",
            "UPDATE courses SET measurement_plan = '{\"daily_mood\": \"often\"}'",
        )
        .await;
        refused_as_internal(&app, token, &format!("/v1/courses/{course}")).await;

        tamper(&app, "patients", "UPDATE patients SET sex = 'unstated'").await;
        refused_as_internal(&app, token, &format!("/v1/patients/{patient}")).await;
    }
);

/// The 500's cause is in the log, naming the type and the value that did not read; the
/// client sees neither.
async fn the_cause_is_logged(backend: Backend) {
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: needs KO_TEST_POSTGRES_URL");
        return;
    };
    let url = database.url();
    let env = [("DATABASE_URL", url.as_str()), ("KO_JWT_SECRET", SECRET)];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let server = Process::start(&env);
    let client = reqwest::Client::new();
    let login = json!({"email": "admin@clinic.example", "password": PASSWORD});
    let tokens: Value = client
        .post(server.url("/v1/auth/login"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    use ketamine_outcomes::config::{DatabaseUrl, Secret};
    let direct = match backend {
        Backend::Sqlite => DatabaseUrl::Sqlite(url.clone().into()),
        Backend::Postgres => DatabaseUrl::Postgres(Secret::new(url.clone())),
    };
    let db = ketamine_outcomes::store::Db::new(&direct, 1, std::time::Duration::from_secs(5));
    tamper_with(&db, "users", "UPDATE users SET role = 'superuser'").await;
    let res = client
        .get(server.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        500,
        "not 401: the token is good, the row is not"
    );
    let body = res.text().await.unwrap();
    assert!(
        !body.contains("superuser"),
        "the client is told nothing of it: {body}"
    );
    let logged = (0..50).find_map(|_| {
        let found = server.log().into_iter().find(|line| {
            line["level"] == "ERROR"
                && line["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("unreadable stored Role: \"superuser\""))
        });
        if found.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        found
    });
    assert!(
        logged.is_some(),
        "the log names the value: {:?}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cause_of_an_integrity_error_is_logged_on_sqlite() {
    the_cause_is_logged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cause_of_an_integrity_error_is_logged_on_postgres() {
    the_cause_is_logged(Backend::Postgres).await;
}

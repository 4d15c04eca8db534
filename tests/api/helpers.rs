//! The test app, written once: each test gets the real server on a random port and a database
//! of its own, so tests run in parallel.

use std::collections::HashMap;
use std::future::Future;

use diesel::{Connection, PgConnection, RunQueryDsl};
use ketamine_outcomes::config::Settings;
use ketamine_outcomes::startup::Application;

/// Names a PostgreSQL server (any database on it) for the PostgreSQL half of every API test.
pub const POSTGRES_VAR: &str = "KO_TEST_POSTGRES_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Declares one API test that runs on both backends: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! api_test {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::helpers::run($crate::helpers::Backend::Sqlite, $body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::helpers::run($crate::helpers::Backend::Postgres, $body).await
            }
        }
    };
}

/// Runs `test` against a fresh app on `backend`. Without `KO_TEST_POSTGRES_URL` the PostgreSQL
/// half says so and returns; `.ci/run` always sets it, so there it always runs.
pub async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: {POSTGRES_VAR} is not set");
        return;
    };
    let app = TestApp::spawn(database, &[]).await;
    test(app).await;
}

/// A database that exists for one test and is dropped after it.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite(tempfile::tempdir().expect("temp dir"))),
            Backend::Postgres => {
                let server = std::env::var(POSTGRES_VAR).ok()?;
                let name = format!("ko_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&server).unwrap_or_else(|e| {
                    panic!("{POSTGRES_VAR} names a server that cannot be reached: {e}")
                });
                diesel::sql_query(format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .expect("create test database");
                Some(Self::Postgres { server, name })
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("test.db").display().to_string(),
            Self::Postgres { server, name } => with_database(server, name),
        }
    }

    pub fn data_dir(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().display().to_string(),
            Self::Postgres { .. } => std::env::temp_dir().display().to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { server, name } = self {
            if let Ok(mut admin) = PgConnection::establish(server) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

/// Replaces the database name of a PostgreSQL URL.
pub fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The running app and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    _database: TestDatabase,
}

impl TestApp {
    /// Starts the app on `database`, with `overrides` on top of the test settings.
    pub async fn spawn(database: TestDatabase, overrides: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = HashMap::from([
            ("KO_BIND_ADDRESS".into(), "127.0.0.1:0".into()),
            ("DATABASE_URL".into(), database.url()),
            ("KO_DATA_DIR".into(), database.data_dir()),
            ("KO_DB_ACQUIRE_TIMEOUT_SECS".into(), "2".into()),
        ]);
        for (k, v) in overrides {
            env.insert((*k).into(), (*v).into());
        }
        let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings");
        let app = Application::build(&settings).expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.into_server());
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            _database: database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }
}

/// A response's status, content type and JSON body, for assertions.
pub async fn problem(res: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.json().await.expect("a JSON body");
    (status, content_type, body)
}

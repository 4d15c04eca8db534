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
    ($name:ident, overrides = $overrides:expr, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::helpers::run_with($crate::helpers::Backend::Sqlite, $overrides, $body).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::helpers::run_with($crate::helpers::Backend::Postgres, $overrides, $body)
                    .await
            }
        }
    };
    ($name:ident, $body:expr) => {
        $crate::api_test!($name, overrides = &[], $body);
    };
}

/// Runs `test` against a fresh app on `backend` with `overrides` on the test settings.
/// Without `KO_TEST_POSTGRES_URL` the PostgreSQL half says so and returns; `.ci/run` always
/// sets it, so there it always runs.
pub async fn run_with<F, Fut>(backend: Backend, overrides: &[(&str, &str)], test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(database) = TestDatabase::create(backend) else {
        eprintln!("skipped: {POSTGRES_VAR} is not set");
        return;
    };
    test(TestApp::spawn(database, overrides).await).await;
}

/// A database that exists for one test and is dropped after it.
pub enum TestDatabase {
    Sqlite(tempfile::TempDir),
    /// A database of its own on the server, and a data directory of its own (for the
    /// signing key the app makes there): no two tests share either.
    Postgres {
        server: String,
        name: String,
        data: tempfile::TempDir,
    },
}

impl TestDatabase {
    pub fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite(tempfile::tempdir().expect("temp dir"))),
            Backend::Postgres => Some(Self::on_server(&std::env::var(POSTGRES_VAR).ok()?)),
        }
    }

    /// A new database on the PostgreSQL server of `server` (a URL of any database on it).
    pub fn on_server(server: &str) -> Self {
        let name = format!("ko_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(server)
            .unwrap_or_else(|e| panic!("{server}: the server cannot be reached: {e}"));
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create test database");
        let data = tempfile::tempdir().expect("temp dir");
        Self::Postgres {
            server: server.to_owned(),
            name,
            data,
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("test.db").display().to_string(),
            Self::Postgres { server, name, .. } => with_database(server, name),
        }
    }

    pub fn data_dir(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().display().to_string(),
            Self::Postgres { data, .. } => data.path().display().to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Postgres { server, name, .. } = self {
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
    pub settings: Settings,
    /// The first administrator, created as `ketamine-outcomes user create` would.
    pub admin: Credentials,
    _database: std::sync::Arc<TestDatabase>,
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

/// A signed-in account: its tokens and who it is.
#[derive(Clone, Debug)]
pub struct Session {
    pub user_id: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "lantern orbit kettle";

impl TestApp {
    /// Starts the app on `database`, with `overrides` on top of the test settings.
    pub async fn spawn(database: TestDatabase, overrides: &[(&str, &str)]) -> Self {
        let mut env: HashMap<String, String> = HashMap::from([
            ("KO_BIND_ADDRESS".into(), "127.0.0.1:0".into()),
            ("DATABASE_URL".into(), database.url()),
            ("KO_DATA_DIR".into(), database.data_dir()),
            ("KO_DB_ACQUIRE_TIMEOUT_SECS".into(), "2".into()),
            // Tests sign in often from one address; the tests of the ceilings set their own.
            ("KO_HASHES_PER_MINUTE_PER_ADDRESS".into(), "1000000".into()),
            ("KO_HASHES_PER_MINUTE_PER_ACCOUNT".into(), "1000000".into()),
            // The flags that time raises are swept for every second, not every 30.
            ("KO_SWEEP_SECS".into(), "1".into()),
            // Webhooks reach this host only, whatever URL a test gives.
            ("KO_WEBHOOK_EGRESS".into(), "loopback".into()),
        ]);
        for (k, v) in overrides {
            env.insert((*k).into(), (*v).into());
        }
        let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings");
        let admin = Credentials {
            email: "admin@clinic.example".into(),
            password: PASSWORD.into(),
        };
        let app = Self::start(settings, admin, std::sync::Arc::new(database)).await;
        let seed = app.settings.clone();
        tokio::task::spawn_blocking(move || {
            let db =
                ketamine_outcomes::startup::open_database(&seed, &seed.database_url).expect("db");
            ketamine_outcomes::accounts::create_staff_account(
                &db,
                &seed,
                "admin@clinic.example",
                "admin",
                None,
                PASSWORD,
            )
        })
        .await
        .expect("seeding ran")
        .expect("admin created");
        app
    }

    async fn start(
        settings: Settings,
        admin: Credentials,
        database: std::sync::Arc<TestDatabase>,
    ) -> Self {
        let app = Application::build(&settings).expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.into_server());
        Self {
            address,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            settings,
            admin,
            _database: database,
        }
    }

    /// A second API instance on the same database and signing key, as a second process
    /// behind a load balancer would be.
    pub async fn second_instance(&self) -> Self {
        self.second_instance_with(|_| {}).await
    }

    /// A second API instance, as [`TestApp::second_instance`], with settings of its own (a
    /// process restarted with a new configuration).
    pub async fn second_instance_with(&self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.settings.clone();
        change(&mut settings);
        Self::start(settings, self.admin.clone(), self._database.clone()).await
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    /// The JSON body of a read that must succeed (200).
    pub async fn read(&self, path: &str, token: &str) -> serde_json::Value {
        let res = self.get_as(path, token).await;
        assert_eq!(res.status(), 200, "{path}");
        res.json().await.expect("a JSON body")
    }

    /// A sync's answer (`path` with `updated_since`) once `settled` holds of it. A sync sees
    /// a change once every write that started before it has ended; on PostgreSQL that is every
    /// write of the cluster, which the other tests' databases share, so a change may show a
    /// moment after it commits.
    pub async fn synced(
        &self,
        path: &str,
        token: &str,
        settled: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let ask = || async { self.get_as(path, token).await.json().await.unwrap() };
        eventually(ask, settled).await
    }

    pub async fn patch(
        &self,
        path: &str,
        token: &str,
        if_match: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body);
        if let Some(version) = if_match {
            req = req.header("if-match", version);
        }
        req.send().await.expect("request sent")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/v1/auth/login",
            None,
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs in and returns the session; panics unless the sign-in succeeds.
    pub async fn sign_in(&self, email: &str, password: &str) -> Session {
        let res = self.login(email, password).await;
        assert_eq!(res.status(), 200, "sign-in of {email}");
        let tokens: serde_json::Value = res.json().await.unwrap();
        let access_token = tokens["access_token"].as_str().unwrap().to_owned();
        let me: serde_json::Value = self
            .get_as("/v1/me", &access_token)
            .await
            .json()
            .await
            .unwrap();
        Session {
            user_id: me["id"].as_str().unwrap().to_owned(),
            email: email.to_owned(),
            access_token,
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn sign_in_admin(&self) -> Session {
        self.sign_in(&self.admin.email, &self.admin.password).await
    }

    /// Creates a clinic through the API and returns its id.
    pub async fn create_clinic(&self, admin: &Session, name: &str) -> String {
        let res = self
            .post(
                "/v1/clinics",
                Some(&admin.access_token),
                &serde_json::json!({"name": name}),
            )
            .await;
        assert_eq!(res.status(), 201);
        res.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a staff account of `role` (in `clinic` for a clinician) and signs it in.
    pub async fn sign_in_new(&self, admin: &Session, role: &str, clinic: Option<&str>) -> Session {
        let email = format!("{role}-{}@clinic.example", uuid::Uuid::new_v4().simple());
        let res = self
            .post(
                "/v1/users",
                Some(&admin.access_token),
                &serde_json::json!({"email": email, "password": PASSWORD, "role": role, "clinic_id": clinic}),
            )
            .await;
        assert_eq!(res.status(), 201, "create {role}");
        self.sign_in(&email, PASSWORD).await
    }

    /// The key the app signs access tokens with, for forging tokens in attacks.
    pub fn signing_secret(&self) -> Vec<u8> {
        use base64::Engine;
        let text =
            std::fs::read_to_string(self.settings.data_dir.join("jwt-secret")).expect("key file");
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    }

    /// A direct connection pool to the app's database, for checks the API cannot make.
    pub fn database(&self) -> ketamine_outcomes::store::Db {
        ketamine_outcomes::startup::open_database(&self.settings, &self.settings.database_url)
            .expect("db")
    }

    /// Returns once the sync horizon has passed every write committed so far, so that a
    /// stream or a sync opened now starts after them. On PostgreSQL that is once every
    /// transaction of the cluster that began before this call has ended ([`eventually`]'s
    /// time); on SQLite at once.
    pub async fn horizon_passes_every_commit(&self) {
        use ketamine_outcomes::store::{horizon, DbConnection, StoreError};
        #[derive(diesel::QueryableByName)]
        struct Next {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            position: i64,
        }
        let db = self.database();
        let next = db
            .snapshot(|conn| match conn {
                DbConnection::Postgres(pg) => diesel::sql_query(
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS position",
                )
                .get_result::<Next>(pg)
                .map(|next| next.position)
                .map_err(StoreError::from),
                DbConnection::Sqlite(_) => horizon(conn),
            })
            .await
            .unwrap();
        let now = || async { db.snapshot(horizon).await.unwrap() };
        let passed = eventually(now, |horizon| *horizon >= next).await;
        assert!(
            passed >= next,
            "the horizon stayed at {passed}, below {next}"
        );
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

/// Audit events naming `patient` — of one action, when given — counted in the database.
pub async fn audit_events(app: &TestApp, patient: &str, action: Option<&'static str>) -> i64 {
    use diesel::prelude::*;
    use ketamine_outcomes::store::schema::audit_events as ae;
    let patient = patient.to_owned();
    app.database()
        .snapshot(move |conn| {
            let mut query = ae::table.filter(ae::patient_id.eq(patient)).into_boxed();
            if let Some(action) = action {
                query = query.filter(ae::action.eq(action));
            }
            query
                .count()
                .get_result::<i64>(conn)
                .map_err(ketamine_outcomes::store::StoreError::from)
        })
        .await
        .unwrap()
}

/// The sweep ticks once at start and not again within a test: for a test that writes a history
/// a record at a time, where a sweep between a session and its follow-up would find it missed.
pub const QUIET_SWEEP: &[(&str, &str)] = &[("KO_SWEEP_SECS", "60")];

/// What `ask` answers once `settled` holds of it, asked every 100 ms for up to 40 seconds
/// (then its last answer): for what the service does a moment later on its own — a sync's
/// horizon passing a commit, the sweep raising the flags that time raises. Forty, because on
/// PostgreSQL the horizon waits for every transaction of the cluster that began before the
/// commit, the other tests' too, which a loaded CI machine runs slowly.
pub async fn eventually<T, F, Fut>(ask: F, settled: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        let answer = ask().await;
        if settled(&answer) || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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

/// How many `tag` elements of an SVG document have `attr` set to `color` (any case).
pub fn painted(doc: &roxmltree::Document, tag: &str, attr: &str, color: &str) -> usize {
    doc.descendants()
        .filter(|n| {
            n.has_tag_name(tag)
                && n.attribute(attr)
                    .is_some_and(|c| c.eq_ignore_ascii_case(color))
        })
        .count()
}

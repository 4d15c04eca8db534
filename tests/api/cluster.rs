//! A PostgreSQL cluster of a test's own, for what a relay cannot show: the database itself
//! crashing (no checkpoint), recovering, and streaming to a standby. Made with Debian's
//! `pg_createcluster` on a spare loopback port and run as the `postgres` user (PostgreSQL
//! will not run as root); dropped with its port and files when the test ends, also when it
//! fails. A cluster a killed test run left behind is dropped by the next one.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::helpers::POSTGRES_VAR;

/// Every cluster a test makes is named `ko_test_{pid}_{n}`: the pid tells a later run
/// whether the run that made it is still alive.
const PREFIX: &str = "ko_test_";
static MADE: AtomicUsize = AtomicUsize::new(0);

pub struct Cluster {
    version: String,
    name: String,
    pub port: u16,
}

impl Cluster {
    /// A new, started cluster. `None` (the test skips) where PostgreSQL's tests do not run —
    /// `KO_TEST_POSTGRES_URL` unset — or, outside CI, where PostgreSQL's cluster tools are
    /// not installed; on CI their absence fails the test.
    pub fn create() -> Option<Self> {
        std::env::var(POSTGRES_VAR).ok()?;
        let Some(version) = installed_version() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the cluster tests: pg_createcluster (postgresql-common) is needed"
            );
            eprintln!("skipped: pg_createcluster is not installed");
            return None;
        };
        drop_orphans(&version);
        let cluster = Self::make(version);
        cluster.start();
        Some(cluster)
    }

    /// A cluster made but not started, on a port nothing listens on.
    fn make(version: String) -> Self {
        let name = format!(
            "{PREFIX}{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        let port = spare_port();
        let cluster = Self {
            version,
            name,
            port,
        };
        // Trust on loopback and the local socket, as the development server here has it; the
        // data directory under the postgres user's home, which it may write.
        cluster.tool(
            "pg_createcluster",
            &[
                "--quiet",
                "--start-conf=manual",
                "--port",
                &port.to_string(),
                "--datadir",
                &cluster.data_dir().display().to_string(),
                &cluster.version,
                &cluster.name,
                "--",
                "--auth-host=trust",
                "--auth-local=trust",
            ],
        );
        cluster
    }

    /// A streaming standby of this cluster, started: `pg_basebackup` of this cluster into a
    /// new cluster's data directory, with the settings to follow this one (`-R`).
    pub fn standby(&self) -> Self {
        let standby = Self::make(self.version.clone());
        let data = standby.data_dir().display().to_string();
        standby.tool("find", &[&data, "-mindepth", "1", "-delete"]);
        standby.tool(
            "pg_basebackup",
            &[
                "--host=127.0.0.1",
                &format!("--port={}", self.port),
                "--username=postgres",
                "--pgdata",
                &data,
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
            ],
        );
        standby.start();
        standby
    }

    /// Waits (up to 20 s) until this standby has replayed all that `primary` had written when
    /// it was asked.
    pub fn replay_all_of(&self, primary: &Cluster) {
        let written = primary.value("SELECT pg_current_wal_lsn()::text");
        self.wait_for(&format!(
            "SELECT (pg_last_wal_replay_lsn() >= '{written}'::pg_lsn)::text"
        ));
    }

    /// Pauses this standby's replay, returning once it has paused.
    pub fn pause_replay(&self) {
        self.value("SELECT pg_wal_replay_pause()::text");
        self.wait_for("SELECT (pg_get_wal_replay_pause_state() = 'paused')::text");
    }

    pub fn resume_replay(&self) {
        self.value("SELECT pg_wal_replay_resume()::text");
    }

    /// Asks `sql` (one text value) of the cluster until it answers `true`.
    fn wait_for(&self, sql: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.value(sql) != "true" {
            assert!(
                std::time::Instant::now() < deadline,
                "not within 20 s: {sql}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// The one text value `sql` selects, on the `postgres` database.
    pub fn value(&self, sql: &str) -> String {
        use diesel::{Connection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct Value {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let mut conn = diesel::PgConnection::establish(&self.url("postgres")).unwrap();
        diesel::sql_query(format!("SELECT ({sql}) AS value"))
            .get_result::<Value>(&mut conn)
            .unwrap()
            .value
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        self.ctl(&["start"]);
    }

    /// A crash: every server process stops at once, without a checkpoint; the next start
    /// recovers from the write-ahead log.
    pub fn crash(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
    }

    /// A clean stop.
    pub fn stop(&self) {
        self.ctl(&["stop", "-m", "fast"]);
    }

    fn ctl(&self, action: &[&str]) {
        let mut args = vec!["--skip-systemctl-redirect", &self.version, &self.name];
        args.extend_from_slice(action);
        self.tool("pg_ctlcluster", &args);
    }

    fn data_dir(&self) -> PathBuf {
        PathBuf::from("/var/lib/postgresql").join(&self.name)
    }

    /// Runs one of PostgreSQL's tools as the postgres user; a failure panics with what it
    /// said and the end of the cluster's log.
    fn tool(&self, program: &str, args: &[&str]) {
        let output = as_postgres(program, args).output().unwrap();
        if !output.status.success() {
            let log = format!(
                "/var/log/postgresql/postgresql-{}-{}.log",
                self.version, self.name
            );
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{program} {args:?}: {}\n{}\nlog:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop_cluster(&self.version, &self.name);
    }
}

/// Stops the cluster (immediately: its data is dropped next) and removes its data directory,
/// configuration and log.
fn drop_cluster(version: &str, name: &str) {
    let _ = as_postgres("pg_dropcluster", &["--stop", version, name]).output();
    let _ = std::fs::remove_file(format!(
        "/var/log/postgresql/postgresql-{version}-{name}.log"
    ));
}

/// The newest PostgreSQL whose server and Debian's cluster tools are installed.
fn installed_version() -> Option<String> {
    Command::new("pg_createcluster")
        .arg("--version")
        .output()
        .ok()?;
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|v| v.parse::<u32>().is_ok())
        .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
}

/// Drops the clusters of test runs that are no longer running (killed before their clean-up).
fn drop_orphans(version: &str) {
    let Ok(listed) = Command::new("pg_lsclusters").arg("--no-header").output() else {
        return;
    };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(v), Some(name)) = (fields.next(), fields.next()) else {
            continue;
        };
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if v == version && !PathBuf::from(format!("/proc/{pid}")).exists() {
                drop_cluster(v, name);
            }
        }
    }
}

/// A loopback port nothing listens on now.
fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `program` run as the postgres user: through `runuser` when this process is root (who may
/// not run PostgreSQL), directly otherwise.
fn as_postgres(program: &str, args: &[&str]) -> Command {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let mut command = if root {
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--", program]);
        runuser
    } else {
        Command::new(program)
    };
    // A directory the postgres user may stand in (the test's may be closed to it).
    command.args(args).current_dir("/");
    command
}

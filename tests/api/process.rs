//! The real binary as a child process, for what only a process can show: signals, exit
//! status, and several API processes sharing one database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::helpers::PASSWORD;

pub const BINARY: &str = env!("CARGO_BIN_EXE_ketamine-outcomes");

/// The signing key the processes of one test share, as processes behind a load balancer do.
pub const SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub struct Process {
    pub child: Child,
    pub port: u16,
    /// Every line the process has logged since it started serving.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The process's own data directory, when the test did not give one.
    _data: Option<tempfile::TempDir>,
}

fn command(data: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("KO_BIND_ADDRESS", "127.0.0.1:0")
        .env("KO_DATA_DIR", data)
        .env("KO_LOG_FORMAT", "json")
        .env("KO_HASHES_PER_MINUTE_PER_ADDRESS", "1000000")
        .env("KO_HASHES_PER_MINUTE_PER_ACCOUNT", "1000000")
        .env("KO_SWEEP_SECS", "1")
        .env("KO_WEBHOOK_EGRESS", "loopback")
        .envs(env.iter().copied());
    command
}

impl Process {
    /// Starts `ketamine-outcomes serve` on a free port and reads the port from its log.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut process = Self::start_in(data.path(), env);
        process._data = Some(data);
        process
    }

    /// Starts `ketamine-outcomes serve` on `data` (`KO_DATA_DIR`), which outlives it: a
    /// restart finds what the last process left there.
    pub fn start_in(data: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let mut child = command(data, env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("the server logs that it is serving")
                .unwrap();
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if entry["message"] == "serving" {
                break entry["port"].as_u64().unwrap() as u16;
            }
        };
        // Keep draining the log so the server never blocks on a full pipe, and keep it.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            port,
            log,
            _data: None,
        }
    }

    /// The log lines so far, each a JSON object.
    pub fn log(&self) -> Vec<serde_json::Value> {
        let lines = self.log.lock().unwrap().clone();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// How the process ended, if it ends within `within`; `None` if it is still running then
    /// (it is killed when the test drops it).
    pub fn exit_within(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            match self.child.try_wait().unwrap() {
                Some(status) => return Some(status),
                None if std::time::Instant::now() > deadline => return None,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ketamine-outcomes user create`, giving the password on standard input.
pub fn create_account(env: &[(&str, &str)], role: &str, email: &str, password: &str) {
    let data = tempfile::tempdir().unwrap();
    let mut child = command(data.path(), env)
        .args(["user", "create", "--role", role, "--email", email])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "user create: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Signs in the administrator, creates a clinic, a clinician and a patient through `server`;
/// returns the clinician's token and the patient's id.
pub async fn clinic_with_patient(client: &reqwest::Client, server: &Process) -> (String, String) {
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = client.post(server.url(path)).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let login = |email: &str| json!({"email": email, "password": PASSWORD});
    let admin = post("/v1/auth/login", None, login("admin@clinic.example")).await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let clinic = post("/v1/clinics", Some(&admin), json!({"name": "Harbour"})).await;
    let user = json!({"email": "doc@clinic.example", "password": PASSWORD, "role": "clinician", "clinic_id": clinic["id"]});
    post("/v1/users", Some(&admin), user).await;
    let doc = post("/v1/auth/login", None, login("doc@clinic.example")).await;
    let doc = doc["access_token"].as_str().unwrap().to_owned();
    let body = json!({"birth_year": 1980, "sex": "male", "indications": ["major_depression"]});
    let patient = post("/v1/patients", Some(&doc), body).await;
    (doc, patient["id"].as_str().unwrap().to_owned())
}

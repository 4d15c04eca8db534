//! The real binary as a child process, for what only a process can show: signals, exit
//! status, and several API processes sharing one database.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

pub const BINARY: &str = env!("CARGO_BIN_EXE_ketamine-outcomes");

pub struct Process {
    pub child: Child,
    pub port: u16,
    _data: tempfile::TempDir,
}

fn command(data: &std::path::Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("KO_BIND_ADDRESS", "127.0.0.1:0")
        .env("KO_DATA_DIR", data)
        .env("KO_LOG_FORMAT", "json")
        .envs(env.iter().copied());
    command
}

impl Process {
    /// Starts `ketamine-outcomes serve` on a free port and reads the port from its log.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut child = command(data.path(), env)
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
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            port,
            _data: data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
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

//! Graceful shutdown of the real binary on SIGTERM and on SIGINT alike: the request in flight
//! finishes, new connections are refused, and the process exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

/// Starts the binary on a free port and reads the port from its JSON log.
fn start() -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ketamine-outcomes"))
        .env_clear()
        .env("KO_BIND_ADDRESS", "127.0.0.1:0")
        .env("KO_DATA_DIR", data.path())
        .env("KO_LOG_FORMAT", "json")
        .env("KO_SHUTDOWN_TIMEOUT_SECS", "20")
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
    Server {
        child,
        port,
        _data: data,
    }
}

fn stops_gracefully_on(signal: &str) {
    let mut server = start();
    let body = r#"{"email": "nobody@clinic.example", "password": "lantern orbit kettle"}"#;
    let (first, rest) = body.split_at(20);
    let mut in_flight = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        in_flight,
        "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let status = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], server.port).into(),
            Duration::from_secs(1)
        )
        .is_err(),
        "new connections are refused after {signal}"
    );

    in_flight.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    in_flight.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 401"),
        "the in-flight request finished: {response}"
    );
    assert!(response.contains("application/problem+json"));

    let exit = server.child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "exit status after {signal}");
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    stops_gracefully_on("-TERM");
}

#[test]
fn sigint_finishes_in_flight_requests_and_exits_zero() {
    stops_gracefully_on("-INT");
}

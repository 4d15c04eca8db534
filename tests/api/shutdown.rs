//! Graceful shutdown of the real binary on SIGTERM and on SIGINT alike: the request in flight
//! finishes, new connections are refused, and the process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::process::Process;

/// The request in flight is one whose head the server has read and whose handler runs: the
/// test asks `Expect: 100-continue` and signals only once the server's `100 Continue` says so.
/// (A head still unread in the socket when the stop comes is not in flight: the server closes
/// that connection, as HTTP/1.1 lets it close an idle one.)
fn stops_gracefully_on(signal: &str) {
    let mut server = Process::start(&[("KO_SHUTDOWN_TIMEOUT_SECS", "20")]);
    let body = r#"{"email": "nobody@clinic.example", "password": "lantern orbit kettle"}"#;
    let mut in_flight = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(
        in_flight,
        "POST /v1/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    in_flight
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let continued = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut interim = vec![0; continued.len()];
    in_flight.read_exact(&mut interim).unwrap();
    assert_eq!(interim, continued, "the handler has the request");

    server.signal(signal);
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        TcpStream::connect_timeout(
            &([127, 0, 0, 1], server.port).into(),
            Duration::from_secs(1),
        )
        .is_err()
    });
    assert!(
        refused,
        "new connections are refused within 10 s of {signal}"
    );

    let wrote = in_flight.write_all(body.as_bytes());
    let mut response = String::new();
    let read = in_flight.read_to_string(&mut response);
    let exit = server.exit_within(Duration::from_secs(15));
    assert!(
        wrote.is_ok() && read.is_ok() && response.starts_with("HTTP/1.1 401"),
        "the in-flight request finished: {wrote:?} {read:?} {response}\nexit: {exit:?}\nlog: {:?}",
        server.log()
    );
    assert!(response.contains("application/problem+json"));
    assert_eq!(
        exit.and_then(|e| e.code()),
        Some(0),
        "exit status after {signal}"
    );
}

#[test]
fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    stops_gracefully_on("-TERM");
}

#[test]
fn sigint_finishes_in_flight_requests_and_exits_zero() {
    stops_gracefully_on("-INT");
}

/// A stop sent the moment the server says it is serving (a supervisor that restarts it at
/// once) is a graceful stop, never the signal's default action killing it.
#[test]
fn a_stop_the_moment_it_serves_is_graceful() {
    for signal in ["-INT", "-TERM"] {
        let mut server = Process::start(&[]);
        server.signal(signal);
        let exit = server.exit_within(Duration::from_secs(15));
        assert_eq!(
            exit.and_then(|e| e.code()),
            Some(0),
            "after {signal}: {exit:?}"
        );
    }
}

/// A clinic's flag stream stays open until its client leaves; a stop ends it at once (the
/// client resumes on another process with its last event id) instead of holding the process
/// for the whole shutdown timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_flag_streams_at_once() {
    use crate::helpers::{Backend, TestDatabase, PASSWORD};
    use crate::process::{clinic_with_patient, create_account, SECRET};

    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    let url = database.url();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KO_JWT_SECRET", SECRET),
        ("KO_SHUTDOWN_TIMEOUT_SECS", "20"),
    ];
    create_account(&env, "admin", "admin@clinic.example", PASSWORD);
    let mut server = Process::start(&env);
    let client = reqwest::Client::new();
    let (clinician, _) = clinic_with_patient(&client, &server).await;
    let mut stream = client
        .get(server.url("/v1/flags/stream"))
        .bearer_auth(&clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.chunk().await.unwrap().is_some(),
        "the stream is open"
    );

    let stopped = std::time::Instant::now();
    server.signal("-TERM");
    let exit = tokio::task::spawn_blocking(move || server.child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "stopped in {:?}, not the 20 s timeout",
        stopped.elapsed()
    );
}

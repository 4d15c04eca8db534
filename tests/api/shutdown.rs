//! Graceful shutdown of the real binary on SIGTERM and on SIGINT alike: the request in flight
//! finishes, new connections are refused, and the process exits 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::process::Process;

fn stops_gracefully_on(signal: &str) {
    let mut server = Process::start(&[("KO_SHUTDOWN_TIMEOUT_SECS", "20")]);
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

    server.signal(signal);
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

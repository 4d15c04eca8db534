//! A webhook receiver on loopback for the tests: it answers each post as it is told (fail
//! the first N, answer slowly), keeps every request it was sent, and checks nothing itself —
//! the tests verify signatures with the Standard Webhooks reference library.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the receiver answers.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// This many posts (counted over all events) are answered 503 first.
    pub fail_first: usize,
    /// The status of every post after those.
    pub status: u16,
    /// How long each answer takes.
    pub delay: Duration,
}

impl Behaviour {
    pub const HEALTHY: Self = Self {
        fail_first: 0,
        status: 204,
        delay: Duration::ZERO,
    };
}

/// One post the receiver was sent, and what it answered.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
    pub answered: u16,
    /// When it arrived (its answer was written after [`Behaviour::delay`], whether or not
    /// the sender was still there to read it).
    pub arrived_at: std::time::Instant,
}

impl Received {
    pub fn webhook_id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }

    /// Whether the Standard Webhooks reference implementation accepts its signature under
    /// `secret` (and its timestamp as recent).
    pub fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret)
            .expect("a whsec_ secret")
            .verify(self.body.as_bytes(), &self.headers)
            .is_ok()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    posts: usize,
    /// Posts that arrived, answered yet or not.
    arrived: usize,
}

pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
    behaviour: Arc<Mutex<Behaviour>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        Self::start_on(0, behaviour).await
    }

    /// A receiver on `port` of 127.0.0.1 (0: any free one).
    pub async fn start_on(port: u16, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let (s, b) = (state.clone(), behaviour.clone());
        let accepting = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), b.clone()));
            }
        });
        Self {
            port,
            state,
            behaviour,
            accepting,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/ketamine", self.port)
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many posts have arrived, answered or still waiting for their answer.
    pub fn arrived(&self) -> usize {
        self.state.lock().unwrap().arrived
    }
}

/// Answers the posts of one connection (kept alive) until the client closes it.
async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, behaviour: Arc<Mutex<Behaviour>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut headers = HeaderMap::new();
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("a header line");
            headers.insert(
                HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
                HeaderValue::from_str(value.trim()).unwrap(),
            );
        }
        let length: usize = headers
            .get("content-length")
            .map(|v| v.to_str().unwrap().parse().unwrap())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let arrived_at = std::time::Instant::now();
        let now = *behaviour.lock().unwrap();
        let answered = {
            let mut state = state.lock().unwrap();
            state.arrived += 1;
            state.posts += 1;
            if state.posts <= now.fail_first {
                503
            } else {
                now.status
            }
        };
        tokio::time::sleep(now.delay).await;
        let reply = format!("HTTP/1.1 {answered} Answer\r\ncontent-length: 2\r\n\r\nok");
        if stream.get_mut().write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        state.lock().unwrap().received.push(Received {
            headers,
            body: String::from_utf8(body).expect("UTF-8"),
            answered,
            arrived_at,
        });
    }
}

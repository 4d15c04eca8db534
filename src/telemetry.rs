//! Logs, request ids and metrics.
//!
//! Log lines carry the request id, method, route pattern, status and latency — never a body, a
//! query string, a header value or a token, so no personal data or secret reaches the log.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::store::{Db, ReplicaState};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the global subscriber; `RUST_LOG` overrides the default level.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests build many apps in one process) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The request id of the current request, set by [`observe`].
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Accepts a client's id only when it is short and plain, so it cannot smuggle anything into
/// a log line or a header.
fn client_request_id(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(&REQUEST_ID)?.to_str().ok()?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    (!value.is_empty() && value.len() <= 128 && value.chars().all(plain)).then(|| value.to_owned())
}

/// Prometheus series for the HTTP server, the pool and the research replica.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    hashes: IntCounter,
    /// Present only where research reads a replica of its own.
    replica_up: IntGaugeVec,
    replica_lag: GaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let pool = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )
        .expect("valid metric");
        let hashes = IntCounter::new(
            "password_hashes_total",
            "Password hashes and verifications run by this process",
        )
        .expect("valid metric");
        let replica_up = IntGaugeVec::new(
            Opts::new(
                "research_replica_up",
                "1 when the research replica answers, 0 when it does not",
            ),
            &["database"],
        )
        .expect("valid metric");
        let replica_lag = GaugeVec::new(
            Opts::new(
                "research_replica_lag_seconds",
                "How far the research replica's replay stands behind the primary",
            ),
            &["database"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(pool.clone()),
            Box::new(hashes.clone()),
            Box::new(replica_up.clone()),
            Box::new(replica_lag.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric registered once");
        }
        Self {
            registry,
            requests,
            latency,
            pool,
            hashes,
            replica_up,
            replica_lag,
        }
    }

    fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// The replica's series: none without a replica; no lag while it is unreachable (an old
    /// figure would read as current) or while it is not a streaming standby.
    fn replica(&self, state: ReplicaState) {
        const RESEARCH: [&str; 1] = ["research"];
        let (up, lag) = match state {
            ReplicaState::NotConfigured => return,
            ReplicaState::Unreachable => (0, None),
            ReplicaState::Reachable { lag_seconds } => (1, lag_seconds),
        };
        self.replica_up.with_label_values(&RESEARCH).set(up);
        match lag {
            Some(seconds) => self.replica_lag.with_label_values(&RESEARCH).set(seconds),
            None => {
                let _ = self.replica_lag.remove_label_values(&RESEARCH);
            }
        }
    }

    /// The text exposition, with pool usage and the hashes run read at scrape time.
    pub fn render(&self, db: &Db, hashes_computed: u64, replica: ReplicaState) -> String {
        self.replica(replica);
        self.hashes
            .inc_by(hashes_computed.saturating_sub(self.hashes.get()));
        let state = db.pool_state();
        self.pool
            .with_label_values(&["open"])
            .set(i64::from(state.size));
        self.pool
            .with_label_values(&["idle"])
            .set(i64::from(state.idle));
        self.pool
            .with_label_values(&["in_use"])
            .set(i64::from(state.size - state.idle));
        self.pool
            .with_label_values(&["max"])
            .set(i64::from(state.max));
        let mut out = Vec::new();
        // Encoding into memory only fails for invalid metric names, which are fixed above.
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Middleware: gives every request an id (echoing the client's), runs it in a span, writes one
/// access-log line and records its metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = client_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();

    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = match &result {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1e3,
            "served"
        );
    });
    if let Some(metrics) = metrics {
        metrics.observe(&route, &method, status.as_u16(), elapsed.as_secs_f64());
    }
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

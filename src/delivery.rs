//! Webhook delivery (issue 17, parts 2–4): every API process makes the deliveries of the
//! events its clinics' endpoints want from the outbox, claims the due ones, posts them signed
//! by the Standard Webhooks specification and logs each attempt.
//!
//! At least once: a delivery is claimed for a lease before it is posted, and its outcome is
//! stored after; a process that dies in between leaves it to any process once the lease runs
//! out, posted again under the same `webhook-id`. On PostgreSQL two processes never claim
//! the same delivery (`FOR UPDATE SKIP LOCKED`); on SQLite one process serves. A patient's
//! events reach an endpoint in commit order: a delivery waits while an earlier one of its
//! patient's is pending, through all its retries. When the schedule is spent the endpoint
//! is disabled, with the reason, until an administrator enables it again.
//!
//! Egress: the HTTP client resolves names through [`CheckedResolver`], which in production
//! refuses every address that is not public before a connection is opened — the addresses
//! checked are the ones connected to. No proxy is used and no redirect followed; a
//! receiver's body is read to a small bound, then dropped, never stored.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;

use crate::clock;
use crate::domain::egress::{self, Egress, WebhookUrl};
use crate::domain::events::EventBody;
use crate::domain::flags::FlagKind;
use crate::domain::ids::PatientId;
use crate::domain::webhooks::{signature_header, RetrySchedule};
use crate::domain::RuleBroken;
use crate::store::flags::{self, FlagRow};
use crate::store::webhooks::{self, AfterAttempt, AttemptRow, Claimed};
use crate::store::{self, Db, DbConnection, StoreError};

/// How long a receiver has to answer, body included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery is held: past it, the process that claimed it is taken for
/// dead and another may post it. Longer than a post may take (the name lookup and the answer
/// each within [`TIMEOUT`]) and storing what it met.
pub const LEASE: Duration = Duration::from_secs(30);
/// How much of a receiver's answer is read (so the connection can be used again).
const BODY_READ_LIMIT: usize = 4096;
/// Posts in flight per process.
const IN_FLIGHT: usize = 32;
/// Events read from the outbox per endpoint per tick.
const FAN_OUT_BATCH: i64 = 500;
/// How often each process looks for events and due deliveries.
pub const POLL: Duration = Duration::from_millis(200);

/// Resolves a host name to its addresses.
pub type Lookup =
    Arc<dyn Fn(String) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The system resolver.
pub fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
    })
}

/// Why a host may not be posted to.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{host} does not resolve: {source}")]
    Unresolved { host: String, source: io::Error },
    #[error("{host} resolves to {address}, {reason}")]
    Address {
        host: String,
        address: std::net::IpAddr,
        reason: String,
    },
}

/// The addresses of `host` under `egress`: refused when any of them is not allowed, so a
/// name cannot pair a public address with a private one and hope for the second.
pub async fn resolve_checked(
    egress: Egress,
    lookup: &Lookup,
    host: &str,
) -> Result<Vec<SocketAddr>, Refused> {
    if egress == Egress::Loopback {
        // Nothing is looked up: a name server is elsewhere.
        return match host {
            "localhost" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            _ => Err(Refused::Address {
                host: host.to_owned(),
                address: std::net::Ipv4Addr::UNSPECIFIED.into(),
                reason: "a name other than localhost, which this deployment does not look up"
                    .to_owned(),
            }),
        };
    }
    let unresolved = |source| Refused::Unresolved {
        host: host.to_owned(),
        source,
    };
    let addresses = tokio::time::timeout(TIMEOUT, lookup(host.to_owned()))
        .await
        .map_err(|_| unresolved(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")))?
        .map_err(unresolved)?;
    if addresses.is_empty() {
        return Err(Refused::Unresolved {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "no address"),
        });
    }
    for address in &addresses {
        if let Some(reason) = egress::refused_under(egress, address.ip()) {
            return Err(Refused::Address {
                host: host.to_owned(),
                address: address.ip(),
                reason,
            });
        }
    }
    Ok(addresses)
}

/// The HTTP client's resolver: [`resolve_checked`].
struct CheckedResolver {
    egress: Egress,
    lookup: Lookup,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (egress, lookup, host) = (self.egress, self.lookup.clone(), name.as_str().to_owned());
        Box::pin(async move {
            let addresses = resolve_checked(egress, &lookup, &host).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Posts webhooks, under the deployment's egress rule.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    egress: Egress,
    lookup: Lookup,
}

/// What one post met.
#[derive(Debug, Clone)]
pub struct Posted {
    pub status: Option<u16>,
    pub latency: Duration,
    pub error: Option<String>,
}

impl Posted {
    fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Sender {
    pub fn new(egress: Egress, lookup: Lookup) -> Result<Self, reqwest::Error> {
        let resolver = CheckedResolver {
            egress,
            lookup: lookup.clone(),
        };
        let client = reqwest::Client::builder()
            .dns_resolver(resolver)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .user_agent(concat!("ketamine-outcomes/", env!("CARGO_PKG_VERSION")))
            .https_only(egress == Egress::Public)
            .build()?;
        Ok(Self {
            client,
            egress,
            lookup,
        })
    }

    pub fn egress(&self) -> Egress {
        self.egress
    }

    /// Parses `text` as a webhook URL and, in production, checks what its host resolves to
    /// now (every delivery checks again).
    pub async fn check(&self, text: &str) -> Result<WebhookUrl, RuleBroken> {
        let url = WebhookUrl::parse(text, self.egress)?;
        if let (Egress::Public | Egress::Loopback, Some(host)) = (self.egress, url.domain()) {
            resolve_checked(self.egress, &self.lookup, host)
                .await
                .map_err(|refused| RuleBroken::new("url", refused.to_string()))?;
        }
        Ok(url)
    }

    /// Posts a claimed delivery, signed with every secret in force at `now`.
    pub async fn post(&self, claimed: &Claimed, now: DateTime<Utc>) -> Posted {
        let started = Instant::now();
        let refused = |error: String| Posted {
            status: None,
            latency: started.elapsed(),
            error: Some(error),
        };
        let url = match WebhookUrl::parse(&claimed.endpoint.url, self.egress) {
            Ok(url) => url,
            Err(broken) => return refused(format!("refused: the url {}", broken.rule)),
        };
        let secrets = match claimed.endpoint.secrets(clock::to_db(now)) {
            Ok(secrets) => secrets,
            Err(err) => return refused(format!("the endpoint's secret cannot be read: {err}")),
        };
        let (id, timestamp) = (claimed.event.to_string(), now.timestamp());
        let signed: Vec<_> = secrets.iter().collect();
        let signature = signature_header(&signed, &id, timestamp, &claimed.payload);
        let sent = self
            .client
            .post(url.as_url().clone())
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(claimed.payload.clone())
            .send()
            .await;
        match sent {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut read = 0;
                while read < BODY_READ_LIMIT {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        Ok(None) | Err(_) => break,
                    }
                }
                let error = (!(200..300).contains(&status)).then(|| format!("answered {status}"));
                Posted {
                    status: Some(status),
                    latency: started.elapsed(),
                    error,
                }
            }
            Err(err) => refused(describe(&err)),
        }
    }
}

/// A failed post in a line for the log: the egress refusal when that was it.
fn describe(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return format!("refused: {refused}");
        }
        source = cause.source();
    }
    if err.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if err.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// What follows an attempt that met `posted`, the `step`th of its round.
pub fn after_attempt(
    schedule: &RetrySchedule,
    step: i32,
    posted: &Posted,
    now: DateTime<Utc>,
    jitter: f64,
) -> AfterAttempt {
    if posted.succeeded() {
        return AfterAttempt::Delivered;
    }
    let made = usize::try_from(step).unwrap_or(usize::MAX);
    match schedule.next_after(made, jitter) {
        Some(wait) => AfterAttempt::Retry(clock::to_db(
            now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
        )),
        None => AfterAttempt::GiveUp(format!(
            "disabled after {made} failed attempts; the last: {}",
            posted.error.as_deref().unwrap_or("no answer")
        )),
    }
}

/// Makes the deliveries of the events each enabled endpoint has not read yet.
fn fan_out(conn: &mut DbConnection) -> Result<(), StoreError> {
    for endpoint in webhooks::behind(conn)? {
        let now = clock::to_db(clock::now());
        let made = store::write_transaction(conn, |conn| {
            webhooks::fan_out(conn, endpoint, FAN_OUT_BATCH, now)
        });
        // One endpoint that cannot be served must not hold back the others.
        if let Err(err) = made {
            tracing::warn!(%endpoint, error = %err, "an endpoint's deliveries could not be made");
        }
    }
    Ok(())
}

/// The `info` flag that tells the clinic, on the record the event was about, that its
/// webhook gave up on it and is disabled.
fn failed(
    payload: &str,
    url: &str,
    attempts: i32,
    at: NaiveDateTime,
) -> Result<FlagRow, StoreError> {
    let event: EventBody =
        serde_json::from_str(payload).map_err(|e| StoreError::Integrity(Box::new(e)))?;
    let origin =
        WebhookUrl::parse(url, Egress::Any).map_or_else(|_| "…".to_owned(), |u| u.origin_only());
    let detail = format!(
        "The clinic's webhook to {origin} did not accept this record's {} event after {attempts} \
         attempts; it is disabled until an administrator enables it again.",
        event.event_type
    );
    Ok(FlagRow::open(
        PatientId::from(event.data.patient_id),
        FlagKind::WebhookFailed,
        event.data.record_type,
        event.data.record_id,
        detail,
        at,
    ))
}

/// The delivery worker of this process.
#[derive(Clone)]
pub struct Deliverer {
    pub db: Db,
    pub sender: Sender,
    pub schedule: RetrySchedule,
    in_flight: Arc<Semaphore>,
}

impl Deliverer {
    pub fn new(db: Db, sender: Sender, schedule: RetrySchedule) -> Self {
        Self {
            db,
            sender,
            schedule,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    /// Delivers for as long as the process runs.
    pub async fn run(self) {
        let mut ticks = tokio::time::interval(POLL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(err) = self.once().await {
                tracing::warn!(error = %err, "webhook delivery failed; the next tick tries again");
            }
        }
    }

    /// One tick, on one connection: makes the deliveries of new events, then claims every
    /// due one it has room for and starts posting them. How many it started.
    pub async fn once(&self) -> Result<usize, StoreError> {
        let room = self.in_flight.available_permits();
        let claimed = self
            .db
            .run(move |conn| {
                fan_out(conn)?;
                let now = clock::to_db(clock::now());
                if room == 0 || !webhooks::any_due(conn, now)? {
                    return Ok(Vec::new());
                }
                let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
                store::write_transaction(conn, |conn| {
                    webhooks::claim(conn, now, lease_until, room as i64)
                })
            })
            .await?;
        let started = claimed.len();
        for delivery in claimed {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                worker.deliver(delivery).await;
                drop(permit);
            });
        }
        Ok(started)
    }

    /// Posts one claimed delivery and stores what it met.
    async fn deliver(&self, claimed: Claimed) {
        let now = clock::now();
        let posted = self.sender.post(&claimed, now).await;
        let next = after_attempt(
            &self.schedule,
            claimed.step,
            &posted,
            clock::now(),
            rand::random(),
        );
        let attempt = AttemptRow {
            delivery_id: claimed.delivery,
            number: claimed.attempt,
            started_at: clock::to_db(now),
            status_code: posted.status.map(i32::from),
            latency_ms: i32::try_from(posted.latency.as_millis()).unwrap_or(i32::MAX),
            error: posted.error.clone(),
        };
        let endpoint = claimed.endpoint.id;
        let (payload, url, attempts) = (
            claimed.payload.clone(),
            claimed.endpoint.url.clone(),
            claimed.step,
        );
        let stored = self
            .db
            .transaction(move |conn| {
                let at = clock::to_db(clock::now());
                let stored = webhooks::record(conn, &attempt, endpoint, &next, at)?;
                if let (true, AfterAttempt::GiveUp(_)) = (stored, &next) {
                    flags::raise(conn, &failed(&payload, &url, attempts, at)?)?;
                }
                Ok::<_, StoreError>((stored, next))
            })
            .await;
        match stored {
            Ok((true, AfterAttempt::GiveUp(reason))) => tracing::warn!(
                endpoint = %endpoint, %reason, "a webhook endpoint was disabled"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(
                delivery = %claimed.delivery, error = %err,
                "a webhook attempt could not be stored; the delivery is posted again when its lease ends"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stub(answers: Vec<&'static str>) -> Lookup {
        Arc::new(move |_host: String| {
            let addresses = answers
                .iter()
                .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
                .collect();
            Box::pin(async move { Ok(addresses) })
        })
    }

    /// Issue 17, acceptance: names that resolve to loopback, link-local, private or metadata
    /// addresses are refused in production — checked on a stubbed resolver, connecting
    /// nowhere — and allowed outside it.
    #[tokio::test]
    async fn production_refuses_names_that_resolve_to_private_addresses() {
        let cases = [
            (vec!["127.0.0.1"], Some("loopback")),
            (vec!["169.254.169.254"], Some("link-local")),
            (vec!["10.0.0.1"], Some("private")),
            (vec!["fd00::1"], Some("unique local")),
            (vec!["::ffff:127.0.0.1"], Some("loopback")),
            (vec!["93.184.216.34", "10.0.0.1"], Some("private")),
            (vec!["93.184.216.34", "2606:4700::1111"], None),
            (vec![], Some("does not resolve")),
        ];
        for (answers, refusal) in cases {
            let lookup = stub(answers.clone());
            let checked = resolve_checked(Egress::Public, &lookup, "hooks.example.org").await;
            match (checked, refusal) {
                (Ok(addresses), None) => assert_eq!(addresses.len(), answers.len()),
                (Err(refused), Some(why)) => {
                    assert!(refused.to_string().contains(why), "{answers:?}: {refused}")
                }
                (other, _) => panic!("{answers:?}: {other:?}"),
            }
            if !answers.is_empty() {
                let allowed = resolve_checked(Egress::Any, &lookup, "h").await;
                assert!(allowed.is_ok(), "{answers:?}");
            }
        }
    }

    /// Tests and CI reach this host only: nothing but loopback, and no name is looked up
    /// (the stub would panic if it were asked).
    #[tokio::test]
    async fn loopback_egress_reaches_this_host_only_and_looks_nothing_up() {
        let never: Lookup = Arc::new(|host: String| panic!("{host} was looked up"));
        for host in ["hooks.example.org", "metadata.google.internal"] {
            let refused = resolve_checked(Egress::Loopback, &never, host)
                .await
                .unwrap_err();
            assert!(
                refused.to_string().contains("does not look up"),
                "{refused}"
            );
        }
        let local = resolve_checked(Egress::Loopback, &never, "localhost")
            .await
            .unwrap();
        assert!(local.iter().all(|a| a.ip().is_loopback()));
        let sender = Sender::new(Egress::Loopback, never).unwrap();
        assert!(sender.check("http://127.0.0.1:9/h").await.is_ok());
        assert!(sender.check("http://192.168.1.1:9/h").await.is_err());
    }

    /// A URL is checked at creation on what its name resolves to, in production only.
    #[tokio::test]
    async fn creation_checks_the_resolved_addresses_in_production() {
        let metadata = Sender::new(Egress::Public, stub(vec!["169.254.169.254"])).unwrap();
        let refused = metadata
            .check("https://metadata.google.internal/computeMetadata/v1/")
            .await
            .unwrap_err();
        assert_eq!(refused.field, "url");
        assert!(refused.rule.contains("169.254.169.254"), "{}", refused.rule);
        let public = Sender::new(Egress::Public, stub(vec!["93.184.216.34"])).unwrap();
        assert!(public.check("https://hooks.example.org/k").await.is_ok());
        let development = Sender::new(Egress::Any, stub(vec!["10.0.0.1"])).unwrap();
        assert!(development.check("http://hooks.internal/k").await.is_ok());
    }

    /// The client's own resolver refuses before connecting: a post to a name that resolves
    /// to a private address fails as refused, and nothing is opened.
    #[tokio::test]
    async fn a_post_to_a_name_resolving_privately_is_refused_before_connecting() {
        let sender = Sender::new(Egress::Public, stub(vec!["10.0.0.1"])).unwrap();
        let err = sender
            .client
            .post("https://hooks.example.org/k")
            .send()
            .await
            .unwrap_err();
        assert!(
            describe(&err).starts_with("refused: "),
            "{}",
            describe(&err)
        );
        assert!(describe(&err).contains("10.0.0.1"));
    }

    #[test]
    fn after_an_attempt_the_schedule_decides() {
        let schedule = RetrySchedule::new(vec![Duration::ZERO, Duration::from_secs(5)]).unwrap();
        let now: DateTime<Utc> = "2026-10-01T08:00:00Z".parse().unwrap();
        let posted = |status: Option<u16>, error: Option<&str>| Posted {
            status,
            latency: Duration::from_millis(3),
            error: error.map(str::to_owned),
        };
        let ok = posted(Some(204), None);
        let failed = posted(Some(503), Some("answered 503"));
        assert_eq!(
            after_attempt(&schedule, 1, &ok, now, 0.5),
            AfterAttempt::Delivered
        );
        assert_eq!(
            after_attempt(&schedule, 1, &failed, now, 0.5),
            AfterAttempt::Retry(clock::to_db(now + chrono::Duration::seconds(5)))
        );
        match after_attempt(&schedule, 2, &failed, now, 0.5) {
            AfterAttempt::GiveUp(reason) => assert!(reason.contains("answered 503"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_ne!(
            after_attempt(
                &schedule,
                1,
                &posted(None, Some("could not connect")),
                now,
                0.5
            ),
            AfterAttempt::Delivered
        );
    }
}

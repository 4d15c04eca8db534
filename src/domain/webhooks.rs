//! Webhooks by the Standard Webhooks specification (api.md, Notifications): the signing
//! secret, the signature, which events an endpoint wants, and when a failed delivery is tried
//! again.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::events::{EventBody, EventType};
use super::flags::{FlagKind, FlagLevel};
use super::RuleBroken;

const SECRET_PREFIX: &str = "whsec_";

/// How many random bytes a secret the service makes holds (the specification asks for 24 to
/// 64).
pub const SECRET_BYTES: usize = 32;

/// A signing secret in the specification's form: `whsec_` and the base64 of its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// The secret of `key`, which the caller drew from a secure random source.
    pub fn from_key(key: [u8; SECRET_BYTES]) -> Self {
        Self { key: key.to_vec() }
    }

    /// Reads a stored `whsec_…` secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError)?;
        if (24..=64).contains(&key.len()) {
            Ok(Self { key })
        } else {
            Err(SecretError)
        }
    }

    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under this secret.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A stored secret that is not a `whsec_` secret of 24 to 64 bytes.
#[derive(Debug, thiserror::Error)]
#[error("not a whsec_ signing secret")]
pub struct SecretError;

/// The `webhook-signature` header: one signature per secret in force, space-separated, so
/// a receiver that has the new secret or still the old one accepts it during a rotation.
pub fn signature_header(secrets: &[&Secret], id: &str, timestamp: i64, body: &str) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect();
    signatures.join(" ")
}

/// Which events an endpoint is sent: its event types, and of the flag events only those of
/// these levels and kinds (none listed: every one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub events: Vec<EventType>,
    #[serde(default)]
    pub flag_levels: Vec<FlagLevel>,
    #[serde(default)]
    pub flag_kinds: Vec<FlagKind>,
}

impl Subscription {
    /// A subscription to at least one event type, each listed once; levels and kinds narrow
    /// the flag events, so they need one.
    pub fn new(
        events: Vec<EventType>,
        flag_levels: Vec<FlagLevel>,
        flag_kinds: Vec<FlagKind>,
    ) -> Result<Self, Vec<RuleBroken>> {
        let mut broken = Vec::new();
        if events.is_empty() {
            broken.push(RuleBroken::new(
                "events",
                "must name at least one event type",
            ));
        }
        for (field, repeated) in [
            ("events", has_repeats(&events)),
            ("flag_levels", has_repeats(&flag_levels)),
            ("flag_kinds", has_repeats(&flag_kinds)),
        ] {
            if repeated {
                broken.push(RuleBroken::new(field, "lists a value twice"));
            }
        }
        let narrows = !flag_levels.is_empty() || !flag_kinds.is_empty();
        if narrows && !events.iter().any(|e| e.is_about_a_flag()) {
            broken.push(RuleBroken::new(
                "flag_levels",
                "narrows flag events, but events names none",
            ));
        }
        if broken.is_empty() {
            Ok(Self {
                events,
                flag_levels,
                flag_kinds,
            })
        } else {
            Err(broken)
        }
    }

    /// Whether an endpoint with this subscription is sent `event`.
    pub fn wants(&self, event: &EventBody) -> bool {
        if !self.events.contains(&event.event_type) {
            return false;
        }
        let data = &event.data;
        let level_wanted = self.flag_levels.is_empty()
            || data.level.is_some_and(|l| self.flag_levels.contains(&l));
        let kind_wanted =
            self.flag_kinds.is_empty() || data.kind.is_some_and(|k| self.flag_kinds.contains(&k));
        !event.event_type.is_about_a_flag() || (level_wanted && kind_wanted)
    }
}

fn has_repeats<T: PartialEq>(values: &[T]) -> bool {
    values
        .iter()
        .enumerate()
        .any(|(i, v)| values[..i].contains(v))
}

impl EventType {
    fn is_about_a_flag(self) -> bool {
        matches!(
            self,
            EventType::FlagRaised | EventType::FlagAcknowledged | EventType::FlagEscalated
        )
    }
}

vocabulary!(
    /// Where a delivery stands.
    DeliveryStatus {
        /// Waiting for its next attempt (or for an earlier event of its patient).
        Pending = "pending",
        Delivered = "delivered",
        /// Every attempt of the schedule failed; a replay tries again.
        Failed = "failed",
    }
);

/// When each attempt of a delivery is made, counted from the failure before it: the
/// specification's schedule — at once, then 5 seconds, 5 minutes, 30 minutes, 2 hours, 5
/// hours, 10 hours and 10 hours — or a deployment's own.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    pub fn standard() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self(vec![
            Duration::ZERO,
            Duration::from_secs(5),
            minutes(5),
            minutes(30),
            minutes(120),
            minutes(300),
            minutes(600),
            minutes(600),
        ])
    }

    /// A schedule of `delays` (the first is the wait before the first attempt); at least one.
    pub fn new(delays: Vec<Duration>) -> Option<Self> {
        (!delays.is_empty()).then_some(Self(delays))
    }

    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The wait before the next attempt once `made` attempts of this round have failed, or
    /// `None` when that was the last. `jitter` in [0, 1) spreads the wait over ±10 %, so
    /// the deliveries a receiver's outage failed together are not all tried again at once.
    pub fn next_after(&self, made: usize, jitter: f64) -> Option<Duration> {
        let delay = *self.0.get(made)?;
        let spread = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        Some(delay.mul_f64(spread))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{EventData, FlagEvent};
    use crate::domain::flags::FlaggedRecord;
    use crate::domain::ids::{FlagId, PatientId};

    /// The Standard Webhooks reference implementation's own vector
    /// (standard-webhooks/libraries/rust, `test_sign`).
    #[test]
    fn signs_the_specifications_reference_vector() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signed = secret.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signed, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn a_rotation_signs_with_every_secret_in_force() {
        let new = Secret::from_key([1; SECRET_BYTES]);
        let old = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let header = signature_header(&[&new, &old], "msg_1", 1, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("msg_1", 1, "{}"), old.sign("msg_1", 1, "{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_read_back_only_in_their_form() {
        let made = Secret::from_key([7; SECRET_BYTES]);
        assert_eq!(Secret::parse(&made.expose()).unwrap(), made);
        for bad in [
            "",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_",
            "whsec_not base64!",
            "whsec_AAAA",
        ] {
            assert!(Secret::parse(bad).is_err(), "{bad:?}");
        }
        assert!(!format!("{made:?}").contains("whsec_"));
    }

    fn flag(kind: FlagKind, event_type: EventType) -> EventBody {
        let event = FlagEvent {
            flag: FlagId::numbered(1),
            patient: PatientId::numbered(2),
            kind,
            level: kind.level(),
            record_type: FlaggedRecord::Assessment,
            record_id: "r",
        };
        EventBody::flag(event_type, &event, "2026-10-01T08:00:00Z".parse().unwrap())
    }

    /// Issue 17, part 1: `flag.raised` by level and kind; other event types by type alone.
    #[test]
    fn a_subscription_narrows_flag_events_by_level_and_kind() {
        let urgent_raised = Subscription::new(
            vec![EventType::FlagRaised, EventType::SessionCreated],
            vec![FlagLevel::Urgent],
            vec![],
        )
        .unwrap();
        let session = EventBody {
            event_type: EventType::SessionCreated,
            timestamp: "2026-10-01T08:00:00Z".parse().unwrap(),
            data: EventData {
                patient_id: PatientId::numbered(2).as_uuid(),
                record_type: FlaggedRecord::Session,
                record_id: "s".into(),
                flag_id: None,
                kind: None,
                level: None,
            },
        };
        let cases = [
            (
                flag(FlagKind::SuicidalIdeation, EventType::FlagRaised),
                true,
            ),
            (flag(FlagKind::MissedSession, EventType::FlagRaised), false),
            (
                flag(FlagKind::SuicidalIdeation, EventType::FlagAcknowledged),
                false,
            ),
            (session, true),
        ];
        for (event, wanted) in cases {
            assert_eq!(urgent_raised.wants(&event), wanted, "{event:?}");
        }
        let one_kind = Subscription::new(
            vec![EventType::FlagEscalated],
            vec![],
            vec![FlagKind::HypertensiveResponse],
        )
        .unwrap();
        assert!(one_kind.wants(&flag(
            FlagKind::HypertensiveResponse,
            EventType::FlagEscalated
        )));
        assert!(!one_kind.wants(&flag(FlagKind::SuicidalIdeation, EventType::FlagEscalated)));
    }

    #[test]
    fn a_subscription_names_each_field_it_breaks() {
        let fields = |r: Result<Subscription, Vec<RuleBroken>>| -> Vec<String> {
            r.unwrap_err().into_iter().map(|b| b.field).collect()
        };
        assert_eq!(
            fields(Subscription::new(vec![], vec![], vec![])),
            ["events"]
        );
        assert_eq!(
            fields(Subscription::new(
                vec![EventType::SessionCreated, EventType::SessionCreated],
                vec![FlagLevel::Info, FlagLevel::Info],
                vec![],
            )),
            ["events", "flag_levels", "flag_levels"]
        );
    }

    /// Issue 17, part 3: the specification's schedule, eight attempts, with ±10 % jitter.
    #[test]
    fn the_standard_schedule_tries_eight_times_with_jitter() {
        let schedule = RetrySchedule::standard();
        assert_eq!(schedule.attempts(), 8);
        let secs = |made, jitter| schedule.next_after(made, jitter).map(|d| d.as_secs_f64());
        let cases = [
            (0, 0.5, Some(0.0)),
            (1, 0.5, Some(5.0)),
            (1, 0.0, Some(4.5)),
            (1, 1.0, Some(5.5)),
            (2, 0.5, Some(300.0)),
            (3, 0.5, Some(1800.0)),
            (4, 0.5, Some(7200.0)),
            (5, 0.5, Some(18000.0)),
            (6, 0.5, Some(36000.0)),
            (7, 0.5, Some(36000.0)),
            (8, 0.5, None),
        ];
        for (made, jitter, expected) in cases {
            let got = secs(made, jitter);
            match (got, expected) {
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-6, "{made}: {g} vs {e}"),
                _ => assert_eq!(got, expected, "{made}"),
            }
        }
        assert!(RetrySchedule::new(vec![]).is_none());
    }
}

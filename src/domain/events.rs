//! What a clinic is told as it happens (api.md, Notifications): a flag raised or acknowledged,
//! a record created. An event is thin — its type, the ids it concerns, a flag's kind and
//! level, and times — so that a stream or a receiver never holds an answer, a note or
//! anything that identifies a patient beyond the service's ids. Its body follows the
//! Standard Webhooks payload form (`type`, `timestamp`, `data`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::flags::{FlagKind, FlagLevel, FlaggedRecord};
use crate::domain::ids::{FlagId, PatientId};

vocabulary!(
    /// What happened.
    EventType {
        FlagRaised = "flag.raised",
        FlagAcknowledged = "flag.acknowledged",
        FlagEscalated = "flag.escalated",
        AssessmentCreated = "assessment.created",
        SessionCreated = "session.created",
        SideEffectCreated = "side_effect.created",
    }
);

/// The body of an event, as a stream sends it and a receiver is posted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"type": "flag.raised", "timestamp": "2026-10-01T08:00:03Z",
    "data": {"patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "record_type": "assessment",
        "record_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "flag_id": "0d6f2b8e-3c1a-4f5e-9a7b-2c4d6e8f0a1b",
        "kind": "suicidal_ideation", "level": "urgent"}}))]
pub struct EventBody {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    pub data: EventData,
}

/// The ids an event concerns; a flag's kind and level for flag events, nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"patient_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "record_type": "session",
    "record_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"}))]
pub struct EventData {
    pub patient_id: Uuid,
    pub record_type: FlaggedRecord,
    /// A `planned_slot`'s id is `course_id:date`.
    pub record_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FlagKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<FlagLevel>,
}

/// A flag being raised or acknowledged.
pub struct FlagEvent<'a> {
    pub flag: FlagId,
    pub patient: PatientId,
    pub kind: FlagKind,
    pub level: FlagLevel,
    pub record_type: FlaggedRecord,
    pub record_id: &'a str,
}

impl EventBody {
    /// `event_type` (one of the flag events) of `flag`, at `at`.
    pub fn flag(event_type: EventType, flag: &FlagEvent<'_>, at: DateTime<Utc>) -> Self {
        Self {
            event_type,
            timestamp: at,
            data: EventData {
                patient_id: flag.patient.as_uuid(),
                record_type: flag.record_type,
                record_id: flag.record_id.to_owned(),
                flag_id: Some(flag.flag.as_uuid()),
                kind: Some(flag.kind),
                level: Some(flag.level),
            },
        }
    }

    /// A record of `record_type` created for `patient`; `None` for the kinds no event tells
    /// of (courses and planned slots are not created alone).
    pub fn created(
        record_type: FlaggedRecord,
        record_id: &str,
        patient: PatientId,
        at: DateTime<Utc>,
    ) -> Option<Self> {
        let event_type = match record_type {
            FlaggedRecord::Assessment => EventType::AssessmentCreated,
            FlaggedRecord::Session => EventType::SessionCreated,
            FlaggedRecord::SideEffect => EventType::SideEffectCreated,
            FlaggedRecord::Course | FlaggedRecord::PlannedSlot => return None,
        };
        Some(Self {
            event_type,
            timestamp: at,
            data: EventData {
                patient_id: patient.as_uuid(),
                record_type,
                record_id: record_id.to_owned(),
                flag_id: None,
                kind: None,
                level: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        "2026-10-01T08:00:03Z".parse().unwrap()
    }

    /// api.md, Notifications: thin payloads — the type, ids, kind, level and time, in the
    /// Standard Webhooks form; a flag's detail (which quotes an answer) is not among them.
    #[test]
    fn a_flag_event_carries_ids_kind_level_and_time_only() {
        let flag = FlagEvent {
            flag: FlagId::numbered(1),
            patient: PatientId::numbered(2),
            kind: FlagKind::SuicidalIdeation,
            level: FlagLevel::Urgent,
            record_type: FlaggedRecord::Assessment,
            record_id: "00000000-0000-0000-0000-000000000003",
        };
        let body =
            serde_json::to_value(EventBody::flag(EventType::FlagRaised, &flag, at())).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "flag.raised", "timestamp": "2026-10-01T08:00:03Z",
                "data": {"patient_id": "00000000-0000-0000-0000-000000000002",
                    "record_type": "assessment", "record_id": "00000000-0000-0000-0000-000000000003",
                    "flag_id": "00000000-0000-0000-0000-000000000001",
                    "kind": "suicidal_ideation", "level": "urgent"}})
        );
    }

    #[test]
    fn records_created_alone_have_an_event_and_courses_none() {
        let patient = PatientId::numbered(2);
        let cases = [
            (
                FlaggedRecord::Assessment,
                Some(EventType::AssessmentCreated),
            ),
            (FlaggedRecord::Session, Some(EventType::SessionCreated)),
            (
                FlaggedRecord::SideEffect,
                Some(EventType::SideEffectCreated),
            ),
            (FlaggedRecord::Course, None),
            (FlaggedRecord::PlannedSlot, None),
        ];
        for (record_type, expected) in cases {
            let body = EventBody::created(record_type, "r", patient, at());
            assert_eq!(
                body.as_ref().map(|b| b.event_type),
                expected,
                "{record_type:?}"
            );
            if let Some(body) = body {
                let text = serde_json::to_string(&body).unwrap();
                assert!(
                    !text.contains("kind") && !text.contains("flag_id"),
                    "{text}"
                );
            }
        }
    }
}

//! The clinic's live stream (api.md, Notifications): every event of the clinic's patients as
//! it commits, read from the outbox, so a stream resumes on any process from the last event
//! its client saw (`Last-Event-ID`) and misses nothing that committed later below it.

use std::time::{Duration, Instant};

use futures_util::stream::{self, Stream};
use tokio::sync::mpsc;

use crate::call::streams::Slot;
use crate::call::{Call, Event};
use crate::domain::audit::Action;
use crate::domain::ids::{ClinicId, EventId, PatientId};
use crate::error::ApiError;
use crate::store::outbox::{self, OutboxRow};
use crate::store::scope::Scope;
use crate::store::{self, Position};

/// How often a stream looks for new events; an event reaches the screen within this of its
/// commit (plus the time the oldest transaction in flight takes to end).
const POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing a quiet stream, and finds a client
/// that has gone (only a write does), so its slot comes back within two of them.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Events read per round trip.
const BATCH: i64 = 100;

/// An event's id on the stream: its position and its id, so that the position a client
/// resumes from is the one the outbox orders by.
fn event_id(row: &OutboxRow) -> String {
    format!("{}.{}", row.change_seq, row.id)
}

/// The position after the event a client last saw (`Last-Event-ID`).
fn resume_after(last_event_id: &str) -> Result<Position, ApiError> {
    let bad = || ApiError::invalid("Last-Event-ID", "is not an event id this server sent");
    let (seq, id) = last_event_id.split_once('.').ok_or_else(bad)?;
    let change_seq: i64 = seq.parse().map_err(|_| bad())?;
    let id: EventId = id.parse().map_err(|_| bad())?;
    Ok(Position {
        change_seq,
        id: Some(id.to_string()),
    })
}

/// One event as a `text/event-stream` frame. The payload is one line of JSON.
fn frame(row: &OutboxRow) -> String {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        event_id(row),
        row.event_type.as_str(),
        row.payload
    )
}

/// Opens the clinic's stream for a clinician: after `last_event_id` when the client resumes,
/// else from now. It ends when the caller's access token would have expired (the client
/// reconnects with a fresh one and its last event id), within a heartbeat of the account
/// being disabled or signed out, when the client goes, when the process stops, or when the
/// database cannot be read (the client reconnects the same way).
pub async fn open(
    call: Call,
    last_event_id: Option<&str>,
) -> Result<impl Stream<Item = Result<actix_web::web::Bytes, ApiError>>, ApiError> {
    let Scope::Clinic(clinic) = call.clinician_scope()? else {
        return Err(ApiError::Forbidden);
    };
    let after = match last_event_id {
        Some(id) => resume_after(id)?,
        // Everything below the horizon has committed already: the stream starts past it.
        None => {
            let horizon = call.read(|conn| Ok(store::horizon(conn)?)).await?;
            Position {
                change_seq: horizon - 1,
                id: None,
            }
        }
    };
    let slot = call.services.streams.take(call.caller.user_id)?;
    let (frames, received) = mpsc::channel(4);
    tokio::spawn(relay(call, clinic, after, slot, frames));
    Ok(stream::unfold(received, |mut received| async move {
        received.recv().await.map(|frame| (frame, received))
    }))
}

type Frames = mpsc::Sender<Result<actix_web::web::Bytes, ApiError>>;

/// Sends the clinic's events as they commit until the stream ends (see [`open`]).
async fn relay(call: Call, clinic: ClinicId, mut after: Position, slot: Slot, frames: Frames) {
    let _slot = slot;
    let ends = Instant::now() + call.services.auth.access_token_ttl;
    let (mut checked, mut sent) = (Instant::now(), Instant::now());
    let mut closing = call.services.streams.closing();
    if send(&frames, "retry: 2000\n\n".into()).await.is_err() {
        return;
    }
    while Instant::now() < ends && !*closing.borrow() {
        if checked.elapsed() >= HEARTBEAT {
            if !admitted(&call).await {
                return;
            }
            checked = Instant::now();
        }
        let Some((text, more)) = next_events(&call, clinic, &mut after).await else {
            return;
        };
        let text = match text {
            Some(text) => text,
            None if sent.elapsed() >= HEARTBEAT => ": heartbeat\n\n".into(),
            None => String::new(),
        };
        if !text.is_empty() {
            if send(&frames, text).await.is_err() {
                return;
            }
            sent = Instant::now();
        }
        if more {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = frames.closed() => return,
            _ = closing.changed() => return,
        }
    }
}

/// The frames of the clinic's next events after `after` (which moves past them), audited,
/// and whether more may be waiting; `None` when the outbox cannot be read or audited.
async fn next_events(
    call: &Call,
    clinic: ClinicId,
    after: &mut Position,
) -> Option<(Option<String>, bool)> {
    let from = after.clone();
    let read = call
        .read(move |conn| Ok(outbox::of_clinic_after(conn, clinic, &from, BATCH)?))
        .await;
    let rows = match read {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(%error, "a flag stream could not read the outbox; it ends");
            return None;
        }
    };
    let Some(last) = rows.last() else {
        return Some((None, false));
    };
    *after = Position {
        change_seq: last.change_seq,
        id: Some(last.id.to_string()),
    };
    audited(call, &rows).await.ok()?;
    let more = rows.len() as i64 == BATCH;
    Some((Some(rows.iter().map(frame).collect()), more))
}

/// Whether the caller may still be sent events: checked every heartbeat interval, so a stream
/// ends within one of its account being disabled or signed out everywhere.
async fn admitted(call: &Call) -> bool {
    let caller = call.caller.clone();
    call.read(move |conn| Ok(caller.still_admitted(conn)?))
        .await
        .unwrap_or(false)
}

/// The events shown are a read of their patients' data: audited as the worklist's are.
async fn audited(call: &Call, rows: &[OutboxRow]) -> Result<(), ApiError> {
    let mut patients: Vec<PatientId> = rows.iter().map(|r| r.patient_id).collect();
    patients.sort_unstable();
    patients.dedup();
    call.audit_behind(
        patients
            .into_iter()
            .map(|patient| Event::record(Action::FlagsStreamed, patient, patient)),
    )
    .await
}

async fn send(frames: &Frames, text: String) -> Result<(), ()> {
    frames
        .send(Ok(actix_web::web::Bytes::from(text)))
        .await
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_event_id_is_the_position_and_id_the_stream_sent() {
        let id = "00000000-0000-4000-8000-000000000001";
        let resumed = resume_after(&format!("42.{id}")).unwrap();
        assert_eq!(
            resumed,
            Position {
                change_seq: 42,
                id: Some(id.into())
            }
        );
        for bad in [
            "",
            "42",
            "x.00000000-0000-4000-8000-000000000001",
            "42.nope",
            ".",
            "42.",
        ] {
            assert!(resume_after(bad).is_err(), "{bad:?}");
        }
    }
}

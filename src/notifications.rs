//! The clinic's live stream (api.md, Notifications): every event of the clinic's patients as
//! it commits, read from the outbox, so a stream resumes on any process from the last event
//! its client saw (`Last-Event-ID`) and misses nothing that committed later below it.
//!
//! Every frame carries the stream's position as its `id` — an event's as `{position}.{event
//! id}`, a heartbeat's as the position the stream has read up to — so a client that
//! reconnects after a quiet hour resumes where it was, not from whatever is new by then.

use std::time::Duration;

use futures_util::stream::{self, Stream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::Instrument;

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

/// A position as a stream's `id`: `{change position}.{event id}` after an event, the change
/// position alone once every event at it has been sent.
fn stream_id(position: &Position) -> String {
    match &position.id {
        Some(id) => format!("{}.{id}", position.change_seq),
        None => position.change_seq.to_string(),
    }
}

fn bad_id() -> ApiError {
    ApiError::invalid("Last-Event-ID", "is not an id this server sent")
}

/// The position after the frame a client last saw (`Last-Event-ID`).
fn resume_after(last_event_id: &str) -> Result<Position, ApiError> {
    let (seq, id) = match last_event_id.split_once('.') {
        Some((seq, id)) => (seq, Some(id.parse::<EventId>().map_err(|_| bad_id())?)),
        None => (last_event_id, None),
    };
    let change_seq: i64 = seq.parse().map_err(|_| bad_id())?;
    if change_seq < 0 {
        return Err(bad_id());
    }
    Ok(Position {
        change_seq,
        id: id.map(|id| id.to_string()),
    })
}

/// One event as a `text/event-stream` frame. The payload is one line of JSON.
fn frame(row: &OutboxRow) -> String {
    let position = Position {
        change_seq: row.change_seq,
        id: Some(row.id.to_string()),
    };
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        stream_id(&position),
        row.event_type.as_str(),
        row.payload
    )
}

/// Opens the clinic's stream for a clinician: after `last_event_id` when the client resumes,
/// else after every event committed by now. It ends when the caller's access token expires
/// (the client reconnects with a fresh one and its last event id), within a heartbeat of the
/// account being disabled or signed out, when the client goes, when the process stops, or
/// when the database cannot be read (the client reconnects the same way).
pub async fn open(
    call: Call,
    last_event_id: Option<&str>,
) -> Result<impl Stream<Item = Result<actix_web::web::Bytes, ApiError>>, ApiError> {
    let Scope::Clinic(clinic) = call.clinician_scope()? else {
        return Err(ApiError::Forbidden);
    };
    let resumed = last_event_id.map(resume_after).transpose()?;
    // The account confirmed first: a revoked token learns nothing of the streams held.
    let horizon = call.read(|conn| Ok(store::horizon(conn)?)).await?;
    let slot = call.services.streams.take(call.caller.user_id)?;
    let after = match resumed {
        // A position this database never handed out: it was restored from a backup since,
        // and waiting for it to come round again would hide what commits meanwhile.
        Some(after) if after.change_seq >= horizon => {
            return Err(ApiError::invalid(
                "Last-Event-ID",
                "is ahead of this database, which was restored from a backup since: \
                 reconnect without it",
            ))
        }
        Some(after) => after,
        // Everything below the horizon has committed already: the stream starts past it.
        None => Position {
            change_seq: horizon - 1,
            id: None,
        },
    };
    let (frames, received) = mpsc::channel(4);
    tokio::spawn(relay(call, clinic, after, slot, frames).instrument(tracing::Span::current()));
    Ok(stream::unfold(received, |mut received| async move {
        received.recv().await.map(|frame| (frame, received))
    }))
}

type Frames = mpsc::Sender<Result<actix_web::web::Bytes, ApiError>>;

/// Where a stream sends its frames, and what ends it whatever it is waiting on.
struct Outlet {
    frames: Frames,
    closing: watch::Receiver<bool>,
    ends: Instant,
}

impl Outlet {
    /// Sends `text`; false when the stream has ended — the client gone, the process
    /// stopping, the token expired — even while a client that stopped reading holds it full.
    async fn send(&mut self, text: String) -> bool {
        let frame = Ok(actix_web::web::Bytes::from(text));
        tokio::select! {
            sent = self.frames.send(frame) => sent.is_ok(),
            _ = self.closing.changed() => false,
            () = tokio::time::sleep_until(self.ends) => false,
        }
    }

    /// Waits a poll interval; false when the stream has ended meanwhile.
    async fn wait(&mut self) -> bool {
        tokio::select! {
            () = tokio::time::sleep(POLL) => Instant::now() < self.ends,
            () = self.frames.closed() => false,
            _ = self.closing.changed() => false,
            () = tokio::time::sleep_until(self.ends) => false,
        }
    }
}

/// Sends the clinic's events as they commit until the stream ends (see [`open`]).
async fn relay(call: Call, clinic: ClinicId, mut after: Position, _slot: Slot, frames: Frames) {
    let mut outlet = Outlet {
        frames,
        closing: call.services.streams.closing(),
        ends: Instant::now() + until_expiry(&call),
    };
    if *outlet.closing.borrow() {
        return;
    }
    let (mut checked, mut sent) = (Instant::now(), Instant::now());
    let opening = format!("retry: 2000\nid: {}\n\n", stream_id(&after));
    if !outlet.send(opening).await {
        return;
    }
    loop {
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
            None if sent.elapsed() >= HEARTBEAT => {
                format!(": heartbeat\nid: {}\n\n", stream_id(&after))
            }
            None => String::new(),
        };
        if !text.is_empty() {
            if !outlet.send(text).await {
                return;
            }
            sent = Instant::now();
        }
        if !more && !outlet.wait().await {
            return;
        }
    }
}

/// How long the caller's token has left.
fn until_expiry(call: &Call) -> Duration {
    (call.caller.token_expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO)
}

/// The frames of the clinic's next events after `after`, audited, and whether more may be
/// waiting; `after` moves past them, or, when none is left below the horizon, up to it (so a
/// quiet clinic's stream does not read the busy clinics' events again at every poll). `None`
/// when the outbox cannot be read or audited.
async fn next_events(
    call: &Call,
    clinic: ClinicId,
    after: &mut Position,
) -> Option<(Option<String>, bool)> {
    let from = after.clone();
    let read = call
        .read(move |conn| Ok(outbox::of_clinic_after(conn, clinic, &from, BATCH)?))
        .await;
    let (rows, horizon) = match read {
        Ok(read) => read,
        Err(error) => {
            tracing::warn!(%error, "a flag stream could not read the outbox; it ends");
            return None;
        }
    };
    let more = rows.len() as i64 == BATCH;
    *after = match (rows.last(), more) {
        (Some(last), true) => Position {
            change_seq: last.change_seq,
            id: Some(last.id.to_string()),
        },
        _ => Position {
            change_seq: horizon - 1,
            id: None,
        },
    };
    if rows.is_empty() {
        return Some((None, false));
    }
    audited(call, &rows).await.ok()?;
    Some((Some(rows.iter().map(frame).collect()), more))
}

/// Whether the caller may still be sent events: checked every heartbeat interval, so a stream
/// ends within one of its account being disabled or signed out everywhere.
async fn admitted(call: &Call) -> bool {
    call.confirmed().await.is_ok()
}

/// The events shown are a read of their patients' data: audited as the worklist's are.
async fn audited(call: &Call, rows: &[OutboxRow]) -> Result<(), ApiError> {
    let mut patients: Vec<PatientId> = rows.iter().map(|r| r.patient_id).collect();
    patients.sort_unstable();
    patients.dedup();
    call.audit_behind(
        patients
            .into_iter()
            .map(|patient| Event::record(Action::EventsStreamed, patient, patient)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_event_id_is_a_position_the_stream_sent() {
        let id = "00000000-0000-4000-8000-000000000001";
        let cases = [
            (format!("42.{id}"), Some((42, Some(id.to_owned())))),
            ("42".to_owned(), Some((42, None))),
            ("0".to_owned(), Some((0, None))),
            ("-1".to_owned(), None),
            (format!("-5.{id}"), None),
            ("".to_owned(), None),
            ("42.".to_owned(), None),
            ("42.nope".to_owned(), None),
            (format!("x.{id}"), None),
            ("99999999999999999999".to_owned(), None),
        ];
        for (sent, expected) in cases {
            let resumed = resume_after(&sent).ok().map(|p| (p.change_seq, p.id));
            assert_eq!(resumed, expected, "{sent:?}");
        }
        for position in [
            Position {
                change_seq: 42,
                id: Some(id.into()),
            },
            Position {
                change_seq: 7,
                id: None,
            },
        ] {
            assert_eq!(resume_after(&stream_id(&position)).unwrap(), position);
        }
    }
}

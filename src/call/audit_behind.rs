//! Audit events written behind the answer, for reads that must not write: the worklist, which
//! a clinic's screen polls all day, and a patient's timeline, each read without a write
//! (the timeline in one statement), hand the events of what they showed to a background
//! writer. On SQLite such a read
//! never queues behind the one writer; on PostgreSQL it never touches a row lock.
//!
//! A read's events are queued, all or none, before its answer is sent; a full queue makes the
//! read wait (and 503 after `QUEUE_WAIT`), never answer unaudited. The writer appends what is
//! queued in batches, and retries a failed batch until it is written (a batch whose commit
//! was in fact made, and meets its own ids on the retry, is done). A graceful stop cuts into
//! the retries and writes what is left within `DRAIN_LIMIT`; what it cannot write by then, or
//! what a killed process had queued (a fraction of a second of reads), is lost and logged:
//! the price of a read that takes no write lock. An event is stamped when it is queued, so it
//! may reach the trail a moment after events stamped later.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::store::audit::{self as trail, AuditEventRow};
use crate::store::{Db, StoreError};

/// Events that may wait to be written: enough for a burst of worklist reads.
const QUEUE: usize = 10_000;
/// The most events appended in one statement.
const BATCH: usize = 500;
// A batch is one statement, so it needs no transaction to be written whole or not at all.
const _: () = assert!(BATCH <= trail::MOST_IN_ONE_STATEMENT);
/// How long a read waits for room in a full queue before it is refused.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// How long a stopping process keeps trying to write what is left.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Where a read hands its audit events.
#[derive(Clone)]
pub struct AuditBehind {
    queue: mpsc::Sender<AuditEventRow>,
}

/// The background writer, with what it takes to stop it.
pub struct AuditWriter {
    queue: mpsc::Receiver<AuditEventRow>,
    db: Db,
    stop: Arc<Notify>,
    /// Set once a stop is asked for: when what is left must be written by.
    drain_by: Option<tokio::time::Instant>,
}

/// A running writer: [`Running::finish`] writes what is queued and ends it.
pub struct Running {
    stop: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// A queue for reads to hand events to, and its writer, not yet started.
pub fn queue(db: Db) -> (AuditBehind, AuditWriter) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let writer = AuditWriter {
        queue: receiver,
        db,
        stop: Arc::new(Notify::new()),
        drain_by: None,
    };
    (AuditBehind { queue: sender }, writer)
}

impl AuditBehind {
    /// Queues `events` to be written, all of them or none: an error when the writer has
    /// stopped, or has not made room for them within `QUEUE_WAIT`.
    pub async fn record(&self, events: Vec<AuditEventRow>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let room = tokio::time::timeout(QUEUE_WAIT, self.queue.reserve_many(events.len()));
        let permits = match room.await {
            Ok(Ok(permits)) => permits,
            Ok(Err(_)) => {
                return Err(StoreError::Unavailable(
                    "the audit writer has stopped".into(),
                ))
            }
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "the audit writer is not keeping up".into(),
                ))
            }
        };
        for (permit, event) in permits.zip(events) {
            permit.send(event);
        }
        Ok(())
    }
}

impl AuditWriter {
    /// Starts writing on the current runtime.
    pub fn start(self) -> Running {
        let stop = self.stop.clone();
        Running {
            stop,
            task: tokio::spawn(self.run()),
        }
    }

    async fn run(mut self) {
        loop {
            tokio::select! {
                // A stop asked for comes first: what is queued is written by the drain below.
                biased;
                () = self.stop.notified() => break,
                next = self.queue.recv() => match next {
                    Some(first) => self.write_batch(first).await,
                    None => return,
                },
            }
        }
        self.stopping();
        while let Some(first) = self.queue.recv().await {
            self.write_batch(first).await;
        }
    }

    /// No more events are taken; those already queued have `DRAIN_LIMIT` to be written.
    fn stopping(&mut self) {
        self.queue.close();
        self.drain_by
            .get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_LIMIT);
    }

    /// Appends `first` and whatever else is queued (up to `BATCH`) in one statement,
    /// retrying with a growing pause until it is written — or, once stopping, until the
    /// drain's deadline, after which the batch is logged as lost.
    async fn write_batch(&mut self, first: AuditEventRow) {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match self.queue.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let batch = Arc::new(batch);
        let mut pause = Duration::from_millis(100);
        loop {
            let events = batch.clone();
            let written = self.db.run(move |conn| trail::record(conn, &events)).await;
            let err = match written {
                // Conflict: the ids are in the trail already — the commit of an earlier
                // attempt was made though its answer was lost.
                Ok(()) | Err(StoreError::Conflict) => return,
                Err(err) => err,
            };
            if self
                .drain_by
                .is_some_and(|by| tokio::time::Instant::now() + pause > by)
            {
                tracing::error!(error = %err, lost = batch.len(), "audit events could not be written before the stop");
                return;
            }
            tracing::warn!(error = %err, waiting = batch.len(), "audit events could not be written yet; retrying");
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                // A stop cuts the pause short and sets the deadline of the retries.
                () = self.stop.notified(), if self.drain_by.is_none() => self.stopping(),
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

impl Running {
    /// Stops taking events, writes those queued, and returns when done.
    pub async fn finish(self) {
        self.stop.notify_one();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the audit writer ended abnormally");
        }
    }
}

//! Audit events written behind the answer, for reads that must not write: the worklist, which
//! a clinic's screen polls all day, reads in a read-only transaction and hands the events of
//! what it showed to a background writer. On SQLite that read never queues behind the one
//! writer; on PostgreSQL it never touches a row lock.
//!
//! An event is queued before the answer is sent; a full queue makes the read wait (and 503
//! after `QUEUE_WAIT`), never drop an event. The writer appends what is queued in batches and
//! retries a failed batch until it is written; at a graceful stop it writes what is left.
//! What a killed process had queued but not yet written (a fraction of a second's reads) is
//! lost: the price of a read that takes no write lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::store::audit::{self as trail, AuditEventRow};
use crate::store::{Db, StoreError};

/// Events that may wait to be written: enough for a burst of worklist reads.
const QUEUE: usize = 10_000;
/// The most events appended in one statement.
const BATCH: usize = 500;
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
    };
    (AuditBehind { queue: sender }, writer)
}

impl AuditBehind {
    /// Queues `events` to be written; an error when the writer has stopped, or has not kept
    /// up for `QUEUE_WAIT`.
    pub async fn record(&self, events: Vec<AuditEventRow>) -> Result<(), StoreError> {
        for event in events {
            match tokio::time::timeout(QUEUE_WAIT, self.queue.send(event)).await {
                Ok(Ok(())) => {}
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
            }
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
                next = self.queue.recv() => match next {
                    Some(first) => self.write_batch(first, None).await,
                    None => return,
                },
                () = self.stop.notified() => break,
            }
        }
        // No more events are taken; those already queued are written, for a bounded time.
        self.queue.close();
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        while let Some(first) = self.queue.recv().await {
            self.write_batch(first, Some(deadline)).await;
        }
    }

    /// Appends `first` and whatever else is queued (up to `BATCH`) in one transaction,
    /// retrying with a growing pause until it is written — or, when stopping, until
    /// `deadline`, after which the batch is logged as lost.
    async fn write_batch(&mut self, first: AuditEventRow, deadline: Option<tokio::time::Instant>) {
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
            let written = self
                .db
                .transaction(move |conn| trail::record(conn, &events))
                .await;
            let Err(err) = written else { return };
            let now = tokio::time::Instant::now();
            if deadline.is_some_and(|d| now + pause > d) {
                tracing::error!(error = %err, lost = batch.len(), "audit events could not be written before the stop");
                return;
            }
            tracing::warn!(error = %err, waiting = batch.len(), "audit events could not be written yet; retrying");
            tokio::time::sleep(pause).await;
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

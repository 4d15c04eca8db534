//! The flags that time alone raises — a side effect that outlasts its expected time, a
//! follow-up not taken, an induction slot more than 3 days overdue — raised in the background
//! within a sweep interval of falling due (30 s by default), so that reading the worklist
//! raises nothing and loads no patient's record.
//!
//! Several processes may serve one PostgreSQL database: a sweep runs in one of them at a time
//! (`store::exclusively`), and if that process dies its lock goes with its connection and the
//! next tick of any other process sweeps. A patient's record is read only when the next
//! instant stored for them has passed, or a write removed it (`store::time_flag_checks`): in
//! a steady state a sweep reads the few records written to or falling due since the last one,
//! not the clinic. Records are read ten patients per write transaction that holds them, so
//! that the instant stored is the record's as it stands: a write to one of them waits for the
//! batch (on SQLite, any write: the sweep then leaves the lock free as long as it held it).
//!
//! Each sweep also stores again the measurement-plan adherence of every consenting patient's
//! course whose stored counts a write removed or time made expire (`plan::store_expired_adherence`), so that a
//! research aggregate reads one row per course instead of every score of every patient. That
//! part reads ten patients' plan records at a time under their write lock (on SQLite the one
//! writer's), so a write may wait a few milliseconds on it; every course's counts expire at
//! midnight UTC at the latest (the daily items move on), so the first sweeps of a day store
//! them all again.
//!
//! Escalation runs beside the sweep, on a connection of its own: every sweep interval, the urgent
//! flags left open past the deployment's escalation time are marked and told to the clinic's
//! streams (`flag.escalated`), once each. It does not wait on the sweep's lock, so a long
//! first sweep (every record read once) does not hold an escalation back.
//!
//! A write evaluates only what it can move (`evaluation`), so when the clinical settings
//! change (W, a remission cut-off, a threshold) nothing would bring the rest of a record up to
//! them: the first sweep under new settings evaluates every record again, a patient at a time,
//! and then records the settings it did so with. Processes with different settings on one
//! database would undo each other's work; a deployment changes them on every process.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock;
use crate::config::ClinicalSettings;
use crate::evaluation::{self, Change};
use crate::store::time_flag_checks::{self, TimeFlagCheckRow};
use crate::store::{
    self, evaluation_settings, flags, patients, Db, DbConnection, Exclusive, StoreError,
};

/// Sweeps every `every`, for as long as the process runs.
pub async fn run(db: Db, settings: ClinicalSettings, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let started = std::time::Instant::now();
        match once(&db, settings).await {
            Ok(Some(patients)) => tracing::debug!(
                patients,
                ms = started.elapsed().as_millis(),
                "swept the flags that time raises"
            ),
            Ok(None) => tracing::debug!("another process is sweeping"),
            Err(err) => tracing::warn!(
                error = %err,
                "the sweep of the flags that time raises failed; the next tick tries again"
            ),
        }
    }
}

/// Escalates the urgent flags left open longer than `after`, every `every`, for as long as
/// the process runs.
pub async fn escalate(db: Db, after: Duration, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match escalate_once(&db, after).await {
            Ok(0) => {}
            Ok(flags) => tracing::info!(flags, "escalated urgent flags left unacknowledged"),
            Err(err) => tracing::warn!(
                error = %err,
                "the escalation of unacknowledged urgent flags failed; the next tick tries again"
            ),
        }
    }
}

/// One escalation check: how many flags it escalated.
pub async fn escalate_once(db: &Db, after: Duration) -> Result<usize, StoreError> {
    let after = chrono::Duration::from_std(after)
        .map_err(|e| StoreError::Integrity(format!("escalation time: {e}").into()))?;
    db.transaction(move |conn| {
        let now = clock::now();
        let escalated = flags::escalate_due(conn, clock::to_db(now - after), clock::to_db(now))?;
        Ok(escalated.len())
    })
    .await
}

/// One sweep of the patients whose record time may have given a flag since it was last
/// read: how many there were, or `None` when another process is sweeping.
pub async fn once(db: &Db, settings: ClinicalSettings) -> Result<Option<usize>, StoreError> {
    db.run(move |conn| {
        store::exclusively(conn, Exclusive::Sweep, |conn| {
            evaluate_again_if_settings_changed(conn, &settings)?;
            let now = clock::now();
            let swept = raise_time_flags(conn, &settings, now)?;
            store_expired_adherence(conn);
            Ok(swept)
        })
    })
    .await
}

/// Reads the record of every patient whose stored next instant has passed (or that a write
/// removed), raises what time has made due, and stores the next instant — in batches held
/// against writes, so that an instant stored is the record's as it stands. One patient whose
/// record cannot be read must not keep the flags of the others from being raised, tick after
/// tick: each is swept in a savepoint of its own, and is left without an instant (so read
/// again at the next tick) when it fails.
fn raise_time_flags(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let persistence = format!("{:?}", settings.persistence);
    let due = time_flag_checks::due(conn, clock::to_db(now), &persistence)?;
    let batches = patients::in_held_batches(conn, &due, |conn, batch| {
        let mut checks = Vec::with_capacity(batch.len());
        for patient in batch {
            let swept = store::savepoint(conn, |conn| {
                evaluation::raise_time_flags(conn, settings, *patient, now)
            });
            match swept {
                Ok(next) => checks.push(TimeFlagCheckRow {
                    patient_id: *patient,
                    next_at: next.map(clock::to_db),
                    persistence: persistence.clone(),
                }),
                Err(err) => {
                    tracing::warn!(%patient, error = %err, "a patient's time-raised flags could not be swept")
                }
            }
        }
        time_flag_checks::put(conn, &checks)
    });
    for (batch, done) in batches {
        if let Err(err) = done {
            tracing::warn!(patients = ?batch, error = %err, "these patients' time-raised flags could not be swept");
        }
    }
    Ok(due.len())
}

/// Evaluates every record again when the stored evaluation was made with other settings than
/// these, then records these.
fn evaluate_again_if_settings_changed(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
) -> Result<(), StoreError> {
    let wanted = evaluation::settings_text(settings);
    if evaluation_settings::current(conn)?.as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    let patients = patients::all_ids(conn)?;
    tracing::info!(
        patients = patients.len(),
        settings = %wanted,
        "the clinical settings are new: evaluating every record again"
    );
    for patient in patients {
        store::write_transaction(conn, |conn| {
            patients::hold(conn, patient)?;
            evaluation::refresh(conn, settings, patient, Change::Whole)
        })?;
    }
    evaluation_settings::record(conn, &wanted, clock::to_db(clock::now()))
}

/// Research reads each course's adherence as stored: stores the counts that a write removed or
/// time made expire. A failure leaves research computing them, and the next tick tries again.
fn store_expired_adherence(conn: &mut DbConnection) {
    let started = std::time::Instant::now();
    match crate::plan::store_expired_adherence(conn, clock::now()) {
        Ok(0) => {}
        Ok(courses) => tracing::debug!(
            courses,
            ms = started.elapsed().as_millis(),
            "stored the adherence of the courses whose counts had expired"
        ),
        Err(err) => tracing::warn!(
            error = %err,
            "the courses' adherence could not be stored; research computes it meanwhile"
        ),
    }
}

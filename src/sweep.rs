//! The flags that time alone raises — a side effect that outlasts its expected time, a
//! follow-up not taken, an induction slot more than 3 days overdue — raised in the background
//! within a sweep interval of falling due (30 s by default), so that reading the worklist
//! raises nothing and loads no patient's record.
//!
//! Several processes may serve one PostgreSQL database: a sweep runs in one of them at a time
//! (`store::exclusively`), and if that process dies its lock goes with its connection and the
//! next tick of any other process sweeps. Each patient's record is read in a read-only
//! transaction, and only a flag found due is written, in a short transaction of its own: a
//! writer waits on a sweep no longer than on another write.
//!
//! Each sweep also stores again the measurement-plan adherence of every consenting patient's
//! course whose stored counts a write removed or time made expire (`plan::store_expired_adherence`), so that a
//! research aggregate reads one row per course instead of every score of every patient. That
//! part reads ten patients' plan records at a time under their write lock (on SQLite the one
//! writer's), so a write may wait a few milliseconds on it; every course's counts expire at
//! midnight UTC at the latest (the daily items move on), so the first sweeps of a day store
//! them all again.
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
use crate::domain::ids::PatientId;
use crate::evaluation::{self, Change};
use crate::store::{self, evaluation_settings, patients, Db, DbConnection, Exclusive, StoreError};

/// Sweeps every `every`, for as long as the process runs.
pub async fn run(db: Db, settings: ClinicalSettings, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match once(&db, settings).await {
            Ok(Some(patients)) => tracing::debug!(patients, "swept the flags that time raises"),
            Ok(None) => tracing::debug!("another process is sweeping"),
            Err(err) => tracing::warn!(
                error = %err,
                "the sweep of the flags that time raises failed; the next tick tries again"
            ),
        }
    }
}

/// One sweep of every patient who could have a flag that time raises: how many there were,
/// or `None` when another process is sweeping.
pub async fn once(db: &Db, settings: ClinicalSettings) -> Result<Option<usize>, StoreError> {
    db.run(move |conn| {
        store::exclusively(conn, Exclusive::Sweep, |conn| {
            evaluate_again_if_settings_changed(conn, &settings)?;
            let now = clock::now();
            let candidates = evaluation::time_flag_candidates(conn)?;
            for patient in &candidates {
                // One patient whose record cannot be read must not keep the flags of the
                // patients after them from being raised, tick after tick.
                if let Err(err) = sweep_patient(conn, &settings, *patient, now) {
                    tracing::warn!(%patient, error = %err, "a patient's time-raised flags could not be swept");
                }
            }
            store_expired_adherence(conn);
            Ok(candidates.len())
        })
    })
    .await
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

/// Reads what is due in a read-only transaction, and writes only when something is: on
/// SQLite the one write lock is taken for the inserts alone.
fn sweep_patient(
    conn: &mut DbConnection,
    settings: &ClinicalSettings,
    patient: PatientId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let due = store::read_transaction(conn, |conn| {
        evaluation::time_flags_due(conn, settings, patient, now)
    })?;
    if due.is_empty() {
        return Ok(());
    }
    store::write_transaction(conn, |conn| {
        evaluation::raise_missing(conn, patient, due, now)
    })
}

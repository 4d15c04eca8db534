//! Patients, their indications and risk factors, and the accounts of their apps.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{patient_accounts, patient_indications, patient_risk_factors, patients};
use super::scope::Scope;
use super::users::{self, Described};
use super::{DbConnection, Page, StoreError, Window};
use crate::domain::ids::{ClinicId, PatientId, UserId};
use crate::domain::patient::{Indication, RiskFactor, Sex};
use diesel::dsl::exists;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = patients)]
pub struct PatientRow {
    pub id: PatientId,
    pub clinic_id: ClinicId,
    pub external_ref: Option<String>,
    pub birth_year: i32,
    pub sex: Sex,
    pub research_consent: bool,
    pub consented_at: Option<NaiveDateTime>,
    pub body_hash: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
    /// Where the row's latest change stands in the order phones sync in; the database sets it
    /// on every insert and update (migration 000009), never the application.
    #[diesel(skip_insertion, skip_update)]
    pub change_seq: i64,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = patient_risk_factors)]
pub struct RiskFactorRow {
    pub patient_id: PatientId,
    pub factor: RiskFactor,
    pub noted_at: NaiveDateTime,
    pub note: Option<String>,
}

/// A patient with the lists that belong to them.
#[derive(Debug, Clone)]
pub struct PatientRecord {
    pub row: PatientRow,
    pub indications: Vec<Indication>,
    pub risk_factors: Vec<RiskFactorRow>,
}

/// Inserts the patient and their lists unless the id is taken (whether it did); an external
/// reference taken in the clinic is [`StoreError::Taken`].
pub fn insert(conn: &mut DbConnection, record: &PatientRecord) -> Result<bool, StoreError> {
    let id = record.row.id;
    let insert = diesel::insert_into(patients::table).values(&record.row);
    let inserted = super::inserted_unless_taken_or(conn, insert, "external_ref", |conn| {
        Ok(patients::table.find(id).count().get_result::<i64>(conn)? > 0)
    })?;
    if !inserted {
        return Ok(false);
    }
    replace_lists(conn, record)?;
    Ok(true)
}

fn replace_lists(conn: &mut DbConnection, record: &PatientRecord) -> Result<(), StoreError> {
    let id = &record.row.id;
    diesel::delete(patient_indications::table.filter(patient_indications::patient_id.eq(id)))
        .execute(conn)?;
    diesel::delete(patient_risk_factors::table.filter(patient_risk_factors::patient_id.eq(id)))
        .execute(conn)?;
    for indication in &record.indications {
        diesel::insert_into(patient_indications::table)
            .values((
                patient_indications::patient_id.eq(id),
                patient_indications::indication.eq(indication),
            ))
            .execute(conn)?;
    }
    for factor in &record.risk_factors {
        diesel::insert_into(patient_risk_factors::table)
            .values(factor)
            .execute(conn)?;
    }
    Ok(())
}

/// The patient, when within `scope`.
pub fn find(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PatientId,
) -> Result<PatientRecord, StoreError> {
    let row = find_row(conn, scope, id)?;
    with_lists(conn, vec![row]).map(|mut v| v.remove(0))
}

/// The patient's row alone, when within `scope`.
pub fn find_row(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PatientId,
) -> Result<PatientRow, StoreError> {
    let query = patients::table
        .filter(patients::id.eq(id))
        .select(PatientRow::as_select())
        .into_boxed();
    Ok(in_scope!(query, scope).first(conn)?)
}

/// The patient's clinic, when the patient is within `scope`: the one statement that a read
/// needing nothing else of the patient makes of them.
pub fn clinic_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PatientId,
) -> Result<ClinicId, StoreError> {
    let query = patients::table
        .filter(patients::id.eq(id))
        .select(patients::clinic_id)
        .into_boxed();
    Ok(in_scope!(query, scope).first(conn)?)
}

/// Holds the patient's row until the transaction ends, so that writes to one patient's
/// record follow one another: each is evaluated (`evaluation`) with every earlier write in
/// view, where two side by side would each miss the other. On PostgreSQL `FOR NO KEY UPDATE`,
/// which leaves the inserts that merely refer to the patient free; SQLite's one writer
/// serialises every write already.
pub fn hold(conn: &mut DbConnection, id: PatientId) -> Result<(), StoreError> {
    hold_all(conn, &[id])
}

/// Holds the patient's row as [`hold`] does when the patient is within `scope` and the
/// account still admits the caller's token (`account`, `users::admitting`): the one statement a
/// write makes of its caller and its patient before writing their record (two on SQLite).
/// False when nothing is held: the patient is outside the scope, or the account no longer
/// admits the token.
pub fn hold_in_scope(
    conn: &mut DbConnection,
    scope: &Scope,
    id: PatientId,
    account: &Described,
) -> Result<bool, StoreError> {
    let DbConnection::Postgres(pg) = conn else {
        // SQLite's one writer serialises writes already: the two checks one after the other.
        if users::admitting(conn, account)?.is_none() {
            return Ok(false);
        }
        return match clinic_in_scope(conn, scope, id) {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(other) => Err(other),
        };
    };
    use super::schema::users as u;
    // `users::Described::admitted_by`, in SQL.
    let admitting = u::table
        .left_join(patient_accounts::table.on(patient_accounts::user_id.eq(u::id)))
        .filter(u::id.eq(account.id))
        .filter(u::disabled.eq(false))
        .filter(u::token_generation.eq(account.generation))
        .filter(u::role.eq(account.role))
        .filter(u::clinic_id.is_not_distinct_from(account.clinic))
        .filter(
            patient_accounts::patient_id
                .nullable()
                .is_not_distinct_from(account.patient),
        )
        .select(u::id);
    let patient = patients::table
        .filter(patients::id.eq(id))
        .filter(exists(admitting));
    // A locking query cannot be boxed, so the scope's filter is spelled out for each kind.
    let held = match scope {
        Scope::Clinic(clinic) => patient
            .filter(patients::clinic_id.eq(*clinic))
            .select(patients::id)
            .for_no_key_update()
            .first::<PatientId>(pg)
            .optional()?,
        Scope::Patient(own) => patient
            .filter(patients::id.eq(*own))
            .select(patients::id)
            .for_no_key_update()
            .first::<PatientId>(pg)
            .optional()?,
    };
    Ok(held.is_some())
}

/// The patient's indications, in order.
pub fn indications(conn: &mut DbConnection, id: PatientId) -> Result<Vec<Indication>, StoreError> {
    Ok(indications_of(conn, &[id])?
        .into_iter()
        .map(|(_, indication)| indication)
        .collect())
}

fn indications_of(
    conn: &mut DbConnection,
    ids: &[PatientId],
) -> Result<Vec<(PatientId, Indication)>, StoreError> {
    Ok(patient_indications::table
        .filter(patient_indications::patient_id.eq_any(ids))
        .select((
            patient_indications::patient_id,
            patient_indications::indication,
        ))
        .order(patient_indications::indication)
        .load(conn)?)
}

/// Holds several patients as [`hold`] holds one, in the order of their ids.
pub fn hold_all(conn: &mut DbConnection, ids: &[PatientId]) -> Result<(), StoreError> {
    if let DbConnection::Postgres(pg) = conn {
        patients::table
            .filter(patients::id.eq_any(ids))
            .order(patients::id)
            .select(patients::id)
            .for_no_key_update()
            .load::<PatientId>(pg)?;
    }
    Ok(())
}

/// Runs `work` on `ids` ten patients at a time, each batch in a write transaction that holds
/// its patients ([`hold_all`]; on SQLite the one writer's lock): a write to one of them either
/// commits before the batch reads their records, or waits for the batch (the few milliseconds
/// of reading ten records) and then changes what it stored. A batch that fails does not stop
/// the batches after it; each batch's result comes back with its patients.
pub fn in_held_batches<'a, T>(
    conn: &mut DbConnection,
    ids: &'a [PatientId],
    mut work: impl FnMut(&mut DbConnection, &'a [PatientId]) -> Result<T, StoreError>,
) -> Vec<(&'a [PatientId], Result<T, StoreError>)> {
    ids.chunks(10)
        .map(|batch| {
            let started = std::time::Instant::now();
            let done = super::write_transaction(conn, |conn| {
                hold_all(conn, batch)?;
                work(conn, batch)
            });
            if matches!(conn, DbConnection::Sqlite(_)) {
                // SQLite's one write lock, taken back at once batch after batch, could starve
                // a request polling for it (its busy handler sleeps between tries): leave the
                // lock free at least as long as the batch held it.
                std::thread::sleep(started.elapsed());
            }
            (batch, done)
        })
        .collect()
}

/// Every patient's id, in order.
pub fn all_ids(conn: &mut DbConnection) -> Result<Vec<PatientId>, StoreError> {
    Ok(patients::table
        .select(patients::id)
        .order(patients::id)
        .load(conn)?)
}

/// The patients in scope, registered in a range or changed since an instant.
pub fn list(
    conn: &mut DbConnection,
    scope: &Scope,
    window: &Window,
    page: &Page,
) -> Result<Vec<PatientRecord>, StoreError> {
    let query = patients::table.select(PatientRow::as_select()).into_boxed();
    let query = in_scope!(query, scope);
    let rows = in_window!(conn, query, patients, created_at, window, page)?;
    with_lists(conn, rows)
}

fn with_lists(
    conn: &mut DbConnection,
    rows: Vec<PatientRow>,
) -> Result<Vec<PatientRecord>, StoreError> {
    let ids: Vec<PatientId> = rows.iter().map(|r| r.id).collect();
    let indications = indications_of(conn, &ids)?;
    let risk_factors: Vec<RiskFactorRow> = patient_risk_factors::table
        .filter(patient_risk_factors::patient_id.eq_any(&ids))
        .select(RiskFactorRow::as_select())
        .order(patient_risk_factors::factor)
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| PatientRecord {
            indications: indications
                .iter()
                .filter(|(p, _)| *p == row.id)
                .map(|(_, i)| *i)
                .collect(),
            risk_factors: risk_factors
                .iter()
                .filter(|r| r.patient_id == row.id)
                .cloned()
                .collect(),
            row,
        })
        .collect())
}

/// Replaces the patient's fields and lists when the stored version is `expected`.
pub fn replace(
    conn: &mut DbConnection,
    record: &PatientRecord,
    expected: i32,
) -> Result<(), StoreError> {
    let row = &record.row;
    let updated = diesel::update(
        patients::table
            .find(&row.id)
            .filter(patients::version.eq(expected)),
    )
    .set((
        patients::external_ref.eq(&row.external_ref),
        patients::birth_year.eq(row.birth_year),
        patients::sex.eq(&row.sex),
        patients::research_consent.eq(row.research_consent),
        patients::consented_at.eq(row.consented_at),
        patients::updated_at.eq(row.updated_at),
        patients::version.eq(expected + 1),
    ))
    .execute(conn)?;
    if updated == 0 {
        return Err(StoreError::Stale);
    }
    replace_lists(conn, record)
}

pub fn link_account(
    conn: &mut DbConnection,
    user_id: UserId,
    patient_id: PatientId,
) -> Result<(), StoreError> {
    diesel::insert_into(patient_accounts::table)
        .values((
            patient_accounts::user_id.eq(user_id),
            patient_accounts::patient_id.eq(patient_id),
        ))
        .execute(conn)?;
    Ok(())
}

/// The app account of a patient, if one was registered.
pub fn account_of(
    conn: &mut DbConnection,
    patient_id: PatientId,
) -> Result<Option<UserId>, StoreError> {
    Ok(patient_accounts::table
        .filter(patient_accounts::patient_id.eq(patient_id))
        .select(patient_accounts::user_id)
        .first(conn)
        .optional()?)
}

//! The safety worklist (domain.md §7): the clinic's flags, urgent first, and their
//! acknowledgement with a note of what was done.

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::audit::Action;
use crate::domain::ids::{FlagId, PatientId};
use crate::domain::text::{self, Shape};
use crate::error::ApiError;
use crate::store::flags::{self, After, FlagFilter, FlagRow};

/// One page of the clinic's flags in worklist order, as they stand: the flags that time raises
/// are the sweep's to raise (`sweep`), not this read's. The worklist shows clinical data (an
/// item-9 answer, a blood pressure): one audit event for each patient on the page, written
/// behind the answer (`call::audit_behind`), so that the read itself writes nothing.
pub async fn list(
    call: &Call,
    filter: FlagFilter,
    after: Option<After>,
    limit: i64,
) -> Result<Vec<FlagRow>, ApiError> {
    let scope = call.clinician_scope()?;
    let rows = call
        .read(move |conn| Ok(flags::list(conn, &scope, &filter, after, limit)?))
        .await?;
    // One row more than the page shows tells whether another page follows.
    let shown = usize::try_from(limit - 1).unwrap_or(0);
    let mut patients: Vec<PatientId> = rows.iter().take(shown).map(|r| r.patient_id).collect();
    patients.sort_unstable();
    patients.dedup();
    call.audit_behind(
        patients
            .into_iter()
            .map(|patient| Event::record(Action::FlagsListed, patient, patient)),
    )
    .await?;
    Ok(rows)
}

/// Acknowledges an open flag with a note (audited); an acknowledged flag is never reopened.
pub async fn acknowledge(call: &Call, id: FlagId, note: &str) -> Result<FlagRow, ApiError> {
    let scope = call.clinician_scope()?;
    let note = text::required("note", note, Shape::Note, 2000)?;
    call.transaction(move |conn, call| {
        let flag = flags::find(conn, &scope, id)?;
        let now = clock::to_db(clock::now());
        if !flags::acknowledge(conn, id, call.caller.user_id, &note, now)? {
            return Err(ApiError::Conflict(
                "the flag was acknowledged already".into(),
            ));
        }
        call.audit(
            conn,
            Event::record(Action::FlagAcknowledged, id, flag.patient_id),
        )?;
        Ok(flags::find(conn, &scope, id)?)
    })
    .await
}

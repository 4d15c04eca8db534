//! Clinics and the audit trail (administrators).

use crate::call::{Call, Event};
use crate::clock;
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::ids::ClinicId;
use crate::domain::text::{self, Shape};
use crate::domain::RuleBroken;
use crate::error::ApiError;
use crate::records::{created_or_replayed, Created};
use crate::store::audit::{self, AuditEventRow, AuditFilter};
use crate::store::clinics::{self, ClinicRow, NewClinicRow};
use crate::store::{Page, StoreError};

/// Shown by the app at once when a questionnaire raises a suicidal-ideation flag, until the
/// clinic sets its own.
pub const DEFAULT_CRISIS_MESSAGE: &str =
    "If you are thinking about harming yourself or ending your life, \
call your local emergency number now, or your clinic's crisis line.";

/// Creates a clinic; idempotent by client id.
pub async fn create_clinic(
    call: &Call,
    id: ClinicId,
    name: &str,
    crisis_message: Option<&str>,
) -> Result<Created<ClinicRow>, ApiError> {
    call.require(&[Role::Admin])?;
    let name = text::required("name", name, Shape::Line, 200);
    let message = text::required(
        "crisis_message",
        crisis_message.unwrap_or(DEFAULT_CRISIS_MESSAGE),
        Shape::Note,
        2000,
    );
    let (name, message) = match (name, message) {
        (Ok(name), Ok(message)) => (name, message),
        (name, message) => {
            let broken: Vec<RuleBroken> = name.err().into_iter().chain(message.err()).collect();
            return Err(broken.into());
        }
    };
    call.transaction(move |conn, call| {
        created_or_replayed(
            conn,
            |conn| clinics::find(conn, id),
            |row| row.name == name && row.crisis_message == message,
            |conn| {
                let now = clock::to_db(clock::now());
                let row = NewClinicRow {
                    id,
                    name: &name,
                    crisis_message: &message,
                    created_at: now,
                    updated_at: now,
                };
                if !clinics::insert(conn, &row)? {
                    return Ok(None);
                }
                call.audit(conn, Event::new(Action::ClinicCreated).on(id))?;
                clinics::find(conn, id)?
                    .ok_or(StoreError::NotFound)
                    .map(Some)
            },
        )
    })
    .await
}

/// One page of clinics, oldest first.
pub async fn list_clinics(call: &Call, page: Page) -> Result<Vec<ClinicRow>, ApiError> {
    call.require(&[Role::Admin])?;
    call.run(move |conn| clinics::list(conn, &page)).await
}

/// One page of the audit trail, oldest first.
pub async fn audit_trail(
    call: &Call,
    filter: AuditFilter,
    page: Page,
) -> Result<Vec<AuditEventRow>, ApiError> {
    call.require(&[Role::Admin])?;
    call.run(move |conn| audit::list(conn, &filter, &page))
        .await
}

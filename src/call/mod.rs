//! One call to the service as every use case sees it: who is calling, where the request came
//! from (for the audit trail), and what the service holds — the databases, the signing keys,
//! the password hasher, the settings. A handler receives it whole (`api::extract`) and passes
//! it to one use case.
//!
//! The caller comes from their token; that the account still admits it is confirmed by the
//! first statement of each of the call's database entries — [`Call::transaction`],
//! [`Call::transaction_holding`] (in the statement that holds the patient's row),
//! [`Call::read`], [`Call::run`] — on the connection and in the transaction its work then
//! uses, so no request pays a round trip of its own to confirm it. A use case's first
//! database work goes through one of them (later work, such as a research query on the
//! replica, may use the databases directly); one with no database work confirms all the
//! same ([`Call::confirmed`], or [`Call::account`], which gives the account it read).
//! `security::a_refused_account_is_401_on_every_endpoint` holds every endpoint of the contract
//! to that.

pub mod audit_behind;
pub mod caller;
pub mod streams;

use std::sync::Arc;

use crate::auth::password::PasswordHasher;
use crate::auth::token::TokenKeys;
use crate::config::{AuthSettings, ClinicalSettings, ResearchSettings};
use crate::domain::account::Role;
use crate::domain::audit::Action;
use crate::domain::events::EventBody;
use crate::domain::ids::{AuditEventId, PatientId, UserId};
use crate::error::ApiError;
use crate::store::audit::{self as trail, AuditEventRow};
use crate::store::patients;
use crate::store::scope::Scope;
use crate::store::users::UserRow;
use crate::store::{Db, DbConnection, ResearchDb, StoreError};
use audit_behind::AuditBehind;
use caller::Caller;

/// What the service holds for every request.
pub struct Services {
    pub db: Db,
    /// Where research reads: a read replica when one is configured, else `db`.
    pub research_db: ResearchDb,
    pub keys: TokenKeys,
    pub hasher: PasswordHasher,
    pub auth: AuthSettings,
    pub clinical: ClinicalSettings,
    pub research: ResearchSettings,
    /// Where reads that must not write hand their audit events.
    pub audit_behind: AuditBehind,
    /// The clinic streams open in this process.
    pub streams: streams::Streams,
    /// Checks webhook URLs under the deployment's egress rule.
    pub webhooks: crate::delivery::Sender,
    /// Where clients reach the service (`KO_PUBLIC_URL`), for the absolute URLs a FHIR bulk
    /// export hands out; else each request's own scheme and host.
    pub public_url: Option<String>,
}

/// Where a request came from: its id and the client's address.
#[derive(Clone, Debug)]
pub struct Origin {
    pub request_id: String,
    /// The TCP peer; or, behind a trusted proxy, the address that proxy saw.
    pub client_address: Option<String>,
}

/// A signed-in caller's request.
#[derive(Clone)]
pub struct Call {
    pub caller: Caller,
    pub origin: Origin,
    pub services: Arc<Services>,
}

/// The versions a change may be based on (If-Match): any, or one of these. An empty list
/// (a weak entity tag, which the strong comparison never matches) admits none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    Any,
    OneOf(Vec<i32>),
}

impl Expected {
    pub fn admits(&self, version: i32) -> bool {
        match self {
            Expected::Any => true,
            Expected::OneOf(versions) => versions.contains(&version),
        }
    }
}

/// One entry of the audit trail: what was done, to which record, of which patient. The call
/// (or the origin) adds who, when and from where.
#[derive(Clone, Debug)]
pub struct Event {
    action: Action,
    resource_id: Option<String>,
    patient: Option<PatientId>,
    detail: Option<String>,
}

impl Event {
    pub fn new(action: Action) -> Self {
        Self {
            action,
            resource_id: None,
            patient: None,
            detail: None,
        }
    }

    /// The record it was done to, of the action's resource type.
    pub fn on(self, resource: impl std::fmt::Display) -> Self {
        Self {
            resource_id: Some(resource.to_string()),
            ..self
        }
    }

    /// The patient whose data it touched.
    pub fn of(self, patient: PatientId) -> Self {
        Self {
            patient: Some(patient),
            ..self
        }
    }

    /// What a research question asked (JSON).
    pub fn detail(self, detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }

    /// A patient-scoped read or write of one of their records.
    pub fn record(action: Action, resource: impl std::fmt::Display, patient: PatientId) -> Self {
        Self::new(action).on(resource).of(patient)
    }
}

impl Origin {
    /// Writes `event` to the trail as done by `actor` (none for the command line, or a
    /// sign-in that found no account).
    pub fn audit(
        &self,
        conn: &mut DbConnection,
        actor: Option<(UserId, Role)>,
        event: Event,
    ) -> Result<(), StoreError> {
        trail::record(conn, &[self.entry(actor, event)])
    }

    /// `event` as the trail keeps it, done now by `actor`, from here.
    fn entry(&self, actor: Option<(UserId, Role)>, event: Event) -> AuditEventRow {
        AuditEventRow {
            id: AuditEventId::random(),
            occurred_at: crate::clock::to_db(crate::clock::now()),
            actor_id: actor.map(|(id, _)| id),
            actor_role: actor.map(|(_, role)| role),
            action: event.action,
            resource_type: event.action.resource_type().to_owned(),
            resource_id: event.resource_id,
            patient_id: event.patient,
            request_id: self.request_id.clone(),
            client_address: self.client_address.clone(),
            detail: event.detail,
        }
    }
}

impl Call {
    /// Runs `work` in one transaction of the primary database, with the call at hand, once
    /// the caller is confirmed in it.
    pub async fn transaction<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, &Call) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.transaction_after(|conn, call| call.caller.confirm(conn), work)
            .await
    }

    /// Runs `work` in one transaction, as [`Call::transaction`] does, once `patient`'s row is
    /// held within `scope` for a write to their record (`patients::hold_in_scope`): the
    /// caller is confirmed in the same statement. Unauthorized when the account no longer
    /// admits the caller, else not found when the patient is outside the scope.
    pub async fn transaction_holding<T, F>(
        &self,
        scope: Scope,
        patient: PatientId,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection, &Call) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let held = move |conn: &mut DbConnection, call: &Call| {
            if patients::hold_in_scope(conn, &scope, patient, &call.caller.described())? {
                return Ok(());
            }
            call.caller.confirm(conn)?;
            Err(ApiError::NotFound)
        };
        self.transaction_after(held, work).await
    }

    /// Runs `work` in one transaction of the primary database after `first`, which confirms
    /// the caller.
    async fn transaction_after<T, C, F>(&self, first: C, work: F) -> Result<T, ApiError>
    where
        C: FnOnce(&mut DbConnection, &Call) -> Result<(), ApiError> + Send + 'static,
        F: FnOnce(&mut DbConnection, &Call) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let call = self.clone();
        self.services
            .db
            .transaction(move |conn| {
                first(conn, &call)?;
                work(conn, &call)
            })
            .await
    }

    /// Runs `work` on a connection of the primary database, outside a transaction (one
    /// statement, or reads that need not agree), once the caller is confirmed on it.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError>,
    {
        let caller = self.caller.clone();
        self.services
            .db
            .run(move |conn| {
                caller.confirm(conn)?;
                work(conn).map_err(Into::into)
            })
            .await
    }

    /// Confirms the caller, for a use case that has no database work of its own to do it in.
    pub async fn confirmed(&self) -> Result<(), ApiError> {
        self.account().await.map(drop)
    }

    /// The caller's account with its patient record, in the one read that confirms them.
    pub async fn account(&self) -> Result<(UserRow, Option<PatientId>), ApiError> {
        let caller = self.caller.clone();
        self.services.db.run(move |conn| caller.account(conn)).await
    }

    pub fn clinical(&self) -> ClinicalSettings {
        self.services.clinical
    }

    /// Runs `work` in one read-only transaction of the primary database, which on SQLite
    /// takes no write lock, once the caller is confirmed in it: for reads that audit behind
    /// their answer ([`Call::audit_behind`]).
    pub async fn read<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let caller = self.caller.clone();
        self.services
            .db
            .snapshot(move |conn| {
                caller.confirm(conn)?;
                work(conn)
            })
            .await
    }

    /// Writes `event` to the trail as done by the caller.
    pub fn audit(&self, conn: &mut DbConnection, event: Event) -> Result<(), StoreError> {
        self.origin.audit(conn, Some(self.actor()), event)
    }

    /// Writes `event` to the trail as done by the caller and, when there is one, `told` to the
    /// outbox: two writes nothing reads back, as one statement on PostgreSQL.
    pub fn audit_telling(
        &self,
        conn: &mut DbConnection,
        event: Event,
        told: Option<EventBody>,
    ) -> Result<(), StoreError> {
        match told {
            Some(told) => {
                trail::record_telling(conn, &self.origin.entry(Some(self.actor()), event), &told)
            }
            None => self.audit(conn, event),
        }
    }

    /// Hands `events`, done by the caller, to the writer behind (`audit_behind`): written
    /// within moments, by another transaction than the read's.
    pub async fn audit_behind(
        &self,
        events: impl IntoIterator<Item = Event>,
    ) -> Result<(), ApiError> {
        let entries = events
            .into_iter()
            .map(|event| self.origin.entry(Some(self.actor()), event))
            .collect();
        Ok(self.services.audit_behind.record(entries).await?)
    }

    fn actor(&self) -> (UserId, Role) {
        (self.caller.user_id, self.caller.role)
    }

    /// The clinical records the caller may reach (403 for roles that reach none).
    pub fn clinical_scope(&self) -> Result<Scope, ApiError> {
        self.caller.clinical_scope()
    }

    /// 403 unless the caller is a clinician; their clinic's scope.
    pub fn clinician_scope(&self) -> Result<Scope, ApiError> {
        self.caller.clinician_scope()
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        self.caller.require(roles)
    }

    /// The caller's own patient record (403 for anyone but a patient).
    pub fn own_patient(&self) -> Result<PatientId, ApiError> {
        self.caller.patient_id.ok_or(ApiError::Forbidden)
    }
}

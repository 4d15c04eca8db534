//! Where requests enter: one module per resource scope. Handlers turn wire types into domain
//! types, call the store, and turn the result into a response; no clinical rule lives here.

pub mod assessments;
pub mod audit_events;
pub mod auth;
pub mod clinics;
pub mod context;
pub mod courses;
pub mod flags;
pub mod idempotent;
pub mod invites;
pub mod me;
pub mod operations;
pub mod outcomes;
pub mod pagination;
pub mod patient_account;
pub mod patients;
pub mod plan;
pub mod records;
pub mod reference;
pub mod research;
pub mod research_export;
pub mod research_grants;
pub mod sessions;
pub mod side_effects;
pub mod timeline;
pub mod trajectory;
pub mod users;

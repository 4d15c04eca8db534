//! ketamine-outcomes: records ketamine treatment, scores outcomes, flags what a clinician must
//! see, and answers de-identified research questions. `docs/ARCHITECTURE.md` is the map.

pub mod accounts;
pub mod administration;
pub mod api;
pub mod auth;
pub mod call;
pub mod charts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connection;
pub mod contract;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod durability;
pub mod error;
pub mod evaluation;
pub mod fhir;
pub mod http;
pub mod notifications;
pub mod openapi;
pub mod outcomes;
pub mod patients;
pub mod plan;
pub mod records;
pub mod research;
pub mod sign_in;
pub mod startup;
pub mod store;
pub mod sweep;
pub mod telemetry;
pub mod webhooks;
pub mod worklist;

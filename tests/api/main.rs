//! API tests: one binary, every test against the real HTTP app on SQLite and, when
//! `KO_TEST_POSTGRES_URL` names a server, on PostgreSQL too.

mod helpers;

mod access;
mod admin;
mod auth;
mod backup;
mod cluster;
mod demo;
mod durability;
mod errors;
mod evaluation;
mod faults;
mod fhir;
mod fixtures;
mod flags;
mod input_attacks;
mod integrity;
mod layering;
mod notifications;
mod openapi;
mod operations;
mod outcomes;
mod plan;
mod process;
mod processes;
mod reads_audited;
mod receiver;
mod relay;
mod research;
mod research_attacks;
mod research_tiers;
mod schedule;
mod security;
mod shutdown;
mod sign_in_attacks;
mod sync;
mod timeline;
mod upgrade;
mod validation;
mod webhook_processes;
mod webhooks;

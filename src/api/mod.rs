//! Where requests enter: the wire forms of each resource and handlers of a few lines each —
//! extract, call one use case (`records`, `patients`, `plan`, `research`, `sign_in`, …), shape
//! the answer. No rule lives here. [`routes`] registers every route and its OpenAPI operation
//! at once: the server and the contract (`openapi`) are built from the same call.

pub mod assessments;
pub mod auth;
pub mod clinics;
pub mod courses;
pub mod durability;
pub mod extract;
pub mod fhir;
pub mod flags;
pub mod me;
pub mod operations;
pub mod outcomes;
pub mod patients;
pub mod reference;
pub mod research;
pub mod research_grants;
pub mod sessions;
pub mod side_effects;
pub mod timeline;
pub mod users;
pub mod webhooks;
pub mod wire;

use actix_web::web;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{self, MAX_BODY_BYTES};

/// The whole route table, with the extractor settings that make every malformed request end
/// in a problem document.
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(error::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .app_data(web::QueryConfig::default().error_handler(extract::query_error))
    .service(operations::healthz)
    .service(operations::readyz)
    .service(operations::metrics)
    .service(auth::login)
    .service(auth::refresh)
    .service(auth::logout)
    .service(auth::register)
    .service(me::get_me)
    .service(me::change_password)
    .service(me::sign_out_everywhere)
    .service(clinics::create_clinic)
    .service(clinics::list_clinics)
    .service(clinics::list_audit_events)
    .service(webhooks::create_webhook)
    .service(webhooks::list_webhooks)
    .service(webhooks::get_webhook)
    .service(webhooks::update_webhook)
    .service(webhooks::delete_webhook)
    .service(webhooks::rotate_webhook_secret)
    .service(webhooks::list_webhook_deliveries)
    .service(webhooks::replay_webhook_delivery)
    .service(users::create_user)
    .service(users::list_users)
    .service(users::get_user)
    .service(users::update_user)
    .service(reference::list_instruments)
    .service(reference::list_side_effect_kinds)
    .service(reference::list_protocols)
    .service(patients::create_patient)
    .service(patients::list_patients)
    .service(patients::get_patient)
    .service(patients::update_patient)
    .service(patients::get_consent_history)
    .service(users::get_patient_account)
    .service(users::update_patient_account)
    .service(auth::create_invite)
    .service(timeline::get_timeline)
    .service(fhir::get_patient_bundle)
    .service(fhir::create_questionnaire_response)
    .service(fhir::get_capability_statement)
    .service(fhir::start_bulk_export)
    .service(fhir::get_bulk_export)
    .service(fhir::cancel_bulk_export)
    .service(fhir::get_bulk_export_file)
    .service(courses::create_course)
    .service(courses::list_courses)
    .service(courses::get_course)
    .service(courses::update_course)
    .service(sessions::create_session)
    .service(sessions::list_sessions)
    .service(sessions::list_my_sessions)
    .service(sessions::get_session)
    .service(sessions::update_session)
    .service(sessions::delete_session)
    .service(assessments::create_assessment)
    .service(assessments::create_my_assessment)
    .service(assessments::list_assessments)
    .service(assessments::list_my_assessments)
    .service(assessments::get_assessment)
    .service(assessments::delete_assessment)
    .service(side_effects::create_side_effect)
    .service(side_effects::create_my_side_effect)
    .service(side_effects::list_side_effects)
    .service(side_effects::list_my_side_effects)
    .service(side_effects::get_side_effect)
    .service(side_effects::update_side_effect)
    .service(side_effects::delete_side_effect)
    .service(outcomes::get_outcomes)
    .service(outcomes::get_my_outcomes)
    .service(durability::get_durability)
    .service(durability::get_my_durability)
    .service(durability::get_durability_svg)
    .service(outcomes::get_trajectory)
    .service(outcomes::get_due_assessments)
    .service(outcomes::get_my_due_assessments)
    .service(flags::list_flags)
    .service(flags::stream_flags)
    .service(flags::acknowledge_flag)
    .service(research::research_outcomes)
    .service(research::research_side_effects)
    .service(research::research_trajectories)
    .service(research::research_trajectories_svg)
    .service(research::research_budget)
    .service(research::research_export)
    .service(research_grants::create_research_grant)
    .service(research_grants::list_research_grants)
    .service(research_grants::revoke_research_grant)
    .service(research_grants::list_research_budgets);
}

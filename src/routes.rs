//! The whole route table in one place, with the extractor settings that make every malformed
//! request end in a problem document.

use actix_web::web;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api;
use crate::error::{self, MAX_BODY_BYTES};
use crate::openapi::ApiDoc;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_BODY_BYTES)
            .error_handler(error::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .service(api::operations::healthz)
    .service(api::operations::readyz)
    .service(api::operations::metrics)
    .service(api::auth::login)
    .service(api::auth::refresh)
    .service(api::auth::logout)
    .service(api::me::get_me)
    .service(api::me::change_password)
    .service(api::clinics::create_clinic)
    .service(api::clinics::list_clinics)
    .service(api::users::create_user)
    .service(api::users::list_users)
    .service(api::users::get_user)
    .service(api::users::update_user)
    .service(api::audit_events::list_audit_events)
    .service(api::invites::register)
    .service(api::reference::list_instruments)
    .service(api::reference::list_side_effect_kinds)
    .service(api::reference::list_protocols)
    .service(api::patients::create_patient)
    .service(api::patients::list_patients)
    .service(api::patients::get_patient)
    .service(api::patients::update_patient)
    .service(api::invites::create_invite)
    .service(api::timeline::get_timeline)
    .service(api::courses::create_course)
    .service(api::courses::list_courses)
    .service(api::courses::get_course)
    .service(api::courses::update_course)
    .service(api::sessions::create_session)
    .service(api::sessions::list_sessions)
    .service(api::sessions::list_my_sessions)
    .service(api::sessions::get_session)
    .service(api::sessions::update_session)
    .service(api::sessions::delete_session)
    .service(api::assessments::create_assessment)
    .service(api::assessments::create_my_assessment)
    .service(api::assessments::list_assessments)
    .service(api::assessments::list_my_assessments)
    .service(api::assessments::get_assessment)
    .service(api::assessments::delete_assessment)
    .service(api::side_effects::create_side_effect)
    .service(api::side_effects::create_my_side_effect)
    .service(api::side_effects::list_side_effects)
    .service(api::side_effects::list_my_side_effects)
    .service(api::side_effects::get_side_effect)
    .service(api::side_effects::update_side_effect)
    .service(api::side_effects::delete_side_effect)
    .service(api::outcomes::get_outcomes)
    .service(api::outcomes::get_my_outcomes)
    .service(api::trajectory::get_trajectory)
    .service(api::plan::get_due_assessments)
    .service(api::plan::get_my_due_assessments)
    .service(api::patients::get_consent_history)
    .service(api::flags::list_flags)
    .service(api::flags::acknowledge_flag)
    .service(api::research::research_outcomes)
    .service(api::research::research_side_effects)
    .service(api::research::research_trajectories_svg)
    .service(api::research::research_trajectories)
    .service(api::research::research_export)
    .service(web::redirect("/docs", "/docs/"))
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()));
}

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
    .service(web::redirect("/docs", "/docs/"))
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()));
}

//! Probes and metrics for the operators of the service.

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::call::Services;
use crate::telemetry::Metrics;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct HealthResponse {
    /// `ok`, or `unavailable` when a dependency is down.
    pub status: &'static str,
}

/// The process is up and answering.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, description = "The process is up", body = HealthResponse))
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthResponse { status: "ok" })
}

/// The database is reachable; load balancers send traffic only while this answers 200.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses(
        (status = 200, description = "Ready to serve", body = HealthResponse),
        (status = 503, description = "The database is unreachable", body = HealthResponse,
            example = json!({"status": "unavailable"}))
    )
)]
#[get("/readyz")]
pub async fn readyz(services: web::Data<Services>) -> HttpResponse {
    if services.db.is_ready().await {
        HttpResponse::Ok().json(HealthResponse { status: "ok" })
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "5"))
            .json(HealthResponse {
                status: "unavailable",
            })
    }
}

/// Prometheus text exposition: requests and latency by route and status, pool usage, password
/// hashes run, and where research reads a replica, whether it answers and its replay lag.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(metrics: web::Data<Metrics>, services: web::Data<Services>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render(
            &services.db,
            services.hasher.computed(),
            services.research_db.replica_state().await,
        ))
}

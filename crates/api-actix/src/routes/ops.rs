//! Operational endpoints (no API key): liveness and readiness.

use actix_web::{web, HttpResponse};

use stowage_domain::Error;

use crate::error::error_body;
#[allow(unused_imports)] // referenced by the OpenAPI attributes
use crate::error::ErrorBody;
use crate::state::AppState;

/// `GET /health`: the process is alive.
#[utoipa::path(get, path = "/health", tag = "ops", operation_id = "health", security(()), responses((status = 200, description = "Alive"), (status = 405, description = "common/method-not-allowed", body = ErrorBody)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics", security(()), responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain"), (status = 405, description = "common/method-not-allowed", body = ErrorBody)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(
            state.metrics.render()
                + &state.metrics.render_events(state.files.events_written())
                + &state.images.render(),
        )
}

/// `GET /ready`: database and store reachable; 503 otherwise.
#[utoipa::path(get, path = "/ready", tag = "ops", operation_id = "ready", security(()), responses((status = 200, description = "Ready"), (status = 405, description = "common/method-not-allowed", body = ErrorBody), (status = 503, description = "common/service-unavailable: a backend is unreachable (with Retry-After)", body = ErrorBody)))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.files.health_check(),
    )
    .await;
    match check {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "not ready");
            HttpResponse::ServiceUnavailable()
                .json(error_body(&Error::unavailable(format!("{e:#}"))))
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(error_body(&Error::unavailable("readiness check timed out"))),
    }
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapiDocument", security(()), responses((status = 200, description = "OpenAPI document", content_type = "application/json"), (status = 405, description = "common/method-not-allowed", body = ErrorBody)))]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

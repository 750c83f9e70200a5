//! Operational endpoints (no API key): liveness and readiness.

use actix_web::{web, HttpResponse};

use stowage_domain::Error;

use crate::error::error_body;
use crate::state::AppState;

/// `GET /health`: the process is alive.
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /ready`: database and store reachable; 503 otherwise.
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
            HttpResponse::ServiceUnavailable().json(error_body(&Error::unavailable(e.to_string())))
        }
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(error_body(&Error::unavailable("readiness check timed out"))),
    }
}

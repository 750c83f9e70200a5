//! Background work of a server: the lifecycle worker.

use std::time::Duration;

use actix_web::web;

use crate::state::AppState;

/// The lifecycle worker: every `interval`, retries queued object deletions and
/// cleans up abandoned uploads. Safe with several replicas: every step is a
/// compare-and-set in the repository, so two workers never clean one upload twice.
pub async fn lifecycle_worker(state: web::Data<AppState>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match state.files.retry_object_deletions(100).await {
            Ok(0) => {}
            Ok(n) => {
                crate::metrics::Metrics::add(&state.metrics.deletions_retried, n as u64);
                tracing::info!(deleted = n, "queued object deletions done");
            }
            Err(e) => {
                tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "deletion retry failed")
            }
        }
        match state.files.sweep_abandoned_uploads(100).await {
            Ok(0) => {}
            Ok(n) => {
                crate::metrics::Metrics::add(&state.metrics.uploads_expired, n as u64);
                tracing::info!(cleaned = n, "abandoned uploads cleaned");
            }
            Err(e) => {
                tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "upload sweep failed")
            }
        }
    }
}

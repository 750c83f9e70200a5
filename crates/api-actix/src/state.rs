//! What every handler shares.

use std::sync::Arc;

use stowage_adapters_fs::FsStore;

use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use stowage_domain::auth::Authenticator;
use stowage_domain::ports::Clock;
use stowage_domain::service::FileService;

/// Application state (one per process; handlers get it as `web::Data`).
pub struct AppState {
    /// The use cases.
    pub files: Arc<FileService>,
    /// Image transformations: workers, single flights, per-IP allowance.
    pub images: Arc<crate::images::Transformer>,
    /// Credential checks.
    pub auth: Arc<Authenticator>,
    /// The disk store, when the gateway serves objects.
    pub gateway: Option<Arc<FsStore>>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per-caller rate limits.
    pub limiter: Arc<RateLimiter>,
    /// Bounds on gateway upload bodies.
    pub uploads: crate::upload_gate::UploadGate,
    /// `Cache-Control: public, max-age` of public delivery, seconds.
    pub public_max_age_secs: u64,
    /// The OpenAPI document, rendered once at start-up.
    pub openapi: actix_web::web::Bytes,
}

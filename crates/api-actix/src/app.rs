//! Composition root: picks adapters from configuration, wires the domain, binds
//! the listener and runs the server (CORS, request ids, logs, graceful shutdown).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpServer};
use futures_util::FutureExt;
use stowage_adapters_fs::{FsConfig, FsStore};
use stowage_adapters_postgres::{PostgresConfig, PostgresRepository};
use stowage_adapters_s3::S3Store;
use stowage_adapters_sqlite::{SqliteConfig, SqliteRepository};
use stowage_domain::auth::{Authenticator, CachedApiKeys};
use stowage_domain::ports::{ApiKeyRepository, Clock, FileRepository, ObjectStore, SystemClock};
use stowage_domain::service::{FileService, ServiceConfig};

use crate::config::{Config, CorsOrigins, Database};
use crate::error::REQUEST_ID;
use crate::jwt::JwtVerifier;
use crate::state::AppState;

/// The repositories chosen by configuration.
pub struct Repositories {
    /// Files and uploads.
    pub files: Arc<dyn FileRepository>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyRepository>,
}

/// Opens (and migrates) the configured metadata store.
///
/// # Errors
/// A message saying what could not be opened.
pub async fn repositories(config: &Config) -> Result<Repositories, String> {
    match &config.database {
        Database::Sqlite(path) => {
            let to_migrate = path.clone();
            tokio::task::spawn_blocking(move || stowage_adapters_sqlite::migrate(&to_migrate))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("migrating SQLite: {e}"))?;
            let repo = Arc::new(
                SqliteRepository::connect(&SqliteConfig::new(path.clone()))
                    .await
                    .map_err(|e| e.to_string())?,
            );
            Ok(Repositories {
                files: repo.clone(),
                keys: repo,
            })
        }
        Database::Postgres(url) => {
            // A server that accepts connections and never answers must not
            // hang start-up: migrating and connecting share one deadline.
            let limit = Duration::from_secs(config.db_connect_timeout_secs.max(1));
            let opened = tokio::time::timeout(limit, async {
                stowage_adapters_postgres::migrate(url)
                    .await
                    .map_err(|e| format!("migrating PostgreSQL: {e}"))?;
                PostgresRepository::connect(&PostgresConfig::new(url.clone()))
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|_| {
                format!(
                    "PostgreSQL did not answer within {} s (STOWAGE_DB_CONNECT_TIMEOUT_SECS); \
                     is DATABASE_URL pointing at a PostgreSQL server?",
                    limit.as_secs()
                )
            })??;
            let repo = Arc::new(opened);
            Ok(Repositories {
                files: repo.clone(),
                keys: repo,
            })
        }
    }
}

/// Opens the configured S3 store, creating the bucket first when asked to.
///
/// # Errors
/// A message when the store is not configured or cannot be initialised.
pub async fn open_s3(config: &Config) -> Result<S3Store, String> {
    let s3_config = config
        .s3
        .as_ref()
        .ok_or("STOWAGE_STORAGE_BACKEND=s3 needs STOWAGE_S3_BUCKET")?;
    let store =
        S3Store::new(s3_config).map_err(|e| e.detail().unwrap_or(e.message()).to_owned())?;
    if config.s3_init_bucket {
        for note in store
            .init_bucket(&cors_origin_list(&config.cors_origins))
            .await
            .map_err(|e| e.to_string())?
        {
            tracing::info!("{note}");
        }
    }
    Ok(store)
}

/// The configured CORS origins as a list (`*` for any).
pub fn cors_origin_list(origins: &CorsOrigins) -> Vec<String> {
    match origins {
        CorsOrigins::Any => vec!["*".into()],
        CorsOrigins::List(l) => l.clone(),
    }
}

/// A running server.
pub struct Application {
    server: Server,
    port: u16,
    /// Base URL clients use.
    pub base_url: String,
    worker: tokio::task::JoinHandle<()>,
    key_watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    ///
    /// # Errors
    /// A message naming what failed.
    pub async fn build(config: Config, repos: Repositories) -> Result<Self, String> {
        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| format!("bind {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| base_url.clone());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);

        let (store, gateway): (Arc<dyn ObjectStore>, Option<Arc<FsStore>>) =
            match config.storage_backend.as_str() {
                "fs" => {
                    let fs = Arc::new(
                        FsStore::open(FsConfig {
                            root: config.data_dir.join("objects"),
                            public_url,
                            secret: config.gateway_secret.expose().to_vec(),
                            max_object_size: config.limits.single_put_max,
                        })
                        .await
                        .map_err(|e| e.to_string())?,
                    );
                    (fs.clone(), Some(fs))
                }
                "s3" => {
                    let s3 = Arc::new(open_s3(&config).await?);
                    (s3, None)
                }
                other => {
                    return Err(format!(
                        "STOWAGE_STORAGE_BACKEND must be fs or s3, got `{other}`"
                    ))
                }
            };

        let verifier = Arc::new(JwtVerifier::new(&config.jwt)?);
        let mut key_watcher = None;
        let keys: Arc<dyn ApiKeyRepository> = match (config.api_key_cache_ms, &config.database) {
            (0, _) => repos.keys.clone(),
            // PostgreSQL announces key changes: a revocation anywhere counts here
            // at once, and nothing is cached while the announcements are not heard.
            (ttl, Database::Postgres(url)) => {
                let cache = Arc::new(CachedApiKeys::notified(
                    repos.keys.clone(),
                    clock.clone(),
                    ttl,
                ));
                let feed = cache.clone();
                key_watcher = Some(tokio::spawn(stowage_adapters_postgres::watch_api_keys(
                    url.clone(),
                    move |change| feed.apply(change),
                )));
                cache
            }
            (ttl, Database::Sqlite(_)) => {
                Arc::new(CachedApiKeys::new(repos.keys.clone(), clock.clone(), ttl))
            }
        };
        let auth = Arc::new(Authenticator::new(keys, verifier, clock.clone()));
        let service_config = ServiceConfig {
            limits: config.limits.clone(),
            upload_url_ttl_secs: config.upload_url_ttl_secs,
            download_url_ttl_secs: config.download_url_ttl_secs,
            public_base_url: config.public_base_url.clone(),
            multipart_ttl_secs: config.multipart_ttl_secs,
            abandoned_upload_ttl_secs: config.abandoned_upload_ttl_secs,
            staging_grace_secs: config.staging_grace_secs,
        };
        let files = FileService::new(repos.files.clone(), store, clock.clone(), service_config);
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let limiter = Arc::new(crate::ratelimit::RateLimiter::new(config.rate_limit));
        let state = web::Data::new(AppState {
            files,
            auth,
            gateway,
            clock,
            limiter,
            metrics,
            uploads: crate::upload_gate::UploadGate::new(
                config.max_inflight_uploads,
                Duration::from_secs(config.body_idle_timeout_secs.max(1)),
            ),
        });
        let worker = tokio::spawn(lifecycle_worker(
            state.clone(),
            Duration::from_secs(config.lifecycle_interval_secs.max(1)),
        ));

        let cors_origins = config.cors_origins.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(crate::routes::configure)
                .default_service(web::to(crate::routes::not_found))
                .wrap_fn(request_context)
                .wrap(cors(&cors_origins))
                .wrap_fn(envelope)
        })
        .listen(listener)
        .map_err(|e| e.to_string())?
        .shutdown_timeout(30)
        .run();
        Ok(Self {
            server,
            port: addr.port(),
            base_url,
            worker,
            key_watcher,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM; in-flight requests are drained first.
    ///
    /// # Errors
    /// An I/O error of the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.worker.abort();
        if let Some(w) = &self.key_watcher {
            w.abort();
        }
        result
    }
}

/// The lifecycle worker: every `interval`, retries queued object deletions and
/// cleans up abandoned uploads. Safe with several replicas: every step is a
/// compare-and-set in the repository, so two workers never clean one upload twice.
async fn lifecycle_worker(state: web::Data<AppState>, interval: Duration) {
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

fn cors(origins: &CorsOrigins) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([
            "x-api-key",
            "authorization",
            "content-type",
            "range",
            "x-request-id",
        ])
        .expose_headers([
            "etag",
            "content-length",
            "content-range",
            "content-disposition",
            "x-request-id",
        ])
        .max_age(3600);
    match origins {
        CorsOrigins::Any => cors = cors.allow_any_origin().send_wildcard(),
        CorsOrigins::List(list) => {
            for origin in list {
                cors = cors.allowed_origin(origin);
            }
        }
    }
    cors
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client-sent request id is kept if it is a sane token.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')))
    .then(|| s.to_owned())
}

/// Request id (echoed or generated) in a task-local for error bodies and in the
/// `X-Request-Id` response header; one log line per request, without the query
/// string (signed URLs carry signatures there).
fn request_context<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let method = req.method().clone();
    let path = req.path().to_owned();
    req.extensions_mut().insert(id.clone());
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| Arc::clone(&s.metrics));
    let fut = srv.call(req);
    REQUEST_ID.scope(id.clone(), fut).map(move |res| {
        let mut res = res?;
        let status = res.status().as_u16();
        if let Some(m) = &metrics {
            let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
            m.observe(method.as_str(), &route, status, started.elapsed());
        }
        tracing::info!(request_id = %id, %method, %path, status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(X_REQUEST_ID.clone(), v);
        }
        Ok(res)
    })
}

/// Every error answer is the JSON envelope (docs/api.md §12), whoever produced
/// it: a response of 400 or more that is not JSON (a refused CORS preflight,
/// an error of actix itself) is replaced by the envelope of its status, keeping
/// its headers (`Allow`, CORS, `Retry-After`) and adding a request id when it
/// has none; every 503 carries `Retry-After`.
fn envelope<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<
    Output = Result<actix_web::dev::ServiceResponse<EitherBody<B>>, actix_web::Error>,
>
where
    S: Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: MessageBody + 'static,
{
    let fut = srv.call(req);
    async move {
        let res = match fut.await {
            Ok(res) => res,
            Err(e) => {
                // An error a middleware returned (a refused CORS preflight):
                // it becomes a response outside this one, so it carries its
                // response with it.
                let response = e.error_response();
                let body = enveloped(response.status(), response.headers());
                return Err(
                    actix_web::error::InternalError::from_response(e.to_string(), body).into(),
                );
            }
        };
        let json = res
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let status = res.status();
        if status.as_u16() < 400 || json {
            let mut res = res;
            if status == actix_web::http::StatusCode::SERVICE_UNAVAILABLE
                && !res
                    .headers()
                    .contains_key(actix_web::http::header::RETRY_AFTER)
            {
                res.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
                );
            }
            return Ok(res.map_into_left_body());
        }
        let (req, response) = res.into_parts();
        let body = enveloped(response.status(), response.headers());
        Ok(actix_web::dev::ServiceResponse::new(req, body).map_into_right_body())
    }
}

/// The envelope for a bare error response of `status`.
fn enveloped(
    status: actix_web::http::StatusCode,
    headers: &actix_web::http::header::HeaderMap,
) -> actix_web::HttpResponse {
    use actix_web::http::header;
    use stowage_domain::ErrorCode;
    let code = match status.as_u16() {
        401 => ErrorCode::AuthenticationRequired,
        403 => ErrorCode::AccessDenied,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::RateLimited,
        503 => ErrorCode::ServiceUnavailable,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    };
    let id = headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let mut response = actix_web::HttpResponse::build(status);
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.append_header((name.clone(), value.clone()));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.insert_header((X_REQUEST_ID.clone(), v));
    }
    if code == ErrorCode::ServiceUnavailable && !headers.contains_key(header::RETRY_AFTER) {
        response.insert_header((
            header::RETRY_AFTER,
            crate::error::UNAVAILABLE_RETRY_AFTER_SECS.to_string(),
        ));
    }
    let error = stowage_domain::Error::new(code);
    response.json(crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: code.as_str(),
            message: error.message().to_owned(),
            request_id: id,
        },
    })
}

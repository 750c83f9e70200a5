//! `stowage serve`: wires what [`crate::compose`] opened into the use cases,
//! binds the listener and runs the server with its middleware
//! ([`crate::middleware`]) and worker ([`crate::worker`]) until a signal
//! (graceful shutdown).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::{AppConfig, Server};
use actix_web::{web, App};
use stowage_domain::auth::Authenticator;
use stowage_domain::ports::{Clock, SystemClock};
use stowage_domain::service::FileService;

use crate::compose::{self, Repositories, Stores};
use crate::config::Config;
use crate::jwt::JwtVerifier;
use crate::middleware;
use crate::state::AppState;

/// A running server.
pub struct Application {
    server: Server,
    port: u16,
    /// Base URL clients use.
    pub base_url: String,
    worker: tokio::task::JoinHandle<()>,
    /// Delivers webhooks ([`crate::webhooks`]), unless turned off.
    deliverer: Option<tokio::task::JoinHandle<()>>,
    /// Returns the allocator's free memory after bursts ([`crate::memory`]).
    keeper: tokio::task::JoinHandle<()>,
    key_watcher: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port).
    ///
    /// # Errors
    /// A message naming what failed.
    pub async fn build(config: Config, repos: Repositories) -> Result<Self, String> {
        crate::memory::map_large_allocations();
        let listener = TcpListener::bind(&config.listen)
            .map_err(|e| format!("bind {}: {e}", config.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let base_url = format!("http://{addr}");
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| base_url.clone());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let service_config = compose::service_config(&config, &public_url);
        let public_url_for_images = public_url.clone();
        let Stores { objects, gateway } = compose::stores(&config, public_url).await?;
        let verifier = Arc::new(JwtVerifier::new(&config.jwt)?);
        let (keys, key_watcher) = compose::api_keys(&config, &repos, clock.clone());
        let auth = Arc::new(Authenticator::new(keys, verifier, clock.clone()));
        let files = Arc::new(
            FileService::new(repos.files.clone(), objects, clock.clone(), service_config)
                .with_images(config.images.service(&public_url_for_images)),
        );
        let images = Arc::new(crate::images::Transformer::new(
            Arc::new(stowage_adapters_image::Codec),
            &config.images,
        ));
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let public_max_age_secs = config.public_max_age_secs;
        let limiter = Arc::new(crate::ratelimit::RateLimiter::new(config.rate_limit));
        let state = web::Data::new(AppState {
            files,
            images,
            auth,
            gateway,
            clock,
            limiter,
            metrics,
            uploads: crate::upload_gate::UploadGate::new(
                config.max_inflight_uploads,
                Duration::from_secs(config.body_idle_timeout_secs.max(1)),
            ),
            public_max_age_secs,
            openapi: serde_json::to_vec(&crate::openapi::document())
                .map_err(|e| format!("OpenAPI document: {e}"))?
                .into(),
        });
        let worker = tokio::spawn(crate::worker::lifecycle_worker(
            state.clone(),
            Duration::from_secs(config.lifecycle_interval_secs.max(1)),
        ));

        let deliverer = if config.webhooks.deliver {
            let deliverer = crate::webhooks::Deliverer::new(
                repos.hooks.clone(),
                state.clock.clone(),
                Arc::clone(&state.metrics),
                config.webhooks.clone(),
            )?;
            Some(tokio::spawn(Arc::new(deliverer).run()))
        } else {
            None
        };

        let keeper = tokio::spawn(crate::memory::keeper(
            Duration::from_secs(10),
            Arc::clone(&state.metrics),
        ));

        let cors_origins = config.cors_origins.clone();
        // actix-web's `HttpServer`, assembled by hand so that each connection
        // can be wrapped in `EnvelopedIo` (the envelope for requests actix-http
        // refuses before any middleware, docs/api.md §12); the same settings
        // as `HttpServer`'s defaults.
        let builder = actix_server::Server::build().shutdown_timeout(30);
        let shutdown = builder.graceful_shutdown_signal();
        let server = builder
            .listen("stowage", listener, move || {
                let app = App::new()
                    .app_data(state.clone())
                    .configure(crate::routes::configure)
                    .default_service(web::to(crate::routes::not_found))
                    .wrap_fn(middleware::request_context)
                    .wrap(middleware::cors(&cors_origins))
                    .wrap_fn(middleware::envelope)
                    .into_factory()
                    .map_err(|e: actix_web::Error| e.error_response());
                let shutdown = shutdown.clone();
                let http = actix_http::HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let shutdown = shutdown.clone();
                        async move { shutdown.notified().await }
                    })
                    .keep_alive(actix_http::KeepAlive::Timeout(Duration::from_secs(5)))
                    .client_request_timeout(Duration::from_secs(5))
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(addr)
                    .h1(map_config(app, |_| AppConfig::default()));
                fn_service(|io: actix_web::rt::net::TcpStream| {
                    let peer = io.peer_addr().ok();
                    // Headers and a streamed body leave in separate writes: with
                    // Nagle's algorithm on, the body would wait for the client's
                    // delayed ACK of the headers (40 ms).
                    let _ = io.set_nodelay(true);
                    std::future::ready(Ok((crate::wire::EnvelopedIo::new(io), peer)))
                })
                .and_then(http)
            })
            .map_err(|e| e.to_string())?
            .run();
        Ok(Self {
            server,
            port: addr.port(),
            base_url,
            worker,
            deliverer,
            keeper,
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
        if let Some(d) = &self.deliverer {
            d.abort();
        }
        self.keeper.abort();
        if let Some(w) = &self.key_watcher {
            w.abort();
        }
        result
    }
}

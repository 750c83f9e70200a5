//! The composition: which adapters configuration picks, opened and wired.
//! Both `stowage serve` ([`crate::app`]) and the CLI's other commands
//! ([`crate::cli`]) open their stores here, so each choice is made once.

use std::sync::Arc;
use std::time::Duration;

use stowage_adapters_fs::{FsConfig, FsStore};
use stowage_adapters_postgres::{PostgresConfig, PostgresRepository};
use stowage_adapters_s3::{S3Config, S3Store};
use stowage_adapters_sqlite::{SqliteConfig, SqliteRepository};
use stowage_diesel_common::transfer::TableCopy;
use stowage_domain::auth::CachedApiKeys;
use stowage_domain::ports::{
    ApiKeyRepository, Clock, FileRepository, ObjectStore, WebhookRepository,
};
use stowage_domain::service::ServiceConfig;

use crate::config::{Config, CorsOrigins, Database, Storage};

/// The repositories chosen by configuration.
pub struct Repositories {
    /// Files and uploads.
    pub files: Arc<dyn FileRepository>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyRepository>,
    /// Webhook endpoints and deliveries.
    pub hooks: Arc<dyn WebhookRepository>,
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
                .map_err(|e| format!("{e:#}"))?
                .map_err(|e| format!("migrating SQLite: {e}"))?;
            let repo = Arc::new(
                SqliteRepository::connect(&SqliteConfig::new(path.clone()))
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            );
            Ok(Repositories {
                files: repo.clone(),
                keys: repo.clone(),
                hooks: repo,
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
                let mut pg = PostgresConfig::new(url.clone());
                pg.max_connections = config.db_pool_size;
                PostgresRepository::connect(&pg)
                    .await
                    .map_err(|e| format!("{e:#}"))
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
                keys: repo.clone(),
                hooks: repo,
            })
        }
    }
}

/// Opens an S3 store; with `init_bucket`, creates the bucket (if missing) and
/// its CORS rule for `cors` first, logging what was done.
///
/// # Errors
/// A message when the store cannot be built or initialised.
pub async fn open_s3(
    config: &S3Config,
    init_bucket: bool,
    cors: &CorsOrigins,
) -> Result<(S3Store, Vec<String>), String> {
    let store = S3Store::new(config).map_err(|e| e.detail().unwrap_or(e.message()).to_owned())?;
    let notes = if init_bucket {
        store
            .init_bucket(&cors_origin_list(cors))
            .await
            .map_err(|e| format!("{}: {}", e.message(), e.detail().unwrap_or("")))?
    } else {
        Vec::new()
    };
    Ok((store, notes))
}

/// The object store chosen by configuration, and the disk store again when it
/// is the one (the gateway serves its signed URLs).
pub struct Stores {
    /// What the use cases call.
    pub objects: Arc<dyn ObjectStore>,
    /// The disk store behind the gateway routes; `None` on S3.
    pub gateway: Option<Arc<FsStore>>,
}

/// Opens the configured object store; `public_url` is the base of the disk
/// store's signed URLs.
///
/// # Errors
/// A message naming what could not be opened.
pub async fn stores(config: &Config, public_url: String) -> Result<Stores, String> {
    match &config.storage {
        Storage::Disk => {
            let fs = Arc::new(
                FsStore::open(FsConfig {
                    root: config.data_dir.join("objects"),
                    public_url,
                    secret: config.gateway_secret.expose().to_vec(),
                    max_object_size: config.limits.single_put_max,
                })
                .await
                .map_err(|e| format!("{e:#}"))?,
            );
            Ok(Stores {
                objects: fs.clone(),
                gateway: Some(fs),
            })
        }
        Storage::S3 {
            config: s3,
            init_bucket,
        } => {
            let (store, notes) = open_s3(s3, *init_bucket, &config.cors_origins).await?;
            for note in notes {
                tracing::info!("{note}");
            }
            Ok(Stores {
                objects: Arc::new(store),
                gateway: None,
            })
        }
    }
}

/// API keys as the authenticator reads them: straight from the repository,
/// or through a cache — on PostgreSQL invalidated by its change feed (the
/// returned task listens to it), on SQLite bounded by its TTL only.
pub fn api_keys(
    config: &Config,
    repos: &Repositories,
    clock: Arc<dyn Clock>,
) -> (
    Arc<dyn ApiKeyRepository>,
    Option<tokio::task::JoinHandle<()>>,
) {
    match (config.api_key_cache_ms, &config.database) {
        (0, _) => (repos.keys.clone(), None),
        // PostgreSQL announces key changes: a revocation anywhere counts here
        // at once, and nothing is cached while the announcements are not heard.
        (ttl, Database::Postgres(url)) => {
            let cache = Arc::new(CachedApiKeys::notified(repos.keys.clone(), clock, ttl));
            let feed = cache.clone();
            let watcher = tokio::spawn(stowage_adapters_postgres::watch_api_keys(
                url.clone(),
                move |change| feed.apply(change),
            ));
            (cache, Some(watcher))
        }
        (ttl, Database::Sqlite(_)) => (
            Arc::new(CachedApiKeys::new(repos.keys.clone(), clock, ttl)),
            None,
        ),
    }
}

/// The use cases' tunables from configuration; `public_url` is the server's
/// own base URL (public files are served under `{public_url}/v1/public` unless
/// `STOWAGE_PUBLIC_BASE_URL` names a CDN in front).
pub fn service_config(config: &Config, public_url: &str) -> ServiceConfig {
    ServiceConfig {
        limits: config.limits.clone(),
        upload_url_ttl_secs: config.upload_url_ttl_secs,
        download_url_ttl_secs: config.download_url_ttl_secs,
        public_base_url: Some(
            config
                .public_base_url
                .clone()
                .unwrap_or_else(|| format!("{}/v1/public", public_url.trim_end_matches('/'))),
        ),
        multipart_ttl_secs: config.multipart_ttl_secs,
        abandoned_upload_ttl_secs: config.abandoned_upload_ttl_secs,
        staging_grace_secs: config.staging_grace_secs,
        quota: config.quota,
    }
}

/// The configured CORS origins as a list (`*` for any).
pub fn cors_origin_list(origins: &CorsOrigins) -> Vec<String> {
    match origins {
        CorsOrigins::Any => vec!["*".into()],
        CorsOrigins::List(l) => l.clone(),
    }
}

/// A metadata store opened for `stowage transfer`, which copies whole tables:
/// migrated first when it is the target (`migrate`), never when it is the
/// source (a transfer only reads its source).
///
/// # Errors
/// A message naming what could not be opened.
pub async fn table_copy(database: &Database, migrate: bool) -> Result<Arc<dyn TableCopy>, String> {
    match database {
        Database::Sqlite(path) => {
            if migrate {
                let to_migrate = path.clone();
                tokio::task::spawn_blocking(move || stowage_adapters_sqlite::migrate(&to_migrate))
                    .await
                    .map_err(|e| format!("{e:#}"))?
                    .map_err(|e| format!("migrating SQLite {path}: {e}"))?;
            } else if !std::path::Path::new(path).is_file() {
                return Err(format!("no SQLite database at {path}"));
            }
            Ok(Arc::new(
                SqliteRepository::connect(&SqliteConfig::new(path.clone()))
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            ))
        }
        Database::Postgres(url) => {
            if migrate {
                stowage_adapters_postgres::migrate(url)
                    .await
                    .map_err(|e| format!("migrating PostgreSQL: {e}"))?;
            }
            let mut config = PostgresConfig::new(url.clone());
            // Batches of large rows take longer than one request's query.
            config.query_timeout = Duration::from_secs(60);
            Ok(Arc::new(
                PostgresRepository::connect(&config)
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            ))
        }
    }
}

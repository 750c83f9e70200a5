//! Configuration from environment variables (names in the README configuration table), with a default
//! that needs nothing: SQLite and objects under `./data`, secrets generated on
//! first start and kept in the data folder with mode 0600.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use stowage_domain::limits::Limits;

/// Where metadata lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file.
    Sqlite(String),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({p})"),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// Where objects live.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The local disk under `<data>/objects`, served by the built-in gateway.
    Disk,
    /// An S3-compatible store; the API process only signs.
    S3 {
        /// Endpoint, bucket, credentials, timeout, trusted CAs.
        config: stowage_adapters_s3::S3Config,
        /// Create the bucket and its CORS rule at start-up.
        init_bucket: bool,
    },
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps raw bytes (for embedding code and tests).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How bearer tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// HS256, RS256 or ES256.
    pub algorithm: jsonwebtoken::Algorithm,
    /// HS256 shared secret.
    pub secret: Secret,
    /// PEM public key(s) for RS256/ES256.
    pub public_key_pem: Option<Vec<u8>>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
}

/// Allowed CORS origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`.
    Any,
    /// Exactly these.
    List(Vec<String>),
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Everything `stowage` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind.
    pub listen: String,
    /// Data folder.
    pub data_dir: PathBuf,
    /// Base URL of signed gateway URLs (`None`: derived from the bound address).
    pub public_url: Option<String>,
    /// Base URL of `publicUrl` for public files.
    pub public_base_url: Option<String>,
    /// `Cache-Control: public, max-age` of public delivery, seconds.
    pub public_max_age_secs: u64,
    /// Metadata store.
    pub database: Database,
    /// Object store.
    pub storage: Storage,
    /// Token verification.
    pub jwt: JwtConfig,
    /// Gateway URL signing key.
    pub gateway_secret: Secret,
    /// Upload URL lifetime, seconds.
    pub upload_url_ttl_secs: u64,
    /// Download URL lifetime, seconds.
    pub download_url_ttl_secs: u64,
    /// Lifetime of a multipart upload, seconds.
    pub multipart_ttl_secs: u64,
    /// Age at which an unregistered upload is cleaned up, seconds.
    pub abandoned_upload_ttl_secs: u64,
    /// Period of the lifecycle worker, seconds.
    pub lifecycle_interval_secs: u64,
    /// Margin after an upload URL's expiry before its staging key is emptied, seconds.
    pub staging_grace_secs: u64,
    /// Quotas (`STOWAGE_QUOTA_{USER,PROJECT}_{BYTES,FILES}`; unset: none).
    pub quota: stowage_domain::quota::Quota,
    /// How long start-up waits for the database to answer, seconds.
    pub db_connect_timeout_secs: u64,
    /// How many PostgreSQL connections the server keeps
    /// (`STOWAGE_DB_POOL_SIZE`).
    pub db_pool_size: u32,
    /// A gateway upload body that sends nothing for this long is cut off, seconds.
    pub body_idle_timeout_secs: u64,
    /// Gateway upload bodies received at once.
    pub max_inflight_uploads: usize,
    /// Size limits.
    pub limits: Limits,
    /// Log format.
    pub log_format: LogFormat,
    /// CORS origins.
    pub cors_origins: CorsOrigins,
    /// Per-caller rate limits.
    pub rate_limit: crate::ratelimit::RateLimitConfig,
    /// How long API-key lookups are remembered (0: not at all).
    pub api_key_cache_ms: u64,
    /// Webhook delivery (docs/api.md §10).
    pub webhooks: WebhookConfig,
    /// Image transformations (docs/api.md §9).
    pub images: ImageSettings,
}

/// Image transformation settings (`STOWAGE_IMAGE_*`, docs/api.md §9).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSettings {
    /// Largest target side (`STOWAGE_IMAGE_MAX_DIMENSION`, default 4096).
    pub max_dimension: u32,
    /// Largest source in pixels (`STOWAGE_IMAGE_MAX_SOURCE_PIXELS`, default 50,000,000).
    pub max_source_pixels: u64,
    /// Largest source file in bytes (`STOWAGE_IMAGE_MAX_SOURCE_BYTES`, default 128 MiB).
    pub max_source_bytes: u64,
    /// Derived images stored per file (`STOWAGE_IMAGE_MAX_DERIVATIVES`, default 50).
    pub max_derivatives: u32,
    /// Transforms at once (`STOWAGE_IMAGE_WORKERS`, default: the number of cores).
    pub workers: usize,
    /// Longest wait for a worker before `503` (`STOWAGE_IMAGE_QUEUE_TIMEOUT_MS`, default 10000).
    pub queue_timeout: std::time::Duration,
    /// Memory the transforms running at once may take together, MiB
    /// (`STOWAGE_IMAGE_MEMORY_MIB`, default 256): a job weighs its estimated
    /// peak ([`stowage_domain::image::peak_bytes`]); one larger than the whole
    /// budget runs alone.
    pub memory_mib: u32,
    /// Uncached transforms per second per client IP (`STOWAGE_IMAGE_RATE_PER_SEC`,
    /// default 10; 0 turns the limit off) and burst (`STOWAGE_IMAGE_RATE_BURST`, default 30).
    pub rate_per_sec: f64,
    /// Burst of the per-IP limit.
    pub rate_burst: f64,
    /// Proxies (a CDN, a load balancer) whose `X-Forwarded-For` names the
    /// client (`STOWAGE_TRUSTED_PROXIES`: addresses or CIDR ranges, comma-separated;
    /// default none: the TCP peer is the client).
    pub trusted_proxies: Vec<IpRange>,
}

/// An address range (`10.0.0.0/8`, `2001:db8::/32`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    base: std::net::IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(b) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(b) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let base: std::net::IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an address or CIDR range"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix must be 0 to {max}"))?
        };
        Ok(Self { base, prefix })
    }
}

impl ImageSettings {
    fn from_env() -> Result<Self, String> {
        let rate = |name: &str, default: f64| -> Result<f64, String> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("{name} must be a number ≥ 0, not `{v}`")),
            }
        };
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Ok(Self {
            max_dimension: u32::try_from(
                num("STOWAGE_IMAGE_MAX_DIMENSION", 4096)?.clamp(1, 65_535),
            )
            .unwrap_or(4096),
            max_source_pixels: num("STOWAGE_IMAGE_MAX_SOURCE_PIXELS", 50_000_000)?.max(1),
            max_source_bytes: num("STOWAGE_IMAGE_MAX_SOURCE_BYTES", 128 << 20)?.max(1),
            max_derivatives: u32::try_from(num("STOWAGE_IMAGE_MAX_DERIVATIVES", 50)?.min(100_000))
                .unwrap_or(50),
            workers: usize::try_from(num("STOWAGE_IMAGE_WORKERS", cores as u64)?.clamp(1, 1024))
                .unwrap_or(cores),
            queue_timeout: std::time::Duration::from_millis(
                num("STOWAGE_IMAGE_QUEUE_TIMEOUT_MS", 10_000)?.max(1),
            ),
            memory_mib: u32::try_from(num("STOWAGE_IMAGE_MEMORY_MIB", 256)?.clamp(16, 1 << 20))
                .unwrap_or(256),
            rate_per_sec: rate("STOWAGE_IMAGE_RATE_PER_SEC", 10.0)?,
            rate_burst: rate("STOWAGE_IMAGE_RATE_BURST", 30.0)?.max(1.0),
            trusted_proxies: var("STOWAGE_TRUSTED_PROXIES")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|r| !r.is_empty())
                        .map(|r| {
                            r.parse::<IpRange>()
                                .map_err(|e| format!("STOWAGE_TRUSTED_PROXIES: {e}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// The domain's view of these settings; `public_url` is the server's own base.
    pub fn service(&self, public_url: &str) -> stowage_domain::service::ImageConfig {
        stowage_domain::service::ImageConfig {
            bounds: stowage_domain::image::ImageBounds {
                max_dimension: self.max_dimension,
                max_source_pixels: self.max_source_pixels,
                max_source_bytes: self.max_source_bytes,
            },
            max_derivatives: self.max_derivatives,
            base_url: Some(format!("{}/v1/img", public_url.trim_end_matches('/'))),
        }
    }
}

/// Webhook delivery settings (`STOWAGE_WEBHOOK_*`, `STOWAGE_EVENT_RETENTION_HOURS`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Whether this server delivers (`STOWAGE_WEBHOOKS_DELIVER`, default on;
    /// replicas that only serve the API may turn it off).
    pub deliver: bool,
    /// Retry schedule (`STOWAGE_WEBHOOK_RETRY_HOURS`, default 24, fractions
    /// allowed; `STOWAGE_WEBHOOK_RETRY_FIRST_MS`, default 5000;
    /// `STOWAGE_WEBHOOK_RETRY_MAX_DELAY_MS`, default one hour).
    pub retry: stowage_domain::webhooks::RetryPolicy,
    /// Deliver to loopback, private and link-local addresses too
    /// (`STOWAGE_WEBHOOK_ALLOW_PRIVATE=1`).
    pub allow_private: bool,
    /// Longest wait for an endpoint's answer (`STOWAGE_WEBHOOK_TIMEOUT_MS`, default 10000).
    pub timeout: std::time::Duration,
    /// Pause between looks for due deliveries when there were none
    /// (`STOWAGE_WEBHOOK_POLL_MS`, default 1000).
    pub poll: std::time::Duration,
    /// Deliveries in flight at once (`STOWAGE_WEBHOOK_CONCURRENCY`, default 64: measured, docs/performance.md).
    pub concurrency: u32,
    /// How long events and finished deliveries are kept
    /// (`STOWAGE_EVENT_RETENTION_HOURS`, default 168: a week).
    pub retention: std::time::Duration,
}

/// Hours as a duration (fractions allowed: `0.01` is 36 s).
fn hours(name: &str, default: f64) -> Result<std::time::Duration, String> {
    let h = match var(name) {
        None => default,
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|h| h.is_finite() && *h >= 0.0 && *h <= 1e6)
            .ok_or_else(|| format!("{name} must be a number of hours, got `{v}`"))?,
    };
    Ok(std::time::Duration::from_secs_f64(h * 3600.0))
}

fn flag(name: &str, default: bool) -> Result<bool, String> {
    match var(name).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(format!("{name} must be 1 or 0, got `{other}`")),
    }
}

impl WebhookConfig {
    fn from_env() -> Result<Self, String> {
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Ok(Self {
            deliver: flag("STOWAGE_WEBHOOKS_DELIVER", true)?,
            retry: stowage_domain::webhooks::RetryPolicy {
                first_ms: num("STOWAGE_WEBHOOK_RETRY_FIRST_MS", 5_000)?.max(1),
                max_delay_ms: num("STOWAGE_WEBHOOK_RETRY_MAX_DELAY_MS", 3_600_000)?.max(1),
                horizon_ms: millis(hours("STOWAGE_WEBHOOK_RETRY_HOURS", 24.0)?),
            },
            allow_private: flag("STOWAGE_WEBHOOK_ALLOW_PRIVATE", false)?,
            timeout: std::time::Duration::from_millis(
                num("STOWAGE_WEBHOOK_TIMEOUT_MS", 10_000)?.max(1),
            ),
            poll: std::time::Duration::from_millis(num("STOWAGE_WEBHOOK_POLL_MS", 1_000)?.max(10)),
            concurrency: u32::try_from(num("STOWAGE_WEBHOOK_CONCURRENCY", 64)?.clamp(1, 1024))
                .unwrap_or(64),
            retention: hours("STOWAGE_EVENT_RETENTION_HOURS", 168.0)?,
        })
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn num(name: &str, default: u64) -> Result<u64, String> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name} must be a non-negative integer, got `{v}`")),
    }
}

/// A non-negative integer variable, or `None` when unset.
fn optional_num(name: &str) -> Result<Option<u64>, String> {
    var(name)
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{name} must be a non-negative integer, got `{v}`"))
        })
        .transpose()
}

/// Reads a secret file from the data folder, creating it (32 random bytes, hex,
/// mode 0600) on first use.
fn data_secret(dir: &Path, name: &str) -> Result<Secret, String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => hex::decode(text.trim())
            .map(Secret)
            .map_err(|_| format!("{} is not hex", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| format!("create {}: {e}", path.display()))?;
            file.write_all(hex::encode(bytes).as_bytes())
                .map_err(|e| format!("write {}: {e}", path.display()))?;
            file.sync_all()
                .map_err(|e| format!("sync {}: {e}", path.display()))?;
            Ok(Secret(bytes.to_vec()))
        }
        Err(e) => Err(format!("read {}: {e}", path.display())),
    }
}

/// The database a URL names: `postgres://…` (or `postgresql://…`), else a
/// SQLite file (`sqlite://` prefix optional).
pub fn database_from(url: &str) -> Database {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Database::Postgres(url.to_owned())
    } else {
        Database::Sqlite(url.strip_prefix("sqlite://").unwrap_or(url).to_owned())
    }
}

/// The object store (`STOWAGE_STORAGE_BACKEND`, and for S3 the
/// `STOWAGE_S3_*` variables with the standard AWS ones honoured).
fn storage() -> Result<Storage, String> {
    storage_from("STOWAGE_", var("STOWAGE_STORAGE_BACKEND"))
}

/// The object store `backend` (`fs` when `None`) with its S3 settings read
/// from the variables `{prefix}S3_*` (`STOWAGE_S3_BUCKET` for the server,
/// `STOWAGE_TO_S3_BUCKET` for a transfer's target, …).
///
/// # Errors
/// A message naming the bad variable.
pub fn storage_from(prefix: &str, backend: Option<String>) -> Result<Storage, String> {
    let name = |suffix: &str| format!("{prefix}{suffix}");
    let var = |suffix: &str| var(&name(suffix));
    match backend.as_deref() {
        None | Some("fs") => return Ok(Storage::Disk),
        Some("s3") => {}
        Some(other) => {
            return Err(format!(
                "{} must be fs or s3, got `{other}`",
                name("STORAGE_BACKEND")
            ))
        }
    }
    let bucket =
        var("S3_BUCKET").ok_or_else(|| format!("s3 storage needs {}", name("S3_BUCKET")))?;
    let access = var("S3_ACCESS_KEY_ID");
    let secret = var("S3_SECRET_ACCESS_KEY");
    let credentials = match (access, secret) {
        (Some(a), Some(s)) => Some((a, s)),
        (None, None) => None, // the standard AWS chain: AWS_ACCESS_KEY_ID, profiles, instance roles
        _ => {
            return Err(format!(
                "set both {} and {}, or neither",
                name("S3_ACCESS_KEY_ID"),
                name("S3_SECRET_ACCESS_KEY")
            ))
        }
    };
    let config = stowage_adapters_s3::S3Config {
        endpoint: var("S3_ENDPOINT"),
        region: var("S3_REGION")
            .or_else(|| self::var("AWS_REGION"))
            .or_else(|| self::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into()),
        bucket,
        credentials,
        timeout: std::time::Duration::from_millis(num(&name("S3_TIMEOUT_MS"), 2000)?),
        ca_file: var("S3_CA_FILE").map(PathBuf::from),
    };
    Ok(Storage::S3 {
        config,
        init_bucket: var("S3_INIT_BUCKET").is_some_and(|v| v == "1" || v == "true"),
    })
}

impl Config {
    /// Reads the environment; creates the data folder and generated secrets.
    ///
    /// # Errors
    /// A message naming the bad variable.
    pub fn from_env() -> Result<Self, String> {
        let data_dir = PathBuf::from(var("STOWAGE_DATA_DIR").unwrap_or_else(|| "./data".into()));
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| format!("create data folder {}: {e}", data_dir.display()))?;
        let database = match var("DATABASE_URL") {
            None => Database::Sqlite(data_dir.join("stowage.db").display().to_string()),
            Some(url) => database_from(&url),
        };
        // PostgreSQL pushes key changes (LISTEN/NOTIFY), so caching costs no
        // revocation delay there; the TTL only bounds a silently dead feed.
        // SQLite cannot announce the CLI's changes: no cache unless asked.
        let api_key_cache_ms = num(
            "STOWAGE_API_KEY_CACHE_MS",
            if matches!(database, Database::Postgres(_)) {
                10_000
            } else {
                0
            },
        )?;
        let algorithm = match var("STOWAGE_JWT_ALGORITHM").as_deref() {
            None | Some("HS256") => jsonwebtoken::Algorithm::HS256,
            Some("RS256") => jsonwebtoken::Algorithm::RS256,
            Some("ES256") => jsonwebtoken::Algorithm::ES256,
            Some(other) => {
                return Err(format!(
                    "STOWAGE_JWT_ALGORITHM must be HS256, RS256 or ES256, got `{other}`"
                ))
            }
        };
        let public_key_pem = match var("STOWAGE_JWT_PUBLIC_KEY_FILE") {
            Some(path) => Some(
                std::fs::read(&path)
                    .map_err(|e| format!("STOWAGE_JWT_PUBLIC_KEY_FILE {path}: {e}"))?,
            ),
            None => None,
        };
        if algorithm != jsonwebtoken::Algorithm::HS256 && public_key_pem.is_none() {
            return Err("STOWAGE_JWT_PUBLIC_KEY_FILE is required for RS256/ES256".into());
        }
        let secret = match var("STOWAGE_JWT_SECRET") {
            Some(s) => Secret(s.into_bytes()),
            None => data_secret(&data_dir, "jwt_secret")?,
        };
        let cors_origins = match var("STOWAGE_CORS_ORIGINS") {
            None => CorsOrigins::Any,
            Some(v) if v == "*" => CorsOrigins::Any,
            Some(v) => CorsOrigins::List(
                v.split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect(),
            ),
        };
        let log_format = match var("STOWAGE_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(format!(
                    "STOWAGE_LOG_FORMAT must be pretty or json, got `{other}`"
                ))
            }
        };
        let defaults = Limits::default();
        let limits = Limits {
            images_max: num("STOWAGE_MAX_IMAGE_BYTES", defaults.images_max)?,
            documents_max: num("STOWAGE_MAX_DOCUMENT_BYTES", defaults.documents_max)?,
            media_max: num("STOWAGE_MAX_MEDIA_BYTES", defaults.media_max)?,
            single_put_max: num("STOWAGE_MAX_SINGLE_PUT_BYTES", defaults.single_put_max)?,
            multipart_max: num("STOWAGE_MAX_MULTIPART_BYTES", defaults.multipart_max)?,
            min_size: defaults.min_size,
        };
        Ok(Self {
            listen: var("STOWAGE_LISTEN").unwrap_or_else(|| "127.0.0.1:8080".into()),
            public_url: var("STOWAGE_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            public_base_url: var("STOWAGE_PUBLIC_BASE_URL")
                .map(|u| u.trim_end_matches('/').to_owned()),
            public_max_age_secs: num("STOWAGE_PUBLIC_MAX_AGE_SECS", 3600)?,
            database,
            storage: storage()?,
            jwt: JwtConfig {
                algorithm,
                secret,
                public_key_pem,
                issuer: var("STOWAGE_JWT_ISSUER"),
                audience: var("STOWAGE_JWT_AUDIENCE"),
            },
            gateway_secret: data_secret(&data_dir, "gateway_secret")?,
            upload_url_ttl_secs: num("STOWAGE_UPLOAD_URL_TTL_SECS", 900)?,
            download_url_ttl_secs: num("STOWAGE_DOWNLOAD_URL_TTL_SECS", 3600)?,
            multipart_ttl_secs: num("STOWAGE_MULTIPART_TTL_SECS", 86_400)?,
            abandoned_upload_ttl_secs: num("STOWAGE_ABANDONED_UPLOAD_TTL_SECS", 86_400)?,
            lifecycle_interval_secs: num("STOWAGE_LIFECYCLE_INTERVAL_SECS", 60)?,
            staging_grace_secs: num("STOWAGE_STAGING_GRACE_SECS", 60)?,
            quota: stowage_domain::quota::Quota {
                user: stowage_domain::quota::Limit {
                    files: optional_num("STOWAGE_QUOTA_USER_FILES")?,
                    bytes: optional_num("STOWAGE_QUOTA_USER_BYTES")?,
                },
                project: stowage_domain::quota::Limit {
                    files: optional_num("STOWAGE_QUOTA_PROJECT_FILES")?,
                    bytes: optional_num("STOWAGE_QUOTA_PROJECT_BYTES")?,
                },
            },
            db_connect_timeout_secs: num("STOWAGE_DB_CONNECT_TIMEOUT_SECS", 10)?,
            db_pool_size: match num("STOWAGE_DB_POOL_SIZE", 16)? {
                n @ 1..=1000 => n as u32,
                n => return Err(format!("STOWAGE_DB_POOL_SIZE must be 1 to 1000, got {n}")),
            },
            body_idle_timeout_secs: num("STOWAGE_BODY_IDLE_TIMEOUT_SECS", 30)?,
            max_inflight_uploads: usize::try_from(num("STOWAGE_MAX_INFLIGHT_UPLOADS", 1024)?)
                .unwrap_or(usize::MAX),
            limits,
            log_format,
            cors_origins,
            api_key_cache_ms,
            rate_limit: crate::ratelimit::RateLimitConfig {
                per_second: num("STOWAGE_RATE_LIMIT_PER_SEC", 0)? as f64,
                burst: num("STOWAGE_RATE_LIMIT_BURST", 0)?
                    .max(num("STOWAGE_RATE_LIMIT_PER_SEC", 0)?) as f64,
                include_service: var("STOWAGE_RATE_LIMIT_SERVICE")
                    .is_some_and(|v| v == "1" || v == "true"),
            },
            webhooks: WebhookConfig::from_env()?,
            images: ImageSettings::from_env()?,
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_generated_once_private_and_never_printed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = data_secret(dir.path(), "s").expect("create");
        let b = data_secret(dir.path(), "s").expect("read");
        assert_eq!(a, b);
        assert_eq!(a.expose().len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("s"))
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }
}

#[cfg(test)]
mod ip_range_tests {
    use super::IpRange;

    #[test]
    fn ranges_match_their_addresses() {
        let r = |s: &str| s.parse::<IpRange>().expect(s);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect(s);
        assert!(r("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!r("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(r("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!r("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(r("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(r("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!r("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(
            r("127.0.0.1").contains(ip("::ffff:127.0.0.1")),
            "v4-mapped v6 peers"
        );
        assert!(!r("10.0.0.0/8").contains(ip("::1")));
        for bad in ["10.0.0.0/33", "nope", "::/129", "1.2.3.4/x", ""] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }
}

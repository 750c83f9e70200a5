//! The `stowage` command line: `serve` (default), `migrate`, `keys`,
//! `webhooks`, `storage`, `backup`, `restore`, `transfer`, `token`.

use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use stowage_domain::auth::{new_api_key, ApiKeyKind, ApiKeyRecord};
use stowage_domain::model::{Environment, ProjectId, Tenant, Timestamp};
use stowage_domain::ports::{ApiKeyRepository, Clock, SystemClock};

use crate::app::Application;
use crate::compose::repositories;
use crate::config::{Config, Database, LogFormat, Storage};

#[derive(Debug, Parser)]
#[command(name = "stowage", version, about = "Stowage file-storage service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations to DATABASE_URL.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Webhook endpoints and their deliveries (docs/api.md §10).
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Object store set-up.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Embedded mode: a consistent backup (database snapshot taken while the
    /// server runs, secrets, objects) into a new folder.
    Backup {
        /// Folder to create (must be empty).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Embedded mode: restore a backup onto this (fresh) data folder.
    Restore {
        /// Folder written by `stowage backup`.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Copy everything — API keys, uploads, files, the deletion queue,
    /// secrets, and every object, verified — from the configured stores to
    /// another database and object store. Resumable: run it again after an
    /// interruption. Only reads the source.
    Transfer {
        /// Target database: `postgres://…`, or a SQLite file.
        #[arg(long, env = "STOWAGE_TO_DATABASE_URL")]
        to_database: String,
        /// Target object store: `fs` (under --to-data-dir) or `s3` (set as
        /// for the server, with `STOWAGE_TO_` in place of `STOWAGE_`:
        /// STOWAGE_TO_S3_BUCKET, STOWAGE_TO_S3_ENDPOINT, …).
        #[arg(long, value_parser = ["fs", "s3"])]
        to_storage: String,
        /// Target data folder (a disk target's objects and secrets).
        #[arg(long)]
        to_data_dir: Option<std::path::PathBuf>,
        /// Compare source and target instead of copying; print every difference.
        #[arg(long)]
        verify: bool,
        /// Rows per batch.
        #[arg(long, default_value_t = 500)]
        batch: u32,
        /// Objects larger than this go to S3 in parts of this size (bytes, at least 5 MiB).
        #[arg(long, env = "STOWAGE_TRANSFER_PART_SIZE", default_value_t = 64 << 20)]
        part_size: u64,
        /// No progress bars.
        #[arg(long)]
        no_progress: bool,
    },
    /// DEV ONLY: print an HS256 user token signed with the configured secret.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        sub: String,
        /// `admin` makes the user an admin of the project.
        #[arg(long)]
        role: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Add an endpoint; prints its id and signing secret (shown only this once).
    Add {
        /// Project id.
        #[arg(long)]
        project: String,
        /// Environment.
        #[arg(long, value_parser = ["dev", "staging", "prod"])]
        env: String,
        /// Where events are POSTed (http or https).
        #[arg(long)]
        url: String,
        /// Only these event types (comma-separated); every type when absent.
        #[arg(long)]
        events: Option<String>,
    },
    /// List endpoints (never their secrets).
    List,
    /// Remove an endpoint and its pending deliveries.
    Remove {
        /// Endpoint id, as shown by `webhooks list`.
        id: String,
    },
    /// Recent delivery attempts to an endpoint, newest first.
    Deliveries {
        /// Endpoint id.
        id: String,
        /// How many attempts.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Deliver an event again to every endpoint that had it (delivered or failed).
    Redeliver {
        /// Event id (the `webhook-id` header).
        event_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Create the S3 bucket if missing and apply the CORS rule for browser uploads.
    Init,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Publishable,
    Secret,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; the key is printed once, alone on the last line.
    Create {
        /// Project id (a-z, 0-9, '_' and '-').
        #[arg(long)]
        project: String,
        /// Environment.
        #[arg(long, value_parser = ["dev", "staging", "prod"])]
        env: String,
        /// Key kind.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Optional lifetime in days.
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id.
    Revoke {
        /// Key id, as shown by `keys list`.
        id: String,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,actix_server=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

/// Entry point.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Migrate => migrate(config).await,
            Command::Keys { command } => keys(config, command).await,
            Command::Webhooks { command } => webhooks(config, command).await,
            Command::Storage {
                command: StorageCommand::Init,
            } => storage_init(config).await,
            Command::Backup { to } => blocking(move || crate::backup::backup(&config, &to)).await,
            Command::Restore { from } => {
                blocking(move || crate::backup::restore(&config, &from)).await
            }
            Command::Transfer {
                to_database,
                to_storage,
                to_data_dir,
                verify,
                batch,
                part_size,
                no_progress,
            } => {
                let target = crate::transfer::Target {
                    database: crate::config::database_from(&to_database),
                    storage: crate::config::storage_from("STOWAGE_TO_", Some(to_storage))?,
                    data_dir: to_data_dir,
                };
                let options = crate::transfer::Options {
                    batch: batch.clamp(1, 10_000),
                    verify,
                    progress: !no_progress,
                    part_size: part_size.max(5 << 20),
                    ..crate::transfer::Options::default()
                };
                let summary = crate::transfer::run(&config, &target, &options).await?;
                println!("{summary}");
                Ok(())
            }
            Command::Token { sub, role, ttl } => {
                let token = crate::jwt::mint(&config.jwt, &sub, role.as_deref(), ttl)?;
                println!("{token}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs file work off the async threads and prints its summary.
async fn blocking(
    work: impl FnOnce() -> Result<String, String> + Send + 'static,
) -> Result<(), String> {
    let summary = tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())??;
    println!("{summary}");
    Ok(())
}

async fn storage_init(config: Config) -> Result<(), String> {
    let Storage::S3 { config: s3, .. } = &config.storage else {
        println!(
            "the disk store needs no set-up (objects live under {})",
            config.data_dir.display()
        );
        return Ok(());
    };
    let (_, notes) = crate::compose::open_s3(s3, true, &config.cors_origins).await?;
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

async fn migrate(config: Config) -> Result<(), String> {
    match &config.database {
        Database::Sqlite(path) => {
            let path = path.clone();
            let applied =
                tokio::task::spawn_blocking(move || stowage_adapters_sqlite::migrate(&path))
                    .await
                    .map_err(|e| format!("{e:#}"))?
                    .map_err(|e| format!("{e:#}"))?;
            println!("applied {} migration(s)", applied.len());
            Ok(())
        }
        Database::Postgres(url) => {
            let applied = stowage_adapters_postgres::migrate(url)
                .await
                .map_err(|e| format!("{e:#}"))?;
            println!("applied {} migration(s)", applied.len());
            Ok(())
        }
    }
}

async fn create_key(
    keys: &dyn ApiKeyRepository,
    tenant: Tenant,
    kind: ApiKeyKind,
    expires_at: Option<Timestamp>,
) -> Result<(String, ApiKeyRecord), String> {
    let (text, hash) = new_api_key(kind, rand::random());
    let record = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key_hash: hash,
        tenant,
        kind,
        created_at: SystemClock.now(),
        expires_at,
        revoked_at: None,
    };
    keys.insert_key(&record)
        .await
        .map_err(|e| format!("{e:#}"))?;
    Ok((text, record))
}

async fn keys(config: Config, command: KeysCommand) -> Result<(), String> {
    let repos = repositories(&config).await?;
    match command {
        KeysCommand::Create {
            project,
            env,
            kind,
            expires_in_days,
        } => {
            let tenant = Tenant {
                project: ProjectId::new(&project).map_err(|e| e.message().to_owned())?,
                env: env
                    .parse::<Environment>()
                    .map_err(|e| e.message().to_owned())?,
            };
            let kind = match kind {
                Kind::Publishable => ApiKeyKind::Publishable,
                Kind::Secret => ApiKeyKind::Secret,
            };
            let expires =
                expires_in_days.map(|d| SystemClock.now().plus_secs(d.saturating_mul(86_400)));
            let (text, record) = create_key(repos.keys.as_ref(), tenant, kind, expires).await?;
            println!(
                "created {} key {} for {}/{} (shown only this once):",
                kind.as_str(),
                record.id,
                record.tenant.project,
                record.tenant.env
            );
            println!("{text}");
        }
        KeysCommand::List => {
            println!(
                "{:<36}  {:<11}  {:<24}  {:<8}  {:<24}  status",
                "id", "kind", "project", "env", "created"
            );
            for k in repos.keys.list_keys().await.map_err(|e| format!("{e:#}"))? {
                let now = SystemClock.now();
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<36}  {:<11}  {:<24}  {:<8}  {:<24}  {status}",
                    k.id,
                    k.kind.as_str(),
                    k.tenant.project,
                    k.tenant.env,
                    k.created_at.to_rfc3339()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            if repos
                .keys
                .revoke_key(&id, SystemClock.now())
                .await
                .map_err(|e| format!("{e:#}"))?
            {
                println!("revoked {id}");
            } else {
                return Err(format!("no active key with id {id}"));
            }
        }
    }
    Ok(())
}

async fn webhooks(config: Config, command: WebhooksCommand) -> Result<(), String> {
    use stowage_domain::events::EventType;
    use stowage_domain::webhooks::{check_url, WebhookEndpoint, WebhookSecret};
    let repos = repositories(&config).await?;
    let hooks = repos.hooks;
    let fail = |e: stowage_domain::Error| format!("{e:#}");
    match command {
        WebhooksCommand::Add {
            project,
            env,
            url,
            events,
        } => {
            check_url(&url).map_err(fail)?;
            let events = EventType::parse_list(events.as_deref().unwrap_or("")).map_err(fail)?;
            let tenant = Tenant {
                project: ProjectId::new(&project).map_err(fail)?,
                env: env.parse::<Environment>().map_err(fail)?,
            };
            let secret =
                WebhookSecret::from_bytes(rand::random::<[u8; 32]>().to_vec()).map_err(fail)?;
            let endpoint = WebhookEndpoint {
                id: uuid::Uuid::now_v7().to_string(),
                tenant,
                url,
                secret,
                events,
                created_at: SystemClock.now(),
            };
            hooks.add_endpoint(&endpoint).await.map_err(fail)?;
            println!(
                "added endpoint {} for {}/{} -> {} (signing secret shown only this once):",
                endpoint.id, endpoint.tenant.project, endpoint.tenant.env, endpoint.url
            );
            println!("{}", endpoint.secret.expose());
        }
        WebhooksCommand::List => {
            println!(
                "{:<36}  {:<24}  {:<8}  {:<40}  url",
                "id", "project", "env", "events"
            );
            for e in hooks.endpoints().await.map_err(fail)? {
                let types: Vec<&str> = e.events.iter().map(|t| t.as_str()).collect();
                println!(
                    "{:<36}  {:<24}  {:<8}  {:<40}  {}",
                    e.id,
                    e.tenant.project,
                    e.tenant.env,
                    if types.is_empty() {
                        "all".to_owned()
                    } else {
                        types.join(",")
                    },
                    e.url
                );
            }
        }
        WebhooksCommand::Remove { id } => {
            if hooks.remove_endpoint(&id).await.map_err(fail)? {
                println!("removed {id}");
            } else {
                return Err(format!("no endpoint with id {id}"));
            }
        }
        WebhooksCommand::Deliveries { id, limit } => {
            println!(
                "{:<36}  {:<9}  {:>7}  {:<24}  {:>6}  error",
                "event", "state", "attempt", "at", "status"
            );
            for a in hooks
                .attempts(&id, limit.clamp(1, 10_000))
                .await
                .map_err(fail)?
            {
                println!(
                    "{:<36}  {:<9}  {:>7}  {:<24}  {:>6}  {}",
                    a.event_id,
                    a.state.as_str(),
                    a.attempt,
                    a.at.to_rfc3339(),
                    a.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    a.error.unwrap_or_default()
                );
            }
        }
        WebhooksCommand::Redeliver { event_id } => {
            let n = hooks
                .redeliver(&event_id, SystemClock.now())
                .await
                .map_err(fail)?;
            if n == 0 {
                return Err(format!("no delivery of event {event_id}"));
            }
            println!("event {event_id} queued again for {n} endpoint(s)");
        }
    }
    Ok(())
}

async fn serve(config: Config) -> Result<(), String> {
    init_logging(config.log_format);
    let repos = repositories(&config).await?;
    let first_keys = if repos
        .keys
        .list_keys()
        .await
        .map_err(|e| format!("{e:#}"))?
        .is_empty()
    {
        let tenant = Tenant {
            project: ProjectId::new("demo").map_err(|e| format!("{e:#}"))?,
            env: Environment::Dev,
        };
        let (pk, _) = create_key(
            repos.keys.as_ref(),
            tenant.clone(),
            ApiKeyKind::Publishable,
            None,
        )
        .await?;
        let (sk, _) = create_key(repos.keys.as_ref(), tenant, ApiKeyKind::Secret, None).await?;
        Some((pk, sk))
    } else {
        None
    };
    let data_dir = config.data_dir.display().to_string();
    let app = Application::build(config, repos).await?;
    println!("Stowage listening on {}", app.base_url);
    println!("Data folder: {data_dir}");
    match first_keys {
        Some((pk, sk)) => {
            println!("Created project demo/dev with two API keys (shown only this once; only their hashes are stored):");
            println!("  publishable: {pk}");
            println!("  secret:      {sk}");
        }
        None => println!("New API key: stowage keys create --project demo --env dev --kind secret"),
    }
    println!("User token (dev helper): cargo run --release -- token --sub alice   (or: stowage token --sub alice)");
    app.run_until_stopped().await.map_err(|e| format!("{e:#}"))
}

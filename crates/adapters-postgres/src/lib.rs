//! Stowage's repository ports on PostgreSQL: diesel + diesel-async
//! (`AsyncPgConnection`, no libpq) behind a bb8 pool with a connection timeout,
//! every call under a timeout that surfaces as `unavailable`; migrations embedded.
//! The production metadata store: any number of stateless replicas share it.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use stowage_diesel_common::events::{
    change_endpoints, fan_out_from, transition_recorded, ClaimedRow, EndpointRow, NewEventRow,
};
use stowage_diesel_common::rows::{FileRow, UploadRow};
use stowage_diesel_common::schema::{files, uploads};
use stowage_diesel_common::types::{MetadataJson, ShareList};
use stowage_diesel_common::{
    add_derivative_in, apply_file_update, delete_counted, on_duplicate, unclaimed, within_quota,
    Backend, DieselRepository, PoolFactory, TxError,
};
use stowage_domain::auth::KeyChange;
use stowage_domain::events::Event;
use stowage_domain::model::{File, Tenant, Timestamp};
use stowage_domain::ports::{Derivative, DerivativeAdded, QueuedDeletion};
use stowage_domain::quota::Quota;
use stowage_domain::upload::UploadState;
use stowage_domain::{Error, ErrorCode, Result};

/// Migrations of `migrations/postgres`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

type Conn = AsyncPgConnection;
type Manager = AsyncDieselConnectionManager<Conn>;

/// Connections to `url`. A checkout costs no round trip: instead of
/// `SELECT 1` per checkout (diesel-async's default, one extra round trip on
/// every request), a connection whose socket has closed or whose
/// transaction is broken is discarded and another one is taken.
fn manager(url: &str) -> Manager {
    let mut manager_config = ManagerConfig::<Conn>::default();
    manager_config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|c| {
        let broken = c.is_broken();
        Box::pin(async move {
            if broken {
                Err(DieselError::BrokenTransactionManager)
            } else {
                Ok(())
            }
        })
    }));
    Manager::new_with_config(url, manager_config)
}

/// A pool of at most `size` connections under `config`'s timeouts.
fn pool_builder(config: &PostgresConfig, size: u32) -> bb8::Builder<Manager> {
    Pool::builder()
        .max_size(size)
        .connection_timeout(config.connect_timeout)
}

/// Tunables of the PostgreSQL adapter.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size: of the shared pool, and together of the workers' own
    /// pools (each gets its share per core: [`Backend::pool_per_thread`]).
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub connect_timeout: Duration,
    /// Longest any one repository call may take before it is `unavailable`.
    pub query_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PostgresConfig")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl PostgresConfig {
    /// Defaults for a database URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
        }
    }
}

/// Runs pending migrations; returns the names applied.
///
/// # Errors
/// `common/service-unavailable` if the server cannot be reached, `common/internal` if a migration fails.
pub async fn migrate(url: &str) -> Result<Vec<String>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = <AsyncConnectionWrapper<Conn> as Connection>::establish(&url)
            .map_err(|e| Error::unavailable(format!("postgres: {e}")))?;
        let applied = conn
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| Error::internal(format!("migration failed: {e}")))?;
        Ok(applied.iter().map(|m| m.to_string()).collect())
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates a database (for test isolation: one database per run).
///
/// # Errors
/// `common/service-unavailable` if the server cannot be reached.
pub async fn create_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = Conn::establish(admin_url)
        .await
        .map_err(|e| Error::unavailable(format!("postgres: {e}")))?;
    diesel::sql_query(format!("CREATE DATABASE {}", quote_ident(name)))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Drops a database created by [`create_database`], closing its connections.
///
/// # Errors
/// `common/service-unavailable` if the server cannot be reached.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<()> {
    let mut conn = Conn::establish(admin_url)
        .await
        .map_err(|e| Error::unavailable(format!("postgres: {e}")))?;
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The channel the `api_keys` triggers notify (payload: the key's hash, or
/// `*` for every key).
const KEY_CHANNEL: &str = "stowage_api_keys";

/// Announces every committed change to the API keys, from any process or
/// replica, through `on_change` (for [`stowage_domain::auth::CachedApiKeys`]):
/// `Listening` once `LISTEN` is in place, `Changed(hash)` per change, `Lost`
/// when the connection drops. Reconnects with backoff; runs until dropped.
pub async fn watch_api_keys(url: String, on_change: impl Fn(KeyChange) + Send + Sync) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let ended = listen_for_key_changes(&url, &on_change, &mut backoff).await;
        on_change(KeyChange::Lost);
        tracing::warn!(
            "API-key change feed lost ({ended}); keys are looked up on every request until it is back"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One `LISTEN` session, until its connection ends; says why it ended.
async fn listen_for_key_changes(
    url: &str,
    on_change: &(impl Fn(KeyChange) + Send + Sync),
    backoff: &mut Duration,
) -> String {
    use futures_util::StreamExt;
    let mut conn = match Conn::establish(url).await {
        Ok(conn) => conn,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = diesel::sql_query(format!("LISTEN {KEY_CHANNEL}"))
        .execute(&mut conn)
        .await
    {
        return e.to_string();
    }
    *backoff = Duration::from_millis(100);
    on_change(KeyChange::Listening);
    let mut changes = std::pin::pin!(conn.notifications_stream());
    while let Some(n) = changes.next().await {
        match n {
            Ok(n) if n.payload == "*" => on_change(KeyChange::Listening),
            Ok(n) => on_change(KeyChange::Changed(n.payload)),
            Err(e) => return e.to_string(),
        }
    }
    "connection closed".to_owned()
}

/// The PostgreSQL repositories (files, uploads, deletion queue, API keys):
/// the shared diesel repository on [`Postgres`].
pub type PostgresRepository = DieselRepository<Postgres>;

/// The PostgreSQL backend of [`DieselRepository`].
pub struct Postgres;

/// A connection or server error (for the administrative calls here).
fn db_error(e: DieselError) -> Error {
    if Postgres::unavailable(&e) {
        Error::unavailable(format!("postgres: {e}"))
    } else {
        Error::internal(format!("postgres: {e}"))
    }
}

#[async_trait]
impl Backend for Postgres {
    const NAME: &'static str = "postgres";
    type Conn = Conn;
    type Manager = Manager;
    type Config = PostgresConfig;

    /// Only events of transactions older than every one still running: a
    /// transaction that commits later has a larger id, so its events come
    /// after every cursor handed out before (docs/decisions.md 50).
    const FEED_VISIBLE: &'static str =
        "events.tx < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint)";

    /// Locks the rows it picks and skips rows another replica has locked
    /// (`FOR UPDATE SKIP LOCKED`); the lease it sets keeps them its own
    /// after the statement commits.
    async fn claim_deliveries(
        c: &mut Conn,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> std::result::Result<Vec<ClaimedRow>, TxError> {
        use diesel::sql_types::BigInt;
        Ok(diesel::sql_query(
            "UPDATE webhook_deliveries d SET lease_until = $2, attempts = d.attempts + 1              FROM (SELECT c.endpoint_id, c.event_seq FROM webhook_deliveries c              WHERE c.state = 'pending' AND c.next_attempt_at <= $1 AND c.lease_until <= $1              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.state = 'pending'              AND p.endpoint_id = c.endpoint_id AND p.subject = c.subject              AND p.event_seq < c.event_seq)              ORDER BY c.event_seq LIMIT $3 FOR UPDATE SKIP LOCKED) pick              WHERE d.endpoint_id = pick.endpoint_id AND d.event_seq = pick.event_seq              RETURNING d.endpoint_id, d.event_seq, d.attempts, d.retry_from",
        )
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(lease_until)
        .bind::<BigInt, _>(i64::from(limit))
        .load(c)
        .await?)
    }

    /// In a transaction that first locks the endpoints exclusively: it waits
    /// for every change in flight that read them, and a change that starts
    /// after it reads the new set (each statement takes its snapshot after
    /// its locks).
    async fn change_endpoints(
        c: &mut Conn,
        add: Option<&EndpointRow>,
        remove: Option<&str>,
    ) -> std::result::Result<usize, TxError> {
        c.transaction::<usize, TxError, _>(async |c| {
            diesel::sql_query("LOCK TABLE webhook_endpoints IN ACCESS EXCLUSIVE MODE")
                .execute(c)
                .await?;
            change_endpoints(c, add, remove).await
        })
        .await
    }

    /// The file's row is locked (`FOR NO KEY UPDATE`) first: a deletion of
    /// the file waits for this transaction, then forgets what it recorded;
    /// recordings for one file take turns, so its maximum holds.
    async fn add_derivative(
        c: &mut Conn,
        id: &str,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> std::result::Result<DerivativeAdded, TxError> {
        c.transaction::<DerivativeAdded, TxError, _>(async |c| {
            let held: Option<String> = files::table
                .filter(files::id.eq(id))
                .select(files::id)
                .for_no_key_update()
                .first(c)
                .await
                .optional()?;
            if held.is_none() {
                return Ok(DerivativeAdded::FileGone);
            }
            add_derivative_in(c, id, derivative, max, now).await
        })
        .await
    }

    async fn transition_upload(
        c: &mut Conn,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: &Event,
    ) -> std::result::Result<bool, TxError> {
        c.transaction::<bool, TxError, _>(async |c| {
            transition_recorded(c, tenant, key, from, to, event).await
        })
        .await
    }

    async fn pool(config: &PostgresConfig) -> Result<Pool<Conn>> {
        pool_builder(config, config.max_connections)
            .build(manager(&config.url))
            .await
            .map_err(|e| Error::unavailable(format!("postgres pool: {e}")))
    }

    /// Each worker keeps `max_connections ÷ cores` (rounded up): actix runs
    /// one worker per core, so the workers' pools together hold about
    /// `max_connections`, as one shared pool did.
    fn pool_per_thread(config: &PostgresConfig) -> Option<PoolFactory<Manager>> {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let size = config
            .max_connections
            .div_ceil(u32::try_from(threads).unwrap_or(u32::MAX))
            .max(1);
        let config = config.clone();
        Some(Arc::new(move || {
            pool_builder(&config, size).build_unchecked(manager(&config.url))
        }))
    }

    fn query_timeout(config: &PostgresConfig) -> Duration {
        config.query_timeout
    }

    fn unavailable(e: &DieselError) -> bool {
        match e {
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => true,
            DieselError::DatabaseError(_, info) => {
                info.message().contains("timeout") || info.message().contains("shutting down")
            }
            _ => false,
        }
    }

    /// In one statement (atomic on its own, one round trip instead of five
    /// for BEGIN, claim, insert, count, COMMIT); nothing claimed means
    /// nothing written, and then the reason is looked up. With a quota, in
    /// a transaction that first takes an advisory lock on what the quota
    /// bounds (the project, or the owner), so that racing registrations
    /// read the usage one after the other.
    async fn register_file(
        c: &mut Conn,
        file: &File,
        row: &FileRow,
        cleanup: Option<&QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> std::result::Result<(), TxError> {
        if !quota.is_set() {
            return register(c, file, row, cleanup, event).await;
        }
        let scope = if quota.project.is_set() {
            format!("quota:{}/{}", row.project, row.env)
        } else {
            format!(
                "quota:{}/{}/{}/{}",
                row.project, row.env, row.owner_type, row.owner_id
            )
        };
        c.transaction::<(), TxError, _>(async |c| {
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind::<diesel::sql_types::Text, _>(&scope)
                .execute(c)
                .await?;
            within_quota(c, file, quota).await?;
            register(c, file, row, cleanup, event).await
        })
        .await
    }

    async fn update_file(
        c: &mut Conn,
        _file: &File,
        row: &FileRow,
        expected: i64,
        event: &Event,
    ) -> std::result::Result<bool, TxError> {
        c.transaction::<bool, TxError, _>(async |c| {
            let old: Option<String> = files::table
                .filter(files::id.eq(&row.id))
                .filter(files::project.eq(&row.project))
                .filter(files::env.eq(&row.env))
                .select(files::visibility)
                .for_update()
                .first(c)
                .await
                .optional()?;
            apply_file_update(c, row, old, expected, event).await
        })
        .await
    }

    /// One statement for all rows.
    async fn insert_uploads(
        c: &mut Conn,
        rows: &[UploadRow],
    ) -> std::result::Result<Vec<String>, TxError> {
        Ok(diesel::insert_into(uploads::table)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(uploads::s3_key)
            .load(c)
            .await?)
    }

    /// Nothing to do: the share list is indexed in place (GIN over `text[]`).
    async fn index_shares(_: &mut Conn, _: &FileRow) -> std::result::Result<(), TxError> {
        Ok(())
    }

    async fn delete_file(
        c: &mut Conn,
        tenant: &Tenant,
        id: &str,
        expected: i64,
        now: Timestamp,
        event: &Event,
    ) -> std::result::Result<Option<FileRow>, TxError> {
        c.transaction::<Option<FileRow>, TxError, _>(async |c| {
            delete_counted(c, tenant, id, expected, now, event).await
        })
        .await
    }
}

/// Runs [`RegisterStatement`]; nothing claimed means nothing written, and
/// then the reason is looked up.
async fn register(
    c: &mut Conn,
    file: &File,
    row: &FileRow,
    cleanup: Option<&QueuedDeletion>,
    event: &Event,
) -> std::result::Result<(), TxError> {
    // Without a deletion to queue the statement stays the same (one
    // prepared statement): its key is empty, which `length(…) > 0` skips.
    let (queue_key, queue_due) = cleanup.map_or(("", 0), |q| (q.key.as_str(), q.due.millis()));
    let event = NewEventRow::from(event);
    let written = RegisterStatement(row, queue_key, queue_due, &event)
        .execute(c)
        .await
        .map_err(on_duplicate(ErrorCode::S3KeyAlreadyExists))?;
    if written == 1 {
        Ok(())
    } else {
        Err(TxError::Domain(unclaimed(c, file).await?))
    }
}

/// Registration in one statement (atomic on its own, one round trip instead
/// of five for BEGIN, claim, insert, count, COMMIT): claims the upload
/// (compare-and-set, so of two racing registrations one wins), inserts the
/// file, counts it, and records its event and the event's deliveries.
/// Nothing claimed means nothing written. Its SQL text is fixed, so diesel
/// prepares it once per connection (`sql_query` would not).
struct RegisterStatement<'a>(&'a FileRow, &'a str, i64, &'a NewEventRow);

impl QueryId for RegisterStatement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for RegisterStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        use diesel::sql_types::{BigInt, Nullable, Text};
        let r = self.0;
        out.push_sql("WITH claimed AS (UPDATE uploads SET state = ");
        out.push_bind_param::<Text, _>(UploadState::Registered.as_str())?;
        out.push_sql(" WHERE s3_key = ");
        out.push_bind_param::<Text, _>(&r.s3_key)?;
        out.push_sql(" AND project = ");
        out.push_bind_param::<Text, _>(&r.project)?;
        out.push_sql(" AND env = ");
        out.push_bind_param::<Text, _>(&r.env)?;
        out.push_sql(" AND state IN (");
        out.push_bind_param::<Text, _>(UploadState::Pending.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(UploadState::Completed.as_str())?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(UploadState::Registering.as_str())?;
        out.push_sql(
            ") RETURNING 1), inserted AS (INSERT INTO files (id, project, env, s3_key, \
             original_name, name_folded, mime_type, size, width, height, visibility, bucket, \
             owner_type, owner_id, shared_with, metadata, created_at, updated_at, \
             checksum_sha256) SELECT ",
        );
        for (i, text) in [
            &r.id,
            &r.project,
            &r.env,
            &r.s3_key,
            &r.original_name,
            &r.name_folded,
            &r.mime_type,
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, _>(text)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.size)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&r.width)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<BigInt>, _>(&r.height)?;
        for text in [&r.visibility, &r.bucket, &r.owner_type, &r.owner_id] {
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(text)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<ShareList, _>(&r.shared_with)?;
        out.push_sql(", ");
        out.push_bind_param::<MetadataJson, _>(&r.metadata)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.updated_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Text>, _>(&r.checksum_sha256)?;
        out.push_sql(
            " FROM claimed RETURNING project, env, visibility, owner_type, owner_id, size), \
             queued AS (INSERT INTO object_deletions (s3_key, next_attempt_at, created_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(self.1)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.2)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.2)?;
        out.push_sql(" FROM claimed WHERE length(");
        out.push_bind_param::<Text, _>(self.1)?;
        out.push_sql(") > 0 ON CONFLICT (s3_key) DO NOTHING), ");
        // The event, only when the file was inserted, and its deliveries.
        let e = self.3;
        out.push_sql(
            "ev AS (INSERT INTO events (id, project, env, kind, subject, body, created_at) SELECT ",
        );
        for (i, text) in [&e.id, &e.project, &e.env, &e.kind, &e.subject, &e.body]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Text, _>(text)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&e.created_at)?;
        out.push_sql(
            " FROM inserted RETURNING seq, id, project, env, kind, subject, created_at), \
             fanned AS (",
        );
        out.push_sql(&fan_out_from("ev"));
        out.push_sql(
            ") \
             INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n, bytes) \
             SELECT project, env, visibility, owner_type, owner_id, 1, size FROM inserted \
             ON CONFLICT (project, env, visibility, owner_type, owner_id) \
             DO UPDATE SET n = file_counts.n + 1, bytes = file_counts.bytes + excluded.bytes",
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_domain::ports::FileRepository;
    use stowage_domain::testing::contract;

    /// A fresh database on the configured server, or `None` (with a loud
    /// message) when there is none and it is not required.
    async fn database() -> Option<(String, String, String)> {
        let admin = std::env::var("STOWAGE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("stowage_test_{}", uuid::Uuid::new_v4().simple());
        match create_database(&admin, &name).await {
            Ok(()) => {
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or_else(|| admin.clone());
                Some((admin, name.clone(), format!("{base}/{name}")))
            }
            Err(e) if std::env::var("STOWAGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") => {
                panic!("PostgreSQL is required (STOWAGE_REQUIRE_POSTGRES=1) but unavailable: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: PostgreSQL contract tests: no server at {admin} ({e}); set STOWAGE_TEST_POSTGRES_URL");
                None
            }
        }
    }

    /// A fresh migrated database per kit check, dropped afterwards.
    struct Fixture {
        admin: String,
        name: String,
        repo: PostgresRepository,
    }

    impl contract::RepositoryFixture for Fixture {
        fn files(&self) -> &dyn FileRepository {
            &self.repo
        }
        fn keys(&self) -> &dyn stowage_domain::ports::ApiKeyRepository {
            &self.repo
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            // Drop runs inside the test's runtime: a thread with its own.
            let (admin, name) = (self.admin.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(drop_database(&admin, &name)).ok()
            })
            .join();
        }
    }

    /// `None` (the checks skip, loudly) when no server is reachable and none is required.
    async fn fixture() -> Option<Fixture> {
        let (admin, name, url) = database().await?;
        migrate(&url).await.expect("migrate");
        let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
            .await
            .expect("connect");
        Some(Fixture { admin, name, repo })
    }

    stowage_domain::repository_kit!(optional: fixture().await);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_registration_that_fails_after_its_event_leaves_no_event() {
        let Some(f) = fixture().await else { return };
        // The count is the registration statement's last part, after the
        // event's insert: make it fail.
        diesel::sql_query(
            "CREATE FUNCTION refuse_counts() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'planted failure'; END $$",
        )
        .execute(&mut f.repo_conn().await)
        .await
        .expect("function");
        diesel::sql_query(
            "CREATE TRIGGER refuse_counts BEFORE INSERT ON file_counts \
             FOR EACH ROW EXECUTE FUNCTION refuse_counts()",
        )
        .execute(&mut f.repo_conn().await)
        .await
        .expect("trigger");
        contract::a_failed_registration_records_no_event(&f.repo).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhook_deliveries_follow_the_port() {
        let Some(f) = fixture().await else { return };
        contract::webhook_repository(&f.repo, &f.repo).await;
    }

    impl Fixture {
        /// A connection of its own to the fixture's database.
        async fn repo_conn(&self) -> Conn {
            let base = self
                .admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or_else(|| self.admin.clone());
            Conn::establish(&format!("{base}/{}", self.name))
                .await
                .expect("connect")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bytes_migration_backfills_existing_files() {
        use diesel::connection::SimpleConnection;
        let Some((admin, name, url)) = database().await else {
            return;
        };
        let old = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn =
                <AsyncConnectionWrapper<Conn> as Connection>::establish(&old).expect("connect");
            // Every migration before `count_bytes`, then files as they were.
            for _ in 0..8 {
                conn.run_next_migration(MIGRATIONS).expect("migrate one");
            }
            conn.batch_execute(
                "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, \
                 size, visibility, bucket, owner_type, owner_id, shared_with, metadata, created_at, updated_at) VALUES \
                 ('0190a000-0000-7000-8000-000000000001', 'p1', 'dev', 'p1/dev/a', 'a', 'a', 'text/plain', 10, 'private', 'files', 'user', 'alice', '{}', '{}', 1, 1), \
                 ('0190a000-0000-7000-8000-000000000002', 'p1', 'dev', 'p1/dev/b', 'b', 'b', 'text/plain', 20, 'public', 'files', 'user', 'alice', '{}', '{}', 1, 1), \
                 ('0190a000-0000-7000-8000-000000000003', 'p1', 'dev', 'p1/dev/c', 'c', 'c', 'text/plain', 5, 'private', 'files', 'service', 'k1', '{}', '{}', 1, 1); \
                 INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n) VALUES \
                 ('p1', 'dev', 'private', 'user', 'alice', 1), ('p1', 'dev', 'public', 'user', 'alice', 1), \
                 ('p1', 'dev', 'private', 'service', 'k1', 1);",
            )
            .expect("old rows");
        })
        .await
        .expect("joined");
        migrate(&url).await.expect("the remaining migrations");
        let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
            .await
            .expect("connect");
        contract::usage_backfilled(&repo).await;
        drop(repo);
        drop_database(&admin, &name).await.expect("drop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrates_idempotently_and_passes_the_service_kit() {
        let Some((admin, name, url)) = database().await else {
            return;
        };
        migrate(&url).await.expect("migrate");
        assert!(
            migrate(&url).await.expect("migrate twice").is_empty(),
            "migrations are idempotent"
        );
        let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
            .await
            .expect("connect");
        let store =
            std::sync::Arc::new(stowage_domain::testing::memory::MemoryObjectStore::default());
        contract::file_service(std::sync::Arc::new(repo), store.clone(), store.as_ref()).await;
        drop_database(&admin, &name).await.expect("drop");
    }

    /// A worker (a current-thread runtime on a thread of its own, as actix
    /// runs each) drives connections of its own: its calls never wait for
    /// another runtime to drive theirs — here one that is never polled again.
    #[test]
    fn each_worker_drives_connections_of_its_own() {
        let current_thread = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        };
        let opening = current_thread();
        let Some((admin, name, repo)) = opening.block_on(async {
            let (admin, name, url) = database().await?;
            migrate(&url).await.expect("migrate");
            let mut config = PostgresConfig::new(&url);
            config.query_timeout = Duration::from_secs(2);
            let repo = PostgresRepository::connect(&config).await.expect("connect");
            // Opens a connection driven by this runtime, idle once this returns.
            repo.health_check().await.expect("healthy");
            Some((admin, name, repo))
        }) else {
            return;
        };
        // `opening` is never driven again until the end: a call that took
        // its connection would wait for the query timeout.
        let worker = {
            let repo = repo.clone();
            std::thread::spawn(move || {
                current_thread().block_on(async {
                    for _ in 0..3 {
                        repo.health_check().await?;
                    }
                    Ok::<_, stowage_domain::Error>(())
                })
            })
        };
        let answered = worker.join().expect("worker thread");
        drop(repo);
        opening
            .block_on(drop_database(&admin, &name))
            .expect("drop");
        answered.expect("the worker's own connections answer");
    }

    /// Checkouts skip the `SELECT 1`, so a connection the server dropped must
    /// be noticed from its closed socket and replaced, not handed out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_the_server_dropped_are_replaced() {
        let Some((admin, name, url)) = database().await else {
            return;
        };
        migrate(&url).await.expect("migrate");
        let mut config = PostgresConfig::new(&url);
        config.max_connections = 4;
        let repo = PostgresRepository::connect(&config).await.expect("connect");
        // Open every pooled connection.
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let repo = repo.clone();
            checks.spawn(async move { repo.health_check().await });
        }
        while let Some(r) = checks.join_next().await {
            r.expect("joined").expect("healthy");
        }
        let mut killer = Conn::establish(&admin).await.expect("admin connection");
        #[derive(diesel::QueryableByName)]
        struct Killed {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let killed: Killed = diesel::sql_query(format!(
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .get_result(&mut killer)
        .await
        .expect("terminate");
        assert!(killed.n >= 1, "the pool had open connections");
        tokio::time::sleep(Duration::from_millis(300)).await;
        for _ in 0..8 {
            repo.health_check()
                .await
                .expect("a fresh connection replaces the dropped one");
        }
        drop(repo);
        drop_database(&admin, &name).await.expect("drop");
    }

    /// Every committed change to a key is announced with its hash; a dropped
    /// feed says `Lost`, then `Listening` again once it has reconnected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn key_changes_are_announced() {
        use stowage_domain::auth::{new_api_key, ApiKeyKind, ApiKeyRecord};
        use stowage_domain::ports::ApiKeyRepository;
        let Some((admin, name, url)) = database().await else {
            return;
        };
        migrate(&url).await.expect("migrate");
        let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
            .await
            .expect("connect");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch_api_keys(url.clone(), move |c| {
            let _ = tx.send(c);
        }));
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("announced in time")
                .expect("feed open")
        };
        assert_eq!(next().await, KeyChange::Listening);

        let (_, hash) = new_api_key(ApiKeyKind::Secret, [3; 32]);
        let record = ApiKeyRecord {
            id: "key-3".into(),
            key_hash: hash.clone(),
            tenant: stowage_domain::testing::fresh_tenant(),
            kind: ApiKeyKind::Secret,
            created_at: Timestamp::from_millis(1_700_000_000_000),
            expires_at: None,
            revoked_at: None,
        };
        repo.insert_key(&record).await.expect("insert");
        assert_eq!(next().await, KeyChange::Changed(hash.clone()));
        repo.revoke_key("key-3", Timestamp::from_millis(1_700_000_001_000))
            .await
            .expect("revoke");
        assert_eq!(next().await, KeyChange::Changed(hash.clone()));

        let mut admin_conn = Conn::establish(&url).await.expect("connection");
        diesel::sql_query("TRUNCATE api_keys")
            .execute(&mut admin_conn)
            .await
            .expect("truncate");
        assert_eq!(next().await, KeyChange::Listening, "everything changed");

        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND query LIKE 'LISTEN%'"
        ))
        .execute(&mut admin_conn)
        .await
        .expect("terminate the listener");
        assert_eq!(next().await, KeyChange::Lost);
        assert_eq!(next().await, KeyChange::Listening, "reconnected");

        watcher.abort();
        drop((repo, admin_conn));
        drop_database(&admin, &name).await.expect("drop");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_quickly() {
        let started = std::time::Instant::now();
        let mut config = PostgresConfig::new("postgres://nobody@127.0.0.1:1/none");
        config.connect_timeout = Duration::from_millis(500);
        let err = match PostgresRepository::connect(&config).await {
            Ok(repo) => repo.health_check().await.err(),
            Err(e) => Some(e),
        };
        assert_eq!(err.map(|e| e.code()), Some(ErrorCode::ServiceUnavailable));
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

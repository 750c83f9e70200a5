//! Stowage's repository ports on PostgreSQL: diesel + diesel-async
//! (`AsyncPgConnection`, no libpq) behind a bb8 pool with a connection timeout,
//! every call under a timeout that surfaces as `unavailable`; migrations embedded.
//! The production metadata store: any number of stateless replicas share it.

mod rows;
mod schema;

use std::time::Duration;

use diesel::dsl::{count_star, not};
use diesel::expression::BoxableExpression;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Bool;
use diesel::{
    BoolExpressionMethods, Connection, ExpressionMethods, OptionalExtension,
    PgArrayExpressionMethods, QueryDsl, SelectableHelper,
};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use stowage_diesel_common::on_duplicate;
use stowage_domain::auth::KeyChange;
use stowage_domain::list::ListQuery;
use stowage_domain::model::{File, FileId, Tenant, Timestamp, Visibility};
use stowage_domain::ports::QueuedDeletion;
use stowage_domain::upload::UploadState;
use stowage_domain::{Error, ErrorCode, Result};

use crate::rows::FileRow;
use crate::schema::files;
use stowage_diesel_common::schema::object_deletions;

/// Migrations of `migrations/postgres`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

type Conn = AsyncPgConnection;

/// Tunables of the PostgreSQL adapter.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size.
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

/// The PostgreSQL repositories (files, uploads, deletion queue, API keys).
#[derive(Clone)]
pub struct PostgresRepository {
    pool: Pool<Conn>,
    query_timeout: Duration,
}

fn db_error(e: DieselError) -> Error {
    match &e {
        // Statements that expect a duplicate say what it means (`on_duplicate`).
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => Error::internal(
            format!("postgres: unexpected duplicate: {}", info.message()),
        ),
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            info,
        ) => Error::unavailable(format!("postgres: {}", info.message())),
        DieselError::DatabaseError(_, info)
            if info.message().contains("timeout") || info.message().contains("shutting down") =>
        {
            Error::unavailable(format!("postgres: {}", info.message()))
        }
        _ => Error::internal(format!("postgres: {e}")),
    }
}

impl PostgresRepository {
    /// Opens the pool (after [`migrate`] has run).
    ///
    /// # Errors
    /// `common/service-unavailable` when no connection can be made.
    pub async fn connect(config: &PostgresConfig) -> Result<Self> {
        // A checkout costs no round trip: instead of `SELECT 1` per checkout
        // (diesel-async's default, one extra round trip on every request), a
        // connection whose socket has closed or whose transaction is broken is
        // discarded and another one is taken.
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
        let manager =
            AsyncDieselConnectionManager::<Conn>::new_with_config(&config.url, manager_config);
        let pool = Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| Error::unavailable(format!("postgres pool: {e}")))?;
        Ok(Self {
            pool,
            query_timeout: config.query_timeout,
        })
    }

    async fn conn(&self) -> Result<PooledConnection<'_, Conn>> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::unavailable(format!("postgres pool: {e}")))
    }

    /// Runs `f` on a pooled connection under the query timeout.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'c> AsyncFnOnce(&'c mut Conn) -> Result<T>,
    {
        let work = async {
            let mut conn = self.conn().await?;
            f(&mut conn).await
        };
        tokio::time::timeout(self.query_timeout, work)
            .await
            .map_err(|_| Error::unavailable("postgres: query timed out"))?
    }
}

/// `visibility = 'shared'` spelled as a literal, not a bind parameter: only
/// then can generic plans of prepared statements use the partial index
/// `files_shared` (migration `000005_shared_index_partial`). Unlike
/// `diesel::dsl::sql`, it keeps the query cacheable as a prepared statement.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping, diesel::query_builder::QueryId)]
struct IsShared;

impl diesel::Expression for IsShared {
    type SqlType = Bool;
}

impl diesel::AppearsOnTable<files::table> for IsShared {}

impl diesel::SelectableExpression<files::table> for IsShared {}

impl QueryFragment<Pg> for IsShared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.push_sql("\"files\".\"visibility\" = 'shared'");
        Ok(())
    }
}

fn is_shared() -> IsShared {
    debug_assert_eq!(Visibility::Shared.as_str(), "shared");
    IsShared
}

/// "This file is `shared` and its share list names `uid`" (the `text[]`
/// column, GIN-indexed over shared files).
fn shared_with_user(
    uid: &str,
) -> Box<dyn BoxableExpression<files::table, Pg, SqlType = Bool> + '_> {
    Box::new(is_shared().and(files::shared_with.contains(vec![uid.to_owned()])))
}

stowage_diesel_common::shared_list_query!(diesel::pg::Pg);

/// How many files of other owners, in the listing's tenant and owner filters,
/// are `shared` with `uid` (the part of a list total that counts cannot give).
async fn count_shared_with(
    c: &mut Conn,
    query: &ListQuery,
    owner: &stowage_domain::model::Owner,
    uid: &str,
    owner_type: Option<&str>,
) -> std::result::Result<i64, DieselError> {
    let p = &query.params;
    let shared = files::table
        .filter(files::project.eq(query.tenant.project.as_str()))
        .filter(files::env.eq(query.tenant.env.as_str()))
        .filter(shared_with_user(uid))
        .filter(not(files::owner_type
            .eq(owner.kind.as_str())
            .and(files::owner_id.eq(owner.id.as_str()))))
        .into_boxed();
    let mut shared = shared;
    if let Some(t) = owner_type {
        shared = shared.filter(files::owner_type.eq(t));
    }
    if let Some(o) = &p.owner_id {
        shared = shared.filter(files::owner_id.eq(o.clone()));
    }
    shared.select(count_star()).get_result::<i64>(c).await
}

/// Registration in one statement (atomic on its own, one round trip instead
/// of five for BEGIN, claim, insert, count, COMMIT): claims the upload
/// (compare-and-set, so of two racing registrations one wins), inserts the
/// file and counts it. Nothing claimed means nothing written. Its SQL text is
/// fixed, so diesel prepares it once per connection (`sql_query` would not).
struct RegisterStatement<'a>(&'a FileRow, &'a str, i64);

impl QueryId for RegisterStatement<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for RegisterStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text};
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
             owner_type, owner_id, shared_with, metadata, created_at, updated_at) SELECT ",
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
        out.push_bind_param::<Array<Text>, _>(&r.shared_with)?;
        out.push_sql(", ");
        out.push_bind_param::<Jsonb, _>(&r.metadata)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&r.updated_at)?;
        out.push_sql(
            " FROM claimed RETURNING project, env, visibility, owner_type, owner_id), \
             queued AS (INSERT INTO object_deletions (s3_key, next_attempt_at, created_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(self.1)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.2)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&self.2)?;
        out.push_sql(" FROM claimed WHERE length(");
        out.push_bind_param::<Text, _>(self.1)?;
        out.push_sql(
            ") > 0 ON CONFLICT (s3_key) DO NOTHING) \
             INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n) \
             SELECT project, env, visibility, owner_type, owner_id, 1 FROM inserted \
             ON CONFLICT (project, env, visibility, owner_type, owner_id) \
             DO UPDATE SET n = file_counts.n + 1",
        );
        Ok(())
    }
}

/// The backend-specific half of the repository ports (the rest is shared,
/// see `stowage_diesel_common::shared_repository!`).
impl PostgresRepository {
    /// Registration in one statement (atomic on its own, one round trip instead
    /// of five for BEGIN, claim, insert, count, COMMIT): claims the upload
    /// (compare-and-set, so of two racing registrations one wins), inserts the
    /// file and counts it. Nothing claimed means nothing written; then the
    /// reason is looked up.
    pub(crate) async fn db_register_file(
        &self,
        file: &File,
        cleanup: Option<&QueuedDeletion>,
    ) -> Result<()> {
        let row = FileRow::from_file(file)?;
        // Without a deletion to queue the statement stays the same (one
        // prepared statement): its key is empty, which `length(…) > 0` skips.
        let (queue_key, queue_due) =
            cleanup.map_or((String::new(), 0), |q| (q.key.clone(), q.due.millis()));
        self.run(async move |c| {
            let written = RegisterStatement(&row, &queue_key, queue_due)
                .execute(c)
                .await
                .map_err(|e| {
                    on_duplicate(e, ErrorCode::S3KeyAlreadyExists).unwrap_or_else(db_error)
                })?;
            if written == 1 {
                Ok(())
            } else {
                Err(unclaimed(c, file).await.map_err(db_error)?)
            }
        })
        .await
    }

    pub(crate) async fn db_update_file(&self, file: &File, expected: Timestamp) -> Result<bool> {
        let row = FileRow::from_file(file)?;
        self.run(async move |c| {
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
                apply_file_update(c, &row, old, expected.millis()).await
            })
            .await
            .map_err(Error::from)
        })
        .await
    }

    pub(crate) async fn db_delete_file(
        &self,
        tenant: &Tenant,
        id: FileId,
        now: Timestamp,
    ) -> Result<Option<File>> {
        self.run(async move |c| {
            let deleted = c
                .transaction::<Option<FileRow>, TxError, _>(async |c| {
                    let row = diesel::delete(
                        files::table
                            .filter(files::id.eq(id.to_string()))
                            .filter(files::project.eq(tenant.project.as_str()))
                            .filter(files::env.eq(tenant.env.as_str())),
                    )
                    .returning(FileRow::as_returning())
                    .get_result(c)
                    .await
                    .optional()?;
                    if let Some(row) = &row {
                        bump_count(c, row, &row.visibility, -1).await?;
                        diesel::insert_into(object_deletions::table)
                            .values((
                                object_deletions::s3_key.eq(&row.s3_key),
                                object_deletions::next_attempt_at.eq(now.millis()),
                                object_deletions::created_at.eq(now.millis()),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)
                            .await?;
                    }
                    Ok(row)
                })
                .await
                .map_err(Error::from)?;
            deleted.map(File::try_from).transpose()
        })
        .await
    }
}

stowage_diesel_common::shared_repository!(PostgresRepository);

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

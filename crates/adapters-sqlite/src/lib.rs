//! Stowage's repository ports on SQLite: diesel + diesel-async
//! (`SyncConnectionWrapper<SqliteConnection>`) behind a bb8 pool, WAL mode and a
//! busy timeout, migrations embedded. The embedded default of `stowage`.
#![forbid(unsafe_code)]

mod backup;

pub use backup::{registered_objects, snapshot};

use std::time::Duration;

use async_trait::async_trait;
use diesel::result::Error as DieselError;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
use stowage_diesel_common::events::{
    change_endpoints, record_event, transition_recorded, ClaimedRow, EndpointRow,
};
use stowage_diesel_common::rows::{FileRow, UploadRow};
use stowage_diesel_common::schema::{file_shares, files};
use stowage_diesel_common::statements as q;
use stowage_diesel_common::{
    add_derivative_in, apply_file_update, delete_counted, on_duplicate, unclaimed, within_quota,
    Backend, DbConn, DieselRepository, TxError,
};
use stowage_domain::events::Event;
use stowage_domain::model::{File, Tenant, Timestamp};
use stowage_domain::ports::{Derivative, DerivativeAdded, QueuedDeletion};
use stowage_domain::quota::Quota;
use stowage_domain::upload::UploadState;
use stowage_domain::{Error, ErrorCode, Result};

/// Migrations of `migrations/sqlite`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

type Conn = SyncConnectionWrapper<SqliteConnection>;

/// Per-connection settings: WAL for concurrent readers, a busy timeout so writers
/// queue instead of failing (shorter than the query timeout, so a locked database
/// surfaces as `unavailable` rather than a stuck connection), foreign keys.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 1500; \
                       PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Tunables of the SQLite adapter.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// Path of the database file (or `:memory:` — not useful with a pool).
    pub path: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub connect_timeout: Duration,
    /// Longest any one repository call may take before it is `unavailable`.
    pub query_timeout: Duration,
}

impl SqliteConfig {
    /// Defaults for a database file.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            max_connections: 8,
            connect_timeout: Duration::from_secs(2),
            query_timeout: Duration::from_secs(2),
        }
    }
}

/// Runs pending migrations on the database file; returns the names applied.
///
/// # Errors
/// `common/internal` if the database cannot be opened or a migration fails.
pub fn migrate(path: &str) -> Result<Vec<String>> {
    let mut conn = SqliteConnection::establish(path)
        .map_err(|e| Error::internal(format!("open sqlite {path}: {e}")))?;
    diesel::connection::SimpleConnection::batch_execute(&mut conn, PRAGMAS)
        .map_err(|e| Error::internal(e.to_string()))?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| Error::internal(format!("migration failed: {e}")))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// The SQLite repositories (files, uploads, deletion queue, API keys): the
/// shared diesel repository on [`Sqlite`].
pub type SqliteRepository = DieselRepository<Sqlite>;

/// The SQLite backend of [`DieselRepository`].
pub struct Sqlite;

#[async_trait]
impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
    const SERIALIZE_WRITES: bool = true;
    const CANCEL_SAFE: bool = false;
    type Conn = Conn;
    type Manager = AsyncDieselConnectionManager<Conn>;
    type Config = SqliteConfig;

    /// One writer at a time: the sequence is commit order.
    const FEED_VISIBLE: &'static str = "1 = 1";

    /// SQLite has one writer at a time (and this process lets its writers
    /// take turns): the claim's own statement is atomic.
    async fn claim_deliveries(
        c: &mut Conn,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> std::result::Result<Vec<ClaimedRow>, TxError> {
        use diesel::sql_types::BigInt;
        Ok(diesel::sql_query(
            "UPDATE webhook_deliveries SET lease_until = ?, attempts = attempts + 1              WHERE (endpoint_id, event_seq) IN (SELECT c.endpoint_id, c.event_seq              FROM webhook_deliveries c WHERE c.state = 'pending' AND c.next_attempt_at <= ?              AND c.lease_until <= ? AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p              WHERE p.state = 'pending' AND p.endpoint_id = c.endpoint_id              AND p.subject = c.subject AND p.event_seq < c.event_seq)              ORDER BY c.event_seq LIMIT ?)              RETURNING endpoint_id, event_seq, attempts, retry_from",
        )
        .bind::<BigInt, _>(lease_until)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(now)
        .bind::<BigInt, _>(i64::from(limit))
        .load(c)
        .await?)
    }

    /// A write like any other: changes that commit after it see it.
    async fn change_endpoints(
        c: &mut Conn,
        add: Option<&EndpointRow>,
        remove: Option<&str>,
    ) -> std::result::Result<usize, TxError> {
        change_endpoints(c, add, remove).await
    }

    /// One statement per row, one transaction for all.
    async fn insert_uploads(
        c: &mut Conn,
        rows: &[UploadRow],
    ) -> std::result::Result<Vec<String>, TxError> {
        c.transaction::<Vec<String>, TxError, _>(async |c| {
            let mut written = Vec::with_capacity(rows.len());
            for row in rows {
                if c.execute_statement(q::insert_upload_once(row)).await? == 1 {
                    written.push(row.s3_key.clone());
                }
            }
            Ok(written)
        })
        .await
    }

    /// One writer at a time: the file cannot go between the check and the write.
    async fn add_derivative(
        c: &mut Conn,
        id: &str,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> std::result::Result<DerivativeAdded, TxError> {
        c.transaction::<DerivativeAdded, TxError, _>(async |c| {
            let exists = c.load_rows(q::file_exists(id)).await?;
            if !exists.into_iter().next().unwrap_or(false) {
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

    async fn pool(config: &SqliteConfig) -> Result<Pool<Conn>> {
        let mut manager_config = ManagerConfig::<Conn>::default();
        // A local file cannot drop a connection: skip the `SELECT 1` per checkout
        // (it would cost a trip through the blocking pool on every request).
        manager_config.recycling_method = RecyclingMethod::Fast;
        manager_config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            async move {
                let mut conn = Conn::establish(&url).await?;
                conn.batch_execute(PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            }
            .boxed()
        });
        let manager =
            AsyncDieselConnectionManager::<Conn>::new_with_config(&config.path, manager_config);
        Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| Error::unavailable(format!("sqlite pool: {e}")))
    }

    fn query_timeout(config: &SqliteConfig) -> Duration {
        config.query_timeout
    }

    fn unavailable(e: &DieselError) -> bool {
        matches!(e, DieselError::DatabaseError(_, info)
            if info.message().contains("locked") || info.message().contains("busy"))
    }

    /// One transaction whose first statement is the claim, a write: it takes
    /// the write lock at once (no read-to-write upgrade that could fail).
    async fn register_file(
        c: &mut Conn,
        file: &File,
        row: &FileRow,
        cleanup: Option<&QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> std::result::Result<(), TxError> {
        c.transaction::<(), TxError, _>(async |c| {
            if c.execute_statement(q::claim_upload(&file.tenant, &file.s3_key))
                .await?
                != 1
            {
                return Err(TxError::Domain(unclaimed(c, file).await?));
            }
            // The claim holds the write lock: no other registration can
            // count in between the usage read and the insert.
            within_quota(c, file, quota).await?;
            // Recorded first: anything that fails after it takes it back.
            record_event(c, event).await?;
            if let Some(cleanup) = cleanup {
                c.execute_statement(q::queue_deletion(cleanup)).await?;
            }
            c.execute_statement(q::insert_file(row))
                .await
                .map_err(on_duplicate(ErrorCode::S3KeyAlreadyExists))?;
            c.execute_statement(q::bump_count(row, &row.visibility, 1))
                .await?;
            replace_shares(c, row, &file.shared_with).await?;
            Ok(())
        })
        .await
    }

    async fn update_file(
        c: &mut Conn,
        file: &File,
        row: &FileRow,
        expected: i64,
        event: &Event,
    ) -> std::result::Result<bool, TxError> {
        c.transaction::<bool, TxError, _>(async |c| {
            // Take the write lock before reading (SQLite: no read-to-write upgrade).
            diesel::update(files::table.filter(files::id.eq(&row.id)))
                .set(files::updated_at.eq(files::updated_at))
                .execute(c)
                .await?;
            let old: Option<String> = files::table
                .filter(files::id.eq(&row.id))
                .filter(files::project.eq(&row.project))
                .filter(files::env.eq(&row.env))
                .select(files::visibility)
                .first(c)
                .await
                .optional()?;
            let written = apply_file_update(c, row, old, expected, event).await?;
            if written {
                replace_shares(c, row, &file.shared_with).await?;
            }
            Ok(written)
        })
        .await
    }

    async fn index_shares(c: &mut Conn, row: &FileRow) -> std::result::Result<(), TxError> {
        Ok(replace_shares(c, row, &row.shared_with.0).await?)
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
            let row = delete_counted(c, tenant, id, expected, now, event).await?;
            if row.is_some() {
                diesel::delete(file_shares::table.filter(file_shares::file_id.eq(id)))
                    .execute(c)
                    .await?;
            }
            Ok(row)
        })
        .await
    }
}

/// Rewrites the `file_shares` rows of the file of `row` (its share list's
/// index, with the file's tenant).
async fn replace_shares(
    conn: &mut Conn,
    row: &FileRow,
    users: &[String],
) -> std::result::Result<(), DieselError> {
    diesel::delete(file_shares::table.filter(file_shares::file_id.eq(&row.id)))
        .execute(conn)
        .await?;
    // One statement per id: diesel-async cannot batch-insert on SQLite, and a
    // file has at most 100 shares.
    for user in users {
        diesel::insert_into(file_shares::table)
            .values((
                file_shares::file_id.eq(&row.id),
                file_shares::user_id.eq(user),
                file_shares::project.eq(&row.project),
                file_shares::env.eq(&row.env),
            ))
            .execute(conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_domain::model::Visibility;
    use stowage_domain::ports::FileRepository;
    use stowage_domain::testing::contract;

    async fn repo(dir: &tempfile::TempDir) -> SqliteRepository {
        let path = dir.path().join("stowage.db").display().to_string();
        migrate(&path).expect("migrate");
        assert!(
            migrate(&path).expect("migrate twice").is_empty(),
            "migrations are idempotent"
        );
        SqliteRepository::connect(&SqliteConfig::new(path))
            .await
            .expect("connect")
    }

    /// A fresh migrated database in its own folder, per kit check.
    struct Fixture {
        _dir: tempfile::TempDir,
        repo: SqliteRepository,
    }

    impl contract::RepositoryFixture for Fixture {
        fn files(&self) -> &dyn FileRepository {
            &self.repo
        }
        fn keys(&self) -> &dyn stowage_domain::ports::ApiKeyRepository {
            &self.repo
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo(&dir).await;
        Fixture { _dir: dir, repo }
    }

    stowage_domain::repository_kit!(fixture().await);

    /// Rows of `files` written before the bytes migration, as SQL values.
    const OLD_FILES: &str = "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, \
        mime_type, size, visibility, bucket, owner_type, owner_id, shared_with, metadata, created_at, updated_at) VALUES \
        ('0190a000-0000-7000-8000-000000000001', 'p1', 'dev', 'p1/dev/a', 'a', 'a', 'text/plain', 10, 'private', 'files', 'user', 'alice', '[]', '{}', 1, 1), \
        ('0190a000-0000-7000-8000-000000000002', 'p1', 'dev', 'p1/dev/b', 'b', 'b', 'text/plain', 20, 'public', 'files', 'user', 'alice', '[]', '{}', 1, 1), \
        ('0190a000-0000-7000-8000-000000000003', 'p1', 'dev', 'p1/dev/c', 'c', 'c', 'text/plain', 5, 'private', 'files', 'service', 'k1', '[]', '{}', 1, 1)";

    /// A database left at its first `migrations` migrations with `rows`
    /// written then, migrated the rest of the way and opened (with the
    /// folder that holds it).
    async fn migrated_from(migrations: usize, rows: &str) -> (tempfile::TempDir, SqliteRepository) {
        use diesel::connection::SimpleConnection;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.db").display().to_string();
        {
            let mut conn = SqliteConnection::establish(&path).expect("open");
            for _ in 0..migrations {
                conn.run_next_migration(MIGRATIONS).expect("migrate one");
            }
            conn.batch_execute(rows).expect("old rows");
        }
        migrate(&path).expect("the remaining migrations");
        let repo = SqliteRepository::connect(&SqliteConfig::new(path))
            .await
            .expect("connect");
        (dir, repo)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bytes_migration_backfills_existing_files() {
        // Every migration before `count_bytes`, then files as they were.
        let (_dir, repo) = migrated_from(
            4,
            &format!(
                "{OLD_FILES}; INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n) VALUES \
                 ('p1', 'dev', 'private', 'user', 'alice', 1), ('p1', 'dev', 'public', 'user', 'alice', 1), \
                 ('p1', 'dev', 'private', 'service', 'k1', 1)"
            ),
        )
        .await;
        contract::usage_backfilled(&repo).await;
    }

    /// Shares written before `tenant_shares` get their file's tenant, so a
    /// caller's listing still counts and shows them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tenant_shares_migration_backfills_existing_shares() {
        use stowage_domain::list::{ListParams, ListQuery, Scope};
        use stowage_domain::model::{Environment, ProjectId, Tenant};
        // Every migration before `tenant_shares`, then a shared file as it was.
        let (_dir, repo) = migrated_from(
            6,
            "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, \
             mime_type, size, visibility, bucket, owner_type, owner_id, shared_with, metadata, created_at, updated_at) VALUES \
             ('0190a000-0000-7000-8000-000000000009', 'p1', 'dev', 'p1/dev/s', 's', 's', 'text/plain', 3, 'shared', 'files', 'user', 'alice', '[\"bob\"]', '{}', 1, 1); \
             INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n, bytes) VALUES ('p1', 'dev', 'shared', 'user', 'alice', 1, 3); \
             INSERT INTO file_shares (file_id, user_id) VALUES ('0190a000-0000-7000-8000-000000000009', 'bob');",
        )
        .await;
        let page = repo
            .list_files(&ListQuery {
                tenant: Tenant {
                    project: ProjectId::new("p1").expect("project"),
                    env: Environment::Dev,
                },
                scope: Scope::VisibleTo {
                    owner: stowage_domain::testing::user("bob"),
                    user_id: Some("bob".into()),
                },
                params: ListParams::default(),
            })
            .await
            .expect("list");
        assert_eq!(
            (page.total, page.items.len()),
            (1, 1),
            "the share written before the migration still counts and shows"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_service_kit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo(&dir).await;
        let store =
            std::sync::Arc::new(stowage_domain::testing::memory::MemoryObjectStore::default());
        contract::file_service(std::sync::Arc::new(repo), store.clone(), store.as_ref()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_registrations_under_load_give_one_winner_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo(&dir).await;
        let t = stowage_domain::testing::fresh_tenant();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let owner = stowage_domain::testing::user("a");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let key = format!("{}/dev/h/{i}/x", t.project);
            repo.insert_upload(&stowage_domain::testing::pending_upload(
                &t, &owner, &key, now,
            ))
            .await
            .expect("insert");
            for _ in 0..3 {
                let (repo, f) = (
                    repo.clone(),
                    stowage_domain::testing::file(&t, &owner, &key, "x", Visibility::Private, now),
                );
                tasks.push(tokio::spawn(async move {
                    let event = stowage_domain::testing::registered_event(&f);
                    repo.register_file(&f, None, &stowage_domain::quota::Quota::NONE, &event)
                        .await
                        .map_err(|e| e.code())
                }));
            }
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.expect("join") {
                Ok(()) => ok += 1,
                Err(code) => assert_eq!(code, ErrorCode::S3KeyAlreadyExists),
            }
        }
        assert_eq!(ok, 20);
    }

    #[tokio::test]
    async fn a_registration_that_fails_after_its_event_leaves_no_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo(&dir).await;
        let path = dir.path().join("stowage.db").display().to_string();
        // The count comes after the event in the transaction: make it fail.
        let mut conn = SqliteConnection::establish(&path).expect("open");
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "CREATE TRIGGER refuse_counts BEFORE INSERT ON file_counts \
             BEGIN SELECT RAISE(ABORT, 'planted failure'); END;",
        )
        .expect("trigger");
        stowage_domain::testing::contract::a_failed_registration_records_no_event(&repo).await;
    }

    #[tokio::test]
    async fn webhook_deliveries_follow_the_port() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = repo(&dir).await;
        stowage_domain::testing::contract::webhook_repository(&repo, &repo).await;
    }
}

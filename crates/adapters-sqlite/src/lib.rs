//! Stowage's repository ports on SQLite: diesel + diesel-async
//! (`SyncConnectionWrapper<SqliteConnection>`) behind a bb8 pool, WAL mode and a
//! busy timeout, migrations embedded. The embedded default of `stowage`.

mod backup;
mod rows;
mod schema;

pub use backup::{registered_objects, snapshot};

use std::time::Duration;

use diesel::dsl::{count_star, exists, not};
use diesel::expression::BoxableExpression;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Bool;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{
    BoolExpressionMethods, Connection, ExpressionMethods, OptionalExtension, QueryDsl,
    SelectableHelper,
};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;
use stowage_diesel_common::on_duplicate;
use stowage_domain::list::ListQuery;
use stowage_domain::model::{File, FileId, Tenant, Timestamp, Visibility};
use stowage_domain::ports::QueuedDeletion;
use stowage_domain::upload::UploadState;
use stowage_domain::{Error, ErrorCode, Result};

use crate::rows::FileRow;
use crate::schema::{file_shares, files};
use stowage_diesel_common::schema::{object_deletions, uploads};

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

/// The SQLite repositories (files, uploads, deletion queue, API keys).
#[derive(Clone)]
pub struct SqliteRepository {
    pool: Pool<Conn>,
    query_timeout: Duration,
}

fn db_error(e: DieselError) -> Error {
    match &e {
        // Statements that expect a duplicate say what it means (`on_duplicate`).
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Error::internal(format!("sqlite: unexpected duplicate: {}", info.message()))
        }
        DieselError::DatabaseError(_, info)
            if info.message().contains("locked") || info.message().contains("busy") =>
        {
            Error::unavailable(format!("sqlite: {}", info.message()))
        }
        _ => Error::internal(format!("sqlite: {e}")),
    }
}

impl SqliteRepository {
    /// Opens the pool (after [`migrate`] has run).
    ///
    /// # Errors
    /// `common/service-unavailable` when no connection can be made.
    pub async fn connect(config: &SqliteConfig) -> Result<Self> {
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
        let pool = Pool::builder()
            .max_size(config.max_connections)
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| Error::unavailable(format!("sqlite pool: {e}")))?;
        Ok(Self {
            pool,
            query_timeout: config.query_timeout,
        })
    }

    async fn conn(&self) -> Result<PooledConnection<'_, Conn>> {
        self.pool
            .get()
            .await
            .map_err(|e| Error::unavailable(format!("sqlite pool: {e}")))
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
            .map_err(|_| Error::unavailable("sqlite: query timed out"))?
    }
}

/// "This file's share list names `uid`" (the `file_shares` join table).
fn shared_with_user(
    uid: &str,
) -> Box<dyn BoxableExpression<files::table, Sqlite, SqlType = Bool> + '_> {
    Box::new(exists(
        file_shares::table
            .filter(file_shares::file_id.eq(files::id))
            .filter(file_shares::user_id.eq(uid)),
    ))
}

stowage_diesel_common::shared_list_query!(diesel::sqlite::Sqlite);

async fn replace_shares(conn: &mut Conn, file: &File) -> std::result::Result<(), DieselError> {
    let id = file.id.to_string();
    diesel::delete(file_shares::table.filter(file_shares::file_id.eq(&id)))
        .execute(conn)
        .await?;
    // One statement per id: diesel-async cannot batch-insert on SQLite, and a
    // file has at most 100 shares.
    for user in &file.shared_with {
        diesel::insert_into(file_shares::table)
            .values((file_shares::file_id.eq(&id), file_shares::user_id.eq(user)))
            .execute(conn)
            .await?;
    }
    Ok(())
}

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
    // Start from the user's shares (indexed by user) and probe each file
    // by id, rather than letting SQLite scan the tenant's files.
    let types: Vec<&str> = owner_type.map_or_else(|| vec!["user", "service"], |t| vec![t]);
    let any_owner =
        diesel::dsl::sql::<diesel::sql_types::Bool>(if p.owner_id.is_none() { "1" } else { "0" });
    let file = files::table
        .filter(files::id.eq(file_shares::file_id))
        .filter(files::project.eq(query.tenant.project.as_str()))
        .filter(files::env.eq(query.tenant.env.as_str()))
        .filter(files::visibility.eq(Visibility::Shared.as_str()))
        .filter(not(files::owner_type
            .eq(owner.kind.as_str())
            .and(files::owner_id.eq(owner.id.as_str()))))
        .filter(files::owner_type.eq_any(types))
        .filter(any_owner.or(files::owner_id.eq(p.owner_id.clone().unwrap_or_default())));
    let shared = file_shares::table
        .filter(file_shares::user_id.eq(uid))
        .filter(exists(file));
    shared.select(count_star()).get_result::<i64>(c).await
}

/// The first step of registration, inside the caller's transaction:
/// moves the upload of `file.s3_key` from pending/completed to
/// registered (compare-and-set, so of two racing registrations one
/// wins), or says why it cannot: already registered, or no such upload.
/// On SQLite this first statement is a write, so the transaction takes
/// the write lock at once (no read-to-write upgrade that could fail).
async fn claim_upload(c: &mut Conn, file: &File) -> std::result::Result<(), TxError> {
    let claimed = diesel::update(
        uploads::table
            .filter(uploads::s3_key.eq(&file.s3_key))
            .filter(uploads::project.eq(file.tenant.project.as_str()))
            .filter(uploads::env.eq(file.tenant.env.as_str()))
            .filter(uploads::state.eq_any([
                UploadState::Pending.as_str(),
                UploadState::Completed.as_str(),
                UploadState::Registering.as_str(),
            ])),
    )
    .set(uploads::state.eq(UploadState::Registered.as_str()))
    .execute(c)
    .await?;
    if claimed == 1 {
        return Ok(());
    }
    Err(TxError::Domain(unclaimed(c, file).await?))
}

/// The backend-specific half of the repository ports (the rest is shared,
/// see `stowage_diesel_common::shared_repository!`).
impl SqliteRepository {
    pub(crate) async fn db_register_file(
        &self,
        file: &File,
        cleanup: Option<&QueuedDeletion>,
    ) -> Result<()> {
        let row = FileRow::from_file(file)?;
        self.run(async move |c| {
            c.transaction::<(), TxError, _>(async |c| {
                claim_upload(c, file).await?;
                if let Some(q) = cleanup {
                    queue_deletion(c, q).await?;
                }
                diesel::insert_into(files::table)
                    .values(&row)
                    .execute(c)
                    .await
                    .map_err(|e| match on_duplicate(e, ErrorCode::S3KeyAlreadyExists) {
                        Ok(taken) => TxError::Domain(taken),
                        Err(e) => TxError::Db(e),
                    })?;
                bump_count(c, &row, &row.visibility, 1).await?;
                replace_shares(c, file).await?;
                Ok(())
            })
            .await
            .map_err(Error::from)
        })
        .await
    }

    pub(crate) async fn db_update_file(&self, file: &File, expected: Timestamp) -> Result<bool> {
        let row = FileRow::from_file(file)?;
        self.run(async move |c| {
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
                let written = apply_file_update(c, &row, old, expected.millis()).await?;
                if written {
                    replace_shares(c, file).await?;
                }
                Ok(written)
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
                        diesel::delete(file_shares::table.filter(file_shares::file_id.eq(&row.id)))
                            .execute(c)
                            .await?;
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

stowage_diesel_common::shared_repository!(SqliteRepository);

#[cfg(test)]
mod tests {
    use super::*;
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
                    repo.register_file(&f, None).await.map_err(|e| e.code())
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
}

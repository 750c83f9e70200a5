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
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::Bool;
use diesel::{
    BoolExpressionMethods, Connection, ExpressionMethods, OptionalExtension,
    PgArrayExpressionMethods, QueryDsl, SelectableHelper,
};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use stowage_domain::list::ListQuery;
use stowage_domain::model::{File, FileId, Tenant, Timestamp, Visibility};
use stowage_domain::{Error, ErrorCode, Result};

use crate::rows::FileRow;
use crate::schema::{files, object_deletions};

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

/// The PostgreSQL repositories (files, uploads, deletion queue, API keys).
#[derive(Clone)]
pub struct PostgresRepository {
    pool: Pool<Conn>,
    query_timeout: Duration,
}

fn db_error(e: DieselError) -> Error {
    match &e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            Error::new(ErrorCode::S3KeyAlreadyExists)
        }
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
        let manager = AsyncDieselConnectionManager::<Conn>::new(&config.url);
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

/// "This file's share list names `uid`" (the `text[]` column, GIN-indexed).
fn shared_with_user(
    uid: &str,
) -> Box<dyn BoxableExpression<files::table, Pg, SqlType = Bool> + '_> {
    Box::new(files::shared_with.contains(vec![uid.to_owned()]))
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
        .filter(files::visibility.eq(Visibility::Shared.as_str()))
        .filter(files::shared_with.contains(vec![uid.to_owned()]))
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

/// The backend-specific half of the repository ports (the rest is shared,
/// see `stowage_diesel_common::shared_repository!`).
impl PostgresRepository {
    pub(crate) async fn db_register_file(&self, file: &File) -> Result<()> {
        let row = FileRow::from_file(file)?;
        self.run(async move |c| {
            c.transaction::<(), TxError, _>(async |c| {
                claim_upload(c, file).await?;
                diesel::insert_into(files::table)
                    .values(&row)
                    .execute(c)
                    .await?;
                bump_count(c, &row, &row.visibility, 1).await?;
                Ok(())
            })
            .await
            .map_err(Error::from)
        })
        .await
    }

    pub(crate) async fn db_update_file(&self, file: &File) -> Result<()> {
        let row = FileRow::from_file(file)?;
        self.run(async move |c| {
            c.transaction::<(), TxError, _>(async |c| {
                let old: Option<String> = files::table
                    .filter(files::id.eq(&row.id))
                    .filter(files::project.eq(&row.project))
                    .filter(files::env.eq(&row.env))
                    .select(files::visibility)
                    .for_update()
                    .first(c)
                    .await
                    .optional()?;
                apply_file_update(c, &row, old).await?;
                Ok(())
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn passes_the_contract_kit() {
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
        contract::file_repository(&repo).await;
        contract::api_key_repository(&repo).await;
        drop(repo);
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

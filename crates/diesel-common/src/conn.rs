//! Running one statement on either backend's connection from shared code.
//!
//! Diesel types a query by the backend it is written for, and shared code that
//! is generic over the connection would have to restate, per statement, that
//! the statement can run on it. Instead every shared statement is proven once,
//! where it is built, to run on *both* connections: a builder returns
//! `impl` [`Statement`] or `impl` [`Rows`], and the compiler checks the
//! concrete query against PostgreSQL and SQLite right there (a statement one
//! backend cannot run is an error at its builder, naming what is missing).
//! [`DbConn`] then runs such a statement on whichever connection it is given.

use futures_util::future::BoxFuture;

use diesel::dsl::count_star;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{QueryDsl, QueryResult};
use diesel_async::methods::LoadQuery;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::list::{
    Boxed, CountsQuery, Db, FilesQuery, MergedQuery, PageQuery, SharedCountsQuery, Summed,
    TenantCountsQuery, TotalsQuery,
};
use crate::rows::FileRow;

/// The PostgreSQL connection (diesel-async's own, no libpq).
pub type PgConn = AsyncPgConnection;

/// The SQLite connection (the synchronous one, run on tokio's blocking pool).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// A statement that returns no rows and runs on both backends.
pub trait Statement: QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send {}

impl<T> Statement for T where T: QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send {}

/// A query whose rows load as `U` on both backends.
pub trait Rows<'q, U>: LoadQuery<'q, PgConn, U> + LoadQuery<'q, SqliteConn, U> + Send + 'q {}

impl<'q, U, T> Rows<'q, U> for T where
    T: LoadQuery<'q, PgConn, U> + LoadQuery<'q, SqliteConn, U> + Send + 'q
{
}

/// A statement of a fixed shape kept in the connection's statement cache,
/// which diesel declines for its kind (every `UPDATE` and every upsert: their
/// SQL could vary with `Option` fields of a changeset, which the builders
/// wrapped here never use). Cached by its SQL text, not its type, so a shape
/// that did vary would take more cache entries, never a wrong statement.
/// Uncached, PostgreSQL parses and plans such a statement on every call
/// (docs/decisions.md 56).
#[derive(Debug)]
pub struct Prepared<Q>(pub Q);

/// Statements built at run time: cached by their SQL text, not their type.
macro_rules! dynamic_query_id {
    ($($t:ident<$($p:ident),+>),+) => {$(
        impl<$($p),+> diesel::query_builder::QueryId for $t<$($p),+> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }
    )+};
}
pub(crate) use dynamic_query_id;

dynamic_query_id!(Prepared<Q>);

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<DB: diesel::backend::Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

/// A connection of either backend, as shared code uses it. Its futures are
/// boxed: named types keep shared `async` code provably `Send` (futures of
/// generic `impl Future` methods run into rust-lang/rust#100013).
pub trait DbConn: Send {
    /// Which backend it speaks (what dynamic queries are built for).
    const DB: Db;

    /// Runs a statement; the number of rows it touched.
    fn execute_statement<'c, Q: Statement + 'c>(
        &'c mut self,
        q: Q,
    ) -> BoxFuture<'c, QueryResult<usize>>;

    /// Runs a query; its rows.
    fn load_rows<'c, 'q: 'c, U: Send + 'static, Q: Rows<'q, U>>(
        &'c mut self,
        q: Q,
    ) -> BoxFuture<'c, QueryResult<Vec<U>>>;

    /// The files of a listing's query (built by [`crate::list`] for [`Self::DB`]).
    fn load_files<'c, 'q: 'c>(
        &'c mut self,
        q: PageQuery<'q>,
    ) -> BoxFuture<'c, QueryResult<Vec<FileRow>>>;

    /// How many files a listing's query matches.
    fn count_files<'c, 'q: 'c>(&'c mut self, q: FilesQuery<'q>) -> BoxFuture<'c, QueryResult<i64>>;

    /// The sum of the maintained counts a listing's total adds up.
    fn sum_counts<'c, 'q: 'c>(&'c mut self, q: CountsQuery<'q>) -> BoxFuture<'c, QueryResult<i64>>;

    /// The sum of the maintained counts of a tenant's files.
    fn sum_tenant<'c, 'q: 'c>(
        &'c mut self,
        q: TenantCountsQuery<'q>,
    ) -> BoxFuture<'c, QueryResult<i64>>;

    /// The sum of the maintained counts of files shared with a caller.
    fn sum_shared<'c, 'q: 'c>(
        &'c mut self,
        q: SharedCountsQuery<'q>,
    ) -> BoxFuture<'c, QueryResult<i64>>;

    /// A caller's total and its shared part (built by [`crate::list`]).
    fn load_totals<'c, 'q: 'c>(
        &'c mut self,
        q: TotalsQuery<'q>,
    ) -> BoxFuture<'c, QueryResult<(i64, i64)>>;

    /// A caller's page merged from its branches (built by [`crate::list`]).
    fn load_merged<'c, 'q: 'c>(
        &'c mut self,
        q: MergedQuery<'q>,
    ) -> BoxFuture<'c, QueryResult<Vec<FileRow>>>;
}

/// A dynamic query built for the other backend: a bug, reported as an error.
fn other_backend<'c, T: Send + 'c>() -> BoxFuture<'c, QueryResult<T>> {
    Box::pin(std::future::ready(Err(DieselError::QueryBuilderError(
        "query built for the other backend".into(),
    ))))
}

/// The two implementations are the same text on two connection types (the
/// compiler types each query by its backend); written once here.
macro_rules! db_conn {
    ($conn:ty, $db:ident, $variant:ident) => {
        impl DbConn for $conn {
            const DB: Db = Db::$db;

            fn execute_statement<'c, Q: Statement + 'c>(
                &'c mut self,
                q: Q,
            ) -> BoxFuture<'c, QueryResult<usize>> {
                Box::pin(q.execute(self))
            }

            fn load_rows<'c, 'q: 'c, U: Send + 'static, Q: Rows<'q, U>>(
                &'c mut self,
                q: Q,
            ) -> BoxFuture<'c, QueryResult<Vec<U>>> {
                Box::pin(RunQueryDsl::load(q, self))
            }

            fn load_files<'c, 'q: 'c>(
                &'c mut self,
                q: PageQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<Vec<FileRow>>> {
                match q {
                    Boxed::$variant(q) => Box::pin(q.load(self)),
                    _ => other_backend(),
                }
            }

            fn count_files<'c, 'q: 'c>(
                &'c mut self,
                q: FilesQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<i64>> {
                match q {
                    Boxed::$variant(q) => Box::pin(q.select(count_star()).get_result(self)),
                    _ => other_backend(),
                }
            }

            fn sum_counts<'c, 'q: 'c>(
                &'c mut self,
                q: CountsQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<i64>> {
                match q {
                    Boxed::$variant(q) => Box::pin(Summed(q).get_result(self)),
                    _ => other_backend(),
                }
            }

            fn sum_tenant<'c, 'q: 'c>(
                &'c mut self,
                q: TenantCountsQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<i64>> {
                match q {
                    Boxed::$variant(q) => Box::pin(Summed(q).get_result(self)),
                    _ => other_backend(),
                }
            }

            fn sum_shared<'c, 'q: 'c>(
                &'c mut self,
                q: SharedCountsQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<i64>> {
                match q {
                    Boxed::$variant(q) => Box::pin(Summed(q).get_result(self)),
                    _ => other_backend(),
                }
            }

            fn load_totals<'c, 'q: 'c>(
                &'c mut self,
                q: TotalsQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<(i64, i64)>> {
                match q {
                    Boxed::$variant(q) => Box::pin(q.get_result(self)),
                    _ => other_backend(),
                }
            }

            fn load_merged<'c, 'q: 'c>(
                &'c mut self,
                q: MergedQuery<'q>,
            ) -> BoxFuture<'c, QueryResult<Vec<FileRow>>> {
                match q {
                    Boxed::$variant(q) => Box::pin(q.load(self)),
                    _ => other_backend(),
                }
            }
        }
    };
}

db_conn!(PgConn, Postgres, Pg);
db_conn!(SqliteConn, Sqlite, Sqlite);

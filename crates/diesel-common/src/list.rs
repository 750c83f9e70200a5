//! The list query (docs/api.md §3 and §5): scope predicate, filters, keyset,
//! order and paging. Built at run time (which filters apply depends on the
//! request), so as a boxed query of one backend; [`Boxed`] lets one builder
//! serve both, each step checked by the compiler against both backends. The
//! one place they differ, how a share list is stored, is
//! [`FilesQuery::shared_with`].

use diesel::dsl::{exists, not};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::query_dsl::methods;
use diesel::serialize::ToSql;
use diesel::sql_types::Bool;
use diesel::sql_types::{BigInt, HasSqlType, Text};
use diesel::sqlite::Sqlite;
use diesel::{
    BoolExpressionMethods, EscapeExpressionMethods, ExpressionMethods, QueryDsl,
    TextExpressionMethods,
};
use stowage_domain::list::{
    like_pattern, ListQuery, MimeFilter, Scope, SortBy, SortDirection, SortValue, MAX_LIMIT,
};
use stowage_domain::model::{Owner, OwnerTypeFilter, Tenant, Visibility};
use stowage_domain::{Error, Result};

use crate::conn::dynamic_query_id;
use crate::schema::{file_counts, file_shares, files, share_counts, tenant_counts};
use crate::types::{ShareList, Shares};

/// Which backend a dynamic query is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

/// A boxed (dynamically built) query for one of the two backends. Each step
/// takes what both backends accept, so a builder is written once and the
/// compiler checks it against both.
pub enum Boxed<P, S> {
    /// Built for PostgreSQL.
    Pg(P),
    /// Built for SQLite.
    Sqlite(S),
}

/// `WHERE … AND predicate`, on either backend's query.
pub trait Filter<E>: Sized {
    /// Adds the predicate.
    fn filter(self, predicate: E) -> Self;
}

impl<P, S, E> Filter<E> for Boxed<P, S>
where
    P: methods::FilterDsl<E, Output = P>,
    S: methods::FilterDsl<E, Output = S>,
{
    fn filter(self, predicate: E) -> Self {
        match self {
            Self::Pg(q) => Self::Pg(q.filter(predicate)),
            Self::Sqlite(q) => Self::Sqlite(q.filter(predicate)),
        }
    }
}

/// `ORDER BY order`, on either backend's query.
pub trait Order<O>: Sized {
    /// Sets the order.
    fn order_by(self, order: O) -> Self;
}

impl<P, S, O> Order<O> for Boxed<P, S>
where
    O: diesel::Expression,
    P: methods::OrderDsl<O, Output = P>,
    S: methods::OrderDsl<O, Output = S>,
{
    fn order_by(self, order: O) -> Self {
        match self {
            Self::Pg(q) => Self::Pg(q.order(order)),
            Self::Sqlite(q) => Self::Sqlite(q.order(order)),
        }
    }
}

/// Up to which value a `LIMIT` or `OFFSET` is written into the statement
/// rather than bound: PostgreSQL costs the generic plan of a bound `LIMIT` at
/// a tenth of the table, so it keeps planning such a prepared statement
/// afresh on every call (measured on a merged page: 612 µs bound, 89 µs
/// literal). A page's limit is at most [`MAX_LIMIT`] + 1, so literals add at
/// most that many statements per query shape to a connection's cache;
/// larger values (deep offsets) stay bound.
pub const LITERAL_MAX: i64 = MAX_LIMIT as i64 + 1;

/// Writes `n` as a literal when `literal` and small (see [`LITERAL_MAX`]),
/// else binds it.
fn push_count<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    n: &'b i64,
    literal: bool,
) -> diesel::QueryResult<()>
where
    DB: diesel::backend::Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
{
    if literal && (0..=LITERAL_MAX).contains(n) {
        out.push_sql(&n.to_string());
        Ok(())
    } else {
        out.push_bind_param::<BigInt, _>(n)
    }
}

/// `LIMIT n OFFSET m`, small values written literally ([`LITERAL_MAX`])
/// when `literal`: on plain pages only, whose generic plans are the right
/// ones. A filtered page (search, MIME type, …) keeps them bound, so that
/// PostgreSQL plans each call for its parameters (a generic plan of a
/// `LIKE` cannot weigh the pattern: search measured twice as slow).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    limit: i64,
    offset: i64,
    literal: bool,
}

impl Bounds {
    fn walk<'b, DB>(&'b self, out: &mut AstPass<'_, 'b, DB>) -> diesel::QueryResult<()>
    where
        DB: diesel::backend::Backend + HasSqlType<BigInt>,
        i64: ToSql<BigInt, DB>,
    {
        out.push_sql(" LIMIT ");
        push_count(out, &self.limit, self.literal)?;
        if self.offset != 0 {
            out.push_sql(" OFFSET ");
            push_count(out, &self.offset, self.literal)?;
        }
        Ok(())
    }
}

/// `query LIMIT n OFFSET m` ([`Bounds`]).
#[derive(Debug)]
pub struct Paged<Q> {
    query: Q,
    bounds: Bounds,
}

dynamic_query_id!(Paged<Q>, Merged<Q>, Summed<Q>, Totals<C, O, S>);

/// [`Paged`] files on either backend.
pub type PageQuery<'a> =
    Boxed<Paged<files::BoxedQuery<'a, Pg>>, Paged<files::BoxedQuery<'a, Sqlite>>>;

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Paged<Q> {
    type SqlType = Q::SqlType;
}

impl<DB, Q> QueryFragment<DB> for Paged<Q>
where
    DB: diesel::backend::Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        self.bounds.walk(&mut out)
    }
}

impl<P, S> Boxed<P, S> {
    /// The PostgreSQL query; `common/internal` for one built for SQLite.
    ///
    /// # Errors
    /// As said.
    pub fn into_pg(self) -> Result<P> {
        match self {
            Self::Pg(q) => Ok(q),
            Self::Sqlite(_) => Err(Error::internal("a query built for SQLite")),
        }
    }

    /// The SQLite query; `common/internal` for one built for PostgreSQL.
    ///
    /// # Errors
    /// As said.
    pub fn into_sqlite(self) -> Result<S> {
        match self {
            Self::Sqlite(q) => Ok(q),
            Self::Pg(_) => Err(Error::internal("a query built for PostgreSQL")),
        }
    }

    /// `LIMIT limit OFFSET offset`, written literally when `literal` (see
    /// [`Bounds`]).
    pub fn paged(self, limit: i64, offset: i64, literal: bool) -> Boxed<Paged<P>, Paged<S>> {
        let bounds = Bounds {
            limit,
            offset,
            literal,
        };
        match self {
            Self::Pg(query) => Boxed::Pg(Paged { query, bounds }),
            Self::Sqlite(query) => Boxed::Sqlite(Paged { query, bounds }),
        }
    }
}

/// A dynamic query over `files`.
pub type FilesQuery<'a> = Boxed<files::BoxedQuery<'a, Pg>, files::BoxedQuery<'a, Sqlite>>;

/// A dynamic query over the maintained counts.
pub type CountsQuery<'a> =
    Boxed<file_counts::BoxedQuery<'a, Pg>, file_counts::BoxedQuery<'a, Sqlite>>;

/// A disjoint part of a caller's visible files (docs/api.md §5), read in order
/// from an index of its own: a listing merges them rather than asking one
/// query whose `OR` no index serves (which walks the whole tenant when the
/// caller sees few of its files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// The caller's own files.
    Own,
    /// Other owners' `public` and `protected` files.
    Open,
    /// Other owners' `shared` files naming the caller.
    Shared,
}

/// A predicate spelled as literal SQL, not bind parameters: only then do
/// generic plans of prepared statements match the partial indexes it names,
/// and unlike `diesel::dsl::sql` it keeps the statement cacheable.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping, diesel::query_builder::QueryId)]
pub struct Literal(&'static str);

impl diesel::Expression for Literal {
    type SqlType = Bool;
}

impl diesel::AppearsOnTable<files::table> for Literal {}

impl diesel::SelectableExpression<files::table> for Literal {}

impl diesel::AppearsOnTable<file_counts::table> for Literal {}

impl diesel::SelectableExpression<file_counts::table> for Literal {}

impl diesel::AppearsOnTable<tenant_counts::table> for Literal {}

impl diesel::SelectableExpression<tenant_counts::table> for Literal {}

impl<DB: diesel::backend::Backend> QueryFragment<DB> for Literal {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

/// `+files.project = ? AND +files.env = ?`: the tenant, spelled so that
/// SQLite uses no index for it (the unary `+`), where walking the tenant's
/// sort indexes would be the worse plan it otherwise picks.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping)]
pub struct UnindexedTenant<'a>(&'a Tenant);

impl diesel::query_builder::QueryId for UnindexedTenant<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::Expression for UnindexedTenant<'_> {
    type SqlType = Bool;
}

impl diesel::AppearsOnTable<files::table> for UnindexedTenant<'_> {}

impl diesel::SelectableExpression<files::table> for UnindexedTenant<'_> {}

impl QueryFragment<Sqlite> for UnindexedTenant<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> diesel::QueryResult<()> {
        out.push_sql("(+`files`.`project` = ");
        out.push_bind_param::<Text, _>(self.0.project.as_str())?;
        out.push_sql(" AND +`files`.`env` = ");
        out.push_bind_param::<Text, _>(self.0.env.as_str())?;
        out.push_sql(")");
        Ok(())
    }
}

/// `public` or `protected` (the partial indexes `files_open_*`).
const IS_OPEN: Literal = Literal("\"files\".\"visibility\" IN ('public', 'protected')");

/// `shared` (the partial index `files_shared` of PostgreSQL).
const IS_SHARED: Literal = Literal("\"files\".\"visibility\" = 'shared'");

diesel::infix_operator!(ArrayContains, " @> ", backend: Pg);

impl<'a> FilesQuery<'a> {
    /// Every file, on `db`.
    pub fn files(db: Db) -> Self {
        match db {
            Db::Postgres => Self::Pg(files::table.into_boxed()),
            Db::Sqlite => Self::Sqlite(files::table.into_boxed()),
        }
    }

    /// `public` and `protected` files, spelled as a literal so that the
    /// partial indexes on open files match. A plain page (`plain`) keeps the
    /// statement cacheable: its generic plan is the partial index walked in
    /// order, the best there is, and planning the merged page afresh cost
    /// more than reading it (docs/decisions.md 56; SQLite measured faster
    /// cached too). With filters it is an uncacheable fragment, so that each
    /// call is planned for its own parameters.
    fn open_files(self, plain: bool) -> Self {
        match self {
            q if plain => q.filter(IS_OPEN),
            q => q.filter(diesel::dsl::sql::<Bool>(IS_OPEN.0)),
        }
    }

    /// Files of one tenant.
    pub fn in_tenant(self, t: &'a Tenant) -> Self {
        self.filter(files::project.eq(t.project.as_str()))
            .filter(files::env.eq(t.env.as_str()))
    }

    /// Files that are `shared` and whose share list names `uid`, as each
    /// backend stores it: PostgreSQL's `text[]` (GIN-indexed over shared
    /// files), SQLite's `file_shares` table (indexed by user).
    pub fn shared_with(self, uid: &'a str) -> Self {
        match self {
            Self::Pg(q) => Self::Pg(QueryDsl::filter(
                QueryDsl::filter(q, IS_SHARED),
                ArrayContains::new(
                    files::shared_with,
                    diesel::IntoSql::into_sql::<ShareList>(Shares(vec![uid.to_owned()])),
                ),
            )),
            Self::Sqlite(q) => Self::Sqlite(
                QueryDsl::filter(q, files::visibility.eq(Visibility::Shared.as_str())).filter(
                    exists(
                        file_shares::table
                            .filter(file_shares::file_id.eq(files::id))
                            .filter(file_shares::user_id.eq(uid)),
                    ),
                ),
            ),
        }
    }

    /// [`Self::shared_with`] read from the caller's shares: on SQLite
    /// `files.id IN (the file ids of the user's shares in the tenant)`, which
    /// it answers by probing each share's file (then sorting a few rows)
    /// instead of walking the sort index past every file not shared with
    /// the caller (measured: 5–6 ms → 0.1 ms for 100 shares among 10,000
    /// files). PostgreSQL plans the same choice itself from its statistics.
    pub fn shared_among_shares_of(self, tenant: &'a Tenant, uid: &'a str) -> Self {
        match self {
            Self::Sqlite(q) => Self::Sqlite(
                QueryDsl::filter(q, UnindexedTenant(tenant))
                    .filter(files::visibility.eq(Visibility::Shared.as_str()))
                    .filter(
                        files::id.eq_any(
                            file_shares::table
                                .filter(file_shares::project.eq(tenant.project.as_str()))
                                .filter(file_shares::env.eq(tenant.env.as_str()))
                                .filter(file_shares::user_id.eq(uid))
                                .select(file_shares::file_id),
                        ),
                    ),
            ),
            pg => pg.in_tenant(tenant).shared_with(uid),
        }
    }

    /// Files the caller of a scoped listing may see (docs/api.md §5): their
    /// own, open ones, and shared ones naming them — one `OR`.
    fn visible(self, query: &'a ListQuery) -> Self {
        let Scope::VisibleTo { owner, user_id } = &query.scope else {
            return self;
        };
        let own = files::owner_type
            .eq(owner.kind.as_str())
            .and(files::owner_id.eq(owner.id.as_str()));
        let open = || {
            files::visibility.eq_any([Visibility::Public.as_str(), Visibility::Protected.as_str()])
        };
        match (user_id, self) {
            (Some(uid), Self::Pg(q)) => Self::Pg(QueryDsl::filter(
                q,
                own.or(open()).or(IS_SHARED.and(ArrayContains::new(
                    files::shared_with,
                    diesel::IntoSql::into_sql::<ShareList>(Shares(vec![uid.clone()])),
                ))),
            )),
            (Some(uid), Self::Sqlite(q)) => Self::Sqlite(QueryDsl::filter(
                q,
                own.or(open()).or(files::visibility
                    .eq(Visibility::Shared.as_str())
                    .and(exists(
                        file_shares::table
                            .filter(file_shares::file_id.eq(files::id))
                            .filter(file_shares::user_id.eq(uid.as_str())),
                    ))),
            )),
            (None, q) => q.filter(own.or(open())),
        }
    }

    /// The query's own filters (visibility, owner, bucket, MIME type, search).
    fn with_filters(mut self, query: &'a ListQuery) -> Self {
        let p = &query.params;
        if let Some(v) = p.visibility {
            self = self.filter(files::visibility.eq(v.as_str()));
        }
        match p.owner_type {
            Some(OwnerTypeFilter::User) => self = self.filter(files::owner_type.eq("user")),
            Some(OwnerTypeFilter::Service) => self = self.filter(files::owner_type.eq("service")),
            Some(OwnerTypeFilter::Session | OwnerTypeFilter::Public) => {
                self = self.filter(not(files::id.eq(files::id)))
            }
            None => {}
        }
        if let Some(o) = &p.owner_id {
            self = self.filter(files::owner_id.eq(o.as_str()));
        }
        if let Some(b) = p.bucket {
            self = self.filter(files::bucket.eq(b.as_str()));
        }
        match &p.mime_type {
            Some(MimeFilter::Exact(m)) => self = self.filter(files::mime_type.eq(m.as_str())),
            Some(MimeFilter::Prefix(prefix)) => {
                let pattern = like_pattern(prefix);
                // like_pattern wraps in %…%; a prefix match drops the leading %.
                self = self.filter(files::mime_type.like(pattern[1..].to_owned()).escape('\\'));
            }
            None => {}
        }
        if let Some(s) = &p.search {
            self = self.filter(files::name_folded.like(like_pattern(s)).escape('\\'));
        }
        self
    }

    /// Keyset bound (after the cursor) and order of a listing.
    fn ordered(self, query: &'a ListQuery) -> Result<Self> {
        let p = &query.params;
        let column = sort_column(p.sort_by);
        let mut q = self;
        if let Some(c) = &p.cursor {
            let value = match (p.sort_by, &c.value) {
                (SortBy::CreatedAt | SortBy::UpdatedAt | SortBy::Size, SortValue::Int(v)) => {
                    SortValue::Int(*v)
                }
                (SortBy::OriginalName | SortBy::MimeType, SortValue::Text(v)) => {
                    SortValue::Text(v.clone())
                }
                _ => return Err(Error::invalid_request("invalid cursor")),
            };
            q = q.filter(After {
                column,
                value,
                id: c.id.to_string(),
                direction: p.direction,
            });
        }
        Ok(q.order_by(SortOrder {
            table: FILES,
            column,
            direction: p.direction,
        }))
    }
}

/// The quoted name of the column a listing sorts by.
fn sort_column(by: SortBy) -> &'static str {
    match by {
        SortBy::CreatedAt => "\"created_at\"",
        SortBy::UpdatedAt => "\"updated_at\"",
        SortBy::Size => "\"size\"",
        SortBy::OriginalName => "\"original_name\"",
        SortBy::MimeType => "\"mime_type\"",
    }
}

/// The keyset condition "after `(value, id)`" on the sort column:
/// `(col >= v AND (col > v OR (col = v AND id > last_id)))` (`<` when
/// descending). The first, redundant bound is what the index can seek on;
/// the second is the exact condition with the id tie-break.
#[derive(Debug, Clone, diesel::expression::ValidGrouping)]
pub struct After {
    column: &'static str,
    value: SortValue,
    id: String,
    direction: SortDirection,
}

impl diesel::Expression for After {
    type SqlType = Bool;
}

impl diesel::AppearsOnTable<files::table> for After {}

impl diesel::SelectableExpression<files::table> for After {}

impl diesel::query_builder::QueryId for After {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB> QueryFragment<DB> for After
where
    DB: diesel::backend::Backend + HasSqlType<BigInt> + HasSqlType<Text>,
    i64: ToSql<BigInt, DB>,
    String: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        let (seek, strict) = match self.direction {
            SortDirection::Asc => (" >= ", " > "),
            SortDirection::Desc => (" <= ", " < "),
        };
        let value = |out: &mut AstPass<'_, 'b, DB>| match &self.value {
            SortValue::Int(v) => out.push_bind_param::<BigInt, _>(v),
            SortValue::Text(v) => out.push_bind_param::<Text, _>(v),
        };
        let column = |out: &mut AstPass<'_, 'b, DB>| {
            out.push_sql(FILES);
            out.push_sql(".");
            out.push_sql(self.column);
        };
        out.push_sql("(");
        column(&mut out);
        out.push_sql(seek);
        value(&mut out)?;
        out.push_sql(" AND (");
        column(&mut out);
        out.push_sql(strict);
        value(&mut out)?;
        out.push_sql(" OR (");
        column(&mut out);
        out.push_sql(" = ");
        value(&mut out)?;
        out.push_sql(" AND \"files\".\"id\"");
        out.push_sql(strict);
        out.push_bind_param::<Text, _>(&self.id)?;
        out.push_sql(")))");
        Ok(())
    }
}

/// The quoted name of `files`, and of the merged page's derived table.
const FILES: &str = "\"files\"";
const PAGE: &str = "\"page\"";

/// `ORDER BY table.col, table.id` in one direction.
#[derive(Debug, Clone, Copy, diesel::expression::ValidGrouping, diesel::query_builder::QueryId)]
pub struct SortOrder {
    table: &'static str,
    column: &'static str,
    direction: SortDirection,
}

impl diesel::Expression for SortOrder {
    type SqlType = Bool;
}

impl diesel::AppearsOnTable<files::table> for SortOrder {}

impl<DB: diesel::backend::Backend> QueryFragment<DB> for SortOrder {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        let dir = match self.direction {
            SortDirection::Asc => " ASC",
            SortDirection::Desc => " DESC",
        };
        out.push_sql(self.table);
        out.push_sql(".");
        out.push_sql(self.column);
        out.push_sql(dir);
        out.push_sql(", ");
        out.push_sql(self.table);
        out.push_sql(".\"id\"");
        out.push_sql(dir);
        Ok(())
    }
}

/// Rows in scope and matching the filters, without order or paging.
pub fn filtered(db: Db, query: &ListQuery) -> FilesQuery<'_> {
    FilesQuery::files(db)
        .in_tenant(&query.tenant)
        .visible(query)
        .with_filters(query)
}

/// The page of a single-query listing: `limit + 1` rows (the extra one says
/// whether there are more) after the cursor, or after the offset.
///
/// # Errors
/// `common/invalid-request` for a cursor of another sort order.
pub fn page_query(db: Db, query: &ListQuery) -> Result<PageQuery<'_>> {
    let p = &query.params;
    let offset = if p.cursor.is_some() {
        0
    } else {
        i64::try_from(p.offset()).unwrap_or(i64::MAX)
    };
    Ok(filtered(db, query)
        .ordered(query)?
        .paged(i64::from(p.limit) + 1, offset, plain_page(query)))
}

/// Most rows a listing reads per branch (offset + limit + 1) before
/// the single query becomes the better plan.
const MAX_BRANCH_ROWS: u64 = 1_000;

/// The branches a caller's listing is read as, or `None` when the
/// single query is the better plan: admins (no visibility predicate),
/// an owner or search filter (their own indexes bound the rows),
/// offsets deep enough that each branch would read too much.
pub fn branches(query: &ListQuery) -> Option<Vec<Branch>> {
    let Scope::VisibleTo { user_id, .. } = &query.scope else {
        return None;
    };
    let p = &query.params;
    let rows = p.offset() + u64::from(p.limit) + 1;
    if p.owner_id.is_some() || p.search.is_some() || (p.cursor.is_none() && rows > MAX_BRANCH_ROWS)
    {
        return None;
    }
    let mut out = vec![Branch::Own];
    if p.visibility
        .is_none_or(|v| matches!(v, Visibility::Public | Visibility::Protected))
    {
        out.push(Branch::Open);
    }
    if user_id.is_some() && p.visibility.is_none_or(|v| v == Visibility::Shared) {
        out.push(Branch::Shared);
    }
    Some(out)
}

/// A listing without filters that need their own plan (owner, bucket, MIME
/// type, search): its branches are cacheable statements on PostgreSQL.
fn plain_page(query: &ListQuery) -> bool {
    let p = &query.params;
    p.owner_id.is_none() && p.bucket.is_none() && p.mime_type.is_none() && p.search.is_none()
}

/// Up to how many files shared with the caller SQLite reads the shared
/// branch from the caller's shares (then sorts them) rather than walking
/// the sort index until it has met a page of them: walking costs about
/// `tenant × page / shared` rows, reading the shares `shared` probes.
pub const SHARE_PROBE_MAX: u64 = 4_096;

/// One branch of a caller's page: its rows in order, from the first
/// row after the cursor (or the first row), `offset + limit + 1` of them;
/// the caller merges the branches and applies the offset. `shared` is how
/// many files are shared with the caller, when known (a planning hint).
///
/// # Errors
/// `common/invalid-request` for a cursor of another sort order;
/// `common/internal` for a listing that is not scoped to a caller.
pub fn branch_page_query(
    db: Db,
    query: &ListQuery,
    branch: Branch,
    shared: Option<u64>,
) -> Result<PageQuery<'_>> {
    let Scope::VisibleTo { owner, user_id } = &query.scope else {
        return Err(Error::internal("branches are for caller-scoped listings"));
    };
    let own = || {
        files::owner_type
            .eq(owner.kind.as_str())
            .and(files::owner_id.eq(owner.id.as_str()))
    };
    let few_shares = shared.is_some_and(|n| n <= SHARE_PROBE_MAX);
    let q = FilesQuery::files(db);
    let q = match (branch, user_id) {
        // The tenant comes with the shares (each share row carries its
        // file's tenant), checked again without offering SQLite the
        // tenant's sort indexes to walk.
        (Branch::Shared, Some(uid)) if few_shares => q
            .shared_among_shares_of(&query.tenant, uid)
            .filter(not(own())),
        (branch, user_id) => {
            let q = q.in_tenant(&query.tenant);
            match (branch, user_id) {
                (Branch::Own, _) => q.filter(own()),
                (Branch::Open, _) => q.open_files(plain_page(query)).filter(not(own())),
                (Branch::Shared, Some(uid)) => q.shared_with(uid).filter(not(own())),
                (Branch::Shared, None) => q.filter(not(files::id.eq(files::id))),
            }
        }
    };
    let p = &query.params;
    let rows = if p.cursor.is_some() {
        u64::from(p.limit) + 1
    } else {
        p.offset() + u64::from(p.limit) + 1
    };
    Ok(q.with_filters(query).ordered(query)?.paged(
        i64::try_from(rows).unwrap_or(i64::MAX),
        0,
        plain_page(query),
    ))
}

/// A caller's page read as branches and merged by the database, in one
/// statement: `SELECT * FROM (SELECT * FROM (b₁) AS "b" UNION ALL …) AS
/// "page" ORDER BY col, id LIMIT n OFFSET m`. Each branch keeps its own
/// order and bound (an index scan of its own, built by
/// [`branch_page_query`]); only the page's rows come back.
#[derive(Debug)]
pub struct Merged<Q> {
    branches: Vec<Q>,
    order: SortOrder,
    bounds: Bounds,
}

/// [`Merged`] on either backend.
pub type MergedQuery<'a> =
    Boxed<Merged<Paged<files::BoxedQuery<'a, Pg>>>, Merged<Paged<files::BoxedQuery<'a, Sqlite>>>>;

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Merged<Q> {
    type SqlType = Q::SqlType;
}

impl<DB, Q> QueryFragment<DB> for Merged<Q>
where
    DB: diesel::backend::Backend + HasSqlType<BigInt>,
    i64: ToSql<BigInt, DB>,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        out.push_sql("SELECT * FROM (");
        for (i, branch) in self.branches.iter().enumerate() {
            if i > 0 {
                out.push_sql(" UNION ALL ");
            }
            out.push_sql("SELECT * FROM (");
            branch.walk_ast(out.reborrow())?;
            out.push_sql(") AS \"b\"");
        }
        out.push_sql(") AS ");
        out.push_sql(PAGE);
        out.push_sql(" ORDER BY ");
        self.order.walk_ast(out.reborrow())?;
        self.bounds.walk(&mut out)
    }
}

/// A caller's page in one statement: its `branches` (from [`branches`]),
/// each read by [`branch_page_query`], merged in the listing's order, the
/// offset applied, `limit + 1` rows. `shared` as for [`branch_page_query`].
///
/// # Errors
/// As [`branch_page_query`]; `common/internal` for no branch.
pub fn merged_page_query<'a>(
    db: Db,
    query: &'a ListQuery,
    branches: &[Branch],
    shared: Option<u64>,
) -> Result<MergedQuery<'a>> {
    let p = &query.params;
    let order = SortOrder {
        table: PAGE,
        column: sort_column(p.sort_by),
        direction: p.direction,
    };
    let bounds = Bounds {
        limit: i64::from(p.limit) + 1,
        offset: if p.cursor.is_some() {
            0
        } else {
            i64::try_from(p.offset()).unwrap_or(i64::MAX)
        },
        literal: plain_page(query),
    };
    if branches.is_empty() {
        return Err(Error::internal("a merged page needs a branch"));
    }
    let mut pg = Vec::new();
    let mut sqlite = Vec::new();
    for &branch in branches {
        match branch_page_query(db, query, branch, shared)? {
            Boxed::Pg(q) => pg.push(q),
            Boxed::Sqlite(q) => sqlite.push(q),
        }
    }
    Ok(match db {
        Db::Postgres => Boxed::Pg(Merged {
            branches: pg,
            order,
            bounds,
        }),
        Db::Sqlite => Boxed::Sqlite(Merged {
            branches: sqlite,
            order,
            bounds,
        }),
    })
}

/// A dynamic query over the maintained share counts.
pub type SharedCountsQuery<'a> =
    Boxed<share_counts::BoxedQuery<'a, Pg>, share_counts::BoxedQuery<'a, Sqlite>>;

impl<'a> SharedCountsQuery<'a> {
    /// The maintained counts of the files of other owners than `owner`, in
    /// the listing's tenant and owner filters (`owner_type` as stored), that
    /// are `shared` with `uid`: the part of a list total that `file_counts`
    /// cannot give, a sum of one row per owner sharing with `uid`.
    pub fn of_listing(
        db: Db,
        query: &'a ListQuery,
        owner: &'a Owner,
        uid: &'a str,
        owner_type: Option<&'a str>,
    ) -> Self {
        let mut q = match db {
            Db::Postgres => Self::Pg(share_counts::table.into_boxed()),
            Db::Sqlite => Self::Sqlite(share_counts::table.into_boxed()),
        }
        .filter(share_counts::project.eq(query.tenant.project.as_str()))
        .filter(share_counts::env.eq(query.tenant.env.as_str()))
        .filter(share_counts::user_id.eq(uid))
        .filter(not(share_counts::owner_type
            .eq(owner.kind.as_str())
            .and(share_counts::owner_id.eq(owner.id.as_str()))));
        if let Some(t) = owner_type {
            q = q.filter(share_counts::owner_type.eq(t));
        }
        if let Some(o) = &query.params.owner_id {
            q = q.filter(share_counts::owner_id.eq(o.as_str()));
        }
        q
    }
}

/// The sum of the counts a [`CountsQuery`] selects, as one row:
/// `SELECT CAST(COALESCE(SUM("c"."n"), 0) AS BIGINT) FROM (…) AS "c"`.
#[derive(Debug)]
pub struct Summed<Q>(pub Q);

impl<Q> diesel::query_builder::Query for Summed<Q> {
    type SqlType = BigInt;
}

impl<DB: diesel::backend::Backend, Q: QueryFragment<DB>> QueryFragment<DB> for Summed<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        out.push_sql("SELECT CAST(COALESCE(SUM(\"c\".\"n\"), 0) AS BIGINT) FROM (");
        self.0.walk_ast(out.reborrow())?;
        out.push_sql(") AS \"c\"");
        Ok(())
    }
}

/// A caller's total and the part of it shared with them, in one row:
/// `SELECT (sum of the counts) [+ (sum of the open counts)], (sum of the
/// share counts, or 0)`.
#[derive(Debug)]
pub struct Totals<C, O, S> {
    counts: Summed<C>,
    open: Option<Summed<O>>,
    shared: Option<Summed<S>>,
}

/// [`Totals`] on either backend.
pub type TotalsQuery<'a> = Boxed<
    Totals<
        file_counts::BoxedQuery<'a, Pg>,
        tenant_counts::BoxedQuery<'a, Pg>,
        share_counts::BoxedQuery<'a, Pg>,
    >,
    Totals<
        file_counts::BoxedQuery<'a, Sqlite>,
        tenant_counts::BoxedQuery<'a, Sqlite>,
        share_counts::BoxedQuery<'a, Sqlite>,
    >,
>;

impl<C, O, S> diesel::query_builder::Query for Totals<C, O, S> {
    type SqlType = (BigInt, BigInt);
}

impl<DB, C, O, S> QueryFragment<DB> for Totals<C, O, S>
where
    DB: diesel::backend::Backend,
    C: QueryFragment<DB>,
    O: QueryFragment<DB>,
    S: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        out.push_sql("SELECT (");
        self.counts.walk_ast(out.reborrow())?;
        out.push_sql(")");
        if let Some(open) = &self.open {
            out.push_sql(" + (");
            open.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        match &self.shared {
            Some(shared) => {
                out.push_sql(", (");
                shared.walk_ast(out.reborrow())?;
                out.push_sql(")");
            }
            None => out.push_sql(", CAST(0 AS BIGINT)"),
        }
        Ok(())
    }
}

/// `public` or `protected` in `tenant_counts` (literal, as [`IS_OPEN`], so
/// that the totals stay a cacheable statement on SQLite too: a bound `IN`
/// list is re-prepared on every call there).
const TENANT_OPEN: Literal = Literal("\"tenant_counts\".\"visibility\" IN ('public', 'protected')");

/// `private` or `shared` in `file_counts`: the caller's files that no one
/// else's listing counts as open.
const OWN_CLOSED: Literal = Literal("\"file_counts\".\"visibility\" IN ('private', 'shared')");

/// The total of a caller's listing (docs/api.md §5) from the maintained
/// counts, in one statement: the open files of the tenant (`tenant_counts`:
/// a few rows however many owners there are), the caller's own closed ones
/// (`file_counts`), and, when `shared_with` is given, the files of others
/// shared with that user (`share_counts`, also returned on its own). With an
/// owner filter, that owner's rows of `file_counts` instead of the first two.
/// `owner_type` is the listing's filter as stored.
///
/// # Errors
/// `common/internal` only for a query that mixed backends (a bug).
pub fn totals_query<'a>(
    db: Db,
    query: &'a ListQuery,
    owner: &'a Owner,
    owner_type: Option<&'a str>,
    shared_with: Option<&'a str>,
) -> Result<TotalsQuery<'a>> {
    let counts = CountsQuery::of_listing(db, query, owner_type);
    let (counts, open) = if query.params.owner_id.is_some() {
        (counts.visible_to(owner), None)
    } else {
        let own = counts
            .filter(file_counts::owner_type.eq(owner.kind.as_str()))
            .filter(file_counts::owner_id.eq(owner.id.as_str()))
            .filter(OWN_CLOSED);
        let open = TenantCountsQuery::of_listing(db, query, owner_type).filter(TENANT_OPEN);
        (own, Some(open))
    };
    let shared =
        shared_with.map(|uid| SharedCountsQuery::of_listing(db, query, owner, uid, owner_type));
    Ok(match db {
        Db::Postgres => Boxed::Pg(Totals {
            counts: Summed(counts.into_pg()?),
            open: open.map(|o| o.into_pg().map(Summed)).transpose()?,
            shared: shared.map(|s| s.into_pg().map(Summed)).transpose()?,
        }),
        Db::Sqlite => Boxed::Sqlite(Totals {
            counts: Summed(counts.into_sqlite()?),
            open: open.map(|o| o.into_sqlite().map(Summed)).transpose()?,
            shared: shared.map(|s| s.into_sqlite().map(Summed)).transpose()?,
        }),
    })
}

/// A dynamic query over the tenant counts.
pub type TenantCountsQuery<'a> =
    Boxed<tenant_counts::BoxedQuery<'a, Pg>, tenant_counts::BoxedQuery<'a, Sqlite>>;

impl<'a> TenantCountsQuery<'a> {
    /// The counts of a listing's tenant, narrowed by its visibility filter
    /// and `owner_type` (as stored). They are not per owner: a listing with
    /// an owner filter reads `file_counts` ([`CountsQuery::of_listing`]).
    pub fn of_listing(db: Db, query: &'a ListQuery, owner_type: Option<&'a str>) -> Self {
        let mut q = match db {
            Db::Postgres => Self::Pg(tenant_counts::table.into_boxed()),
            Db::Sqlite => Self::Sqlite(tenant_counts::table.into_boxed()),
        }
        .filter(tenant_counts::project.eq(query.tenant.project.as_str()))
        .filter(tenant_counts::env.eq(query.tenant.env.as_str()));
        if let Some(v) = query.params.visibility {
            q = q.filter(tenant_counts::visibility.eq(v.as_str()));
        }
        if let Some(t) = owner_type {
            q = q.filter(tenant_counts::owner_type.eq(t));
        }
        q
    }
}

impl<'a> CountsQuery<'a> {
    /// The maintained counts of a listing's tenant, narrowed by its
    /// visibility and owner filters (`owner_type` as stored).
    pub fn of_listing(db: Db, query: &'a ListQuery, owner_type: Option<&'a str>) -> Self {
        let mut q = match db {
            Db::Postgres => Self::Pg(file_counts::table.into_boxed()),
            Db::Sqlite => Self::Sqlite(file_counts::table.into_boxed()),
        }
        .filter(file_counts::project.eq(query.tenant.project.as_str()))
        .filter(file_counts::env.eq(query.tenant.env.as_str()));
        let p = &query.params;
        if let Some(v) = p.visibility {
            q = q.filter(file_counts::visibility.eq(v.as_str()));
        }
        if let Some(t) = owner_type {
            q = q.filter(file_counts::owner_type.eq(t));
        }
        if let Some(o) = &p.owner_id {
            q = q.filter(file_counts::owner_id.eq(o.as_str()));
        }
        q
    }

    /// Only the counts of what `owner` sees: open files of anyone and their
    /// own closed ones.
    pub fn visible_to(self, owner: &'a Owner) -> Self {
        self.filter(
            file_counts::visibility
                .eq_any([Visibility::Public.as_str(), Visibility::Protected.as_str()])
                .or(file_counts::owner_type
                    .eq(owner.kind.as_str())
                    .and(file_counts::owner_id.eq(owner.id.as_str()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::debug_query;
    use stowage_domain::list::{Cursor, ListParams};
    use stowage_domain::model::{Environment, OwnerType, ProjectId};

    fn query(params: ListParams) -> ListQuery {
        ListQuery {
            tenant: Tenant {
                project: ProjectId::new("p1").expect("project"),
                env: Environment::Dev,
            },
            scope: Scope::VisibleTo {
                owner: Owner {
                    kind: OwnerType::User,
                    id: "u1".into(),
                },
                user_id: Some("u1".into()),
            },
            params,
        }
    }

    /// The SQL of a query on its backend.
    fn sql<P: QueryFragment<Pg>, S: QueryFragment<Sqlite>>(q: Boxed<P, S>) -> String {
        match q {
            Boxed::Pg(q) => debug_query::<Pg, _>(&q).to_string(),
            Boxed::Sqlite(q) => debug_query::<Sqlite, _>(&q).to_string(),
        }
    }

    #[test]
    fn sqlite_reads_few_shares_from_the_share_rows_and_many_by_the_sort_order() {
        let q = query(ListParams::default());
        let few = sql(branch_page_query(Db::Sqlite, &q, Branch::Shared, Some(12)).expect("few"));
        assert!(
            few.contains("`files`.`id` IN (SELECT `file_shares`.`file_id`"),
            "{few}"
        );
        for hint in [None, Some(SHARE_PROBE_MAX + 1)] {
            let many = sql(branch_page_query(Db::Sqlite, &q, Branch::Shared, hint).expect("many"));
            assert!(many.contains("EXISTS"), "{many}");
            assert!(!many.contains("IN (SELECT"), "{many}");
        }
        // PostgreSQL plans it from its statistics: one query either way.
        let pg = sql(branch_page_query(Db::Postgres, &q, Branch::Shared, Some(12)).expect("pg"));
        assert!(pg.contains(r#""files"."shared_with" @> $"#), "{pg}");
    }

    #[test]
    fn branches_name_their_partial_indexes_literally() {
        let q = query(ListParams::default());
        for db in [Db::Postgres, Db::Sqlite] {
            let open = sql(branch_page_query(db, &q, Branch::Open, None).expect("open"));
            assert!(
                open.contains(r#""files"."visibility" IN ('public', 'protected')"#),
                "{open}"
            );
            let shared = sql(branch_page_query(db, &q, Branch::Shared, None).expect("shared"));
            match db {
                Db::Postgres => {
                    assert!(
                        shared.contains(r#""files"."visibility" = 'shared'"#),
                        "{shared}"
                    );
                    assert!(shared.contains(r#""files"."shared_with" @> $"#), "{shared}");
                }
                Db::Sqlite => assert!(shared.contains("`file_shares`"), "{shared}"),
            }
            assert!(shared.contains(r#"ORDER BY "files"."created_at" DESC, "files"."id" DESC"#));
        }
    }

    #[test]
    fn a_cursor_seeks_then_breaks_ties_by_id() {
        let mut params = ListParams {
            sort_by: SortBy::OriginalName,
            direction: SortDirection::Asc,
            ..ListParams::default()
        };
        params.cursor = Some(Cursor {
            sort_by: SortBy::OriginalName,
            direction: SortDirection::Asc,
            value: SortValue::Text("m".into()),
            id: uuid::Uuid::nil(),
            total: None,
            shared_empty: false,
            shared: None,
        });
        let q = query(params);
        let page = sql(page_query(Db::Postgres, &q).expect("page"));
        let seek = page
            .split(r#"("files"."original_name" >= $"#)
            .nth(1)
            .expect("the seek bound");
        assert!(
            seek.contains(r#" AND ("files"."original_name" > $"#)
                && seek.contains(r#" OR ("files"."original_name" = $"#)
                && seek.contains(r#" AND "files"."id" > $"#),
            "{page}"
        );
        assert!(page.contains(r#"ORDER BY "files"."original_name" ASC, "files"."id" ASC"#));
        // No offset after a cursor; limit + 1 rows.
        assert!(!page.contains("OFFSET"), "{page}");
    }

    #[test]
    fn a_cursor_of_another_sort_order_is_refused() {
        let mut params = ListParams {
            sort_by: SortBy::Size,
            ..ListParams::default()
        };
        params.cursor = Some(Cursor {
            sort_by: SortBy::Size,
            direction: SortDirection::Desc,
            value: SortValue::Text("m".into()),
            id: uuid::Uuid::nil(),
            total: None,
            shared_empty: false,
            shared: None,
        });
        let q = query(params);
        for db in [Db::Postgres, Db::Sqlite] {
            assert!(page_query(db, &q).is_err());
        }
    }

    #[test]
    fn admins_and_searches_read_one_query() {
        let mut q = query(ListParams::default());
        assert!(branches(&q).is_some());
        q.params.search = Some("x".into());
        assert!(branches(&q).is_none());
        q.params.search = None;
        q.scope = Scope::All;
        assert!(branches(&q).is_none());
    }

    #[test]
    fn plain_merged_pages_and_totals_are_cached_statements_on_postgres() {
        let cached = |q: &dyn QueryFragment<Pg>| q.is_safe_to_cache_prepared(&Pg).expect("walk");
        let q = query(ListParams::default());
        let all = [Branch::Own, Branch::Open, Branch::Shared];
        let Boxed::Pg(page) = merged_page_query(Db::Postgres, &q, &all, None).expect("page") else {
            panic!("built for PostgreSQL");
        };
        assert!(cached(&page), "{}", debug_query::<Pg, _>(&page));
        let merged = debug_query::<Pg, _>(&page).to_string();
        assert!(merged.contains(" LIMIT 21)") && merged.ends_with("LIMIT 21 -- binds: [\"p1\", \"dev\", \"user\", \"u1\", \"p1\", \"dev\", \"user\", \"u1\", \"p1\", \"dev\", Shares([\"u1\"]), \"user\", \"u1\"]"), "{merged}");
        let Scope::VisibleTo { owner, .. } = &q.scope else {
            panic!("a caller's listing");
        };
        let totals = totals_query(Db::Postgres, &q, owner, None, Some("u1")).expect("totals");
        let Boxed::Pg(totals) = totals else {
            panic!("built for PostgreSQL");
        };
        assert!(cached(&totals));
        let text = debug_query::<Pg, _>(&totals).to_string();
        assert!(
            text.starts_with(
                "SELECT (SELECT CAST(COALESCE(SUM(\"c\".\"n\"), 0) AS BIGINT) FROM (SELECT"
            ) && text.contains("FROM \"tenant_counts\" WHERE")
                && text.contains("FROM \"share_counts\" WHERE"),
            "{text}"
        );
        // No file_counts row per owner of open files: the open part is the
        // tenant's, the caller's part only their closed files.
        assert!(
            text.contains(r#""tenant_counts"."visibility" IN ('public', 'protected')"#)
                && text.contains(r#""file_counts"."visibility" IN ('private', 'shared')"#),
            "{text}"
        );
        // The same on SQLite, cacheable too (no bound `IN` list).
        let Boxed::Sqlite(lite) =
            totals_query(Db::Sqlite, &q, owner, None, Some("u1")).expect("totals")
        else {
            panic!("built for SQLite");
        };
        assert!(lite.is_safe_to_cache_prepared(&Sqlite).expect("walk"));
        // A filtered page is planned for its own parameters.
        let mut filtered = query(ListParams::default());
        filtered.params.mime_type = Some(MimeFilter::Prefix("image/".into()));
        let Boxed::Pg(page) = merged_page_query(Db::Postgres, &filtered, &all, None).expect("page")
        else {
            panic!("built for PostgreSQL");
        };
        assert!(!cached(&page));
        // A search keeps its LIMIT bound: planned for its pattern every call.
        let mut search = query(ListParams::default());
        search.params.search = Some("report".into());
        let text = sql(page_query(Db::Postgres, &search).expect("search"));
        assert!(text.contains(" LIMIT $"), "{text}");
    }
}

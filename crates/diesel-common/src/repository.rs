//! The repository ports ([`FileRepository`], [`ApiKeyRepository`]) on any
//! [`Backend`]: every call on a pooled connection under the query timeout,
//! each statement from [`crate::statements`] or [`crate::list`], and the
//! three writes whose transactions differ per backend delegated to it.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bb8::Pool;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use stowage_domain::auth::ApiKeyRecord;
use stowage_domain::list::{ListPage, ListQuery, Scope};
use stowage_domain::model::{
    File, FileId, Owner, OwnerType, OwnerTypeFilter, Tenant, Timestamp, Visibility,
};
use stowage_domain::ports::{
    ApiKeyRepository, Derivative, DerivativeAdded, FileRepository, QueuedDeletion,
    DERIVATIVE_RECORD_MARGIN_SECS,
};
use stowage_domain::quota::{Quota, Usage};
use stowage_domain::upload::{IssuedUpload, UploadState};
use stowage_domain::{Error, ErrorCode, Result};

use crate::conn::DbConn;
use crate::events::{record_event, ClaimedRow, EndpointRow};
use crate::list::{self, CountsQuery, SharedCountsQuery, TenantCountsQuery};
use crate::rows::{ApiKeyRow, FileRow, UploadRow};
use crate::statements as q;
use stowage_domain::events::{Event, EventCursor, StoredEvent};

/// What a backend supplies; the compiler names anything missing.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Its name in error messages (`postgres`, `sqlite`).
    const NAME: &'static str;
    /// Its connection.
    type Conn: DbConn + Send + 'static;
    /// Its pool's connection manager.
    type Manager: bb8::ManageConnection<Connection = Self::Conn, Error: std::error::Error>;

    /// Its settings.
    type Config: Sync;

    /// Opens the pool.
    ///
    /// # Errors
    /// `common/service-unavailable` when no connection can be made.
    async fn pool(config: &Self::Config) -> Result<Pool<Self::Manager>>;

    /// How to open a pool of its own for each thread that calls from a
    /// current-thread runtime (actix's workers each run one for their whole
    /// life), if the backend wants that: `None` (the default) shares
    /// [`Self::pool`] among every caller. A connection's I/O is driven by a
    /// task on the runtime that opened it: with one shared pool, a worker's
    /// statement wakes whichever thread drives its connection and is woken
    /// back, twice per round trip; with a pool per worker the round trip
    /// stays on the worker (measured: docs/performance.md, "one pool per
    /// worker"). Callers on a multi-thread runtime (background work, the
    /// CLI) share [`Self::pool`]. A thread's pool lives as long as the
    /// repository: it must not outlive the runtime it was opened on while
    /// the repository is still used.
    fn pool_per_thread(config: &Self::Config) -> Option<PoolFactory<Self::Manager>> {
        let _ = config;
        None
    }

    /// The longest any one call may take before it is `unavailable`.
    fn query_timeout(config: &Self::Config) -> Duration;

    /// Whether an error means the database is out of reach or overloaded
    /// (`common/service-unavailable`) rather than a fault (`common/internal`).
    fn unavailable(e: &DieselError) -> bool;

    /// Whether this process's writes take turns before they reach the
    /// database. SQLite has one write lock, which its connections take by
    /// polling (a busy handler that sleeps and retries): under load a writer
    /// can miss every window and fail after its busy timeout although the
    /// database was never stuck. A first-come, first-served lock in the
    /// process hands the database one writer at a time instead; readers are
    /// not held up (WAL). PostgreSQL locks rows, not the database: `false`.
    const SERIALIZE_WRITES: bool = false;

    /// Whether a call may be abandoned mid-statement at its timeout.
    /// SQLite's statements run on the blocking pool, and abandoning one
    /// blocks the abandoning thread until it ends — which panics on a
    /// current-thread runtime (actix's workers). Its statements are bounded
    /// by its busy timeout instead, so only the wait for a turn and a
    /// connection is timed out there.
    const CANCEL_SAFE: bool = true;

    /// The condition (SQL on `events`) under which an event's place in the
    /// outbox is final: no event that commits later can come before it.
    const FEED_VISIBLE: &'static str;

    /// Claims due webhook deliveries (see
    /// [`stowage_domain::ports::WebhookRepository::claim_deliveries`]): of
    /// callers claiming at once, each delivery goes to one.
    async fn claim_deliveries(
        c: &mut Self::Conn,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> std::result::Result<Vec<ClaimedRow>, TxError>;

    /// Records a derived image of file `id` ([`add_derivative_in`]) in a
    /// transaction that holds the file against concurrent deletion;
    /// [`DerivativeAdded::FileGone`] when there is no such file.
    async fn add_derivative(
        c: &mut Self::Conn,
        id: &str,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> std::result::Result<DerivativeAdded, TxError>;

    /// Adds (`add`) or removes (`remove`) a webhook endpoint so that every
    /// change committed afterwards sees the new set; rows touched.
    async fn change_endpoints(
        c: &mut Self::Conn,
        add: Option<&EndpointRow>,
        remove: Option<&str>,
    ) -> std::result::Result<usize, TxError>;

    /// Moves an upload (compare-and-set) and records `event` with the move,
    /// atomically; whether it moved.
    async fn transition_upload(
        c: &mut Self::Conn,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: &Event,
    ) -> std::result::Result<bool, TxError>;

    /// Registration (docs/api.md §4), atomically: the upload of `file.s3_key`
    /// moves to `registered` (compare-and-set: of two racing registrations
    /// one wins, the other gets `file/s3-key-already-exists`, or
    /// `file/upload-not-found` when there is no such upload), the file is
    /// recorded and counted, and `cleanup` is queued. Nothing is written
    /// unless all of it is, nor when the file would pass `quota`
    /// ([`within_quota`], decided so that racing registrations cannot
    /// together pass it). `event` is recorded with it ([`record_event`]).
    async fn register_file(
        c: &mut Self::Conn,
        file: &File,
        row: &FileRow,
        cleanup: Option<&QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> std::result::Result<(), TxError>;

    /// Writes `row` over the file if its `updated_at` is still `expected`
    /// and moves its count when its visibility changed, atomically (see
    /// [`apply_file_update`]), recording `event` if it wrote; whether it wrote.
    async fn update_file(
        c: &mut Self::Conn,
        file: &File,
        row: &FileRow,
        expected: i64,
        event: &Event,
    ) -> std::result::Result<bool, TxError>;

    /// Records issued uploads, skipping keys that exist, atomically (one
    /// commit for all); the keys written.
    async fn insert_uploads(
        c: &mut Self::Conn,
        rows: &[UploadRow],
    ) -> std::result::Result<Vec<String>, TxError>;

    /// Indexes the share list of `row` where the backend keeps an index of
    /// its own (SQLite's `file_shares`), replacing what was there.
    async fn index_shares(c: &mut Self::Conn, row: &FileRow) -> std::result::Result<(), TxError>;

    /// Deletes the file if its `updated_at` is still `expected`, uncounts
    /// it, queues its object's deletion and records `event`, atomically;
    /// the deleted row.
    async fn delete_file(
        c: &mut Self::Conn,
        tenant: &Tenant,
        id: &str,
        expected: i64,
        now: Timestamp,
        event: &Event,
    ) -> std::result::Result<Option<FileRow>, TxError>;
}

/// Error inside a repository call: a driver error or a domain decision.
#[derive(Debug)]
pub enum TxError {
    /// The database said no.
    Db(DieselError),
    /// The domain said no (a lost race, a missing upload).
    Domain(Error),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        Self::Domain(e)
    }
}

/// Maps a statement for which a duplicate means `code` (a second upload of
/// one key, a second file for one key): its unique violation becomes that
/// domain error; anything else stays a database error.
pub fn on_duplicate(code: ErrorCode) -> impl Fn(DieselError) -> TxError {
    move |e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            TxError::Domain(Error::new(code))
        }
        other => TxError::Db(other),
    }
}

/// Why the upload of `file.s3_key` could not be claimed: it is already
/// registered (`file/s3-key-already-exists`), or there is no such upload.
///
/// # Errors
/// The database's, when it cannot tell.
pub async fn unclaimed<C: DbConn>(c: &mut C, file: &File) -> std::result::Result<Error, TxError> {
    let taken = first(c.load_rows(q::key_registered(&file.s3_key)).await?).unwrap_or(false)
        || first(c.load_rows(q::upload_registered(&file.s3_key)).await?).unwrap_or(false);
    Ok(Error::new(if taken {
        ErrorCode::S3KeyAlreadyExists
    } else {
        ErrorCode::UploadNotFound
    }))
}

/// Writes the mutable fields of `row` (inside the caller's transaction) if
/// the stored `updated_at` is still `expected` (compare-and-set), moves its
/// count when the visibility changed from `old`, and records `event`; `None` (no such row) is
/// `file/not-found`. Returns whether it wrote. The caller reads `old` with
/// the locking its backend needs.
///
/// # Errors
/// `file/not-found`, or the database's.
pub async fn apply_file_update<C: DbConn>(
    c: &mut C,
    row: &FileRow,
    old: Option<String>,
    expected: i64,
    event: &Event,
) -> std::result::Result<bool, TxError> {
    let Some(old) = old else {
        return Err(TxError::Domain(Error::new(ErrorCode::FileNotFound)));
    };
    if c.execute_statement(q::update_file_if(row, expected))
        .await?
        != 1
    {
        return Ok(false);
    }
    if old != row.visibility {
        // Count rows are taken in key order, so that two updates moving
        // files of one owner in opposite directions cannot deadlock.
        let mut moves = [(old.as_str(), -1), (row.visibility.as_str(), 1)];
        moves.sort_unstable();
        for (visibility, delta) in moves {
            c.execute_statement(q::bump_count(row, visibility, delta))
                .await?;
        }
    }
    record_event(c, event).await?;
    Ok(true)
}

/// Deletes the file `id` if its `updated_at` is still `expected` (inside the
/// caller's transaction), uncounts it, queues its object's deletion and
/// records `event`; the deleted row.
///
/// # Errors
/// The database's.
pub async fn delete_counted<C: DbConn>(
    c: &mut C,
    tenant: &Tenant,
    id: &str,
    expected: i64,
    now: Timestamp,
    event: &Event,
) -> std::result::Result<Option<FileRow>, TxError> {
    let Some(row) = first(c.load_rows(q::delete_file(tenant, id, expected)).await?) else {
        return Ok(None);
    };
    record_event(c, event).await?;
    c.execute_statement(q::bump_count(&row, &row.visibility, -1))
        .await?;
    let queued = QueuedDeletion {
        key: row.s3_key.clone(),
        due: now,
    };
    c.execute_statement(q::queue_deletion(&queued)).await?;
    // Its derived images go with it (docs/api.md §9). A derived image being
    // recorded at this moment either committed first (its row is seen here)
    // or finds the file gone ([`add_derivative_in`]).
    let derived = c.load_rows(q::derivative_keys(&row.id)).await?;
    if !derived.is_empty() {
        for key in derived {
            c.execute_statement(q::queue_deletion(&QueuedDeletion { key, due: now }))
                .await?;
        }
        c.execute_statement(q::forget_derivatives(&row.id)).await?;
    }
    Ok(Some(row))
}

/// Records a derived image of file `id` inside the caller's transaction,
/// once the caller has made sure the file exists and holds it against
/// concurrent deletion (a row lock, or SQLite's single writer).
///
/// # Errors
/// The database's.
pub async fn add_derivative_in<C: DbConn>(
    c: &mut C,
    id: &str,
    derivative: &Derivative,
    max: u32,
    now: Timestamp,
) -> std::result::Result<DerivativeAdded, TxError> {
    let held = first(c.load_rows(q::count_derivatives(id)).await?).unwrap_or(0);
    if held >= i64::from(max) {
        let recorded = first(
            c.load_rows(q::find_derivative(id, &derivative.variant))
                .await?,
        );
        return Ok(if recorded.is_some() {
            DerivativeAdded::Exists
        } else {
            DerivativeAdded::LimitReached
        });
    }
    // The caller's intent (the key queued for deletion) must hold long
    // enough that no deletion of the object can be under way; it is held
    // until the transaction ends and goes only when the row is recorded.
    let horizon = now.plus_secs(DERIVATIVE_RECORD_MARGIN_SECS);
    let claimed = c
        .execute_statement(q::hold_deletion_due_after(&derivative.key, horizon))
        .await?;
    if claimed == 0 {
        return Ok(DerivativeAdded::Unclaimed);
    }
    let size = i64::try_from(derivative.size).unwrap_or(i64::MAX);
    let written = c
        .execute_statement(q::insert_derivative(
            id,
            &derivative.variant,
            &derivative.key,
            size,
            now.millis(),
        ))
        .await?;
    if written == 0 {
        return Ok(DerivativeAdded::Exists);
    }
    c.execute_statement(q::finish_deletion(&derivative.key))
        .await?;
    Ok(DerivativeAdded::Added)
}

/// What `owner` (every owner with `None`) holds in `tenant`.
///
/// # Errors
/// The database's.
pub async fn usage_of<C: DbConn>(
    c: &mut C,
    tenant: &Tenant,
    owner: Option<&Owner>,
) -> std::result::Result<Usage, TxError> {
    let totals = match owner {
        Some(o) => first(c.load_rows(q::owner_usage(tenant, o)).await?),
        None => first(c.load_rows(q::tenant_usage(tenant)).await?),
    };
    let (files, bytes) = totals.unwrap_or((0, 0));
    Ok(Usage {
        files: u64::try_from(files).unwrap_or(0),
        bytes: u64::try_from(bytes).unwrap_or(0),
    })
}

/// `file/quota-exceeded` (as a domain error) when `file` would take its
/// owner or its project past `quota`, read inside the caller's transaction;
/// the caller makes the read and the insert after it atomic.
///
/// # Errors
/// `file/quota-exceeded`, or the database's.
pub async fn within_quota<C: DbConn>(
    c: &mut C,
    file: &File,
    quota: &Quota,
) -> std::result::Result<(), TxError> {
    if !quota.is_set() {
        return Ok(());
    }
    let user = match file.owner.kind {
        OwnerType::User if quota.user.is_set() => {
            Some(usage_of(c, &file.tenant, Some(&file.owner)).await?)
        }
        _ => None,
    };
    let project = if quota.project.is_set() {
        usage_of(c, &file.tenant, None).await?
    } else {
        Usage::default()
    };
    match quota.exceeded(user, project, Usage::one_file(file.size)) {
        Some(e) => Err(TxError::Domain(e)),
        None => Ok(()),
    }
}

/// The first row, if any.
pub fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// Opens a pool on the calling thread's runtime ([`Backend::pool_per_thread`]).
pub type PoolFactory<M> = Arc<dyn Fn() -> Pool<M> + Send + Sync>;

/// Whether the caller runs on a current-thread runtime (an actix worker).
fn on_current_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// The pools of a thread each ([`Backend::pool_per_thread`]).
struct ThreadPools<M: bb8::ManageConnection> {
    open: PoolFactory<M>,
    pools: thread_local::ThreadLocal<Pool<M>>,
}

/// The repositories on backend `B`: a pool of its connections, each call
/// under a timeout that surfaces as `common/service-unavailable`.
pub struct DieselRepository<B: Backend> {
    pool: Pool<B::Manager>,
    per_thread: Option<Arc<ThreadPools<B::Manager>>>,
    query_timeout: Duration,
    /// Taken by every write when [`Backend::SERIALIZE_WRITES`] (tokio's mutex
    /// is fair: writers go in the order they came).
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Issued uploads waiting to be written together.
    issued: Arc<IssuedBatch>,
    backend: PhantomData<B>,
}

/// Issued uploads on their way to the database. Each presign waits for its
/// own row to be committed, but the rows that arrive while one batch is
/// being written go together in the next: one commit (on PostgreSQL one
/// statement) for all of them (docs/decisions.md 56).
#[derive(Default)]
struct IssuedBatch {
    queue: std::sync::Mutex<IssuedQueue>,
}

/// Most issued uploads written by one statement: well under PostgreSQL's
/// 65,535 bind parameters (16 per row), and a bounded transaction on SQLite.
const MAX_ISSUED_BATCH: usize = 1_000;

/// Rows waiting to be written, and whether a writer is at work.
#[derive(Default)]
struct IssuedQueue {
    rows: Vec<(UploadRow, tokio::sync::oneshot::Sender<Result<()>>)>,
    writing: bool,
}

impl IssuedBatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, IssuedQueue> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lets the next issue start a writer if this one ends abnormally (a
/// panic, its runtime shutting down) instead of seeing the queue empty.
struct WriterDone {
    batch: Arc<IssuedBatch>,
    finished: bool,
}

impl Drop for WriterDone {
    fn drop(&mut self) {
        if !self.finished {
            self.batch.lock().writing = false;
        }
    }
}

impl<B: Backend> Clone for DieselRepository<B> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            per_thread: self.per_thread.clone(),
            query_timeout: self.query_timeout,
            writer: Arc::clone(&self.writer),
            issued: Arc::clone(&self.issued),
            backend: PhantomData,
        }
    }
}

impl<B: Backend> DieselRepository<B> {
    /// Opens the pool (after the backend's migrations have run).
    ///
    /// # Errors
    /// `common/service-unavailable` when no connection can be made.
    pub async fn connect(config: &B::Config) -> Result<Self> {
        Ok(Self {
            pool: B::pool(config).await?,
            per_thread: B::pool_per_thread(config).map(|open| {
                Arc::new(ThreadPools {
                    open,
                    pools: thread_local::ThreadLocal::new(),
                })
            }),
            query_timeout: B::query_timeout(config),
            writer: Arc::default(),
            issued: Arc::default(),
            backend: PhantomData,
        })
    }

    /// Maps a database error met while doing `op`.
    fn db_error(op: &'static str, e: DieselError) -> Error {
        let name = B::NAME;
        match &e {
            // Statements that expect a duplicate say what it means (`on_duplicate`).
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Error::internal(format!(
                    "{name}: {op}: unexpected duplicate: {}",
                    info.message()
                ))
            }
            e if B::unavailable(e) => Error::unavailable(format!("{name}: {op}: {e}")),
            e => Error::internal(format!("{name}: {op}: {e}")),
        }
    }

    /// Runs `f` (the work of `op`) on a pooled connection under the query
    /// timeout; a database error is mapped naming `op`.
    pub(crate) async fn run<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: for<'c> AsyncFnOnce(&'c mut B::Conn) -> std::result::Result<T, TxError>,
    {
        self.run_as(false, op, f).await
    }

    /// [`Self::run`] for work that writes: it waits its turn first when the
    /// backend serializes writes (the wait counts toward the query timeout).
    pub(crate) async fn run_write<T, F>(&self, op: &'static str, f: F) -> Result<T>
    where
        F: for<'c> AsyncFnOnce(&'c mut B::Conn) -> std::result::Result<T, TxError>,
    {
        self.run_as(B::SERIALIZE_WRITES, op, f).await
    }

    async fn run_as<T, F>(&self, serialize: bool, op: &'static str, f: F) -> Result<T>
    where
        F: for<'c> AsyncFnOnce(&'c mut B::Conn) -> std::result::Result<T, TxError>,
    {
        let started = tokio::time::Instant::now();
        let timed_out = || Error::unavailable(format!("{}: {op}: query timed out", B::NAME));
        // Waiting for a turn and a connection is always bounded.
        let acquire = async {
            let turn = if serialize {
                Some(self.writer.lock().await)
            } else {
                None
            };
            let pool = match &self.per_thread {
                Some(t) if on_current_thread_runtime() => t.pools.get_or(|| (t.open)()),
                _ => &self.pool,
            };
            let conn = pool
                .get()
                .await
                .map_err(|e| Error::unavailable(format!("{} pool: {op}: {e}", B::NAME)))?;
            Ok::<_, Error>((turn, conn))
        };
        let (_turn, mut conn) = tokio::time::timeout(self.query_timeout, acquire)
            .await
            .map_err(|_| timed_out())??;
        let work = async {
            f(&mut conn).await.map_err(|e| match e {
                TxError::Db(e) => Self::db_error(op, e),
                TxError::Domain(e) => e,
            })
        };
        if !B::CANCEL_SAFE {
            // Bounded by the backend itself (SQLite's busy timeout).
            return work.await;
        }
        let left = self.query_timeout.saturating_sub(started.elapsed());
        tokio::time::timeout(left, work)
            .await
            .map_err(|_| timed_out())?
    }

    /// The one writer of issued uploads: writes what is queued, batch after
    /// batch, until the queue is empty, and tells each caller its outcome.
    async fn write_issued(&self) {
        let mut done = WriterDone {
            batch: Arc::clone(&self.issued),
            finished: false,
        };
        loop {
            let batch = {
                let mut queue = self.issued.lock();
                if queue.rows.is_empty() {
                    queue.writing = false;
                    done.finished = true;
                    return;
                }
                let n = queue.rows.len().min(MAX_ISSUED_BATCH);
                queue.rows.drain(..n).collect::<Vec<_>>()
            };
            self.write_issued_batch(batch).await;
        }
    }

    async fn write_issued_batch(
        &self,
        batch: Vec<(UploadRow, tokio::sync::oneshot::Sender<Result<()>>)>,
    ) {
        // A key twice in one batch: the first is written, the others are
        // duplicates (the statement would skip them silently).
        let mut keys = std::collections::HashSet::new();
        let mut rows = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for (row, done) in batch {
            if keys.insert(row.s3_key.clone()) {
                rows.push(row);
                waiting.push(done);
            } else {
                let _ = done.send(Err(Error::new(ErrorCode::S3KeyAlreadyExists)));
            }
        }
        let written = self
            .run_write("insert uploads", async |c| {
                B::insert_uploads(c, &rows).await
            })
            .await
            .map(|keys| {
                keys.into_iter()
                    .collect::<std::collections::HashSet<String>>()
            });
        for (row, done) in rows.iter().zip(waiting) {
            let _ = done.send(match &written {
                Ok(keys) if keys.contains(&row.s3_key) => Ok(()),
                Ok(_) => Err(Error::new(ErrorCode::S3KeyAlreadyExists)),
                Err(e) => Err(e.clone()),
            });
        }
    }

    /// The total of a listing from the maintained counts, without counting
    /// rows; `None` when a filter (bucket, MIME type, search) needs an exact
    /// count. Sets `shared` to the count of files shared with the caller
    /// when it was taken.
    async fn counted_total(
        c: &mut B::Conn,
        query: &ListQuery,
        shared: &mut Option<i64>,
    ) -> std::result::Result<Option<i64>, TxError> {
        let p = &query.params;
        if p.bucket.is_some() || p.mime_type.is_some() || p.search.is_some() {
            return Ok(None);
        }
        let Some(owner_type) = owner_type_filter(p.owner_type) else {
            return Ok(Some(0));
        };
        let db = <B::Conn as DbConn>::DB;
        Ok(Some(match &query.scope {
            // Every file of the tenant: a few rows of `tenant_counts`, or
            // one owner's rows of `file_counts`.
            Scope::All if p.owner_id.is_none() => {
                c.sum_tenant(TenantCountsQuery::of_listing(db, query, owner_type))
                    .await?
            }
            Scope::All => {
                c.sum_counts(CountsQuery::of_listing(db, query, owner_type))
                    .await?
            }
            Scope::VisibleTo { owner, user_id } => {
                // Open files of anyone, the caller's own closed ones and the
                // files shared with the caller, in one statement.
                let shared_visible = p.visibility.is_none_or(|v| v == Visibility::Shared);
                let uid = user_id.as_deref().filter(|_| shared_visible);
                let (total, n) = c
                    .load_totals(list::totals_query(db, query, owner, owner_type, uid)?)
                    .await?;
                if uid.is_some() {
                    *shared = Some(n);
                }
                total + n
            }
        }))
    }
}

/// How many files are shared with the caller: counted for this page, or
/// for the listing's first page (the cursor's hint).
fn shared_known(counted: Option<i64>, query: &ListQuery) -> Option<u64> {
    counted.and_then(|n| u64::try_from(n).ok()).or(query
        .params
        .cursor
        .as_ref()
        .and_then(|c| c.shared))
}

/// The `owner_type` column value a listing's filter asks for (`Some(None)`:
/// any); `None` when the filter matches no stored owner type.
fn owner_type_filter(filter: Option<OwnerTypeFilter>) -> Option<Option<&'static str>> {
    match filter {
        None => Some(None),
        Some(OwnerTypeFilter::User) => Some(Some("user")),
        Some(OwnerTypeFilter::Service) => Some(Some("service")),
        Some(OwnerTypeFilter::Session | OwnerTypeFilter::Public) => None,
    }
}

#[async_trait]
impl<B: Backend> FileRepository for DieselRepository<B> {
    async fn insert_upload(&self, upload: &IssuedUpload) -> Result<()> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        let start_writer = {
            let mut queue = self.issued.lock();
            queue.rows.push((UploadRow::from(upload), done));
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            // A task of its own, so that a caller who goes away while its
            // batch is written does not take the other rows with it.
            let repo = self.clone();
            tokio::spawn(async move { repo.write_issued().await });
        }
        outcome
            .await
            .map_err(|_| Error::internal("an issued upload's batch was lost"))?
    }

    async fn find_upload(&self, tenant: &Tenant, key: &str) -> Result<Option<IssuedUpload>> {
        let row = self
            .run("find upload", async |c| {
                Ok(first(c.load_rows(q::find_upload(tenant, key)).await?))
            })
            .await?;
        row.map(IssuedUpload::try_from).transpose()
    }

    async fn claim_for_registration(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<IssuedUpload>> {
        let row = self
            .run_write("claim upload", async |c| {
                Ok(first(
                    c.load_rows(q::claim_for_registration(tenant, key)).await?,
                ))
            })
            .await?;
        // `RETURNING` gives the new state, which is known: the state it
        // was claimed from is put back.
        row.map(|r| {
            let mut upload = IssuedUpload::try_from(r)?;
            upload.state = if upload.multipart_id.is_some() {
                UploadState::Completed
            } else {
                UploadState::Pending
            };
            Ok(upload)
        })
        .transpose()
    }

    async fn transition_upload<'a>(
        &self,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: Option<&'a Event>,
    ) -> Result<bool> {
        self.run_write("move upload", async |c| match event {
            Some(event) => B::transition_upload(c, tenant, key, from, to, event).await,
            None => Ok(c
                .execute_statement(q::transition_upload(tenant, key, from, to))
                .await?
                == 1),
        })
        .await
    }

    async fn abandoned_uploads(
        &self,
        issued_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<IssuedUpload>> {
        let rows = self
            .run("find abandoned uploads", async |c| {
                Ok(c.load_rows(q::abandoned_uploads(issued_before, now, limit))
                    .await?)
            })
            .await?;
        rows.into_iter().map(IssuedUpload::try_from).collect()
    }

    async fn enqueue_object_deletion(&self, key: &str, due: Timestamp) -> Result<()> {
        let queued = QueuedDeletion {
            key: key.to_owned(),
            due,
        };
        self.run_write("queue object deletion", async |c| {
            c.execute_statement(q::queue_deletion(&queued)).await?;
            Ok(())
        })
        .await
    }

    async fn finish_object_deletion(&self, key: &str) -> Result<()> {
        self.run_write("finish object deletion", async |c| {
            c.execute_statement(q::finish_deletion(key)).await?;
            Ok(())
        })
        .await
    }

    async fn due_object_deletions(&self, now: Timestamp, limit: u32) -> Result<Vec<String>> {
        self.run("find due object deletions", async |c| {
            Ok(c.load_rows(q::due_deletions(now, limit)).await?)
        })
        .await
    }

    async fn defer_object_deletion(&self, key: &str, next_attempt: Timestamp) -> Result<()> {
        self.run_write("defer object deletion", async |c| {
            c.execute_statement(q::defer_deletion(key, next_attempt))
                .await?;
            Ok(())
        })
        .await
    }

    async fn health_check(&self) -> Result<()> {
        self.run("health check", async |c| {
            c.load_rows(q::ping()).await?;
            Ok(())
        })
        .await
    }

    async fn register_file<'a>(
        &self,
        file: &File,
        cleanup: Option<&'a QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> Result<()> {
        let row = FileRow::from_file(file)?;
        self.run_write("register file", async |c| {
            B::register_file(c, file, &row, cleanup, quota, event).await
        })
        .await
    }

    async fn usage<'a>(&self, tenant: &Tenant, owner: Option<&'a Owner>) -> Result<Usage> {
        self.run("read usage", async |c| usage_of(c, tenant, owner).await)
            .await
    }

    async fn get_file(&self, tenant: &Tenant, id: FileId) -> Result<Option<File>> {
        let id = id.to_string();
        let row = self
            .run("get file", async |c| {
                Ok(first(c.load_rows(q::find_file(tenant, &id)).await?))
            })
            .await?;
        row.map(File::try_from).transpose()
    }

    async fn find_file_by_key(&self, tenant: &Tenant, key: &str) -> Result<Option<File>> {
        let row = self
            .run("find file by key", async |c| {
                Ok(first(c.load_rows(q::find_file_by_key(tenant, key)).await?))
            })
            .await?;
        row.map(File::try_from).transpose()
    }

    async fn update_file(
        &self,
        file: &File,
        expected_updated_at: Timestamp,
        event: &Event,
    ) -> Result<bool> {
        let row = FileRow::from_file(file)?;
        self.run_write("update file", async |c| {
            B::update_file(c, file, &row, expected_updated_at.millis(), event).await
        })
        .await
    }

    async fn instance_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        let value = hex::encode(candidate);
        let stored = self
            .run_write("read instance secret", async |c| {
                c.execute_statement(q::offer_secret(name, &value)).await?;
                first(c.load_rows(q::secret(name)).await?).ok_or_else(|| {
                    TxError::Domain(Error::internal(format!("secret `{name}` vanished")))
                })
            })
            .await?;
        hex::decode(stored)
            .map_err(|_| Error::internal(format!("stored secret `{name}` is not hex")))
    }

    async fn delete_file(
        &self,
        file: &File,
        now: Timestamp,
        event: &Event,
    ) -> Result<Option<File>> {
        let id = file.id.to_string();
        let expected = file.updated_at.millis();
        let row = self
            .run_write("delete file", async |c| {
                B::delete_file(c, &file.tenant, &id, expected, now, event).await
            })
            .await?;
        row.map(File::try_from).transpose()
    }

    async fn events_after(&self, after: EventCursor, limit: u32) -> Result<Vec<StoredEvent>> {
        self.read_events(after, limit).await
    }

    async fn find_derivative(&self, file: FileId, variant: &str) -> Result<Option<Derivative>> {
        let id = file.to_string();
        let row = self
            .run("find derivative", async |c| {
                Ok(first(c.load_rows(q::find_derivative(&id, variant)).await?))
            })
            .await?;
        Ok(row.map(|(key, size)| Derivative {
            variant: variant.to_owned(),
            key,
            size: u64::try_from(size).unwrap_or(0),
        }))
    }

    async fn derivative_count(&self, file: FileId) -> Result<Option<u32>> {
        let id = file.to_string();
        let n = self
            .run("count derivatives", async |c| {
                Ok(first(c.load_rows(q::count_derivatives(&id)).await?).unwrap_or(0))
            })
            .await?;
        Ok(Some(u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn add_derivative(
        &self,
        file: FileId,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> Result<DerivativeAdded> {
        let id = file.to_string();
        self.run_write("add derivative", async |c| {
            B::add_derivative(c, &id, derivative, max, now).await
        })
        .await
    }

    async fn last_event(&self) -> Result<Option<EventCursor>> {
        self.read_last_event().await
    }

    async fn list_files(&self, query: &ListQuery) -> Result<ListPage> {
        let rows = self
            .run("list files", async |c| {
                // A cursor carries the total counted for its first page, so
                // pages after it cost O(limit) at any depth.
                let mut shared = None;
                let total = match query.params.cursor.as_ref().and_then(|c| c.total) {
                    Some(t) => i64::try_from(t).unwrap_or(i64::MAX),
                    None => match Self::counted_total(c, query, &mut shared).await? {
                        Some(t) => t,
                        None => {
                            c.count_files(list::filtered(<B::Conn as DbConn>::DB, query))
                                .await?
                        }
                    },
                };
                let (rows, merged) = match list::branches(query) {
                    None => (
                        c.load_files(list::page_query(<B::Conn as DbConn>::DB, query)?)
                            .await?,
                        false,
                    ),
                    Some(branches) => {
                        // Each branch is an ordered index scan of its own,
                        // bounded by the page; merged below in the same order.
                        // The files shared with the caller are counted (a sum
                        // of maintained counts) when neither this page nor
                        // its cursor knows how many there are, and when the
                        // cursor says there were none: a file may have been
                        // shared since.
                        let cursor_says_empty =
                            query.params.cursor.as_ref().is_some_and(|c| c.shared_empty);
                        let unknown = shared_known(shared, query).is_none()
                            && branches.contains(&list::Branch::Shared);
                        if let (
                            true,
                            Scope::VisibleTo {
                                owner,
                                user_id: Some(uid),
                            },
                        ) = (cursor_says_empty || unknown, &query.scope)
                        {
                            if let Some(owner_type) = owner_type_filter(query.params.owner_type) {
                                shared = Some(
                                    c.sum_shared(SharedCountsQuery::of_listing(
                                        <B::Conn as DbConn>::DB,
                                        query,
                                        owner,
                                        uid,
                                        owner_type,
                                    ))
                                    .await?,
                                );
                            }
                        }
                        // A branch counted empty for this very page is not
                        // read: an empty branch walks its whole sort index.
                        let empty =
                            |b: &list::Branch| *b == list::Branch::Shared && shared == Some(0);
                        let branches: Vec<_> = branches.into_iter().filter(|b| !empty(b)).collect();
                        // How many are shared with the caller: counted for
                        // this page, or for the listing's first page.
                        let hint = shared_known(shared, query);
                        let db = <B::Conn as DbConn>::DB;
                        match branches.as_slice() {
                            [branch] => (
                                c.load_files(list::branch_page_query(db, query, *branch, hint)?)
                                    .await?,
                                true,
                            ),
                            _ => (
                                c.load_merged(list::merged_page_query(db, query, &branches, hint)?)
                                    .await?,
                                false,
                            ),
                        }
                    }
                };
                let counted = shared_known(shared, query);
                Ok((total, rows, merged, shared == Some(0), counted))
            })
            .await?;
        let (total, rows, merged, shared_empty, shared_count) = rows;
        let files = rows
            .into_iter()
            .map(File::try_from)
            .collect::<Result<Vec<_>>>()?;
        let mut items = if merged {
            stowage_domain::list::merge_branches(files, &query.params)
        } else {
            files
        };
        let limit = query.params.limit as usize;
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(ListPage {
            items,
            total: u64::try_from(total).unwrap_or(0),
            has_more,
            shared_empty,
            shared_count,
        })
    }
}

#[async_trait]
impl<B: Backend> ApiKeyRepository for DieselRepository<B> {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let row = ApiKeyRow::from(key);
        self.run_write("insert API key", async |c| {
            c.execute_statement(q::insert_key(&row)).await?;
            Ok(())
        })
        .await
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = self
            .run("find API key", async |c| {
                Ok(first(c.load_rows(q::find_key(key_hash)).await?))
            })
            .await?;
        row.map(ApiKeyRecord::try_from).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = self
            .run("list API keys", async |c| {
                Ok(c.load_rows(q::all_keys()).await?)
            })
            .await?;
        rows.into_iter().map(ApiKeyRecord::try_from).collect()
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        self.run_write("revoke API key", async |c| {
            Ok(c.execute_statement(q::revoke_key(id, at)).await? == 1)
        })
        .await
    }
}

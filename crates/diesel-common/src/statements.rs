//! Every fixed statement both backends run, one builder each. A builder
//! returns `impl Statement` or `impl Rows<…>`: the compiler proves the query
//! for PostgreSQL and SQLite where it is written ([`crate::conn`]), and its
//! fixed shape lets each connection prepare it once and reuse it.

use diesel::dsl::exists;
use diesel::{BoolExpressionMethods, ExpressionMethods, IntoSql, QueryDsl};
use stowage_domain::model::{Owner, Tenant, Timestamp};
use stowage_domain::ports::QueuedDeletion;
use stowage_domain::upload::UploadState;

use crate::conn::{Prepared, Rows, Statement};
use crate::rows::{columns, ApiKeyRow, DeletionRow, FileRow, SecretRow, UploadRow};
use crate::schema::{
    api_keys, derivatives, file_counts, files, instance_secrets, object_deletions, tenant_counts,
    uploads,
};

/// `SELECT 1`: is the database there.
pub fn ping() -> impl for<'q> Rows<'q, i32> {
    diesel::select(1.into_sql::<diesel::sql_types::Integer>())
}

/// Records an issued upload unless its key exists; rows written (0 or 1).
pub fn insert_upload_once(row: &UploadRow) -> impl Statement + '_ {
    diesel::insert_into(uploads::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// The upload of `key` in `tenant`: the filter every upload statement starts from.
#[diesel::dsl::auto_type]
fn upload_of<'a>(tenant: &'a Tenant, key: &'a str) -> _ {
    let project: &'a str = tenant.project.as_str();
    let env: &'a str = tenant.env.as_str();
    uploads::table
        .filter(uploads::s3_key.eq(key))
        .filter(uploads::project.eq(project))
        .filter(uploads::env.eq(env))
}

/// The upload of `key` in `tenant`.
pub fn find_upload<'a>(tenant: &'a Tenant, key: &'a str) -> impl Rows<'a, UploadRow> {
    upload_of(tenant, key).select(columns::<UploadRow>())
}

/// Moves the upload of `key` to `registering` if it is ready to register
/// (a single PUT still pending, or a completed multipart upload), returning
/// the row as it is now.
pub fn claim_for_registration<'a>(tenant: &'a Tenant, key: &'a str) -> impl Rows<'a, UploadRow> {
    Prepared(
        diesel::update(
            upload_of(tenant, key).filter(
                uploads::state
                    .eq(UploadState::Pending.as_str())
                    .and(uploads::multipart_id.is_null())
                    .or(uploads::state
                        .eq(UploadState::Completed.as_str())
                        .and(uploads::multipart_id.is_not_null())),
            ),
        )
        .set(uploads::state.eq(UploadState::Registering.as_str()))
        .returning(columns::<UploadRow>()),
    )
}

/// Moves the upload of `key` from `from` to `to` (compare-and-set).
pub fn transition_upload<'a>(
    tenant: &'a Tenant,
    key: &'a str,
    from: UploadState,
    to: UploadState,
) -> impl Statement + 'a {
    diesel::update(upload_of(tenant, key).filter(uploads::state.eq(from.as_str())))
        .set(uploads::state.eq(to.as_str()))
}

/// The final claim of registration, inside its transaction: the upload of
/// `key` moves to `registered` from any state registration may start from
/// (compare-and-set, so of two racing registrations one wins).
pub fn claim_upload<'a>(tenant: &'a Tenant, key: &'a str) -> impl Statement + 'a {
    Prepared(
        diesel::update(upload_of(tenant, key).filter(uploads::state.eq_any([
            UploadState::Pending.as_str(),
            UploadState::Completed.as_str(),
            UploadState::Registering.as_str(),
        ])))
        .set(uploads::state.eq(UploadState::Registered.as_str())),
    )
}

/// Uploads nobody will finish, oldest first: single PUTs and completed
/// multipart uploads never registered since `issued_before`, multipart
/// uploads past their expiry, and uploads stuck mid-completion or
/// mid-registration since `issued_before`.
pub fn abandoned_uploads(
    issued_before: Timestamp,
    now: Timestamp,
    limit: u32,
) -> impl for<'q> Rows<'q, UploadRow> {
    let pending = UploadState::Pending.as_str();
    let completed = UploadState::Completed.as_str();
    let stuck = uploads::state
        .eq_any([
            UploadState::Completing.as_str(),
            UploadState::Registering.as_str(),
        ])
        .and(uploads::created_at.lt(issued_before.millis()));
    let stale_single = uploads::state
        .eq(pending)
        .and(uploads::multipart_id.is_null())
        .and(uploads::created_at.lt(issued_before.millis()));
    let stale_completed = uploads::state
        .eq(completed)
        .and(uploads::multipart_id.is_not_null())
        .and(uploads::created_at.lt(issued_before.millis()));
    let expired_multipart = uploads::state
        .eq(pending)
        .and(uploads::multipart_id.is_not_null())
        .and(uploads::expires_at.le(now.millis()));
    uploads::table
        .filter(uploads::state.eq_any([
            pending,
            completed,
            UploadState::Completing.as_str(),
            UploadState::Registering.as_str(),
        ]))
        .filter(
            stale_single
                .or(stale_completed)
                .or(expired_multipart)
                .or(stuck),
        )
        .order_by((uploads::created_at.asc(), uploads::s3_key.asc()))
        .limit(i64::from(limit))
        .select(columns::<UploadRow>())
}

/// Whether a file holds `key`.
pub fn key_registered(key: &str) -> impl Rows<'_, bool> {
    diesel::select(exists(files::table.filter(files::s3_key.eq(key))))
}

/// Whether the upload of `key` is already registered.
pub fn upload_registered(key: &str) -> impl Rows<'_, bool> {
    diesel::select(exists(
        uploads::table
            .filter(uploads::s3_key.eq(key))
            .filter(uploads::state.eq(UploadState::Registered.as_str())),
    ))
}

/// Queues the deletion of an object (a key already queued keeps its place).
pub fn queue_deletion(q: &QueuedDeletion) -> impl Statement + '_ {
    diesel::insert_into(object_deletions::table)
        .values((
            object_deletions::s3_key.eq(&q.key),
            object_deletions::next_attempt_at.eq(q.due.millis()),
            object_deletions::created_at.eq(q.due.millis()),
        ))
        .on_conflict_do_nothing()
}

/// Holds a queued deletion whose next attempt is after `after` (a row lock
/// on PostgreSQL); 1 when it is queued so, 0 otherwise.
pub fn hold_deletion_due_after(key: &str, after: Timestamp) -> impl Statement + '_ {
    diesel::update(
        object_deletions::table
            .filter(object_deletions::s3_key.eq(key))
            .filter(object_deletions::next_attempt_at.gt(after.millis())),
    )
    .set(object_deletions::next_attempt_at.eq(object_deletions::next_attempt_at))
}

/// Takes a deleted object off the queue.
pub fn finish_deletion(key: &str) -> impl Statement + '_ {
    diesel::delete(object_deletions::table.filter(object_deletions::s3_key.eq(key)))
}

/// Object deletions due at `now`, earliest first.
pub fn due_deletions(now: Timestamp, limit: u32) -> impl for<'q> Rows<'q, String> {
    object_deletions::table
        .filter(object_deletions::next_attempt_at.le(now.millis()))
        .order_by((
            object_deletions::next_attempt_at.asc(),
            object_deletions::s3_key.asc(),
        ))
        .limit(i64::from(limit))
        .select(object_deletions::s3_key)
}

/// Puts a failed object deletion back for `next_attempt`.
pub fn defer_deletion(key: &str, next_attempt: Timestamp) -> impl Statement + '_ {
    diesel::update(object_deletions::table.filter(object_deletions::s3_key.eq(key))).set((
        object_deletions::next_attempt_at.eq(next_attempt.millis()),
        object_deletions::attempts.eq(object_deletions::attempts + 1),
    ))
}

/// Records a file.
pub fn insert_file(row: &FileRow) -> impl Statement + '_ {
    diesel::insert_into(files::table).values(row)
}

/// The file `id` in `tenant`.
pub fn find_file<'a>(tenant: &'a Tenant, id: &'a str) -> impl Rows<'a, FileRow> {
    files::table
        .filter(files::id.eq(id))
        .filter(files::project.eq(tenant.project.as_str()))
        .filter(files::env.eq(tenant.env.as_str()))
        .select(columns::<FileRow>())
}

/// The file holding `key` in `tenant`.
pub fn find_file_by_key<'a>(tenant: &'a Tenant, key: &'a str) -> impl Rows<'a, FileRow> {
    files::table
        .filter(files::s3_key.eq(key))
        .filter(files::project.eq(tenant.project.as_str()))
        .filter(files::env.eq(tenant.env.as_str()))
        .select(columns::<FileRow>())
}

/// Whether file `id` exists (in any tenant: ids are unique).
pub fn file_exists(id: &str) -> impl Rows<'_, bool> {
    diesel::select(exists(files::table.filter(files::id.eq(id))))
}

/// The derived image `variant` of file `id`: its key and size.
pub fn find_derivative<'a>(id: &'a str, variant: &'a str) -> impl Rows<'a, (String, i64)> {
    derivatives::table
        .filter(derivatives::file_id.eq(id))
        .filter(derivatives::variant.eq(variant))
        .select((derivatives::s3_key, derivatives::size))
}

/// How many derived images file `id` has.
pub fn count_derivatives(id: &str) -> impl Rows<'_, i64> {
    derivatives::table
        .filter(derivatives::file_id.eq(id))
        .count()
}

/// Records a derived image (nothing when the variant is already recorded).
pub fn insert_derivative<'a>(
    id: &'a str,
    variant: &'a str,
    key: &'a str,
    size: i64,
    now: i64,
) -> impl Statement + 'a {
    diesel::insert_into(derivatives::table)
        .values((
            derivatives::file_id.eq(id),
            derivatives::variant.eq(variant),
            derivatives::s3_key.eq(key),
            derivatives::size.eq(size),
            derivatives::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
}

/// The keys of file `id`'s derived images.
pub fn derivative_keys(id: &str) -> impl Rows<'_, String> {
    derivatives::table
        .filter(derivatives::file_id.eq(id))
        .select(derivatives::s3_key)
}

/// Forgets file `id`'s derived images.
pub fn forget_derivatives(id: &str) -> impl Statement + '_ {
    diesel::delete(derivatives::table.filter(derivatives::file_id.eq(id)))
}

/// Writes the mutable fields of `row` if its stored `updated_at` is still
/// `expected` (compare-and-set).
pub fn update_file_if(row: &FileRow, expected: i64) -> impl Statement + '_ {
    Prepared(
        diesel::update(
            files::table
                .filter(files::id.eq(&row.id))
                .filter(files::project.eq(&row.project))
                .filter(files::env.eq(&row.env))
                .filter(files::updated_at.eq(expected)),
        )
        .set((
            files::original_name.eq(&row.original_name),
            files::name_folded.eq(&row.name_folded),
            files::visibility.eq(&row.visibility),
            files::metadata.eq(&row.metadata),
            files::shared_with.eq(&row.shared_with),
            files::updated_at.eq(row.updated_at),
        )),
    )
}

/// Deletes the file `id` in `tenant` if its `updated_at` is still
/// `expected` (compare-and-set), returning it.
pub fn delete_file<'a>(tenant: &'a Tenant, id: &'a str, expected: i64) -> impl Rows<'a, FileRow> {
    diesel::delete(
        files::table
            .filter(files::id.eq(id))
            .filter(files::project.eq(tenant.project.as_str()))
            .filter(files::env.eq(tenant.env.as_str()))
            .filter(files::updated_at.eq(expected)),
    )
    .returning(columns::<FileRow>())
}

/// Adds `delta` files (`delta` × its size in bytes) to the count of `row`'s
/// owner's files of `visibility`.
pub fn bump_count<'a>(row: &'a FileRow, visibility: &'a str, delta: i64) -> impl Statement + 'a {
    let bytes = row.size.saturating_mul(delta);
    Prepared(
        diesel::insert_into(file_counts::table)
            .values((
                file_counts::project.eq(&row.project),
                file_counts::env.eq(&row.env),
                file_counts::visibility.eq(visibility),
                file_counts::owner_type.eq(&row.owner_type),
                file_counts::owner_id.eq(&row.owner_id),
                file_counts::n.eq(delta),
                file_counts::bytes.eq(bytes),
            ))
            .on_conflict((
                file_counts::project,
                file_counts::env,
                file_counts::visibility,
                file_counts::owner_type,
                file_counts::owner_id,
            ))
            .do_update()
            .set((
                file_counts::n.eq(file_counts::n + delta),
                file_counts::bytes.eq(file_counts::bytes + bytes),
            )),
    )
}

/// `(files, bytes)` of `owner` in `tenant`: a sum over the maintained
/// counts (one row per visibility), never over files.
pub fn owner_usage<'a>(tenant: &'a Tenant, owner: &'a Owner) -> impl Rows<'a, (i64, i64)> {
    file_counts::table
        .filter(file_counts::project.eq(tenant.project.as_str()))
        .filter(file_counts::env.eq(tenant.env.as_str()))
        .filter(file_counts::owner_type.eq(owner.kind.as_str()))
        .filter(file_counts::owner_id.eq(owner.id.as_str()))
        .select((Total::FILES, Total::BYTES))
}

/// `(files, bytes)` of every owner in `tenant`, from the tenant's counts
/// (a few rows, however many owners).
pub fn tenant_usage(tenant: &Tenant) -> impl Rows<'_, (i64, i64)> {
    tenant_counts::table
        .filter(tenant_counts::project.eq(tenant.project.as_str()))
        .filter(tenant_counts::env.eq(tenant.env.as_str()))
        .select((Total::TENANT_FILES, Total::TENANT_BYTES))
}

/// `CAST(COALESCE(SUM(file_counts.<column>), 0) AS BIGINT)`: a `BIGINT` on
/// both backends (PostgreSQL's `SUM(bigint)` is `numeric`), 0 over no rows.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
pub struct Total(&'static str);

impl Total {
    /// Files.
    pub const FILES: Total = Total("\"file_counts\".\"n\"");
    /// Bytes.
    pub const BYTES: Total = Total("\"file_counts\".\"bytes\"");
    /// Files, in `tenant_counts`.
    pub const TENANT_FILES: Total = Total("\"tenant_counts\".\"n\"");
    /// Bytes, in `tenant_counts`.
    pub const TENANT_BYTES: Total = Total("\"tenant_counts\".\"bytes\"");
}

impl diesel::Expression for Total {
    type SqlType = diesel::sql_types::BigInt;
}

impl diesel::expression::ValidGrouping<()> for Total {
    type IsAggregate = diesel::expression::is_aggregate::Yes;
}

impl diesel::AppearsOnTable<file_counts::table> for Total {}

impl diesel::SelectableExpression<file_counts::table> for Total {}

impl diesel::AppearsOnTable<tenant_counts::table> for Total {}

impl diesel::SelectableExpression<tenant_counts::table> for Total {}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for Total {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("CAST(COALESCE(SUM(");
        out.push_sql(self.0);
        out.push_sql("), 0) AS BIGINT)");
        Ok(())
    }
}

/// Stores `value` as the secret `name` unless one is stored already.
pub fn offer_secret<'a>(name: &'a str, value: &'a str) -> impl Statement + 'a {
    diesel::insert_into(instance_secrets::table)
        .values((
            instance_secrets::name.eq(name),
            instance_secrets::value.eq(value),
        ))
        .on_conflict_do_nothing()
}

/// The stored secret `name` (hex).
pub fn secret(name: &str) -> impl Rows<'_, String> {
    instance_secrets::table
        .filter(instance_secrets::name.eq(name))
        .select(instance_secrets::value)
}

/// Records an API key.
pub fn insert_key(row: &ApiKeyRow) -> impl Statement + '_ {
    diesel::insert_into(api_keys::table).values(row)
}

/// The key with this hash.
pub fn find_key(key_hash: &str) -> impl Rows<'_, ApiKeyRow> {
    api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .select(columns::<ApiKeyRow>())
}

/// Every key, oldest first.
pub fn all_keys() -> impl for<'q> Rows<'q, ApiKeyRow> {
    api_keys::table
        .order_by((api_keys::created_at.asc(), api_keys::id.asc()))
        .select(columns::<ApiKeyRow>())
}

/// Revokes the key `id` unless it is revoked already.
pub fn revoke_key(id: &str, at: Timestamp) -> impl Statement + '_ {
    diesel::update(
        api_keys::table
            .filter(api_keys::id.eq(id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(at.millis()))
}

// Transfer (`crate::transfer`): every table read in key order, rows written
// unless present, the counts recomputed.

/// Up to `limit` API keys with an id after `after`, in id order.
pub fn keys_after(after: &str, limit: i64) -> impl Rows<'_, ApiKeyRow> {
    api_keys::table
        .filter(api_keys::id.gt(after))
        .order_by(api_keys::id.asc())
        .limit(limit)
        .select(columns::<ApiKeyRow>())
}

/// Up to `limit` uploads with a key after `after`, in key order.
pub fn uploads_after(after: &str, limit: i64) -> impl Rows<'_, UploadRow> {
    uploads::table
        .filter(uploads::s3_key.gt(after))
        .order_by(uploads::s3_key.asc())
        .limit(limit)
        .select(columns::<UploadRow>())
}

/// Up to `limit` files with an id after `after`, in id order.
pub fn files_after(after: &str, limit: i64) -> impl Rows<'_, FileRow> {
    files::table
        .filter(files::id.gt(after))
        .order_by(files::id.asc())
        .limit(limit)
        .select(columns::<FileRow>())
}

/// Up to `limit` queued deletions with a key after `after`, in key order.
pub fn deletions_after(after: &str, limit: i64) -> impl Rows<'_, DeletionRow> {
    object_deletions::table
        .filter(object_deletions::s3_key.gt(after))
        .order_by(object_deletions::s3_key.asc())
        .limit(limit)
        .select(columns::<DeletionRow>())
}

/// Up to `limit` instance secrets with a name after `after`, in name order.
pub fn secrets_after(after: &str, limit: i64) -> impl Rows<'_, SecretRow> {
    instance_secrets::table
        .filter(instance_secrets::name.gt(after))
        .order_by(instance_secrets::name.asc())
        .limit(limit)
        .select(columns::<SecretRow>())
}

/// Records an API key unless its id is recorded.
pub fn copy_key(row: &ApiKeyRow) -> impl Statement + '_ {
    diesel::insert_into(api_keys::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// Records an upload unless its key is recorded.
pub fn copy_upload(row: &UploadRow) -> impl Statement + '_ {
    diesel::insert_into(uploads::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// Records a file unless its id (or its key) is recorded.
pub fn copy_file(row: &FileRow) -> impl Statement + '_ {
    diesel::insert_into(files::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// Queues a deletion unless its key is queued.
pub fn copy_deletion(row: &DeletionRow) -> impl Statement + '_ {
    diesel::insert_into(object_deletions::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// Stores a secret, replacing one of the same name (the source's wins: the
/// signatures and cursors it made stay valid).
pub fn copy_secret(row: &SecretRow) -> impl Statement + '_ {
    diesel::insert_into(instance_secrets::table)
        .values(row)
        .on_conflict(instance_secrets::name)
        .do_update()
        .set(instance_secrets::value.eq(&row.value))
}

/// Sets every maintained count to the number of files it counts.
pub fn recount_files() -> impl Statement {
    diesel::sql_query(
        "INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n, bytes) \
         SELECT project, env, visibility, owner_type, owner_id, COUNT(*), \
         CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE 1 = 1 \
         GROUP BY project, env, visibility, owner_type, owner_id \
         ON CONFLICT (project, env, visibility, owner_type, owner_id) \
         DO UPDATE SET n = excluded.n, bytes = excluded.bytes",
    )
}

/// Removes the counts no file is counted in any more.
pub fn drop_empty_counts() -> impl Statement {
    diesel::sql_query(
        "DELETE FROM file_counts WHERE NOT EXISTS (SELECT 1 FROM files f \
         WHERE f.project = file_counts.project AND f.env = file_counts.env \
         AND f.visibility = file_counts.visibility AND f.owner_type = file_counts.owner_type \
         AND f.owner_id = file_counts.owner_id)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment;
    use diesel::sqlite::Sqlite;
    use stowage_domain::model::{Environment, ProjectId};

    fn cached<Q: QueryFragment<Pg> + QueryFragment<Sqlite>>(q: &Q) -> bool {
        QueryFragment::<Pg>::is_safe_to_cache_prepared(q, &Pg).expect("pg")
            && QueryFragment::<Sqlite>::is_safe_to_cache_prepared(q, &Sqlite).expect("sqlite")
    }

    /// The writes of every PATCH and registration stay prepared statements
    /// (diesel would re-parse every `UPDATE` and upsert).
    #[test]
    fn hot_updates_and_upserts_are_cached_statements() {
        let tenant = Tenant {
            project: ProjectId::new("p1").expect("project"),
            env: Environment::Dev,
        };
        let row = FileRow {
            id: "f".into(),
            project: "p1".into(),
            env: "dev".into(),
            s3_key: "k".into(),
            original_name: "a".into(),
            name_folded: "a".into(),
            mime_type: "text/plain".into(),
            size: 1,
            width: None,
            height: None,
            visibility: "private".into(),
            bucket: "files".into(),
            owner_type: "user".into(),
            owner_id: "u".into(),
            shared_with: crate::types::Shares(Vec::new()),
            metadata: crate::types::Json("{}".into()),
            created_at: 0,
            updated_at: 0,
            checksum_sha256: None,
        };
        assert!(cached(&update_file_if(&row, 0)));
        assert!(cached(&bump_count(&row, "private", 1)));
        assert!(cached(&claim_upload(&tenant, "k")));
        // What the wrapper is for: diesel's own verdict on an UPDATE.
        let bare =
            diesel::update(files::table.filter(files::id.eq("f"))).set(files::updated_at.eq(1_i64));
        assert!(!QueryFragment::<Pg>::is_safe_to_cache_prepared(&bare, &Pg).expect("pg"));
    }
}

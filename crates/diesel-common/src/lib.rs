//! What the SQLite and PostgreSQL adapters share, written once.
//!
//! Plain code: the tables whose definition is the same on both backends
//! ([`schema`]), their rows and conversions, checked against both backends
//! ([`rows`]), and what a duplicate means to a statement ([`on_duplicate`]).
//!
//! Still expanded per backend (diesel types every query by backend and
//! connection): [`shared_list_query!`] (the list query, over the adapter's own
//! `files` table and its `shared_with_user(uid)` predicate) and
//! [`shared_repository!`] (the statements of both repository ports that are
//! the same text on both backends). For those an adapter provides at its crate
//! root: `schema::files`, `rows::FileRow`, a `Conn` type, `db_error`, an
//! inherent `run`, `count_shared_with`, and the `db_register_file`,
//! `db_update_file`, `db_delete_file` methods (its transactions that write
//! `files`). Turning these two into generic functions over an explicit
//! backend trait is the open step of the structure issue (see
//! `docs/architecture.md`).

pub mod rows;
pub mod schema;

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use stowage_domain::{Error, ErrorCode};

/// A unique violation met by a statement for which a duplicate means `code`
/// (a second upload of one key, a second file for one key) becomes that
/// error; any other error is given back for the backend's general mapping,
/// where an unexpected duplicate (an API key id, say) is an internal error.
///
/// # Errors
/// The error itself when it is not a unique violation.
pub fn on_duplicate(e: DieselError, code: ErrorCode) -> Result<Error, DieselError> {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Ok(Error::new(code)),
        other => Err(other),
    }
}

/// The repository ports: shared queries inline, backend-specific ones
/// delegated to the adapter's `db_*` methods.
#[macro_export]
macro_rules! shared_repository {
    ($repo:ident) => {
        mod shared_repository {
            use ::async_trait::async_trait;
            use ::diesel::dsl::count_star;
            use ::diesel::result::Error as DieselError;
            use ::diesel::{
                BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl,
                SelectableHelper,
            };
            use ::diesel_async::RunQueryDsl;
            use ::stowage_domain::auth::ApiKeyRecord;
            use ::stowage_domain::list::{ListPage, ListQuery, Scope};
            use ::stowage_domain::model::{File, FileId, Tenant, Timestamp};
            use ::stowage_domain::model::{OwnerTypeFilter, Visibility};
            use ::stowage_domain::ports::{ApiKeyRepository, FileRepository, QueuedDeletion};
            use ::stowage_domain::upload::{IssuedUpload, UploadState};
            use ::stowage_domain::Result;

            use super::rows::FileRow;
            use super::schema::files;
            use super::{db_error, $repo, Conn};
            use $crate::rows::{ApiKeyRow, UploadRow};
            use $crate::schema::{
                api_keys, file_counts, instance_secrets, object_deletions, uploads,
            };

            /// Error inside a transaction: a driver error or a domain decision.
            pub(crate) enum TxError {
                Db(DieselError),
                Domain(::stowage_domain::Error),
            }

            impl From<DieselError> for TxError {
                fn from(e: DieselError) -> Self {
                    Self::Db(e)
                }
            }

            impl From<TxError> for ::stowage_domain::Error {
                fn from(e: TxError) -> Self {
                    match e {
                        TxError::Db(e) => db_error(e),
                        TxError::Domain(e) => e,
                    }
                }
            }

            /// Why the upload of `file.s3_key` could not be claimed: it is already
            /// registered (`file/s3-key-already-exists`), or there is no such upload.
            pub(crate) async fn unclaimed(
                c: &mut Conn,
                file: &File,
            ) -> std::result::Result<::stowage_domain::Error, DieselError> {
                let taken = diesel::select(::diesel::dsl::exists(
                    files::table.filter(files::s3_key.eq(&file.s3_key)),
                ))
                .get_result::<bool>(c)
                .await?;
                let registered = uploads::table
                    .filter(uploads::s3_key.eq(&file.s3_key))
                    .filter(uploads::state.eq(UploadState::Registered.as_str()))
                    .count()
                    .get_result::<i64>(c)
                    .await?;
                let code = if taken || registered > 0 {
                    ::stowage_domain::ErrorCode::S3KeyAlreadyExists
                } else {
                    ::stowage_domain::ErrorCode::UploadNotFound
                };
                Ok(::stowage_domain::Error::new(code))
            }

            /// Queues an object deletion inside the caller's transaction (a key
            /// already queued keeps its place).
            pub(crate) async fn queue_deletion(
                c: &mut Conn,
                q: &QueuedDeletion,
            ) -> std::result::Result<(), DieselError> {
                diesel::insert_into(object_deletions::table)
                    .values((
                        object_deletions::s3_key.eq(&q.key),
                        object_deletions::next_attempt_at.eq(q.due.millis()),
                        object_deletions::created_at.eq(q.due.millis()),
                    ))
                    .on_conflict_do_nothing()
                    .execute(c)
                    .await?;
                Ok(())
            }

            /// Adds `delta` to the count of `row`'s owner's files of `visibility`.
            pub(crate) async fn bump_count(
                c: &mut Conn,
                row: &FileRow,
                visibility: &str,
                delta: i64,
            ) -> std::result::Result<(), DieselError> {
                diesel::insert_into(file_counts::table)
                    .values((
                        file_counts::project.eq(&row.project),
                        file_counts::env.eq(&row.env),
                        file_counts::visibility.eq(visibility),
                        file_counts::owner_type.eq(&row.owner_type),
                        file_counts::owner_id.eq(&row.owner_id),
                        file_counts::n.eq(delta),
                    ))
                    .on_conflict((
                        file_counts::project,
                        file_counts::env,
                        file_counts::visibility,
                        file_counts::owner_type,
                        file_counts::owner_id,
                    ))
                    .do_update()
                    .set(file_counts::n.eq(file_counts::n + delta))
                    .execute(c)
                    .await?;
                Ok(())
            }

            /// Writes the mutable fields of `row` (inside the caller's transaction)
            /// if the stored `updated_at` is still `expected` (compare-and-set),
            /// and moves its count when the visibility changed from `old`; `None`
            /// (no such row) is `file/not-found`. Returns whether it wrote. The
            /// caller reads `old` with the locking its backend needs.
            pub(crate) async fn apply_file_update(
                c: &mut Conn,
                row: &FileRow,
                old: Option<String>,
                expected: i64,
            ) -> std::result::Result<bool, TxError> {
                let Some(old) = old else {
                    return Err(TxError::Domain(::stowage_domain::Error::new(
                        ::stowage_domain::ErrorCode::FileNotFound,
                    )));
                };
                let n = diesel::update(
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
                ))
                .execute(c)
                .await?;
                if n != 1 {
                    return Ok(false);
                }
                if old != row.visibility {
                    bump_count(c, row, &old, -1).await?;
                    bump_count(c, row, &row.visibility, 1).await?;
                }
                Ok(true)
            }

            /// The total of a listing from the maintained counts, without counting rows;
            /// `None` when a filter (bucket, MIME type, search) needs an exact count.
            pub(crate) async fn counted_total(
                c: &mut Conn,
                query: &ListQuery,
            ) -> std::result::Result<Option<i64>, DieselError> {
                let p = &query.params;
                if p.bucket.is_some() || p.mime_type.is_some() || p.search.is_some() {
                    return Ok(None);
                }
                let owner_type = match p.owner_type {
                    None => None,
                    Some(OwnerTypeFilter::User) => Some("user"),
                    Some(OwnerTypeFilter::Service) => Some("service"),
                    Some(OwnerTypeFilter::Session | OwnerTypeFilter::Public) => return Ok(Some(0)),
                };
                let counts = || {
                    let mut q = file_counts::table
                        .filter(file_counts::project.eq(query.tenant.project.as_str()))
                        .filter(file_counts::env.eq(query.tenant.env.as_str()))
                        .into_boxed();
                    if let Some(v) = p.visibility {
                        q = q.filter(file_counts::visibility.eq(v.as_str()));
                    }
                    if let Some(t) = owner_type {
                        q = q.filter(file_counts::owner_type.eq(t));
                    }
                    if let Some(o) = &p.owner_id {
                        q = q.filter(file_counts::owner_id.eq(o.clone()));
                    }
                    q
                };
                let sum = |rows: Vec<i64>| rows.into_iter().sum::<i64>();
                match &query.scope {
                    Scope::All => Ok(Some(sum(counts().select(file_counts::n).load(c).await?))),
                    Scope::VisibleTo { owner, user_id } => {
                        // Open files of anyone plus the caller's own closed ones, in one
                        // statement over the counts.
                        let visible: Vec<i64> = counts()
                            .filter(
                                file_counts::visibility
                                    .eq_any([
                                        Visibility::Public.as_str(),
                                        Visibility::Protected.as_str(),
                                    ])
                                    .or(file_counts::owner_type
                                        .eq(owner.kind.as_str())
                                        .and(file_counts::owner_id.eq(owner.id.as_str()))),
                            )
                            .select(file_counts::n)
                            .load(c)
                            .await?;
                        let mut total = sum(visible);
                        let shared_visible = p.visibility.is_none_or(|v| v == Visibility::Shared);
                        if let (Some(uid), true) = (user_id, shared_visible) {
                            total +=
                                super::count_shared_with(c, query, owner, uid, owner_type).await?;
                        }
                        Ok(Some(total))
                    }
                }
            }

            #[async_trait]
            impl FileRepository for $repo {
                async fn insert_upload(&self, upload: &IssuedUpload) -> Result<()> {
                    let row = UploadRow::from(upload);
                    self.run(async move |c| {
                        diesel::insert_into(uploads::table)
                            .values(&row)
                            .execute(c)
                            .await
                            .map_err(|e| {
                                $crate::on_duplicate(
                                    e,
                                    ::stowage_domain::ErrorCode::S3KeyAlreadyExists,
                                )
                                .unwrap_or_else(db_error)
                            })?;
                        Ok(())
                    })
                    .await
                }

                async fn find_upload(
                    &self,
                    tenant: &Tenant,
                    key: &str,
                ) -> Result<Option<IssuedUpload>> {
                    self.run(async move |c| {
                        let row = uploads::table
                            .filter(uploads::s3_key.eq(key))
                            .filter(uploads::project.eq(tenant.project.as_str()))
                            .filter(uploads::env.eq(tenant.env.as_str()))
                            .select(UploadRow::as_select())
                            .first(c)
                            .await
                            .optional()
                            .map_err(db_error)?;
                        row.map(IssuedUpload::try_from).transpose()
                    })
                    .await
                }

                async fn claim_for_registration(
                    &self,
                    tenant: &Tenant,
                    key: &str,
                ) -> Result<Option<IssuedUpload>> {
                    self.run(async move |c| {
                        // The row as it was: `RETURNING` gives the new state,
                        // which is known, so the old one is put back below.
                        let row = diesel::update(
                            uploads::table
                                .filter(uploads::s3_key.eq(key))
                                .filter(uploads::project.eq(tenant.project.as_str()))
                                .filter(uploads::env.eq(tenant.env.as_str()))
                                .filter(
                                    uploads::state
                                        .eq(UploadState::Pending.as_str())
                                        .and(uploads::multipart_id.is_null())
                                        .or(uploads::state
                                            .eq(UploadState::Completed.as_str())
                                            .and(uploads::multipart_id.is_not_null())),
                                ),
                        )
                        .set(uploads::state.eq(UploadState::Registering.as_str()))
                        .returning(UploadRow::as_returning())
                        .get_result::<UploadRow>(c)
                        .await
                        .optional()
                        .map_err(db_error)?;
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
                    })
                    .await
                }

                async fn transition_upload(
                    &self,
                    tenant: &Tenant,
                    key: &str,
                    from: UploadState,
                    to: UploadState,
                ) -> Result<bool> {
                    self.run(async move |c| {
                        let n = diesel::update(
                            uploads::table
                                .filter(uploads::s3_key.eq(key))
                                .filter(uploads::project.eq(tenant.project.as_str()))
                                .filter(uploads::env.eq(tenant.env.as_str()))
                                .filter(uploads::state.eq(from.as_str())),
                        )
                        .set(uploads::state.eq(to.as_str()))
                        .execute(c)
                        .await
                        .map_err(db_error)?;
                        Ok(n == 1)
                    })
                    .await
                }

                async fn abandoned_uploads(
                    &self,
                    issued_before: Timestamp,
                    now: Timestamp,
                    limit: u32,
                ) -> Result<Vec<IssuedUpload>> {
                    self.run(async move |c| {
                        let pending = UploadState::Pending.as_str();
                        let completed = UploadState::Completed.as_str();
                        let completing = UploadState::Completing.as_str();
                        let registering = UploadState::Registering.as_str();
                        let stuck = uploads::state
                            .eq_any([completing, registering])
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
                        let rows: Vec<UploadRow> = uploads::table
                            .filter(uploads::state.eq_any([
                                pending,
                                completed,
                                completing,
                                registering,
                            ]))
                            .filter(
                                stale_single
                                    .or(stale_completed)
                                    .or(expired_multipart)
                                    .or(stuck),
                            )
                            .order_by((uploads::created_at.asc(), uploads::s3_key.asc()))
                            .limit(i64::from(limit))
                            .select(UploadRow::as_select())
                            .load(c)
                            .await
                            .map_err(db_error)?;
                        rows.into_iter().map(IssuedUpload::try_from).collect()
                    })
                    .await
                }

                async fn enqueue_object_deletion(&self, key: &str, due: Timestamp) -> Result<()> {
                    self.run(async move |c| {
                        diesel::insert_into(object_deletions::table)
                            .values((
                                object_deletions::s3_key.eq(key),
                                object_deletions::next_attempt_at.eq(due.millis()),
                                object_deletions::created_at.eq(due.millis()),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)
                            .await
                            .map_err(db_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn finish_object_deletion(&self, key: &str) -> Result<()> {
                    self.run(async move |c| {
                        diesel::delete(
                            object_deletions::table.filter(object_deletions::s3_key.eq(key)),
                        )
                        .execute(c)
                        .await
                        .map_err(db_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn due_object_deletions(
                    &self,
                    now: Timestamp,
                    limit: u32,
                ) -> Result<Vec<String>> {
                    self.run(async move |c| {
                        object_deletions::table
                            .filter(object_deletions::next_attempt_at.le(now.millis()))
                            .order_by((
                                object_deletions::next_attempt_at.asc(),
                                object_deletions::s3_key.asc(),
                            ))
                            .limit(i64::from(limit))
                            .select(object_deletions::s3_key)
                            .load(c)
                            .await
                            .map_err(db_error)
                    })
                    .await
                }

                async fn defer_object_deletion(
                    &self,
                    key: &str,
                    next_attempt: Timestamp,
                ) -> Result<()> {
                    self.run(async move |c| {
                        diesel::update(
                            object_deletions::table.filter(object_deletions::s3_key.eq(key)),
                        )
                        .set((
                            object_deletions::next_attempt_at.eq(next_attempt.millis()),
                            object_deletions::attempts.eq(object_deletions::attempts + 1),
                        ))
                        .execute(c)
                        .await
                        .map_err(db_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn health_check(&self) -> Result<()> {
                    self.run(async move |c| {
                        diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"))
                            .get_result::<i32>(c)
                            .await
                            .map_err(db_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn register_file<'a>(
                    &self,
                    file: &File,
                    cleanup: Option<&'a QueuedDeletion>,
                ) -> Result<()> {
                    self.db_register_file(file, cleanup).await
                }
                async fn get_file(&self, tenant: &Tenant, id: FileId) -> Result<Option<File>> {
                    self.run(async move |c| {
                        let row = super::tenant_filter(files::table.into_boxed(), tenant)
                            .filter(files::id.eq(id.to_string()))
                            .select(FileRow::as_select())
                            .first(c)
                            .await
                            .optional()
                            .map_err(db_error)?;
                        row.map(File::try_from).transpose()
                    })
                    .await
                }

                async fn find_file_by_key(
                    &self,
                    tenant: &Tenant,
                    key: &str,
                ) -> Result<Option<File>> {
                    self.run(async move |c| {
                        let row = files::table
                            .filter(files::s3_key.eq(key))
                            .filter(files::project.eq(tenant.project.as_str()))
                            .filter(files::env.eq(tenant.env.as_str()))
                            .select(FileRow::as_select())
                            .first(c)
                            .await
                            .optional()
                            .map_err(db_error)?;
                        row.map(File::try_from).transpose()
                    })
                    .await
                }

                async fn update_file(
                    &self,
                    file: &File,
                    expected_updated_at: Timestamp,
                ) -> Result<bool> {
                    self.db_update_file(file, expected_updated_at).await
                }

                async fn instance_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
                    let value = ::hex::encode(candidate);
                    self.run(async move |c| {
                        diesel::insert_into(instance_secrets::table)
                            .values((
                                instance_secrets::name.eq(name),
                                instance_secrets::value.eq(&value),
                            ))
                            .on_conflict_do_nothing()
                            .execute(c)
                            .await
                            .map_err(db_error)?;
                        let stored: String = instance_secrets::table
                            .filter(instance_secrets::name.eq(name))
                            .select(instance_secrets::value)
                            .first(c)
                            .await
                            .map_err(db_error)?;
                        ::hex::decode(stored).map_err(|_| {
                            ::stowage_domain::Error::internal(format!(
                                "stored secret `{name}` is not hex"
                            ))
                        })
                    })
                    .await
                }

                async fn delete_file(
                    &self,
                    tenant: &Tenant,
                    id: FileId,
                    now: Timestamp,
                ) -> Result<Option<File>> {
                    self.db_delete_file(tenant, id, now).await
                }
                async fn list_files(&self, query: &ListQuery) -> Result<ListPage> {
                    self.run(async move |c| {
                        // A cursor carries the total counted for its first page, so
                        // pages after it cost O(limit) at any depth.
                        let total: i64 = match query.params.cursor.as_ref().and_then(|c| c.total) {
                            Some(t) => i64::try_from(t).unwrap_or(i64::MAX),
                            None => match counted_total(c, query).await.map_err(db_error)? {
                                Some(t) => t,
                                None => super::filtered(query)
                                    .select(count_star())
                                    .get_result(c)
                                    .await
                                    .map_err(db_error)?,
                            },
                        };
                        let limit = query.params.limit as usize;
                        let mut items = match super::branches(query) {
                            None => super::page_query(query)?
                                .select(FileRow::as_select())
                                .load::<FileRow>(c)
                                .await
                                .map_err(db_error)?
                                .into_iter()
                                .map(File::try_from)
                                .collect::<Result<Vec<_>>>()?,
                            Some(branches) => {
                                // Each branch is an ordered index scan of its own,
                                // bounded by the page; merged here in the same order.
                                let mut rows = Vec::new();
                                for branch in branches {
                                    rows.extend(
                                        super::branch_page_query(query, branch)?
                                            .select(FileRow::as_select())
                                            .load::<FileRow>(c)
                                            .await
                                            .map_err(db_error)?,
                                    );
                                }
                                let rows = rows
                                    .into_iter()
                                    .map(File::try_from)
                                    .collect::<Result<Vec<_>>>()?;
                                ::stowage_domain::list::merge_branches(rows, &query.params)
                            }
                        };
                        let has_more = items.len() > limit;
                        items.truncate(limit);
                        Ok(ListPage {
                            items,
                            total: u64::try_from(total).unwrap_or(0),
                            has_more,
                        })
                    })
                    .await
                }
            }

            #[async_trait]
            impl ApiKeyRepository for $repo {
                async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
                    let row = ApiKeyRow::from(key);
                    self.run(async move |c| {
                        diesel::insert_into(api_keys::table)
                            .values(&row)
                            .execute(c)
                            .await
                            .map_err(db_error)?;
                        Ok(())
                    })
                    .await
                }

                async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
                    self.run(async move |c| {
                        let row = api_keys::table
                            .filter(api_keys::key_hash.eq(key_hash))
                            .select(ApiKeyRow::as_select())
                            .first(c)
                            .await
                            .optional()
                            .map_err(db_error)?;
                        row.map(ApiKeyRecord::try_from).transpose()
                    })
                    .await
                }

                async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
                    self.run(async move |c| {
                        let rows: Vec<ApiKeyRow> = api_keys::table
                            .order_by((api_keys::created_at.asc(), api_keys::id.asc()))
                            .select(ApiKeyRow::as_select())
                            .load(c)
                            .await
                            .map_err(db_error)?;
                        rows.into_iter().map(ApiKeyRecord::try_from).collect()
                    })
                    .await
                }

                async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
                    self.run(async move |c| {
                        let n = diesel::update(
                            api_keys::table
                                .filter(api_keys::id.eq(id))
                                .filter(api_keys::revoked_at.is_null()),
                        )
                        .set(api_keys::revoked_at.eq(at.millis()))
                        .execute(c)
                        .await
                        .map_err(db_error)?;
                        Ok(n == 1)
                    })
                    .await
                }
            }
        }
        pub(crate) use shared_repository::{
            apply_file_update, bump_count, queue_deletion, unclaimed, TxError,
        };
    };
}

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

/// The list query (scope predicate, filters, keyset, order, paging) on a
/// backend; the adapter provides `shared_with_user(uid)`, the predicate "this
/// file's share list names `uid`", which is stored differently per backend.
#[macro_export]
macro_rules! shared_list_query {
    ($backend:ty) => {
        mod list_query {
            use ::diesel::dsl::not;
            use ::diesel::{
                BoolExpressionMethods, EscapeExpressionMethods, ExpressionMethods, QueryDsl,
                TextExpressionMethods,
            };
            use ::stowage_domain::list::{
                like_pattern, ListQuery, MimeFilter, Scope, SortBy, SortDirection, SortValue,
            };
            use ::stowage_domain::model::{OwnerTypeFilter, Tenant, Visibility};
            use ::stowage_domain::{Error, Result};

            use super::schema::files;
            use ::stowage_diesel_common::Branch;

            pub(crate) fn tenant_filter<'a>(
                q: files::BoxedQuery<'a, $backend>,
                t: &'a Tenant,
            ) -> files::BoxedQuery<'a, $backend> {
                q.filter(files::project.eq(t.project.as_str()))
                    .filter(files::env.eq(t.env.as_str()))
            }

            /// Rows in scope and matching the filters, without order or paging.
            pub(crate) fn filtered(query: &ListQuery) -> files::BoxedQuery<'_, $backend> {
                let mut q = tenant_filter(files::table.into_boxed(), &query.tenant);
                if let Scope::VisibleTo { owner, user_id } = &query.scope {
                    let own = files::owner_type
                        .eq(owner.kind.as_str())
                        .and(files::owner_id.eq(owner.id.as_str()));
                    let open = files::visibility
                        .eq_any([Visibility::Public.as_str(), Visibility::Protected.as_str()]);
                    q = match user_id {
                        Some(uid) => {
                            let shared = files::visibility
                                .eq(Visibility::Shared.as_str())
                                .and(super::shared_with_user(uid));
                            q.filter(own.or(open).or(shared))
                        }
                        None => q.filter(own.or(open)),
                    };
                }
                with_filters(q, query)
            }

            /// The query's own filters (visibility, owner, bucket, MIME type, search).
            fn with_filters<'a>(
                mut q: files::BoxedQuery<'a, $backend>,
                query: &'a ListQuery,
            ) -> files::BoxedQuery<'a, $backend> {
                let p = &query.params;
                if let Some(v) = p.visibility {
                    q = q.filter(files::visibility.eq(v.as_str()));
                }
                match p.owner_type {
                    Some(OwnerTypeFilter::User) => q = q.filter(files::owner_type.eq("user")),
                    Some(OwnerTypeFilter::Service) => q = q.filter(files::owner_type.eq("service")),
                    Some(OwnerTypeFilter::Session | OwnerTypeFilter::Public) => {
                        q = q.filter(not(files::id.eq(files::id)))
                    }
                    None => {}
                }
                if let Some(o) = &p.owner_id {
                    q = q.filter(files::owner_id.eq(o.as_str()));
                }
                if let Some(b) = p.bucket {
                    q = q.filter(files::bucket.eq(b.as_str()));
                }
                match &p.mime_type {
                    Some(MimeFilter::Exact(m)) => q = q.filter(files::mime_type.eq(m.as_str())),
                    Some(MimeFilter::Prefix(prefix)) => {
                        let pattern = like_pattern(prefix);
                        // like_pattern wraps in %…%; a prefix match drops the leading %.
                        q = q.filter(files::mime_type.like(pattern[1..].to_owned()).escape('\\'));
                    }
                    None => {}
                }
                if let Some(s) = &p.search {
                    q = q.filter(files::name_folded.like(like_pattern(s)).escape('\\'));
                }
                q
            }

            macro_rules! keyset {
                ($q:expr, $col:expr, $value:expr, $id:expr, $dir:expr) => {{
                    let (v, id) = ($value, $id);
                    match $dir {
                        // The first, redundant bound is what the index can seek on; the
                        // second is the exact keyset condition with the id tie-break.
                        SortDirection::Asc => $q
                            .filter($col.ge(v.clone()))
                            .filter($col.gt(v.clone()).or($col.eq(v).and(files::id.gt(id)))),
                        SortDirection::Desc => $q
                            .filter($col.le(v.clone()))
                            .filter($col.lt(v.clone()).or($col.eq(v).and(files::id.lt(id)))),
                    }
                }};
            }

            macro_rules! order {
                ($q:expr, $col:expr, $dir:expr) => {
                    match $dir {
                        SortDirection::Asc => $q.order_by(($col.asc(), files::id.asc())),
                        SortDirection::Desc => $q.order_by(($col.desc(), files::id.desc())),
                    }
                };
            }

            pub(crate) fn page_query(query: &ListQuery) -> Result<files::BoxedQuery<'_, $backend>> {
                let p = &query.params;
                let q = ordered(filtered(query), query)?;
                let q = if p.cursor.is_some() {
                    q
                } else {
                    q.offset(i64::try_from(p.offset()).unwrap_or(i64::MAX))
                };
                Ok(q.limit(i64::from(p.limit) + 1))
            }

            /// Most rows a listing reads per branch (offset + limit + 1) before
            /// the single query becomes the better plan.
            const MAX_BRANCH_ROWS: u64 = 1_000;

            /// The branches a caller's listing is read as, or `None` when the
            /// single query is the better plan: admins (no visibility predicate),
            /// an owner or search filter (their own indexes bound the rows),
            /// offsets deep enough that each branch would read too much.
            pub(crate) fn branches(query: &ListQuery) -> Option<Vec<Branch>> {
                let Scope::VisibleTo { user_id, .. } = &query.scope else {
                    return None;
                };
                let p = &query.params;
                let rows = p.offset() + u64::from(p.limit) + 1;
                if p.owner_id.is_some()
                    || p.search.is_some()
                    || (p.cursor.is_none() && rows > MAX_BRANCH_ROWS)
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

            /// One branch of a caller's page: its rows in order, from the first
            /// row after the cursor (or the first row), `offset + limit + 1` of them;
            /// the caller merges the branches and applies the offset.
            pub(crate) fn branch_page_query(
                query: &ListQuery,
                branch: Branch,
            ) -> Result<files::BoxedQuery<'_, $backend>> {
                let Scope::VisibleTo { owner, user_id } = &query.scope else {
                    return Err(Error::internal("branches are for caller-scoped listings"));
                };
                let own = || {
                    files::owner_type
                        .eq(owner.kind.as_str())
                        .and(files::owner_id.eq(owner.id.as_str()))
                };
                let q = tenant_filter(files::table.into_boxed(), &query.tenant);
                let q = match (branch, user_id) {
                    (Branch::Own, _) => q.filter(own()),
                    // A literal predicate, so the partial indexes on open files
                    // match it (a bound parameter would hide it from the planner).
                    (Branch::Open, _) => q
                        .filter(::diesel::dsl::sql::<::diesel::sql_types::Bool>(
                            "files.visibility IN ('public', 'protected')",
                        ))
                        .filter(not(own())),
                    (Branch::Shared, Some(uid)) => q
                        .filter(files::visibility.eq(Visibility::Shared.as_str()))
                        .filter(super::shared_with_user(uid))
                        .filter(not(own())),
                    (Branch::Shared, None) => q.filter(not(files::id.eq(files::id))),
                };
                let p = &query.params;
                let rows = if p.cursor.is_some() {
                    u64::from(p.limit) + 1
                } else {
                    p.offset() + u64::from(p.limit) + 1
                };
                Ok(ordered(with_filters(q, query), query)?
                    .limit(i64::try_from(rows).unwrap_or(i64::MAX)))
            }

            /// Keyset bound (after the cursor) and order of a listing.
            fn ordered<'a>(
                mut q: files::BoxedQuery<'a, $backend>,
                query: &'a ListQuery,
            ) -> Result<files::BoxedQuery<'a, $backend>> {
                let p = &query.params;
                if let Some(c) = &p.cursor {
                    let id = c.id.to_string();
                    q = match (p.sort_by, &c.value) {
                        (SortBy::CreatedAt, SortValue::Int(v)) => {
                            keyset!(q, files::created_at, *v, id, p.direction)
                        }
                        (SortBy::UpdatedAt, SortValue::Int(v)) => {
                            keyset!(q, files::updated_at, *v, id, p.direction)
                        }
                        (SortBy::Size, SortValue::Int(v)) => {
                            keyset!(q, files::size, *v, id, p.direction)
                        }
                        (SortBy::OriginalName, SortValue::Text(v)) => {
                            keyset!(q, files::original_name, v.clone(), id, p.direction)
                        }
                        (SortBy::MimeType, SortValue::Text(v)) => {
                            keyset!(q, files::mime_type, v.clone(), id, p.direction)
                        }
                        _ => return Err(Error::invalid_request("invalid cursor")),
                    };
                }
                Ok(match p.sort_by {
                    SortBy::CreatedAt => order!(q, files::created_at, p.direction),
                    SortBy::UpdatedAt => order!(q, files::updated_at, p.direction),
                    SortBy::Size => order!(q, files::size, p.direction),
                    SortBy::OriginalName => order!(q, files::original_name, p.direction),
                    SortBy::MimeType => order!(q, files::mime_type, p.direction),
                })
            }
        }
        pub(crate) use list_query::{
            branch_page_query, branches, filtered, page_query, tenant_filter,
        };
    };
}

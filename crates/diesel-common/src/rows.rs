//! Rows of the shared tables and their conversions to and from domain types,
//! checked against both backends. A row that does not convert (corrupt data)
//! is an internal error, never a panic.

use diesel::prelude::{Insertable, Queryable, Selectable};
use stowage_domain::auth::{ApiKeyKind, ApiKeyRecord};
use stowage_domain::model::{File, FileId, FileMetadata, Owner, ProjectId, Tenant, Timestamp};
use stowage_domain::upload::{IssuedUpload, UploadState};
use stowage_domain::{Error, Result};

use crate::schema::{api_keys, files, instance_secrets, object_deletions, uploads};
use crate::types::{Json, Shares};

/// The columns of a row type, by field name: one selection for both
/// backends (`as_select()` is typed by backend).
pub fn columns<R: Selectable<diesel::pg::Pg>>() -> R::SelectExpression {
    R::construct_selection()
}

/// A stored value that does not convert: an internal error, never a panic.
pub fn corrupt(what: &str) -> Error {
    Error::internal(format!("corrupt row: {what}"))
}

/// A count or size for a `BIGINT` column (saturating).
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A `BIGINT` read back as a count or size; negative is corrupt.
pub fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(what))
}

/// The tenant of a row.
pub fn tenant(project: &str, env: &str) -> Result<Tenant> {
    Ok(Tenant {
        project: ProjectId::new(project).map_err(|_| corrupt("project"))?,
        env: env.parse().map_err(|_| corrupt("env"))?,
    })
}

/// A row of `api_keys`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: String,
    pub key_hash: String,
    pub project: String,
    pub env: String,
    pub kind: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl From<&ApiKeyRecord> for ApiKeyRow {
    fn from(k: &ApiKeyRecord) -> Self {
        Self {
            id: k.id.clone(),
            key_hash: k.key_hash.clone(),
            project: k.tenant.project.to_string(),
            env: k.tenant.env.to_string(),
            kind: k.kind.as_str().into(),
            created_at: k.created_at.millis(),
            expires_at: k.expires_at.map(Timestamp::millis),
            revoked_at: k.revoked_at.map(Timestamp::millis),
        }
    }
}

impl TryFrom<ApiKeyRow> for ApiKeyRecord {
    type Error = Error;
    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(Self {
            tenant: tenant(&r.project, &r.env)?,
            kind: ApiKeyKind::parse(&r.kind).ok_or_else(|| corrupt("kind"))?,
            id: r.id,
            key_hash: r.key_hash,
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: r.expires_at.map(Timestamp::from_millis),
            revoked_at: r.revoked_at.map(Timestamp::from_millis),
        })
    }
}

/// A row of `uploads`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = uploads, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct UploadRow {
    pub s3_key: String,
    pub project: String,
    pub env: String,
    pub owner_type: String,
    pub owner_id: String,
    pub filename: String,
    pub content_type: String,
    pub declared_size: Option<i64>,
    pub visibility: Option<String>,
    pub category: Option<String>,
    pub max_size: i64,
    pub multipart_id: Option<String>,
    pub state: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub checksum_sha256: Option<String>,
}

impl From<&IssuedUpload> for UploadRow {
    fn from(u: &IssuedUpload) -> Self {
        Self {
            s3_key: u.key.clone(),
            project: u.tenant.project.to_string(),
            env: u.tenant.env.to_string(),
            owner_type: u.owner.kind.to_string(),
            owner_id: u.owner.id.clone(),
            filename: u.filename.clone(),
            content_type: u.content_type.clone(),
            declared_size: u.declared_size.map(to_i64),
            visibility: u.visibility.map(|v| v.to_string()),
            category: u.category.map(|c| c.to_string()),
            max_size: to_i64(u.max_size),
            multipart_id: u.multipart_id.clone(),
            state: u.state.as_str().into(),
            created_at: u.created_at.millis(),
            expires_at: u.expires_at.millis(),
            checksum_sha256: u.checksum_sha256.clone(),
        }
    }
}

impl TryFrom<UploadRow> for IssuedUpload {
    type Error = Error;
    fn try_from(r: UploadRow) -> Result<Self> {
        Ok(Self {
            tenant: tenant(&r.project, &r.env)?,
            owner: Owner {
                kind: r.owner_type.parse().map_err(|_| corrupt("owner_type"))?,
                id: r.owner_id,
            },
            declared_size: r
                .declared_size
                .map(|s| to_u64(s, "declared_size"))
                .transpose()?,
            visibility: r
                .visibility
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| corrupt("visibility"))?,
            category: r
                .category
                .map(|c| c.parse())
                .transpose()
                .map_err(|_| corrupt("category"))?,
            max_size: to_u64(r.max_size, "max_size")?,
            state: UploadState::parse(&r.state).ok_or_else(|| corrupt("state"))?,
            key: r.s3_key,
            filename: r.filename,
            content_type: r.content_type,
            multipart_id: r.multipart_id,
            checksum_sha256: r.checksum_sha256,
            created_at: Timestamp::from_millis(r.created_at),
            expires_at: Timestamp::from_millis(r.expires_at),
        })
    }
}

/// A row of `files`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct FileRow {
    pub id: String,
    pub project: String,
    pub env: String,
    pub s3_key: String,
    pub original_name: String,
    pub name_folded: String,
    pub mime_type: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub visibility: String,
    pub bucket: String,
    pub owner_type: String,
    pub owner_id: String,
    pub shared_with: Shares,
    pub metadata: Json,
    pub created_at: i64,
    pub updated_at: i64,
    pub checksum_sha256: Option<String>,
}

impl FileRow {
    /// The row of `f`.
    ///
    /// # Errors
    /// `common/internal` when its metadata cannot be written as JSON.
    pub fn from_file(f: &File) -> Result<Self> {
        Ok(Self {
            id: f.id.to_string(),
            project: f.tenant.project.to_string(),
            env: f.tenant.env.to_string(),
            s3_key: f.s3_key.clone(),
            original_name: f.original_name.clone(),
            name_folded: stowage_domain::list::search_key(&f.original_name),
            mime_type: f.mime_type.clone(),
            size: to_i64(f.size),
            width: f.width.map(i64::from),
            height: f.height.map(i64::from),
            visibility: f.visibility.to_string(),
            bucket: f.bucket.to_string(),
            owner_type: f.owner.kind.to_string(),
            owner_id: f.owner.id.clone(),
            shared_with: Shares(f.shared_with.clone()),
            metadata: Json(
                serde_json::to_string(&f.metadata).map_err(|e| Error::internal(e.to_string()))?,
            ),
            created_at: f.created_at.millis(),
            updated_at: f.updated_at.millis(),
            checksum_sha256: f.checksum_sha256.clone(),
        })
    }
}

impl TryFrom<FileRow> for File {
    type Error = Error;
    fn try_from(r: FileRow) -> Result<Self> {
        let dim = |v: Option<i64>, what| {
            v.map(|v| u32::try_from(v).map_err(|_| corrupt(what)))
                .transpose()
        };
        Ok(Self {
            id: FileId::parse(&r.id).map_err(|_| corrupt("id"))?,
            tenant: tenant(&r.project, &r.env)?,
            size: to_u64(r.size, "size")?,
            width: dim(r.width, "width")?,
            height: dim(r.height, "height")?,
            visibility: r.visibility.parse().map_err(|_| corrupt("visibility"))?,
            bucket: r.bucket.parse().map_err(|_| corrupt("bucket"))?,
            owner: Owner {
                kind: r.owner_type.parse().map_err(|_| corrupt("owner_type"))?,
                id: r.owner_id,
            },
            shared_with: r.shared_with.0,
            metadata: serde_json::from_str::<FileMetadata>(&r.metadata.0)
                .map_err(|_| corrupt("metadata"))?,
            s3_key: r.s3_key,
            original_name: r.original_name,
            mime_type: r.mime_type,
            checksum_sha256: r.checksum_sha256,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

/// A row of `object_deletions`: an object queued for deletion.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = object_deletions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct DeletionRow {
    pub s3_key: String,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub created_at: i64,
}

/// A row of `instance_secrets`.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = instance_secrets, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SecretRow {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is a secret.
        f.debug_struct("SecretRow")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

//! Row types (PostgreSQL: `jsonb` metadata, `text[]` share list) and their conversion to and from domain types. A row that does not
//! convert (corrupt data) is an internal error, never a panic.

use diesel::prelude::{Insertable, Queryable, Selectable};
use stowage_domain::model::{File, FileId, FileMetadata, Owner, Timestamp};
use stowage_domain::{Error, Result};

use crate::schema::files;

use stowage_diesel_common::rows::{corrupt, tenant, to_i64, to_u64};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = files, check_for_backend(diesel::pg::Pg))]
pub(crate) struct FileRow {
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
    pub shared_with: Vec<String>,
    pub metadata: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FileRow {
    pub(crate) fn from_file(f: &File) -> Result<Self> {
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
            shared_with: f.shared_with.clone(),
            metadata: serde_json::to_value(&f.metadata)
                .map_err(|e| Error::internal(e.to_string()))?,
            created_at: f.created_at.millis(),
            updated_at: f.updated_at.millis(),
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
            shared_with: r.shared_with,
            metadata: serde_json::from_value::<FileMetadata>(r.metadata)
                .map_err(|_| corrupt("metadata"))?,
            s3_key: r.s3_key,
            original_name: r.original_name,
            mime_type: r.mime_type,
            created_at: Timestamp::from_millis(r.created_at),
            updated_at: Timestamp::from_millis(r.updated_at),
        })
    }
}

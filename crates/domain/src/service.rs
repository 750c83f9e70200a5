//! `FileService`: every endpoint of the contract as a use case over the ports.
//! Handlers parse, call one method here, and render the result.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::access::{modify_access, read_access};
use crate::error::{Error, ErrorCode, Result};
use crate::keys;
use crate::limits::{
    Limits, MimeType, MAX_KEY_BYTES, MAX_MIME_CHARS, MAX_NAME_CHARS, MAX_PART_NUMBER,
    MAX_SHARED_WITH,
};
use crate::list::{Cursor, CursorSeal, ListParams, ListQuery, Scope};
use crate::model::{
    Bucket, Category, File, FileId, FileMetadata, FileView, Principal, Timestamp, Visibility,
};
use crate::ports::{Clock, CompletedPart, FileRepository, ObjectStore, QueuedDeletion};
use crate::upload::{IssueUpload, IssuedUpload, UploadState};
use crate::validation::FieldRules;

/// Tunables of the use cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// Size limits.
    pub limits: Limits,
    /// Lifetime of upload URLs, seconds.
    pub upload_url_ttl_secs: u64,
    /// Lifetime of download URLs, seconds.
    pub download_url_ttl_secs: u64,
    /// Lifetime of a multipart upload, seconds.
    pub multipart_ttl_secs: u64,
    /// Age after which an issued single-PUT upload (or a completed multipart
    /// upload) that was never registered is cleaned up, seconds.
    pub abandoned_upload_ttl_secs: u64,
    /// Base of `publicUrl` for public files.
    pub public_base_url: Option<String>,
    /// How long after an upload's URLs expire its staging key is emptied,
    /// seconds: a margin for a store whose clock runs behind this server's.
    pub staging_grace_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            upload_url_ttl_secs: 900,
            download_url_ttl_secs: 3600,
            multipart_ttl_secs: 24 * 3600,
            abandoned_upload_ttl_secs: 24 * 3600,
            public_base_url: None,
            staging_grace_secs: 60,
        }
    }
}

/// Answer of `POST /v1/files/presigned-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// Where to PUT.
    pub url: String,
    /// The issued key.
    pub key: String,
    /// The client's name.
    pub filename: String,
    /// Bound content type.
    pub content_type: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers to send.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub headers: serde_json::Map<String, Value>,
    /// URL expiry.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// Answer of `POST /v1/files/multipart/init`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MultipartTicket {
    /// Store upload id.
    pub upload_id: String,
    /// The issued key.
    pub key: String,
    /// The client's name.
    pub filename: String,
}

/// Answer of `POST /v1/files/multipart/presigned-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartTicket {
    /// Where to PUT the part.
    pub url: String,
    /// The part number.
    pub part_number: u32,
}

/// Answer of `POST /v1/files/multipart/complete`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletedUpload {
    /// The key.
    pub key: String,
    /// Opaque location.
    pub location: String,
}

/// Answer of `POST /v1/files/:id/download-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DownloadTicket {
    /// Where to GET.
    pub url: String,
    /// Original name.
    pub filename: String,
    /// Registered MIME type.
    pub content_type: String,
    /// Size.
    pub size: u64,
    /// URL expiry.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// Body of `POST /v1/files`. Its field rules come first of the seven checks
/// of docs/api.md; the minimum size (configuration) and the metadata limits
/// (a structure) are checked by the use case.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegisterFile {
    /// Issued key.
    #[validate(custom(
        function = "crate::limits::check_key_bytes",
        code = "file/s3-key-too-long"
    ))]
    pub s3_key: String,
    /// Name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    pub original_name: String,
    /// MIME type.
    #[validate(
        length(max = "MAX_MIME_CHARS", code = "file/mime-type-too-long"),
        custom(
            function = "crate::limits::check_mime_syntax",
            code = "file/invalid-format"
        )
    )]
    pub mime_type: String,
    /// Size in bytes.
    #[validate(range(min = 0, code = "file/size-negative"))]
    pub size: i64,
    /// Width.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height.
    #[serde(default)]
    pub height: Option<u32>,
    /// Visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Bucket.
    #[serde(default)]
    pub bucket: Option<Bucket>,
    /// Metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// Share list.
    #[serde(default)]
    #[validate(
        length(
            max = "MAX_SHARED_WITH",
            code = "common/invalid-request",
            message = "at most 100 ids"
        ),
        custom(
            function = "crate::limits::check_user_ids",
            code = "common/invalid-request"
        )
    )]
    pub shared_with: Option<Vec<String>>,
}

impl FieldRules for RegisterFile {
    const FIELDS: &'static [&'static str] = &[
        "s3_key",
        "original_name",
        "mime_type",
        "size",
        "shared_with",
    ];
}

/// Body of `PATCH /v1/files/:id`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FilePatch {
    /// New name.
    #[serde(default)]
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    pub original_name: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// RFC 7396 merge patch of metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// New share list.
    #[serde(default)]
    #[validate(
        length(
            max = "MAX_SHARED_WITH",
            code = "common/invalid-request",
            message = "at most 100 ids"
        ),
        custom(
            function = "crate::limits::check_user_ids",
            code = "common/invalid-request"
        )
    )]
    pub shared_with: Option<Vec<String>>,
}

impl FieldRules for FilePatch {
    const FIELDS: &'static [&'static str] = &["original_name", "shared_with"];
}

/// File-object fields that PATCH may not change.
const IMMUTABLE_FIELDS: &[&str] = &[
    "id",
    "s3Key",
    "size",
    "mimeType",
    "bucket",
    "width",
    "height",
    "ownerId",
    "ownerType",
    "createdAt",
    "updatedAt",
];

impl FilePatch {
    /// Parses a PATCH body, rejecting immutable fields.
    ///
    /// # Errors
    /// `common/invalid-request` naming the field.
    pub fn from_json(body: Value) -> Result<Self> {
        let Value::Object(map) = &body else {
            return Err(Error::invalid_request("request body must be a JSON object"));
        };
        if let Some(field) = IMMUTABLE_FIELDS.iter().find(|f| map.contains_key(**f)) {
            return Err(Error::invalid_request(format!(
                "field `{field}` cannot be changed"
            )));
        }
        serde_json::from_value(body).map_err(|e| Error::invalid_request(e.to_string()))
    }
}

/// One entry of `parts` as sent by the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartInput {
    /// Part number.
    pub part_number: Value,
    /// ETag, quoted or not.
    #[serde(default)]
    pub etag: Option<String>,
}

/// Pagination block of a list answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Visible matching rows.
    pub total: u64,
    /// Page number.
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Pages in all.
    pub total_pages: u64,
    /// Whether a next page exists.
    pub has_next_page: bool,
    /// Whether a previous page exists.
    pub has_prev_page: bool,
    /// Cursor of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Answer of `GET /v1/files`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    /// Rows, each in the caller's projection.
    pub items: Vec<FileView>,
    /// Pagination.
    pub pagination: Pagination,
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266 with RFC 5987 encoding).
pub fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == name {
        return format!("attachment; filename=\"{name}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A share list (already checked by its field rules) without repeated ids,
/// first occurrence kept.
fn dedupe_ids(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for id in list {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn default_bucket(category: Option<Category>) -> Bucket {
    match category {
        Some(Category::Images) => Bucket::Images,
        Some(Category::Documents) => Bucket::Documents,
        Some(Category::Media) => Bucket::Media,
        Some(Category::Temp) => Bucket::Temp,
        _ => Bucket::Files,
    }
}

fn strip_quotes(etag: &str) -> &str {
    etag.trim().trim_start_matches('"').trim_end_matches('"')
}

/// Name of the cursor-sealing key in [`FileRepository::instance_secret`].
pub const CURSOR_SECRET: &str = "cursor-hmac";

/// How often a PATCH re-applies itself to a state changed under it before
/// giving up with `common/service-unavailable`.
const MAX_PATCH_ATTEMPTS: usize = 100;

/// What the bytes of one gateway `PUT` may amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadAllowance {
    /// Most bytes the body may carry; one more is `file/file-too-large`.
    pub max_bytes: u64,
}

/// The use cases.
pub struct FileService {
    repo: Arc<dyn FileRepository>,
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    config: ServiceConfig,
    seal: std::sync::OnceLock<CursorSeal>,
}

impl FileService {
    /// Wires the service to its ports.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        store: Arc<dyn ObjectStore>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            repo,
            store,
            clock,
            config,
            seal: std::sync::OnceLock::new(),
        }
    }

    /// The cursor seal, its key fetched from (or first stored in) the
    /// repository, so every replica on one database seals alike.
    async fn cursor_seal(&self) -> Result<&CursorSeal> {
        if let Some(seal) = self.seal.get() {
            return Ok(seal);
        }
        let mut candidate = Vec::with_capacity(32);
        candidate.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        candidate.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        let key = self.repo.instance_secret(CURSOR_SECRET, &candidate).await?;
        let seal = CursorSeal::new(key)?;
        Ok(self.seal.get_or_init(|| seal))
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Validates an issue request; returns `(mime, declared size, max size)`.
    fn check_issue(&self, req: &IssueUpload, multipart: bool) -> Result<(MimeType, Option<u64>)> {
        req.check_fields()?;
        let mime = MimeType::parse(&req.content_type)?;
        Limits::check_mime_for_category(&mime, req.category)?;
        let max = self.config.limits.max_size(req.category, multipart);
        let size = req
            .file_size
            .map(|s| self.config.limits.check_size(s, max))
            .transpose()?;
        Ok((mime, size))
    }

    async fn issue(
        &self,
        principal: &Principal,
        req: &IssueUpload,
        mime: &MimeType,
        size: Option<u64>,
        multipart_id: Option<String>,
        key: String,
    ) -> Result<IssuedUpload> {
        let ttl = if multipart_id.is_some() {
            self.config.multipart_ttl_secs
        } else {
            self.config.upload_url_ttl_secs
        };
        let now = self.clock.now();
        let upload = IssuedUpload {
            key,
            tenant: principal.tenant.clone(),
            owner: principal.identity.clone(),
            filename: req.filename.clone(),
            content_type: mime.as_str().to_owned(),
            declared_size: size,
            visibility: req.visibility,
            category: req.category,
            max_size: self
                .config
                .limits
                .max_size(req.category, multipart_id.is_some()),
            multipart_id,
            state: UploadState::Pending,
            created_at: now,
            expires_at: now.plus_secs(ttl),
        };
        self.repo.insert_upload(&upload).await?;
        Ok(upload)
    }

    /// `POST /v1/files/presigned-url`.
    pub async fn issue_upload_url(
        &self,
        principal: &Principal,
        req: IssueUpload,
    ) -> Result<UploadTicket> {
        let (mime, size) = self.check_issue(&req, false)?;
        let key = keys::generate(&principal.tenant, &principal.identity, &req.filename);
        let upload = self.issue(principal, &req, &mime, size, None, key).await?;
        let presigned = self
            .store
            .presign_put(
                &keys::staging_key(&upload.key),
                &upload.content_type,
                size,
                upload.expires_at,
            )
            .await?;
        Ok(UploadTicket {
            url: presigned.url,
            key: upload.key,
            filename: upload.filename,
            content_type: upload.content_type,
            method: presigned.method,
            headers: presigned
                .headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
            expires_at: upload.expires_at,
        })
    }

    /// `POST /v1/files/multipart/init`.
    pub async fn init_multipart(
        &self,
        principal: &Principal,
        req: IssueUpload,
    ) -> Result<MultipartTicket> {
        if req.file_size.is_none() {
            return Err(Error::invalid_request("missing field `fileSize`"));
        }
        let (mime, size) = self.check_issue(&req, true)?;
        let key = keys::generate(&principal.tenant, &principal.identity, &req.filename);
        let upload_id = self
            .store
            .create_multipart(&keys::staging_key(&key), mime.as_str())
            .await?;
        let upload = self
            .issue(principal, &req, &mime, size, Some(upload_id.clone()), key)
            .await?;
        Ok(MultipartTicket {
            upload_id,
            key: upload.key,
            filename: upload.filename,
        })
    }

    /// Finds a pending multipart upload the caller may drive.
    async fn multipart_upload(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
    ) -> Result<IssuedUpload> {
        let not_found = || Error::new(ErrorCode::UploadNotFound);
        if key.len() > MAX_KEY_BYTES || !keys::belongs_to(key, &principal.tenant) {
            return Err(not_found());
        }
        let upload = self
            .repo
            .find_upload(&principal.tenant, key)
            .await?
            .ok_or_else(not_found)?;
        if upload.multipart_id.as_deref() != Some(upload_id)
            || upload.state != UploadState::Pending
            || upload.expires_at <= self.clock.now()
        {
            return Err(not_found());
        }
        if !(principal.admin || principal.is(&upload.owner)) {
            return Err(Error::new(ErrorCode::AccessDenied));
        }
        Ok(upload)
    }

    /// `POST /v1/files/multipart/presigned-url`.
    pub async fn presign_part(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
        part_number: &Value,
    ) -> Result<PartTicket> {
        let part_number = parse_part_number(part_number)?;
        let upload = self.multipart_upload(principal, key, upload_id).await?;
        let expires = self
            .clock
            .now()
            .plus_secs(self.config.upload_url_ttl_secs)
            .min(upload.expires_at);
        let presigned = self
            .store
            .presign_part(&keys::staging_key(key), upload_id, part_number, expires)
            .await?;
        Ok(PartTicket {
            url: presigned.url,
            part_number,
        })
    }

    /// `POST /v1/files/multipart/complete`.
    pub async fn complete_multipart(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
        parts: Option<&Value>,
    ) -> Result<CompletedUpload> {
        let parts = parse_parts(parts)?;
        let upload = self.multipart_upload(principal, key, upload_id).await?;
        let tenant = &principal.tenant;
        // Claim the upload first: of a completion racing an abort (or another
        // completion), exactly one gets past this line.
        if !self
            .repo
            .transition_upload(tenant, key, UploadState::Pending, UploadState::Completing)
            .await?
        {
            return Err(Error::new(ErrorCode::UploadNotFound));
        }
        let staged = keys::staging_key(key);
        let assembled = match self
            .store
            .complete_multipart(&staged, upload_id, &parts)
            .await
        {
            Ok(assembled) => assembled,
            Err(e) => {
                // A wrong parts list leaves the upload open for a corrected
                // one; an upload the store no longer knows is over.
                let back = if e.code() == ErrorCode::UploadNotFound {
                    UploadState::Aborted
                } else {
                    UploadState::Pending
                };
                self.repo
                    .transition_upload(tenant, key, UploadState::Completing, back)
                    .await?;
                return Err(e);
            }
        };
        if assembled.size > upload.max_size
            || upload.declared_size.is_some_and(|d| d != assembled.size)
        {
            self.discard_object(&staged).await;
            self.repo
                .transition_upload(tenant, key, UploadState::Completing, UploadState::Aborted)
                .await?;
            return Err(if assembled.size > upload.max_size {
                Error::new(ErrorCode::FileTooLarge)
            } else {
                Error::with_message(
                    ErrorCode::SizeMismatch,
                    "Assembled size differs from the declared fileSize",
                )
            });
        }
        self.repo
            .transition_upload(tenant, key, UploadState::Completing, UploadState::Completed)
            .await?;
        Ok(CompletedUpload {
            key: key.to_owned(),
            location: assembled.location,
        })
    }

    /// `POST /v1/files/multipart/abort`.
    pub async fn abort_multipart(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
    ) -> Result<String> {
        self.multipart_upload(principal, key, upload_id).await?;
        if !self
            .repo
            .transition_upload(
                &principal.tenant,
                key,
                UploadState::Pending,
                UploadState::Aborted,
            )
            .await?
        {
            return Err(Error::new(ErrorCode::UploadNotFound));
        }
        self.store
            .abort_multipart(&keys::staging_key(key), upload_id)
            .await?;
        Ok(key.to_owned())
    }

    /// Which upload a gateway `PUT` to `staged` feeds, and how many bytes it
    /// may carry (docs/api.md §12): the upload must still be pending (for a part,
    /// the multipart upload `upload_id`), so no URL outlives its upload; the
    /// body may not pass the declared size, else the limit of the category.
    ///
    /// # Errors
    /// `file/access-denied` when the upload is registered, completed, aborted,
    /// expired or unknown (the URL's signature was valid, its upload is over).
    pub async fn authorize_upload_bytes(
        &self,
        staged: &str,
        upload_id: Option<&str>,
    ) -> Result<UploadAllowance> {
        let over = || {
            Error::with_message(
                ErrorCode::AccessDenied,
                "This upload is no longer accepting bytes",
            )
        };
        let key = keys::unstaged(staged).ok_or_else(over)?;
        let tenant = keys::tenant_of(key).ok_or_else(over)?;
        let upload = self
            .repo
            .find_upload(&tenant, key)
            .await?
            .ok_or_else(over)?;
        let open = upload.state == UploadState::Pending
            && upload.expires_at > self.clock.now()
            && upload.multipart_id.as_deref() == upload_id;
        if !open {
            return Err(over());
        }
        Ok(UploadAllowance {
            max_bytes: upload
                .declared_size
                .map_or(upload.max_size, |d| d.min(upload.max_size)),
        })
    }

    /// `POST /v1/files`: the seven checks of docs/api.md, in order.
    pub async fn register(&self, principal: &Principal, req: RegisterFile) -> Result<FileView> {
        // Field rules.
        req.check_fields()?;
        let mime = MimeType::parse(&req.mime_type)?;
        let size = u64::try_from(req.size).map_err(|_| Error::new(ErrorCode::SizeNegative))?;
        if size < self.config.limits.min_size {
            return Err(Error::new(ErrorCode::FileTooSmall));
        }
        let metadata = req
            .metadata
            .map(FileMetadata::from_json)
            .transpose()?
            .unwrap_or_default();
        let shared_with = dedupe_ids(req.shared_with.unwrap_or_default());

        // Claim the upload in the same step that reads it: of two racing
        // registrations one gets past this line, so the object is moved into
        // place at most once. Checks 2-5 then run on what was claimed (a
        // failed check gives the claim back); when nothing could be claimed
        // they run on the upload as it is, to say why.
        let tenant = &principal.tenant;
        let claimed = if keys::belongs_to(&req.s3_key, tenant) {
            self.repo
                .claim_for_registration(tenant, &req.s3_key)
                .await?
        } else {
            None
        };
        let upload = match claimed {
            Some(upload) => {
                if let Err(e) = registration_checks(principal, &upload, &mime, size) {
                    self.release_claim(&upload).await;
                    return Err(e);
                }
                upload
            }
            None => {
                let found = if keys::belongs_to(&req.s3_key, tenant) {
                    self.repo.find_upload(tenant, &req.s3_key).await?
                } else {
                    None
                };
                let upload = found.ok_or_else(|| Error::new(ErrorCode::InvalidPath))?;
                registration_checks(principal, &upload, &mime, size)?;
                // Checks pass, yet the claim failed: it moved meanwhile.
                return Err(Error::new(ErrorCode::S3KeyAlreadyExists));
            }
        };
        let now = self.clock.now();
        let file = File {
            id: FileId::generate(),
            tenant: principal.tenant.clone(),
            s3_key: upload.key.clone(),
            original_name: req.original_name,
            mime_type: mime.into_string(),
            size,
            width: req.width,
            height: req.height,
            visibility: req
                .visibility
                .or(upload.visibility)
                .unwrap_or(Visibility::Private),
            bucket: req
                .bucket
                .unwrap_or_else(|| default_bucket(upload.category)),
            owner: upload.owner.clone(),
            shared_with,
            metadata,
            created_at: now,
            updated_at: now,
        };
        match self.place_and_register(&upload, &file).await {
            Ok(()) => Ok(self.view(&file, crate::model::Projection::Full)),
            Err(e) => {
                // Let the caller try again (or the sweeper clean up).
                self.release_claim(&upload).await;
                Err(e)
            }
        }
    }

    /// Gives a registration's claim back: the upload returns to the state it
    /// was claimed from, so the caller may try again (if even that fails, the
    /// sweeper aborts the upload once it is abandoned).
    async fn release_claim(&self, upload: &IssuedUpload) {
        let _ = self
            .repo
            .transition_upload(
                &upload.tenant,
                &upload.key,
                UploadState::Registering,
                upload.state,
            )
            .await;
    }

    /// Registration past its claim: checks 6 and 7 against the stored object,
    /// moves it from staging to its key (where no URL can write), queues the
    /// staging key for deletion once the upload's URLs have expired (a late
    /// `PUT` can only land there), and records the file.
    async fn place_and_register(&self, upload: &IssuedUpload, file: &File) -> Result<()> {
        let staged = keys::staging_key(&upload.key);
        // 6. Uploaded? The bytes are in staging, or already at the key when an
        // earlier attempt of this registration moved them and then failed.
        let (object, location) = match self.store.head(&staged).await? {
            Some(info) => (info, staged.as_str()),
            None => (
                self.store.head(&upload.key).await?.ok_or_else(|| {
                    Error::with_message(
                        ErrorCode::UploadNotFound,
                        "No object has been uploaded with this key",
                    )
                })?,
                upload.key.as_str(),
            ),
        };
        // 7. Of that size?
        if object.size > upload.max_size {
            self.discard_object(location).await;
            return Err(Error::new(ErrorCode::FileTooLarge));
        }
        if object.size != file.size {
            return Err(Error::with_message(
                ErrorCode::SizeMismatch,
                format!("The uploaded object has {} bytes", object.size),
            ));
        }
        if location == staged {
            self.store
                .promote(&staged, &upload.key, object.size)
                .await?;
        }
        let cleanup = QueuedDeletion {
            key: staged,
            due: upload.expires_at.plus_secs(self.config.staging_grace_secs),
        };
        self.repo.register_file(file, Some(&cleanup)).await
    }

    /// Deletes an object now, or queues it when the store fails.
    async fn discard_object(&self, key: &str) {
        if self.store.delete(key).await.is_err() {
            // Best effort: if even the queue fails, the lifecycle worker's sweep of
            // unregistered uploads still removes the object later.
            let _ = self
                .repo
                .enqueue_object_deletion(key, self.clock.now())
                .await;
        }
    }

    fn view(&self, file: &File, projection: crate::model::Projection) -> FileView {
        file.view(projection, self.config.public_base_url.as_deref())
    }

    async fn load(&self, principal: &Principal, id: &str) -> Result<File> {
        let id = FileId::parse(id)?;
        self.repo
            .get_file(&principal.tenant, id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::FileNotFound))
    }

    /// `GET /v1/files/:id`.
    pub async fn get(&self, principal: &Principal, id: &str) -> Result<FileView> {
        let file = self.load(principal, id).await?;
        let projection = read_access(principal, &file)?;
        Ok(self.view(&file, projection))
    }

    /// `GET /v1/files`.
    pub async fn list(&self, principal: &Principal, mut params: ListParams) -> Result<FileList> {
        if let Some(raw) = params.cursor_token.take() {
            params.cursor = Some(self.cursor_seal().await?.open(&raw, principal, &params)?);
        }
        let query = ListQuery {
            tenant: principal.tenant.clone(),
            scope: Scope::of(principal),
            params,
        };
        let page = self.repo.list_files(&query).await?;
        let params = query.params;
        let items = page
            .items
            .iter()
            .map(|f| read_access(principal, f).map(|p| self.view(f, p)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| {
                Error::internal(format!(
                    "repository returned a row outside the caller's scope: {e}"
                ))
            })?;
        let total_pages = page.total.div_ceil(u64::from(params.limit));
        let next_cursor = match page.items.last() {
            Some(last) if page.has_more => Some(self.cursor_seal().await?.seal(
                &Cursor {
                    total: Some(page.total),
                    ..Cursor::after(last, params.sort_by, params.direction)
                },
                principal,
                &params,
            )),
            _ => None,
        };
        Ok(FileList {
            items,
            pagination: Pagination {
                total: page.total,
                page: params.page,
                limit: params.limit,
                total_pages,
                has_next_page: page.has_more,
                has_prev_page: params.page > 1 || params.cursor.is_some(),
                next_cursor,
            },
        })
    }

    /// `PATCH /v1/files/:id`.
    pub async fn patch(
        &self,
        principal: &Principal,
        id: &str,
        patch: FilePatch,
    ) -> Result<FileView> {
        patch.check_fields()?;
        let shared_with = patch.shared_with.map(dedupe_ids);
        if let Some(meta) = &patch.metadata {
            crate::text::check_json(meta)?;
        }
        let mut file = self.load(principal, id).await?;
        for _ in 0..MAX_PATCH_ATTEMPTS {
            modify_access(principal, &file)?;
            let expected = file.updated_at;
            if let Some(meta) = &patch.metadata {
                file.metadata = file.metadata.merge_patch(meta)?;
            }
            if let Some(name) = &patch.original_name {
                file.original_name.clone_from(name);
            }
            if let Some(v) = patch.visibility {
                file.visibility = v;
            }
            if let Some(list) = &shared_with {
                file.shared_with.clone_from(list);
            }
            // Strictly later than before, even within one millisecond: the
            // version the next compare-and-set checks against.
            file.updated_at = self
                .clock
                .now()
                .max(Timestamp::from_millis(expected.millis() + 1));
            if self.repo.update_file(&file, expected).await? {
                return Ok(self.view(&file, crate::model::Projection::Full));
            }
            // Changed under us: apply the patch again to the latest state (or
            // answer 404 if it was deleted meanwhile).
            file = self.load(principal, id).await?;
        }
        Err(Error::unavailable(
            "The file is changing too fast to apply this patch; try again",
        ))
    }

    /// `DELETE /v1/files/:id`: the row goes and the object deletion is queued in
    /// one transaction; then the object is deleted now if the store allows.
    pub async fn delete(&self, principal: &Principal, id: &str) -> Result<()> {
        let file = self.load(principal, id).await?;
        modify_access(principal, &file)?;
        let now = self.clock.now();
        if let Some(deleted) = self
            .repo
            .delete_file(&principal.tenant, file.id, now)
            .await?
        {
            if self.store.delete(&deleted.s3_key).await.is_ok() {
                self.repo.finish_object_deletion(&deleted.s3_key).await?;
            }
        }
        Ok(())
    }

    /// `POST /v1/files/:id/download-url`.
    pub async fn download_url(&self, principal: &Principal, id: &str) -> Result<DownloadTicket> {
        let file = self.load(principal, id).await?;
        read_access(principal, &file)?;
        let expires_at = self
            .clock
            .now()
            .plus_secs(self.config.download_url_ttl_secs);
        let presigned = self
            .store
            .presign_get(
                &file.s3_key,
                &file.mime_type,
                &content_disposition(&file.original_name),
                expires_at,
            )
            .await?;
        Ok(DownloadTicket {
            url: presigned.url,
            filename: file.original_name,
            content_type: file.mime_type,
            size: file.size,
            expires_at,
        })
    }

    /// Retries queued object deletions that are due; returns how many objects went.
    pub async fn retry_object_deletions(&self, batch: u32) -> Result<usize> {
        let now = self.clock.now();
        let due = self.repo.due_object_deletions(now, batch).await?;
        let mut done = 0;
        for key in due {
            match self.store.delete(&key).await {
                Ok(()) => {
                    self.repo.finish_object_deletion(&key).await?;
                    done += 1;
                }
                Err(_) => {
                    self.repo
                        .defer_object_deletion(&key, now.plus_secs(60))
                        .await?
                }
            }
        }
        Ok(done)
    }

    /// Cleans up abandoned uploads (see [`FileRepository::abandoned_uploads`]):
    /// each is first moved to `aborted` (compare-and-set, so a registration
    /// racing with the sweep either wins or finds nothing), then its object is
    /// deleted or its multipart upload aborted; a failed deletion is queued.
    /// Returns how many uploads were cleaned.
    pub async fn sweep_abandoned_uploads(&self, batch: u32) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = Timestamp::from_millis(
            now.millis() - (self.config.abandoned_upload_ttl_secs as i64).saturating_mul(1000),
        );
        let mut cleaned = 0;
        for upload in self.repo.abandoned_uploads(cutoff, now, batch).await? {
            if !self
                .repo
                .transition_upload(
                    &upload.tenant,
                    &upload.key,
                    upload.state,
                    UploadState::Aborted,
                )
                .await?
            {
                continue; // Registered or swept by another replica meanwhile.
            }
            let staged = keys::staging_key(&upload.key);
            if let (Some(id), UploadState::Pending | UploadState::Completing) =
                (&upload.multipart_id, upload.state)
            {
                // If this fails the parts stay until the store's own lifecycle
                // removes them; they can no longer become an object through us.
                let _ = self.store.abort_multipart(&staged, id).await;
            }
            // Whatever the state, an object may be in staging (uploaded, or
            // assembled before a crash) or at the key (moved there by a
            // registration that crashed before recording the file); no file
            // row names either, since the upload was never registered.
            self.discard_object(&staged).await;
            self.discard_object(&upload.key).await;
            cleaned += 1;
        }
        Ok(cleaned)
    }

    /// Readiness: both backends answer.
    pub async fn health_check(&self) -> Result<()> {
        self.repo.health_check().await?;
        self.store.health_check().await
    }
}

/// Checks 3-5 of registration (docs/api.md §4) on the upload of the key (check 2,
/// "issued here", is having found it): issued to this caller (or an admin),
/// not registered yet (nor being registered), completed if multipart, and
/// registered as issued.
fn registration_checks(
    principal: &Principal,
    upload: &IssuedUpload,
    mime: &MimeType,
    size: u64,
) -> Result<()> {
    if !(principal.admin || principal.is(&upload.owner)) {
        return Err(Error::new(ErrorCode::AccessDenied));
    }
    match upload.state {
        UploadState::Registered | UploadState::Registering => {
            return Err(Error::new(ErrorCode::S3KeyAlreadyExists))
        }
        UploadState::Aborted => return Err(Error::new(ErrorCode::UploadNotFound)),
        UploadState::Pending | UploadState::Completing if upload.multipart_id.is_some() => {
            return Err(Error::with_message(
                ErrorCode::UploadNotFound,
                "Multipart upload is not completed",
            ))
        }
        UploadState::Pending | UploadState::Completing | UploadState::Completed => {}
    }
    if mime.as_str() != upload.content_type {
        return Err(Error::with_message(
            ErrorCode::InvalidFormat,
            format!("mimeType must be `{}` as issued", upload.content_type),
        ));
    }
    if upload.declared_size.is_some_and(|d| d != size) {
        return Err(Error::with_message(
            ErrorCode::SizeMismatch,
            "size differs from the declared fileSize",
        ));
    }
    Ok(())
}

fn parse_part_number(v: &Value) -> Result<u32> {
    v.as_u64()
        .filter(|n| (1..=u64::from(MAX_PART_NUMBER)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| Error::new(ErrorCode::InvalidPartNumberRange))
}

fn parse_parts(parts: Option<&Value>) -> Result<Vec<CompletedPart>> {
    let invalid = |m: &str| Error::with_message(ErrorCode::InvalidPartsArray, m.to_owned());
    let list = parts
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("parts must be a non-empty array"))?;
    if list.is_empty() || list.len() > MAX_PART_NUMBER as usize {
        return Err(invalid("parts must have 1 to 10000 items"));
    }
    let mut out: Vec<CompletedPart> = Vec::with_capacity(list.len());
    for item in list {
        let part: PartInput = serde_json::from_value(item.clone())
            .map_err(|_| invalid("each part needs partNumber and etag"))?;
        let part_number = parse_part_number(&part.part_number)
            .map_err(|_| invalid("partNumber must be 1-10000"))?;
        let etag = part
            .etag
            .as_deref()
            .map(strip_quotes)
            .filter(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| invalid("missing etag"))?;
        if out
            .last()
            .is_some_and(|prev| prev.part_number >= part_number)
        {
            return Err(invalid(
                "parts must be sorted by partNumber without duplicates",
            ));
        }
        out.push(CompletedPart {
            part_number,
            etag: etag.to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_USER_ID_CHARS;
    use serde_json::json;

    #[test]
    fn disposition() {
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("résumé \"1\".pdf"),
            "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
        );
    }

    #[test]
    fn parts_validation() {
        let code = |v: Option<Value>| parse_parts(v.as_ref()).err().map(|e| e.code());
        let bad = Some(ErrorCode::InvalidPartsArray);
        assert_eq!(code(None), bad);
        assert_eq!(code(Some(json!("x"))), bad);
        assert_eq!(code(Some(json!([]))), bad);
        assert_eq!(
            code(Some(
                json!([{"partNumber":2,"etag":"a"},{"partNumber":1,"etag":"b"}])
            )),
            bad
        );
        assert_eq!(
            code(Some(
                json!([{"partNumber":1,"etag":"a"},{"partNumber":1,"etag":"b"}])
            )),
            bad
        );
        assert_eq!(code(Some(json!([{"partNumber":1,"etag":"\"\""}]))), bad);
        assert_eq!(code(Some(json!([{"partNumber":1}]))), bad);
        assert_eq!(code(Some(json!([{"partNumber":0,"etag":"a"}]))), bad);
        let many: Vec<Value> = (1..=10_001)
            .map(|n| json!({"partNumber": n, "etag": "a"}))
            .collect();
        assert_eq!(code(Some(Value::Array(many))), bad);
        let ok = parse_parts(Some(
            &json!([{"partNumber":1,"etag":"\"abc\""},{"partNumber":3,"etag":"def"}]),
        ));
        assert_eq!(
            ok.ok()
                .map(|p| p.iter().map(|p| p.etag.clone()).collect::<Vec<_>>()),
            Some(vec!["abc".into(), "def".into()])
        );
    }

    #[test]
    fn part_numbers() {
        for ok in [json!(1), json!(10000)] {
            assert!(parse_part_number(&ok).is_ok());
        }
        for bad in [
            json!(0),
            json!(10001),
            json!(1.5),
            json!("1"),
            json!(-1),
            json!(null),
        ] {
            assert_eq!(
                parse_part_number(&bad).err().map(|e| e.code()),
                Some(ErrorCode::InvalidPartNumberRange),
                "{bad}"
            );
        }
    }

    #[test]
    fn patch_rejects_immutable_fields() {
        for f in IMMUTABLE_FIELDS {
            let body = json!({ *f: 1 });
            assert_eq!(
                FilePatch::from_json(body).err().map(|e| e.code()),
                Some(ErrorCode::InvalidRequest),
                "{f}"
            );
        }
        assert!(FilePatch::from_json(json!({"originalName":"x","other":1})).is_ok());
        assert!(FilePatch::from_json(json!({"visibility":"nope"})).is_err());
        assert!(FilePatch::from_json(json!([1])).is_err());
    }

    fn register_body(f: impl FnOnce(&mut RegisterFile)) -> RegisterFile {
        let mut r = RegisterFile {
            s3_key: "p/e/h/u/a.txt".into(),
            original_name: "a.txt".into(),
            mime_type: "text/plain".into(),
            size: 1,
            width: None,
            height: None,
            visibility: None,
            bucket: None,
            metadata: None,
            shared_with: None,
        };
        f(&mut r);
        r
    }

    fn rule(r: &impl FieldRules) -> Option<ErrorCode> {
        r.check_fields().err().map(|e| e.code())
    }

    /// Every bound of the field rules at limit - 1, limit and limit + 1.
    #[test]
    fn field_rule_boundaries() {
        use ErrorCode as C;
        // s3Key: bytes, not characters ("é" is two bytes).
        for (key, want) in [
            ("k".repeat(MAX_KEY_BYTES - 1), None),
            ("k".repeat(MAX_KEY_BYTES), None),
            ("k".repeat(MAX_KEY_BYTES + 1), Some(C::S3KeyTooLong)),
            ("\u{e9}".repeat(MAX_KEY_BYTES / 2), None),
            (
                format!("{}k", "\u{e9}".repeat(MAX_KEY_BYTES / 2)),
                Some(C::S3KeyTooLong),
            ),
        ] {
            assert_eq!(
                rule(&register_body(|r| r.s3_key = key.clone())),
                want,
                "{}",
                key.len()
            );
        }
        // Names: characters, on every input that carries one.
        for (n, want) in [
            (MAX_NAME_CHARS - 1, None),
            (MAX_NAME_CHARS, None),
            (MAX_NAME_CHARS + 1, Some(C::OriginalNameTooLong)),
        ] {
            let name = "\u{1F600}".repeat(n as usize);
            assert_eq!(
                rule(&register_body(|r| r.original_name = name.clone())),
                want
            );
            let patch = FilePatch {
                original_name: Some(name.clone()),
                ..FilePatch::default()
            };
            assert_eq!(rule(&patch), want);
            let issue = IssueUpload {
                filename: name.clone(),
                content_type: "text/plain".into(),
                file_size: None,
                visibility: None,
                category: None,
            };
            assert_eq!(rule(&issue), want);
        }
        // A name breaking both rules: the bound is checked first.
        assert_eq!(
            rule(&register_body(
                |r| r.original_name = format!("/{}", "a".repeat(300))
            )),
            Some(C::OriginalNameTooLong)
        );
        assert_eq!(
            rule(&register_body(|r| r.original_name = "/a".into())),
            Some(C::InvalidName)
        );
        // MIME types: characters, then syntax.
        for (n, want) in [
            (MAX_MIME_CHARS - 1, None),
            (MAX_MIME_CHARS, None),
            (MAX_MIME_CHARS + 1, Some(C::MimeTypeTooLong)),
        ] {
            let mime = format!("{}/{}", "a".repeat(n as usize - 128), "b".repeat(127));
            assert_eq!(mime.chars().count() as u64, n);
            assert_eq!(
                rule(&register_body(|r| r.mime_type = mime.clone())),
                want,
                "{n}"
            );
        }
        assert_eq!(
            rule(&register_body(|r| r.mime_type = "text".into())),
            Some(C::InvalidFormat)
        );
        // Sizes: -1, 0 (the minimum is configuration, checked by the use case), 1.
        for (size, want) in [
            (-1, Some(C::SizeNegative)),
            (0, None),
            (1, None),
            (i64::MIN, Some(C::SizeNegative)),
        ] {
            assert_eq!(rule(&register_body(|r| r.size = size)), want);
        }
        // Share lists: count, then each id.
        for (n, want) in [
            (MAX_SHARED_WITH - 1, None),
            (MAX_SHARED_WITH, None),
            (MAX_SHARED_WITH + 1, Some(C::InvalidRequest)),
        ] {
            let ids: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
            assert_eq!(
                rule(&register_body(|r| r.shared_with = Some(ids.clone()))),
                want
            );
            let patch = FilePatch {
                shared_with: Some(ids),
                ..FilePatch::default()
            };
            assert_eq!(rule(&patch), want);
        }
        for (id, want) in [
            ("u".repeat(MAX_USER_ID_CHARS - 1), None),
            ("u".repeat(MAX_USER_ID_CHARS), None),
            ("u".repeat(MAX_USER_ID_CHARS + 1), Some(C::InvalidRequest)),
            (String::new(), Some(C::InvalidRequest)),
            ("a\u{7}b".into(), Some(C::InvalidRequest)),
        ] {
            assert_eq!(
                rule(&register_body(|r| r.shared_with = Some(vec![id.clone()]))),
                want
            );
        }
        let e = register_body(|r| r.shared_with = Some(vec![String::new(); 101]))
            .check_fields()
            .err();
        assert_eq!(
            e.map(|e| e.message().to_owned()).as_deref(),
            Some("sharedWith: at most 100 ids")
        );
        assert_eq!(
            dedupe_ids(vec!["a".into(), "a".into(), "b".into()]),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}

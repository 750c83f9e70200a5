//! `FileService`: every endpoint of the contract as a use case over the ports.
//! Handlers parse, call one method here, and render the result.
//!
//! - `dto`: the typed inputs the use cases take and the answers they return (re-exported here);
//! - `uploads`: issuing upload URLs, multipart uploads, the gateway's byte allowance;
//! - `register`: the seven checks of registration and the move out of staging;
//! - `files`: reading, listing, changing, deleting files and download URLs;
//! - `usage`: what the caller and the project hold, against their quotas;
//! - `lifecycle`: the background steps (queued deletions, abandoned uploads) and health.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use validator::Validate;

use crate::access::{modify_access, read_access};
use crate::error::{Error, ErrorCode, Result};
use crate::events::{Event, EventCounts, EventType};
use crate::keys;
use crate::limits::{
    Limits, MimeType, MAX_KEY_BYTES, MAX_MIME_CHARS, MAX_NAME_CHARS, MAX_SHARED_WITH,
};
use crate::list::{CursorSeal, ListParams, ListQuery, Scope};
use crate::model::{
    Bucket, Category, File, FileId, FileMetadata, FileView, OwnerType, Principal, Timestamp,
    Visibility,
};
use crate::ports::{
    Clock, FileRepository, Ids, ObjectStore, PresignedRequest, QueuedDeletion, SystemIds,
};
use crate::quota::Usage;
use crate::upload::{CompletedParts, IssueUpload, IssuedUpload, PartNumber, UploadState};
use crate::validation::FieldRules;

mod dto;
mod files;
mod images;
mod lifecycle;
mod public;
mod register;
mod uploads;
mod usage;

pub use dto::*;
pub use images::{
    ImageConfig, ImageSignature, ImageSource, DERIVED_IMAGE_GRACE_SECS, IMAGE_URL_SECRET,
};
pub use public::{PublicFile, PUBLIC_REDIRECT_TTL_SECS};
pub use usage::{UsageReport, UsageView};

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
    /// Quotas per user and per project (docs/api.md §11).
    pub quota: crate::quota::Quota,
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
            quota: crate::quota::Quota::NONE,
        }
    }
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
    ids: Arc<dyn Ids>,
    config: ServiceConfig,
    seal: std::sync::OnceLock<CursorSeal>,
    events: Arc<EventCounts>,
    images: ImageConfig,
    image_key: std::sync::OnceLock<Vec<u8>>,
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
            ids: Arc::new(SystemIds),
            config,
            seal: std::sync::OnceLock::new(),
            events: Arc::default(),
            images: ImageConfig::default(),
            image_key: std::sync::OnceLock::new(),
        }
    }

    /// The same service with these image-transformation tunables (docs/api.md §9).
    #[must_use]
    pub fn with_images(mut self, images: ImageConfig) -> Self {
        self.images = images;
        self
    }

    /// The events this service has committed, by type (docs/api.md §10).
    pub fn events_written(&self) -> &EventCounts {
        &self.events
    }

    /// The same service drawing ids and secrets from `ids` (by default
    /// [`SystemIds`]; tests give a `testing::memory::SequentialIds`).
    #[must_use]
    pub fn with_ids(mut self, ids: Arc<dyn Ids>) -> Self {
        self.ids = ids;
        self
    }

    /// The cursor seal, its key fetched from (or first stored in) the
    /// repository, so every replica on one database seals alike.
    async fn cursor_seal(&self) -> Result<&CursorSeal> {
        if let Some(seal) = self.seal.get() {
            return Ok(seal);
        }
        let candidate = self.ids.secret();
        let key = self.repo.instance_secret(CURSOR_SECRET, &candidate).await?;
        let seal = CursorSeal::new(key)?;
        Ok(self.seal.get_or_init(|| seal))
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn view(&self, file: File, projection: crate::model::Projection) -> FileView {
        file.into_view(projection, self.config.public_base_url.as_deref())
    }

    async fn load(&self, principal: &Principal, id: FileId) -> Result<File> {
        self.repo
            .get_file(&principal.tenant, id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::FileNotFound))
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
}

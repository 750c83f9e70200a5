//! The contract test kit: async checks of every MUST in [`crate::ports`]. Each
//! adapter crate calls [`file_repository`], [`api_key_repository`] and
//! [`object_store`] from its own tests against a real backend. Checks panic with
//! a message naming the broken sentence.

use async_trait::async_trait;

use crate::auth::{ApiKeyKind, ApiKeyRecord};
use crate::error::ErrorCode;
use crate::list::{Cursor, ListParams, ListQuery, MimeFilter, Scope, SortBy, SortDirection};
use crate::model::{Bucket, File, Owner, OwnerType, OwnerTypeFilter, Timestamp, Visibility};
use crate::ports::{
    ApiKeyRepository, CompletedPart, FileRepository, ObjectStore, PresignedRequest,
};
use crate::upload::UploadState;

use super::{file, fresh_tenant, pending_upload, user};

mod files;
mod keys;
mod listing;
mod service;
mod store;
mod uploads;

use files::{deletion_queue, files_are_scoped_updated_and_deleted, instance_secrets};
use listing::{
    caller_listings_in_every_order, list_pagination_and_cursor, list_scope_filters_and_order,
};
use uploads::{
    abandoned_uploads, registration_is_atomic_and_unique, uploads_are_recorded_and_scoped,
};

pub use keys::api_key_repository;
pub use service::file_service;
pub use store::{object_store, Transfer};

fn code<T>(r: crate::Result<T>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

const T0: i64 = 1_700_000_000_000;

/// Runs every repository check.
pub async fn file_repository(repo: &dyn FileRepository) {
    uploads_are_recorded_and_scoped(repo).await;
    registration_is_atomic_and_unique(repo).await;
    files_are_scoped_updated_and_deleted(repo).await;
    deletion_queue(repo).await;
    abandoned_uploads(repo).await;
    instance_secrets(repo).await;
    list_scope_filters_and_order(repo).await;
    list_pagination_and_cursor(repo).await;
    caller_listings_in_every_order(repo).await;
    repo.health_check()
        .await
        .expect("health_check MUST succeed on a live backend");
}

//! Test support (feature `testing`): in-memory adapters for every port, and the
//! contract test kit that every adapter crate runs against its own implementation.

pub mod bench;
pub mod contract;
#[cfg(feature = "testing-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing-http")))]
pub mod http;
pub mod memory;

/// `mockall` mocks of every port (`MockObjectStore::new()`, then
/// `expect_…().returning(…)`), for failure injection and call expectations.
pub use crate::auth::MockTokenVerifier;
pub use crate::ports::{MockApiKeyRepository, MockClock, MockFileRepository, MockObjectStore};

use crate::model::{
    Bucket, Environment, File, FileId, FileMetadata, Owner, OwnerType, ProjectId, Tenant,
    Timestamp, Visibility,
};
use crate::upload::{IssuedUpload, UploadState};

/// A tenant with a random project id, so checks never see each other's rows.
pub fn fresh_tenant() -> Tenant {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Tenant {
        project: ProjectId::new(&format!("t{}", &id[..20])).unwrap_or_else(|_| unreachable!()),
        env: Environment::Dev,
    }
}

/// A user owner.
pub fn user(id: &str) -> Owner {
    Owner {
        kind: OwnerType::User,
        id: id.to_owned(),
    }
}

/// A pending single-PUT upload of `key`.
pub fn pending_upload(tenant: &Tenant, owner: &Owner, key: &str, now: Timestamp) -> IssuedUpload {
    IssuedUpload {
        key: key.to_owned(),
        tenant: tenant.clone(),
        owner: owner.clone(),
        filename: "f.txt".into(),
        content_type: "text/plain".into(),
        declared_size: Some(3),
        visibility: None,
        category: None,
        max_size: 1 << 20,
        multipart_id: None,
        checksum_sha256: None,
        state: UploadState::Pending,
        created_at: now,
        expires_at: now.plus_secs(900),
    }
}

/// A file for `key`, owned by `owner`.
pub fn file(
    tenant: &Tenant,
    owner: &Owner,
    key: &str,
    name: &str,
    vis: Visibility,
    at: Timestamp,
) -> File {
    File {
        id: FileId::generate(),
        tenant: tenant.clone(),
        s3_key: key.to_owned(),
        original_name: name.to_owned(),
        mime_type: "text/plain".into(),
        size: 3,
        width: None,
        height: None,
        visibility: vis,
        bucket: Bucket::Files,
        owner: owner.clone(),
        shared_with: Vec::new(),
        metadata: FileMetadata::default(),
        checksum_sha256: None,
        created_at: at,
        updated_at: at,
    }
}

/// The `file.registered` event of `file` (what the service records with it).
pub fn registered_event(file: &File) -> crate::events::Event {
    crate::events::Event::file_registered(uuid::Uuid::now_v7(), file.created_at, file, None)
}

/// A `file.updated` event of `file` as given.
pub fn updated_event(file: &File) -> crate::events::Event {
    crate::events::Event::file_updated(
        uuid::Uuid::now_v7(),
        file.updated_at,
        file,
        &["originalName"],
        None,
    )
}

/// The `file.deleted` event of `file`.
pub fn deleted_event(file: &File) -> crate::events::Event {
    crate::events::Event::file_deleted(uuid::Uuid::now_v7(), file.updated_at, file, None)
}

//! Planted bugs: adapters that each break one behaviour the ports promise,
//! wrapped around the in-memory ones. The contract kit MUST fail on every one
//! of them — a kit that passes a broken adapter proves nothing.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use stowage_domain::events::{Event, EventCursor, StoredEvent};
use stowage_domain::list::{ListPage, ListQuery};
use stowage_domain::model::{File, FileId, Tenant, Timestamp};
use stowage_domain::ports::{
    AssembledObject, CompletedPart, Derivative, DerivativeAdded, FileRepository, ObjectInfo,
    ObjectStore, PresignedRequest, QueuedDeletion,
};
use stowage_domain::testing::contract;
use stowage_domain::testing::memory::{MemoryFileRepository, MemoryObjectStore};
use stowage_domain::upload::{IssuedUpload, UploadState};
use stowage_domain::{Error, ErrorCode, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreBug {
    IgnoresContentType,
    NeverExpires,
    KeepsPartsAfterAbort,
    WrongErrorForUnknownUpload,
    AcceptsWrongEtag,
    DeleteOfMissingFails,
    IgnoresChecksum,
    AssemblesWithoutDigestCheck,
    /// Not a bug of the store: a PUT already streaming lands (other bytes,
    /// same length) just before `promote` — the race registration must
    /// survive (`bytes_replaced_between_checks_and_move_are_not_registered`).
    PutLandsBeforePromote,
}

/// The in-memory store with one bug.
pub(crate) struct BuggyStore {
    pub(crate) inner: MemoryObjectStore,
    bug: StoreBug,
}

impl BuggyStore {
    pub(crate) fn new(bug: StoreBug) -> Self {
        Self {
            inner: MemoryObjectStore::default(),
            bug,
        }
    }

    fn exp(&self, exp: Timestamp) -> Timestamp {
        if self.bug == StoreBug::NeverExpires {
            exp.plus_secs(10 * 365 * 24 * 3600)
        } else {
            exp
        }
    }
}

#[async_trait]
impl ObjectStore for BuggyStore {
    async fn presign_put<'a>(
        &self,
        key: &str,
        ct: &str,
        len: Option<u64>,
        sum: Option<&'a str>,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        let sum = sum.filter(|_| self.bug != StoreBug::IgnoresChecksum);
        let mut req = self
            .inner
            .presign_put(key, ct, len, sum, self.exp(exp))
            .await?;
        if self.bug == StoreBug::IgnoresContentType {
            req.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
        }
        Ok(req)
    }
    async fn presign_get(
        &self,
        key: &str,
        ct: &str,
        cd: &str,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        self.inner.presign_get(key, ct, cd, self.exp(exp)).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.inner.head(key).await
    }
    async fn read_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>> {
        self.inner.read_prefix(key, len).await
    }
    async fn put_bytes(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<()> {
        self.inner.put_bytes(key, content_type, bytes).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        if self.bug == StoreBug::DeleteOfMissingFails && self.inner.head(key).await?.is_none() {
            return Err(Error::new(ErrorCode::FileNotFound));
        }
        self.inner.delete(key).await
    }
    async fn promote(&self, from: &str, to: &str, size: u64) -> Result<()> {
        if self.bug == StoreBug::PutLandsBeforePromote {
            self.inner.put_object(from, b"LATE");
        }
        self.inner.promote(from, to, size).await
    }
    async fn create_multipart(&self, key: &str, ct: &str) -> Result<String> {
        self.inner.create_multipart(key, ct).await
    }
    async fn presign_part<'a>(
        &self,
        key: &str,
        id: &str,
        n: u32,
        sum: Option<&'a str>,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        let sum = sum.filter(|_| self.bug != StoreBug::IgnoresChecksum);
        self.inner
            .presign_part(key, id, n, sum, self.exp(exp))
            .await
    }
    async fn complete_multipart<'a>(
        &self,
        key: &str,
        id: &str,
        parts: &[CompletedPart],
        sum: Option<&'a str>,
    ) -> Result<AssembledObject> {
        let sum = sum.filter(|_| self.bug != StoreBug::AssemblesWithoutDigestCheck);
        match (
            self.inner.complete_multipart(key, id, parts, sum).await,
            self.bug,
        ) {
            (Err(e), StoreBug::WrongErrorForUnknownUpload)
                if e.code() == ErrorCode::UploadNotFound =>
            {
                Err(Error::new(ErrorCode::InvalidPartsArray))
            }
            (Err(e), StoreBug::AcceptsWrongEtag) if e.code() == ErrorCode::InvalidPartsArray => {
                Ok(AssembledObject {
                    location: format!("memory://{key}"),
                    size: 0,
                    etag: "\"0-1\"".into(),
                    sha256: None,
                })
            }
            (result, _) => result,
        }
    }
    async fn abort_multipart(&self, key: &str, id: &str) -> Result<()> {
        if self.bug == StoreBug::KeepsPartsAfterAbort {
            return Ok(());
        }
        self.inner.abort_multipart(key, id).await
    }
    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RepoBug {
    ListLeaksAnotherTenant,
    UpdateLosesAKey,
    /// The outbox reads nothing back.
    DropsEvents,
    /// Deletes whatever is stored, changed or not.
    DeleteIgnoresCompare,
}

/// The in-memory repository with one bug.
struct BuggyRepo {
    inner: MemoryFileRepository,
    bug: RepoBug,
    tenants: Mutex<BTreeSet<String>>,
    seen: Mutex<Vec<Tenant>>,
}

#[async_trait]
impl FileRepository for BuggyRepo {
    async fn insert_upload(&self, upload: &IssuedUpload) -> Result<()> {
        self.inner.insert_upload(upload).await
    }
    async fn find_upload(&self, tenant: &Tenant, key: &str) -> Result<Option<IssuedUpload>> {
        self.inner.find_upload(tenant, key).await
    }
    async fn transition_upload<'a>(
        &self,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: Option<&'a Event>,
    ) -> Result<bool> {
        self.inner
            .transition_upload(tenant, key, from, to, event)
            .await
    }
    async fn claim_for_registration(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<IssuedUpload>> {
        self.inner.claim_for_registration(tenant, key).await
    }
    async fn register_file<'a>(
        &self,
        file: &File,
        cleanup: Option<&'a QueuedDeletion>,
        quota: &stowage_domain::quota::Quota,
        event: &Event,
    ) -> Result<()> {
        let name = file.tenant.project.to_string();
        if let Ok(mut t) = self.tenants.lock() {
            if t.insert(name) {
                if let Ok(mut seen) = self.seen.lock() {
                    seen.push(file.tenant.clone());
                }
            }
        }
        self.inner.register_file(file, cleanup, quota, event).await
    }
    async fn usage<'a>(
        &self,
        tenant: &Tenant,
        owner: Option<&'a stowage_domain::model::Owner>,
    ) -> Result<stowage_domain::quota::Usage> {
        self.inner.usage(tenant, owner).await
    }
    async fn get_file(&self, tenant: &Tenant, id: FileId) -> Result<Option<File>> {
        self.inner.get_file(tenant, id).await
    }
    async fn find_file_by_key(&self, tenant: &Tenant, key: &str) -> Result<Option<File>> {
        self.inner.find_file_by_key(tenant, key).await
    }
    async fn update_file(&self, file: &File, expected: Timestamp, event: &Event) -> Result<bool> {
        let mut file = file.clone();
        if self.bug == RepoBug::UpdateLosesAKey {
            file.metadata.related_entity_id = None;
        }
        self.inner.update_file(&file, expected, event).await
    }
    async fn delete_file(
        &self,
        file: &File,
        now: Timestamp,
        event: &Event,
    ) -> Result<Option<File>> {
        if self.bug == RepoBug::DeleteIgnoresCompare {
            if let Some(stored) = self.inner.get_file(&file.tenant, file.id).await? {
                return self.inner.delete_file(&stored, now, event).await;
            }
        }
        self.inner.delete_file(file, now, event).await
    }
    async fn events_after(&self, after: EventCursor, limit: u32) -> Result<Vec<StoredEvent>> {
        if self.bug == RepoBug::DropsEvents {
            return Ok(Vec::new());
        }
        self.inner.events_after(after, limit).await
    }
    async fn last_event(&self) -> Result<Option<EventCursor>> {
        self.inner.last_event().await
    }
    async fn list_files(&self, query: &ListQuery) -> Result<ListPage> {
        let mut page = self.inner.list_files(query).await?;
        if self.bug == RepoBug::ListLeaksAnotherTenant && page.items.is_empty() {
            let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
            for other in seen.into_iter().filter(|t| *t != query.tenant) {
                let leaked = ListQuery {
                    tenant: other,
                    ..query.clone()
                };
                let more = self.inner.list_files(&leaked).await?;
                page.total += more.total;
                page.items.extend(more.items);
            }
        }
        Ok(page)
    }
    async fn enqueue_object_deletion(&self, key: &str, due: Timestamp) -> Result<()> {
        self.inner.enqueue_object_deletion(key, due).await
    }
    async fn finish_object_deletion(&self, key: &str) -> Result<()> {
        self.inner.finish_object_deletion(key).await
    }
    async fn abandoned_uploads(
        &self,
        issued_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<IssuedUpload>> {
        self.inner
            .abandoned_uploads(issued_before, now, limit)
            .await
    }
    async fn due_object_deletions(&self, now: Timestamp, limit: u32) -> Result<Vec<String>> {
        self.inner.due_object_deletions(now, limit).await
    }
    async fn defer_object_deletion(&self, key: &str, next: Timestamp) -> Result<()> {
        self.inner.defer_object_deletion(key, next).await
    }
    async fn find_derivative(&self, file: FileId, variant: &str) -> Result<Option<Derivative>> {
        self.inner.find_derivative(file, variant).await
    }
    async fn derivative_count(&self, file: FileId) -> Result<Option<u32>> {
        self.inner.derivative_count(file).await
    }
    async fn add_derivative(
        &self,
        file: FileId,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> Result<DerivativeAdded> {
        self.inner.add_derivative(file, derivative, max, now).await
    }
    async fn instance_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        self.inner.instance_secret(name, candidate).await
    }
    async fn health_check(&self) -> Result<()> {
        self.inner.health_check().await
    }
}

/// Whether the future panicked (the kit reports a broken MUST by panicking).
async fn kit_fails<F>(check: F) -> bool
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(check).await.is_err_and(|e| e.is_panic())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_the_unbroken_adapters() {
    assert!(
        !kit_fails(async {
            let store = MemoryObjectStore::default();
            contract::object_store(&store, &store, "demo/dev/kit").await;
            contract::file_repository(&MemoryFileRepository::default()).await;
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_every_planted_store_bug() {
    for bug in [
        StoreBug::IgnoresContentType,
        StoreBug::NeverExpires,
        StoreBug::KeepsPartsAfterAbort,
        StoreBug::WrongErrorForUnknownUpload,
        StoreBug::AcceptsWrongEtag,
        StoreBug::DeleteOfMissingFails,
        StoreBug::IgnoresChecksum,
        StoreBug::AssemblesWithoutDigestCheck,
    ] {
        let caught = kit_fails(async move {
            let store = Arc::new(BuggyStore {
                inner: MemoryObjectStore::default(),
                bug,
            });
            contract::object_store(store.as_ref(), &store.inner, "demo/dev/kit").await;
        })
        .await;
        assert!(caught, "the kit passed a store that {bug:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_catches_every_planted_repository_bug() {
    for bug in [
        RepoBug::ListLeaksAnotherTenant,
        RepoBug::UpdateLosesAKey,
        RepoBug::DropsEvents,
        RepoBug::DeleteIgnoresCompare,
    ] {
        let caught = kit_fails(async move {
            let repo = BuggyRepo {
                inner: MemoryFileRepository::default(),
                bug,
                tenants: Mutex::default(),
                seen: Mutex::default(),
            };
            contract::file_repository(&repo).await;
        })
        .await;
        assert!(caught, "the kit passed a repository that {bug:?}");
    }
}

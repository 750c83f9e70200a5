//! Ports: what the domain needs from the outside world. Adapters implement them;
//! the contract test kit (`testing` feature) checks every sentence marked MUST.

use async_trait::async_trait;

use crate::error::Result;
use crate::events::{Event, EventCursor, StoredEvent};
use crate::list::{ListPage, ListQuery};
use crate::model::{ApiKeyRecord, File, FileId, Owner, Tenant, Timestamp};
use crate::quota::{Quota, Usage};
use crate::upload::{IssuedUpload, UploadState};
use crate::webhooks::{AttemptRecord, AttemptResult, DueDelivery, WebhookEndpoint};

/// Source of the current time (tests control it).
#[cfg_attr(feature = "testing", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }
}

/// Where new identifiers and secrets come from: clock-ordered UUIDs and OS
/// randomness ([`SystemIds`]), or a predictable sequence in tests
/// (`testing::memory::SequentialIds`).
#[cfg_attr(feature = "testing", mockall::automock)]
pub trait Ids: Send + Sync {
    /// A new id, unique, and ordered after every id this source gave
    /// before: file ids and the unique segment of upload keys.
    fn unique(&self) -> uuid::Uuid;
    /// 32 fresh secret bytes (the candidate key of the cursor seal).
    fn secret(&self) -> [u8; 32];
}

/// UUIDv7 ids and OS randomness.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemIds;

impl Ids for SystemIds {
    fn unique(&self) -> uuid::Uuid {
        uuid::Uuid::now_v7()
    }
    fn secret(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        out[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        out
    }
}

/// Files, issued uploads and the queue of object deletions.
///
/// Every method MUST scope reads and writes to the given tenant, and MUST report
/// an unreachable or timed-out backend as `common/service-unavailable`.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait FileRepository: Send + Sync {
    /// Records an issued upload.
    ///
    /// # Errors
    /// MUST return `file/s3-key-already-exists` if an upload with this key exists.
    async fn insert_upload(&self, upload: &IssuedUpload) -> Result<()>;

    /// The upload issued with `key` in `tenant`, in any state; `None` if none.
    async fn find_upload(&self, tenant: &Tenant, key: &str) -> Result<Option<IssuedUpload>>;

    /// Moves the upload from `from` to `to` if and only if it is in `from`
    /// (compare-and-set), recording `event` (if any) in the outbox with the
    /// move, atomically; returns whether it moved (no move, no event).
    async fn transition_upload<'a>(
        &self,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: Option<&'a Event>,
    ) -> Result<bool>;

    /// Claims the upload issued as `key` in `tenant` for registration: if it
    /// is a single-PUT upload still `pending` or a multipart upload
    /// `completed`, moves it to `registering` (compare-and-set: of racing
    /// claims one wins) and returns it as it was before; `None` otherwise.
    async fn claim_for_registration(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<IssuedUpload>>;

    /// Atomically marks the upload of `file.s3_key` as registered, inserts
    /// `file`, counts it (files and bytes, [`FileRepository::usage`]),
    /// queues `cleanup` (if any) for deletion and records `event` in the
    /// outbox: all happen or none.
    ///
    /// # Errors
    /// MUST return `file/s3-key-already-exists` if a file with this key exists
    /// (also when two registrations race: exactly one succeeds); MUST return
    /// `file/upload-not-found` if no pending, completed or registering upload
    /// has this key; MUST return `file/quota-exceeded` (writing nothing) when
    /// the file would take its owner (a user; the service principal has no
    /// user quota) or its project past `quota` ([`Quota::exceeded`]),
    /// decided atomically with the insert: of registrations racing for the
    /// last bytes, none takes the usage past a limit.
    async fn register_file<'a>(
        &self,
        file: &File,
        cleanup: Option<&'a QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> Result<()>;

    /// The files and bytes `owner` holds in `tenant` (every owner's together
    /// when `None`), from counts maintained with every registration and
    /// deletion (never a sum over files); a deletion frees its bytes at once.
    async fn usage<'a>(&self, tenant: &Tenant, owner: Option<&'a Owner>) -> Result<Usage>;

    /// The file with `id` in `tenant`; `None` if none (other tenants' files MUST NOT be returned).
    async fn get_file(&self, tenant: &Tenant, id: FileId) -> Result<Option<File>>;

    /// The registered file whose object key is `key` in `tenant`; `None` if
    /// none (an upload not registered, a deleted file, another tenant's file
    /// MUST all be `None`).
    async fn find_file_by_key(&self, tenant: &Tenant, key: &str) -> Result<Option<File>>;

    /// Replaces the mutable fields (name, visibility, metadata, sharedWith,
    /// updatedAt) if and only if the stored row's `updatedAt` is still
    /// `expected_updated_at` (compare-and-set: of two racing updates made from
    /// the same state, one is refused and can re-apply its change to the new
    /// state), recording `event` in the outbox with the write; returns
    /// whether the row was written (no write, no event).
    ///
    /// # Errors
    /// MUST return `file/not-found` if the file no longer exists.
    async fn update_file(
        &self,
        file: &File,
        expected_updated_at: Timestamp,
        event: &Event,
    ) -> Result<bool>;

    /// Atomically deletes the file if it is still as `file` shows it (its
    /// `updatedAt` unchanged: compare-and-set, so the event describes what
    /// was deleted), uncounts it, queues its object for deletion and
    /// records `event`; returns the deleted file, or `None` if nothing was
    /// deleted (the file is gone, or changed: read it again).
    async fn delete_file(&self, file: &File, now: Timestamp, event: &Event)
        -> Result<Option<File>>;

    /// Up to `limit` events of the outbox after `after`, in cursor order.
    /// MUST return only committed events, and MUST NOT return an event
    /// while one that will come before it may still commit (so a reader
    /// that advances its cursor never skips one).
    async fn events_after(&self, after: EventCursor, limit: u32) -> Result<Vec<StoredEvent>>;

    /// The cursor of the last event [`FileRepository::events_after`] can
    /// return now; `None` when the outbox is empty.
    async fn last_event(&self) -> Result<Option<EventCursor>>;

    /// One page of files: only rows in the query's scope, filtered, in the
    /// requested order with ties broken by id in the same direction; `total`
    /// counts every matching row in scope.
    async fn list_files(&self, query: &ListQuery) -> Result<ListPage>;

    /// Queues an object for deletion, due at `due` (idempotent: a key already
    /// queued keeps its place).
    async fn enqueue_object_deletion(&self, key: &str, due: Timestamp) -> Result<()>;

    /// Removes a key from the deletion queue once its object is gone (idempotent).
    async fn finish_object_deletion(&self, key: &str) -> Result<()>;

    /// Uploads that were abandoned, oldest first: single-PUT uploads still
    /// pending, and multipart uploads completed but never registered, issued
    /// before `issued_before`; multipart uploads still pending whose
    /// `expires_at` is at or before `now`; uploads left `completing` or
    /// `registering` (a crash mid-way) issued before `issued_before`.
    /// Registered and aborted uploads are never returned.
    async fn abandoned_uploads(
        &self,
        issued_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<IssuedUpload>>;

    /// Queued keys whose next attempt is due, oldest first.
    async fn due_object_deletions(&self, now: Timestamp, limit: u32) -> Result<Vec<String>>;

    /// Postpones the next attempt on a queued key.
    async fn defer_object_deletion(&self, key: &str, next_attempt: Timestamp) -> Result<()>;

    /// The derived image `variant` of file `file` (docs/api.md §9), if stored.
    async fn find_derivative(&self, file: FileId, variant: &str) -> Result<Option<Derivative>>;

    /// How many derived images of `file` are recorded, when the adapter can
    /// tell (`None`, the default: it cannot). A hint read before storing a
    /// new one, so that a file at its maximum is not written to the store
    /// only to be removed again; [`Self::add_derivative`] still decides.
    async fn derivative_count(&self, file: FileId) -> Result<Option<u32>> {
        let _ = file;
        Ok(None)
    }

    /// Records that the derived image `derivative` of `file` is in the store,
    /// unless the file already has `max` derived images or no longer exists.
    ///
    /// The caller queued `derivative.key` for deletion before it wrote the
    /// object (its intent: a crash between the write and this call leaves
    /// no object behind for good). Recording MUST, in the same transaction,
    /// take the key off the deletion queue, and MUST record nothing
    /// ([`DerivativeAdded::Unclaimed`]) unless the key is queued with its
    /// next attempt more than [`DERIVATIVE_RECORD_MARGIN_SECS`] after `now`
    /// (a deletion due sooner may be under way). Whatever else it answers,
    /// the queue is left as it was.
    ///
    /// Deleting a file MUST, in the same transaction, forget its derived
    /// images and queue their objects for deletion (like
    /// [`FileRepository::enqueue_object_deletion`]), so none outlives it.
    async fn add_derivative(
        &self,
        file: FileId,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> Result<DerivativeAdded>;

    /// The secret stored under `name`, shared by every replica on this
    /// database: stores `candidate` if there is none yet, then returns
    /// whatever is stored (so racing first callers all get the same bytes).
    async fn instance_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>>;

    /// Checks the backend answers.
    async fn health_check(&self) -> Result<()>;
}

/// Webhook endpoints and their deliveries (docs/api.md §10).
///
/// A change's transaction ([`FileRepository::register_file`] and the other
/// writes that take an [`Event`]) MUST record, with the event, one pending
/// delivery for every endpoint of the event's tenant that wants its type,
/// as the endpoints stand when it commits.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Adds an endpoint: changes committed after this returns are delivered to it.
    async fn add_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()>;

    /// Every endpoint, oldest first.
    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>>;

    /// Removes an endpoint and its deliveries; returns whether it existed.
    async fn remove_endpoint(&self, id: &str) -> Result<bool>;

    /// Claims up to `limit` deliveries for one attempt each, until
    /// `lease_until`: pending, due at `now`, not claimed by a lease still
    /// running, and with no earlier pending delivery of the same subject to
    /// the same endpoint (events of one file arrive in order). Of callers
    /// claiming at once (replicas), each delivery MUST go to one; a lease
    /// that runs out (a crash mid-attempt) makes it claimable again.
    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>>;

    /// Whether any delivery is due at `now` and not claimed: a read, so that
    /// an idle poll takes no lock and no write.
    async fn any_due(&self, now: Timestamp) -> Result<bool>;

    /// Records the attempt and moves the delivery as `result` says
    /// (delivered, failed, or pending until `result.next_attempt`),
    /// releasing its lease.
    async fn record_attempt(&self, delivery: &DueDelivery, result: &AttemptResult) -> Result<()>;

    /// The latest `limit` attempts of deliveries to an endpoint, newest first.
    async fn attempts(&self, endpoint_id: &str, limit: u32) -> Result<Vec<AttemptRecord>>;

    /// Makes every delivery of the event pending again, due at `now`, its
    /// retries counted from `now`; returns how many.
    async fn redeliver(&self, event_id: &str, now: Timestamp) -> Result<u64>;

    /// Removes deliveries finished (delivered or failed) before `before`
    /// with their attempts, and events written before `before` that no
    /// delivery still needs; returns how many events went.
    async fn prune(&self, before: Timestamp) -> Result<u64>;
}

/// An object to delete later, queued with the change that makes it garbage
/// (at registration: the staging key, due once its upload URLs have expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedDeletion {
    /// The object's key.
    pub key: String,
    /// When it is due.
    pub due: Timestamp,
}

/// API keys, stored hashed.
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a key record. A record whose id or hash is already stored MUST
    /// be refused, as `common/internal` (ids and hashes come from random
    /// bytes: a duplicate is a fault, never a caller's mistake), and MUST NOT
    /// change the stored one.
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// The key with this hash, whatever its state.
    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>>;
    /// Every key, oldest first.
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>>;
    /// Revokes a key; returns whether a not-yet-revoked key with that id existed.
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool>;
}

/// A derived image in the object store (docs/api.md §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derivative {
    /// [`crate::image::Variant::name`].
    pub variant: String,
    /// Where the bytes are.
    pub key: String,
    /// Their length.
    pub size: u64,
}

/// What [`FileRepository::add_derivative`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivativeAdded {
    /// Recorded.
    Added,
    /// Already recorded (another request stored the same variant first).
    Exists,
    /// The file has its maximum of derived images: not recorded.
    LimitReached,
    /// The file is gone: not recorded (the caller deletes the object).
    FileGone,
    /// The key is not queued for deletion far enough ahead (the intent
    /// expired, or was never queued): not recorded (the caller deletes the object).
    Unclaimed,
}

/// How long before its deletion is due a derived image's key must still be
/// queued for [`FileRepository::add_derivative`] to record it, seconds: the
/// slack for clocks of replicas that disagree and a transaction that waits.
pub const DERIVATIVE_RECORD_MARGIN_SECS: u64 = 60;

/// Decodes, transforms and encodes images (docs/api.md §9). CPU-bound and
/// synchronous: callers run it off their async executor, a bounded number at once.
pub trait ImageCodec: Send + Sync {
    /// The format and size (after EXIF orientation) the header of `bytes`
    /// declares, read without decoding pixels.
    ///
    /// # Errors
    /// MUST return `image/unsupported-format` for anything but JPEG, PNG,
    /// WebP and GIF, and `image/decode-failed` for a header it cannot read.
    fn probe(&self, bytes: &[u8]) -> Result<crate::image::ImageInfo>;

    /// Applies `job` to the image in `bytes`: EXIF orientation, the
    /// geometry of [`crate::image::geometry`] (a `smart` crop placed on the most
    /// salient region), blur, then encoding without metadata.
    ///
    /// # Errors
    /// As [`ImageCodec::probe`]; `image/too-large` for a source over
    /// `job.bounds` (checked from the header, before pixels are allocated);
    /// `image/decode-failed` for corrupt or truncated data.
    fn transform(&self, bytes: &[u8], job: &crate::image::Job) -> Result<Vec<u8>>;
}

/// A request a client must make to move bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// Absolute URL.
    pub url: String,
    /// HTTP method.
    pub method: &'static str,
    /// Headers the client must send with exactly these values.
    pub headers: Vec<(String, String)>,
}

/// What the store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// Entity tag, quoted.
    pub etag: Option<String>,
    /// SHA-256 of the bytes (base64), for a store that computes it (the
    /// embedded store does for every object; S3's HEAD does not say).
    pub sha256: Option<String>,
}

/// One part named in a multipart completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1..=10000.
    pub part_number: u32,
    /// The part's ETag, without quotes.
    pub etag: String,
}

impl CompletedPart {
    /// A part as a client names it: the ETag with or without its quotes.
    ///
    /// # Errors
    /// `file/invalid-parts-array` for an ETag that is empty or not visible
    /// ASCII.
    pub fn new(number: crate::upload::PartNumber, etag: &str) -> Result<Self> {
        let etag = etag.trim().trim_start_matches('"').trim_end_matches('"');
        if etag.is_empty() || !etag.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::upload::invalid_parts("missing etag"));
        }
        Ok(Self {
            part_number: number.get(),
            etag: etag.to_owned(),
        })
    }
}

/// An object assembled from parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledObject {
    /// Opaque location naming the object.
    pub location: String,
    /// Total size.
    pub size: u64,
    /// Entity tag, quoted.
    pub etag: String,
    /// SHA-256 of the whole object (base64), for a store that computes it.
    pub sha256: Option<String>,
}

/// The object store. Adapters only sign and manage objects; bytes flow between
/// the client and the store directly (or through the embedded gateway).
#[cfg_attr(feature = "testing", mockall::automock)]
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A URL for one `PUT` of `key` that MUST only accept `content_type`, and
    /// `content_length` bytes when given, until `expires_at`. With
    /// `checksum_sha256` (base64 of a SHA-256), the request MUST send it as
    /// `x-amz-checksum-sha256` and the store MUST refuse, storing nothing, a
    /// body with another digest (docs/api.md §11).
    async fn presign_put<'a>(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest>;

    /// A URL for `GET` of `key` whose response MUST carry exactly the given
    /// `Content-Type` and `Content-Disposition`.
    async fn presign_get(
        &self,
        key: &str,
        content_type: &str,
        content_disposition: &str,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest>;

    /// Size and ETag of the object; `None` MUST mean there is no object at
    /// `key`. A `sha256` given MUST be the digest of the object's bytes.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>>;

    /// The object's first `len` bytes (all of it when shorter; empty for an
    /// empty object), read without fetching the rest: what the content check
    /// of registration looks at (docs/api.md §11).
    ///
    /// # Errors
    /// MUST return `file/upload-not-found` when there is no object at `key`.
    async fn read_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>>;

    /// Deletes the object. MUST succeed when there is no object (idempotent).
    async fn delete(&self, key: &str) -> Result<()>;

    /// Stores `bytes` at `key` as `content_type` (a derived image): a reader
    /// MUST never see a partial object, and a second call replaces the first.
    async fn put_bytes(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<()>;

    /// Moves the object at `from` (of `size` bytes) to `to`, inside the store
    /// (no byte passes through the caller): afterwards `to` holds exactly the
    /// bytes `from` held, replacing any object there, and `from` is gone. A
    /// reader of `to` MUST never see a partial object.
    ///
    /// # Errors
    /// MUST return `file/upload-not-found` when there is no object at `from`.
    async fn promote(&self, from: &str, to: &str, size: u64) -> Result<()>;

    /// Starts a multipart upload; returns the store's upload id.
    ///
    /// # Errors
    /// `file/upload-init-failed` when the store refuses.
    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String>;

    /// A URL for `PUT` of one part; re-uploading a part number replaces it.
    /// With `checksum_sha256`, bound like [`ObjectStore::presign_put`]'s: a
    /// part with another digest MUST be refused.
    async fn presign_part<'a>(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest>;

    /// Assembles the parts, in order, into the object at `key`, atomically.
    /// A store that computes whole-object digests ([`AssembledObject::sha256`])
    /// MUST refuse, before anything appears at `key` and keeping the parts, an
    /// assembly whose digest differs from `checksum_sha256`; S3 keeps no
    /// whole-object SHA-256 for multipart uploads and records it as given.
    ///
    /// # Errors
    /// `file/invalid-parts-array` when a part is missing, its ETag differs, a
    /// part but the last is under 5 MiB, or the digest differs;
    /// `file/upload-not-found` for an unknown upload.
    async fn complete_multipart<'a>(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum_sha256: Option<&'a str>,
    ) -> Result<AssembledObject>;

    /// Aborts the upload and discards its parts (idempotent).
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()>;

    /// Checks the store answers and the bucket exists.
    async fn health_check(&self) -> Result<()>;
}

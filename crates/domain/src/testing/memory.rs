//! In-memory adapters: the reference behaviour of each port, for unit tests and
//! for teams embedding the domain in their own test suites.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::auth::ApiKeyRecord;
use crate::error::{Error, ErrorCode, Result};
use crate::events::{Event, EventCursor, StoredEvent};
use crate::limits::{sha256_base64, CHECKSUM_SHA256_HEADER as CHECKSUM_HEADER};
use crate::list::{ListPage, ListQuery, MimeFilter, Scope, SortBy, SortDirection, SortValue};
use crate::model::{
    File, FileId, Owner, OwnerType, OwnerTypeFilter, Tenant, Timestamp, Visibility,
};
use crate::ports::{
    ApiKeyRepository, AssembledObject, Clock, CompletedPart, Derivative, DerivativeAdded,
    FileRepository, ObjectInfo, ObjectStore, PresignedRequest, QueuedDeletion,
};
use crate::quota::{Quota, Usage};
use crate::upload::{IssuedUpload, UploadState};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct ManualClock(Mutex<i64>);

impl ManualClock {
    /// A clock at `ms`.
    pub fn at(ms: i64) -> Self {
        Self(Mutex::new(ms))
    }
    /// Moves the clock forward.
    pub fn advance_secs(&self, secs: i64) {
        *lock(&self.0) += secs * 1000;
    }
    /// Moves the clock forward by `ms` milliseconds.
    pub fn advance_millis(&self, ms: i64) {
        *lock(&self.0) += ms;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(*lock(&self.0))
    }
}

/// Ids in a predictable sequence: the `n`th id is `0190…7000-8000-…n`
/// (a UUIDv7 shape, ordered like the ids of [`crate::ports::SystemIds`]),
/// and secrets are the sequence number repeated. Two services built alike
/// and driven alike produce the same keys and file ids.
#[derive(Debug, Default)]
pub struct SequentialIds(std::sync::atomic::AtomicU64);

impl SequentialIds {
    /// The `n`th id this source gives (from 1).
    pub fn nth(n: u64) -> uuid::Uuid {
        uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | u128::from(n))
    }
    fn next(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

impl crate::ports::Ids for SequentialIds {
    fn unique(&self) -> uuid::Uuid {
        Self::nth(self.next())
    }
    fn secret(&self) -> [u8; 32] {
        [self.next().to_le_bytes()[0]; 32]
    }
}

#[derive(Default)]
struct RepoState {
    uploads: HashMap<(Tenant, String), IssuedUpload>,
    files: BTreeMap<FileId, File>,
    deletions: BTreeMap<String, Timestamp>,
    /// Derived images by file, then by variant.
    derivatives: HashMap<FileId, BTreeMap<String, Derivative>>,
    secrets: HashMap<String, Vec<u8>>,
    /// The outbox: every committed event, in commit order.
    events: Vec<StoredEvent>,
}

impl RepoState {
    /// Records `event` with the change being made under the same lock.
    fn record(&mut self, event: &Event) {
        let seq = self.events.last().map_or(1, |e| e.cursor.seq + 1);
        self.events.push(StoredEvent {
            cursor: EventCursor { tx: 0, seq },
            event: event.clone(),
        });
    }
}

/// `FileRepository` in memory.
#[derive(Default)]
pub struct MemoryFileRepository(Mutex<RepoState>);

/// Whether `file` is in `scope` (docs/api.md §5).
pub fn in_scope(scope: &Scope, file: &File) -> bool {
    match scope {
        Scope::All => true,
        Scope::VisibleTo { owner, user_id } => {
            file.owner == *owner
                || matches!(file.visibility, Visibility::Public | Visibility::Protected)
                || (file.visibility == Visibility::Shared
                    && user_id
                        .as_ref()
                        .is_some_and(|u| file.shared_with.contains(u)))
        }
    }
}

fn sort_value(file: &File, by: SortBy) -> SortValue {
    crate::list::Cursor::after(file, by, SortDirection::Asc).value
}

fn matches(query: &ListQuery, f: &File) -> bool {
    let p = &query.params;
    f.tenant == query.tenant
        && in_scope(&query.scope, f)
        && p.visibility.is_none_or(|v| f.visibility == v)
        && p.owner_type.is_none_or(|t| match t {
            OwnerTypeFilter::User => f.owner.kind == OwnerType::User,
            OwnerTypeFilter::Service => f.owner.kind == OwnerType::Service,
            OwnerTypeFilter::Session | OwnerTypeFilter::Public => false,
        })
        && p.owner_id.as_ref().is_none_or(|o| &f.owner.id == o)
        && p.bucket.is_none_or(|b| f.bucket == b)
        && p.mime_type.as_ref().is_none_or(|m| match m {
            MimeFilter::Exact(t) => &f.mime_type == t,
            MimeFilter::Prefix(t) => f.mime_type.starts_with(t.as_str()),
        })
        && p.search
            .as_ref()
            .is_none_or(|s| f.original_name.to_lowercase().contains(&s.to_lowercase()))
}

#[async_trait]
impl FileRepository for MemoryFileRepository {
    async fn insert_upload(&self, upload: &IssuedUpload) -> Result<()> {
        let mut s = lock(&self.0);
        let k = (upload.tenant.clone(), upload.key.clone());
        if s.uploads.contains_key(&k) || s.uploads.keys().any(|(_, key)| key == &upload.key) {
            return Err(Error::new(ErrorCode::S3KeyAlreadyExists));
        }
        s.uploads.insert(k, upload.clone());
        Ok(())
    }

    async fn find_upload(&self, tenant: &Tenant, key: &str) -> Result<Option<IssuedUpload>> {
        Ok(lock(&self.0)
            .uploads
            .get(&(tenant.clone(), key.to_owned()))
            .cloned())
    }

    async fn transition_upload<'a>(
        &self,
        tenant: &Tenant,
        key: &str,
        from: UploadState,
        to: UploadState,
        event: Option<&'a Event>,
    ) -> Result<bool> {
        let mut s = lock(&self.0);
        match s.uploads.get_mut(&(tenant.clone(), key.to_owned())) {
            Some(u) if u.state == from => {
                u.state = to;
                if let Some(e) = event {
                    s.record(e);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn claim_for_registration(
        &self,
        tenant: &Tenant,
        key: &str,
    ) -> Result<Option<IssuedUpload>> {
        let mut s = lock(&self.0);
        match s.uploads.get_mut(&(tenant.clone(), key.to_owned())) {
            Some(u)
                if matches!(
                    (u.state, u.multipart_id.is_some()),
                    (UploadState::Pending, false) | (UploadState::Completed, true)
                ) =>
            {
                let before = u.clone();
                u.state = UploadState::Registering;
                Ok(Some(before))
            }
            _ => Ok(None),
        }
    }

    async fn register_file<'a>(
        &self,
        file: &File,
        cleanup: Option<&'a QueuedDeletion>,
        quota: &Quota,
        event: &Event,
    ) -> Result<()> {
        let mut s = lock(&self.0);
        if s.files.values().any(|f| f.s3_key == file.s3_key) {
            return Err(Error::new(ErrorCode::S3KeyAlreadyExists));
        }
        match s.uploads.get(&(file.tenant.clone(), file.s3_key.clone())) {
            Some(u)
                if matches!(
                    u.state,
                    UploadState::Pending | UploadState::Completed | UploadState::Registering
                ) => {}
            Some(u) if u.state == UploadState::Registered => {
                return Err(Error::new(ErrorCode::S3KeyAlreadyExists))
            }
            _ => return Err(Error::new(ErrorCode::UploadNotFound)),
        }
        let user = (file.owner.kind == OwnerType::User)
            .then(|| usage_of(&s.files, &file.tenant, Some(&file.owner)));
        let project = usage_of(&s.files, &file.tenant, None);
        if let Some(e) = quota.exceeded(user, project, Usage::one_file(file.size)) {
            return Err(e);
        }
        if let Some(u) = s
            .uploads
            .get_mut(&(file.tenant.clone(), file.s3_key.clone()))
        {
            u.state = UploadState::Registered;
        }
        s.files.insert(file.id, file.clone());
        if let Some(c) = cleanup {
            s.deletions.entry(c.key.clone()).or_insert(c.due);
        }
        s.record(event);
        Ok(())
    }

    async fn usage<'a>(&self, tenant: &Tenant, owner: Option<&'a Owner>) -> Result<Usage> {
        Ok(usage_of(&lock(&self.0).files, tenant, owner))
    }

    async fn get_file(&self, tenant: &Tenant, id: FileId) -> Result<Option<File>> {
        Ok(lock(&self.0)
            .files
            .get(&id)
            .filter(|f| &f.tenant == tenant)
            .cloned())
    }

    async fn find_file_by_key(&self, tenant: &Tenant, key: &str) -> Result<Option<File>> {
        Ok(lock(&self.0)
            .files
            .values()
            .find(|f| &f.tenant == tenant && f.s3_key == key)
            .cloned())
    }

    async fn update_file(
        &self,
        file: &File,
        expected_updated_at: Timestamp,
        event: &Event,
    ) -> Result<bool> {
        let mut s = lock(&self.0);
        let s = &mut *s;
        let written = match s.files.get_mut(&file.id) {
            Some(f) if f.tenant == file.tenant && f.updated_at != expected_updated_at => Ok(false),
            Some(f) if f.tenant == file.tenant => {
                f.original_name = file.original_name.clone();
                f.visibility = file.visibility;
                f.metadata = file.metadata.clone();
                f.shared_with = file.shared_with.clone();
                f.updated_at = file.updated_at;
                Ok(true)
            }
            _ => Err(Error::new(ErrorCode::FileNotFound)),
        }?;
        if written {
            s.record(event);
        }
        Ok(written)
    }

    async fn delete_file(
        &self,
        file: &File,
        now: Timestamp,
        event: &Event,
    ) -> Result<Option<File>> {
        let mut s = lock(&self.0);
        let unchanged = |f: &File| f.tenant == file.tenant && f.updated_at == file.updated_at;
        if !s.files.get(&file.id).is_some_and(unchanged) {
            return Ok(None);
        }
        let deleted = s.files.remove(&file.id);
        if let Some(f) = &deleted {
            s.deletions.insert(f.s3_key.clone(), now);
            for d in s
                .derivatives
                .remove(&f.id)
                .unwrap_or_default()
                .into_values()
            {
                s.deletions.insert(d.key, now);
            }
            s.record(event);
        }
        Ok(deleted)
    }

    async fn events_after(&self, after: EventCursor, limit: u32) -> Result<Vec<StoredEvent>> {
        Ok(lock(&self.0)
            .events
            .iter()
            .filter(|e| e.cursor > after)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn last_event(&self) -> Result<Option<EventCursor>> {
        Ok(lock(&self.0).events.last().map(|e| e.cursor))
    }

    async fn list_files(&self, query: &ListQuery) -> Result<ListPage> {
        let s = lock(&self.0);
        let p = &query.params;
        let mut rows: Vec<&File> = s.files.values().filter(|f| matches(query, f)).collect();
        let total = p
            .cursor
            .as_ref()
            .and_then(|c| c.total)
            .unwrap_or(rows.len() as u64);
        rows.sort_by(|a, b| {
            let ord = match (sort_value(a, p.sort_by), sort_value(b, p.sort_by)) {
                (SortValue::Int(x), SortValue::Int(y)) => x.cmp(&y),
                (SortValue::Text(x), SortValue::Text(y)) => x.cmp(&y),
                _ => std::cmp::Ordering::Equal,
            }
            .then(a.id.cmp(&b.id));
            if p.direction == SortDirection::Desc {
                ord.reverse()
            } else {
                ord
            }
        });
        let after: Vec<&File> = match &p.cursor {
            Some(c) => rows
                .into_iter()
                .filter(|f| {
                    let ord = match (sort_value(f, p.sort_by), &c.value) {
                        (SortValue::Int(x), SortValue::Int(y)) => x.cmp(y),
                        (SortValue::Text(x), SortValue::Text(y)) => x.as_str().cmp(y.as_str()),
                        _ => std::cmp::Ordering::Equal,
                    }
                    .then(f.id.0.cmp(&c.id));
                    if p.direction == SortDirection::Desc {
                        ord.is_lt()
                    } else {
                        ord.is_gt()
                    }
                })
                .collect(),
            None => rows
                .into_iter()
                .skip(usize::try_from(p.offset()).unwrap_or(usize::MAX))
                .collect(),
        };
        let limit = p.limit as usize;
        Ok(ListPage {
            has_more: after.len() > limit,
            items: after.into_iter().take(limit).cloned().collect(),
            total,
            shared_empty: false,
            shared_count: None,
        })
    }

    async fn abandoned_uploads(
        &self,
        issued_before: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<IssuedUpload>> {
        let s = lock(&self.0);
        let mut out: Vec<IssuedUpload> = s
            .uploads
            .values()
            .filter(|u| match (u.state, u.multipart_id.is_some()) {
                (UploadState::Pending, false) | (UploadState::Completed, true) => {
                    u.created_at < issued_before
                }
                (UploadState::Pending, true) => u.expires_at <= now,
                (UploadState::Completing | UploadState::Registering, _) => {
                    u.created_at < issued_before
                }
                _ => false,
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.key.cmp(&b.key)));
        out.truncate(limit as usize);
        Ok(out)
    }

    async fn enqueue_object_deletion(&self, key: &str, due: Timestamp) -> Result<()> {
        lock(&self.0).deletions.entry(key.to_owned()).or_insert(due);
        Ok(())
    }

    async fn finish_object_deletion(&self, key: &str) -> Result<()> {
        lock(&self.0).deletions.remove(key);
        Ok(())
    }

    async fn due_object_deletions(&self, now: Timestamp, limit: u32) -> Result<Vec<String>> {
        let s = lock(&self.0);
        let mut due: Vec<(&String, &Timestamp)> =
            s.deletions.iter().filter(|(_, t)| **t <= now).collect();
        due.sort_by_key(|(_, t)| **t);
        Ok(due
            .into_iter()
            .take(limit as usize)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn defer_object_deletion(&self, key: &str, next_attempt: Timestamp) -> Result<()> {
        if let Some(t) = lock(&self.0).deletions.get_mut(key) {
            *t = next_attempt;
        }
        Ok(())
    }

    async fn find_derivative(&self, file: FileId, variant: &str) -> Result<Option<Derivative>> {
        Ok(lock(&self.0)
            .derivatives
            .get(&file)
            .and_then(|d| d.get(variant))
            .cloned())
    }

    async fn derivative_count(&self, file: FileId) -> Result<Option<u32>> {
        let held = lock(&self.0).derivatives.get(&file).map_or(0, |d| d.len());
        Ok(Some(u32::try_from(held).unwrap_or(u32::MAX)))
    }

    async fn add_derivative(
        &self,
        file: FileId,
        derivative: &Derivative,
        max: u32,
        now: Timestamp,
    ) -> Result<DerivativeAdded> {
        let mut s = lock(&self.0);
        if !s.files.contains_key(&file) {
            return Ok(DerivativeAdded::FileGone);
        }
        let held = s.derivatives.entry(file).or_default();
        if held.contains_key(&derivative.variant) {
            return Ok(DerivativeAdded::Exists);
        }
        if held.len() >= max as usize {
            return Ok(DerivativeAdded::LimitReached);
        }
        let horizon = now.plus_secs(crate::ports::DERIVATIVE_RECORD_MARGIN_SECS);
        if s.deletions
            .get(&derivative.key)
            .is_none_or(|due| *due <= horizon)
        {
            return Ok(DerivativeAdded::Unclaimed);
        }
        s.deletions.remove(&derivative.key);
        s.derivatives
            .entry(file)
            .or_default()
            .insert(derivative.variant.clone(), derivative.clone());
        Ok(DerivativeAdded::Added)
    }

    async fn instance_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>> {
        Ok(lock(&self.0)
            .secrets
            .entry(name.to_owned())
            .or_insert_with(|| candidate.to_vec())
            .clone())
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

/// `ApiKeyRepository` in memory.
#[derive(Default)]
pub struct MemoryApiKeyRepository(Mutex<Vec<ApiKeyRecord>>);

#[async_trait]
impl ApiKeyRepository for MemoryApiKeyRepository {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let mut keys = lock(&self.0);
        if keys
            .iter()
            .any(|k| k.id == key.id || k.key_hash == key.key_hash)
        {
            return Err(crate::Error::internal("duplicate API key"));
        }
        keys.push(key.clone());
        Ok(())
    }
    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        Ok(lock(&self.0)
            .iter()
            .find(|k| k.key_hash == key_hash)
            .cloned())
    }
    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        Ok(lock(&self.0).clone())
    }
    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let mut keys = lock(&self.0);
        match keys
            .iter_mut()
            .find(|k| k.id == id && k.revoked_at.is_none())
        {
            Some(k) => {
                k.revoked_at = Some(at);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[derive(Default)]
struct StoreState {
    objects: HashMap<String, Vec<u8>>,
    uploads: HashMap<String, (String, BTreeMap<u32, Vec<u8>>)>,
    /// Issued GET URLs: `(key, content type, content disposition, expiry)` by number.
    gets: Vec<(String, String, String, Timestamp)>,
    down: bool,
    /// The clock URLs expire by (`None`: the wall clock).
    clock: Option<std::sync::Arc<dyn crate::ports::Clock>>,
    /// The same clock when the store may move it (the kit's `pass`).
    manual: Option<std::sync::Arc<ManualClock>>,
}

/// `ObjectStore` in memory, behaving like the real stores: its URLs
/// (`memory://{method}/{key}?…&exp=…`) bind `Content-Type` (and the length
/// when declared) and expire; ETags are MD5 (`<md5>-<n>` when assembled).
/// Tests move bytes through its URLs with its [`super::contract::Transfer`]
/// implementation, or directly with [`MemoryObjectStore::put_object`] and
/// [`MemoryObjectStore::put_part`].
#[derive(Default)]
pub struct MemoryObjectStore(Mutex<StoreState>);

fn md5_like(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(bytes))
}

impl MemoryObjectStore {
    /// A store whose URLs expire by `clock` (the default is the wall clock).
    pub fn with_clock(clock: std::sync::Arc<dyn crate::ports::Clock>) -> Self {
        let store = Self::default();
        lock(&store.0).clock = Some(clock);
        store
    }

    /// A store whose URLs expire by `clock`, which the contract kit moves
    /// forward instead of sleeping (`Transfer::pass`).
    pub fn with_manual_clock(clock: std::sync::Arc<ManualClock>) -> Self {
        let store = Self::default();
        {
            let mut s = lock(&store.0);
            s.clock = Some(clock.clone());
            s.manual = Some(clock);
        }
        store
    }

    fn now(s: &StoreState) -> Timestamp {
        s.clock
            .as_ref()
            .map_or_else(|| Timestamp::from_datetime(chrono::Utc::now()), |c| c.now())
    }

    /// Stores bytes at `key` as a client upload would.
    pub fn put_object(&self, key: &str, bytes: &[u8]) {
        lock(&self.0).objects.insert(key.to_owned(), bytes.to_vec());
    }
    /// Stores one part; returns its ETag.
    pub fn put_part(&self, upload_id: &str, part: u32, bytes: &[u8]) -> Option<String> {
        let mut s = lock(&self.0);
        let (_, parts) = s.uploads.get_mut(upload_id)?;
        parts.insert(part, bytes.to_vec());
        Some(md5_like(bytes))
    }
    /// The bytes at `key`.
    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        lock(&self.0).objects.get(key).cloned()
    }
    /// Simulates an outage: every call fails with `common/service-unavailable`.
    pub fn set_down(&self, down: bool) {
        lock(&self.0).down = down;
    }
    fn up(&self) -> Result<std::sync::MutexGuard<'_, StoreState>> {
        let s = lock(&self.0);
        if s.down {
            Err(Error::unavailable("memory store is down"))
        } else {
            Ok(s)
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryObjectStore {
    async fn presign_put<'a>(
        &self,
        key: &str,
        content_type: &str,
        len: Option<u64>,
        checksum: Option<&'a str>,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        drop(self.up()?);
        let mut headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
        if let Some(len) = len {
            headers.push(("Content-Length".to_owned(), len.to_string()));
        }
        if let Some(sum) = checksum {
            headers.push((CHECKSUM_HEADER.to_owned(), sum.to_owned()));
        }
        Ok(PresignedRequest {
            url: format!("memory://PUT/{key}?exp={}", exp.millis()),
            method: "PUT",
            headers,
        })
    }
    async fn presign_get(
        &self,
        key: &str,
        ct: &str,
        cd: &str,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        let mut s = self.up()?;
        s.gets
            .push((key.to_owned(), ct.to_owned(), cd.to_owned(), exp));
        Ok(PresignedRequest {
            url: format!("memory://GET/{}", s.gets.len() - 1),
            method: "GET",
            headers: Vec::new(),
        })
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let s = self.up()?;
        Ok(s.objects.get(key).map(|b| ObjectInfo {
            size: b.len() as u64,
            etag: Some(format!("\"{}\"", md5_like(b))),
            sha256: Some(sha256_base64(b)),
        }))
    }
    async fn read_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>> {
        let s = self.up()?;
        let b = s
            .objects
            .get(key)
            .ok_or_else(|| Error::new(ErrorCode::UploadNotFound))?;
        Ok(b[..b.len().min(usize::try_from(len).unwrap_or(usize::MAX))].to_vec())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.up()?.objects.remove(key);
        Ok(())
    }
    async fn put_bytes(&self, key: &str, content_type: &str, bytes: Vec<u8>) -> Result<()> {
        let _ = content_type;
        self.up()?.objects.insert(key.to_owned(), bytes);
        Ok(())
    }
    async fn promote(&self, from: &str, to: &str, _size: u64) -> Result<()> {
        let mut s = self.up()?;
        let bytes = s
            .objects
            .remove(from)
            .ok_or_else(|| Error::new(ErrorCode::UploadNotFound))?;
        s.objects.insert(to.to_owned(), bytes);
        Ok(())
    }
    async fn create_multipart(&self, key: &str, _ct: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.up()?
            .uploads
            .insert(id.clone(), (key.to_owned(), BTreeMap::new()));
        Ok(id)
    }
    async fn presign_part<'a>(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        checksum: Option<&'a str>,
        exp: Timestamp,
    ) -> Result<PresignedRequest> {
        drop(self.up()?);
        Ok(PresignedRequest {
            url: format!(
                "memory://PUT/{key}?uploadId={upload_id}&partNumber={part}&exp={}",
                exp.millis()
            ),
            method: "PUT",
            headers: checksum
                .map(|sum| (CHECKSUM_HEADER.to_owned(), sum.to_owned()))
                .into_iter()
                .collect(),
        })
    }
    async fn complete_multipart<'a>(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        checksum: Option<&'a str>,
    ) -> Result<AssembledObject> {
        let mut s = self.up()?;
        let Some((k, stored)) = s.uploads.get(upload_id) else {
            return Err(Error::new(ErrorCode::UploadNotFound));
        };
        if k != key {
            return Err(Error::new(ErrorCode::UploadNotFound));
        }
        let mut body = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let bytes = stored
                .get(&part.part_number)
                .filter(|b| md5_like(b) == part.etag)
                .ok_or_else(|| {
                    Error::with_message(
                        ErrorCode::InvalidPartsArray,
                        format!("part {} missing or etag differs", part.part_number),
                    )
                })?;
            if i + 1 < parts.len() && (bytes.len() as u64) < crate::limits::MIN_PART_SIZE {
                return Err(Error::with_message(
                    ErrorCode::InvalidPartsArray,
                    "every part but the last must be at least 5 MiB",
                ));
            }
            body.extend_from_slice(bytes);
        }
        let sha256 = sha256_base64(&body);
        if checksum.is_some_and(|want| want != sha256) {
            return Err(Error::with_message(
                ErrorCode::InvalidPartsArray,
                "the assembled object's SHA-256 differs from checksumSha256",
            ));
        }
        s.uploads.remove(upload_id);
        let size = body.len() as u64;
        let etag = format!("\"{}-{}\"", md5_like(&body), parts.len());
        s.objects.insert(key.to_owned(), body);
        Ok(AssembledObject {
            location: format!("memory://{key}"),
            size,
            etag,
            sha256: Some(sha256),
        })
    }
    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        self.up()?.uploads.remove(upload_id);
        Ok(())
    }
    async fn health_check(&self) -> Result<()> {
        self.up().map(|_| ())
    }
}

/// Moves bytes through the store's `memory://` URLs, as a client would.
#[async_trait]
impl super::contract::Transfer for MemoryObjectStore {
    async fn put(
        &self,
        req: &PresignedRequest,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Option<String>) {
        let Some((key, query)) = req
            .url
            .strip_prefix("memory://PUT/")
            .and_then(|rest| rest.split_once('?'))
        else {
            return (403, None);
        };
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
        };
        let expired = param("exp")
            .and_then(|e| e.parse::<i64>().ok())
            .is_none_or(|exp| Self::now(&lock(&self.0)).millis() >= exp);
        if expired {
            return (403, None);
        }
        // The URL binds its headers: a request sending other values is refused.
        for (name, bound) in &req.headers {
            let sent = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map_or(bound.as_str(), |(_, v)| *v);
            if sent != bound {
                return (403, None);
            }
            if name.eq_ignore_ascii_case("content-length") && bound != &body.len().to_string() {
                return (403, None);
            }
            // Like S3: a body whose digest is not the signed one is refused (400 BadDigest).
            if name.eq_ignore_ascii_case(CHECKSUM_HEADER) && bound != &sha256_base64(&body) {
                return (400, None);
            }
        }
        match (param("uploadId"), param("partNumber")) {
            (None, None) => {
                self.put_object(key, &body);
                (200, Some(format!("\"{}\"", md5_like(&body))))
            }
            (Some(id), Some(n)) => {
                let Ok(n) = n.parse() else {
                    return (400, None);
                };
                match self.put_part(id, n, &body) {
                    Some(etag) => (200, Some(format!("\"{etag}\""))),
                    None => (404, None),
                }
            }
            _ => (400, None),
        }
    }

    fn now(&self) -> Timestamp {
        Self::now(&lock(&self.0))
    }

    async fn pass(&self, duration: std::time::Duration) {
        let manual = lock(&self.0).manual.clone();
        match manual {
            Some(clock) => {
                clock.advance_millis(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
            }
            None => tokio::time::sleep(duration).await,
        }
    }

    async fn get(&self, req: &PresignedRequest) -> (u16, Option<String>, Option<String>, Vec<u8>) {
        let s = lock(&self.0);
        let now = Self::now(&s);
        let Some((key, ct, cd, exp)) = req
            .url
            .strip_prefix("memory://GET/")
            .and_then(|n| s.gets.get(n.parse::<usize>().ok()?))
        else {
            return (403, None, None, Vec::new());
        };
        if now >= *exp {
            return (403, None, None, Vec::new());
        }
        let found = s.objects.get(key).map(|b| (b.clone(), ct, cd));
        match found {
            Some((body, ct, cd)) => (200, Some(ct.clone()), Some(cd.clone()), body),
            None => (404, None, None, Vec::new()),
        }
    }
}

/// What `owner` (every owner when `None`) holds in `tenant`.
fn usage_of(files: &BTreeMap<FileId, File>, tenant: &Tenant, owner: Option<&Owner>) -> Usage {
    files
        .values()
        .filter(|f| &f.tenant == tenant && owner.is_none_or(|o| &f.owner == o))
        .fold(Usage::default(), |u, f| Usage {
            files: u.files + 1,
            bytes: u.bytes + f.size,
        })
}

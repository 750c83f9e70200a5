//! Stowage's `ObjectStore` on local disk. URLs point at the Stowage gateway
//! (`/v1/storage/...`, served by api-actix) and carry an expiry and an
//! HMAC-SHA256 signature over method, key, expiry and every bound header.
//!
//! Layout under the root: `objects/<key>` (complete objects only), `tmp/`
//! (uploads in flight; an object appears under its key only by `rename`), and
//! `multipart/<upload-id>/` (the key, and parts named `<n>-<seq>-<md5>`:
//! several PUTs of one part number each rename a whole file in, the newest
//! `seq` is the part, older ones are removed, so racing PUTs never leave
//! none), and `digests/<key>` (each object's SHA-256, see `digests.rs`).
#![forbid(unsafe_code)]

mod digests;
mod ingress;
mod parts;
mod paths;
mod signing;

use std::io::ErrorKind as IoKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use stowage_domain::keys::{is_safe_key, unstaged};
use stowage_domain::limits::CHECKSUM_SHA256_HEADER as CHECKSUM_HEADER;
use stowage_domain::limits::MIN_PART_SIZE;
use stowage_domain::model::Timestamp;
use stowage_domain::ports::{
    AssembledObject, CompletedPart, ObjectInfo, ObjectStore, PresignedRequest,
};
use stowage_domain::{Error, ErrorCode, Result};
use tokio::fs;
use tokio::io::AsyncReadExt;

pub use ingress::{GatewayRequest, Written};
pub use paths::relative_path;
pub use signing::{Grant, SignedParams};

use parts::{part_sequence, StoredPart};
use paths::{check_key, is_upload_id, promote, resolve};

/// Configuration of the disk store.
#[derive(Clone)]
pub struct FsConfig {
    /// Folder holding `objects/`, `tmp/` and `multipart/`.
    pub root: PathBuf,
    /// Base URL of the gateway, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    /// HMAC key for URL signatures (at least 32 bytes).
    pub secret: Vec<u8>,
    /// Largest body a single PUT may carry when no length is bound.
    pub max_object_size: u64,
}

impl std::fmt::Debug for FsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsConfig")
            .field("root", &self.root)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// The disk store.
pub struct FsStore {
    objects: PathBuf,
    tmp: PathBuf,
    multipart: PathBuf,
    digests: PathBuf,
    signer: signing::Signer,
    public_url: String,
    max_object_size: u64,
}

fn io_error(context: &str, e: std::io::Error) -> Error {
    Error::internal(format!("{context}: {e}"))
}

fn quoted(hex: &str) -> String {
    format!("\"{hex}\"")
}

impl FsStore {
    /// Opens (creating folders as needed) and clears `tmp/` of anything a crash
    /// left behind: those files never became objects.
    ///
    /// # Errors
    /// `common/internal` when the folders cannot be created.
    pub async fn open(config: FsConfig) -> Result<Self> {
        if config.secret.len() < 32 {
            return Err(Error::internal("gateway secret must be at least 32 bytes"));
        }
        let store = Self {
            objects: config.root.join("objects"),
            tmp: config.root.join("tmp"),
            multipart: config.root.join("multipart"),
            digests: config.root.join("digests"),
            signer: signing::Signer::new(&config.secret),
            public_url: config.public_url.trim_end_matches('/').to_owned(),
            max_object_size: config.max_object_size,
        };
        for dir in [&store.objects, &store.tmp, &store.multipart, &store.digests] {
            fs::create_dir_all(dir)
                .await
                .map_err(|e| io_error("create store folder", e))?;
        }
        let mut entries = fs::read_dir(&store.tmp)
            .await
            .map_err(|e| io_error("read tmp", e))?;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let _ = fs::remove_file(entry.path()).await;
        }
        Ok(store)
    }

    /// Path of an object, refusing any key that could leave `objects/`
    /// (`..`, absolute paths, NUL, odd characters) or pass through a symlink.
    async fn object_path(&self, key: &str) -> Result<PathBuf> {
        Ok(self.resolve(key).await?.0)
    }

    /// [`resolve`] on the blocking pool, in one hop however deep the key.
    async fn resolve(&self, key: &str) -> Result<(PathBuf, Option<std::fs::Metadata>)> {
        check_key(key)?;
        let (objects, key) = (self.objects.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || resolve(&objects, &key))
            .await
            .map_err(|e| Error::internal(format!("resolve object: {e}")))?
    }

    fn upload_dir(&self, upload_id: &str) -> Result<PathBuf> {
        if is_upload_id(upload_id) {
            Ok(self.multipart.join(upload_id))
        } else {
            Err(Error::new(ErrorCode::UploadNotFound))
        }
    }

    fn url(&self, key: &str, query: &str) -> String {
        format!("{}/v1/storage/{key}?{query}", self.public_url)
    }
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn presign_put<'a>(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        // Signing touches no file: the gateway resolves (and symlink-checks)
        // the path when the bytes arrive.
        check_key(key)?;
        let params = SignedParams {
            expires: expires_at.unix_seconds(),
            content_type: Some(content_type.to_owned()),
            content_length,
            checksum_sha256: checksum_sha256.map(str::to_owned),
            ..SignedParams::default()
        };
        let query = self.signer.sign("PUT", key, params);
        let mut headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
        if let Some(len) = content_length {
            headers.push(("Content-Length".to_owned(), len.to_string()));
        }
        if let Some(sum) = checksum_sha256 {
            headers.push((CHECKSUM_HEADER.to_owned(), sum.to_owned()));
        }
        Ok(PresignedRequest {
            url: self.url(key, &query),
            method: "PUT",
            headers,
        })
    }

    async fn presign_get(
        &self,
        key: &str,
        content_type: &str,
        content_disposition: &str,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        check_key(key)?;
        let params = SignedParams {
            expires: expires_at.unix_seconds(),
            response_content_type: Some(content_type.to_owned()),
            response_content_disposition: Some(content_disposition.to_owned()),
            ..SignedParams::default()
        };
        let query = self.signer.sign("GET", key, params);
        Ok(PresignedRequest {
            url: self.url(key, &query),
            method: "GET",
            headers: Vec::new(),
        })
    }

    async fn read_prefix(&self, key: &str, len: u64) -> Result<Vec<u8>> {
        let (file, _) = self
            .open_object(key)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::UploadNotFound))?;
        let mut head = Vec::new();
        file.take(len)
            .read_to_end(&mut head)
            .await
            .map_err(|e| io_error("read object", e))?;
        Ok(head)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let (_, meta) = self.resolve(key).await?;
        let Some(meta) = meta.filter(std::fs::Metadata::is_file) else {
            return Ok(None);
        };
        Ok(Some(ObjectInfo {
            size: meta.len(),
            etag: None,
            sha256: self.read_digest(key, &meta).await,
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.object_path(key).await?;
        let removed = fs::remove_file(&path).await;
        self.remove_digest(key).await;
        match removed {
            Ok(()) => {
                // Drop the per-upload folder when it is now empty; harmless
                // otherwise. (Never the flat staging folder: a PUT may be about
                // to rename a file into it.)
                if let Some(parent) = path.parent().filter(|_| unstaged(key).is_none()) {
                    let _ = fs::remove_dir(parent).await;
                }
                Ok(())
            }
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete object", e)),
        }
    }

    async fn put_bytes(&self, key: &str, _content_type: &str, bytes: Vec<u8>) -> Result<()> {
        let dest = self.object_path(key).await?;
        let tmp = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        let sha256 = digests::base64_of(&sha2::Sha256::digest(&bytes));
        let path = tmp.clone();
        // Written whole and synced before it appears at the key.
        let written = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut out = std::fs::File::create(&path)?;
            out.write_all(&bytes)?;
            out.sync_all()
        })
        .await
        .map_err(|e| Error::internal(format!("write object: {e}")))?;
        let recorded = match written {
            Ok(()) => self.record_digest(key, &tmp, &sha256).await.map(|_| ()),
            Err(e) => Err(io_error("write object", e)),
        };
        if let Err(e) = recorded {
            let _ = fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.publish(&tmp, &dest).await
    }

    async fn promote(&self, from: &str, to: &str, _size: u64) -> Result<()> {
        check_key(from)?;
        check_key(to)?;
        let (objects, from, to) = (self.objects.clone(), from.to_owned(), to.to_owned());
        // One hop to the blocking pool for the whole move.
        let (source, dest) = (from.clone(), to.clone());
        tokio::task::spawn_blocking(move || promote(&objects, &source, &dest))
            .await
            .map_err(|e| Error::internal(format!("move object: {e}")))??;
        self.move_digest(&from, &to).await;
        Ok(())
    }

    async fn create_multipart(&self, key: &str, _content_type: &str) -> Result<String> {
        self.object_path(key).await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.multipart.join(&id);
        let made = async {
            fs::create_dir_all(&dir).await?;
            fs::write(dir.join("key"), key).await
        }
        .await;
        made.map_err(|e| Error::new(ErrorCode::UploadInitFailed).with_detail(e.to_string()))?;
        Ok(id)
    }

    async fn presign_part<'a>(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        checksum_sha256: Option<&'a str>,
        expires_at: Timestamp,
    ) -> Result<PresignedRequest> {
        self.upload_dir(upload_id)?;
        let params = SignedParams {
            expires: expires_at.unix_seconds(),
            upload_id: Some(upload_id.to_owned()),
            part_number: Some(part_number),
            checksum_sha256: checksum_sha256.map(str::to_owned),
            ..SignedParams::default()
        };
        let query = self.signer.sign("PUT", key, params);
        Ok(PresignedRequest {
            url: self.url(key, &query),
            method: "PUT",
            headers: checksum_sha256
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
        checksum_sha256: Option<&'a str>,
    ) -> Result<AssembledObject> {
        let dir = self.upload_dir(upload_id)?;
        self.check_upload(&dir, key).await?;
        let dest = self.object_path(key).await?;
        let stored = self.current_parts(&dir).await?;
        let mut files = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let Some(current) = stored
                .get(&part.part_number)
                .filter(|p| p.etag.eq_ignore_ascii_case(&part.etag))
            else {
                return Err(Error::with_message(
                    ErrorCode::InvalidPartsArray,
                    format!("part {} was not uploaded with that ETag", part.part_number),
                ));
            };
            let path = dir.join(&current.name);
            let len = fs::metadata(&path)
                .await
                .map_err(|e| io_error("stat part", e))?
                .len();
            if i + 1 < parts.len() && len < MIN_PART_SIZE {
                return Err(Error::with_message(
                    ErrorCode::InvalidPartsArray,
                    format!(
                        "part {} is smaller than 5 MiB and is not the last part",
                        part.part_number
                    ),
                ));
            }
            files.push(path);
        }
        let tmp = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        // Parts are read here while the blocking pool hashes and writes the
        // chunk before (as a single PUT's body is: one pass, two cores).
        let assembled = async {
            let failed = |e| io_error("assemble parts", e);
            let out = fs::File::create(&tmp).await.map_err(failed)?;
            let mut sink = ingress::Sink::new(out.into_std().await);
            let mut size = 0u64;
            for path in &files {
                let mut part = fs::File::open(path).await.map_err(failed)?;
                loop {
                    let mut chunk = vec![0u8; 1 << 20];
                    let n = part.read(&mut chunk).await.map_err(failed)?;
                    if n == 0 {
                        break;
                    }
                    chunk.truncate(n);
                    size += n as u64;
                    sink.write(chunk).await?;
                }
            }
            let (out, sha) = sink.finish().await?;
            tokio::task::spawn_blocking(move || out.sync_all())
                .await
                .map_err(|e| Error::internal(format!("assemble parts: {e}")))?
                .map_err(failed)?;
            Ok::<_, Error>((size, digests::base64_of(&sha)))
        }
        .await;
        let (size, sha256) = match assembled {
            Ok(done) => done,
            Err(e) => {
                let _ = fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        // The whole object's digest, checked before anything appears at the
        // key; the parts stay, so a corrected part can be completed again.
        if checksum_sha256.is_some_and(|want| want != sha256) {
            let _ = fs::remove_file(&tmp).await;
            return Err(Error::with_message(
                ErrorCode::InvalidPartsArray,
                "The assembled object's SHA-256 differs from checksumSha256",
            ));
        }
        if let Err(e) = self.record_digest(key, &tmp, &sha256).await {
            let _ = fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.publish(&tmp, &dest).await?;
        let _ = fs::remove_dir_all(&dir).await;
        let mut md5 = Md5::new();
        for part in parts {
            md5.update(hex::decode(&part.etag).unwrap_or_default());
        }
        let etag = format!("\"{}-{}\"", hex::encode(md5.finalize()), parts.len());
        Ok(AssembledObject {
            location: format!("{}/v1/storage/{key}", self.public_url),
            size,
            etag,
            sha256: Some(sha256),
        })
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        let dir = self.upload_dir(upload_id)?;
        match fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == IoKind::NotFound => Ok(()),
            Err(e) => Err(io_error("abort upload", e)),
        }
    }

    async fn health_check(&self) -> Result<()> {
        fs::metadata(&self.objects)
            .await
            .map(|_| ())
            .map_err(|e| Error::unavailable(format!("object folder: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use sha2::Sha256;
    use stowage_domain::testing::contract::{self, Transfer};

    /// Moves bytes the way the gateway does, minus HTTP: authorize, check the
    /// bound headers, stream the body.
    struct Direct(std::sync::Arc<FsStore>);

    fn split(url: &str) -> (String, Vec<(String, String)>) {
        let rest = url
            .split_once("/v1/storage/")
            .map(|(_, r)| r)
            .unwrap_or_default();
        let (key, query) = rest.split_once('?').unwrap_or((rest, ""));
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect();
        (key.to_owned(), pairs)
    }

    fn now() -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }

    #[async_trait]
    impl Transfer for Direct {
        async fn put(
            &self,
            req: &PresignedRequest,
            extra: &[(&str, &str)],
            body: Vec<u8>,
        ) -> (u16, Option<String>) {
            let (key, query) = split(&req.url);
            let header = |name: &str| {
                extra
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| (*v).to_owned())
                    .or_else(|| {
                        req.headers
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.clone())
                    })
            };
            let chunks = futures_util::stream::iter(
                body.chunks(64 * 1024)
                    .map(|c| Ok::<_, String>(c.to_vec()))
                    .collect::<Vec<_>>(),
            );
            // A client sends the length of its body unless told otherwise.
            let (content_type, content_length, checksum) = (
                header("Content-Type"),
                header("Content-Length").or_else(|| Some(body.len().to_string())),
                header(CHECKSUM_HEADER),
            );
            let request = GatewayRequest {
                method: "PUT",
                key: &key,
                query: &query,
                content_type: content_type.as_deref(),
                content_length: content_length.as_deref(),
                checksum_sha256: checksum.as_deref(),
            };
            let result = match self.0.authorize(&request, now()) {
                Ok(Grant::PutObject {
                    content_length,
                    checksum_sha256,
                    ..
                }) => {
                    self.0
                        .put_object(
                            &key,
                            content_length,
                            checksum_sha256.as_deref(),
                            u64::MAX,
                            chunks,
                        )
                        .await
                }
                Ok(Grant::PutPart {
                    upload_id,
                    part_number,
                    checksum_sha256,
                }) => {
                    self.0
                        .put_part(
                            &key,
                            &upload_id,
                            part_number,
                            checksum_sha256.as_deref(),
                            u64::MAX,
                            chunks,
                        )
                        .await
                }
                _ => return (403, None),
            };
            match result {
                Ok(w) => (200, Some(w.etag)),
                Err(_) => (400, None),
            }
        }

        async fn get(
            &self,
            req: &PresignedRequest,
        ) -> (u16, Option<String>, Option<String>, Vec<u8>) {
            let (key, query) = split(&req.url);
            let request = GatewayRequest {
                method: "GET",
                key: &key,
                query: &query,
                content_type: None,
                content_length: None,
                checksum_sha256: None,
            };
            let Ok(Grant::Get {
                content_type,
                content_disposition,
            }) = self.0.authorize(&request, now())
            else {
                return (403, None, None, Vec::new());
            };
            match self.0.open_object(&key).await {
                Ok(Some((mut file, _))) => {
                    let mut body = Vec::new();
                    let _ = file.read_to_end(&mut body).await;
                    (200, Some(content_type), Some(content_disposition), body)
                }
                _ => (404, None, None, Vec::new()),
            }
        }
    }

    async fn store(dir: &tempfile::TempDir) -> FsStore {
        FsStore::open(FsConfig {
            root: dir.path().to_path_buf(),
            public_url: "http://127.0.0.1:1".into(),
            secret: vec![7; 32],
            max_object_size: 1 << 30,
        })
        .await
        .expect("open")
    }

    #[tokio::test]
    async fn passes_the_service_kit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(store(&dir).await);
        contract::file_service(
            std::sync::Arc::new(stowage_domain::testing::memory::MemoryFileRepository::default()),
            store.clone(),
            &Direct(store.clone()),
        )
        .await;
    }

    /// A store in a fresh folder, per kit check, with the gateway's policy
    /// as the transfer.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: std::sync::Arc<FsStore>,
        io: Direct,
    }

    impl contract::StoreFixture for Fixture {
        fn store(&self) -> &dyn ObjectStore {
            self.store.as_ref()
        }
        fn io(&self) -> &dyn Transfer {
            &self.io
        }
        fn prefix(&self) -> &str {
            "demo/dev/owner"
        }
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(store(&dir).await);
        Fixture {
            _dir: dir,
            io: Direct(store.clone()),
            store,
        }
    }

    stowage_domain::object_store_kit!(fixture().await);

    /// Moving the last upload out of staging must not remove the staging
    /// folder under a PUT that is about to rename into it (found by the soak).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn staging_survives_concurrent_moves_and_uploads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir).await;
        let body =
            || futures_util::stream::iter([Ok::<_, std::convert::Infallible>(b"abc".to_vec())]);
        for round in 0..200 {
            let staged = format!("_staging/demo/dev/h/{round}/a.txt");
            store
                .put_object(&staged, None, None, u64::MAX, body())
                .await
                .expect("put");
            let next = format!("_staging/demo/dev/h/{round}/b.txt");
            let placed = format!("demo/dev/h/{round}/a.txt");
            let (moved, put) = tokio::join!(
                store.promote(&staged, &placed, 3),
                store.put_object(&next, None, None, u64::MAX, body())
            );
            moved.expect("promote");
            put.expect("a PUT racing a move succeeds");
            store.delete(&next).await.expect("delete");
        }
    }

    /// The digest follows its object through `promote` and goes with
    /// `delete`; a digest that does not describe the file now at the key (a
    /// crash between the two renames, a file replaced behind the store) is
    /// never reported; a bad digest refuses the body and keeps nothing.
    #[tokio::test]
    async fn digests_follow_their_object_and_are_never_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir).await;
        let body = |b: &'static [u8]| {
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(b.to_vec())])
        };
        let sum = digests::base64_of(&Sha256::digest(b"abc"));
        let (staged, placed) = ("_staging/demo/dev/h/u/a.txt", "demo/dev/h/u/a.txt");
        let written = store
            .put_object(staged, None, Some(&sum), u64::MAX, body(b"abc"))
            .await
            .expect("put");
        assert_eq!(written.sha256, sum);
        let head = |k: &'static str| {
            let store = &store;
            async move { store.head(k).await.expect("head").and_then(|i| i.sha256) }
        };
        assert_eq!(head(staged).await, Some(sum.clone()));
        store.promote(staged, placed, 3).await.expect("promote");
        assert_eq!(
            head(placed).await,
            Some(sum.clone()),
            "moved with the object"
        );
        assert_eq!(head(staged).await, None);

        // Replaced behind the store's back, same length: unknown, not wrong.
        let path = dir.path().join("objects").join(placed);
        std::fs::remove_file(&path).expect("remove");
        std::fs::write(&path, b"abd").expect("write");
        assert_eq!(
            store.head(placed).await.expect("head").map(|i| i.size),
            Some(3)
        );
        assert_eq!(
            head(placed).await,
            None,
            "a digest of another file is ignored"
        );

        store.delete(placed).await.expect("delete");
        assert!(
            !dir.path().join("digests").join(placed).exists(),
            "the digest goes with its object"
        );

        // A body whose digest is not the declared one: refused, nothing kept.
        let err = store
            .put_object(placed, None, Some(&sum), u64::MAX, body(b"abd"))
            .await
            .err()
            .map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::InvalidRequest));
        assert_eq!(store.head(placed).await.expect("head"), None);
        let tmp = std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count();
        assert_eq!(tmp, 0, "nothing is kept in tmp");
    }

    /// Two PUTs racing on one key: whatever digest the store reports is the
    /// digest of the bytes at the key (or none), never the other body's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_puts_never_leave_a_wrong_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(store(&dir).await);
        let body = |b: Vec<u8>| futures_util::stream::iter([Ok::<_, std::convert::Infallible>(b)]);
        let mut unknown = 0;
        for round in 0..100 {
            let key = format!("_staging/demo/dev/h/race{round}/a.bin");
            let (a, b) = (vec![b'a'; 4096 + round], vec![b'b'; 4096 + round]);
            let (ra, rb) = tokio::join!(
                store.put_object(&key, None, None, u64::MAX, body(a.clone())),
                store.put_object(&key, None, None, u64::MAX, body(b.clone()))
            );
            ra.expect("put a");
            rb.expect("put b");
            let bytes = std::fs::read(
                dir.path()
                    .join("objects")
                    .join(relative_path(&key).expect("path")),
            )
            .expect("read");
            match store.head(&key).await.expect("head").and_then(|i| i.sha256) {
                Some(sum) => assert_eq!(sum, digests::base64_of(&Sha256::digest(&bytes))),
                None => unknown += 1,
            }
        }
        eprintln!("digest unknown after {unknown} of 100 races");
    }

    #[tokio::test]
    async fn bodies_past_the_limit_are_cut_off_and_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir).await;
        let chunks = futures_util::stream::iter(
            (0..64).map(|_| Ok::<_, std::convert::Infallible>(vec![0u8; 1024])),
        );
        let err = store
            .put_object("demo/dev/h/u/a.bin", None, None, 10_000, chunks)
            .await
            .err()
            .map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::FileTooLarge));
        assert_eq!(store.head("demo/dev/h/u/a.bin").await.ok(), Some(None));
        let id = store
            .create_multipart("demo/dev/h/u/b.bin", "application/octet-stream")
            .await
            .expect("create");
        let chunks = futures_util::stream::iter(
            (0..64).map(|_| Ok::<_, std::convert::Infallible>(vec![0u8; 1024])),
        );
        let err = store
            .put_part("demo/dev/h/u/b.bin", &id, 1, None, 10_000, chunks)
            .await
            .err()
            .map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::FileTooLarge));
        assert!(store
            .current_parts(&store.upload_dir(&id).expect("dir"))
            .await
            .expect("parts")
            .is_empty());
        let tmp = std::fs::read_dir(dir.path().join("tmp"))
            .expect("tmp")
            .count();
        assert_eq!(tmp, 0, "nothing is kept in tmp");
    }

    #[tokio::test]
    async fn keys_never_escape_the_object_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir).await;
        let outside = dir.path().join("secret.txt");
        std::fs::write(&outside, b"top secret").expect("write");
        for key in [
            "../secret.txt",
            "/etc/passwd",
            "a/../../secret.txt",
            "a\0b",
            "a//b",
            "./a",
            "",
        ] {
            assert_eq!(
                store.head(key).await.err().map(|e| e.code()),
                Some(ErrorCode::InvalidPath),
                "{key:?}"
            );
        }
        // A symlink planted inside the tree is not followed.
        std::os::unix::fs::symlink(dir.path(), dir.path().join("objects").join("link"))
            .expect("symlink");
        assert_eq!(
            store.head("link/secret.txt").await.err().map(|e| e.code()),
            Some(ErrorCode::InvalidPath)
        );
        assert_eq!(
            store
                .delete("link/secret.txt")
                .await
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::InvalidPath)
        );
        // Presigning touches no file; writing through the link is refused
        // where the bytes arrive.
        let body = futures_util::stream::iter(vec![Ok::<_, String>(vec![1u8; 3])]);
        assert_eq!(
            store
                .put_object("link/secret.txt", None, None, u64::MAX, body)
                .await
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::InvalidPath)
        );
        assert!(outside.exists());
    }

    #[tokio::test]
    async fn interrupted_uploads_leave_nothing_under_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(&dir).await;
        let body =
            futures_util::stream::iter(vec![Ok(vec![1u8; 10]), Err("connection reset".to_owned())]);
        assert!(store
            .put_object("a/b", None, None, u64::MAX, body)
            .await
            .is_err());
        assert_eq!(store.head("a/b").await.ok().flatten(), None);
        let short = futures_util::stream::iter(vec![Ok::<_, String>(vec![1u8; 3])]);
        assert_eq!(
            store
                .put_object("a/b", Some(5), None, u64::MAX, short)
                .await
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::AccessDenied)
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .map(|d| d.count())
                .ok(),
            Some(0),
            "temp files are removed"
        );
        // Leftovers of a crash are cleared when the store opens.
        std::fs::write(dir.path().join("tmp").join("partial"), b"x").expect("write");
        drop(store);
        let _store = super::tests::store(&dir).await;
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .map(|d| d.count())
                .ok(),
            Some(0)
        );
    }
}

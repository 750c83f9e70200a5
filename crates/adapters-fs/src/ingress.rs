//! What only the gateway calls: signature checks, receiving upload bodies
//! (streamed to a temp file, hashed, counted, fsynced, then renamed into
//! place), and opening objects for download.

use super::*;

/// What a finished PUT produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// Quoted MD5 hex.
    pub etag: String,
    /// SHA-256 of the body, base64.
    pub sha256: String,
}

/// A request to the gateway as the signed-URL policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRequest<'a> {
    /// `GET`, `HEAD` or `PUT`.
    pub method: &'a str,
    /// The object key of the path.
    pub key: &'a str,
    /// The query string's pairs, decoded.
    pub query: &'a [(String, String)],
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// The `Content-Length` header, if any.
    pub content_length: Option<&'a str>,
    /// The `x-amz-checksum-sha256` header, if any.
    pub checksum_sha256: Option<&'a str>,
}

impl FsStore {
    /// The whole signed-URL policy of the gateway: the signature and expiry
    /// over method, key and bound headers, the method the URL was signed
    /// for, for an object PUT the `Content-Type` (and `Content-Length`
    /// when declared) it is bound to, and for any PUT the
    /// `x-amz-checksum-sha256` it is bound to (the body's digest is checked
    /// as it streams, [`FsStore::put_object`]). What the upload still accepts
    /// is the domain's to say (`FileService::authorize_upload_bytes`).
    ///
    /// # Errors
    /// `file/access-denied` for a missing, malformed, tampered, expired or
    /// misused signature, or a header other than the one signed.
    pub fn authorize(&self, req: &GatewayRequest<'_>, now: Timestamp) -> Result<Grant> {
        let denied = |m: &str| Error::with_message(ErrorCode::AccessDenied, m.to_owned());
        let params =
            SignedParams::from_query(req.query.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let mut grant = self.signer.verify(req.method, req.key, &params, now)?;
        if let Grant::PutObject {
            checksum_sha256, ..
        }
        | Grant::PutPart {
            checksum_sha256, ..
        } = &mut grant
        {
            match (checksum_sha256.as_deref(), req.checksum_sha256) {
                (Some(bound), sent) if sent != Some(bound) => {
                    return Err(denied(
                        "x-amz-checksum-sha256 does not match the signed URL",
                    ));
                }
                // An unsigned `x-amz-checksum-sha256` is honoured too (the
                // client asked for the check): the grant carries the digest
                // the body must have either way.
                (None, Some(sent)) => *checksum_sha256 = Some(sent.to_owned()),
                _ => {}
            }
        }
        match &grant {
            Grant::Get { .. } if req.method == "PUT" => Err(denied("URL does not allow PUT")),
            Grant::PutObject {
                content_type,
                content_length,
                ..
            } => {
                let sent = req.content_type.unwrap_or_default();
                if !sent.eq_ignore_ascii_case(content_type) {
                    return Err(denied("Content-Type does not match the signed URL"));
                }
                let sent_length = req.content_length.and_then(|v| v.parse::<u64>().ok());
                if content_length.is_some_and(|len| sent_length != Some(len)) {
                    return Err(denied("Content-Length does not match the signed URL"));
                }
                Ok(grant)
            }
            _ => Ok(grant),
        }
    }

    /// Streams a body into a temp file, hashing and counting; the file is
    /// fsynced before it is returned. Nothing is ever buffered whole.
    /// With `sha256` (base64), a body with another digest is refused and
    /// nothing is kept, like S3's `BadDigest`.
    pub(crate) async fn receive<S, B, E>(
        &self,
        expected: Option<u64>,
        sha256: Option<&str>,
        limit: u64,
        mut body: S,
    ) -> Result<(PathBuf, Written)>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let path = self.tmp.join(uuid::Uuid::new_v4().simple().to_string());
        let result = async {
            // Coalesce network-sized chunks into larger writes (each write is
            // a trip to the blocking pool): 64 KiB while the body is small,
            // 1 MiB once it has passed 4 MiB. A body that trickles in (a slow
            // client, or thousands of them) so holds at most 64 KiB. MD5 is
            // computed here as chunks arrive; each batch's SHA-256 and write
            // run on the blocking pool while the next batch arrives (one pass
            // over the bytes, the two digests on two cores).
            let file = fs::File::create(&path)
                .await
                .map_err(|e| io_error("create temp", e))?
                .into_std()
                .await;
            let mut sink = Sink::new(file);
            let mut pending: Vec<u8> = Vec::new();
            let mut md5 = Md5::new();
            let mut size: u64 = 0;
            let cap = expected.unwrap_or(limit);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::invalid_request(
                        "The upload was interrupted before its body was complete",
                    )
                    .with_detail(e.to_string())
                })?;
                let bytes = chunk.as_ref();
                size += bytes.len() as u64;
                if size > cap {
                    return Err(if expected.is_some() {
                        Error::with_message(
                            ErrorCode::AccessDenied,
                            "Body is longer than the signed Content-Length",
                        )
                    } else {
                        Error::new(ErrorCode::FileTooLarge)
                    });
                }
                md5.update(bytes);
                pending.extend_from_slice(bytes);
                let batch = if size > 4 << 20 { 1 << 20 } else { 64 << 10 };
                if pending.len() >= batch {
                    sink.write(std::mem::take(&mut pending)).await?;
                }
            }
            sink.write(pending).await?;
            let (file, sha) = sink.finish().await?;
            if expected.is_some_and(|n| n != size) {
                return Err(Error::with_message(
                    ErrorCode::AccessDenied,
                    "Body length differs from the signed Content-Length",
                ));
            }
            let digest = digests::base64_of(&sha);
            if sha256.is_some_and(|want| want != digest) {
                return Err(Error::invalid_request(
                    "The body's SHA-256 differs from x-amz-checksum-sha256",
                ));
            }
            tokio::task::spawn_blocking(move || file.sync_all())
                .await
                .map_err(|e| Error::internal(format!("fsync temp: {e}")))?
                .map_err(|e| io_error("fsync temp", e))?;
            Ok(Written {
                size,
                etag: hex::encode(md5.finalize()),
                sha256: digest,
            })
        }
        .await;
        match result {
            Ok(w) => Ok((path, w)),
            Err(e) => {
                let _ = fs::remove_file(&path).await;
                Err(e)
            }
        }
    }

    /// Moves a finished temp file to `dest` atomically and makes the rename durable.
    pub(crate) async fn publish(&self, tmp: &Path, dest: &Path) -> Result<()> {
        let parent = dest
            .parent()
            .ok_or_else(|| Error::internal("object path has no parent"))?;
        let result = async {
            fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error("create object folder", e))?;
            fs::rename(tmp, dest)
                .await
                .map_err(|e| io_error("rename object", e))?;
            if let Ok(dir) = fs::File::open(parent).await {
                let _ = dir.sync_all().await;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(tmp).await;
        }
        result
    }

    /// Handles an authorized gateway PUT of a whole object; `limit` is what
    /// the upload allows (the store's own maximum applies too). The body's
    /// SHA-256 is computed as it streams and recorded with the object.
    ///
    /// # Errors
    /// `file/access-denied` when the body breaks the signed length;
    /// `file/file-too-large` as soon as the body passes `limit`;
    /// `common/invalid-request` when its digest is not `checksum_sha256`
    /// (nothing is kept in any of these cases).
    pub async fn put_object<S, B, E>(
        &self,
        key: &str,
        content_length: Option<u64>,
        checksum_sha256: Option<&str>,
        limit: u64,
        body: S,
    ) -> Result<Written>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let dest = self.object_path(key).await?;
        let (tmp, mut written) = self
            .receive(
                content_length,
                checksum_sha256,
                limit.min(self.max_object_size),
                body,
            )
            .await?;
        let who = match self.record_digest(key, &tmp, &written.sha256).await {
            Ok(who) => who,
            Err(e) => {
                let _ = fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        self.publish(&tmp, &dest).await?;
        self.settle_digest(key, &dest, &who, &written.sha256).await;
        written.etag = quoted(&written.etag);
        Ok(written)
    }

    /// Handles an authorized gateway PUT of one part of at most `limit`
    /// bytes; a part number uploaded again replaces the old part. Each PUT
    /// renames a whole file in under a fresh sequence number and then removes
    /// the older files of its part number, so of racing PUTs the newest stays
    /// whole and none removes it.
    ///
    /// # Errors
    /// `file/upload-not-found` for an unknown, completed or aborted upload;
    /// `file/file-too-large` as soon as the body passes `limit`;
    /// `common/invalid-request` when its digest is not `checksum_sha256`.
    pub async fn put_part<S, B, E>(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        checksum_sha256: Option<&str>,
        limit: u64,
        body: S,
    ) -> Result<Written>
    where
        S: Stream<Item = std::result::Result<B, E>> + Unpin,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let dir = self.upload_dir(upload_id)?;
        self.check_upload(&dir, key).await?;
        let (tmp, mut written) = self
            .receive(None, checksum_sha256, limit.min(self.max_object_size), body)
            .await?;
        // The upload may have been aborted while the body streamed in.
        if fs::metadata(&dir).await.is_err() {
            let _ = fs::remove_file(&tmp).await;
            return Err(Error::new(ErrorCode::UploadNotFound));
        }
        let seq = part_sequence();
        let name = format!("{part_number}-{seq}-{}", written.etag);
        self.publish(&tmp, &dir.join(&name)).await?;
        for part in self.parts(&dir).await? {
            if part.number == part_number && part.seq < seq {
                let _ = fs::remove_file(dir.join(&part.name)).await;
            }
        }
        written.etag = quoted(&written.etag);
        Ok(written)
    }

    pub(crate) async fn check_upload(&self, dir: &Path, key: &str) -> Result<()> {
        match fs::read_to_string(dir.join("key")).await {
            Ok(k) if k == key => Ok(()),
            Ok(_) => Err(Error::new(ErrorCode::UploadNotFound)),
            Err(e) if e.kind() == IoKind::NotFound => Err(Error::new(ErrorCode::UploadNotFound)),
            Err(e) => Err(io_error("read upload", e)),
        }
    }

    /// Every stored part file.
    pub(crate) async fn parts(&self, dir: &Path) -> Result<Vec<StoredPart>> {
        let mut out = Vec::new();
        let mut entries = fs::read_dir(dir)
            .await
            .map_err(|e| io_error("read upload", e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("read upload", e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(part) = StoredPart::parse(name) {
                out.push(part);
            }
        }
        Ok(out)
    }

    /// The current file of each part number: the newest of its PUTs.
    pub(crate) async fn current_parts(
        &self,
        dir: &Path,
    ) -> Result<std::collections::HashMap<u32, StoredPart>> {
        let mut current: std::collections::HashMap<u32, StoredPart> =
            std::collections::HashMap::new();
        for part in self.parts(dir).await? {
            match current.get(&part.number) {
                Some(have) if have.seq >= part.seq => {}
                _ => {
                    current.insert(part.number, part);
                }
            }
        }
        Ok(current)
    }

    /// Opens an object for reading: the file and its size; `None` if absent.
    ///
    /// # Errors
    /// `file/invalid-path` for an unsafe key.
    pub async fn open_object(&self, key: &str) -> Result<Option<(fs::File, u64)>> {
        let path = self.object_path(key).await?;
        match fs::File::open(&path).await {
            Ok(file) => {
                let meta = file
                    .metadata()
                    .await
                    .map_err(|e| io_error("stat object", e))?;
                if !meta.is_file() {
                    return Ok(None);
                }
                Ok(Some((file, meta.len())))
            }
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(io_error("open object", e)),
        }
    }
}

/// The temp file and the SHA-256 of what was written to it, the pair being
/// either at hand or away on the blocking pool writing and hashing one batch.
pub(crate) struct Sink {
    at_hand: Option<(std::fs::File, sha2::Sha256)>,
    away: Option<tokio::task::JoinHandle<std::io::Result<(std::fs::File, sha2::Sha256)>>>,
}

impl Sink {
    pub(crate) fn new(file: std::fs::File) -> Self {
        Self {
            at_hand: Some((file, sha2::Sha256::new())),
            away: None,
        }
    }

    /// The pair, once the batch in flight (if any) is written.
    async fn take(&mut self) -> Result<(std::fs::File, sha2::Sha256)> {
        if let Some(task) = self.away.take() {
            let parts = task
                .await
                .map_err(|e| Error::internal(format!("write temp: {e}")))?
                .map_err(|e| io_error("write temp", e))?;
            self.at_hand = Some(parts);
        }
        self.at_hand
            .take()
            .ok_or_else(|| Error::internal("write temp: the file was lost"))
    }

    /// Hands `batch` to the blocking pool (after the previous one is done).
    pub(crate) async fn write(&mut self, batch: Vec<u8>) -> Result<()> {
        use std::io::Write as _;
        if batch.is_empty() {
            return Ok(());
        }
        let (mut file, mut sha) = self.take().await?;
        self.away = Some(tokio::task::spawn_blocking(move || {
            sha.update(&batch);
            file.write_all(&batch)?;
            Ok((file, sha))
        }));
        Ok(())
    }

    /// The file and the digest of everything written.
    pub(crate) async fn finish(
        mut self,
    ) -> Result<(std::fs::File, sha2::digest::Output<sha2::Sha256>)> {
        let (file, sha) = self.take().await?;
        Ok((file, sha.finalize()))
    }
}

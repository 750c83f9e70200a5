//! Issuing upload URLs, multipart uploads, and what the gateway may accept.
use super::*;

impl FileService {
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

    /// Refuses an upload whose file (of its declared size, if any) would take
    /// the caller or the project past a quota (docs/api.md §11). Only an early
    /// answer: registration decides atomically.
    async fn check_quota(&self, principal: &Principal, size: Option<u64>) -> Result<()> {
        let quota = &self.config.quota;
        if !quota.is_set() {
            return Ok(());
        }
        let tenant = &principal.tenant;
        let user = match principal.identity.kind {
            OwnerType::User if quota.user.is_set() => {
                Some(self.repo.usage(tenant, Some(&principal.identity)).await?)
            }
            _ => None,
        };
        let project = if quota.project.is_set() {
            self.repo.usage(tenant, None).await?
        } else {
            Usage::default()
        };
        match quota.exceeded(user, project, Usage::one_file(size.unwrap_or(0))) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The record of an upload about to be issued (not stored yet: the URL
    /// is signed first, so a store that cannot sign leaves no record).
    fn new_upload(
        &self,
        principal: &Principal,
        req: &IssueUpload,
        mime: &MimeType,
        size: Option<u64>,
        multipart_id: Option<String>,
        key: String,
    ) -> IssuedUpload {
        let ttl = if multipart_id.is_some() {
            self.config.multipart_ttl_secs
        } else {
            self.config.upload_url_ttl_secs
        };
        let now = self.clock.now();
        IssuedUpload {
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
            checksum_sha256: req.checksum_sha256.clone(),
            state: UploadState::Pending,
            created_at: now,
            expires_at: now.plus_secs(ttl),
        }
    }

    /// `POST /v1/files/presigned-url`.
    pub async fn issue_upload_url(
        &self,
        principal: &Principal,
        req: IssueUpload,
    ) -> Result<UploadTicket> {
        let (mime, size) = self.check_issue(&req, false)?;
        self.check_quota(principal, size).await?;
        let key = keys::generate_with(
            &principal.tenant,
            &principal.identity,
            &req.filename,
            self.ids.unique(),
        );
        let upload = self.new_upload(principal, &req, &mime, size, None, key);
        let presigned = self
            .store
            .presign_put(
                &keys::staging_key(&upload.key),
                &upload.content_type,
                size,
                upload.checksum_sha256.as_deref(),
                upload.expires_at,
            )
            .await?;
        self.repo.insert_upload(&upload).await?;
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
        self.check_quota(principal, size).await?;
        let key = keys::generate_with(
            &principal.tenant,
            &principal.identity,
            &req.filename,
            self.ids.unique(),
        );
        let upload_id = self
            .store
            .create_multipart(&keys::staging_key(&key), mime.as_str())
            .await?;
        let upload = self.new_upload(principal, &req, &mime, size, Some(upload_id.clone()), key);
        if let Err(e) = self.repo.insert_upload(&upload).await {
            // Nobody will ever drive that store upload: abort it (best effort;
            // the store's own lifecycle rule covers a failure here).
            let _ = self
                .store
                .abort_multipart(&keys::staging_key(&upload.key), &upload_id)
                .await;
            return Err(e);
        }
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
        crate::access::upload_access(principal, &upload)?;
        Ok(upload)
    }

    /// `POST /v1/files/multipart/presigned-url`. With `checksum_sha256` (the
    /// part's own digest) the URL binds `x-amz-checksum-sha256`, listed in
    /// the ticket's `headers` (docs/api.md §11).
    pub async fn presign_part(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
        part_number: PartNumber,
        checksum_sha256: Option<&str>,
    ) -> Result<PartTicket> {
        if checksum_sha256.is_some_and(|c| !crate::limits::is_sha256_base64(c)) {
            return Err(Error::invalid_request(
                "checksumSha256: must be the base64 of a 32-byte SHA-256 digest",
            ));
        }
        let upload = self.multipart_upload(principal, key, upload_id).await?;
        let expires = self
            .clock
            .now()
            .plus_secs(self.config.upload_url_ttl_secs)
            .min(upload.expires_at);
        let presigned = self
            .store
            .presign_part(
                &keys::staging_key(key),
                upload_id,
                part_number.get(),
                checksum_sha256,
                expires,
            )
            .await?;
        Ok(PartTicket {
            url: presigned.url,
            part_number: part_number.get(),
            headers: presigned
                .headers
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        })
    }

    /// `POST /v1/files/multipart/complete`.
    pub async fn complete_multipart(
        &self,
        principal: &Principal,
        key: &str,
        upload_id: &str,
        parts: CompletedParts,
    ) -> Result<CompletedUpload> {
        parts.check_not_empty()?;
        let upload = self.multipart_upload(principal, key, upload_id).await?;
        let tenant = &principal.tenant;
        // Claim the upload first: of a completion racing an abort (or another
        // completion), exactly one gets past this line.
        if !self
            .repo
            .transition_upload(
                tenant,
                key,
                UploadState::Pending,
                UploadState::Completing,
                None,
            )
            .await?
        {
            return Err(Error::new(ErrorCode::UploadNotFound));
        }
        let staged = keys::staging_key(key);
        let assembled = match self
            .store
            .complete_multipart(
                &staged,
                upload_id,
                &parts,
                upload.checksum_sha256.as_deref(),
            )
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
                    .transition_upload(tenant, key, UploadState::Completing, back, None)
                    .await?;
                return Err(e);
            }
        };
        // A store that computes the digest refused a wrong one already; one
        // that says otherwise now broke its port: never keep that object.
        let digest_differs = matches!(
            (&assembled.sha256, &upload.checksum_sha256),
            (Some(have), Some(want)) if have != want
        );
        if digest_differs {
            self.discard_object(&staged).await;
            self.repo
                .transition_upload(
                    tenant,
                    key,
                    UploadState::Completing,
                    UploadState::Aborted,
                    None,
                )
                .await?;
            return Err(Error::with_message(
                ErrorCode::InvalidPartsArray,
                "The assembled object's SHA-256 differs from checksumSha256",
            ));
        }
        if assembled.size > upload.max_size
            || upload.declared_size.is_some_and(|d| d != assembled.size)
        {
            self.discard_object(&staged).await;
            self.repo
                .transition_upload(
                    tenant,
                    key,
                    UploadState::Completing,
                    UploadState::Aborted,
                    None,
                )
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
            .transition_upload(
                tenant,
                key,
                UploadState::Completing,
                UploadState::Completed,
                None,
            )
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
                None,
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
}

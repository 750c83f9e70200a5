//! `POST /v1/files`: the seven checks of docs/api.md §4, in order, and the move
//! of the object out of staging.
use super::*;
use crate::content::{self, Verdict};

impl FileService {
    /// `POST /v1/files`: the seven checks of docs/api.md, in order.
    pub async fn register(&self, principal: &Principal, req: RegisterFile) -> Result<FileView> {
        // Field rules.
        req.check_fields()?;
        let mime = MimeType::parse(&req.mime_type)?;
        let size = req.size;
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
        let mut file = File {
            id: FileId(self.ids.unique()),
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
            checksum_sha256: None,
            created_at: now,
            updated_at: now,
        };
        match self.place_and_register(&upload, &mut file).await {
            Ok(()) => Ok(self.view(file, crate::model::Projection::Full)),
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
                None,
            )
            .await;
    }

    /// Registration past its claim: checks 6 and 7 against the stored object,
    /// the content check (step 8, docs/api.md §11), moves it from staging to
    /// its key (where no URL can write), queues the staging key for deletion
    /// once the upload's URLs have expired (a late `PUT` can only land
    /// there), and records the file.
    async fn place_and_register(&self, upload: &IssuedUpload, file: &mut File) -> Result<()> {
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
        // The digest of the bytes: the store's own where it computes one (the
        // embedded store, for every object), else the one declared at issue
        // (bound to the PUT and verified by S3). Both known and different:
        // the object is not what the client hashed.
        file.checksum_sha256 = match (object.sha256.clone(), &upload.checksum_sha256) {
            (Some(stored), Some(declared)) if &stored != declared => {
                self.discard_object(location).await;
                return Err(Error::invalid_request(
                    "The uploaded object's SHA-256 differs from the checksumSha256 given at issue",
                ));
            }
            (Some(stored), _) => Some(stored),
            (None, declared) => declared.clone(),
        };
        // 8. Of the type it is registered as?
        if content::is_checked(&file.mime_type) {
            let head = self
                .store
                .read_prefix(location, content::HEAD_BYTES)
                .await?;
            match content::check(&file.mime_type, &head) {
                Ok(Verdict::Matches {
                    dimensions: Some((w, h)),
                }) if file.width.is_none() && file.height.is_none() => {
                    file.width = Some(w);
                    file.height = Some(h);
                }
                Ok(_) => {}
                Err(e) => {
                    self.discard_object(location).await;
                    return Err(e);
                }
            }
        }
        if location == staged {
            self.store
                .promote(&staged, &upload.key, object.size)
                .await?;
            // A PUT that was already streaming when the upload was claimed
            // may have replaced the staged object between the checks and the
            // move. Where the store knows digests (cheaply), the object now at
            // the key must be the one checked, or it is not registered.
            if object.sha256.is_some() {
                let placed = self.store.head(&upload.key).await?;
                let same = placed
                    .as_ref()
                    .is_some_and(|p| p.size == object.size && p.sha256 == object.sha256);
                if !same {
                    self.discard_object(&upload.key).await;
                    return Err(Error::with_message(
                        ErrorCode::UploadNotFound,
                        "The object changed while it was being registered: upload it again",
                    ));
                }
            }
        }
        let cleanup = QueuedDeletion {
            key: staged,
            due: upload.expires_at.plus_secs(self.config.staging_grace_secs),
        };
        let event = Event::file_registered(
            self.ids.unique(),
            file.created_at,
            file,
            self.config.public_base_url.as_deref(),
        );
        self.repo
            .register_file(file, Some(&cleanup), &self.config.quota, &event)
            .await?;
        self.events.add(EventType::FileRegistered);
        Ok(())
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
    crate::access::upload_access(principal, upload)?;
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

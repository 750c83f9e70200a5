//! Reading, listing, changing and deleting files; download URLs.
use super::*;

impl FileService {
    /// `GET /v1/files/:id`.
    pub async fn get(&self, principal: &Principal, id: FileId) -> Result<FileView> {
        let file = self.load(principal, id).await?;
        let projection = read_access(principal, &file)?;
        Ok(self.view(file, projection))
    }

    /// `GET /v1/files`.
    pub async fn list(&self, principal: &Principal, mut params: ListParams) -> Result<FileList> {
        if let Some(raw) = params.cursor_token.take() {
            params.cursor = Some(self.cursor_seal().await?.open(&raw, principal, &params)?);
        }
        let query = ListQuery {
            tenant: principal.tenant.clone(),
            scope: Scope::of(principal),
            params,
        };
        let page = self.repo.list_files(&query).await?;
        let params = query.params;
        let total_pages = page.total.div_ceil(u64::from(params.limit));
        let next_cursor = match page.cursor_after_last(params.sort_by, params.direction) {
            Some(cursor) if page.has_more => {
                Some(self.cursor_seal().await?.seal(&cursor, principal, &params))
            }
            _ => None,
        };
        let items = page
            .items
            .into_iter()
            .map(|f| read_access(principal, &f).map(|p| self.view(f, p)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| {
                Error::internal(format!(
                    "repository returned a row outside the caller's scope: {e}"
                ))
            })?;
        Ok(FileList {
            items,
            pagination: Pagination {
                total: page.total,
                page: params.page,
                limit: params.limit,
                total_pages,
                has_next_page: page.has_more,
                has_prev_page: params.page > 1 || params.cursor.is_some(),
                next_cursor,
            },
        })
    }

    /// `PATCH /v1/files/:id`.
    pub async fn patch(
        &self,
        principal: &Principal,
        id: FileId,
        patch: FilePatch,
    ) -> Result<FileView> {
        patch.check_fields()?;
        let shared_with = patch.shared_with.map(dedupe_ids);
        if let Some(meta) = &patch.metadata {
            crate::text::check_json(meta)?;
        }
        let mut file = self.load(principal, id).await?;
        for _ in 0..MAX_PATCH_ATTEMPTS {
            modify_access(principal, &file)?;
            let before = file.clone();
            let expected = file.updated_at;
            if let Some(meta) = &patch.metadata {
                file.metadata = file.metadata.merge_patch(meta)?;
            }
            if let Some(name) = &patch.original_name {
                file.original_name.clone_from(name);
            }
            if let Some(v) = patch.visibility {
                file.visibility = v;
            }
            if let Some(list) = &shared_with {
                file.shared_with.clone_from(list);
            }
            // Strictly later than before, even within one millisecond: the
            // version the next compare-and-set checks against.
            file.updated_at = self
                .clock
                .now()
                .max(Timestamp::from_millis(expected.millis() + 1));
            let changed = changed_fields(&before, &file);
            if changed.is_empty() {
                // Nothing to write, nothing to announce (docs/api.md §10).
                return Ok(self.view(before, crate::model::Projection::Full));
            }
            let event = Event::file_updated(
                self.ids.unique(),
                file.updated_at,
                &file,
                &changed,
                self.config.public_base_url.as_deref(),
            );
            if self.repo.update_file(&file, expected, &event).await? {
                self.events.add(EventType::FileUpdated);
                return Ok(self.view(file, crate::model::Projection::Full));
            }
            // Changed under us: apply the patch again to the latest state (or
            // answer 404 if it was deleted meanwhile).
            file = self.load(principal, id).await?;
        }
        Err(Error::unavailable(
            "The file is changing too fast to apply this patch; try again",
        ))
    }

    /// `DELETE /v1/files/:id`: the row goes and the object deletion is queued in
    /// one transaction; then the object is deleted now if the store allows.
    ///
    /// The deletion is a compare-and-set on the file as read (its event
    /// describes exactly what was deleted): a file changed meanwhile is read
    /// again, and access checked again; one deleted meanwhile answers as
    /// deleted.
    pub async fn delete(&self, principal: &Principal, id: FileId) -> Result<()> {
        let mut file = self.load(principal, id).await?;
        for _ in 0..MAX_PATCH_ATTEMPTS {
            modify_access(principal, &file)?;
            let now = self.clock.now();
            let event = Event::file_deleted(
                self.ids.unique(),
                now,
                &file,
                self.config.public_base_url.as_deref(),
            );
            if let Some(deleted) = self.repo.delete_file(&file, now, &event).await? {
                self.events.add(EventType::FileDeleted);
                if self.store.delete(&deleted.s3_key).await.is_ok() {
                    self.repo.finish_object_deletion(&deleted.s3_key).await?;
                }
                return Ok(());
            }
            match self.repo.get_file(&principal.tenant, id).await? {
                Some(now_stored) => file = now_stored,
                // Deleted by a racing request: the outcome asked for holds.
                None => return Ok(()),
            }
        }
        Err(Error::unavailable(
            "The file is changing too fast to delete it; try again",
        ))
    }

    /// `POST /v1/files/:id/download-url`.
    pub async fn download_url(&self, principal: &Principal, id: FileId) -> Result<DownloadTicket> {
        let file = self.load(principal, id).await?;
        read_access(principal, &file)?;
        let expires_at = self
            .clock
            .now()
            .plus_secs(self.config.download_url_ttl_secs);
        let presigned = self
            .store
            .presign_get(
                &file.s3_key,
                &file.mime_type,
                &content_disposition(&file.original_name),
                expires_at,
            )
            .await?;
        Ok(DownloadTicket {
            url: presigned.url,
            filename: file.original_name,
            content_type: file.mime_type,
            size: file.size,
            expires_at,
        })
    }
}

/// The fields a PATCH changed, as the API names them (the `changed` of a
/// `file.updated` event).
fn changed_fields(before: &File, after: &File) -> Vec<&'static str> {
    let mut out = Vec::new();
    if before.original_name != after.original_name {
        out.push("originalName");
    }
    if before.visibility != after.visibility {
        out.push("visibility");
    }
    if before.metadata != after.metadata {
        out.push("metadata");
    }
    if before.shared_with != after.shared_with {
        out.push("sharedWith");
    }
    out
}

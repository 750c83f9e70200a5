//! Reading, listing, changing and deleting files; download URLs.
use super::*;

impl FileService {
    /// `GET /v1/files/:id`.
    pub async fn get(&self, principal: &Principal, id: FileId) -> Result<FileView> {
        let file = self.load(principal, id).await?;
        let projection = read_access(principal, &file)?;
        Ok(self.view(&file, projection))
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
        let items = page
            .items
            .iter()
            .map(|f| read_access(principal, f).map(|p| self.view(f, p)))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| {
                Error::internal(format!(
                    "repository returned a row outside the caller's scope: {e}"
                ))
            })?;
        let total_pages = page.total.div_ceil(u64::from(params.limit));
        let next_cursor = match page.items.last() {
            Some(last) if page.has_more => Some(self.cursor_seal().await?.seal(
                &Cursor {
                    total: Some(page.total),
                    shared_empty: page.shared_empty,
                    ..Cursor::after(last, params.sort_by, params.direction)
                },
                principal,
                &params,
            )),
            _ => None,
        };
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
            if self.repo.update_file(&file, expected).await? {
                return Ok(self.view(&file, crate::model::Projection::Full));
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
    pub async fn delete(&self, principal: &Principal, id: FileId) -> Result<()> {
        let file = self.load(principal, id).await?;
        modify_access(principal, &file)?;
        let now = self.clock.now();
        if let Some(deleted) = self
            .repo
            .delete_file(&principal.tenant, file.id, now)
            .await?
        {
            if self.store.delete(&deleted.s3_key).await.is_ok() {
                self.repo.finish_object_deletion(&deleted.s3_key).await?;
            }
        }
        Ok(())
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

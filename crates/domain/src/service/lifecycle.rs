//! The background steps every replica runs, and readiness.
use super::*;

/// How long a failed object deletion waits before its next attempt, seconds.
pub const DELETION_RETRY_SECS: u64 = 60;

impl FileService {
    /// Retries queued object deletions that are due; returns how many objects went.
    pub async fn retry_object_deletions(&self, batch: u32) -> Result<usize> {
        let now = self.clock.now();
        let due = self.repo.due_object_deletions(now, batch).await?;
        let mut done = 0;
        for key in due {
            match self.store.delete(&key).await {
                Ok(()) => {
                    self.repo.finish_object_deletion(&key).await?;
                    done += 1;
                }
                Err(_) => {
                    self.repo
                        .defer_object_deletion(&key, now.plus_secs(DELETION_RETRY_SECS))
                        .await?
                }
            }
        }
        Ok(done)
    }

    /// Cleans up abandoned uploads (see [`FileRepository::abandoned_uploads`]):
    /// each is first moved to `aborted` (compare-and-set, so a registration
    /// racing with the sweep either wins or finds nothing), then its object is
    /// deleted or its multipart upload aborted; a failed deletion is queued.
    /// Returns how many uploads were cleaned.
    pub async fn sweep_abandoned_uploads(&self, batch: u32) -> Result<usize> {
        let now = self.clock.now();
        let cutoff = Timestamp::from_millis(
            now.millis() - (self.config.abandoned_upload_ttl_secs as i64).saturating_mul(1000),
        );
        let mut cleaned = 0;
        for upload in self.repo.abandoned_uploads(cutoff, now, batch).await? {
            let event = Event::upload_expired(
                self.ids.unique(),
                now,
                &upload.tenant,
                &upload.key,
                upload.multipart_id.as_deref(),
            );
            if !self
                .repo
                .transition_upload(
                    &upload.tenant,
                    &upload.key,
                    upload.state,
                    UploadState::Aborted,
                    Some(&event),
                )
                .await?
            {
                continue; // Registered or swept by another replica meanwhile.
            }
            self.events.add(EventType::UploadExpired);
            let staged = keys::staging_key(&upload.key);
            if let (Some(id), UploadState::Pending | UploadState::Completing) =
                (&upload.multipart_id, upload.state)
            {
                // If this fails the parts stay until the store's own lifecycle
                // removes them; they can no longer become an object through us.
                let _ = self.store.abort_multipart(&staged, id).await;
            }
            // Whatever the state, an object may be in staging (uploaded, or
            // assembled before a crash) or at the key (moved there by a
            // registration that crashed before recording the file); no file
            // row names either, since the upload was never registered.
            self.discard_object(&staged).await;
            self.discard_object(&upload.key).await;
            cleaned += 1;
        }
        Ok(cleaned)
    }

    /// Readiness: both backends answer.
    pub async fn health_check(&self) -> Result<()> {
        self.repo.health_check().await?;
        self.store.health_check().await
    }
}

//! Registration's move out of staging: one `CopyObject`, or a multipart copy
//! for objects over its limit.

use super::*;

/// How [`ObjectStore::promote`] copies: one `CopyObject` up to `single_max`
/// bytes (S3 allows 5 GiB), else a multipart copy in parts of `part_size`
/// (grown so that no object needs more than 10,000 parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyLimits {
    /// Largest object copied with one `CopyObject`.
    pub single_max: u64,
    /// Size of each `UploadPartCopy` range (at least 5 MiB, at most 5 GiB).
    pub part_size: u64,
    /// Part copies in flight at once.
    pub concurrency: usize,
}

impl Default for CopyLimits {
    fn default() -> Self {
        Self {
            single_max: 5 << 30,
            part_size: 1 << 30,
            concurrency: 8,
        }
    }
}

impl S3Store {
    /// `CopyObject` of `from` to `to`, metadata (the content type) included.
    pub(crate) async fn copy_whole(&self, from: &str, to: &str) -> Result<()> {
        let req = CopyObjectRequest {
            bucket: self.bucket.clone(),
            key: to.to_owned(),
            copy_source: format!("{}/{from}", self.bucket),
            metadata_directive: Some("COPY".to_owned()),
            ..Default::default()
        };
        let copy = tokio::time::timeout(
            COMPLETE_TIMEOUT.max(self.timeout),
            self.client.copy_object(req),
        );
        match copy
            .await
            .map_err(|_| Error::unavailable("s3 copy: timed out"))?
        {
            Ok(_) => Ok(()),
            Err(e) if body_has(&e, "NoSuchKey") || is_status(&e, 404) => {
                Err(Error::new(ErrorCode::UploadNotFound))
            }
            Err(e) => Err(store_error("copy", e)),
        }
    }

    /// A multipart copy of `from` (of `size` bytes) to `to`: one
    /// `UploadPartCopy` per range, a few at a time, then completion; any
    /// failure aborts the copy, leaving `to` as it was.
    pub(crate) async fn copy_in_parts(&self, from: &str, to: &str, size: u64) -> Result<()> {
        use futures_util::{StreamExt, TryStreamExt};
        let head = HeadObjectRequest {
            bucket: self.bucket.clone(),
            key: from.to_owned(),
            ..Default::default()
        };
        let content_type = match self.timed("head", self.client.head_object(head)).await? {
            Ok(out) => out.content_type,
            Err(RusotoError::Service(HeadObjectError::NoSuchKey(_))) => {
                return Err(Error::new(ErrorCode::UploadNotFound))
            }
            Err(e) if is_status(&e, 404) => return Err(Error::new(ErrorCode::UploadNotFound)),
            Err(e) => return Err(store_error("head", e)),
        };
        let upload_id = self
            .create_multipart(
                to,
                content_type
                    .as_deref()
                    .unwrap_or("application/octet-stream"),
            )
            .await?;
        let part_size = self
            .copy
            .part_size
            .max(size.div_ceil(u64::from(stowage_domain::limits::MAX_PART_NUMBER)));
        let ranges: Vec<(i64, u64, u64)> = (0..size.div_ceil(part_size))
            .map(|i| {
                let start = i * part_size;
                let end = (start + part_size).min(size) - 1;
                (i as i64 + 1, start, end)
            })
            .collect();
        let copied: Result<Vec<S3Part>> = futures_util::stream::iter(ranges)
            .map(|(n, start, end)| {
                let req = UploadPartCopyRequest {
                    bucket: self.bucket.clone(),
                    key: to.to_owned(),
                    upload_id: upload_id.clone(),
                    part_number: n,
                    copy_source: format!("{}/{from}", self.bucket),
                    copy_source_range: Some(format!("bytes={start}-{end}")),
                    ..Default::default()
                };
                async move {
                    let call = tokio::time::timeout(
                        COMPLETE_TIMEOUT.max(self.timeout),
                        self.client.upload_part_copy(req),
                    );
                    let out = call
                        .await
                        .map_err(|_| Error::unavailable("s3 copy part: timed out"))?
                        .map_err(|e| store_error("copy part", e))?;
                    let e_tag = out
                        .copy_part_result
                        .and_then(|r| r.e_tag)
                        .ok_or_else(|| Error::internal("s3 copy part: no ETag"))?;
                    Ok(S3Part {
                        e_tag: Some(e_tag),
                        part_number: Some(n),
                    })
                }
            })
            .buffered(self.copy.concurrency.max(1))
            .try_collect()
            .await;
        let finished = match copied {
            Ok(parts) => {
                let req = CompleteMultipartUploadRequest {
                    bucket: self.bucket.clone(),
                    key: to.to_owned(),
                    upload_id: upload_id.clone(),
                    multipart_upload: Some(CompletedMultipartUpload { parts: Some(parts) }),
                    ..Default::default()
                };
                let call = tokio::time::timeout(
                    COMPLETE_TIMEOUT.max(self.timeout),
                    self.client.complete_multipart_upload(req),
                );
                match call.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(store_error("complete copy", e)),
                    Err(_) => Err(Error::unavailable("s3 complete copy: timed out")),
                }
            }
            Err(e) => Err(e),
        };
        if finished.is_err() {
            let _ = self.abort_multipart(to, &upload_id).await;
        }
        finished
    }
}

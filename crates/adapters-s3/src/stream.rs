//! Whole objects in and out as byte streams, for moving a store's objects
//! to another store (`stowage transfer`): never buffered whole, each write
//! checked against the MD5 of its bytes by the store itself.

use std::pin::Pin;

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use rusoto_core::ByteStream;
use rusoto_s3::{GetObjectError, GetObjectRequest, PutObjectRequest, UploadPartRequest};

use super::*;

/// A stream of an object's bytes.
pub type ByteBody = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send + 'static>>;

/// A body as rusoto sends it (which asks for `Sync`; a stream is only ever
/// polled by one task, so a mutex it never contends for makes it so).
fn sendable(body: ByteBody, size: u64) -> ByteStream {
    struct Exclusive(std::sync::Mutex<ByteBody>);
    impl Stream for Exclusive {
        type Item = std::io::Result<Bytes>;
        fn poll_next(
            self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            match self.get_mut().0.get_mut() {
                Ok(body) => body.as_mut().poll_next(cx),
                Err(poisoned) => poisoned.into_inner().as_mut().poll_next(cx),
            }
        }
    }
    ByteStream::new_with_size(
        Exclusive(std::sync::Mutex::new(body)),
        usize::try_from(size).unwrap_or(usize::MAX),
    )
}

/// Largest object written with one `PutObject` (S3 allows 5 GiB).
pub const PUT_MAX: u64 = 5 << 30;

impl S3Store {
    /// How long moving `size` bytes may take: the call timeout plus a second
    /// per MiB (a link slower than 1 MiB/s is treated as down).
    fn transfer_deadline(&self, size: u64) -> Duration {
        self.timeout + Duration::from_secs(size >> 20)
    }

    /// `len` bytes of `key` from `offset` (`None`: the whole object; fewer
    /// when the object ends first, none for a range past its end), or `None`
    /// when there is no object.
    ///
    /// # Errors
    /// `common/service-unavailable` when the store cannot be reached.
    pub async fn read_object(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<ByteBody>> {
        let req = GetObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            range: range
                .map(|(offset, len)| format!("bytes={offset}-{}", offset + len.saturating_sub(1))),
            ..Default::default()
        };
        match self.timed("get", self.client.get_object(req)).await? {
            Ok(out) => Ok(Some(Box::pin(
                out.body.unwrap_or_else(|| ByteStream::from(Vec::new())),
            ))),
            Err(RusotoError::Service(GetObjectError::NoSuchKey(_))) => Ok(None),
            // 416: the range starts past the end (an empty object, say).
            Err(e) if range.is_some() && is_status(&e, 416) => {
                Ok(Some(Box::pin(futures_util::stream::empty())))
            }
            Err(e) if is_status(&e, 404) => Ok(None),
            Err(e) => Err(store_error("get", e)),
        }
    }

    /// Writes `body` (`size` bytes whose MD5 is `md5`) to `key` with one
    /// `PutObject`; the store refuses bytes that do not match the digest
    /// (`Content-MD5`). Returns the stored ETag.
    ///
    /// # Errors
    /// `common/internal` when the store refuses the bytes,
    /// `common/service-unavailable` when it cannot be reached.
    pub async fn write_object(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        md5: Option<[u8; 16]>,
        body: ByteBody,
    ) -> Result<String> {
        let req = PutObjectRequest {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            content_type: Some(content_type.to_owned()),
            content_length: i64::try_from(size).ok(),
            content_md5: md5.map(|d| base64::engine::general_purpose::STANDARD.encode(d)),
            body: Some(sendable(body, size)),
            ..Default::default()
        };
        let put = tokio::time::timeout(self.transfer_deadline(size), self.client.put_object(req));
        match put
            .await
            .map_err(|_| Error::unavailable("s3 put: timed out"))?
        {
            Ok(out) => out
                .e_tag
                .ok_or_else(|| Error::internal("s3 put: no ETag in the answer")),
            Err(e) => Err(store_error("put", e)),
        }
    }

    /// Writes an object of `size` bytes to `key` as a multipart upload in
    /// parts of `part_size` (at least 5 MiB), each read by `open(offset,
    /// len)`; the store checks each part's length. Any failure aborts the
    /// upload, leaving `key` as it was.
    ///
    /// # Errors
    /// As [`S3Store::write_object`].
    pub async fn write_object_in_parts<F, Fut>(
        &self,
        key: &str,
        content_type: &str,
        size: u64,
        part_size: u64,
        open: F,
    ) -> Result<()>
    where
        F: Fn(u64, u64) -> Fut,
        Fut: Future<Output = Result<ByteBody>>,
    {
        let part_size = part_size.max(5 << 20);
        let upload_id = self.create_multipart(key, content_type).await?;
        let written = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < size {
                let len = part_size.min(size - offset);
                let body = open(offset, len).await?;
                let req = UploadPartRequest {
                    bucket: self.bucket.clone(),
                    key: key.to_owned(),
                    upload_id: upload_id.clone(),
                    part_number: number,
                    content_length: i64::try_from(len).ok(),
                    body: Some(sendable(body, len)),
                    ..Default::default()
                };
                let put =
                    tokio::time::timeout(self.transfer_deadline(len), self.client.upload_part(req));
                let out = match put
                    .await
                    .map_err(|_| Error::unavailable("s3 part: timed out"))?
                {
                    Ok(out) => out,
                    Err(e) => return Err(store_error("part", e)),
                };
                let etag = out
                    .e_tag
                    .ok_or_else(|| Error::internal("s3 part: no ETag in the answer"))?;
                parts.push(CompletedPart {
                    part_number: u32::try_from(number).unwrap_or(u32::MAX),
                    etag: etag.trim_matches('"').to_owned(),
                });
                offset += len;
                number += 1;
            }
            self.complete_multipart(key, &upload_id, &parts, None)
                .await
                .map(|_| ())
        }
        .await;
        if written.is_err() {
            let _ = self.abort_multipart(key, &upload_id).await;
        }
        written
    }
}

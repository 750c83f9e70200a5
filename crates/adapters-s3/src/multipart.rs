//! Multipart completion's check of the parts against the store's own listing.

use super::*;

impl S3Store {
    /// Checks the parts against the store's own list before completing: some
    /// S3-compatible servers destroy the upload when completion fails, so a
    /// missing or undersized part must be caught first. ETags are compared when
    /// the store lists them.
    pub(crate) async fn check_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<()> {
        let mut stored: std::collections::HashMap<i64, (i64, Option<String>)> =
            std::collections::HashMap::new();
        let mut marker: Option<i64> = None;
        loop {
            let req = ListPartsRequest {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                upload_id: upload_id.to_owned(),
                part_number_marker: marker,
                ..Default::default()
            };
            let out = match self
                .timed("list parts", self.client.list_parts(req))
                .await?
            {
                Ok(out) => out,
                Err(e) if body_has(&e, "NoSuchUpload") || is_status(&e, 404) => {
                    return Err(Error::new(ErrorCode::UploadNotFound))
                }
                Err(e) => return Err(store_error("list parts", e)),
            };
            for p in out.parts.unwrap_or_default() {
                if let Some(n) = p.part_number {
                    stored.insert(
                        n,
                        (
                            p.size.unwrap_or(0),
                            p.e_tag.map(|e| e.trim_matches('"').to_ascii_lowercase()),
                        ),
                    );
                }
            }
            match (out.is_truncated, out.next_part_number_marker) {
                (Some(true), Some(next)) if Some(next) != marker => marker = Some(next),
                _ => break,
            }
        }
        let invalid = |m: String| Err(Error::with_message(ErrorCode::InvalidPartsArray, m));
        for (i, part) in parts.iter().enumerate() {
            let Some((size, etag)) = stored.get(&i64::from(part.part_number)) else {
                return invalid(format!("part {} was not uploaded", part.part_number));
            };
            // Compared here whatever the store checks at completion: a store
            // that lists no ETag cannot confirm the part, so it is refused.
            if etag.as_deref() != Some(part.etag.to_ascii_lowercase().as_str()) {
                return invalid(format!("part {} has another ETag", part.part_number));
            }
            if i + 1 < parts.len() && (*size as u64) < stowage_domain::limits::MIN_PART_SIZE {
                return invalid(format!(
                    "part {} is smaller than 5 MiB and is not the last part",
                    part.part_number
                ));
            }
        }
        Ok(())
    }
}

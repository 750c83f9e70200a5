//! Public delivery (docs/api.md §8): the bytes of `public` files without
//! credentials, at a permanent URL.

use super::*;

/// Types a browser would run if served inline: delivered as attachments under
/// `Content-Security-Policy: sandbox`.
const ACTIVE_TYPES: &[&str] = &[
    "text/html",
    "application/xhtml+xml",
    "image/svg+xml",
    "text/xml",
    "application/xml",
    "text/javascript",
    "application/javascript",
];

/// Lifetime of the signed URL a public request is redirected to, seconds.
pub const PUBLIC_REDIRECT_TTL_SECS: u64 = 60;

/// A public file as it is delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicFile {
    /// The registered file.
    pub file: File,
    /// Strong validator of the bytes (registered bytes never change).
    pub etag: String,
    /// `inline` with the name, or `attachment` for an active type.
    pub content_disposition: String,
    /// Whether the answer must carry `Content-Security-Policy: sandbox`.
    pub sandbox: bool,
}

impl FileService {
    /// The `public` file registered under `key`. Anything else — a malformed
    /// key, an unknown one, an unregistered upload, a deleted file, a file of
    /// any other visibility — is the same `file/not-found`, so nothing leaks.
    ///
    /// # Errors
    /// `file/not-found`; `common/service-unavailable` when the database is.
    pub async fn public_file(&self, key: &str) -> Result<PublicFile> {
        let not_found = || Error::new(ErrorCode::FileNotFound);
        let tenant = keys::tenant_of(key).ok_or_else(not_found)?;
        let file = self
            .repo
            .find_file_by_key(&tenant, key)
            .await?
            .filter(|f| f.visibility == Visibility::Public)
            .ok_or_else(not_found)?;
        let sandbox = ACTIVE_TYPES.contains(&file.mime_type.as_str());
        let kind = if sandbox { "attachment" } else { "inline" };
        Ok(PublicFile {
            etag: format!("\"{}\"", file.id),
            content_disposition: super::dto::disposition(kind, &file.original_name),
            sandbox,
            file,
        })
    }

    /// A short-lived signed URL to the bytes of a public file, for stores
    /// that deliver the bytes themselves (a `302` answers the request).
    ///
    /// # Errors
    /// What the store reports.
    pub async fn public_redirect(&self, public: &PublicFile) -> Result<PresignedRequest> {
        let expires_at = self.clock.now().plus_secs(PUBLIC_REDIRECT_TTL_SECS);
        self.store
            .presign_get(
                &public.file.s3_key,
                &public.file.mime_type,
                &public.content_disposition,
                expires_at,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_types_are_the_documented_ones() {
        assert_eq!(ACTIVE_TYPES.len(), 7);
        assert_eq!(
            super::super::dto::disposition("inline", "a b.png"),
            "inline; filename=\"a b.png\""
        );
    }
}

//! Image transformations (docs/api.md §9): which file an image URL names,
//! its stored derived images, and signed URLs to transformed private images.
//! The CPU work (the [`crate::ports::ImageCodec`]), its concurrency and the
//! per-client limits belong to the caller, which runs them where it can
//! afford to.

use hmac::{Hmac, Mac};

use super::*;
use crate::image::{parse_options, ImageBounds, ImageFormat, Transform, Variant};
use crate::ports::{Derivative, DerivativeAdded};

/// Name of the image-URL signing key in [`FileRepository::instance_secret`].
pub const IMAGE_URL_SECRET: &str = "image-url-hmac";

/// How long after it is queued the deletion that guards a derived image
/// being stored falls due, seconds: long past any write and recording, short
/// enough that a crashed attempt's object does not linger
/// ([`FileService::keep_derived_image`]).
pub const DERIVED_IMAGE_GRACE_SECS: u64 = 900;

/// Tunables of image transformations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Pixel and byte bounds.
    pub bounds: ImageBounds,
    /// Most derived images stored per file (`STOWAGE_IMAGE_MAX_DERIVATIVES`).
    pub max_derivatives: u32,
    /// Base of image URLs: `{STOWAGE_PUBLIC_URL}/v1/img`.
    pub base_url: Option<String>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            bounds: ImageBounds::default(),
            max_derivatives: 50,
            base_url: None,
        }
    }
}

/// A file an image URL may transform, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSource {
    /// The registered file.
    pub file: File,
    /// Its format, by its registered type.
    pub format: ImageFormat,
}

/// The signature of a private image URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSignature {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// Hex HMAC-SHA256 over options, key and expiry.
    pub signature: String,
}

impl FileService {
    /// The tunables of image transformations.
    pub fn image_config(&self) -> &ImageConfig {
        &self.images
    }

    /// The image a `/v1/img` URL names: a `public` file — or, with a valid
    /// `signature` for exactly these options and key, a file of any
    /// visibility — registered under `key`, of a readable image type.
    ///
    /// # Errors
    /// `file/not-found` for anything else that is not servable (the same
    /// answer whatever the reason); `image/unsupported-format` for a file
    /// that is not a JPEG, PNG, WebP or GIF (SVG included).
    pub async fn image_source(
        &self,
        key: &str,
        transform: &Transform,
        signature: Option<&ImageSignature>,
    ) -> Result<ImageSource> {
        let not_found = || Error::new(ErrorCode::FileNotFound);
        let signed = match signature {
            None => false,
            Some(sig) => {
                if sig.expires < self.clock.now().millis() / 1000 {
                    return Err(not_found());
                }
                let want = self.image_signature(transform, key, sig.expires).await?;
                if !constant_time_eq(want.as_bytes(), sig.signature.as_bytes()) {
                    return Err(not_found());
                }
                true
            }
        };
        let tenant = keys::tenant_of(key).ok_or_else(not_found)?;
        let file = self
            .repo
            .find_file_by_key(&tenant, key)
            .await?
            .filter(|f| signed || f.visibility == Visibility::Public)
            .ok_or_else(not_found)?;
        let format = ImageFormat::of_source_mime(&file.mime_type).ok_or_else(|| {
            Error::with_message(
                ErrorCode::ImageUnsupportedFormat,
                "Only JPEG, PNG, WebP and GIF images are transformed",
            )
        })?;
        Ok(ImageSource { file, format })
    }

    /// The stored derived image `variant` of `file`, if any.
    ///
    /// # Errors
    /// The repository's.
    pub async fn derived_image(
        &self,
        file: &File,
        variant: &Variant,
    ) -> Result<Option<Derivative>> {
        self.repo.find_derivative(file.id, &variant.name).await
    }

    /// The bytes of an image file, refused unread when larger than the bounds allow.
    ///
    /// # Errors
    /// `image/too-large` for a file over `max_source_bytes`; the store's.
    pub async fn image_bytes(&self, file: &File) -> Result<Vec<u8>> {
        let max = self.images.bounds.max_source_bytes;
        if file.size > max {
            return Err(Error::with_message(
                ErrorCode::ImageTooLarge,
                format!("Images over {max} bytes are not transformed"),
            ));
        }
        self.store.read_prefix(&file.s3_key, file.size).await
    }

    /// Stores a derived image and records it, unless the file has its
    /// maximum of derived images (then nothing is written: docs/api.md §9,
    /// "computed and served but not stored") or is gone meanwhile (then the
    /// object is removed again). Whether a copy is kept.
    ///
    /// Nothing is left behind whatever fails or crashes: the object's key is
    /// queued for deletion, due in [`DERIVED_IMAGE_GRACE_SECS`], before the
    /// object is written, and recording it takes the key off the queue in
    /// the same transaction ([`FileRepository::add_derivative`]). An object
    /// that is never recorded is removed by
    /// [`FileService::retry_object_deletions`] once the deletion is due.
    ///
    /// # Errors
    /// The store's or the repository's; nothing is recorded then.
    pub async fn keep_derived_image(
        &self,
        file: &File,
        variant: &Variant,
        bytes: Vec<u8>,
    ) -> Result<bool> {
        let max = self.images.max_derivatives;
        if self
            .repo
            .derivative_count(file.id)
            .await?
            .is_some_and(|n| n >= max)
        {
            return Ok(false);
        }
        let derivative = Derivative {
            variant: variant.name.clone(),
            key: variant.key(&file.s3_key, file.id, self.ids.unique()),
            size: bytes.len() as u64,
        };
        let due = self.clock.now().plus_secs(DERIVED_IMAGE_GRACE_SECS);
        self.repo
            .enqueue_object_deletion(&derivative.key, due)
            .await?;
        // From here on a failure leaves the queued deletion to remove
        // whatever was written, unless the recording committed.
        self.store
            .put_bytes(&derivative.key, variant.format.mime(), bytes)
            .await?;
        let added = self
            .repo
            .add_derivative(file.id, &derivative, max, self.clock.now())
            .await?;
        match added {
            DerivativeAdded::Added => Ok(true),
            DerivativeAdded::Exists => {
                self.drop_derived(&derivative.key).await;
                Ok(true)
            }
            DerivativeAdded::LimitReached
            | DerivativeAdded::FileGone
            | DerivativeAdded::Unclaimed => {
                self.drop_derived(&derivative.key).await;
                Ok(false)
            }
        }
    }

    /// Removes the object of an attempt that was not recorded, then its
    /// queued deletion; when the store fails, the queued deletion stays.
    async fn drop_derived(&self, key: &str) {
        if self.store.delete(key).await.is_ok() {
            // If this fails, the queue deletes an object that is already gone.
            let _ = self.repo.finish_object_deletion(key).await;
        }
    }

    /// A short-lived signed URL to a stored derived image, for stores that
    /// deliver bytes themselves.
    ///
    /// # Errors
    /// The store's.
    pub async fn derived_redirect(
        &self,
        derivative: &Derivative,
        format: ImageFormat,
    ) -> Result<PresignedRequest> {
        let expires_at = self.clock.now().plus_secs(super::PUBLIC_REDIRECT_TTL_SECS);
        self.store
            .presign_get(&derivative.key, format.mime(), "inline", expires_at)
            .await
    }

    /// A signed URL to file `id` transformed by `options`, under the read
    /// rules of docs/api.md §5 (the `transform` of a download-URL request).
    ///
    /// # Errors
    /// As [`FileService::download_url`]; `image/invalid-options` and
    /// `image/too-large` for the options (checked first);
    /// `image/unsupported-format` for a file that is not a readable image.
    pub async fn transform_url(
        &self,
        principal: &Principal,
        id: FileId,
        options: &str,
    ) -> Result<DownloadTicket> {
        let transform = parse_options(options, &self.images.bounds)?;
        let file = self.load(principal, id).await?;
        read_access(principal, &file)?;
        let source = ImageFormat::of_source_mime(&file.mime_type).ok_or_else(|| {
            Error::with_message(
                ErrorCode::ImageUnsupportedFormat,
                "Only JPEG, PNG, WebP and GIF images are transformed",
            )
        })?;
        let base = self
            .images
            .base_url
            .as_deref()
            .ok_or_else(|| Error::internal("no image base URL configured"))?;
        let expires_at = self
            .clock
            .now()
            .plus_secs(self.config.download_url_ttl_secs);
        let expires = expires_at.millis() / 1000;
        let signature = self
            .image_signature(&transform, &file.s3_key, expires)
            .await?;
        let (format, _) = crate::image::output_format(&transform, source, false);
        Ok(DownloadTicket {
            url: format!(
                "{base}/{transform}/{}?expires={expires}&signature={signature}",
                file.s3_key
            ),
            filename: file.original_name,
            content_type: format.mime().to_owned(),
            size: file.size,
            expires_at,
        })
    }

    async fn image_signature(&self, t: &Transform, key: &str, expires: i64) -> Result<String> {
        let secret = match self.image_key.get() {
            Some(key) => key,
            None => {
                let stored = self
                    .repo
                    .instance_secret(IMAGE_URL_SECRET, &self.ids.secret())
                    .await?;
                self.image_key.get_or_init(|| stored)
            }
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret)
            .map_err(|_| Error::internal("image URL key"))?;
        mac.update(format!("img\n{t}\n{key}\n{expires}").as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

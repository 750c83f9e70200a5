//! The error codes of the contract (docs/api.md §2), defined once. Every failure the
//! domain reports is an [`Error`]: a stable [`ErrorCode`] plus a human message.
//! The HTTP status is derived from the code's [`ErrorKind`] by the API layer.

use std::fmt;

/// What sort of failure a code is; the API maps each kind to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the request is wrong and must not be retried unchanged.
    Invalid,
    /// 401: credentials are missing or not acceptable.
    Unauthenticated,
    /// 403: the caller is known but may not do this.
    Forbidden,
    /// 404: no such thing (in the caller's project/environment).
    NotFound,
    /// 409: the request conflicts with existing state.
    Conflict,
    /// 413: the request body is too large.
    PayloadTooLarge,
    /// 429: too many requests.
    RateLimited,
    /// 415: the content is not of a type this operation handles.
    UnsupportedMediaType,
    /// 422: the content has the right type but cannot be processed.
    Unprocessable,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 503: a backend is unreachable or too slow; retrying later may work.
    Unavailable,
    /// 500: a server-side fault the caller cannot fix.
    Internal,
}

impl ErrorKind {
    /// The HTTP status the contract gives this kind (docs/api.md §2), for any
    /// HTTP layer that embeds the domain.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Invalid => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unprocessable => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

/// The wire string (`"file/not-found"`).
impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("unknown error code `{s}`")))
    }
}

/// The codes as a string enum in the OpenAPI document, so generated clients
/// type `error.code`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
            .description(Some("Stable error code (docs/api.md §2)"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

/// A string that is not one of the contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownErrorCode;

impl fmt::Display for UnknownErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an error code of the contract")
    }
}

impl std::error::Error for UnknownErrorCode {}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $kind:ident, $default:literal; )*) => {
        /// Every error code of docs/api.md §2 (more come with new features).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in the order of docs/api.md §2.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The stable wire string, e.g. `file/not-found`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The kind, from which the HTTP status follows.
            pub const fn kind(self) -> ErrorKind {
                match self { $(ErrorCode::$variant => ErrorKind::$kind,)* }
            }

            /// The message used when no more specific one is given.
            pub const fn default_message(self) -> &'static str {
                match self { $(ErrorCode::$variant => $default,)* }
            }
        }

        impl std::str::FromStr for ErrorCode {
            type Err = UnknownErrorCode;

            /// Parses a wire string (`file/not-found`).
            fn from_str(s: &str) -> Result<Self, UnknownErrorCode> {
                match s {
                    $($code => Ok(ErrorCode::$variant),)*
                    _ => Err(UnknownErrorCode),
                }
            }
        }
    };
}

error_codes! {
    /// Missing or unusable bearer token.
    AuthenticationRequired => "common/authentication-required", Unauthenticated, "Authentication required";
    /// Missing or unusable API key.
    InvalidApiKey => "common/invalid-api-key", Unauthenticated, "Invalid API key";
    /// Malformed body, wrong type, missing field, bad query parameter, immutable field.
    InvalidRequest => "common/invalid-request", Invalid, "Invalid request";
    /// JSON body over the limit.
    PayloadTooLarge => "common/payload-too-large", PayloadTooLarge, "Request body too large";
    /// Rate limit exceeded.
    RateLimited => "common/rate-limited", RateLimited, "Too many requests";
    /// Database or object store unreachable or timing out.
    ServiceUnavailable => "common/service-unavailable", Unavailable, "Service temporarily unavailable";
    /// Anything unexpected.
    Internal => "common/internal", Internal, "Internal server error";
    /// No such route (docs/api.md §12).
    NotFound => "common/not-found", NotFound, "No such route";
    /// The route exists, the method does not (docs/api.md §12).
    MethodNotAllowed => "common/method-not-allowed", MethodNotAllowed, "Method not allowed";
    /// No such file here, or an id that is not a UUID.
    FileNotFound => "file/not-found", NotFound, "File not found";
    /// Bad file name.
    InvalidName => "file/invalid-name", Invalid, "Invalid file name";
    /// Declared or actual size over the limit.
    FileTooLarge => "file/file-too-large", Invalid, "File too large";
    /// Size under the minimum.
    FileTooSmall => "file/file-too-small", Invalid, "File too small";
    /// MIME type malformed or not allowed for the category.
    InvalidFormat => "file/invalid-format", Invalid, "Invalid file format";
    /// Key not issued by this server here.
    InvalidPath => "file/invalid-path", Invalid, "Invalid storage key";
    /// Object store bucket missing.
    BucketNotConfigured => "file/bucket-not-configured", Internal, "Storage bucket is not configured";
    /// Part number outside 1..=10000.
    InvalidPartNumberRange => "file/invalid-part-number-range", Invalid, "Part number must be an integer from 1 to 10000";
    /// The store refused to start a multipart upload.
    UploadInitFailed => "file/upload-init-failed", Internal, "Could not start the multipart upload";
    /// Bad `parts` array.
    InvalidPartsArray => "file/invalid-parts-array", Invalid, "Invalid parts array";
    /// The caller may not do this to this file or upload.
    AccessDenied => "file/access-denied", Forbidden, "Access denied";
    /// A byte or file-count quota would be exceeded (docs/api.md §11).
    QuotaExceeded => "file/quota-exceeded", Forbidden, "Quota exceeded";
    /// A file is already registered with this key.
    S3KeyAlreadyExists => "file/s3-key-already-exists", Conflict, "A file is already registered with this key";
    /// Key over 1024 bytes.
    S3KeyTooLong => "file/s3-key-too-long", Invalid, "Storage key too long";
    /// Name over 255 characters.
    OriginalNameTooLong => "file/original-name-too-long", Invalid, "File name too long";
    /// MIME type over 255 characters.
    MimeTypeTooLong => "file/mime-type-too-long", Invalid, "MIME type too long";
    /// Negative size.
    SizeNegative => "file/size-negative", Invalid, "Size must not be negative";
    /// Object not in the store yet, or unknown/expired/aborted upload.
    UploadNotFound => "file/upload-not-found", NotFound, "Upload not found";
    /// Stored size differs from the registered or declared size.
    SizeMismatch => "file/size-mismatch", Invalid, "Size does not match the uploaded object";
    /// Image transformation options malformed or out of range (docs/api.md §9).
    ImageInvalidOptions => "image/invalid-options", Invalid, "Invalid image transformation options";
    /// Not a JPEG, PNG, WebP or GIF image (docs/api.md §9).
    ImageUnsupportedFormat => "image/unsupported-format", UnsupportedMediaType, "Unsupported image format";
    /// Source or target over the pixel bounds (docs/api.md §9).
    ImageTooLarge => "image/too-large", Invalid, "Image too large";
    /// Corrupt or truncated image (docs/api.md §9).
    ImageDecodeFailed => "image/decode-failed", Unprocessable, "The image could not be decoded";
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain failure: a code, a message safe to show the caller, and, for
/// internal and unavailable errors, a private detail that is logged but never
/// sent, and optionally the error that caused it ([`std::error::Error::source`]).
///
/// `Display` shows what the caller may see (`code: message`); the alternate
/// form (`{:#}`) adds the private detail, for logs and operators.
#[derive(Debug, Clone)]
pub struct Error {
    code: ErrorCode,
    message: String,
    detail: Option<String>,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

/// Errors are equal when code, message and detail are (the source is not compared).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code && self.message == other.message && self.detail == other.detail
    }
}

impl Eq for Error {}

impl Error {
    /// An error with the code's default message.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            message: code.default_message().to_owned(),
            detail: None,
            source: None,
        }
    }

    /// An error with a specific, caller-safe message.
    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
            source: None,
        }
    }

    /// `common/invalid-request` with a message naming what was wrong.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::with_message(ErrorCode::InvalidRequest, message)
    }

    /// `common/internal`; `detail` is for the log only.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(ErrorCode::Internal)
        }
    }

    /// `common/service-unavailable`; `detail` is for the log only.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
            ..Self::new(ErrorCode::ServiceUnavailable)
        }
    }

    /// Attaches a private detail (logged, never sent).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Attaches the error that caused this one (for `source()` and logs).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The kind of the code.
    pub fn kind(&self) -> ErrorKind {
        self.code.kind()
    }

    /// The caller-safe message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The private detail, if any.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if f.alternate() {
            if let Some(detail) = &self.detail {
                write!(f, " ({detail})")?;
            }
            if let Some(source) = &self.source {
                write!(f, ": {source}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Result with the domain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_namespaced() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert!(["file/", "common/", "image/"]
                .iter()
                .any(|ns| code.as_str().starts_with(ns)));
        }
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        assert_eq!("file/nope".parse::<ErrorCode>(), Err(UnknownErrorCode));
        // Every code of docs/api.md §2.
        assert_eq!(ErrorCode::ALL.len(), 32);
    }

    #[test]
    fn internal_detail_is_not_the_message() {
        let e = Error::internal("disk /secret/path exploded");
        assert_eq!(e.message(), "Internal server error");
        assert_eq!(e.detail(), Some("disk /secret/path exploded"));
        assert_eq!(e.to_string(), "common/internal: Internal server error");
        assert_eq!(
            format!("{e:#}"),
            "common/internal: Internal server error (disk /secret/path exploded)"
        );
    }

    #[test]
    fn sources_are_kept_and_codes_serialize_as_their_wire_strings() {
        use std::error::Error as _;
        let io = std::io::Error::other("connection reset");
        let e = Error::unavailable("store").with_source(io);
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("connection reset")
        );
        assert!(format!("{e:#}").ends_with("(store): connection reset"));
        assert_eq!(
            serde_json::to_string(&ErrorCode::FileNotFound)
                .ok()
                .as_deref(),
            Some("\"file/not-found\"")
        );
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"file/not-found\"").ok(),
            Some(ErrorCode::FileNotFound)
        );
        assert!(serde_json::from_str::<ErrorCode>("\"file/nope\"").is_err());
    }
}

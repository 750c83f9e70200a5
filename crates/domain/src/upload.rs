//! Issued uploads: the server's record of every key it handed out (single PUT or
//! multipart), so that registration can be checked and abandoned uploads cleaned.

use serde::Deserialize;
use validator::Validate;

use crate::limits::{MAX_MIME_CHARS, MAX_NAME_CHARS};
use crate::validation::FieldRules;

use crate::model::{Category, Owner, Tenant, Timestamp, Visibility};

/// Life cycle of an issued upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadState {
    /// Issued; bytes may be (or have been) uploaded.
    Pending,
    /// A multipart upload being assembled: claimed by one completion, so a
    /// racing abort (or a second completion) finds it no longer pending.
    Completing,
    /// A multipart upload whose object was assembled.
    Completed,
    /// A multipart upload that was aborted.
    Aborted,
    /// Claimed by one registration, which is checking and moving the object;
    /// a racing registration is told the key is taken.
    Registering,
    /// A file was registered with this key.
    Registered,
}

impl UploadState {
    /// Storage string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completing => "completing",
            Self::Completed => "completed",
            Self::Registering => "registering",
            Self::Aborted => "aborted",
            Self::Registered => "registered",
        }
    }

    /// Parses a storage string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "completing" => Self::Completing,
            "completed" => Self::Completed,
            "registering" => Self::Registering,
            "aborted" => Self::Aborted,
            "registered" => Self::Registered,
            _ => return None,
        })
    }
}

/// A key issued to a caller.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuedUpload {
    /// The object key.
    pub key: String,
    /// Project/environment.
    pub tenant: Tenant,
    /// The caller it was issued to; the future file's owner.
    pub owner: Owner,
    /// The client's file name.
    pub filename: String,
    /// The content type the upload is bound to (lower case).
    pub content_type: String,
    /// Size declared at issue, if any.
    pub declared_size: Option<u64>,
    /// Visibility asked for at issue.
    pub visibility: Option<Visibility>,
    /// Category asked for at issue.
    pub category: Option<Category>,
    /// Size limit that applied at issue.
    pub max_size: u64,
    /// The store's upload id, for multipart uploads.
    pub multipart_id: Option<String>,
    /// SHA-256 of the whole object (base64) declared at issue, if any.
    pub checksum_sha256: Option<String>,
    /// State.
    pub state: UploadState,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When the upload URL (single PUT) or the multipart upload expires.
    pub expires_at: Timestamp,
}

/// Body of `POST /v1/files/presigned-url` and `POST /v1/files/multipart/init`.
/// The size limit of its category and the type's fit with it are checked by
/// the use case (they depend on configuration).
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct IssueUpload {
    /// Client file name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub filename: String,
    /// MIME type the client will upload.
    #[validate(
        length(max = "MAX_MIME_CHARS", code = "file/mime-type-too-long"),
        custom(
            function = "crate::limits::check_mime_syntax",
            code = "file/invalid-format"
        )
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 3,
            max_length = 255,
            pattern = "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"
        )
    )]
    pub content_type: String,
    /// Declared size (required for multipart).
    #[serde(default)]
    #[validate(range(min = 0, code = "file/size-negative"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub file_size: Option<i64>,
    /// Visibility of the future file.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Category (limits of docs/api.md §6).
    #[serde(default)]
    pub category: Option<Category>,
    /// SHA-256 of the whole object, base64 of its 32 bytes (docs/api.md §11):
    /// a single PUT's URL then binds `x-amz-checksum-sha256`.
    #[serde(default)]
    #[validate(custom(
        function = "crate::limits::check_sha256_base64",
        code = "common/invalid-request"
    ))]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 44, max_length = 44, pattern = "^[A-Za-z0-9+/]{43}=$")
    )]
    pub checksum_sha256: Option<String>,
}

impl FieldRules for IssueUpload {
    const FIELDS: &'static [&'static str] =
        &["filename", "content_type", "file_size", "checksum_sha256"];
}

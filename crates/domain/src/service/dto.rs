//! The inputs of the use cases (typed, built with constructors; the HTTP layer
//! parses JSON into them) and the answers they render.
use super::*;

/// Answer of `POST /v1/files/presigned-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UploadTicket {
    /// Where to PUT.
    pub url: String,
    /// The issued key.
    pub key: String,
    /// The client's name.
    pub filename: String,
    /// Bound content type.
    pub content_type: String,
    /// Always `PUT`.
    pub method: &'static str,
    /// Headers to send.
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::HashMap<String, String>))]
    pub headers: serde_json::Map<String, Value>,
    /// URL expiry.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// Answer of `POST /v1/files/multipart/init`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MultipartTicket {
    /// Store upload id.
    pub upload_id: String,
    /// The issued key.
    pub key: String,
    /// The client's name.
    pub filename: String,
}

/// Answer of `POST /v1/files/multipart/presigned-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartTicket {
    /// Where to PUT the part.
    pub url: String,
    /// The part number.
    pub part_number: u32,
    /// Headers the PUT must carry (extension): `x-amz-checksum-sha256` when
    /// the part's digest was given; absent otherwise.
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, String>>))]
    pub headers: serde_json::Map<String, Value>,
}

/// Answer of `POST /v1/files/multipart/complete`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompletedUpload {
    /// The key.
    pub key: String,
    /// Opaque location.
    pub location: String,
}

/// Answer of `POST /v1/files/:id/download-url`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DownloadTicket {
    /// Where to GET.
    pub url: String,
    /// Original name.
    pub filename: String,
    /// Registered MIME type.
    pub content_type: String,
    /// Size.
    pub size: u64,
    /// URL expiry.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// What `POST /v1/files` registers. Built with [`RegisterFile::new`] and the
/// `with_*` methods. Its field rules come first of the seven checks of
/// docs/api.md; the minimum size (configuration) and the metadata limits (a
/// structure) are checked by the use case too.
///
/// ```
/// use stowage_domain::model::Visibility;
/// use stowage_domain::service::RegisterFile;
///
/// let req = RegisterFile::new("p/e/h/u/a.txt", "a.txt", "text/plain", 5)
///     .with_visibility(Visibility::Public)
///     .share_with(["bob"]);
/// assert_eq!(req.size, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Validate)]
#[non_exhaustive]
pub struct RegisterFile {
    /// Issued key.
    #[validate(custom(
        function = "crate::limits::check_key_bytes",
        code = "file/s3-key-too-long"
    ))]
    pub s3_key: String,
    /// Name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    pub original_name: String,
    /// MIME type.
    #[validate(
        length(max = "MAX_MIME_CHARS", code = "file/mime-type-too-long"),
        custom(
            function = "crate::limits::check_mime_syntax",
            code = "file/invalid-format"
        )
    )]
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Visibility (default: the one asked for at issue, else private).
    pub visibility: Option<Visibility>,
    /// Bucket.
    pub bucket: Option<Bucket>,
    /// Metadata, a JSON object of docs/api.md §3's keys (others are dropped).
    pub metadata: Option<Value>,
    /// Share list.
    #[validate(
        length(
            max = "MAX_SHARED_WITH",
            code = "common/invalid-request",
            message = "at most 100 ids"
        ),
        custom(
            function = "crate::limits::check_user_ids",
            code = "common/invalid-request"
        )
    )]
    pub shared_with: Option<Vec<String>>,
}

impl RegisterFile {
    /// A registration of the object at `s3_key` (as issued) of `size` bytes.
    pub fn new(
        s3_key: impl Into<String>,
        original_name: impl Into<String>,
        mime_type: impl Into<String>,
        size: u64,
    ) -> Self {
        Self {
            s3_key: s3_key.into(),
            original_name: original_name.into(),
            mime_type: mime_type.into(),
            size,
            width: None,
            height: None,
            visibility: None,
            bucket: None,
            metadata: None,
            shared_with: None,
        }
    }

    /// An image's dimensions.
    #[must_use]
    pub fn with_dimensions(mut self, width: u32, height: u32) -> Self {
        self.width = Some(width);
        self.height = Some(height);
        self
    }

    /// The file's visibility.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }

    /// The bucket.
    #[must_use]
    pub fn in_bucket(mut self, bucket: Bucket) -> Self {
        self.bucket = Some(bucket);
        self
    }

    /// Metadata: a JSON object of docs/api.md §3's keys.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The users the file is shared with.
    #[must_use]
    pub fn share_with<I, S>(mut self, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared_with = Some(user_ids(users));
        self
    }
}

/// A share list from any strings.
fn user_ids<I, S>(users: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    users.into_iter().map(Into::into).collect()
}

impl FieldRules for RegisterFile {
    const FIELDS: &'static [&'static str] =
        &["s3_key", "original_name", "mime_type", "shared_with"];
}

/// A change to a file (`PATCH /v1/files/:id`): each field set is changed,
/// the rest kept. Built from [`FilePatch::default`] with the `set_*` methods.
///
/// ```
/// use serde_json::json;
/// use stowage_domain::service::FilePatch;
///
/// let patch = FilePatch::default()
///     .rename("b.txt")
///     .merge_metadata(json!({"alt": null, "custom": {"reviewed": true}}));
/// assert_eq!(patch.original_name.as_deref(), Some("b.txt"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Validate)]
#[non_exhaustive]
pub struct FilePatch {
    /// New name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    pub original_name: Option<String>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// RFC 7396 merge patch of the metadata.
    pub metadata: Option<Value>,
    /// New share list (replaces the old one).
    #[validate(
        length(
            max = "MAX_SHARED_WITH",
            code = "common/invalid-request",
            message = "at most 100 ids"
        ),
        custom(
            function = "crate::limits::check_user_ids",
            code = "common/invalid-request"
        )
    )]
    pub shared_with: Option<Vec<String>>,
}

impl FilePatch {
    /// Renames the file.
    #[must_use]
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.original_name = Some(name.into());
        self
    }

    /// Changes the visibility.
    #[must_use]
    pub fn set_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }

    /// Merges an RFC 7396 patch into the metadata (`null` removes a key).
    #[must_use]
    pub fn merge_metadata(mut self, patch: Value) -> Self {
        self.metadata = Some(patch);
        self
    }

    /// Replaces the share list.
    #[must_use]
    pub fn share_with<I, S>(mut self, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.shared_with = Some(user_ids(users));
        self
    }
}

impl FieldRules for FilePatch {
    const FIELDS: &'static [&'static str] = &["original_name", "shared_with"];
}

/// Pagination block of a list answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Visible matching rows.
    pub total: u64,
    /// Page number.
    pub page: u32,
    /// Page size.
    pub limit: u32,
    /// Pages in all.
    pub total_pages: u64,
    /// Whether a next page exists.
    pub has_next_page: bool,
    /// Whether a previous page exists.
    pub has_prev_page: bool,
    /// Cursor of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Answer of `GET /v1/files`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileList {
    /// Rows, each in the caller's projection.
    pub items: Vec<FileView>,
    /// Pagination.
    pub pagination: Pagination,
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266 with RFC 5987 encoding).
pub fn content_disposition(name: &str) -> String {
    disposition("attachment", name)
}

/// `{kind}; filename="…"; filename*=UTF-8''…` for `inline` or `attachment`.
pub(crate) fn disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == name {
        return format!("{kind}; filename=\"{name}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_USER_ID_CHARS;

    #[test]
    fn disposition() {
        assert_eq!(
            content_disposition("a b.txt"),
            "attachment; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("résumé \"1\".pdf"),
            "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
        );
    }

    fn register_body(f: impl FnOnce(&mut RegisterFile)) -> RegisterFile {
        let mut r = RegisterFile::new("p/e/h/u/a.txt", "a.txt", "text/plain", 1);
        f(&mut r);
        r
    }

    fn rule(r: &impl FieldRules) -> Option<ErrorCode> {
        r.check_fields().err().map(|e| e.code())
    }

    /// Every bound of the field rules at limit - 1, limit and limit + 1.
    #[test]
    fn field_rule_boundaries() {
        use ErrorCode as C;
        // s3Key: bytes, not characters ("é" is two bytes).
        for (key, want) in [
            ("k".repeat(MAX_KEY_BYTES - 1), None),
            ("k".repeat(MAX_KEY_BYTES), None),
            ("k".repeat(MAX_KEY_BYTES + 1), Some(C::S3KeyTooLong)),
            ("\u{e9}".repeat(MAX_KEY_BYTES / 2), None),
            (
                format!("{}k", "\u{e9}".repeat(MAX_KEY_BYTES / 2)),
                Some(C::S3KeyTooLong),
            ),
        ] {
            assert_eq!(
                rule(&register_body(|r| r.s3_key = key.clone())),
                want,
                "{}",
                key.len()
            );
        }
        // Names: characters, on every input that carries one.
        for (n, want) in [
            (MAX_NAME_CHARS - 1, None),
            (MAX_NAME_CHARS, None),
            (MAX_NAME_CHARS + 1, Some(C::OriginalNameTooLong)),
        ] {
            let name = "\u{1F600}".repeat(n as usize);
            assert_eq!(
                rule(&register_body(|r| r.original_name = name.clone())),
                want
            );
            let patch = FilePatch {
                original_name: Some(name.clone()),
                ..FilePatch::default()
            };
            assert_eq!(rule(&patch), want);
            let issue = IssueUpload::new(name.clone(), "text/plain");
            assert_eq!(rule(&issue), want);
        }
        // A name breaking both rules: the bound is checked first.
        assert_eq!(
            rule(&register_body(
                |r| r.original_name = format!("/{}", "a".repeat(300))
            )),
            Some(C::OriginalNameTooLong)
        );
        assert_eq!(
            rule(&register_body(|r| r.original_name = "/a".into())),
            Some(C::InvalidName)
        );
        // MIME types: characters, then syntax.
        for (n, want) in [
            (MAX_MIME_CHARS - 1, None),
            (MAX_MIME_CHARS, None),
            (MAX_MIME_CHARS + 1, Some(C::MimeTypeTooLong)),
        ] {
            let mime = format!("{}/{}", "a".repeat(n as usize - 128), "b".repeat(127));
            assert_eq!(mime.chars().count() as u64, n);
            assert_eq!(
                rule(&register_body(|r| r.mime_type = mime.clone())),
                want,
                "{n}"
            );
        }
        assert_eq!(
            rule(&register_body(|r| r.mime_type = "text".into())),
            Some(C::InvalidFormat)
        );
        // Share lists: count, then each id.
        for (n, want) in [
            (MAX_SHARED_WITH - 1, None),
            (MAX_SHARED_WITH, None),
            (MAX_SHARED_WITH + 1, Some(C::InvalidRequest)),
        ] {
            let ids: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
            assert_eq!(
                rule(&register_body(|r| r.shared_with = Some(ids.clone()))),
                want
            );
            let patch = FilePatch {
                shared_with: Some(ids),
                ..FilePatch::default()
            };
            assert_eq!(rule(&patch), want);
        }
        for (id, want) in [
            ("u".repeat(MAX_USER_ID_CHARS - 1), None),
            ("u".repeat(MAX_USER_ID_CHARS), None),
            ("u".repeat(MAX_USER_ID_CHARS + 1), Some(C::InvalidRequest)),
            (String::new(), Some(C::InvalidRequest)),
            ("a\u{7}b".into(), Some(C::InvalidRequest)),
        ] {
            assert_eq!(
                rule(&register_body(|r| r.shared_with = Some(vec![id.clone()]))),
                want
            );
        }
        let e = register_body(|r| r.shared_with = Some(vec![String::new(); 101]))
            .check_fields()
            .err();
        assert_eq!(
            e.map(|e| e.message().to_owned()).as_deref(),
            Some("sharedWith: at most 100 ids")
        );
        assert_eq!(
            dedupe_ids(vec!["a".into(), "a".into(), "b".into()]),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}

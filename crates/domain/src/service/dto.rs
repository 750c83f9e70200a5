//! The wire types of the use cases: what handlers deserialize and what they render.
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

/// Body of `POST /v1/files`. Its field rules come first of the seven checks
/// of docs/api.md; the minimum size (configuration) and the metadata limits
/// (a structure) are checked by the use case.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RegisterFile {
    /// Issued key.
    #[validate(custom(
        function = "crate::limits::check_key_bytes",
        code = "file/s3-key-too-long"
    ))]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub s3_key: String,
    /// Name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub original_name: String,
    /// MIME type.
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
    pub mime_type: String,
    /// Size in bytes.
    #[validate(range(min = 0, code = "file/size-negative"))]
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub size: i64,
    /// Width.
    #[serde(default)]
    pub width: Option<u32>,
    /// Height.
    #[serde(default)]
    pub height: Option<u32>,
    /// Visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// Bucket.
    #[serde(default)]
    pub bucket: Option<Bucket>,
    /// Metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>))]
    pub metadata: Option<Value>,
    /// Share list.
    #[serde(default)]
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
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub shared_with: Option<Vec<String>>,
}

impl FieldRules for RegisterFile {
    const FIELDS: &'static [&'static str] = &[
        "s3_key",
        "original_name",
        "mime_type",
        "size",
        "shared_with",
    ];
}

/// Body of `PATCH /v1/files/:id`.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FilePatch {
    /// New name.
    #[serde(default)]
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 255))]
    pub original_name: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// RFC 7396 merge patch of metadata.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>))]
    pub metadata: Option<Value>,
    /// New share list.
    #[serde(default)]
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
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub shared_with: Option<Vec<String>>,
}

impl FieldRules for FilePatch {
    const FIELDS: &'static [&'static str] = &["original_name", "shared_with"];
}

/// File-object fields that PATCH may not change.
const IMMUTABLE_FIELDS: &[&str] = &[
    "id",
    "s3Key",
    "size",
    "mimeType",
    "bucket",
    "width",
    "height",
    "ownerId",
    "ownerType",
    "createdAt",
    "updatedAt",
];

impl FilePatch {
    /// Parses a PATCH body, rejecting immutable fields.
    ///
    /// # Errors
    /// `common/invalid-request` naming the field.
    pub fn from_json(body: Value) -> Result<Self> {
        let Value::Object(map) = &body else {
            return Err(Error::invalid_request("request body must be a JSON object"));
        };
        if let Some(field) = IMMUTABLE_FIELDS.iter().find(|f| map.contains_key(**f)) {
            return Err(Error::invalid_request(format!(
                "field `{field}` cannot be changed"
            )));
        }
        serde_json::from_value(body).map_err(|e| Error::invalid_request(e.to_string()))
    }
}

/// One entry of `parts` as sent by the client.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartInput {
    /// Part number.
    pub part_number: Value,
    /// ETag, quoted or not.
    #[serde(default)]
    pub etag: Option<String>,
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
    use serde_json::json;

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

    #[test]
    fn patch_rejects_immutable_fields() {
        for f in IMMUTABLE_FIELDS {
            let body = json!({ *f: 1 });
            assert_eq!(
                FilePatch::from_json(body).err().map(|e| e.code()),
                Some(ErrorCode::InvalidRequest),
                "{f}"
            );
        }
        assert!(FilePatch::from_json(json!({"originalName":"x","other":1})).is_ok());
        assert!(FilePatch::from_json(json!({"visibility":"nope"})).is_err());
        assert!(FilePatch::from_json(json!([1])).is_err());
    }

    fn register_body(f: impl FnOnce(&mut RegisterFile)) -> RegisterFile {
        let mut r = RegisterFile {
            s3_key: "p/e/h/u/a.txt".into(),
            original_name: "a.txt".into(),
            mime_type: "text/plain".into(),
            size: 1,
            width: None,
            height: None,
            visibility: None,
            bucket: None,
            metadata: None,
            shared_with: None,
        };
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
            let issue = IssueUpload {
                filename: name.clone(),
                content_type: "text/plain".into(),
                file_size: None,
                visibility: None,
                category: None,
                checksum_sha256: None,
            };
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
        // Sizes: -1, 0 (the minimum is configuration, checked by the use case), 1.
        for (size, want) in [
            (-1, Some(C::SizeNegative)),
            (0, None),
            (1, None),
            (i64::MIN, Some(C::SizeNegative)),
        ] {
            assert_eq!(rule(&register_body(|r| r.size = size)), want);
        }
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

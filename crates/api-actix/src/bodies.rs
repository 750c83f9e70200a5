//! The JSON bodies of the API and their translation into the domain's typed
//! inputs. Wire concerns live here: camelCase names, sizes that may arrive
//! negative (`file/size-negative`, not a syntax error), part numbers that may
//! arrive as anything, and PATCH's refusal of the file object's other fields.
//! The rules themselves (bounds, syntax, order of parts) are the domain's:
//! each translation calls the domain's constructors and checks, in the order
//! the contract gives (docs/api.md §2: body syntax, then field rules).

use serde::Deserialize;
use serde_json::Value;
use stowage_domain::model::{Bucket, Category, FileId, Visibility};
use stowage_domain::ports::CompletedPart;
use stowage_domain::service::{FilePatch, RegisterFile};
use stowage_domain::upload::{CompletedParts, IssueUpload, PartNumber};
use stowage_domain::validation::FieldRules;
use stowage_domain::{Error, ErrorCode};
use utoipa::ToSchema;

/// Reads a JSON value into `T`; a wrong type or a missing field is
/// `common/invalid-request` with serde's message (which names the field).
///
/// # Errors
/// As said.
pub fn shape<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::invalid_request(e.to_string()))
}

/// `{field}: {message}` with the code's default message, as the domain's
/// field rules word it.
fn field_error(code: ErrorCode, field: &str) -> Error {
    Error::with_message(code, format!("{field}: {}", code.default_message()))
}

/// Body of `POST /v1/files/presigned-url` and `POST /v1/files/multipart/init`.
/// The size limit of its category and the type's fit with it are checked by
/// the use case (they depend on configuration).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = IssueUpload)]
#[serde(rename_all = "camelCase")]
pub struct IssueUploadBody {
    /// Client file name.
    #[schema(min_length = 1, max_length = 255)]
    pub filename: String,
    /// MIME type the client will upload.
    #[schema(
        min_length = 3,
        max_length = 255,
        pattern = "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"
    )]
    pub content_type: String,
    /// Declared size (required for multipart).
    #[serde(default)]
    #[schema(minimum = 0)]
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
    #[schema(min_length = 44, max_length = 44, pattern = "^[A-Za-z0-9+/]{43}=$")]
    pub checksum_sha256: Option<String>,
}

impl TryFrom<IssueUploadBody> for IssueUpload {
    type Error = Error;

    /// # Errors
    /// `file/size-negative` for a negative `fileSize`, after the rules of the
    /// fields checked before it (name, type).
    fn try_from(body: IssueUploadBody) -> Result<Self, Error> {
        let mut req = IssueUpload::new(body.filename, body.content_type);
        req.visibility = body.visibility;
        req.category = body.category;
        if let Some(size) = body.file_size {
            let Ok(size) = u64::try_from(size) else {
                req.check_fields()?;
                return Err(field_error(ErrorCode::SizeNegative, "fileSize"));
            };
            req = req.with_size(size);
        }
        req.checksum_sha256 = body.checksum_sha256;
        Ok(req)
    }
}

/// Body of `POST /v1/files`. Its field rules come first of the seven checks
/// of docs/api.md; the minimum size (configuration) and the metadata limits
/// (a structure) are checked by the use case.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = RegisterFile)]
#[serde(rename_all = "camelCase")]
pub struct RegisterFileBody {
    /// Issued key.
    #[schema(min_length = 1, max_length = 1024)]
    pub s3_key: String,
    /// Name.
    #[schema(min_length = 1, max_length = 255)]
    pub original_name: String,
    /// MIME type.
    #[schema(
        min_length = 3,
        max_length = 255,
        pattern = "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"
    )]
    pub mime_type: String,
    /// Size in bytes.
    #[schema(minimum = 0)]
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
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub metadata: Option<Value>,
    /// Share list.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub shared_with: Option<Vec<String>>,
}

impl TryFrom<RegisterFileBody> for RegisterFile {
    type Error = Error;

    /// # Errors
    /// `file/size-negative` for a negative `size`, after the rules of the
    /// fields checked before it (key, name, type).
    fn try_from(body: RegisterFileBody) -> Result<Self, Error> {
        let mut req = RegisterFile::new(body.s3_key, body.original_name, body.mime_type, 0);
        req.width = body.width;
        req.height = body.height;
        req.visibility = body.visibility;
        req.bucket = body.bucket;
        req.metadata = body.metadata;
        let Ok(size) = u64::try_from(body.size) else {
            req.check_fields()?;
            return Err(field_error(ErrorCode::SizeNegative, "size"));
        };
        req.size = size;
        req.shared_with = body.shared_with;
        Ok(req)
    }
}

/// Body of `PATCH /v1/files/:id`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[schema(as = FilePatch)]
#[serde(rename_all = "camelCase")]
pub struct FilePatchBody {
    /// New name.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    pub original_name: Option<String>,
    /// New visibility.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// RFC 7396 merge patch of metadata.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>)]
    pub metadata: Option<Value>,
    /// New share list.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub shared_with: Option<Vec<String>>,
}

/// File-object fields that PATCH may not change (docs/api.md §2).
pub const IMMUTABLE_FIELDS: &[&str] = &[
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

impl FilePatchBody {
    /// Reads a PATCH body, refusing the file object's other fields.
    ///
    /// # Errors
    /// `common/invalid-request` naming the field, or serde's complaint.
    pub fn from_json(body: Value) -> Result<Self, Error> {
        let Value::Object(map) = &body else {
            return Err(Error::invalid_request("request body must be a JSON object"));
        };
        if let Some(field) = IMMUTABLE_FIELDS.iter().find(|f| map.contains_key(**f)) {
            return Err(Error::invalid_request(format!(
                "field `{field}` cannot be changed"
            )));
        }
        shape(body)
    }
}

impl From<FilePatchBody> for FilePatch {
    fn from(body: FilePatchBody) -> Self {
        let mut patch = FilePatch::default();
        patch.original_name = body.original_name;
        patch.visibility = body.visibility;
        patch.metadata = body.metadata;
        patch.shared_with = body.shared_with;
        patch
    }
}

/// Body naming a multipart upload.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadRef {
    /// The upload's key.
    pub key: String,
    /// The store's upload id.
    pub upload_id: String,
}

/// Body of `POST /v1/files/multipart/presigned-url`, read.
#[derive(Debug, Clone)]
pub struct PartUrlBody {
    /// The upload.
    pub upload: UploadRef,
    /// The part.
    pub part_number: PartNumber,
    /// The part's own SHA-256, base64, if given.
    pub checksum_sha256: Option<String>,
}

impl PartUrlBody {
    /// Reads the body: its shape first, then the part number's range.
    ///
    /// # Errors
    /// `common/invalid-request` for a wrong shape;
    /// `file/invalid-part-number-range` for a part number that is not an
    /// integer in 1..=10000.
    pub fn from_json(value: Value) -> Result<Self, Error> {
        let part_number = value.get("partNumber").and_then(Value::as_u64);
        let checksum_sha256 = match value.get("checksumSha256") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::invalid_request("checksumSha256: must be a string")),
        };
        let upload: UploadRef = shape(value)?;
        let part_number = part_number
            .ok_or_else(|| Error::new(ErrorCode::InvalidPartNumberRange))
            .and_then(PartNumber::new)?;
        Ok(Self {
            upload,
            part_number,
            checksum_sha256,
        })
    }
}

/// Body of `POST /v1/files/multipart/complete`, read.
#[derive(Debug, Clone)]
pub struct CompleteBody {
    /// The upload.
    pub upload: UploadRef,
    /// The parts, checked.
    pub parts: CompletedParts,
}

impl CompleteBody {
    /// Reads the body: its shape first, then the parts list.
    ///
    /// # Errors
    /// `common/invalid-request` for a wrong shape; `file/invalid-parts-array`
    /// for a list that is missing, empty, over 10,000 items, out of order, or
    /// has an item without a valid `partNumber` and `etag`.
    pub fn from_json(mut value: Value) -> Result<Self, Error> {
        let parts = value.get_mut("parts").map(Value::take);
        let upload: UploadRef = shape(value)?;
        Ok(Self {
            upload,
            parts: parts_from_json(parts.as_ref())?,
        })
    }
}

/// One entry of `parts` as sent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PartItem {
    part_number: Value,
    #[serde(default)]
    etag: Option<String>,
}

/// Reads a `parts` list into the domain's [`CompletedParts`], item by item.
fn parts_from_json(parts: Option<&Value>) -> Result<CompletedParts, Error> {
    let invalid = |m: &str| Error::with_message(ErrorCode::InvalidPartsArray, m.to_owned());
    let list = parts
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("parts must be a non-empty array"))?;
    CompletedParts::check_len(list.len())?;
    let mut out = CompletedParts::default();
    for item in list {
        let item = PartItem::deserialize(item)
            .map_err(|_| invalid("each part needs partNumber and etag"))?;
        let number = item
            .part_number
            .as_u64()
            .and_then(|n| PartNumber::new(n).ok())
            .ok_or_else(|| invalid("partNumber must be 1-10000"))?;
        let etag = item.etag.ok_or_else(|| invalid("missing etag"))?;
        out.push(CompletedPart::new(number, &etag)?)?;
    }
    Ok(out)
}

/// A file id from a path: anything that is not a UUID is `file/not-found`.
///
/// # Errors
/// `file/not-found`.
pub fn file_id(raw: &str) -> Result<FileId, Error> {
    raw.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn register(v: Value) -> Result<RegisterFile, Error> {
        RegisterFile::try_from(shape::<RegisterFileBody>(v)?)
    }

    fn issue(v: Value) -> Result<IssueUpload, Error> {
        IssueUpload::try_from(shape::<IssueUploadBody>(v)?)
    }

    fn failure<T>(r: Result<T, Error>) -> Option<(ErrorCode, String)> {
        r.err().map(|e| (e.code(), e.message().to_owned()))
    }

    #[test]
    fn negative_sizes_are_a_field_rule_after_the_fields_before_them() {
        let ok =
            json!({"s3Key": "k", "originalName": "a.txt", "mimeType": "text/plain", "size": 3});
        assert_eq!(register(ok).map(|r| r.size).ok(), Some(3));
        let code = |v| failure(register(v)).map(|f| f.0);
        assert_eq!(
            failure(register(
                json!({"s3Key": "k", "originalName": "a.txt", "mimeType": "text/plain", "size": -1})
            )),
            Some((
                ErrorCode::SizeNegative,
                format!("size: {}", ErrorCode::SizeNegative.default_message())
            ))
        );
        // A bad name is checked before the size...
        assert_eq!(
            code(
                json!({"s3Key": "k", "originalName": "a/b", "mimeType": "text/plain", "size": -1})
            ),
            Some(ErrorCode::InvalidName)
        );
        // ...a bad share list after it.
        assert_eq!(
            code(
                json!({"s3Key": "k", "originalName": "a", "mimeType": "text/plain", "size": -1, "sharedWith": [""]})
            ),
            Some(ErrorCode::SizeNegative)
        );
        // Not a number at all: body syntax.
        assert_eq!(
            code(json!({"s3Key": "k", "originalName": "a", "mimeType": "text/plain", "size": "1"})),
            Some(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            code(json!({"s3Key": "k", "originalName": "a", "mimeType": "text/plain", "size": 1.5})),
            Some(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            failure(issue(
                json!({"filename": "a", "contentType": "text/plain", "fileSize": i64::MIN})
            )),
            Some((
                ErrorCode::SizeNegative,
                format!("fileSize: {}", ErrorCode::SizeNegative.default_message())
            ))
        );
        assert_eq!(
            failure(issue(
                json!({"filename": "a", "contentType": "text", "fileSize": -1})
            ))
            .map(|f| f.0),
            Some(ErrorCode::InvalidFormat)
        );
        let full = issue(
            json!({"filename": "a.png", "contentType": "image/png", "fileSize": 7,
            "visibility": "public", "category": "images", "checksumSha256": "x"}),
        )
        .expect("issue");
        assert_eq!(
            (
                full.file_size,
                full.visibility,
                full.category,
                full.checksum_sha256.as_deref()
            ),
            (
                Some(7),
                Some(Visibility::Public),
                Some(Category::Images),
                Some("x")
            )
        );
    }

    #[test]
    fn patch_refuses_the_file_objects_other_fields() {
        for f in IMMUTABLE_FIELDS {
            assert_eq!(
                FilePatchBody::from_json(json!({ *f: 1 }))
                    .err()
                    .map(|e| e.code()),
                Some(ErrorCode::InvalidRequest),
                "{f}"
            );
        }
        let patch: FilePatch = FilePatchBody::from_json(json!({"originalName": "x", "other": 1}))
            .expect("unknown fields are ignored")
            .into();
        assert_eq!(patch, FilePatch::default().rename("x"));
        assert!(FilePatchBody::from_json(json!({"visibility": "nope"})).is_err());
        assert!(FilePatchBody::from_json(json!([1])).is_err());
    }

    #[test]
    fn part_numbers_arrive_as_anything() {
        let body = |n: Value| json!({"key": "k", "uploadId": "u", "partNumber": n});
        for ok in [json!(1), json!(10000)] {
            assert!(PartUrlBody::from_json(body(ok)).is_ok());
        }
        for bad in [
            json!(0),
            json!(10001),
            json!(1.5),
            json!("1"),
            json!(-1),
            json!(null),
        ] {
            assert_eq!(
                PartUrlBody::from_json(body(bad.clone()))
                    .err()
                    .map(|e| e.code()),
                Some(ErrorCode::InvalidPartNumberRange),
                "{bad}"
            );
        }
        // The shape comes first.
        assert_eq!(
            PartUrlBody::from_json(json!({"key": "k", "partNumber": 0}))
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            PartUrlBody::from_json(
                json!({"key": "k", "uploadId": "u", "partNumber": 1, "checksumSha256": 5})
            )
            .err()
            .map(|e| e.code()),
            Some(ErrorCode::InvalidRequest)
        );
    }

    #[test]
    fn parts_lists() {
        let code = |v: Option<Value>| parts_from_json(v.as_ref()).err().map(|e| e.code());
        let bad = Some(ErrorCode::InvalidPartsArray);
        assert_eq!(code(None), bad);
        assert_eq!(code(Some(json!("x"))), bad);
        assert_eq!(code(Some(json!([]))), bad);
        assert_eq!(
            code(Some(
                json!([{"partNumber":2,"etag":"a"},{"partNumber":1,"etag":"b"}])
            )),
            bad
        );
        assert_eq!(
            code(Some(
                json!([{"partNumber":1,"etag":"a"},{"partNumber":1,"etag":"b"}])
            )),
            bad
        );
        assert_eq!(code(Some(json!([{"partNumber":1,"etag":"\"\""}]))), bad);
        assert_eq!(code(Some(json!([{"partNumber":1}]))), bad);
        assert_eq!(code(Some(json!([{"partNumber":0,"etag":"a"}]))), bad);
        assert_eq!(code(Some(json!([1]))), bad);
        let many: Vec<Value> = (1..=10_001)
            .map(|n| json!({"partNumber": n, "etag": "a"}))
            .collect();
        assert_eq!(
            parts_from_json(Some(&Value::Array(many)))
                .err()
                .map(|e| e.message().to_owned())
                .as_deref(),
            Some("parts must have 1 to 10000 items")
        );
        let ok = parts_from_json(Some(
            &json!([{"partNumber":1,"etag":"\"abc\""},{"partNumber":3,"etag":"def"}]),
        ));
        assert_eq!(
            ok.ok()
                .map(|p| p.iter().map(|p| p.etag.clone()).collect::<Vec<_>>()),
            Some(vec!["abc".into(), "def".into()])
        );
        let done = CompleteBody::from_json(
            json!({"key": "k", "uploadId": "u", "parts": [{"partNumber": 1, "etag": "e"}]}),
        )
        .expect("complete body");
        assert_eq!((done.upload.key.as_str(), done.parts.len()), ("k", 1));
        // The shape comes before the parts.
        assert_eq!(
            CompleteBody::from_json(json!({"key": "k", "parts": []}))
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::InvalidRequest)
        );
    }

    #[test]
    fn file_ids() {
        assert_eq!(
            file_id("not-a-uuid").err().map(|e| e.code()),
            Some(ErrorCode::FileNotFound)
        );
        assert!(file_id("0192f0c4-8e1b-7cc0-b2a1-5e4f3a2b1c0d").is_ok());
    }
}

/// Optional body of `POST /v1/files/{id}/download-url`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[schema(as = DownloadRequest)]
pub struct DownloadBody {
    /// Image options (docs/api.md §9), e.g. `fit-in/300x200/filters:format(webp)`:
    /// the URL is then of the transformed image.
    pub transform: Option<String>,
}

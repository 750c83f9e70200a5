//! Issued uploads: the server's record of every key it handed out (single PUT or
//! multipart), so that registration can be checked and abandoned uploads cleaned.

use validator::Validate;

use crate::error::{Error, ErrorCode, Result};
use crate::limits::{MAX_MIME_CHARS, MAX_NAME_CHARS, MAX_PART_NUMBER};
use crate::ports::CompletedPart;
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

/// What `POST /v1/files/presigned-url` and `POST /v1/files/multipart/init`
/// ask for. Built with [`IssueUpload::new`] and the `with_*` methods; the
/// field rules (name, type, checksum syntax) are checked by the use case, as
/// are the size limit of its category and the type's fit with it (they
/// depend on configuration).
///
/// ```
/// use stowage_domain::model::Category;
/// use stowage_domain::upload::IssueUpload;
///
/// let req = IssueUpload::new("cat.png", "image/png")
///     .with_size(12_345)
///     .with_category(Category::Images);
/// assert_eq!(req.file_size, Some(12_345));
/// ```
#[derive(Debug, Clone, PartialEq, Validate)]
#[non_exhaustive]
pub struct IssueUpload {
    /// Client file name.
    #[validate(
        length(max = "MAX_NAME_CHARS", code = "file/original-name-too-long"),
        custom(
            function = "crate::limits::check_name_syntax",
            code = "file/invalid-name"
        )
    )]
    pub filename: String,
    /// MIME type the client will upload.
    #[validate(
        length(max = "MAX_MIME_CHARS", code = "file/mime-type-too-long"),
        custom(
            function = "crate::limits::check_mime_syntax",
            code = "file/invalid-format"
        )
    )]
    pub content_type: String,
    /// Declared size in bytes (required for multipart).
    pub file_size: Option<u64>,
    /// Visibility of the future file.
    pub visibility: Option<Visibility>,
    /// Category (limits of docs/api.md §6).
    pub category: Option<Category>,
    /// SHA-256 of the whole object, base64 of its 32 bytes (docs/api.md §11):
    /// a single PUT's URL then binds `x-amz-checksum-sha256`.
    #[validate(custom(
        function = "crate::limits::check_sha256_base64",
        code = "common/invalid-request"
    ))]
    pub checksum_sha256: Option<String>,
}

impl IssueUpload {
    /// An upload of `filename` with `content_type`, nothing else declared.
    pub fn new(filename: impl Into<String>, content_type: impl Into<String>) -> Self {
        Self {
            filename: filename.into(),
            content_type: content_type.into(),
            file_size: None,
            visibility: None,
            category: None,
            checksum_sha256: None,
        }
    }

    /// Declares the size: a single PUT's URL then binds `Content-Length`.
    #[must_use]
    pub fn with_size(mut self, bytes: u64) -> Self {
        self.file_size = Some(bytes);
        self
    }

    /// The visibility the future file gets.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = Some(visibility);
        self
    }

    /// The category whose limits apply (docs/api.md §6).
    #[must_use]
    pub fn with_category(mut self, category: Category) -> Self {
        self.category = Some(category);
        self
    }

    /// The whole object's SHA-256, base64 of its 32 bytes (docs/api.md §11).
    #[must_use]
    pub fn with_checksum_sha256(mut self, base64: impl Into<String>) -> Self {
        self.checksum_sha256 = Some(base64.into());
        self
    }
}

impl FieldRules for IssueUpload {
    const FIELDS: &'static [&'static str] = &["filename", "content_type", "checksum_sha256"];
}

/// A multipart part number, 1..=10000 (docs/api.md §4).
///
/// ```
/// use stowage_domain::upload::PartNumber;
///
/// assert_eq!(PartNumber::new(7).map(PartNumber::get).ok(), Some(7));
/// assert!(PartNumber::new(0).is_err());
/// assert!(PartNumber::new(10_001).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartNumber(u16);

impl PartNumber {
    /// The highest part number.
    pub const MAX: u32 = MAX_PART_NUMBER;

    /// Checks the range.
    ///
    /// # Errors
    /// `file/invalid-part-number-range` outside 1..=10000.
    pub fn new(n: u64) -> Result<Self> {
        u16::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_PART_NUMBER).contains(&u32::from(*n)))
            .map(Self)
            .ok_or_else(|| Error::new(ErrorCode::InvalidPartNumberRange))
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Display for PartNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The parts a multipart completion names: 1 to 10,000 of them, sorted by
/// part number without duplicates, each with an ETag. Built part by part
/// with [`CompletedParts::push`], which refuses a part out of order.
///
/// ```
/// use stowage_domain::ports::CompletedPart;
/// use stowage_domain::upload::{CompletedParts, PartNumber};
///
/// # fn main() -> stowage_domain::Result<()> {
/// let mut parts = CompletedParts::default();
/// parts.push(CompletedPart::new(PartNumber::new(1)?, "\"9b2cf535f27731c974343645a3985328\"")?)?;
/// parts.push(CompletedPart::new(PartNumber::new(2)?, "6f5902ac237024bdd0c176cb93063dc4")?)?;
/// assert!(parts.push(CompletedPart::new(PartNumber::new(2)?, "x")?).is_err());
/// assert_eq!(parts[0].etag, "9b2cf535f27731c974343645a3985328");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompletedParts(Vec<CompletedPart>);

impl CompletedParts {
    /// Checks a list's length before its parts are read (refusing a list of
    /// 20,000 parts needs no look at any of them).
    ///
    /// # Errors
    /// `file/invalid-parts-array` outside 1..=10000.
    pub fn check_len(n: usize) -> Result<()> {
        if n == 0 || n > MAX_PART_NUMBER as usize {
            return Err(invalid_parts("parts must have 1 to 10000 items"));
        }
        Ok(())
    }

    /// Appends a part.
    ///
    /// # Errors
    /// `file/invalid-parts-array` when its number is not above the last one's.
    pub fn push(&mut self, part: CompletedPart) -> Result<()> {
        if self
            .0
            .last()
            .is_some_and(|prev| prev.part_number >= part.part_number)
        {
            return Err(invalid_parts(
                "parts must be sorted by partNumber without duplicates",
            ));
        }
        self.0.push(part);
        Ok(())
    }

    /// Checks the list is complete enough to name an object (not empty).
    ///
    /// # Errors
    /// `file/invalid-parts-array` for an empty list.
    pub fn check_not_empty(&self) -> Result<()> {
        Self::check_len(self.0.len())
    }
}

impl std::ops::Deref for CompletedParts {
    type Target = [CompletedPart];

    fn deref(&self) -> &[CompletedPart] {
        &self.0
    }
}

impl TryFrom<Vec<CompletedPart>> for CompletedParts {
    type Error = Error;

    fn try_from(parts: Vec<CompletedPart>) -> Result<Self> {
        Self::check_len(parts.len())?;
        let mut out = Self(Vec::with_capacity(parts.len()));
        for part in parts {
            out.push(part)?;
        }
        Ok(out)
    }
}

pub(crate) fn invalid_parts(message: &str) -> Error {
    Error::with_message(ErrorCode::InvalidPartsArray, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: u64, etag: &str) -> Result<CompletedPart> {
        CompletedPart::new(PartNumber::new(n)?, etag)
    }

    #[test]
    fn part_number_bounds() {
        for ok in [1, 2, 9_999, 10_000] {
            assert_eq!(
                PartNumber::new(ok).map(PartNumber::get).ok(),
                Some(ok as u32)
            );
        }
        for bad in [0, 10_001, 65_536 + 1, u64::MAX] {
            assert_eq!(
                PartNumber::new(bad).err().map(|e| e.code()),
                Some(ErrorCode::InvalidPartNumberRange),
                "{bad}"
            );
        }
    }

    #[test]
    fn completed_parts_rules() {
        let bad = Some(ErrorCode::InvalidPartsArray);
        let code = |r: Result<CompletedParts>| r.err().map(|e| e.code());
        let list = |parts: Vec<(u64, &str)>| -> Result<CompletedParts> {
            let parts = parts
                .into_iter()
                .map(|(n, e)| part(n, e))
                .collect::<Result<Vec<_>>>()?;
            CompletedParts::try_from(parts)
        };
        assert_eq!(code(list(vec![])), bad);
        assert_eq!(code(list(vec![(2, "a"), (1, "b")])), bad);
        assert_eq!(code(list(vec![(1, "a"), (1, "b")])), bad);
        assert_eq!(code(list(vec![(1, "\"\"")])), bad);
        assert_eq!(code(list(vec![(1, "")])), bad);
        assert_eq!(code(list(vec![(1, "a b")])), bad);
        assert_eq!(code(list(vec![(1, "\u{e9}")])), bad);
        assert!(CompletedParts::check_len(10_000).is_ok());
        assert_eq!(
            CompletedParts::check_len(10_001).err().map(|e| e.code()),
            bad
        );
        assert_eq!(
            CompletedParts::default()
                .check_not_empty()
                .err()
                .map(|e| e.code()),
            bad
        );
        let ok = list(vec![(1, "\"abc\""), (3, " def ")]).expect("valid list");
        assert_eq!(
            ok.iter()
                .map(|p| (p.part_number, p.etag.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "abc"), (3, "def")]
        );
        // The longest list there can be.
        let all = (1..=10_000)
            .map(|n| part(n, "e"))
            .collect::<Result<Vec<_>>>();
        assert_eq!(
            all.and_then(CompletedParts::try_from).map(|p| p.len()).ok(),
            Some(10_000)
        );
    }
}

//! Size, name and MIME rules (docs/api.md §2 and §6). Defaults follow the contract;
//! every number is configurable through [`Limits`].

use validator::ValidationError;

use crate::error::{Error, ErrorCode, Result};
use crate::model::Category;
use crate::validation::failed;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const TIB: u64 = 1024 * GIB;

/// Longest accepted file name, in characters.
pub const MAX_NAME_CHARS: u64 = 255;
/// Longest accepted MIME type, in characters.
pub const MAX_MIME_CHARS: u64 = 255;
/// Longest accepted object key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Most users a file may be shared with.
pub const MAX_SHARED_WITH: u64 = 100;
/// Longest user id in a share list, in characters.
pub const MAX_USER_ID_CHARS: usize = 255;
/// Largest part number of a multipart upload.
pub const MAX_PART_NUMBER: u32 = 10_000;
/// Smallest size of every multipart part but the last.
pub const MIN_PART_SIZE: u64 = 5 * MIB;

/// Size limits per category (docs/api.md §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Max size of `images`.
    pub images_max: u64,
    /// Max size of `documents`.
    pub documents_max: u64,
    /// Max size of `media`.
    pub media_max: u64,
    /// Max size of any other single PUT.
    pub single_put_max: u64,
    /// Max size of any other multipart upload.
    pub multipart_max: u64,
    /// Minimum size.
    pub min_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            images_max: 10 * MIB,
            documents_max: 20 * MIB,
            media_max: 100 * MIB,
            single_put_max: 5 * GIB,
            multipart_max: 5 * TIB,
            min_size: 1,
        }
    }
}

/// Office and other document types allowed in `documents` besides `text/*`.
const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "application/json",
    "application/zip",
    "application/rtf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
];

impl Limits {
    /// The largest size allowed for an upload of `category`.
    pub fn max_size(&self, category: Option<Category>, multipart: bool) -> u64 {
        match category {
            Some(Category::Images) => self.images_max,
            Some(Category::Documents) => self.documents_max,
            Some(Category::Media) => self.media_max,
            _ if multipart => self.multipart_max,
            _ => self.single_put_max,
        }
    }

    /// Checks a declared or actual size against the limit for `category`.
    ///
    /// # Errors
    /// `file/file-too-small` or `file/file-too-large`.
    pub fn check_size(&self, size: u64, max: u64) -> Result<u64> {
        if size < self.min_size {
            return Err(Error::with_message(
                ErrorCode::FileTooSmall,
                format!("File must be at least {} byte(s)", self.min_size),
            ));
        }
        if size > max {
            return Err(Error::with_message(
                ErrorCode::FileTooLarge,
                format!("File exceeds the limit of {max} bytes"),
            ));
        }
        Ok(size)
    }

    /// Checks that `mime` (already validated) is allowed for `category`.
    ///
    /// # Errors
    /// `file/invalid-format` when the category does not accept the type.
    pub fn check_mime_for_category(mime: &MimeType, category: Option<Category>) -> Result<()> {
        let (top, _) = mime.parts();
        let allowed = match category {
            Some(Category::Images) => top == "image",
            Some(Category::Media) => top == "audio" || top == "video",
            Some(Category::Documents) => top == "text" || DOCUMENT_TYPES.contains(&mime.as_str()),
            _ => true,
        };
        if allowed {
            Ok(())
        } else {
            let cat = category.map_or("none", Category::as_str);
            Err(Error::with_message(
                ErrorCode::InvalidFormat,
                format!(
                    "MIME type `{}` is not allowed for category `{cat}`",
                    mime.as_str()
                ),
            ))
        }
    }
}

/// A syntactically valid `type/subtype` MIME type (RFC 6838 restricted names), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MimeType(String);

impl MimeType {
    /// Validates a MIME type.
    ///
    /// # Errors
    /// `file/mime-type-too-long` over 255 characters; `file/invalid-format` for
    /// anything but `type/subtype` (parameters are not accepted).
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.chars().count() as u64 > MAX_MIME_CHARS {
            return Err(Error::new(ErrorCode::MimeTypeTooLong));
        }
        if !is_mime_syntax(raw) {
            return Err(Error::with_message(ErrorCode::InvalidFormat, MIME_SYNTAX));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    /// The type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `(type, subtype)`.
    pub fn parts(&self) -> (&str, &str) {
        self.0.split_once('/').unwrap_or((&self.0, ""))
    }

    /// Unwraps the text.
    pub fn into_string(self) -> String {
        self.0
    }
}

const MIME_SYNTAX: &str = "MIME type must be of the form type/subtype";

/// `type/subtype`, each an RFC 6838 restricted name (no parameters).
fn is_mime_syntax(raw: &str) -> bool {
    fn restricted_name(s: &str) -> bool {
        let mut bytes = s.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.len() <= 127
            && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    }
    raw.split_once('/')
        .is_some_and(|(t, s)| restricted_name(t) && restricted_name(s))
}

/// Rule (`custom` validator) of a MIME type field: `type/subtype` syntax. The
/// length bound is the field's `length` constraint.
///
/// # Errors
/// When `raw` is not `type/subtype`.
pub fn check_mime_syntax(raw: &str) -> std::result::Result<(), ValidationError> {
    if is_mime_syntax(raw) {
        Ok(())
    } else {
        Err(failed(MIME_SYNTAX))
    }
}

/// The request header a URL bound to a digest requires (S3's name for it).
pub const CHECKSUM_SHA256_HEADER: &str = "x-amz-checksum-sha256";

/// `bytes`' SHA-256 as `checksumSha256` spells it: base64 of the 32 bytes.
pub fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::{Digest, Sha256};
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// Whether `value` is the base64 (standard alphabet, padded, canonical) of a
/// 32-byte SHA-256 digest: the one spelling of each digest, so two valid
/// values are equal exactly when their digests are.
pub fn is_sha256_base64(value: &str) -> bool {
    use base64::Engine as _;
    value.len() == 44
        && base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok_and(|d| d.len() == 32)
}

/// Rule (`custom` validator) of a `checksumSha256` field (docs/api.md §11).
///
/// # Errors
/// When `value` is not [`is_sha256_base64`].
pub fn check_sha256_base64(value: &str) -> std::result::Result<(), ValidationError> {
    if is_sha256_base64(value) {
        Ok(())
    } else {
        Err(failed("must be the base64 of a 32-byte SHA-256 digest"))
    }
}

/// Rule (`custom` validator) of an object key field: at most
/// [`MAX_KEY_BYTES`] bytes (a byte bound, which `length` — counting
/// characters — cannot state).
///
/// # Errors
/// When the key is longer.
pub fn check_key_bytes(key: &str) -> std::result::Result<(), ValidationError> {
    if key.len() > MAX_KEY_BYTES {
        Err(failed("Storage key too long"))
    } else {
        Ok(())
    }
}

/// Rule (`custom` validator) of a share list's entries: each user id 1–255
/// characters without control characters. (The list's length is the field's
/// `length` constraint; duplicates are dropped, not refused.)
///
/// # Errors
/// At the first bad id.
pub fn check_user_ids(ids: &[String]) -> std::result::Result<(), ValidationError> {
    let bad = |id: &String| {
        id.is_empty() || id.chars().count() > MAX_USER_ID_CHARS || id.chars().any(char::is_control)
    };
    if ids.iter().any(bad) {
        Err(failed(
            "user ids must be 1-255 characters without control characters",
        ))
    } else {
        Ok(())
    }
}

/// Characters that are never allowed in a file name: path separators, NUL and
/// every control character, and the bidirectional overrides used to disguise
/// extensions (`invoice\u{202e}fdp.exe`).
fn forbidden_name_char(c: char) -> bool {
    c == '/'
        || c == '\\'
        || c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` is whitespace (Unicode White_Space: Zs, Zl, Zp and the ASCII
/// spaces) or an invisible format character (Unicode Cf).
pub fn is_blank_char(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{ad}'
            | '\u{600}'..='\u{605}'
            | '\u{61c}'
            | '\u{6dd}'
            | '\u{70f}'
            | '\u{890}'..='\u{891}'
            | '\u{8e2}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{110bd}'
            | '\u{110cd}'
            | '\u{13430}'..='\u{1343f}'
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0001}'
            | '\u{e0020}'..='\u{e007f}')
}

/// Rule (`custom` validator) of a file name field: not empty, `.`, `..` or
/// blank; no separators, control or bidirectional-override characters. The
/// length bound ([`MAX_NAME_CHARS`]) is the field's `length` constraint,
/// checked after this one.
///
/// # Errors
/// A message saying which rule failed.
pub fn check_name_syntax(name: &str) -> std::result::Result<(), ValidationError> {
    if name.is_empty() || name == "." || name == ".." || name.chars().all(is_blank_char) {
        return Err(failed("File name must not be empty, '.' or '..'"));
    }
    if name.chars().any(forbidden_name_char) {
        return Err(failed(
            "File name must not contain '/', '\\', control or bidirectional-override characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T>(r: Result<T>) -> Option<ErrorCode> {
        r.err().map(|e| e.code())
    }

    #[test]
    fn default_limits_per_category() {
        let l = Limits::default();
        let cases = [
            (Some(Category::Images), false, 10 * MIB),
            (Some(Category::Images), true, 10 * MIB),
            (Some(Category::Documents), false, 20 * MIB),
            (Some(Category::Media), true, 100 * MIB),
            (Some(Category::Attachments), false, 5 * GIB),
            (Some(Category::Exports), true, 5 * TIB),
            (Some(Category::Backups), false, 5 * GIB),
            (Some(Category::Temp), true, 5 * TIB),
            (None, false, 5 * GIB),
            (None, true, 5 * TIB),
        ];
        for (cat, multipart, max) in cases {
            assert_eq!(l.max_size(cat, multipart), max, "{cat:?} {multipart}");
        }
    }

    #[test]
    fn size_boundaries() {
        let l = Limits::default();
        let max = l.max_size(Some(Category::Images), false);
        assert_eq!(l.check_size(1, max).ok(), Some(1));
        assert_eq!(l.check_size(max, max).ok(), Some(max));
        assert_eq!(
            code(l.check_size(max + 1, max)),
            Some(ErrorCode::FileTooLarge)
        );
        assert_eq!(
            code(l.check_size(u64::MAX, max)),
            Some(ErrorCode::FileTooLarge)
        );
        assert_eq!(code(l.check_size(0, max)), Some(ErrorCode::FileTooSmall));
    }

    #[test]
    fn mime_syntax() {
        for ok in [
            "image/png",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "Text/Plain",
        ] {
            assert!(MimeType::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            MimeType::parse("Text/Plain")
                .map(|m| m.into_string())
                .ok()
                .as_deref(),
            Some("text/plain")
        );
        for bad in [
            "",
            "image",
            "image/",
            "/png",
            "image/png; charset=x",
            "a/b/c",
            "im age/png",
            "image/p\u{e9}ng",
        ] {
            assert_eq!(
                code(MimeType::parse(bad)),
                Some(ErrorCode::InvalidFormat),
                "{bad}"
            );
        }
        let long = format!("application/{}", "x".repeat(250));
        assert_eq!(
            code(MimeType::parse(&long)),
            Some(ErrorCode::MimeTypeTooLong)
        );
    }

    #[test]
    fn mime_per_category() {
        let ok = |m: &str, c: Option<Category>| {
            MimeType::parse(m)
                .and_then(|m| Limits::check_mime_for_category(&m, c))
                .is_ok()
        };
        assert!(ok("image/png", Some(Category::Images)));
        assert!(!ok("video/mp4", Some(Category::Images)));
        assert!(ok("video/mp4", Some(Category::Media)));
        assert!(ok("audio/ogg", Some(Category::Media)));
        assert!(!ok("image/png", Some(Category::Media)));
        for d in DOCUMENT_TYPES {
            assert!(ok(d, Some(Category::Documents)), "{d}");
        }
        assert!(ok("text/csv", Some(Category::Documents)));
        assert!(!ok("image/png", Some(Category::Documents)));
        assert!(!ok("application/octet-stream", Some(Category::Documents)));
        for c in [
            None,
            Some(Category::Attachments),
            Some(Category::Exports),
            Some(Category::Backups),
            Some(Category::Temp),
        ] {
            assert!(ok("application/octet-stream", c));
        }
    }

    #[test]
    fn names() {
        for ok in [
            "a",
            "report.pdf",
            "...a",
            "naïve café.txt",
            &"\u{1F600}".repeat(255),
            " x ",
        ] {
            assert!(check_name_syntax(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a\0b",
            "a\nb",
            "a\u{7f}",
            "evil\u{202e}gpj.exe",
            "x\u{2066}",
            "   ",
        ] {
            assert!(check_name_syntax(bad).is_err(), "{bad:?}");
        }
        // The length bound is the fields' `length` rule (service tests).
    }
}

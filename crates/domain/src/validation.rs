//! Field rules of the domain's inputs. Each input type declares its
//! constraints with `validator` derives, every constraint carrying the
//! contract's error code as its validation code (docs/api.md §2):
//!
//! ```text
//! #[validate(length(max = MAX_NAME_CHARS, code = "file/original-name-too-long"))]
//! ```
//!
//! Rules a derive cannot express as a bound (Unicode name rules, MIME syntax,
//! share ids) are `custom` validators defined next to their constants in
//! [`crate::limits`]; rules that need configuration (the size limit of a
//! category) or parse a structure (metadata, multipart part lists) stay
//! domain functions. [`FieldRules::check_fields`] runs the declared rules and
//! turns the first failure — fields in the order of [`FieldRules::FIELDS`];
//! within a field, `validator`'s fixed order: bounds (`length`, `range`)
//! before `custom` rules (written in that order too) — into the domain
//! [`Error`] with that code and a message naming the field as the client sent
//! it (`originalName: File name too long`).

use std::str::FromStr;

use validator::{Validate, ValidationError, ValidationErrors};

use crate::error::{Error, ErrorCode, Result};

/// An input whose field rules are declared with `validator`.
pub trait FieldRules: Validate {
    /// The fields with rules (Rust names), in the order they are checked.
    const FIELDS: &'static [&'static str];

    /// Runs the declared rules.
    ///
    /// # Errors
    /// The first failure as a domain [`Error`] (see the module docs).
    fn check_fields(&self) -> Result<()> {
        self.validate().map_err(|e| to_error(&e, Self::FIELDS))
    }
}

/// The first failure of `errors`, fields taken in `order` (any field not in
/// it after those, by name), as a domain [`Error`]: the constraint's code and
/// `{field}: {message}`, the field in its wire (camelCase) spelling.
pub fn to_error(errors: &ValidationErrors, order: &[&str]) -> Error {
    let fields = errors.field_errors();
    let mut rest: Vec<&str> = fields
        .keys()
        .map(|k| k.as_ref())
        .filter(|k| !order.contains(k))
        .collect();
    rest.sort_unstable();
    let first = order
        .iter()
        .copied()
        .chain(rest)
        .find_map(|f| fields.get(f).and_then(|list| list.first()).map(|e| (f, e)));
    let Some((field, error)) = first else {
        return Error::invalid_request("invalid request");
    };
    let code = ErrorCode::from_str(&error.code).unwrap_or(ErrorCode::InvalidRequest);
    let message = error
        .message
        .as_deref()
        .unwrap_or_else(|| code.default_message());
    Error::with_message(code, format!("{}: {message}", wire_name(field)))
}

/// `s3_key` → `s3Key`.
fn wire_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A failed custom rule with a message (the code comes from the attribute).
pub(crate) fn failed(message: &'static str) -> ValidationError {
    ValidationError::new("custom").with_message(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Validate)]
    struct Sample {
        #[validate(
            custom(
                function = "crate::limits::check_name_syntax",
                code = "file/invalid-name"
            ),
            length(max = 3, code = "file/original-name-too-long")
        )]
        original_name: String,
        #[validate(range(min = 0, code = "file/size-negative"))]
        size: i64,
        #[validate(length(max = 1, code = "not/a-code"))]
        zeta: Vec<u8>,
    }

    impl FieldRules for Sample {
        const FIELDS: &'static [&'static str] = &["size", "original_name"];
    }

    fn sample(name: &str, size: i64) -> Sample {
        Sample {
            original_name: name.to_owned(),
            size,
            zeta: Vec::new(),
        }
    }

    #[test]
    fn first_failure_in_declared_order_with_its_code_and_field() {
        assert!(sample("abc", 0).check_fields().is_ok());
        let e = sample("abcd", 0).check_fields().err();
        assert_eq!(
            e.as_ref().map(Error::code),
            Some(ErrorCode::OriginalNameTooLong)
        );
        assert_eq!(
            e.as_ref().map(Error::message),
            Some("originalName: File name too long")
        );
        let e = sample("a/b", 0).check_fields().err();
        assert_eq!(e.as_ref().map(Error::code), Some(ErrorCode::InvalidName));
        // Both constraints of the field fail: the bound comes first, though
        // written second.
        let e = sample("a/bcd", 0).check_fields().err();
        assert_eq!(
            e.as_ref().map(Error::code),
            Some(ErrorCode::OriginalNameTooLong)
        );
        // Two fields fail: FIELDS decides.
        let e = sample("a/bcd", -1).check_fields().err();
        assert_eq!(e.map(|e| e.code()), Some(ErrorCode::SizeNegative));
    }

    #[test]
    fn unknown_codes_and_unlisted_fields_still_give_an_error() {
        let mut s = sample("abc", 0);
        s.zeta = vec![1, 2];
        let e = s.check_fields().err();
        assert_eq!(e.as_ref().map(Error::code), Some(ErrorCode::InvalidRequest));
        assert_eq!(
            e.as_ref().map(Error::message),
            Some("zeta: Invalid request")
        );
        assert_eq!(wire_name("shared_with"), "sharedWith");
        assert_eq!(wire_name("s3_key"), "s3Key");
    }
}

//! "Text is text" (docs/api.md §12): what the server accepts as a string, decided
//! here for every backend, so that no database ever sees a character it would
//! reject (PostgreSQL refuses U+0000 in `text` and `jsonb`) or match oddly
//! (SQLite's `LIKE` stops at a NUL).

use serde_json::Value;

use crate::error::{Error, Result};

/// Longest accepted user id (`sub` claim, `ownerId`, `sharedWith` entries).
pub const MAX_USER_ID_CHARS: usize = 255;

/// Whether `s` holds a character no string of the API may carry: U+0000.
pub fn has_nul(s: &str) -> bool {
    s.contains('\0')
}

/// Refuses a JSON document with a NUL in any string or object key, at any depth.
///
/// # Errors
/// `common/invalid-request`.
pub fn check_json(value: &Value) -> Result<()> {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if has_nul(s) => return Err(nul_in_json()),
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.keys().any(|k| has_nul(k)) {
                    return Err(nul_in_json());
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Fields whose strings are names, refused with their own code
/// (`file/invalid-name`, docs/api.md §2) by the name rules rather than here.
const NAME_FIELDS: &[&str] = &["filename", "originalName"];

/// [`check_json`] for a request body: every string at any depth, except the
/// top-level name fields, which the name rules judge.
///
/// # Errors
/// `common/invalid-request`.
pub fn check_body(body: &Value) -> Result<()> {
    match body {
        Value::Object(map) => {
            if map.keys().any(|k| has_nul(k)) {
                return Err(nul_in_json());
            }
            map.iter()
                .filter(|(k, _)| !NAME_FIELDS.contains(&k.as_str()))
                .try_for_each(|(_, v)| check_json(v))
        }
        other => check_json(other),
    }
}

fn nul_in_json() -> Error {
    Error::invalid_request("JSON strings must not contain U+0000")
}

/// Refuses a query parameter whose name or value holds a control character
/// (U+0000–U+001F, U+007F–U+009F).
///
/// # Errors
/// `common/invalid-request` naming the parameter.
pub fn check_query_param(name: &str, value: &str) -> Result<()> {
    if name.chars().any(char::is_control) || value.chars().any(char::is_control) {
        return Err(Error::invalid_request(format!(
            "query parameter `{}` must not contain control characters",
            name.escape_default()
        )));
    }
    Ok(())
}

/// Whether `id` is an acceptable user id: 1–255 characters, not only
/// whitespace or invisible characters, no control characters.
pub fn is_valid_user_id(id: &str) -> bool {
    let count = id.chars().count();
    (1..=MAX_USER_ID_CHARS).contains(&count)
        && !id.chars().any(char::is_control)
        && !id.chars().all(crate::limits::is_blank_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_strings_and_keys_at_any_depth() {
        assert!(check_json(&json!({"a": [1, "b", {"c": "d"}]})).is_ok());
        for bad in [
            json!("a\u{0}b"),
            json!({"description": "a\u{0}b"}),
            json!({"custom": {"k\u{0}": 1}}),
            json!([[[["\u{0}"]]]]),
        ] {
            assert!(check_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bodies_leave_names_to_the_name_rules() {
        assert!(check_body(&json!({"filename": "a\u{0}", "originalName": "b\u{0}"})).is_ok());
        assert!(check_body(&json!({"contentType": "a\u{0}"})).is_err());
        assert!(check_body(&json!({"metadata": {"filename": "a\u{0}"}})).is_err());
        assert!(check_body(&json!({"x\u{0}": 1})).is_err());
    }

    #[test]
    fn query_params() {
        assert!(check_query_param("search", "héllo wörld %_").is_ok());
        for bad in ["a\u{0}", "\u{1b}[31m", "\u{7f}", "\u{85}", "tab\t"] {
            assert!(check_query_param("search", bad).is_err(), "{bad:?}");
        }
        assert!(check_query_param("x\u{0}", "a").is_err());
    }

    #[test]
    fn user_ids() {
        for ok in ["a", "user-1", "ünïcødé", &"x".repeat(255)] {
            assert!(is_valid_user_id(ok), "{ok}");
        }
        for bad in [
            "",
            " ",
            "\u{a0}\u{200b}",
            "a\u{0}",
            "a\nb",
            &"x".repeat(256),
        ] {
            assert!(!is_valid_user_id(bad), "{bad:?}");
        }
    }
}

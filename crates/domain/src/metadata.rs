//! Metadata limits (docs/api.md §3) and the RFC 7396 JSON Merge Patch used by PATCH.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::model::FileMetadata;

const MAX_CATEGORY: usize = 64;
const MAX_TAGS: usize = 20;
const MAX_TAG: usize = 64;
const MAX_DESCRIPTION: usize = 1000;
const MAX_ALT: usize = 500;
const MAX_RELATED: usize = 128;
const MAX_CUSTOM_BYTES: usize = 8 * 1024;

fn check_len(field: &str, value: Option<&String>, max: usize) -> Result<()> {
    match value {
        Some(v) if v.chars().count() > max => Err(Error::invalid_request(format!(
            "metadata.{field} must be at most {max} characters"
        ))),
        _ => Ok(()),
    }
}

impl FileMetadata {
    /// Parses and validates metadata from JSON.
    ///
    /// # Errors
    /// `common/invalid-request` naming the offending field.
    pub fn from_json(value: Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::invalid_request("metadata must be a JSON object"));
        }
        crate::text::check_json(&value)?;
        let meta: FileMetadata = serde_json::from_value(value)
            .map_err(|e| Error::invalid_request(format!("metadata: {e}")))?;
        meta.validate()?;
        Ok(meta)
    }

    /// Checks the limits of docs/api.md §3.
    ///
    /// # Errors
    /// `common/invalid-request` naming the offending field.
    pub fn validate(&self) -> Result<()> {
        check_len("category", self.category.as_ref(), MAX_CATEGORY)?;
        check_len("description", self.description.as_ref(), MAX_DESCRIPTION)?;
        check_len("alt", self.alt.as_ref(), MAX_ALT)?;
        check_len(
            "relatedEntityId",
            self.related_entity_id.as_ref(),
            MAX_RELATED,
        )?;
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return Err(Error::invalid_request(format!(
                    "metadata.tags must have at most {MAX_TAGS} items"
                )));
            }
            for tag in tags {
                check_len("tags[]", Some(tag), MAX_TAG)?;
            }
        }
        if let Some(custom) = &self.custom {
            let size = serde_json::to_vec(custom)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if size > MAX_CUSTOM_BYTES {
                return Err(Error::invalid_request(format!(
                    "metadata.custom must be at most {MAX_CUSTOM_BYTES} bytes"
                )));
            }
        }
        Ok(())
    }

    /// Applies an RFC 7396 merge patch and validates the result.
    ///
    /// # Errors
    /// `common/invalid-request` when the patch is not an object or the result breaks a limit.
    pub fn merge_patch(&self, patch: &Value) -> Result<Self> {
        if !patch.is_object() {
            return Err(Error::invalid_request("metadata must be a JSON object"));
        }
        let mut current = serde_json::to_value(self).map_err(|e| Error::internal(e.to_string()))?;
        merge(&mut current, patch);
        Self::from_json(current)
    }
}

/// RFC 7396 §2 MergePatch(Target, Patch).
pub fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of RFC 7396 Appendix A.
    #[test]
    fn rfc7396_appendix_a() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn metadata_patch_keeps_removes_and_replaces() {
        let meta =
            FileMetadata::from_json(json!({"category":"c","tags":["a"],"custom":{"x":1,"y":2}}))
                .expect("valid");
        let patched = meta
            .merge_patch(&json!({"tags":null,"custom":{"y":null,"z":3},"alt":"hi"}))
            .expect("valid");
        assert_eq!(
            serde_json::to_value(&patched).ok(),
            Some(json!({"category":"c","alt":"hi","custom":{"x":1,"z":3}}))
        );
    }

    #[test]
    fn limits() {
        let bad = [
            json!({"category": "x".repeat(65)}),
            json!({"tags": vec!["t"; 21]}),
            json!({"tags": ["x".repeat(65)]}),
            json!({"description": "x".repeat(1001)}),
            json!({"alt": "x".repeat(501)}),
            json!({"relatedEntityId": "x".repeat(129)}),
            json!({"custom": {"k": "x".repeat(8200)}}),
            json!({"custom": [1]}),
            json!({"tags": "a"}),
            json!([1]),
        ];
        for b in bad {
            assert!(FileMetadata::from_json(b.clone()).is_err(), "{b}");
        }
        let ok = json!({"category": "x".repeat(64), "tags": vec!["t".repeat(64); 20], "description": "d".repeat(1000),
            "alt": "a".repeat(500), "relatedEntityId": "r".repeat(128), "unknown": 1});
        assert!(FileMetadata::from_json(ok).is_ok());
    }
}

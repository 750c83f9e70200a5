//! Object keys: how the server names objects, and how it recognises its own keys.
//!
//! Shape: `{project}/{env}/{owner-hash}/{uuid}/{sanitized-name}`. Every segment
//! uses only `A-Z a-z 0-9 . _ -` and is never `.` or `..`, so a key is always a
//! safe relative path and never carries the raw client name.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{Owner, Tenant};

/// Longest sanitized name segment, in bytes.
const MAX_NAME_SEGMENT: usize = 100;

/// A 16-hex-digit digest of the owner, so keys group by owner without exposing ids.
pub fn owner_hash(owner: &Owner) -> String {
    let mut h = Sha256::new();
    h.update(owner.kind.as_str().as_bytes());
    h.update([0]);
    h.update(owner.id.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// Turns a client file name into a safe key segment: disallowed characters
/// become `_`, runs collapse, leading dots go, length is bounded, and an empty
/// result becomes `file`.
pub fn sanitize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_NAME_SEGMENT));
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        if out.len() >= MAX_NAME_SEGMENT {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim_start_matches(['.', '_']).trim_end_matches('_');
    if trimmed.is_empty() || trimmed.chars().all(|c| c == '.') {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// A new, unique key for an upload by `owner` in `tenant`.
pub fn generate(tenant: &Tenant, owner: &Owner, filename: &str) -> String {
    generate_with(tenant, owner, filename, Uuid::now_v7())
}

/// The key for an upload by `owner` in `tenant` whose unique segment is
/// `unique` (what [`crate::ports::Ids::unique`] gave).
pub fn generate_with(tenant: &Tenant, owner: &Owner, filename: &str, unique: Uuid) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        tenant.project,
        tenant.env,
        owner_hash(owner),
        unique.simple(),
        sanitize_name(filename)
    )
}

/// Whether `key` is a safe relative object path: non-empty `/`-separated
/// segments of `A-Z a-z 0-9 . _ -`, none of them `.` or `..`, at most 1024 bytes.
/// Stores that map keys onto a file system rely on this.
pub fn is_safe_key(key: &str) -> bool {
    key.len() <= crate::limits::MAX_KEY_BYTES
        && !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// Prefix of the staging area: upload and part URLs are signed for
/// `_staging/{key}`, never for `{key}` itself. Registration moves the object
/// from there to `{key}`, a location no URL was ever signed to write (docs/api.md
/// §12), so a URL that outlives its upload can only write into staging. No
/// issued key starts with `_` (project ids start with `a-z` or `0-9`), so the
/// two areas never meet.
pub const STAGING_PREFIX: &str = "_staging/";

/// Where the bytes of the upload issued as `key` are received.
pub fn staging_key(key: &str) -> String {
    format!("{STAGING_PREFIX}{key}")
}

/// The issued key a staging key stands for; `None` if `staging` is not one.
pub fn unstaged(staging: &str) -> Option<&str> {
    staging.strip_prefix(STAGING_PREFIX)
}

/// The tenant named by the first two segments of an issued key.
pub fn tenant_of(key: &str) -> Option<Tenant> {
    let mut parts = key.split('/');
    let project = crate::model::ProjectId::new(parts.next()?).ok()?;
    let env = parts.next()?.parse().ok()?;
    let tenant = Tenant { project, env };
    belongs_to(key, &tenant).then_some(tenant)
}

/// Whether `key` has the shape of a key issued in `tenant`. (Whether it was
/// actually issued is the repository's to say.)
pub fn belongs_to(key: &str, tenant: &Tenant) -> bool {
    let mut parts = key.split('/');
    is_safe_key(key)
        && parts.next() == Some(tenant.project.as_str())
        && parts.next() == Some(tenant.env.as_str())
        && parts.count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Environment, OwnerType, ProjectId};

    fn tenant() -> Tenant {
        Tenant {
            project: ProjectId::new("demo").expect("valid"),
            env: Environment::Dev,
        }
    }

    #[test]
    fn sanitize() {
        let cases = [
            ("photo.jpg", "photo.jpg"),
            ("my photo (1).jpg", "my_photo_1_.jpg"),
            ("../../etc/passwd", "etc_passwd"),
            ("..", "file"),
            ("...", "file"),
            ("", "file"),
            ("\u{1F600}\u{1F600}", "file"),
            ("naïve.txt", "na_ve.txt"),
            (".hidden", "hidden"),
        ];
        for (input, want) in cases {
            assert_eq!(sanitize_name(input), want, "{input:?}");
            assert!(is_safe_key(&sanitize_name(input)));
        }
        assert!(sanitize_name(&"a".repeat(500)).len() <= MAX_NAME_SEGMENT);
    }

    #[test]
    fn generated_keys_are_safe_unique_and_owned() {
        let owner = Owner {
            kind: OwnerType::User,
            id: "alice".into(),
        };
        let a = generate(&tenant(), &owner, "../../x y.png");
        let b = generate(&tenant(), &owner, "../../x y.png");
        assert_ne!(a, b);
        assert!(is_safe_key(&a), "{a}");
        assert!(belongs_to(&a, &tenant()));
        assert!(a.starts_with(&format!("demo/dev/{}/", owner_hash(&owner))));
        let prod = Tenant {
            env: Environment::Prod,
            ..tenant()
        };
        assert!(!belongs_to(&a, &prod));
        assert_eq!(tenant_of(&a), Some(tenant()));
        let staged = staging_key(&a);
        assert!(is_safe_key(&staged));
        assert!(!belongs_to(&staged, &tenant()));
        assert_eq!(tenant_of(&staged), None);
        assert_eq!(unstaged(&staged), Some(a.as_str()));
        assert_eq!(unstaged(&a), None);
    }

    #[test]
    fn unsafe_keys() {
        for bad in [
            "", "/abs", "a//b", "a/../b", "a/./b", "a/b/", "a\\b", "a\0b", "a b", "%2e%2e",
        ] {
            assert!(!is_safe_key(bad), "{bad:?}");
        }
        assert!(!is_safe_key(&"a".repeat(1025)));
        assert!(!belongs_to("demo/dev/x/y", &tenant()));
        assert!(!belongs_to("demo/dev/x/y/z/w", &tenant()));
    }
}

//! The domain's vocabulary (docs/api.md §1 and §3): tenants, principals, files and
//! their metadata, and the small closed enums that appear on the wire.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};

/// Declares a closed enum whose values travel as fixed strings.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident => $text:literal ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vdoc])* $variant ),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(Error::invalid_request(format!(
                        concat!("invalid ", stringify!($name), " `{}`; expected one of: {}"),
                        other,
                        [$($text),*].join(", ")
                    ))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),*]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|e: Error| serde::de::Error::custom(e.message().to_owned()))
            }
        }
    };
}

wire_enum!(
    /// Deployment environment named by an API key.
    Environment { Dev => "dev", Staging => "staging", Prod => "prod" }
);

wire_enum!(
    /// Who may read a file besides its owner and admins (docs/api.md §5).
    Visibility { Public => "public", Private => "private", Protected => "protected", Shared => "shared" }
);

wire_enum!(
    /// The logical bucket label of a file.
    Bucket { Avatars => "avatars", Documents => "documents", Media => "media", Files => "files", Images => "images", Temp => "temp" }
);

wire_enum!(
    /// Upload category; selects the size and MIME limits of docs/api.md §6.
    Category {
        Images => "images", Documents => "documents", Media => "media", Attachments => "attachments",
        Exports => "exports", Backups => "backups", Temp => "temp",
    }
);

wire_enum!(
    /// Kind of principal that owns a file.
    OwnerType { User => "user", Service => "service" }
);

wire_enum!(
    /// Owner-type values accepted as a list filter (`session` and `public` match nothing today).
    OwnerTypeFilter { User => "user", Service => "service", Session => "session", Public => "public" }
);

/// A project identifier: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit.
/// Restricted so it can be part of an object key and a path segment safely.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(String);

impl ProjectId {
    /// Validates a project id.
    pub fn new(raw: &str) -> Result<Self> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Error::invalid_request(
                "project id must be 1-64 characters of a-z, 0-9, '_' or '-'",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The project/environment pair that scopes all data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    /// Project.
    pub project: ProjectId,
    /// Environment.
    pub env: Environment,
}

/// The owner of a file or upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    /// User or service.
    pub kind: OwnerType,
    /// User id (JWT `sub`) or API key id for the service principal.
    pub id: String,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's project and environment.
    pub tenant: Tenant,
    /// The user, or the project's service principal.
    pub identity: Owner,
    /// Admins bypass visibility rules inside their tenant.
    pub admin: bool,
}

impl Principal {
    /// Whether this caller is the given owner.
    pub fn is(&self, owner: &Owner) -> bool {
        self.identity == *owner
    }

    /// The user id, when the caller is a user.
    pub fn user_id(&self) -> Option<&str> {
        (self.identity.kind == OwnerType::User).then_some(self.identity.id.as_str())
    }
}

/// Milliseconds since the Unix epoch, UTC. On the wire: RFC 3339 with milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From epoch milliseconds.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Epoch milliseconds.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Epoch seconds (floor).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus a number of seconds.
    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add((secs as i64).saturating_mul(1000)))
    }

    /// From a chrono instant, truncated to milliseconds.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        Self(dt.timestamp_millis())
    }

    /// As a chrono instant.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// `2025-01-15T10:30:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// A file id (UUID v7, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FileId(pub Uuid);

impl FileId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Parses a path id; anything that is not a UUID is `file/not-found` (docs/api.md §2).
    pub fn parse(raw: &str) -> Result<Self> {
        Uuid::parse_str(raw)
            .map(Self)
            .map_err(|_| Error::new(ErrorCode::FileNotFound))
    }
}

impl std::str::FromStr for FileId {
    type Err = Error;

    /// As [`FileId::parse`]: anything that is not a UUID is `file/not-found`.
    fn from_str(raw: &str) -> Result<Self> {
        Self::parse(raw)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Descriptive metadata of a file (docs/api.md §3). Unknown keys are dropped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FileMetadata {
    /// Free category label (≤ 64 chars).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Up to 20 tags of ≤ 64 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// ≤ 1000 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ≤ 500 chars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<String>,
    /// ≤ 128 chars; hidden in the public projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_entity_id: Option<String>,
    /// Any JSON object ≤ 8 KiB serialized; hidden in the public projection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<std::collections::HashMap<String, serde_json::Value>>))]
    pub custom: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A registered file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// Id.
    pub id: FileId,
    /// Project/environment.
    pub tenant: Tenant,
    /// Object key in the store.
    pub s3_key: String,
    /// Name shown to users and used for downloads.
    pub original_name: String,
    /// Registered MIME type (lower case).
    pub mime_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Optional pixel width.
    pub width: Option<u32>,
    /// Optional pixel height.
    pub height: Option<u32>,
    /// Visibility.
    pub visibility: Visibility,
    /// Bucket label.
    pub bucket: Bucket,
    /// Owner.
    pub owner: Owner,
    /// Users who may read a `shared` file.
    pub shared_with: Vec<String>,
    /// Metadata.
    pub metadata: FileMetadata,
    /// SHA-256 of the bytes, base64, when known (docs/api.md §11): computed by
    /// the embedded store for every object, else as declared at issue (which
    /// S3 verified for a single PUT).
    pub checksum_sha256: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// What part of a file a reader may see (docs/api.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// Owner and admins: every field.
    Full,
    /// Everyone else who may read: no `s3Key`, `sharedWith`, `metadata.custom`, `metadata.relatedEntityId`.
    Public,
}

/// The file object as a caller sees it (docs/api.md §3).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FileView {
    /// Id.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = "uuid"))]
    pub id: FileId,
    /// Key; owner and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_key: Option<String>,
    /// Name.
    pub original_name: String,
    /// MIME type.
    pub mime_type: String,
    /// Size.
    pub size: u64,
    /// Width, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Visibility.
    pub visibility: Visibility,
    /// Bucket.
    pub bucket: Bucket,
    /// Owner id.
    pub owner_id: String,
    /// Owner type.
    pub owner_type: OwnerType,
    /// Share list; owner and admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_with: Option<Vec<String>>,
    /// Metadata (projected).
    pub metadata: FileMetadata,
    /// Public URL of a public file, when a public base URL is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// SHA-256 of the bytes (base64), whenever it is known (docs/api.md §11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
    /// Created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Updated.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

impl File {
    /// The view of this file in the given projection.
    pub fn view(&self, projection: Projection, public_base_url: Option<&str>) -> FileView {
        self.clone().into_view(projection, public_base_url)
    }

    /// [`Self::view`], moving the file's fields into the view instead of
    /// copying them (a page of a listing is converted this way).
    pub fn into_view(self, projection: Projection, public_base_url: Option<&str>) -> FileView {
        let full = projection == Projection::Full;
        let mut metadata = self.metadata;
        if !full {
            metadata.custom = None;
            metadata.related_entity_id = None;
        }
        let public_url = match (self.visibility, public_base_url) {
            (Visibility::Public, Some(base)) => {
                Some(format!("{}/{}", base.trim_end_matches('/'), self.s3_key))
            }
            _ => None,
        };
        FileView {
            id: self.id,
            s3_key: full.then_some(self.s3_key),
            original_name: self.original_name,
            mime_type: self.mime_type,
            size: self.size,
            width: self.width,
            height: self.height,
            visibility: self.visibility,
            bucket: self.bucket,
            owner_id: self.owner.id,
            owner_type: self.owner.kind,
            shared_with: full.then_some(self.shared_with),
            metadata,
            public_url,
            checksum_sha256: self.checksum_sha256,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Publishable keys run in browsers and need a user token; secret keys act as the
/// project's service principal with admin rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKeyKind {
    /// `pk_…`
    Publishable,
    /// `sk_…`
    Secret,
}

impl ApiKeyKind {
    /// `pk_` or `sk_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Publishable => "pk_",
            Self::Secret => "sk_",
        }
    }

    /// Storage/CLI string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Publishable => "publishable",
            Self::Secret => "secret",
        }
    }

    /// Parses `publishable` / `secret`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "publishable" => Some(Self::Publishable),
            "secret" => Some(Self::Secret),
            _ => None,
        }
    }
}

/// A stored API key. The key itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public id (UUID); the service principal's `ownerId`.
    pub id: String,
    /// Hex SHA-256 of the full key text.
    pub key_hash: String,
    /// Project/environment the key names.
    pub tenant: Tenant,
    /// Publishable or secret.
    pub kind: ApiKeyKind,
    /// Creation time.
    pub created_at: Timestamp,
    /// Optional expiry.
    pub expires_at: Option<Timestamp>,
    /// Revocation time, once revoked.
    pub revoked_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_with_millis_and_z() {
        assert_eq!(
            Timestamp::from_millis(1_736_937_000_000).to_rfc3339(),
            "2025-01-15T10:30:00.000Z"
        );
        assert_eq!(
            Timestamp::from_millis(1_736_937_000_123).to_rfc3339(),
            "2025-01-15T10:30:00.123Z"
        );
    }

    #[test]
    fn wire_enums_round_trip_and_reject_unknown() {
        for v in Visibility::ALL {
            assert_eq!(v.as_str().parse::<Visibility>().ok(), Some(*v));
        }
        let err = "secret".parse::<Visibility>().err().map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::InvalidRequest));
        assert!(serde_json::from_str::<Bucket>("\"IMAGES\"").is_err());
    }

    #[test]
    fn project_ids_are_path_safe() {
        for ok in ["demo", "a", "my-app_2"] {
            assert!(ProjectId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Demo", "../x", "a/b", "-x", "x y", &"a".repeat(65)] {
            assert!(ProjectId::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_uuid_ids_are_not_found() {
        assert_eq!(
            FileId::parse("nope").err().map(|e| e.code()),
            Some(ErrorCode::FileNotFound)
        );
    }
}

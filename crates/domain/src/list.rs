//! The list query (`GET /v1/files`): parameters and their validation, the
//! caller's visibility scope, sort keys and the opaque keyset cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{Bucket, File, Owner, OwnerTypeFilter, Principal, Tenant, Visibility};

/// Sort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortBy {
    /// `createdAt` (default).
    #[serde(rename = "createdAt")]
    CreatedAt,
    /// `updatedAt`.
    #[serde(rename = "updatedAt")]
    UpdatedAt,
    /// `originalName`, by code point.
    #[serde(rename = "originalName")]
    OriginalName,
    /// `size`.
    #[serde(rename = "size")]
    Size,
    /// `mimeType`.
    #[serde(rename = "mimeType")]
    MimeType,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortDirection {
    /// Ascending.
    #[serde(rename = "asc")]
    Asc,
    /// Descending (default).
    #[serde(rename = "desc")]
    Desc,
}

/// The `mimeType` filter: exact, or `type/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MimeFilter {
    /// Exact type (lower case).
    Exact(String),
    /// Every subtype of a type; holds `type/` (lower case).
    Prefix(String),
}

/// The value of the sort column of one row, as kept in a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    /// Integer columns (times in ms, size).
    Int(i64),
    /// Text columns.
    Text(String),
}

/// A keyset position: the last row's sort value and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Sort column the cursor was made for.
    #[serde(rename = "s")]
    pub sort_by: SortBy,
    /// Direction the cursor was made for.
    #[serde(rename = "d")]
    pub direction: SortDirection,
    /// Sort value of the last row.
    #[serde(rename = "v")]
    pub value: SortValue,
    /// Id of the last row.
    #[serde(rename = "i")]
    pub id: Uuid,
    /// The total counted for the first page of this listing; pages reached
    /// through the cursor report it instead of counting again.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl Cursor {
    /// The cursor after `file` in the given order.
    pub fn after(file: &File, sort_by: SortBy, direction: SortDirection) -> Self {
        let value = match sort_by {
            SortBy::CreatedAt => SortValue::Int(file.created_at.millis()),
            SortBy::UpdatedAt => SortValue::Int(file.updated_at.millis()),
            SortBy::Size => SortValue::Int(i64::try_from(file.size).unwrap_or(i64::MAX)),
            SortBy::OriginalName => SortValue::Text(file.original_name.clone()),
            SortBy::MimeType => SortValue::Text(file.mime_type.clone()),
        };
        Self {
            sort_by,
            direction,
            value,
            id: file.id.0,
            total: None,
        }
    }

    /// Opaque text form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Parses the opaque form.
    ///
    /// # Errors
    /// `common/invalid-request` for anything that is not a cursor of this server.
    pub fn decode(raw: &str) -> Result<Self> {
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| Error::invalid_request("invalid cursor"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| Error::invalid_request("invalid cursor"))?;
        let kind_ok = matches!(
            (cursor.sort_by, &cursor.value),
            (
                SortBy::CreatedAt | SortBy::UpdatedAt | SortBy::Size,
                SortValue::Int(_)
            ) | (SortBy::OriginalName | SortBy::MimeType, SortValue::Text(_))
        );
        if kind_ok {
            Ok(cursor)
        } else {
            Err(Error::invalid_request("invalid cursor"))
        }
    }
}

/// Validated list parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    /// Page number, from 1.
    pub page: u32,
    /// Page size, 1–100.
    pub limit: u32,
    /// Sort column.
    pub sort_by: SortBy,
    /// Direction.
    pub direction: SortDirection,
    /// Visibility filter.
    pub visibility: Option<Visibility>,
    /// Owner type filter.
    pub owner_type: Option<OwnerTypeFilter>,
    /// Owner id filter.
    pub owner_id: Option<String>,
    /// Bucket filter.
    pub bucket: Option<Bucket>,
    /// MIME filter.
    pub mime_type: Option<MimeFilter>,
    /// Case-insensitive substring of the name; matched literally.
    pub search: Option<String>,
    /// Keyset position (replaces `page`).
    pub cursor: Option<Cursor>,
}

impl Default for ListParams {
    fn default() -> Self {
        Self {
            page: 1,
            limit: 20,
            sort_by: SortBy::CreatedAt,
            direction: SortDirection::Desc,
            visibility: None,
            owner_type: None,
            owner_id: None,
            bucket: None,
            mime_type: None,
            search: None,
            cursor: None,
        }
    }
}

fn enum_param<T: serde::de::DeserializeOwned>(name: &str, value: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_owned())).map_err(|_| {
        Error::invalid_request(format!(
            "invalid value `{value}` for query parameter `{name}`"
        ))
    })
}

fn int_param(name: &str, value: &str, min: u32, max: u32) -> Result<u32> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            Error::invalid_request(format!(
                "query parameter `{name}` must be an integer from {min} to {max}"
            ))
        })
}

impl ListParams {
    /// Parses query pairs. Unknown parameters are ignored; the last of repeated ones wins.
    ///
    /// # Errors
    /// `common/invalid-request` naming the parameter.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut p = Self::default();
        let mut cursor = None;
        for (name, value) in pairs {
            match name {
                "page" => p.page = int_param(name, value, 1, u32::MAX / 128)?,
                "limit" => p.limit = int_param(name, value, 1, 100)?,
                "sortBy" => p.sort_by = enum_param(name, value)?,
                "sortDirection" => p.direction = enum_param(name, value)?,
                "visibility" => p.visibility = Some(value.parse().map_err(|_| bad(name, value))?),
                "ownerType" => p.owner_type = Some(value.parse().map_err(|_| bad(name, value))?),
                "bucket" => p.bucket = Some(value.parse().map_err(|_| bad(name, value))?),
                "ownerId" => p.owner_id = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "search" => p.search = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "mimeType" => p.mime_type = Some(parse_mime_filter(value)?),
                "cursor" => {
                    cursor = Some(value)
                        .filter(|v| !v.is_empty())
                        .map(Cursor::decode)
                        .transpose()?
                }
                _ => {}
            }
        }
        if let Some(c) = &cursor {
            if c.sort_by != p.sort_by || c.direction != p.direction {
                return Err(Error::invalid_request(
                    "cursor was made for another sortBy/sortDirection",
                ));
            }
        }
        p.cursor = cursor;
        Ok(p)
    }

    /// Rows to skip in offset mode.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

fn bad(name: &str, value: &str) -> Error {
    Error::invalid_request(format!(
        "invalid value `{value}` for query parameter `{name}`"
    ))
}

fn parse_mime_filter(value: &str) -> Result<MimeFilter> {
    if let Some(top) = value.strip_suffix("/*") {
        crate::limits::MimeType::parse(&format!("{top}/x"))
            .map(|m| MimeFilter::Prefix(format!("{}/", m.parts().0)))
            .map_err(|_| bad("mimeType", value))
    } else {
        crate::limits::MimeType::parse(value)
            .map(|m| MimeFilter::Exact(m.into_string()))
            .map_err(|_| bad("mimeType", value))
    }
}

/// Which rows a caller may see (API.md §5): admins everything in their tenant;
/// anyone else their own files, `public` and `protected` files, and `shared`
/// files naming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every file of the tenant.
    All,
    /// Own + public + protected + shared-with-user.
    VisibleTo {
        /// The caller as an owner.
        owner: Owner,
        /// The user id matched against `sharedWith`, when the caller is a user.
        user_id: Option<String>,
    },
}

impl Scope {
    /// The scope of a principal.
    pub fn of(principal: &Principal) -> Self {
        if principal.admin {
            Self::All
        } else {
            Self::VisibleTo {
                owner: principal.identity.clone(),
                user_id: principal.user_id().map(str::to_owned),
            }
        }
    }
}

/// A list request as a repository receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Tenant.
    pub tenant: Tenant,
    /// Caller's scope.
    pub scope: Scope,
    /// Parameters.
    pub params: ListParams,
}

/// A repository's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// Up to `limit` rows, in order.
    pub items: Vec<File>,
    /// Rows matching scope and filters (ignoring page and cursor).
    pub total: u64,
    /// Whether rows follow the last item.
    pub has_more: bool,
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern and lower-cases it
/// (names are matched against their lower-cased copy), wrapped in `%…%`.
pub fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The lower-cased form of a name that `search` is matched against.
pub fn search_key(name: &str) -> String {
    name.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn parse(q: &[(&str, &str)]) -> Result<ListParams> {
        ListParams::parse(q.iter().copied())
    }

    #[test]
    fn defaults() {
        assert_eq!(parse(&[]).ok(), Some(ListParams::default()));
    }

    #[test]
    fn valid_values() {
        let p = parse(&[
            ("page", "3"),
            ("limit", "100"),
            ("sortBy", "originalName"),
            ("sortDirection", "asc"),
            ("visibility", "shared"),
            ("ownerType", "session"),
            ("bucket", "images"),
            ("mimeType", "image/*"),
            ("search", "50%_off"),
            ("unknown", "x"),
        ])
        .expect("valid");
        assert_eq!(p.offset(), 200);
        assert_eq!(p.sort_by, SortBy::OriginalName);
        assert_eq!(p.mime_type, Some(MimeFilter::Prefix("image/".into())));
        assert_eq!(p.owner_type, Some(OwnerTypeFilter::Session));
        assert_eq!(
            parse(&[("mimeType", "Image/PNG")])
                .ok()
                .and_then(|p| p.mime_type),
            Some(MimeFilter::Exact("image/png".into()))
        );
    }

    #[test]
    fn invalid_values() {
        let bad: &[&[(&str, &str)]] = &[
            &[("page", "0")],
            &[("page", "-1")],
            &[("page", "1.5")],
            &[("page", "x")],
            &[("limit", "0")],
            &[("limit", "101")],
            &[("sortBy", "id")],
            &[("sortBy", "created_at")],
            &[("sortDirection", "up")],
            &[("visibility", "hidden")],
            &[("ownerType", "robot")],
            &[("bucket", "x")],
            &[("mimeType", "image")],
            &[("mimeType", "*/*")],
            &[("cursor", "not-a-cursor")],
        ];
        for q in bad {
            assert_eq!(
                parse(q).err().map(|e| e.code()),
                Some(ErrorCode::InvalidRequest),
                "{q:?}"
            );
        }
    }

    #[test]
    fn cursor_round_trip_and_binding() {
        let c = Cursor {
            sort_by: SortBy::Size,
            direction: SortDirection::Asc,
            value: SortValue::Int(5),
            id: Uuid::now_v7(),
            total: None,
        };
        assert_eq!(Cursor::decode(&c.encode()).ok(), Some(c.clone()));
        let enc = c.encode();
        assert!(
            parse(&[("cursor", &enc)]).is_err(),
            "cursor bound to its sort"
        );
        assert!(parse(&[
            ("cursor", &enc),
            ("sortBy", "size"),
            ("sortDirection", "asc")
        ])
        .is_ok());
        let wrong = Cursor {
            value: SortValue::Text("x".into()),
            ..c
        };
        assert!(Cursor::decode(&wrong.encode()).is_err());
    }

    #[test]
    fn like_escaping() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}

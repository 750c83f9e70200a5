//! The list query (`GET /v1/files`): parameters and their validation, the
//! caller's visibility scope, sort keys and the opaque keyset cursor.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;
use validator::Validate;

use crate::error::{Error, Result};
use crate::model::{Bucket, File, Owner, OwnerTypeFilter, Principal, Tenant, Visibility};
use crate::validation::FieldRules;

/// Sort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

impl SortBy {
    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::UpdatedAt => "updatedAt",
            Self::OriginalName => "originalName",
            Self::Size => "size",
            Self::MimeType => "mimeType",
        }
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SortDirection {
    /// Ascending.
    #[serde(rename = "asc")]
    Asc,
    /// Descending (default).
    #[serde(rename = "desc")]
    Desc,
}

impl SortDirection {
    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }
}

/// The `mimeType` filter: exact, or `type/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MimeFilter {
    /// Exact type (lower case).
    Exact(String),
    /// Every subtype of a type; holds `type/` (lower case).
    Prefix(String),
}

/// The value of the sort column of one row, as kept in a cursor. Ordered as
/// the databases order the column (integers; text by code point).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// No file was shared with the caller when the page before was read: a
    /// page through this cursor may check that this still holds (a cheap
    /// probe) instead of reading that part of the listing.
    #[serde(rename = "e", default, skip_serializing_if = "std::ops::Not::not")]
    pub shared_empty: bool,
    /// How many files were shared with the caller when the listing's first
    /// page was read: a hint for how to read the shared part (by the
    /// caller's shares when they are few, by the sort order when many).
    /// It never changes which rows a page holds.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<u64>,
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
            shared_empty: false,
            shared: None,
        }
    }

    fn from_payload(bytes: &[u8]) -> Result<Self> {
        let cursor: Cursor =
            serde_json::from_slice(bytes).map_err(|_| Error::invalid_request("invalid cursor"))?;
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

/// Bytes of a cursor's MAC kept in its text form (128 bits).
const CURSOR_MAC_BYTES: usize = 16;

/// Seals cursors (docs/api.md §12 "Cursors are sealed"): the text form is
/// `base64url(payload) "." base64url(mac)`, where the MAC (HMAC-SHA256,
/// truncated to 128 bits) covers the payload *and* the caller and the query
/// it was made for, so a cursor that was edited, comes from another caller or
/// is replayed with other filters or another order is refused. The key is
/// shared by every replica (the service keeps it in the database).
#[derive(Clone)]
pub struct CursorSeal {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CursorSeal").finish_non_exhaustive()
    }
}

impl CursorSeal {
    /// A seal with `key` (at least 32 bytes).
    ///
    /// # Errors
    /// `common/internal` for a shorter key.
    pub fn new(key: Vec<u8>) -> Result<Self> {
        if key.len() < 32 {
            return Err(Error::internal("cursor key must be at least 32 bytes"));
        }
        Ok(Self { key })
    }

    fn mac(&self, principal: &Principal, params: &ListParams, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        // Every bound field, length-prefixed so that no two bindings collide.
        let mime = match &params.mime_type {
            None => String::new(),
            Some(MimeFilter::Exact(t)) => format!("={t}"),
            Some(MimeFilter::Prefix(t)) => format!("^{t}"),
        };
        let fields: [&str; 12] = [
            principal.tenant.project.as_str(),
            principal.tenant.env.as_str(),
            principal.identity.kind.as_str(),
            &principal.identity.id,
            if principal.admin { "admin" } else { "" },
            params.sort_by.as_str(),
            params.direction.as_str(),
            params.visibility.map_or("", Visibility::as_str),
            params.owner_type.map_or("", OwnerTypeFilter::as_str),
            params.owner_id.as_deref().unwrap_or(""),
            params.bucket.map_or("", Bucket::as_str),
            params.search.as_deref().unwrap_or(""),
        ];
        for field in fields.iter().chain([&mime.as_str()]) {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(payload);
        mac
    }

    /// The text form of `cursor`, bound to `principal` and `params`.
    pub fn seal(&self, cursor: &Cursor, principal: &Principal, params: &ListParams) -> String {
        let payload = serde_json::to_vec(cursor).unwrap_or_default();
        let tag = self
            .mac(principal, params, &payload)
            .finalize()
            .into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..CURSOR_MAC_BYTES])
        )
    }

    /// Opens a cursor's text form, checking it was sealed for this caller
    /// and this query (filters, sort column and direction).
    ///
    /// # Errors
    /// `common/invalid-request` for a modified, foreign or mismatched cursor.
    pub fn open(&self, raw: &str, principal: &Principal, params: &ListParams) -> Result<Cursor> {
        let invalid = || Error::invalid_request("invalid cursor");
        let (payload, tag) = raw.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        if tag.len() != CURSOR_MAC_BYTES {
            return Err(invalid());
        }
        self.mac(principal, params, &payload)
            .verify_truncated_left(&tag)
            .map_err(|_| {
                Error::invalid_request(
                    "cursor was not issued for this caller and query (sortBy, sortDirection, filters)",
                )
            })?;
        let cursor = Cursor::from_payload(&payload)?;
        if cursor.sort_by != params.sort_by || cursor.direction != params.direction {
            return Err(Error::invalid_request(
                "cursor was made for another sortBy/sortDirection",
            ));
        }
        Ok(cursor)
    }
}

/// Largest page number accepted (pages beyond hold nothing; the bound keeps
/// offsets far from overflow).
pub const MAX_PAGE: u32 = u32::MAX / 128;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

/// Validated list parameters.
#[derive(Debug, Clone, PartialEq, Validate)]
pub struct ListParams {
    /// Page number, from 1.
    #[validate(range(
        min = 1,
        max = "MAX_PAGE",
        code = "common/invalid-request",
        message = "must be an integer from 1 to 33554431"
    ))]
    pub page: u32,
    /// Page size, 1–100.
    #[validate(range(
        min = 1,
        max = "MAX_LIMIT",
        code = "common/invalid-request",
        message = "must be an integer from 1 to 100"
    ))]
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
    /// Keyset position (replaces `page`), once opened by a [`CursorSeal`].
    pub cursor: Option<Cursor>,
    /// The cursor as the client sent it, before it is opened.
    pub cursor_token: Option<String>,
}

impl FieldRules for ListParams {
    const FIELDS: &'static [&'static str] = &["page", "limit"];
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
            cursor_token: None,
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

/// The integer syntax of a query parameter; its bounds are field rules.
fn int_param(name: &str, value: &str) -> Result<u32> {
    value
        .parse::<u32>()
        .map_err(|_| Error::invalid_request(format!("{name}: must be an integer")))
}

impl ListParams {
    /// Parses query pairs. Unknown parameters are ignored; the last of repeated ones wins.
    ///
    /// # Errors
    /// `common/invalid-request` naming the parameter.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut p = Self::default();
        for (name, value) in pairs {
            crate::text::check_query_param(name, value)?;
            match name {
                "page" => p.page = int_param(name, value)?,
                "limit" => p.limit = int_param(name, value)?,
                "sortBy" => p.sort_by = enum_param(name, value)?,
                "sortDirection" => p.direction = enum_param(name, value)?,
                "visibility" => p.visibility = Some(value.parse().map_err(|_| bad(name, value))?),
                "ownerType" => p.owner_type = Some(value.parse().map_err(|_| bad(name, value))?),
                "bucket" => p.bucket = Some(value.parse().map_err(|_| bad(name, value))?),
                "ownerId" => p.owner_id = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "search" => p.search = Some(value.to_owned()).filter(|v| !v.is_empty()),
                "mimeType" => p.mime_type = Some(parse_mime_filter(value)?),
                "cursor" => p.cursor_token = Some(value.to_owned()).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        p.check_fields()?;
        if p.cursor_token
            .as_deref()
            .is_some_and(|c| c.len() > MAX_CURSOR_CHARS)
        {
            return Err(Error::invalid_request("invalid cursor"));
        }
        Ok(p)
    }

    /// Rows to skip in offset mode.
    pub fn offset(&self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

/// Longest cursor text accepted (a cursor holds at most a 255-character name).
const MAX_CURSOR_CHARS: usize = 2048;

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

/// Which rows a caller may see (docs/api.md §5): admins everything in their tenant;
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
    /// The repository found no file shared with the caller (carried by the
    /// next cursor, [`Cursor::shared_empty`]); `false` when it did not look.
    pub shared_empty: bool,
    /// How many files are shared with the caller, when the repository
    /// counted them for this listing (carried by the next cursor,
    /// [`Cursor::shared`]).
    pub shared_count: Option<u64>,
}

impl ListPage {
    /// The cursor after this page's last item, as the service hands it out:
    /// it carries the page's total and what the page found shared with the
    /// caller. `None` for an empty page.
    pub fn cursor_after_last(&self, sort_by: SortBy, direction: SortDirection) -> Option<Cursor> {
        self.items.last().map(|last| Cursor {
            total: Some(self.total),
            shared_empty: self.shared_empty,
            shared: self.shared_count,
            ..Cursor::after(last, sort_by, direction)
        })
    }
}

/// Merges rows read per branch of a caller's listing (each in the listing's
/// order, disjoint) into one page: the listing's order with ties broken by
/// id, the offset applied (offset pages), at most `limit + 1` rows.
pub fn merge_branches(mut rows: Vec<File>, params: &ListParams) -> Vec<File> {
    rows.sort_by(|a, b| {
        let key = |f: &File| {
            (
                Cursor::after(f, params.sort_by, params.direction).value,
                f.id.0,
            )
        };
        let ord = key(a).cmp(&key(b));
        match params.direction {
            SortDirection::Asc => ord,
            SortDirection::Desc => ord.reverse(),
        }
    });
    rows.dedup_by_key(|f| f.id);
    let skip = if params.cursor.is_some() {
        0
    } else {
        usize::try_from(params.offset()).unwrap_or(usize::MAX)
    };
    rows.into_iter()
        .skip(skip)
        .take(params.limit as usize + 1)
        .collect()
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

    /// page and limit at limit - 1, limit and limit + 1 (and the lower bound).
    #[test]
    fn page_and_limit_boundaries() {
        let ok = |k: &str, v: u64| parse(&[(k, &v.to_string())]).is_ok();
        for (k, max) in [
            ("page", u64::from(MAX_PAGE)),
            ("limit", u64::from(MAX_LIMIT)),
        ] {
            assert!(!ok(k, 0), "{k} 0");
            assert!(ok(k, 1), "{k} 1");
            assert!(ok(k, max - 1), "{k} max - 1");
            assert!(ok(k, max), "{k} max");
            assert!(!ok(k, max + 1), "{k} max + 1");
        }
        assert_eq!(MAX_PAGE, 33_554_431, "the rule's message names it");
        let e = parse(&[("limit", "101")]).err();
        assert_eq!(
            e.map(|e| e.message().to_owned()).as_deref(),
            Some("limit: must be an integer from 1 to 100")
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
            &[("search", "a\u{0}b")],
            &[("ownerId", "a\u{0}")],
            &[("cursor", &"a".repeat(3000))],
        ];
        for q in bad {
            assert_eq!(
                parse(q).err().map(|e| e.code()),
                Some(ErrorCode::InvalidRequest),
                "{q:?}"
            );
        }
    }

    fn principal(user: &str, admin: bool) -> Principal {
        Principal {
            tenant: Tenant {
                project: crate::model::ProjectId::new("demo").expect("valid"),
                env: crate::model::Environment::Dev,
            },
            identity: Owner {
                kind: crate::model::OwnerType::User,
                id: user.into(),
            },
            admin,
        }
    }

    #[test]
    fn sealed_cursors_open_only_for_their_caller_and_query() {
        let seal = CursorSeal::new(vec![7; 32]).expect("key");
        let c = Cursor {
            sort_by: SortBy::Size,
            direction: SortDirection::Asc,
            value: SortValue::Int(5),
            id: Uuid::now_v7(),
            total: Some(3),
            shared_empty: true,
            shared: None,
        };
        let alice = principal("alice", false);
        let params = parse(&[
            ("sortBy", "size"),
            ("sortDirection", "asc"),
            ("search", "x"),
        ])
        .expect("valid");
        let text = seal.seal(&c, &alice, &params);
        assert_eq!(seal.open(&text, &alice, &params).ok(), Some(c.clone()));

        let refused = |text: &str, who: &Principal, params: &ListParams| {
            seal.open(text, who, params).err().map(|e| e.code())
        };
        let invalid = Some(ErrorCode::InvalidRequest);
        // Another caller, the same caller as admin, another query.
        assert_eq!(refused(&text, &principal("bob", false), &params), invalid);
        assert_eq!(refused(&text, &principal("alice", true), &params), invalid);
        for other in [
            parse(&[("sortBy", "size"), ("sortDirection", "asc")]),
            parse(&[
                ("sortBy", "size"),
                ("sortDirection", "desc"),
                ("search", "x"),
            ]),
            parse(&[
                ("sortBy", "size"),
                ("sortDirection", "asc"),
                ("search", "x"),
                ("bucket", "images"),
            ]),
            parse(&[
                ("sortBy", "size"),
                ("sortDirection", "asc"),
                ("search", "x"),
                ("mimeType", "image/*"),
            ]),
        ] {
            assert_eq!(refused(&text, &alice, &other.expect("valid")), invalid);
        }
        // An edited payload (the total, say) or tag, another key, garbage.
        let (payload, tag) = text.split_once('.').expect("two parts");
        let forged = Cursor {
            total: Some(123_456_789),
            ..c.clone()
        };
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(
            refused(&format!("{forged}.{tag}"), &alice, &params),
            invalid
        );
        assert_eq!(
            refused(
                &format!("{payload}.AAAAAAAAAAAAAAAAAAAAAA"),
                &alice,
                &params
            ),
            invalid
        );
        assert_eq!(refused(payload, &alice, &params), invalid);
        assert_eq!(refused("@@@.@@@", &alice, &params), invalid);
        let other_key = CursorSeal::new(vec![8; 32]).expect("key");
        assert_eq!(
            other_key
                .open(&text, &alice, &params)
                .err()
                .map(|e| e.code()),
            invalid
        );
        assert!(CursorSeal::new(vec![1; 31]).is_err());
        // A sealed payload whose value does not fit its column is refused too.
        let wrong = Cursor {
            value: SortValue::Text("x".into()),
            ..c
        };
        let wrong = seal.seal(&wrong, &alice, &params);
        assert_eq!(refused(&wrong, &alice, &params), invalid);
    }

    #[test]
    fn like_escaping() {
        assert_eq!(like_pattern("50%_Off\\"), "%50\\%\\_off\\\\%");
    }
}

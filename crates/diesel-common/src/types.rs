//! The two `files` columns whose SQL type differs between the backends,
//! as one Rust-side type each, so that `files` and its row are declared once
//! ([`crate::schema::files`], [`crate::rows::FileRow`]):
//!
//! | column | PostgreSQL | SQLite |
//! |---|---|---|
//! | `shared_with` | `text[]` (GIN-indexed over shared files) | JSON text (the index is the `file_shares` table) |
//! | `metadata` | `jsonb` | JSON text |

use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Array, SqlType, Text};
use diesel::sqlite::Sqlite;

/// SQL type of `files.shared_with`: `text[]` on PostgreSQL (OID 1009, whose
/// array type is itself), JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 1009, array_oid = 1009))]
#[diesel(sqlite_type(name = "Text"))]
pub struct ShareList;

/// SQL type of `files.metadata`: `jsonb` on PostgreSQL (OID 3802, array
/// 3807), JSON text on SQLite.
#[derive(Debug, Clone, Copy, Default, SqlType, diesel::query_builder::QueryId)]
#[diesel(postgres_type(oid = 3802, array_oid = 3807))]
#[diesel(sqlite_type(name = "Text"))]
pub struct MetadataJson;

/// The user ids a file is shared with, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = ShareList)]
pub struct Shares(pub Vec<String>);

/// A file's metadata as JSON text, as stored (parsed by the row conversion).
#[derive(Debug, Clone, Default, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = MetadataJson)]
pub struct Json(pub String);

impl ToSql<ShareList, Pg> for Shares {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Vec<String> as ToSql<Array<Text>, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<ShareList, Pg> for Shares {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <Vec<String> as FromSql<Array<Text>, Pg>>::from_sql(bytes).map(Shares)
    }
}

impl ToSql<ShareList, Sqlite> for Shares {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(serde_json::to_string(&self.0)?);
        Ok(IsNull::No)
    }
}

impl FromSql<ShareList, Sqlite> for Shares {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
        Ok(Shares(serde_json::from_str(&text)?))
    }
}

/// `jsonb`'s binary format: a version byte (1), then the JSON text.
const JSONB_VERSION: u8 = 1;

impl ToSql<MetadataJson, Pg> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        out.write_all(self.0.as_bytes())?;
        Ok(IsNull::No)
    }
}

impl FromSql<MetadataJson, Pg> for Json {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        match bytes.as_bytes().split_first() {
            Some((&JSONB_VERSION, text)) => Ok(Json(std::str::from_utf8(text)?.to_owned())),
            _ => Err("unsupported jsonb encoding version".into()),
        }
    }
}

impl ToSql<MetadataJson, Sqlite> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.as_str());
        Ok(IsNull::No)
    }
}

impl FromSql<MetadataJson, Sqlite> for Json {
    fn from_sql(
        value: <Sqlite as diesel::backend::Backend>::RawValue<'_>,
    ) -> deserialize::Result<Self> {
        <String as FromSql<Text, Sqlite>>::from_sql(value).map(Json)
    }
}

//! An online, consistent copy of the database (`VACUUM INTO`: one read
//! transaction, so writers carry on and the copy is of one instant), and the
//! object keys a copy refers to.

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryDsl, RunQueryDsl, SqliteConnection};
use stowage_domain::{Error, Result};

use stowage_diesel_common::schema::files;

fn open(path: &str) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(path)
        .map_err(|e| Error::internal(format!("open sqlite {path}: {e}")))?;
    conn.batch_execute("PRAGMA busy_timeout = 5000;")
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(conn)
}

/// Writes a consistent copy of the database at `db` to the new file `to`
/// while the database stays in use (blocking).
///
/// # Errors
/// `common/internal` when the copy cannot be made (`to` exists, disk full, …).
pub fn snapshot(db: &str, to: &std::path::Path) -> Result<()> {
    let target = to.display().to_string().replace('\'', "''");
    open(db)?
        .batch_execute(&format!("VACUUM INTO '{target}'"))
        .map_err(|e| Error::internal(format!("snapshot of {db}: {e}")))
}

/// `(object key, size)` of every registered file in the database at `db`
/// (blocking).
///
/// # Errors
/// `common/internal` when it cannot be read.
pub fn registered_objects(db: &str) -> Result<Vec<(String, i64)>> {
    files::table
        .select((files::s3_key, files::size))
        .load(&mut open(db)?)
        .map_err(|e| Error::internal(format!("read {db}: {e}")))
}

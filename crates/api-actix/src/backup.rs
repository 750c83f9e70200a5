//! `stowage backup --to DIR` and `stowage restore --from DIR` for the embedded
//! mode (SQLite + disk): a consistent snapshot of the database taken while the
//! server runs (`VACUUM INTO`), the generated secrets (so tokens and signed
//! URLs stay valid), and the objects; restored onto a fresh data folder.
//!
//! Order and its one window: the database is copied first, then the objects
//! of every file it holds are copied and checked (size). A file deleted after
//! the snapshot keeps its object until the lifecycle worker removes it
//! (`STOWAGE_LIFECYCLE_INTERVAL_SECS`); an object already gone by then is
//! reported, and the backup fails rather than restore a file without bytes.
//! A backup is marked complete last; restore refuses an unmarked one.

use std::path::{Path, PathBuf};

use crate::config::{Config, Database, Storage};

const SECRETS: [&str; 2] = ["jwt_secret", "gateway_secret"];
/// Written last: a backup folder without it (a backup that crashed or
/// failed half-way) is never restored.
const COMPLETE: &str = "BACKUP-COMPLETE";

fn embedded(config: &Config) -> Result<PathBuf, String> {
    match (&config.database, &config.storage) {
        (Database::Sqlite(db), Storage::Disk) => Ok(PathBuf::from(db)),
        _ => Err(
            "backup and restore are for the embedded mode (SQLite + local disk); with \
                  PostgreSQL + S3 use pg_dump and bucket versioning (see README)"
                .into(),
        ),
    }
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// Copies every regular file under `from` to the same place under `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<u64, String> {
    let mut copied = 0;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0);
    };
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let kind = entry.file_type().map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copied += copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// `objects/objects` and `objects/multipart` of a data folder (never `tmp`).
fn object_folders(data: &Path) -> [PathBuf; 2] {
    [
        data.join("objects").join("objects"),
        data.join("objects").join("multipart"),
    ]
}

/// Takes a backup into `to` (created; must be empty). Returns a summary.
///
/// # Errors
/// A message saying what failed; objects missing for files of the snapshot
/// are listed.
pub fn backup(config: &Config, to: &Path) -> Result<String, String> {
    let db = embedded(config)?;
    std::fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    if !is_empty_dir(to) {
        return Err(format!("{} is not empty", to.display()));
    }
    let snapshot = to.join("stowage.db");
    stowage_adapters_sqlite::snapshot(&db.display().to_string(), &snapshot)
        .map_err(|e| format!("{e:#}"))?;
    for name in SECRETS {
        let source = config.data_dir.join(name);
        if source.is_file() {
            std::fs::copy(&source, to.join(name)).map_err(|e| format!("copy {name}: {e}"))?;
        }
    }
    let mut objects = 0;
    for (source, target) in object_folders(&config.data_dir)
        .into_iter()
        .zip(object_folders(to))
    {
        objects += copy_tree(&source, &target)?;
    }
    let files = stowage_adapters_sqlite::registered_objects(&snapshot.display().to_string())
        .map_err(|e| format!("{e:#}"))?;
    let root = to.join("objects").join("objects");
    let mut missing = Vec::new();
    for (key, size) in &files {
        let path = stowage_adapters_fs::relative_path(key)
            .map(|p| root.join(p))
            .map_err(|e| format!("{e:#}"))?;
        let found = std::fs::metadata(&path).map(|m| m.len()).ok();
        if found != u64::try_from(*size).ok() {
            missing.push(key.clone());
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "{} file(s) of the snapshot have no object (deleted while the backup ran?): {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    let summary = format!(
        "backup in {}: database snapshot with {} file(s), {objects} object file(s), secrets",
        to.display(),
        files.len()
    );
    std::fs::write(to.join(COMPLETE), format!("{summary}\n"))
        .map_err(|e| format!("mark the backup complete: {e}"))?;
    Ok(summary)
}

/// Restores the backup in `from` onto this configuration's data folder, which
/// must hold no database and no objects yet. Returns a summary.
///
/// # Errors
/// A message saying what failed.
pub fn restore(config: &Config, from: &Path) -> Result<String, String> {
    let db = embedded(config)?;
    let snapshot = from.join("stowage.db");
    if !snapshot.is_file() || !from.join(COMPLETE).is_file() {
        return Err(format!(
            "{} is not a complete backup (no {COMPLETE}: it failed or was interrupted)",
            from.display()
        ));
    }
    if db.exists()
        || !object_folders(&config.data_dir)
            .iter()
            .all(|d| is_empty_dir(d))
    {
        return Err(format!(
            "{} already holds a database or objects: restore onto a fresh data folder",
            config.data_dir.display()
        ));
    }
    let mut objects = 0;
    for (source, target) in object_folders(from)
        .into_iter()
        .zip(object_folders(&config.data_dir))
    {
        objects += copy_tree(&source, &target)?;
    }
    for name in SECRETS {
        let source = from.join(name);
        if source.is_file() {
            std::fs::copy(&source, config.data_dir.join(name))
                .map_err(|e| format!("restore {name}: {e}"))?;
        }
    }
    // The database last: a folder with a database is a restored one.
    if let Some(parent) = db.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::copy(&snapshot, &db).map_err(|e| format!("restore the database: {e}"))?;
    Ok(format!(
        "restored {} into {}: database, {objects} object file(s), secrets",
        from.display(),
        config.data_dir.display()
    ))
}

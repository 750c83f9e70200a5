//! Object keys to paths under `objects/`: every key checked, no escape
//! through `..`, absolute paths or symlinks; staging keys in one flat folder.

use super::*;

pub(crate) fn is_upload_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Path of the object `key` under `objects`, refusing any segment that is a
/// symlink, with the object's own metadata when it exists (blocking).
pub(crate) fn resolve(objects: &Path, key: &str) -> Result<(PathBuf, Option<std::fs::Metadata>)> {
    check_key(key)?;
    let relative = relative_path(key)?;
    let mut path = objects.to_path_buf();
    let mut meta = None;
    for segment in &relative {
        path.push(segment);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::with_message(
                    ErrorCode::InvalidPath,
                    "Invalid object key",
                ))
            }
            Ok(m) => meta = Some(m),
            Err(e) if e.kind() == IoKind::NotFound => {
                meta = None;
                break;
            }
            Err(e) => return Err(io_error("stat object", e)),
        }
    }
    Ok((objects.join(relative), meta))
}

/// Where the object `key` lives under the store's `objects/` folder: the key
/// as a path, except in the staging area, which is one flat folder
/// (`_staging/a+b+c` for `_staging/a/b/c`; `+` is never in a key), so that
/// receiving and moving an upload creates and removes no folders.
///
/// # Errors
/// `file/invalid-path` for a staging name longer than a file name may be.
pub fn relative_path(key: &str) -> Result<PathBuf> {
    match unstaged(key) {
        Some(rest) => {
            let flat = rest.replace('/', "+");
            if flat.len() > 255 {
                return Err(Error::with_message(
                    ErrorCode::InvalidPath,
                    "Invalid object key",
                ));
            }
            Ok(Path::new("_staging").join(flat))
        }
        None => Ok(PathBuf::from(key)),
    }
}

/// Moves the object `from` to `to` under `objects` with one `rename(2)` (a
/// reader of `to` sees the old object or the new one, never a part), made
/// durable before it returns (blocking).
pub(crate) fn promote(objects: &Path, from: &str, to: &str) -> Result<()> {
    let (source, meta) = resolve(objects, from)?;
    if !meta.is_some_and(|m| m.is_file()) {
        return Err(Error::new(ErrorCode::UploadNotFound));
    }
    let (dest, _) = resolve(objects, to)?;
    let parent = dest
        .parent()
        .ok_or_else(|| Error::internal("object path has no parent"))?;
    std::fs::create_dir_all(parent).map_err(|e| io_error("create object folder", e))?;
    match std::fs::rename(&source, &dest) {
        Ok(()) => {}
        Err(e) if e.kind() == IoKind::NotFound => {
            return Err(Error::new(ErrorCode::UploadNotFound))
        }
        Err(e) => return Err(io_error("move object", e)),
    }
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    // The source is in the flat staging folder, which stays.
    Ok(())
}

/// Refuses a key that could leave `objects/` (see [`is_safe_key`]); the
/// symlink check needs the filesystem and happens where bytes move.
pub(crate) fn check_key(key: &str) -> Result<()> {
    if is_safe_key(key) {
        Ok(())
    } else {
        Err(Error::with_message(
            ErrorCode::InvalidPath,
            "Invalid object key",
        ))
    }
}

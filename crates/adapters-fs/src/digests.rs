//! The SHA-256 of each object, computed while its bytes stream in and kept
//! in `digests/<path>` beside `objects/<path>` (docs/api.md §11).
//!
//! A digest file names the object it describes by identity — inode, length
//! and modification time, which a `rename` keeps — and is written before
//! the object is renamed into place. So a digest that a crash left behind,
//! or one of a replaced object, never describes the object now at the key:
//! [`read`] then answers `None` (the digest is unknown), never a wrong one.

use std::os::unix::fs::MetadataExt;

use super::*;

/// Base64 of a finished SHA-256.
pub(crate) fn base64_of(digest: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// What identifies one file across renames.
fn identity(meta: &std::fs::Metadata) -> String {
    format!(
        "{} {} {}.{}",
        meta.ino(),
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

impl FsStore {
    fn digest_path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.digests.join(relative_path(key)?))
    }

    /// Records `sha256` for the finished file `object` that is about to be
    /// renamed to `key` (call before the rename); returns the file's
    /// identity for [`FsStore::settle_digest`].
    pub(crate) async fn record_digest(
        &self,
        key: &str,
        object: &Path,
        sha256: &str,
    ) -> Result<String> {
        let meta = fs::metadata(object)
            .await
            .map_err(|e| io_error("stat object", e))?;
        let who = identity(&meta);
        self.write_digest(key, &who, sha256).await?;
        Ok(who)
    }

    async fn write_digest(&self, key: &str, who: &str, sha256: &str) -> Result<()> {
        let path = self.digest_path(key)?;
        let tmp = self
            .tmp
            .join(format!("{}.sha256", uuid::Uuid::new_v4().simple()));
        let written = async {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).await?;
            }
            fs::write(&tmp, format!("{who} {sha256}\n")).await?;
            fs::rename(&tmp, &path).await
        }
        .await;
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp).await;
            return Err(io_error("record digest", e));
        }
        Ok(())
    }

    /// After the rename of the file `who` to `key`: when a racing PUT of the
    /// same key recorded its digest after ours but lost the rename to ours,
    /// the object is ours and the digest file names theirs — write ours
    /// again. Always under our own identity, so if theirs lands meanwhile the
    /// digest is unknown, never wrong. Best effort.
    pub(crate) async fn settle_digest(&self, key: &str, dest: &Path, who: &str, sha256: &str) {
        let Ok(meta) = fs::metadata(dest).await else {
            return;
        };
        if identity(&meta) == who && self.read_digest(key, &meta).await.is_none() {
            let _ = self.write_digest(key, who, sha256).await;
        }
    }

    /// The recorded SHA-256 of the object at `key` whose metadata is `meta`;
    /// `None` when none was recorded for exactly that file.
    pub(crate) async fn read_digest(&self, key: &str, meta: &std::fs::Metadata) -> Option<String> {
        let text = fs::read_to_string(self.digest_path(key).ok()?).await.ok()?;
        let (who, sha256) = text.trim_end().rsplit_once(' ')?;
        (who == identity(meta)).then(|| sha256.to_owned())
    }

    /// Moves the digest of `from` to `to` (after the object moved); a digest
    /// that fails to move is only unknown at `to`.
    pub(crate) async fn move_digest(&self, from: &str, to: &str) {
        let (Ok(source), Ok(dest)) = (self.digest_path(from), self.digest_path(to)) else {
            return;
        };
        if let Some(parent) = dest.parent() {
            let _ = fs::create_dir_all(parent).await;
        }
        if fs::rename(&source, &dest).await.is_err() {
            let _ = fs::remove_file(&dest).await;
        }
    }

    /// Removes the digest of `key` (after the object was removed).
    pub(crate) async fn remove_digest(&self, key: &str) {
        if let Ok(path) = self.digest_path(key) {
            if fs::remove_file(&path).await.is_ok() && unstaged(key).is_none() {
                if let Some(parent) = path.parent() {
                    let _ = fs::remove_dir(parent).await;
                }
            }
        }
    }
}

//! `stowage transfer`: everything of the configured metadata and object
//! stores (the source) into another pair (the target) — from the embedded
//! default to PostgreSQL + S3, back, or between two PostgreSQL + S3 setups.
//!
//! Each table is read in key order in batches; for each batch the objects
//! its rows name are copied first (registered files, and the staged bytes of
//! uploads not registered yet), each checked (size, and the MD5 the target
//! store computed against the source's where it is known), then the rows are
//! written unless present. So the target never has a row without its object,
//! an interrupted transfer run again copies nothing twice and misses nothing,
//! and the source is only read. The maintained counts are recomputed on the
//! target at the end. `--verify` compares the two sides and prints every
//! difference.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};
use stowage_adapters_fs::{FsConfig, FsStore};
use stowage_adapters_s3::{ByteBody, S3Store, PUT_MAX};
use stowage_diesel_common::transfer::{compare, Batch, Difference, Table, TableCopy};
use stowage_domain::keys::staging_key;
use stowage_domain::ports::{ObjectInfo, ObjectStore};
use stowage_domain::upload::UploadState;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::config::{Config, Database, Storage};

/// Where a transfer goes.
#[derive(Debug)]
pub struct Target {
    /// Its metadata store.
    pub database: Database,
    /// Its object store.
    pub storage: Storage,
    /// Its data folder (objects of the disk store, generated secrets); only
    /// a disk target needs one.
    pub data_dir: Option<PathBuf>,
}

/// How a transfer runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Rows per batch.
    pub batch: u32,
    /// Compare the two sides instead of copying.
    pub verify: bool,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
    /// Objects larger than this go to S3 in parts of this size.
    pub part_size: u64,
    /// Objects copied at once.
    pub concurrency: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch: 500,
            verify: false,
            progress: true,
            part_size: 64 << 20,
            concurrency: 4,
        }
    }
}

/// The secrets of the embedded mode's data folder a transfer carries to a
/// disk target (tokens and signed URLs of the dev setup stay valid).
const DATA_SECRETS: [&str; 2] = ["jwt_secret", "gateway_secret"];

/// An object store as a transfer reads and writes it.
enum Objects {
    Disk(FsStore),
    S3(S3Store),
}

fn err(e: stowage_domain::Error) -> String {
    format!("{e:#}")
}

impl Objects {
    async fn open(storage: &Storage, data_dir: &Path, secret: &[u8]) -> Result<Self, String> {
        match storage {
            Storage::Disk => Ok(Objects::Disk(
                FsStore::open(FsConfig {
                    root: data_dir.join("objects"),
                    // Never signs a URL here.
                    public_url: "http://localhost".into(),
                    secret: secret.to_vec(),
                    max_object_size: u64::MAX,
                })
                .await
                .map_err(err)?,
            )),
            Storage::S3 {
                config,
                init_bucket,
            } => {
                let store = S3Store::new(config).map_err(err)?;
                if *init_bucket {
                    store.init_bucket(&["*".to_owned()]).await.map_err(err)?;
                }
                Ok(Objects::S3(store))
            }
        }
    }

    fn store(&self) -> &dyn ObjectStore {
        match self {
            Objects::Disk(s) => s,
            Objects::S3(s) => s,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, String> {
        self.store().head(key).await.map_err(err)
    }

    /// `len` bytes of `key` from `offset`, or all of it.
    async fn read(&self, key: &str, range: Option<(u64, u64)>) -> Result<ByteBody, String> {
        let missing = || format!("{key}: the object vanished from the source while being copied");
        match self {
            Objects::Disk(fs) => {
                let (mut file, _) = fs
                    .open_object(key)
                    .await
                    .map_err(err)?
                    .ok_or_else(missing)?;
                let body: ByteBody = match range {
                    None => Box::pin(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)),
                    Some((offset, len)) => {
                        file.seek(std::io::SeekFrom::Start(offset))
                            .await
                            .map_err(|e| format!("{key}: {e}"))?;
                        Box::pin(tokio_util::io::ReaderStream::with_capacity(
                            file.take(len),
                            256 << 10,
                        ))
                    }
                };
                Ok(body)
            }
            Objects::S3(s3) => s3
                .read_object(key, range)
                .await
                .map_err(err)?
                .ok_or_else(missing),
        }
    }
}

/// The MD5 an ETag states, when it is one (not a multipart ETag).
fn etag_md5(etag: Option<&str>) -> Option<[u8; 16]> {
    let hex = etag?.trim_matches('"');
    let mut md5 = [0; 16];
    hex::decode_to_slice(hex, &mut md5).ok()?;
    Some(md5)
}

/// Whether the target already holds the source's object.
fn same_object(source: &ObjectInfo, target: Option<&ObjectInfo>) -> bool {
    target.is_some_and(|t| {
        t.size == source.size
            && match (
                etag_md5(source.etag.as_deref()),
                etag_md5(t.etag.as_deref()),
            ) {
                (Some(a), Some(b)) => a == b,
                // A multipart ETag on one side: the size is what both state.
                _ => true,
            }
    })
}

/// Wraps `body` so that the MD5 and length of what passes through are
/// recorded in `seen`.
fn hashed(body: ByteBody, seen: Arc<Mutex<(Md5, u64)>>) -> ByteBody {
    Box::pin(body.inspect_ok(move |chunk| {
        if let Ok(mut s) = seen.lock() {
            s.0.update(chunk);
            s.1 += chunk.len() as u64;
        }
    }))
}

/// What a transfer did.
#[derive(Debug, Default)]
struct Tally {
    rows_read: AtomicU64,
    rows_new: AtomicU64,
    objects_copied: AtomicU64,
    objects_present: AtomicU64,
    bytes: AtomicU64,
    multipart_in_progress: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    fn problem(&self, p: String) {
        if let Ok(mut list) = self.problems.lock() {
            list.push(p);
        }
    }
}

/// One side: tables and objects.
struct Side {
    tables: Arc<dyn TableCopy>,
    objects: Objects,
}

/// Runs a transfer (or, with `options.verify`, a comparison) from the
/// configured stores to `target`; a summary.
///
/// # Errors
/// A message when a store cannot be opened, or naming every object that
/// could not be copied and every difference found.
pub async fn run(config: &Config, target: &Target, options: &Options) -> Result<String, String> {
    let data_dir = match (&target.storage, &target.data_dir) {
        (_, Some(dir)) => dir.clone(),
        (Storage::Disk, None) => return Err("a disk target needs --to-data-dir".into()),
        // Unused by an S3 target; a folder of its own all the same.
        (Storage::S3 { .. }, None) => std::env::temp_dir().join("stowage-transfer"),
    };
    if config.database == target.database
        || (matches!(
            (&config.storage, &target.storage),
            (Storage::Disk, Storage::Disk)
        ) && same_dir(&config.data_dir, &data_dir))
    {
        return Err("the target is the source (same database or same object folder)".into());
    }
    let source = Side {
        tables: crate::compose::table_copy(&config.database, false).await?,
        objects: Objects::open(
            &config.storage,
            &config.data_dir,
            config.gateway_secret.expose(),
        )
        .await?,
    };
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("create {}: {e}", data_dir.display()))?;
    let target_side = Side {
        tables: crate::compose::table_copy(&target.database, !options.verify).await?,
        objects: Objects::open(&target.storage, &data_dir, &rand::random::<[u8; 32]>()).await?,
    };
    if options.verify {
        return verify(&source, &target_side, options).await;
    }
    let tally = Tally::default();
    for table in Table::ALL {
        copy_table(&source, &target_side, table, options, &tally).await?;
    }
    target_side.tables.recount().await.map_err(err)?;
    let mut notes = carry_data_secrets(config, target, &data_dir)?;
    let problems = tally.problems.lock().map(|p| p.clone()).unwrap_or_default();
    let summary = format!(
        "transfer done: {} row(s) read, {} new on the target; {} object(s) copied ({} bytes), \
         {} already there; counts recomputed",
        tally.rows_read.load(Ordering::Relaxed),
        tally.rows_new.load(Ordering::Relaxed),
        tally.objects_copied.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed),
        tally.objects_present.load(Ordering::Relaxed),
    );
    let in_progress = tally.multipart_in_progress.load(Ordering::Relaxed);
    if in_progress > 0 {
        notes.push(format!(
            "{in_progress} multipart upload(s) were in progress: their parts stay in the source \
             store, so their clients must start them again"
        ));
    }
    if !problems.is_empty() {
        return Err(format!(
            "{summary}\n{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ));
    }
    notes.insert(0, summary);
    Ok(notes.join("\n"))
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A bar over the `total` rows of `table` (hidden without `options.progress`).
fn bar(options: &Options, table: Table, total: u64) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>18} [{bar:30}] {pos}/{len} rows  {msg} ({elapsed}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(table.name());
    bar
}

async fn copy_table(
    source: &Side,
    target: &Side,
    table: Table,
    options: &Options,
    tally: &Tally,
) -> Result<(), String> {
    let total = source.tables.count_rows(table).await.map_err(err)?;
    let progress = bar(options, table, total);
    let mut after = String::new();
    loop {
        let batch = source
            .tables
            .read_batch(table, &after, options.batch)
            .await
            .map_err(|e| format!("reading the source's {}: {}", table.name(), err(e)))?;
        let Some(last) = batch.last_key() else {
            break;
        };
        // Objects before rows: the target never has a row without its object.
        let objects = objects_of(&batch, tally);
        futures_util::stream::iter(objects)
            .for_each_concurrent(options.concurrency, |(key, content_type)| async move {
                if let Err(p) =
                    copy_object(source, target, &key, &content_type, options, tally).await
                {
                    tally.problem(p);
                }
            })
            .await;
        let new = target
            .tables
            .write_batch(&batch)
            .await
            .map_err(|e| format!("writing the target's {}: {}", table.name(), err(e)))?;
        tally
            .rows_read
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        tally.rows_new.fetch_add(new, Ordering::Relaxed);
        progress.inc(batch.len() as u64);
        progress.set_message(format!(
            "{} objects copied, {} MiB",
            tally.objects_copied.load(Ordering::Relaxed),
            tally.bytes.load(Ordering::Relaxed) >> 20
        ));
        after = last;
    }
    progress.finish();
    Ok(())
}

/// The objects the rows of a batch name: `(key, content type)`. Uploads not
/// registered yet name their staged bytes (which may not exist yet); a
/// multipart upload still taking parts names none (its parts live in the
/// source store's own multipart state).
fn objects_of(batch: &Batch, tally: &Tally) -> Vec<(String, String)> {
    match batch {
        Batch::Files(rows) => rows
            .iter()
            .map(|r| (r.s3_key.clone(), r.mime_type.clone()))
            .collect(),
        Batch::Uploads(rows) => rows
            .iter()
            .filter(|r| {
                let taking_parts =
                    r.multipart_id.is_some() && r.state == UploadState::Pending.as_str();
                if taking_parts {
                    tally.multipart_in_progress.fetch_add(1, Ordering::Relaxed);
                }
                r.state != UploadState::Registered.as_str() && !taking_parts
            })
            .map(|r| (staging_key(&r.s3_key), r.content_type.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Copies one object unless the target has it; a problem as text.
async fn copy_object(
    source: &Side,
    target: &Side,
    key: &str,
    content_type: &str,
    options: &Options,
    tally: &Tally,
) -> Result<(), String> {
    let Some(info) = source.objects.head(key).await? else {
        // A staged upload whose bytes never came is not a problem; a file
        // without its object is.
        return if stowage_domain::keys::unstaged(key).is_some() {
            Ok(())
        } else {
            Err(format!("{key}: the source has no object for this file"))
        };
    };
    if same_object(&info, target.objects.head(key).await?.as_ref()) {
        tally.objects_present.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let expected = etag_md5(info.etag.as_deref());
    let seen = Arc::new(Mutex::new((Md5::new(), 0u64)));
    let stored = match &target.objects {
        Objects::Disk(fs) => {
            let body = hashed(source.objects.read(key, None).await?, seen.clone());
            let written = fs
                .put_object(key, Some(info.size), None, info.size, body)
                .await
                .map_err(|e| format!("{key}: {}", err(e)))?;
            etag_md5(Some(&written.etag))
        }
        Objects::S3(s3) if info.size <= options.part_size.min(PUT_MAX) => {
            let body = hashed(source.objects.read(key, None).await?, seen.clone());
            let etag = s3
                .write_object(key, content_type, info.size, expected, body)
                .await
                .map_err(|e| format!("{key}: {}", err(e)))?;
            etag_md5(Some(&etag))
        }
        Objects::S3(s3) => {
            s3.write_object_in_parts(
                key,
                content_type,
                info.size,
                options.part_size,
                |offset, len| async move {
                    source
                        .objects
                        .read(key, Some((offset, len)))
                        .await
                        .map_err(stowage_domain::Error::unavailable)
                },
            )
            .await
            .map_err(|e| format!("{key}: {}", err(e)))?;
            None
        }
    };
    let (md5, length) = match seen.lock() {
        Ok(s) => (<[u8; 16]>::from(s.0.clone().finalize()), s.1),
        Err(_) => return Err(format!("{key}: hashing failed")),
    };
    let copied = target.objects.head(key).await?;
    let verdict = if copied.as_ref().map(|c| c.size) != Some(info.size) {
        Some("its size on the target differs")
    } else if length > 0 && length != info.size {
        Some("fewer or more bytes were read than the source states")
    } else if let (Some(e), true) = (expected, length > 0) {
        (md5 != e || stored.is_some_and(|s| s != e)).then_some("its MD5 differs from the source's")
    } else if let (Some(s), true) = (stored, length > 0) {
        (s != md5).then_some("the target stored other bytes than were sent")
    } else {
        None
    };
    if let Some(why) = verdict {
        let _ = target.objects.store().delete(key).await;
        return Err(format!("{key}: not copied: {why}"));
    }
    tally.objects_copied.fetch_add(1, Ordering::Relaxed);
    tally.bytes.fetch_add(info.size, Ordering::Relaxed);
    Ok(())
}

/// Copies the embedded mode's generated secrets to a disk target that has
/// none; notes for the operator.
fn carry_data_secrets(
    config: &Config,
    target: &Target,
    data_dir: &Path,
) -> Result<Vec<String>, String> {
    let mut notes = Vec::new();
    if matches!(target.storage, Storage::Disk) {
        for name in DATA_SECRETS {
            let from = config.data_dir.join(name);
            let to = data_dir.join(name);
            if from.is_file() && !to.exists() {
                std::fs::copy(&from, &to).map_err(|e| format!("copy {name}: {e}"))?;
                notes.push(format!("copied {name} into {}", data_dir.display()));
            }
        }
    }
    if matches!(target.storage, Storage::S3 { .. })
        || matches!(target.database, Database::Postgres(_))
    {
        notes.push(
            "user tokens: give the target the same STOWAGE_JWT_SECRET (or JWT public key) as \
             the source, or tokens issued for the source are refused"
                .into(),
        );
    }
    Ok(notes)
}

/// Compares every table and every file's object; every difference printed.
async fn verify(source: &Side, target: &Side, options: &Options) -> Result<String, String> {
    let mut differences: Vec<String> = Vec::new();
    let mut rows = 0;
    for table in Table::ALL {
        let found = Mutex::new(Vec::new());
        rows += compare(
            source.tables.as_ref(),
            target.tables.as_ref(),
            table,
            &mut |d: Difference| {
                if let Ok(mut f) = found.lock() {
                    f.push(d.to_string());
                }
            },
        )
        .await
        .map_err(err)?;
        differences.extend(found.into_inner().unwrap_or_default());
    }
    let mut after = String::new();
    let mut objects = 0;
    loop {
        let batch = source
            .tables
            .read_batch(Table::Files, &after, options.batch)
            .await
            .map_err(err)?;
        let Some(last) = batch.last_key() else { break };
        let keys: Vec<(String, String)> = objects_of(&batch, &Tally::default());
        let checks = futures_util::stream::iter(keys)
            .map(|(key, _)| async move {
                let a = source.objects.head(&key).await?;
                let b = target.objects.head(&key).await?;
                Ok::<_, String>(match (a, b) {
                    (Some(a), b) if same_object(&a, b.as_ref()) => None,
                    (Some(_), None) => Some(format!("object {key}: only in the source")),
                    (Some(_), Some(_)) => Some(format!("object {key}: differs")),
                    (None, Some(_)) => Some(format!("object {key}: only in the target")),
                    (None, None) => Some(format!("object {key}: in neither store")),
                })
            })
            .buffered(options.concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        objects += checks.len();
        differences.extend(checks.into_iter().flatten());
        after = last;
    }
    if differences.is_empty() {
        Ok(format!(
            "no differences: {rows} row(s) and {objects} object(s) match"
        ))
    } else {
        Err(format!(
            "{} difference(s):\n  {}",
            differences.len(),
            differences.join("\n  ")
        ))
    }
}

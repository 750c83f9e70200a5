//! Copying every table of one repository into another, of either backend
//! (`stowage transfer`), and comparing the two.
//!
//! Tables are read in key order in batches ([`TableCopy::read_batch`]) and
//! written row by row unless present ([`TableCopy::write_batch`]): a copy
//! that is interrupted and run again writes nothing twice and misses nothing,
//! and the source is only read. The maintained counts are not copied but
//! recomputed from the files ([`TableCopy::recount`]).

use std::collections::VecDeque;

use async_trait::async_trait;
use stowage_domain::model::File;
use stowage_domain::Result;

use crate::conn::DbConn;
use crate::events::{copy_endpoint, endpoints_after, EndpointRow};
use crate::repository::{Backend, DieselRepository, TxError};
use crate::rows::{ApiKeyRow, DeletionRow, FileRow, SecretRow, UploadRow};
use crate::statements as q;

/// A table a transfer copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `api_keys` (revoked and expired keys too).
    ApiKeys,
    /// `uploads` (issued, pending, completed and registered uploads).
    Uploads,
    /// `files`.
    Files,
    /// `object_deletions` (the deletion queue).
    Deletions,
    /// `instance_secrets` (what signs cursors and gateway URLs).
    Secrets,
    /// `webhook_endpoints` (with their secrets; the outbox of events and
    /// their deliveries is not copied).
    WebhookEndpoints,
}

impl Table {
    /// Every table, in the order a transfer copies them.
    pub const ALL: [Table; 6] = [
        Table::Secrets,
        Table::ApiKeys,
        Table::WebhookEndpoints,
        Table::Uploads,
        Table::Files,
        Table::Deletions,
    ];

    /// Its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Table::ApiKeys => "api_keys",
            Table::Uploads => "uploads",
            Table::Files => "files",
            Table::Deletions => "object_deletions",
            Table::Secrets => "instance_secrets",
            Table::WebhookEndpoints => "webhook_endpoints",
        }
    }
}

/// Rows of one table, in key order.
#[derive(Debug, Clone)]
pub enum Batch {
    /// Of `api_keys`.
    ApiKeys(Vec<ApiKeyRow>),
    /// Of `uploads`.
    Uploads(Vec<UploadRow>),
    /// Of `files`.
    Files(Vec<FileRow>),
    /// Of `object_deletions`.
    Deletions(Vec<DeletionRow>),
    /// Of `instance_secrets`.
    Secrets(Vec<SecretRow>),
    /// Of `webhook_endpoints`.
    WebhookEndpoints(Vec<EndpointRow>),
}

impl Batch {
    /// How many rows.
    pub fn len(&self) -> usize {
        match self {
            Batch::ApiKeys(r) => r.len(),
            Batch::Uploads(r) => r.len(),
            Batch::Files(r) => r.len(),
            Batch::Deletions(r) => r.len(),
            Batch::Secrets(r) => r.len(),
            Batch::WebhookEndpoints(r) => r.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of each row, in order.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Batch::ApiKeys(r) => r.iter().map(|r| r.id.as_str()).collect(),
            Batch::Uploads(r) => r.iter().map(|r| r.s3_key.as_str()).collect(),
            Batch::Files(r) => r.iter().map(|r| r.id.as_str()).collect(),
            Batch::Deletions(r) => r.iter().map(|r| r.s3_key.as_str()).collect(),
            Batch::Secrets(r) => r.iter().map(|r| r.name.as_str()).collect(),
            Batch::WebhookEndpoints(r) => r.iter().map(|r| r.id.as_str()).collect(),
        }
    }

    /// The key after which the next batch starts (its last row's).
    pub fn last_key(&self) -> Option<String> {
        self.keys().last().map(|k| (*k).to_owned())
    }

    /// Its rows as comparable items: files as domain files (so that the
    /// same metadata stored as `jsonb` and as text compares equal).
    fn items(&self) -> Result<Vec<(String, Item)>> {
        Ok(match self {
            Batch::ApiKeys(r) => r
                .iter()
                .map(|r| (r.id.clone(), Item::Key(r.clone())))
                .collect(),
            Batch::Uploads(r) => r
                .iter()
                .map(|r| (r.s3_key.clone(), Item::Upload(r.clone())))
                .collect(),
            Batch::Files(r) => r
                .iter()
                .map(|r| {
                    Ok((
                        r.id.clone(),
                        Item::File(Box::new(File::try_from(r.clone())?)),
                    ))
                })
                .collect::<Result<_>>()?,
            Batch::Deletions(r) => r
                .iter()
                .map(|r| (r.s3_key.clone(), Item::Deletion(r.clone())))
                .collect(),
            Batch::Secrets(r) => r
                .iter()
                .map(|r| (r.name.clone(), Item::Secret(r.clone())))
                .collect(),
            Batch::WebhookEndpoints(r) => r
                .iter()
                .map(|r| (r.id.clone(), Item::Endpoint(r.clone())))
                .collect(),
        })
    }
}

#[derive(Debug, PartialEq)]
enum Item {
    Key(ApiKeyRow),
    Upload(UploadRow),
    File(Box<File>),
    Deletion(DeletionRow),
    Secret(SecretRow),
    Endpoint(EndpointRow),
}

/// A repository a transfer reads or writes, whatever its backend.
#[async_trait]
pub trait TableCopy: Send + Sync {
    /// Up to `limit` rows of `table` whose key comes after `after` (`""`:
    /// from the first), in key order.
    async fn read_batch(&self, table: Table, after: &str, limit: u32) -> Result<Batch>;

    /// Writes each row whose key is not present yet; how many were new.
    async fn write_batch(&self, batch: &Batch) -> Result<u64>;

    /// How many rows `table` has (for a progress bar).
    async fn count_rows(&self, table: Table) -> Result<u64>;

    /// Sets the maintained counts to what the files say.
    async fn recount(&self) -> Result<()>;
}

#[async_trait]
impl<B: Backend> TableCopy for DieselRepository<B> {
    async fn read_batch(&self, table: Table, after: &str, limit: u32) -> Result<Batch> {
        let n = i64::from(limit);
        self.run("read batch", async |c| {
            Ok(match table {
                Table::ApiKeys => Batch::ApiKeys(c.load_rows(q::keys_after(after, n)).await?),
                Table::Uploads => Batch::Uploads(c.load_rows(q::uploads_after(after, n)).await?),
                Table::Files => Batch::Files(c.load_rows(q::files_after(after, n)).await?),
                Table::Deletions => {
                    Batch::Deletions(c.load_rows(q::deletions_after(after, n)).await?)
                }
                Table::Secrets => Batch::Secrets(c.load_rows(q::secrets_after(after, n)).await?),
                Table::WebhookEndpoints => {
                    Batch::WebhookEndpoints(c.load_rows(endpoints_after(after, n)).await?)
                }
            })
        })
        .await
    }

    async fn write_batch(&self, batch: &Batch) -> Result<u64> {
        self.run_write("write batch", async |c| {
            let mut new = 0;
            match batch {
                Batch::ApiKeys(rows) => {
                    for r in rows {
                        new += c.execute_statement(q::copy_key(r)).await?;
                    }
                }
                Batch::Uploads(rows) => {
                    for r in rows {
                        new += c.execute_statement(q::copy_upload(r)).await?;
                    }
                }
                Batch::Files(rows) => {
                    for r in rows {
                        new += c.execute_statement(q::copy_file(r)).await?;
                        // Also for a file copied before: an interrupted copy
                        // may have written the file and not its index.
                        B::index_shares(c, r).await?;
                    }
                }
                Batch::Deletions(rows) => {
                    for r in rows {
                        new += c.execute_statement(q::copy_deletion(r)).await?;
                    }
                }
                Batch::Secrets(rows) => {
                    for r in rows {
                        new += c.execute_statement(q::copy_secret(r)).await?;
                    }
                }
                Batch::WebhookEndpoints(rows) => {
                    for r in rows {
                        new += c.execute_statement(copy_endpoint(r)).await?;
                    }
                }
            }
            Ok::<_, TxError>(new as u64)
        })
        .await
    }

    async fn count_rows(&self, table: Table) -> Result<u64> {
        use crate::schema::{
            api_keys, files, instance_secrets, object_deletions, uploads, webhook_endpoints,
        };
        use diesel::QueryDsl;
        self.run("count rows", async |c| {
            let n = match table {
                Table::ApiKeys => c.load_rows(api_keys::table.count()).await?,
                Table::Uploads => c.load_rows(uploads::table.count()).await?,
                Table::Files => c.load_rows(files::table.count()).await?,
                Table::Deletions => c.load_rows(object_deletions::table.count()).await?,
                Table::Secrets => c.load_rows(instance_secrets::table.count()).await?,
                Table::WebhookEndpoints => c.load_rows(webhook_endpoints::table.count()).await?,
            };
            let n: i64 = crate::repository::first(n).unwrap_or(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    async fn recount(&self) -> Result<()> {
        self.run_write("recount files", async |c| {
            c.execute_statement(q::recount_files()).await?;
            c.execute_statement(q::drop_empty_counts()).await?;
            Ok(())
        })
        .await
    }
}

/// A row that differs between two repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// Only the first (the source) has it.
    Missing {
        /// Its table.
        table: Table,
        /// Its key.
        key: String,
    },
    /// Only the second (the target) has it.
    Extra {
        /// Its table.
        table: Table,
        /// Its key.
        key: String,
    },
    /// Both have it, with different values.
    Differs {
        /// Its table.
        table: Table,
        /// Its key.
        key: String,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::Missing { table, key } => {
                write!(f, "{} {key}: only in the source", table.name())
            }
            Difference::Extra { table, key } => {
                write!(f, "{} {key}: only in the target", table.name())
            }
            Difference::Differs { table, key } => {
                write!(f, "{} {key}: differs", table.name())
            }
        }
    }
}

/// One side of a comparison: its rows of a table in key order, a batch at a time.
struct Side<'a> {
    repo: &'a dyn TableCopy,
    table: Table,
    after: String,
    buffered: VecDeque<(String, Item)>,
    done: bool,
}

impl Side<'_> {
    async fn front(&mut self) -> Result<Option<&(String, Item)>> {
        if self.buffered.is_empty() && !self.done {
            let batch = self.repo.read_batch(self.table, &self.after, 500).await?;
            match batch.last_key() {
                Some(last) => self.after = last,
                None => self.done = true,
            }
            self.buffered = batch.items()?.into();
        }
        Ok(self.buffered.front())
    }
}

/// Every row of `table` that differs between `source` and `target`, in key
/// order, passed to `found`; how many rows the source has.
///
/// # Errors
/// When either side cannot be read.
pub async fn compare(
    source: &dyn TableCopy,
    target: &dyn TableCopy,
    table: Table,
    found: &mut (dyn FnMut(Difference) + Send),
) -> Result<u64> {
    let side = |repo| Side {
        repo,
        table,
        after: String::new(),
        buffered: VecDeque::new(),
        done: false,
    };
    let (mut a, mut b) = (side(source), side(target));
    let mut rows = 0;
    loop {
        let order = match (a.front().await?, b.front().await?) {
            (None, None) => return Ok(rows),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        let (x, y) = match order {
            std::cmp::Ordering::Less => (a.buffered.pop_front(), None),
            std::cmp::Ordering::Greater => (None, b.buffered.pop_front()),
            std::cmp::Ordering::Equal => (a.buffered.pop_front(), b.buffered.pop_front()),
        };
        match (x, y) {
            (Some((key, _)), None) => {
                rows += 1;
                found(Difference::Missing { table, key });
            }
            (None, Some((key, _))) => found(Difference::Extra { table, key }),
            (Some((key, x)), Some((_, y))) => {
                rows += 1;
                if x != y {
                    found(Difference::Differs { table, key });
                }
            }
            (None, None) => return Ok(rows),
        }
    }
}

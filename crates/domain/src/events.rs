//! Events (docs/api.md §10): what changed, recorded in the same transaction as
//! the change (an outbox), so that an event exists exactly when its change
//! committed. Webhook endpoints receive them ([`crate::webhooks`]); code that
//! embeds this crate reads them in process through an [`EventFeed`].
//!
//! ```
//! # use stowage_domain::events::{Event, EventType};
//! assert_eq!(EventType::FileRegistered.as_str(), "file.registered");
//! assert_eq!("file.deleted".parse::<EventType>().ok(), Some(EventType::FileDeleted));
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, ErrorCode, Result};
use crate::model::{Environment, File, ProjectId, Projection, Tenant, Timestamp};
use crate::ports::FileRepository;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `POST /v1/files` succeeded.
    FileRegistered,
    /// A PATCH changed something.
    FileUpdated,
    /// DELETE succeeded.
    FileDeleted,
    /// The lifecycle worker removed an abandoned upload.
    UploadExpired,
}

impl EventType {
    /// Every type, in the order of docs/api.md §10.
    pub const ALL: [EventType; 4] = [
        Self::FileRegistered,
        Self::FileUpdated,
        Self::FileDeleted,
        Self::UploadExpired,
    ];

    /// The wire name (`file.registered`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FileRegistered => "file.registered",
            Self::FileUpdated => "file.updated",
            Self::FileDeleted => "file.deleted",
            Self::UploadExpired => "upload.expired",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::FileRegistered => 0,
            Self::FileUpdated => 1,
            Self::FileDeleted => 2,
            Self::UploadExpired => 3,
        }
    }

    /// A comma-separated list of types (`file.registered,file.deleted`);
    /// empty means every type.
    ///
    /// # Errors
    /// `common/invalid-request` naming an unknown type.
    pub fn parse_list(raw: &str) -> Result<Vec<EventType>> {
        let mut out: Vec<EventType> = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let t = part.parse::<EventType>()?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out.sort();
        Ok(out)
    }
}

impl FromStr for EventType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                Error::with_message(
                    ErrorCode::InvalidRequest,
                    format!(
                        "unknown event type `{s}` (known: file.registered, file.updated, \
                     file.deleted, upload.expired)"
                    ),
                )
            })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event: its id (UUID v7), type, time, tenant, the subject whose events
/// are delivered in order (a file id, or an upload's key), and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique id; the `webhook-id` of its deliveries.
    pub id: uuid::Uuid,
    /// What happened.
    pub kind: EventType,
    /// When the change was made.
    pub timestamp: Timestamp,
    /// Whose data changed.
    pub tenant: Tenant,
    /// The file id (file events) or the upload's key (`upload.expired`):
    /// events of one subject reach each endpoint in commit order.
    pub subject: String,
    /// The type's payload (docs/api.md §10).
    pub data: Value,
}

/// The body as sent and stored, fields in the documented order.
#[derive(Serialize, Deserialize)]
struct Body {
    id: uuid::Uuid,
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    project: String,
    environment: String,
    data: Value,
}

impl Event {
    fn new(
        id: uuid::Uuid,
        kind: EventType,
        at: Timestamp,
        tenant: &Tenant,
        subject: String,
    ) -> Self {
        Self {
            id,
            kind,
            timestamp: at,
            tenant: tenant.clone(),
            subject,
            data: Value::Null,
        }
    }

    /// An event about `file` whose `data` holds the file as the API shows
    /// its owner, plus `extra` fields.
    fn about_file(
        id: uuid::Uuid,
        kind: EventType,
        at: Timestamp,
        file: &File,
        public_base_url: Option<&str>,
        extra: Option<(&str, Value)>,
    ) -> Self {
        let mut e = Self::new(id, kind, at, &file.tenant, file.id.to_string());
        let view = serde_json::to_value(file.view(Projection::Full, public_base_url))
            .unwrap_or(Value::Null);
        let mut data = serde_json::Map::new();
        data.insert("file".to_owned(), view);
        if let Some((name, value)) = extra {
            data.insert(name.to_owned(), value);
        }
        e.data = Value::Object(data);
        e
    }

    /// `file.registered` with the file as registered.
    pub fn file_registered(
        id: uuid::Uuid,
        at: Timestamp,
        file: &File,
        public_base_url: Option<&str>,
    ) -> Self {
        Self::about_file(
            id,
            EventType::FileRegistered,
            at,
            file,
            public_base_url,
            None,
        )
    }

    /// `file.updated` with the file as it now is and the fields that changed
    /// (`originalName`, `visibility`, `metadata`, `sharedWith`).
    pub fn file_updated(
        id: uuid::Uuid,
        at: Timestamp,
        file: &File,
        changed: &[&str],
        public_base_url: Option<&str>,
    ) -> Self {
        let changed = Some(("changed", json!(changed)));
        Self::about_file(
            id,
            EventType::FileUpdated,
            at,
            file,
            public_base_url,
            changed,
        )
    }

    /// `file.deleted` with the file as it was.
    pub fn file_deleted(
        id: uuid::Uuid,
        at: Timestamp,
        file: &File,
        public_base_url: Option<&str>,
    ) -> Self {
        Self::about_file(id, EventType::FileDeleted, at, file, public_base_url, None)
    }

    /// `upload.expired` for the upload issued as `key`.
    pub fn upload_expired(
        id: uuid::Uuid,
        at: Timestamp,
        tenant: &Tenant,
        key: &str,
        upload_id: Option<&str>,
    ) -> Self {
        let mut e = Self::new(id, EventType::UploadExpired, at, tenant, key.to_owned());
        e.data = match upload_id {
            Some(u) => json!({ "key": key, "uploadId": u }),
            None => json!({ "key": key }),
        };
        e
    }

    /// The body every endpoint receives (and the outbox stores):
    /// `{"id","type","timestamp","project","environment","data"}`.
    pub fn body(&self) -> String {
        let body = Body {
            id: self.id,
            kind: self.kind.as_str().to_owned(),
            timestamp: self.timestamp.to_rfc3339(),
            project: self.tenant.project.to_string(),
            environment: self.tenant.env.to_string(),
            data: self.data.clone(),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// The event a stored body describes (the inverse of [`Event::body`]).
    ///
    /// # Errors
    /// `common/internal` for a body this crate did not write.
    pub fn from_body(body: &str, subject: &str) -> Result<Self> {
        let bad = |what: &str| Error::internal(format!("stored event: {what}"));
        let b: Body = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
        let at =
            chrono::DateTime::parse_from_rfc3339(&b.timestamp).map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            id: b.id,
            kind: b.kind.parse().map_err(|_| bad("type"))?,
            timestamp: Timestamp::from_datetime(at.with_timezone(&chrono::Utc)),
            tenant: Tenant {
                project: ProjectId::new(&b.project).map_err(|_| bad("project"))?,
                env: b
                    .environment
                    .parse::<Environment>()
                    .map_err(|_| bad("environment"))?,
            },
            subject: subject.to_owned(),
            data: b.data,
        })
    }
}

/// Where an event sits in the outbox: events are read in cursor order, and
/// a cursor handed out is never passed by an event committed later.
/// Persist [`EventCursor::to_string`] to resume a feed after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventCursor {
    /// The writing transaction's place (PostgreSQL: its id; 0 where writes
    /// are serialized and the sequence alone is commit order).
    pub tx: u64,
    /// The outbox sequence number.
    pub seq: u64,
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.tx, self.seq)
    }
}

impl FromStr for EventCursor {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::with_message(ErrorCode::InvalidRequest, "event cursor: TX.SEQ");
        let (tx, seq) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self {
            tx: tx.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// An event as the outbox holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its place.
    pub cursor: EventCursor,
    /// The event.
    pub event: Event,
}

/// Receives events in process (the embedder's side of the outbox).
#[async_trait]
pub trait EventSubscriber: Send + Sync {
    /// Handles one event. An error stops the feed at this event, which is
    /// offered again on the next poll (at least once, in order).
    async fn handle(&self, event: &StoredEvent) -> Result<()>;
}

/// Reads the outbox in order from a cursor and hands each event to a
/// subscriber: every committed event once, in commit order of each file,
/// again after an error. Start it at [`EventFeed::from_now`], or resume
/// at a cursor the subscriber persisted. The caller owns the loop (and the
/// runtime): call [`EventFeed::poll`] again at once while it returns events,
/// and after a pause when it returns none.
pub struct EventFeed {
    repo: Arc<dyn FileRepository>,
    cursor: EventCursor,
}

impl EventFeed {
    /// A feed of the events after `cursor` (`EventCursor::default()`: every
    /// event the outbox still holds).
    pub fn resume(repo: Arc<dyn FileRepository>, cursor: EventCursor) -> Self {
        Self { repo, cursor }
    }

    /// A feed of the events committed from now on.
    ///
    /// # Errors
    /// The repository's.
    pub async fn from_now(repo: Arc<dyn FileRepository>) -> Result<Self> {
        let cursor = repo.last_event().await?.unwrap_or_default();
        Ok(Self { repo, cursor })
    }

    /// Where the feed stands: every event up to here was handled.
    pub fn cursor(&self) -> EventCursor {
        self.cursor
    }

    /// Hands up to `limit` new events to `subscriber`, in order; returns how
    /// many it handled. Stops at the first the subscriber fails (keeping the
    /// cursor before it).
    ///
    /// # Errors
    /// The repository's, or the subscriber's.
    pub async fn poll(&mut self, subscriber: &dyn EventSubscriber, limit: u32) -> Result<usize> {
        let batch = self.repo.events_after(self.cursor, limit).await?;
        let mut handled = 0;
        for stored in batch {
            subscriber.handle(&stored).await?;
            self.cursor = stored.cursor;
            handled += 1;
        }
        Ok(handled)
    }
}

/// Events written by this process, by type (what `/metrics` shows).
#[derive(Debug, Default)]
pub struct EventCounts([AtomicU64; 4]);

impl EventCounts {
    /// One more `kind` committed.
    pub fn add(&self, kind: EventType) {
        self.0[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Each type with its count.
    pub fn snapshot(&self) -> [(EventType, u64); 4] {
        EventType::ALL.map(|t| (t, self.0[t.index()].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Environment;

    fn tenant() -> Tenant {
        Tenant {
            project: ProjectId::new("p1").expect("project"),
            env: Environment::Dev,
        }
    }

    #[test]
    fn types_round_trip_and_unknown_ones_are_refused() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().ok(), Some(t));
        }
        for bad in [
            "",
            "file",
            "File.Registered",
            "file.registered ",
            "upload.*",
        ] {
            assert!(bad.parse::<EventType>().is_err(), "{bad:?}");
        }
        assert_eq!(
            EventType::parse_list(" file.deleted,file.registered,file.deleted ,").ok(),
            Some(vec![EventType::FileRegistered, EventType::FileDeleted])
        );
        assert_eq!(EventType::parse_list("").ok(), Some(vec![]));
        assert!(EventType::parse_list("file.registered,nope").is_err());
    }

    #[test]
    fn the_body_has_the_documented_fields_and_reads_back() {
        let at = Timestamp::from_millis(1_700_000_000_123);
        let id = uuid::Uuid::now_v7();
        let e = Event::upload_expired(id, at, &tenant(), "p1/dev/u/k.png", Some("mp-1"));
        let body: Value = serde_json::from_str(&e.body()).expect("json");
        assert_eq!(body["id"], id.to_string());
        assert_eq!(body["type"], "upload.expired");
        assert_eq!(body["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["project"], "p1");
        assert_eq!(body["environment"], "dev");
        assert_eq!(
            body["data"],
            json!({"key": "p1/dev/u/k.png", "uploadId": "mp-1"})
        );
        let keys: Vec<&str> = body
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 6);
        assert_eq!(Event::from_body(&e.body(), &e.subject).ok(), Some(e));
        assert!(Event::from_body("{}", "x").is_err());
    }

    #[test]
    fn cursors_order_by_transaction_then_sequence_and_parse() {
        let a = EventCursor { tx: 1, seq: 9 };
        let b = EventCursor { tx: 2, seq: 3 };
        assert!(a < b);
        assert_eq!(b.to_string().parse::<EventCursor>().ok(), Some(b));
        for bad in ["", "1", "1.", ".2", "a.b", "-1.2"] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn counts_are_kept_per_type() {
        let c = EventCounts::default();
        c.add(EventType::FileDeleted);
        c.add(EventType::FileDeleted);
        c.add(EventType::FileRegistered);
        let s = c.snapshot();
        assert_eq!(s[0], (EventType::FileRegistered, 1));
        assert_eq!(s[2], (EventType::FileDeleted, 2));
    }
}

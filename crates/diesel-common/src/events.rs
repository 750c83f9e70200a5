//! The outbox and webhook deliveries on both backends (docs/api.md §10):
//! an event and its deliveries are written inside the change's transaction
//! ([`record_event`]); the rest is [`WebhookRepository`] on
//! [`DieselRepository`], with the claim of due deliveries left to each
//! backend ([`Backend::claim_deliveries`]).

use std::collections::HashMap;

use async_trait::async_trait;
use diesel::pg::Pg;
use diesel::prelude::{Insertable, Queryable, QueryableByName, Selectable};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use diesel::{BoolExpressionMethods, ExpressionMethods, QueryDsl};
use stowage_domain::events::{Event, EventCursor, EventType, StoredEvent};
use stowage_domain::model::{Tenant, Timestamp};
use stowage_domain::ports::WebhookRepository;
use stowage_domain::upload::UploadState;
use stowage_domain::webhooks::{
    AttemptRecord, AttemptResult, DeliveryState, DueDelivery, WebhookEndpoint, WebhookSecret,
};
use stowage_domain::{Error, Result};

use crate::conn::{DbConn, Rows, Statement};
use crate::repository::{first, Backend, DieselRepository, TxError};
use crate::rows::{columns, corrupt, tenant, to_u64};
use crate::schema::{events, webhook_attempts, webhook_deliveries, webhook_endpoints};

/// A new row of `events` (`seq` and `tx` are the database's).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEventRow {
    pub id: String,
    pub project: String,
    pub env: String,
    pub kind: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

impl From<&Event> for NewEventRow {
    fn from(e: &Event) -> Self {
        Self {
            id: e.id.to_string(),
            project: e.tenant.project.to_string(),
            env: e.tenant.env.to_string(),
            kind: e.kind.as_str().to_owned(),
            subject: e.subject.clone(),
            body: e.body(),
            created_at: e.timestamp.millis(),
        }
    }
}

/// A stored event, as the feed reads it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EventRow {
    pub seq: i64,
    pub tx: i64,
    pub subject: String,
    pub body: String,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = Error;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Self {
            cursor: EventCursor {
                tx: to_u64(r.tx, "events.tx")?,
                seq: to_u64(r.seq, "events.seq")?,
            },
            event: Event::from_body(&r.body, &r.subject)?,
        })
    }
}

/// A row of `webhook_endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct EndpointRow {
    pub id: String,
    pub project: String,
    pub env: String,
    pub url: String,
    pub secret: String,
    pub event_types: String,
    pub created_at: i64,
}

impl From<&WebhookEndpoint> for EndpointRow {
    fn from(e: &WebhookEndpoint) -> Self {
        // `,a,b,` so that a type matches as `LIKE '%,type,%'`; '' for all.
        let event_types = if e.events.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = e.events.iter().map(|t| t.as_str()).collect();
            format!(",{},", names.join(","))
        };
        Self {
            id: e.id.clone(),
            project: e.tenant.project.to_string(),
            env: e.tenant.env.to_string(),
            url: e.url.clone(),
            secret: e.secret.expose(),
            event_types,
            created_at: e.created_at.millis(),
        }
    }
}

impl TryFrom<EndpointRow> for WebhookEndpoint {
    type Error = Error;
    fn try_from(r: EndpointRow) -> Result<Self> {
        Ok(Self {
            tenant: tenant(&r.project, &r.env)?,
            secret: WebhookSecret::parse(&r.secret).map_err(|_| corrupt("webhook secret"))?,
            events: EventType::parse_list(&r.event_types)
                .map_err(|_| corrupt("webhook event types"))?,
            id: r.id,
            url: r.url,
            created_at: Timestamp::from_millis(r.created_at),
        })
    }
}

/// A delivery just claimed (what the backend's claim returns).
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub endpoint_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub event_seq: i64,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub retry_from: i64,
}

/// Up to `limit` endpoints with an id after `after`, in id order (transfer).
pub fn endpoints_after(after: &str, limit: i64) -> impl Rows<'_, EndpointRow> {
    webhook_endpoints::table
        .filter(webhook_endpoints::id.gt(after))
        .order_by(webhook_endpoints::id.asc())
        .limit(limit)
        .select(columns::<EndpointRow>())
}

/// Records an endpoint unless its id is recorded (transfer).
pub fn copy_endpoint(row: &EndpointRow) -> impl Statement + '_ {
    diesel::insert_into(webhook_endpoints::table)
        .values(row)
        .on_conflict_do_nothing()
}

/// Records an event.
pub fn insert_event(row: &NewEventRow) -> impl Statement + '_ {
    diesel::insert_into(events::table).values(row)
}

/// One pending delivery of the event `id` for every endpoint of its tenant
/// that wants its type, as the endpoints stand in this transaction. Fixed
/// text: prepared once per connection.
pub struct FanOut<'a>(pub &'a str);

impl QueryId for FanOut<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

macro_rules! fan_out_for {
    ($db:ty) => {
        impl QueryFragment<$db> for FanOut<'_> {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, $db>) -> diesel::QueryResult<()> {
                out.push_sql(&fan_out_from("events"));
                out.push_sql(" WHERE e.id = ");
                out.push_bind_param::<diesel::sql_types::Text, _>(self.0)?;
                Ok(())
            }
        }
    };
}
fan_out_for!(Pg);
fan_out_for!(Sqlite);

/// The SQL that fans an event out to the endpoints of its tenant, with
/// `event_rows` naming a relation of the new event's columns (`seq, id,
/// project, env, kind, subject, created_at`): what PostgreSQL's one-statement
/// registration embeds.
pub fn fan_out_from(event_rows: &str) -> String {
    format!(
        "INSERT INTO webhook_deliveries (endpoint_id, event_seq, event_id, subject, state, \
         attempts, next_attempt_at, lease_until, retry_from) \
         SELECT w.id, e.seq, e.id, e.subject, 'pending', 0, e.created_at, 0, e.created_at \
         FROM {event_rows} e JOIN webhook_endpoints w ON w.project = e.project AND w.env = e.env \
         AND (w.event_types = '' OR w.event_types LIKE '%,' || e.kind || ',%')"
    )
}

/// Records `event` and its deliveries inside the caller's transaction.
///
/// # Errors
/// The database's.
pub async fn record_event<C: DbConn>(c: &mut C, event: &Event) -> std::result::Result<(), TxError> {
    let row = NewEventRow::from(event);
    c.execute_statement(insert_event(&row)).await?;
    c.execute_statement(FanOut(&row.id)).await?;
    Ok(())
}

/// Moves an upload (compare-and-set) and, if it moved, records `event`,
/// inside the caller's transaction; whether it moved.
///
/// # Errors
/// The database's.
pub async fn transition_recorded<C: DbConn>(
    c: &mut C,
    tenant: &Tenant,
    key: &str,
    from: UploadState,
    to: UploadState,
    event: &Event,
) -> std::result::Result<bool, TxError> {
    let moved = c
        .execute_statement(crate::statements::transition_upload(tenant, key, from, to))
        .await?
        == 1;
    if moved {
        record_event(c, event).await?;
    }
    Ok(moved)
}

/// Adds the endpoint `add` and removes the endpoint `remove` (inside the
/// caller's transaction, which its backend makes exclusive as it needs);
/// rows touched.
///
/// # Errors
/// The database's.
pub async fn change_endpoints<C: DbConn>(
    c: &mut C,
    add: Option<&EndpointRow>,
    remove: Option<&str>,
) -> std::result::Result<usize, TxError> {
    let mut n = 0;
    if let Some(row) = add {
        n += c
            .execute_statement(diesel::insert_into(webhook_endpoints::table).values(row))
            .await?;
    }
    if let Some(id) = remove {
        n += c
            .execute_statement(diesel::delete(
                webhook_endpoints::table.filter(webhook_endpoints::id.eq(id)),
            ))
            .await?;
    }
    Ok(n)
}

/// Events after `after` whose place is final (`visible`: the backend's
/// condition, [`Backend::FEED_VISIBLE`]), in cursor order.
fn events_after(
    after: EventCursor,
    limit: u32,
    visible: &'static str,
) -> impl for<'q> Rows<'q, EventRow> {
    let tx = i64::try_from(after.tx).unwrap_or(i64::MAX);
    let seq = i64::try_from(after.seq).unwrap_or(i64::MAX);
    events::table
        .filter(
            events::tx
                .gt(tx)
                .or(events::tx.eq(tx).and(events::seq.gt(seq))),
        )
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(visible))
        .order_by((events::tx.asc(), events::seq.asc()))
        .limit(i64::from(limit))
        .select(columns::<EventRow>())
}

/// The last event whose place is final.
fn last_event(visible: &'static str) -> impl for<'q> Rows<'q, (i64, i64)> {
    events::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(visible))
        .order_by((events::tx.desc(), events::seq.desc()))
        .limit(1)
        .select((events::tx, events::seq))
}

impl<B: Backend> DieselRepository<B> {
    /// [`stowage_domain::ports::FileRepository::events_after`].
    pub(crate) async fn read_events(
        &self,
        after: EventCursor,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let rows = self
            .run("read events", async |c| {
                Ok(c.load_rows(events_after(after, limit, B::FEED_VISIBLE))
                    .await?)
            })
            .await?;
        rows.into_iter().map(StoredEvent::try_from).collect()
    }

    /// [`stowage_domain::ports::FileRepository::last_event`].
    pub(crate) async fn read_last_event(&self) -> Result<Option<EventCursor>> {
        let row = self
            .run("read last event", async |c| {
                Ok(first(c.load_rows(last_event(B::FEED_VISIBLE)).await?))
            })
            .await?;
        row.map(|(tx, seq)| {
            Ok(EventCursor {
                tx: to_u64(tx, "events.tx")?,
                seq: to_u64(seq, "events.seq")?,
            })
        })
        .transpose()
    }
}

/// A row of `webhook_attempts`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct AttemptRow {
    endpoint_id: String,
    event_seq: i64,
    attempt: i32,
    at: i64,
    status: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
}

fn seq_of(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[async_trait]
impl<B: Backend> WebhookRepository for DieselRepository<B> {
    async fn add_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let row = EndpointRow::from(endpoint);
        self.run_write("add webhook endpoint", async |c| {
            B::change_endpoints(c, Some(&row), None).await.map(|_| ())
        })
        .await
    }

    async fn endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        let rows: Vec<EndpointRow> = self
            .run("list webhook endpoints", async |c| {
                Ok(c.load_rows::<EndpointRow, _>(
                    webhook_endpoints::table
                        .order_by((
                            webhook_endpoints::created_at.asc(),
                            webhook_endpoints::id.asc(),
                        ))
                        .select(columns::<EndpointRow>()),
                )
                .await?)
            })
            .await?;
        rows.into_iter().map(WebhookEndpoint::try_from).collect()
    }

    async fn remove_endpoint(&self, id: &str) -> Result<bool> {
        self.run_write("remove webhook endpoint", async |c| {
            Ok(B::change_endpoints(c, None, Some(id)).await? > 0)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>> {
        let (claimed, endpoints, bodies) = self
            .run_write("claim webhook deliveries", async |c| {
                let claimed =
                    B::claim_deliveries(c, now.millis(), lease_until.millis(), limit).await?;
                if claimed.is_empty() {
                    return Ok((claimed, Vec::new(), Vec::new()));
                }
                let ids: Vec<&str> = claimed.iter().map(|r| r.endpoint_id.as_str()).collect();
                let seqs: Vec<i64> = claimed.iter().map(|r| r.event_seq).collect();
                let endpoints: Vec<EndpointRow> = c
                    .load_rows::<EndpointRow, _>(
                        webhook_endpoints::table
                            .filter(webhook_endpoints::id.eq_any(ids))
                            .select(columns::<EndpointRow>()),
                    )
                    .await?;
                let bodies: Vec<(i64, String, String, i64)> = c
                    .load_rows::<(i64, String, String, i64), _>(
                        events::table.filter(events::seq.eq_any(seqs)).select((
                            events::seq,
                            events::id,
                            events::body,
                            events::created_at,
                        )),
                    )
                    .await?;
                Ok((claimed, endpoints, bodies))
            })
            .await?;
        let endpoints: HashMap<String, EndpointRow> =
            endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
        let bodies: HashMap<i64, (String, String, i64)> = bodies
            .into_iter()
            .map(|(seq, id, body, at)| (seq, (id, body, at)))
            .collect();
        let mut out = Vec::with_capacity(claimed.len());
        for r in claimed {
            // Removed meanwhile (its deliveries went with it): nothing to send.
            let (Some(e), Some((event_id, body, at))) =
                (endpoints.get(&r.endpoint_id), bodies.get(&r.event_seq))
            else {
                continue;
            };
            out.push(DueDelivery {
                endpoint_id: r.endpoint_id.clone(),
                url: e.url.clone(),
                secret: WebhookSecret::parse(&e.secret).map_err(|_| corrupt("webhook secret"))?,
                event_seq: to_u64(r.event_seq, "event_seq")?,
                event_id: event_id.clone(),
                body: body.clone(),
                attempt: u32::try_from(r.attempts).map_err(|_| corrupt("attempts"))?,
                retry_from: Timestamp::from_millis(r.retry_from),
                event_at: Timestamp::from_millis(*at),
            });
        }
        Ok(out)
    }

    async fn any_due(&self, now: Timestamp) -> Result<bool> {
        self.run("look for due webhook deliveries", async |c| {
            Ok(first(
                c.load_rows(diesel::select(diesel::dsl::exists(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str()))
                        .filter(webhook_deliveries::next_attempt_at.le(now.millis()))
                        .filter(webhook_deliveries::lease_until.le(now.millis())),
                )))
                .await?,
            )
            .unwrap_or(false))
        })
        .await
    }

    async fn record_attempt(&self, d: &DueDelivery, result: &AttemptResult) -> Result<()> {
        let attempt = i32::try_from(d.attempt).unwrap_or(i32::MAX);
        let row = AttemptRow {
            endpoint_id: d.endpoint_id.clone(),
            event_seq: seq_of(d.event_seq),
            attempt,
            at: result.at.millis(),
            status: result.status.map(i32::from),
            error: result.error.as_ref().map(|e| e.chars().take(500).collect()),
            duration_ms: i64::try_from(result.duration_ms).unwrap_or(i64::MAX),
        };
        let finished = (result.next != DeliveryState::Pending).then_some(result.at.millis());
        let next = result.next_attempt.unwrap_or(result.at).millis();
        self.run_write("record webhook attempt", async |c| {
            c.execute_statement(
                diesel::insert_into(webhook_attempts::table)
                    .values(&row)
                    .on_conflict_do_nothing(),
            )
            .await?;
            // Only while the claim is still this attempt's (a lease that ran
            // out may have been claimed again).
            c.execute_statement(
                diesel::update(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::endpoint_id.eq(&row.endpoint_id))
                        .filter(webhook_deliveries::event_seq.eq(row.event_seq))
                        .filter(webhook_deliveries::attempts.eq(attempt))
                        .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str())),
                )
                .set((
                    webhook_deliveries::state.eq(result.next.as_str()),
                    webhook_deliveries::next_attempt_at.eq(next),
                    webhook_deliveries::lease_until.eq(0_i64),
                    webhook_deliveries::finished_at.eq(finished),
                )),
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn attempts(&self, endpoint_id: &str, limit: u32) -> Result<Vec<AttemptRecord>> {
        let (attempts, deliveries) = self
            .run("list webhook attempts", async |c| {
                let attempts: Vec<AttemptRow> = c
                    .load_rows::<AttemptRow, _>(
                        webhook_attempts::table
                            .filter(webhook_attempts::endpoint_id.eq(endpoint_id))
                            .order_by((
                                webhook_attempts::at.desc(),
                                webhook_attempts::event_seq.desc(),
                                webhook_attempts::attempt.desc(),
                            ))
                            .limit(i64::from(limit))
                            .select(columns::<AttemptRow>()),
                    )
                    .await?;
                let seqs: Vec<i64> = attempts.iter().map(|a| a.event_seq).collect();
                let deliveries: Vec<(i64, String, String)> = c
                    .load_rows::<(i64, String, String), _>(
                        webhook_deliveries::table
                            .filter(webhook_deliveries::endpoint_id.eq(endpoint_id))
                            .filter(webhook_deliveries::event_seq.eq_any(seqs))
                            .select((
                                webhook_deliveries::event_seq,
                                webhook_deliveries::event_id,
                                webhook_deliveries::state,
                            )),
                    )
                    .await?;
                Ok((attempts, deliveries))
            })
            .await?;
        let deliveries: HashMap<i64, (String, String)> = deliveries
            .into_iter()
            .map(|(seq, id, state)| (seq, (id, state)))
            .collect();
        attempts
            .into_iter()
            .filter_map(|a| {
                let (event_id, state) = deliveries.get(&a.event_seq)?;
                Some(Ok(AttemptRecord {
                    event_id: event_id.clone(),
                    state: match DeliveryState::parse(state) {
                        Ok(s) => s,
                        Err(e) => return Some(Err(e)),
                    },
                    attempt: u32::try_from(a.attempt).unwrap_or(0),
                    at: Timestamp::from_millis(a.at),
                    status: a.status.and_then(|s| u16::try_from(s).ok()),
                    error: a.error,
                }))
            })
            .collect()
    }

    async fn redeliver(&self, event_id: &str, now: Timestamp) -> Result<u64> {
        let n = self
            .run_write("redeliver webhook event", async |c| {
                Ok(c.execute_statement(
                    diesel::update(
                        webhook_deliveries::table.filter(webhook_deliveries::event_id.eq(event_id)),
                    )
                    .set((
                        webhook_deliveries::state.eq(DeliveryState::Pending.as_str()),
                        webhook_deliveries::next_attempt_at.eq(now.millis()),
                        webhook_deliveries::retry_from.eq(now.millis()),
                        webhook_deliveries::lease_until.eq(0_i64),
                        webhook_deliveries::finished_at.eq(None::<i64>),
                    )),
                )
                .await?)
            })
            .await?;
        Ok(n as u64)
    }

    async fn prune(&self, before: Timestamp) -> Result<u64> {
        let n = self
            .run_write("prune events", async |c| {
                c.execute_statement(diesel::delete(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::state.ne(DeliveryState::Pending.as_str()))
                        .filter(webhook_deliveries::finished_at.lt(before.millis())),
                ))
                .await?;
                Ok(c.execute_statement(diesel::delete(
                    events::table
                        .filter(events::created_at.lt(before.millis()))
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            webhook_deliveries::table
                                .filter(webhook_deliveries::event_seq.eq(events::seq)),
                        ))),
                ))
                .await?)
            })
            .await?;
        Ok(n as u64)
    }
}

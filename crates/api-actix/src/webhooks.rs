//! Webhook delivery (docs/api.md §10): every server (unless told not to)
//! claims due deliveries from the database, POSTs each event signed the
//! Standard Webhooks way, and records what happened. Claims are leases in
//! the database, so several replicas deliver each event once between them;
//! a crash mid-attempt makes the delivery due again when its lease ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use stowage_domain::model::Timestamp;
use stowage_domain::ports::{Clock, WebhookRepository};
use stowage_domain::webhooks::{address_allowed, AttemptResult, DeliveryState, DueDelivery};

use crate::config::WebhookConfig;
use crate::metrics::Metrics;

/// How long a claimed delivery stays this server's: the answer's timeout
/// plus a margin. After it another server may try again.
fn lease(config: &WebhookConfig) -> Duration {
    config.timeout + Duration::from_secs(30)
}

/// How often delivered and failed deliveries past the retention are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Resolves endpoint hosts and refuses addresses a delivery must not reach
/// (checked on what the name resolves to now, at every connection, not on
/// the URL's text: a name that points somewhere private is refused).
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| !address_allowed(a.ip())) {
                    return Err(refused(&host, bad.ip()).into());
                }
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

fn refused(host: &str, ip: IpAddr) -> String {
    format!(
        "refused: {host} resolves to {ip}, a private, loopback or link-local address \
         (STOWAGE_WEBHOOK_ALLOW_PRIVATE=1 allows it)"
    )
}

/// The delivery side of one server.
pub struct Deliverer {
    hooks: Arc<dyn WebhookRepository>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    config: WebhookConfig,
    client: reqwest::Client,
}

impl Deliverer {
    /// A deliverer with its own HTTP client (no redirects followed: only a
    /// 2xx of the endpoint itself delivers).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        hooks: Arc<dyn WebhookRepository>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: WebhookConfig,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Stowage-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: config.allow_private,
            }))
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self {
            hooks,
            clock,
            metrics,
            config,
            client,
        })
    }

    /// Delivers forever: up to `concurrency` attempts in flight, claiming
    /// more as slots free up, so one slow endpoint does not hold up the
    /// others; when nothing is due, looks again every poll interval (with a
    /// read). Prunes old rows now and then.
    pub async fn run(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.config.concurrency as usize,
        ));
        let mut last_prune: Option<Instant> = None;
        let mut idle = false;
        loop {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(Instant::now());
                self.prune().await;
            }
            // Wait for at least one free slot, then claim as many as are free.
            let Ok(first) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let free = u32::try_from(slots.available_permits() + 1).unwrap_or(1);
            let now = self.clock.now();
            if idle {
                match self.hooks.any_due(now).await {
                    Ok(true) => {}
                    Ok(false) => {
                        drop(first);
                        tokio::time::sleep(self.config.poll).await;
                        continue;
                    }
                    Err(e) => {
                        drop(first);
                        tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "webhook look-up failed");
                        tokio::time::sleep(self.config.poll).await;
                        continue;
                    }
                }
            }
            let until = Timestamp::from_millis(
                now.millis() + i64::try_from(lease(&self.config).as_millis()).unwrap_or(i64::MAX),
            );
            let due = match self.hooks.claim_deliveries(now, until, free).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "webhook claim failed");
                    Vec::new()
                }
            };
            idle = due.is_empty();
            let mut permit = Some(first);
            for d in due {
                let permit = match permit.take() {
                    Some(p) => p,
                    None => match Arc::clone(&slots).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    me.attempt(&d).await;
                    drop(permit);
                });
            }
            if idle {
                drop(permit);
                tokio::time::sleep(self.config.poll).await;
            }
        }
    }

    /// Removes events and finished deliveries past the retention.
    async fn prune(&self) {
        let before = Timestamp::from_millis(
            self.clock.now().millis()
                - i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX),
        );
        match self.hooks.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "old events pruned"),
            Err(e) => {
                tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "event pruning failed")
            }
        }
    }

    async fn attempt(&self, d: &DueDelivery) {
        let started = Instant::now();
        let at = self.clock.now();
        let (status, error) = self.send(d, at).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let now = self.clock.now();
        let (next, next_attempt) = match (
            &error,
            self.config.retry.next_attempt(d.retry_from, d.attempt, now),
        ) {
            (None, _) => (DeliveryState::Delivered, None),
            (Some(_), Some(t)) => (DeliveryState::Pending, Some(t)),
            (Some(_), None) => (DeliveryState::Failed, None),
        };
        match next {
            DeliveryState::Delivered => {
                Metrics::add(&self.metrics.webhooks_delivered, 1);
                let waited = now.millis().saturating_sub(d.event_at.millis()).max(0);
                self.metrics
                    .observe_delivery(Duration::from_millis(u64::try_from(waited).unwrap_or(0)));
            }
            DeliveryState::Pending => {
                Metrics::add(&self.metrics.webhooks_retried, 1);
                tracing::info!(endpoint = %d.endpoint_id, event = %d.event_id, attempt = d.attempt, error = error.as_deref().unwrap_or(""), "webhook attempt failed; will retry");
            }
            DeliveryState::Failed => {
                Metrics::add(&self.metrics.webhooks_failed, 1);
                tracing::warn!(endpoint = %d.endpoint_id, event = %d.event_id, attempt = d.attempt, error = error.as_deref().unwrap_or(""), "webhook delivery failed for good");
            }
        }
        let result = AttemptResult {
            at,
            status,
            error,
            duration_ms,
            next,
            next_attempt,
        };
        if let Err(e) = self.hooks.record_attempt(d, &result).await {
            // The lease runs out and the delivery is tried again.
            tracing::warn!(code = %e.code(), detail = e.detail().unwrap_or(""), "recording a webhook attempt failed");
        }
    }

    /// One POST: the status when an answer came, and the error unless it
    /// was a 2xx.
    async fn send(&self, d: &DueDelivery, at: Timestamp) -> (Option<u16>, Option<String>) {
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => return (None, Some(format!("bad URL: {e}"))),
        };
        // A literal address is never resolved, so it is checked here.
        if !self.config.allow_private {
            let literal = url.host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            });
            if let Some(ip) = literal.filter(|ip| !address_allowed(*ip)) {
                return (None, Some(refused(&ip.to_string(), ip)));
            }
        }
        let ts = at.unix_seconds();
        let request = self
            .client
            .post(url)
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", d.secret.sign(&d.event_id, ts, &d.body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(d.body.clone());
        match request.send().await {
            Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
            Ok(res) => {
                let status = res.status();
                (Some(status.as_u16()), Some(format!("HTTP {status}")))
            }
            // Without the URL: its query may carry the receiver's token, and
            // the error is logged and stored.
            Err(e) => (None, Some(describe(&e.without_url(), self.config.timeout))),
        }
    }
}

/// A transport error in a line, with its causes (the resolver's refusal
/// is one of them).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

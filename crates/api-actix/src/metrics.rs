//! Prometheus metrics in the text exposition format: requests and latency by
//! route, bytes through the gateway, uploads issued and files registered.
//! A small registry of our own: a handful of counters needs no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Latency {
    buckets: [u64; 12],
    count: u64,
    sum: f64,
}

/// The process's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Latency>>,
    /// Bytes received by the gateway (object and part PUTs).
    pub gateway_bytes_in: AtomicU64,
    /// Bytes sent by the gateway (GETs).
    pub gateway_bytes_out: AtomicU64,
    /// Upload URLs and multipart uploads issued.
    pub uploads_issued: AtomicU64,
    /// Files registered.
    pub files_registered: AtomicU64,
    /// Queued object deletions completed by the worker.
    pub deletions_retried: AtomicU64,
    /// Abandoned uploads cleaned by the worker.
    pub uploads_expired: AtomicU64,
    /// Times the allocator was asked to return free memory ([`crate::memory`]).
    pub allocator_trims: AtomicU64,
    /// Webhook deliveries answered 2xx.
    pub webhooks_delivered: AtomicU64,
    /// Webhook attempts that failed and will be retried.
    pub webhooks_retried: AtomicU64,
    /// Webhook deliveries that failed for good.
    pub webhooks_failed: AtomicU64,
    /// From an event's commit to its delivery.
    webhook_latency: Mutex<Latency>,
}

/// Upper bounds of the webhook delivery latency histogram, in seconds.
const DELIVERY_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0,
];

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Records one finished request. Labels come from closed sets, so no
    /// client can grow the registry: methods outside HTTP's usual ones are
    /// `other`, routes are the registered templates (or `unmatched`).
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        let status = if (100..600).contains(&status) {
            status
        } else {
            0
        };
        *lock(&self.requests)
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = lock(&self.latency);
        let l = latency
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        l.count += 1;
        l.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                l.buckets[i] += 1;
            }
        }
    }

    /// One delivery made `latency` after its event was written.
    pub fn observe_delivery(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut l = lock(&self.webhook_latency);
        l.count += 1;
        l.sum += secs;
        for (i, bound) in DELIVERY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                l.buckets[i] += 1;
            }
        }
    }

    /// Renders the events this text adds: written by type, then deliveries.
    pub fn render_events(&self, written: &stowage_domain::events::EventCounts) -> String {
        let mut out = String::from(
            "# HELP stowage_events_written_total Events committed with their change, by type.\n\
             # TYPE stowage_events_written_total counter\n",
        );
        for (kind, n) in written.snapshot() {
            let _ = writeln!(out, "stowage_events_written_total{{type=\"{kind}\"}} {n}");
        }
        for (name, help, value) in [
            (
                "stowage_webhook_deliveries_total",
                "Webhook deliveries answered 2xx.",
                &self.webhooks_delivered,
            ),
            (
                "stowage_webhook_retries_total",
                "Webhook attempts that failed and are retried.",
                &self.webhooks_retried,
            ),
            (
                "stowage_webhook_failures_total",
                "Webhook deliveries that failed for good (kept, redeliverable).",
                &self.webhooks_failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let l = lock(&self.webhook_latency);
        out.push_str("# HELP stowage_webhook_delivery_latency_seconds From an event's commit to its delivery.\n# TYPE stowage_webhook_delivery_latency_seconds histogram\n");
        for (i, bound) in DELIVERY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "stowage_webhook_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {}",
                l.buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "stowage_webhook_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}\n\
             stowage_webhook_delivery_latency_seconds_sum {}\n\
             stowage_webhook_delivery_latency_seconds_count {}",
            l.count, l.sum, l.count
        );
        out
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP stowage_http_requests_total HTTP requests by method, route and status.\n",
        );
        out.push_str("# TYPE stowage_http_requests_total counter\n");
        for ((method, route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "stowage_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}", escape(route));
        }
        out.push_str(
            "# HELP stowage_http_request_duration_seconds Request latency by method and route.\n",
        );
        out.push_str("# TYPE stowage_http_request_duration_seconds histogram\n");
        for ((method, route), l) in lock(&self.latency).iter() {
            let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "stowage_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    l.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "stowage_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                l.count
            );
            let _ = writeln!(
                out,
                "stowage_http_request_duration_seconds_sum{{{labels}}} {}",
                l.sum
            );
            let _ = writeln!(
                out,
                "stowage_http_request_duration_seconds_count{{{labels}}} {}",
                l.count
            );
        }
        let counters = [
            (
                "stowage_gateway_bytes_total",
                "Bytes through the object gateway.",
                Some(("direction", "in")),
                &self.gateway_bytes_in,
            ),
            (
                "stowage_gateway_bytes_total",
                "",
                Some(("direction", "out")),
                &self.gateway_bytes_out,
            ),
            (
                "stowage_uploads_issued_total",
                "Upload URLs and multipart uploads issued.",
                None,
                &self.uploads_issued,
            ),
            (
                "stowage_files_registered_total",
                "Files registered.",
                None,
                &self.files_registered,
            ),
            (
                "stowage_object_deletions_retried_total",
                "Queued object deletions completed.",
                None,
                &self.deletions_retried,
            ),
            (
                "stowage_uploads_expired_total",
                "Abandoned uploads cleaned by the lifecycle worker.",
                None,
                &self.uploads_expired,
            ),
            (
                "stowage_allocator_trims_total",
                "Times the allocator was asked to return free memory.",
                None,
                &self.allocator_trims,
            ),
        ];
        for (name, help, label, value) in counters {
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            }
            let v = value.load(Ordering::Relaxed);
            match label {
                Some((k, l)) => {
                    let _ = writeln!(out, "{name}{{{k}=\"{l}\"}} {v}");
                }
                None => {
                    let _ = writeln!(out, "{name} {v}");
                }
            }
        }
        if let Some(heap) = crate::memory::heap_stats() {
            let _ = writeln!(
                out,
                "# HELP stowage_allocator_bytes Heap bytes by state (in use by the program, free but kept by the allocator).\n# TYPE stowage_allocator_bytes gauge\nstowage_allocator_bytes{{state=\"in_use\"}} {}\nstowage_allocator_bytes{{state=\"free\"}} {}",
                heap.in_use, heap.free
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.observe("GET", "/v1/files/{id}", 200, Duration::from_millis(3));
        m.observe("GET", "/v1/files/{id}", 404, Duration::from_millis(30));
        Metrics::add(&m.gateway_bytes_in, 10);
        let text = m.render();
        assert!(text.contains(
            "stowage_http_requests_total{method=\"GET\",route=\"/v1/files/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains("stowage_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/files/{id}\",le=\"0.005\"} 1"));
        assert!(text.contains("stowage_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/files/{id}\",le=\"+Inf\"} 2"));
        assert!(text.contains("stowage_gateway_bytes_total{direction=\"in\"} 10"));
    }
}

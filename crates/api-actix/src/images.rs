//! Running image transformations (docs/api.md §9) so that anonymous
//! clients cannot run up the bill: at most `STOWAGE_IMAGE_WORKERS` at once on
//! the blocking pool (a request that waits longer than the queue timeout for
//! a slot gets `503`), concurrent first requests for one derived image doing
//! the work once, and uncached transforms counted per client IP.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use stowage_domain::image::{peak_bytes, Job, Variant};
use stowage_domain::ports::ImageCodec;
use stowage_domain::service::{FileService, ImageSource};
use stowage_domain::{Error, ErrorKind};
use tokio::sync::Semaphore;

use crate::config::ImageSettings;
use crate::ratelimit::{RateLimitConfig, RateLimiter};

/// A derived image computed for a request: its bytes, and whether they were stored.
pub type Computed = Result<Arc<Vec<u8>>, Error>;

type Flight = Shared<BoxFuture<'static, Computed>>;

/// Upper bounds of the transform latency histogram, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of `/metrics`.
#[derive(Default)]
struct Counts {
    /// Transforms by result (`ok`, `cached`, `invalid`, `unsupported`,
    /// `too_large`, `decode_failed`, `busy`, `rate_limited`, `error`).
    results: Mutex<HashMap<&'static str, u64>>,
    /// Sources decoded (one per transform actually run).
    decodes: AtomicU64,
    latency: Mutex<([u64; 10], u64, f64)>,
}

/// The transformation runner of one process.
pub struct Transformer {
    codec: Arc<dyn ImageCodec>,
    pool: Arc<Pool>,
    slots: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_mib: u32,
    queue_timeout: Duration,
    flights: Mutex<HashMap<String, Flight>>,
    limiter: RateLimiter,
    trusted_proxies: Vec<crate::config::IpRange>,
    counts: Arc<Counts>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Transformer {
    /// A runner with `codec` and these settings.
    pub fn new(codec: Arc<dyn ImageCodec>, settings: &ImageSettings) -> Self {
        Self {
            codec,
            pool: Arc::new(Pool::new(settings.workers.max(1))),
            slots: Arc::new(Semaphore::new(settings.workers.max(1))),
            memory: Arc::new(Semaphore::new(settings.memory_mib as usize)),
            memory_mib: settings.memory_mib,
            queue_timeout: settings.queue_timeout,
            flights: Mutex::new(HashMap::new()),
            limiter: RateLimiter::new(RateLimitConfig {
                per_second: settings.rate_per_sec,
                burst: settings.rate_burst,
                include_service: true,
            }),
            trusted_proxies: settings.trusted_proxies.clone(),
            counts: Arc::default(),
        }
    }

    /// Counts one answer by its result.
    pub fn count(&self, result: &'static str) {
        *lock(&self.counts.results).entry(result).or_default() += 1;
    }

    /// Counts a failed request by its error.
    pub fn count_error(&self, e: &Error) {
        use stowage_domain::ErrorCode as C;
        self.count(match e.code() {
            C::ImageInvalidOptions => "invalid",
            C::ImageUnsupportedFormat => "unsupported",
            C::ImageTooLarge => "too_large",
            C::ImageDecodeFailed => "decode_failed",
            C::RateLimited => "rate_limited",
            C::FileNotFound => "not_found",
            _ if e.kind() == ErrorKind::Unavailable => "busy",
            _ => "error",
        });
    }

    /// The client of a request whose TCP peer is `peer`: the peer itself,
    /// unless it is a trusted proxy — then the nearest address of
    /// `X-Forwarded-For` (read from the right) that is not one.
    pub fn client(&self, peer: Option<std::net::IpAddr>, forwarded_for: Option<&str>) -> String {
        let Some(peer) = peer else {
            return "unknown".to_owned();
        };
        let trusted = |ip: std::net::IpAddr| self.trusted_proxies.iter().any(|r| r.contains(ip));
        if !trusted(peer) {
            return peer.to_string();
        }
        let mut client = peer;
        for hop in forwarded_for.unwrap_or("").rsplit(',') {
            match hop.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client.to_string()
    }

    /// Takes one uncached transform from `client`'s allowance; `Err(wait)` when spent.
    pub fn admit(&self, client: &str) -> Result<(), Duration> {
        self.limiter.check_key(client, Instant::now())
    }

    /// The bytes of `variant` of `source`, computed once however many ask at
    /// once, and stored (unless its file is at its maximum of derived images).
    pub async fn derive(
        &self,
        files: Arc<FileService>,
        source: ImageSource,
        variant: Variant,
        job: Job,
    ) -> Computed {
        let name = format!("{}\n{}", source.file.id, variant.name);
        let flight = {
            let mut flights = lock(&self.flights);
            flights
                .entry(name.clone())
                .or_insert_with(|| {
                    let run = Run {
                        codec: self.codec.clone(),
                        pool: self.pool.clone(),
                        slots: self.slots.clone(),
                        memory: self.memory.clone(),
                        memory_mib: self.memory_mib,
                        queue_timeout: self.queue_timeout,
                        counts: self.counts.clone(),
                    };
                    run.go(files, source, variant, job).boxed().shared()
                })
                .clone()
        };
        let result = flight.clone().await;
        // The first one back retires the flight; later requests find the stored image.
        let mut flights = lock(&self.flights);
        if flights.get(&name).is_some_and(|f| f.ptr_eq(&flight)) {
            flights.remove(&name);
        }
        result
    }

    /// The `/metrics` text of image transformations.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP stowage_image_transforms_total Image requests by result.\n\
             # TYPE stowage_image_transforms_total counter\n",
        );
        let mut results: Vec<_> = lock(&self.counts.results)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        results.sort_unstable();
        for (result, n) in results {
            let _ = writeln!(
                out,
                "stowage_image_transforms_total{{result=\"{result}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP stowage_image_decodes_total Source images decoded.\n\
             # TYPE stowage_image_decodes_total counter\n\
             stowage_image_decodes_total {}",
            self.counts.decodes.load(Ordering::Relaxed)
        );
        let (buckets, count, sum) = *lock(&self.counts.latency);
        out.push_str(
            "# HELP stowage_image_transform_seconds Time of one transform (decode, resize, encode).\n\
             # TYPE stowage_image_transform_seconds histogram\n",
        );
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "stowage_image_transform_seconds_bucket{{le=\"{bound}\"}} {}",
                buckets[i]
            );
        }
        let _ = writeln!(
            out,
            "stowage_image_transform_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             stowage_image_transform_seconds_sum {sum}\n\
             stowage_image_transform_seconds_count {count}"
        );
        out
    }
}

/// What one computation needs, owned (it outlives any one request).
struct Run {
    codec: Arc<dyn ImageCodec>,
    pool: Arc<Pool>,
    slots: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_mib: u32,
    queue_timeout: Duration,
    counts: Arc<Counts>,
}

impl Run {
    async fn go(
        self,
        files: Arc<FileService>,
        source: ImageSource,
        variant: Variant,
        job: Job,
    ) -> Computed {
        // A worker slot, then — with the source's real size known — the
        // memory it needs; both within one queue timeout. Slots bound the
        // sources read at once; the memory budget bounds the pixels.
        let deadline = tokio::time::Instant::now() + self.queue_timeout;
        let busy = || Error::unavailable("image workers: busy past the queue timeout");
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| Error::internal("image workers closed"))?;
        let bytes = files.image_bytes(&source.file).await?;
        let info = self.codec.probe(&bytes)?;
        job.bounds.check_source(info.width, info.height)?;
        let mib = peak_bytes(&info, &job).div_ceil(1 << 20);
        let weight = u32::try_from(mib)
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_mib);
        let memory =
            tokio::time::timeout_at(deadline, self.memory.clone().acquire_many_owned(weight))
                .await
                .map_err(|_| busy())?
                .map_err(|_| Error::internal("image workers closed"))?;
        let started = Instant::now();
        let codec = self.codec.clone();
        self.counts.decodes.fetch_add(1, Ordering::Relaxed);
        let out = self
            .pool
            .run(move || {
                let _held = (slot, memory);
                codec.transform(&bytes, &job)
            })
            .await?;
        let secs = started.elapsed().as_secs_f64();
        {
            let mut l = lock(&self.counts.latency);
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    l.0[i] += 1;
                }
            }
            l.1 += 1;
            l.2 += secs;
        }
        let out = Arc::new(out);
        // Served even when it cannot be stored: the client gets its image,
        // the next request computes it again.
        if files.image_config().max_derivatives == 0 {
            return Ok(out);
        }
        if let Err(e) = files
            .keep_derived_image(&source.file, &variant, out.as_ref().clone())
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "derived image not stored");
        }
        Ok(out)
    }
}

type Task = Box<dyn FnOnce() + Send>;

/// The threads transforms run on: a fixed few, named, apart from the
/// blocking pool that file and database calls share, so a long transform
/// never holds up those and each job's allocations stay in few malloc arenas.
struct Pool {
    tasks: Mutex<std::sync::mpsc::Sender<Task>>,
}

impl Pool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("stowage-image-{i}"))
                .spawn(move || loop {
                    let task = lock(&rx).recv();
                    match task {
                        // The codec catches its own panics; this keeps the
                        // thread alive whatever a task does.
                        Ok(task) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
                        }
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "image worker thread not started");
            }
        }
        Self {
            tasks: Mutex::new(tx),
        }
    }

    /// Runs `f` on one of the pool's threads; its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move || {
            let _ = tx.send(f());
        });
        lock(&self.tasks)
            .send(task)
            .map_err(|_| Error::internal("image worker threads gone"))?;
        rx.await
            .map_err(|_| Error::internal("image worker: the transform panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transformer(trusted: &str) -> Transformer {
        let settings = ImageSettings {
            max_dimension: 4096,
            max_source_pixels: 1,
            max_source_bytes: 1,
            max_derivatives: 1,
            workers: 1,
            queue_timeout: Duration::from_secs(1),
            memory_mib: 16,
            rate_per_sec: 1.0,
            rate_burst: 1.0,
            trusted_proxies: trusted
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().expect("range"))
                .collect(),
        };
        Transformer::new(Arc::new(stowage_adapters_image::Codec), &settings)
    }

    #[test]
    fn the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() {
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().expect(s));
        let none = transformer("");
        assert_eq!(
            none.client(ip("203.0.113.9"), Some("1.2.3.4")),
            "203.0.113.9",
            "spoofed header ignored"
        );
        let cdn = transformer("10.0.0.0/8,192.0.2.1");
        assert_eq!(cdn.client(ip("10.1.1.1"), Some("1.2.3.4")), "1.2.3.4");
        // A client cannot hide behind addresses it writes itself: the
        // nearest untrusted hop counts.
        assert_eq!(
            cdn.client(ip("10.1.1.1"), Some("6.6.6.6, 1.2.3.4, 192.0.2.1")),
            "1.2.3.4"
        );
        assert_eq!(
            cdn.client(ip("203.0.113.9"), Some("1.2.3.4")),
            "203.0.113.9"
        );
        assert_eq!(cdn.client(ip("10.1.1.1"), None), "10.1.1.1");
        assert_eq!(cdn.client(ip("10.1.1.1"), Some("garbage")), "10.1.1.1");
        assert_eq!(cdn.client(None, Some("1.2.3.4")), "unknown");
    }
}

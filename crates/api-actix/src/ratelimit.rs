//! Per-caller rate limiting (token buckets keyed by API key and user), answered
//! with `429 common/rate-limited` and `Retry-After`. Off unless configured; the
//! service principal (secret key without a token) is exempt unless asked for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stowage_domain::model::{OwnerType, Principal};

/// Limits of the buckets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained requests per second per caller (0 disables limiting).
    pub per_second: f64,
    /// Burst size.
    pub burst: f64,
    /// Whether the service principal is limited too.
    pub include_service: bool,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of all callers seen recently.
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Most buckets kept before idle ones are swept.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `principal`; `Err(wait)` when none is left.
    pub fn check(&self, principal: &Principal, now: Instant) -> Result<(), Duration> {
        let c = self.config;
        if c.per_second <= 0.0
            || (principal.identity.kind == OwnerType::Service && !c.include_service)
        {
            return Ok(());
        }
        let t = &principal.tenant;
        let key = format!(
            "{}\0{}\0{}\0{}",
            t.project, t.env, principal.identity.kind, principal.identity.id
        );
        self.take(key, now)
    }

    /// Takes one token from the bucket named `key` (a client IP, say);
    /// `Err(wait)` when none is left.
    pub fn check_key(&self, key: &str, now: Instant) -> Result<(), Duration> {
        if self.config.per_second <= 0.0 {
            return Ok(());
        }
        self.take(key.to_owned(), now)
    }

    fn take(&self, key: String, now: Instant) -> Result<(), Duration> {
        let c = self.config;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_BUCKETS {
            // A bucket idle long enough to be full again carries no state worth keeping.
            let full_after = Duration::from_secs_f64(c.burst / c.per_second);
            buckets.retain(|_, b| now.duration_since(b.updated) < full_after);
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: c.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * c.per_second).min(c.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / c.per_second,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stowage_domain::model::{Environment, Owner, ProjectId, Tenant};

    fn principal(kind: OwnerType, id: &str) -> Principal {
        Principal {
            tenant: Tenant {
                project: ProjectId::new("p").expect("valid"),
                env: Environment::Dev,
            },
            identity: Owner {
                kind,
                id: id.into(),
            },
            admin: kind == OwnerType::Service,
        }
    }

    #[test]
    fn buckets_refill_and_are_per_caller() {
        let l = RateLimiter::new(RateLimitConfig {
            per_second: 2.0,
            burst: 3.0,
            include_service: false,
        });
        let t0 = Instant::now();
        let alice = principal(OwnerType::User, "alice");
        for _ in 0..3 {
            assert!(l.check(&alice, t0).is_ok());
        }
        let wait = l.check(&alice, t0).expect_err("limited");
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        assert!(
            l.check(&principal(OwnerType::User, "bob"), t0).is_ok(),
            "per user"
        );
        assert!(
            l.check(&alice, t0 + Duration::from_millis(500)).is_ok(),
            "refilled"
        );
        for _ in 0..10 {
            assert!(
                l.check(&principal(OwnerType::Service, "k"), t0).is_ok(),
                "service exempt by default"
            );
        }
    }

    #[test]
    fn disabled_by_default() {
        let l = RateLimiter::new(RateLimitConfig {
            per_second: 0.0,
            burst: 0.0,
            include_service: true,
        });
        for _ in 0..100 {
            assert!(l
                .check(&principal(OwnerType::User, "a"), Instant::now())
                .is_ok());
        }
    }
}

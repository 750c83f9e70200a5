//! Webhook endpoints and the rules of delivery (docs/api.md §10): the
//! Standard Webhooks signature, the retry schedule, which addresses an
//! endpoint may resolve to. The HTTP call itself is an adapter's; the
//! bookkeeping is [`crate::ports::WebhookRepository`]'s.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorCode, Result};
use crate::events::EventType;
use crate::model::{Tenant, Timestamp};

const SECRET_PREFIX: &str = "whsec_";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// An endpoint's signing secret: 24–64 random bytes, shown as `whsec_` +
/// base64. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A secret of these (random) bytes.
    ///
    /// # Errors
    /// `common/invalid-request` unless there are 24 to 64 of them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if !(24..=64).contains(&bytes.len()) {
            return Err(Error::with_message(
                ErrorCode::InvalidRequest,
                "a webhook secret has 24 to 64 bytes",
            ));
        }
        Ok(Self(bytes))
    }

    /// `whsec_…` as shown to the endpoint's owner.
    ///
    /// # Errors
    /// `common/invalid-request` for anything else.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || Error::with_message(ErrorCode::InvalidRequest, "expected whsec_<base64>");
        let raw = text.strip_prefix(SECRET_PREFIX).ok_or_else(bad)?;
        Self::from_bytes(B64.decode(raw).map_err(|_| bad())?)
    }

    /// The text form, `whsec_` + base64 (to show once, and to store).
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    /// `webhook-signature` of a message: `v1,` + base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}` keyed with the secret's bytes.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &str) -> String {
        // HMAC takes keys of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// Where a tenant's events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Id (UUID v7).
    pub id: String,
    /// Whose events.
    pub tenant: Tenant,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Signing secret.
    pub secret: WebhookSecret,
    /// The types it receives; empty: every type.
    pub events: Vec<EventType>,
    /// When it was added.
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether it receives events of `kind`.
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// Checks an endpoint URL: `http` or `https`, a host, no credentials, no
/// fragment, no whitespace, at most 2,048 characters. (Where its host
/// resolves to is checked at every delivery: [`address_allowed`].)
///
/// # Errors
/// `common/invalid-request` saying what is wrong.
pub fn check_url(url: &str) -> Result<()> {
    let bad =
        |why: &str| Error::with_message(ErrorCode::InvalidRequest, format!("webhook URL: {why}"));
    if url.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("must not carry credentials"));
    }
    if url.contains('#') {
        return Err(bad("must not have a fragment"));
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("has an invalid port"));
        }
    }
    Ok(())
}

/// Whether a delivery may connect to `ip` when private targets are not
/// allowed: loopback, private (RFC 1918, unique local), link-local,
/// unspecified, shared (CGNAT), multicast, broadcast, documentation and
/// other reserved ranges are refused, also when written as IPv4-mapped
/// IPv6.
pub fn address_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_allowed(v4),
            None => v6_allowed(v6),
        },
    }
}

fn v4_allowed(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 to anything, including private v4
        || (s[0..6] == [0, 0, 0, 0, 0, 0])) // IPv4-compatible (deprecated)
}

/// When to try again after a failed attempt: delays double from `first`
/// (capped at `max_delay`) while the delivery is younger than `horizon`;
/// the last attempt is made at the horizon, after which it has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry, milliseconds.
    pub first_ms: u64,
    /// Longest delay between two attempts, milliseconds.
    pub max_delay_ms: u64,
    /// How long after its first attempt a delivery is retried, milliseconds.
    pub horizon_ms: u64,
}

impl Default for RetryPolicy {
    /// 5 s, 10 s, 20 s, … at most an hour apart, for 24 hours.
    fn default() -> Self {
        Self {
            first_ms: 5_000,
            max_delay_ms: 3_600_000,
            horizon_ms: 24 * 3_600_000,
        }
    }
}

impl RetryPolicy {
    /// The time of the next attempt after attempt number `attempts` (1 for
    /// the first) failed at `now`, for a delivery whose retries count from
    /// `since`; `None` when it has failed for good.
    pub fn next_attempt(
        &self,
        since: Timestamp,
        attempts: u32,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let deadline = since
            .millis()
            .saturating_add(i64::try_from(self.horizon_ms).unwrap_or(i64::MAX));
        if now.millis() >= deadline {
            return None;
        }
        let doublings = attempts.saturating_sub(1).min(40);
        let delay = self
            .first_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_ms.max(1));
        let at = now
            .millis()
            .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
            .min(deadline);
        Some(Timestamp::from_millis(at))
    }
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not delivered yet; retried when due.
    Pending,
    /// A 2xx answer came.
    Delivered,
    /// Retried until the horizon without success (kept; redeliverable).
    Failed,
}

impl DeliveryState {
    /// Stored and shown as `pending`, `delivered`, `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The state stored as `s`.
    ///
    /// # Errors
    /// `common/internal` for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(Error::internal(format!("unknown delivery state `{other}`"))),
        }
    }
}

/// A delivery claimed for one attempt (by this replica, until its lease ends).
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Its secret.
    pub secret: WebhookSecret,
    /// The event's place in the outbox.
    pub event_seq: u64,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The body to send.
    pub body: String,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Retries count from here (the event's commit, or a redelivery).
    pub retry_from: Timestamp,
    /// When the event was written.
    pub event_at: Timestamp,
}

/// What one attempt gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptResult {
    /// When it was made.
    pub at: Timestamp,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// Why it did not deliver (timeout, refused address, status), if it did not.
    pub error: Option<String>,
    /// How long it took, milliseconds.
    pub duration_ms: u64,
    /// What happens next.
    pub next: DeliveryState,
    /// When pending: the next attempt.
    pub next_attempt: Option<Timestamp>,
}

/// One attempt as `stowage webhooks deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The event's id.
    pub event_id: String,
    /// The delivery's state now.
    pub state: DeliveryState,
    /// The attempt's number.
    pub attempt: u32,
    /// When.
    pub at: Timestamp,
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Error, if any.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification
        // (msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330).
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_24_to_64_bytes_and_never_printed() {
        assert!(WebhookSecret::from_bytes(vec![7; 23]).is_err());
        assert!(WebhookSecret::from_bytes(vec![7; 65]).is_err());
        let s = WebhookSecret::from_bytes(vec![7; 32]).expect("secret");
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(&s.expose()).ok(), Some(s.clone()));
        assert_eq!(format!("{s:?}"), "WebhookSecret(..)");
        for bad in [
            "",
            "whsec_",
            "whsec_!!!",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_AAAA",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        for ok in [
            "https://example.com/hooks",
            "http://example.com",
            "https://example.com:8443/a?b=c",
            "http://[2001:db8::1]:80/x",
            "http://127.0.0.1:9000/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ftp://example.com",
            "example.com",
            "https://",
            "https:///path",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://exa mple.com",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://example.com:abc/",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "127.8.8.8",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = bad.parse().expect(bad);
            assert!(!address_allowed(ip), "{bad} must be refused");
        }
        for ok in [
            "1.1.1.1",
            "8.8.8.8",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: IpAddr = ok.parse().expect(ok);
            assert!(address_allowed(ip), "{ok} must be allowed");
        }
    }

    #[test]
    fn retries_double_up_to_the_horizon_then_fail() {
        let p = RetryPolicy {
            first_ms: 1_000,
            max_delay_ms: 8_000,
            horizon_ms: 60_000,
        };
        let t0 = Timestamp::from_millis(1_000_000);
        let at = |ms: i64| Timestamp::from_millis(1_000_000 + ms);
        assert_eq!(p.next_attempt(t0, 1, at(0)), Some(at(1_000)));
        assert_eq!(p.next_attempt(t0, 2, at(1_000)), Some(at(3_000)));
        assert_eq!(p.next_attempt(t0, 3, at(3_000)), Some(at(7_000)));
        assert_eq!(p.next_attempt(t0, 4, at(7_000)), Some(at(15_000)));
        // Capped.
        assert_eq!(p.next_attempt(t0, 9, at(20_000)), Some(at(28_000)));
        assert_eq!(p.next_attempt(t0, 400, at(20_000)), Some(at(28_000)));
        // The last attempt is made at the horizon, then it has failed.
        assert_eq!(p.next_attempt(t0, 12, at(55_000)), Some(at(60_000)));
        assert_eq!(p.next_attempt(t0, 13, at(60_000)), None);
        assert_eq!(p.next_attempt(t0, 13, at(90_000)), None);
        // The defaults: first retry within 10 s, retried for a day.
        let d = RetryPolicy::default();
        assert!(d.first_ms <= 10_000);
        assert!(d.horizon_ms >= 24 * 3_600_000);
    }

    #[test]
    fn delivery_states_round_trip() {
        for s in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ] {
            assert_eq!(DeliveryState::parse(s.as_str()).ok(), Some(s));
        }
        assert!(DeliveryState::parse("done").is_err());
    }
}

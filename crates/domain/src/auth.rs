//! Authentication (docs/api.md §1): API keys (stored only as SHA-256 hashes) and
//! bearer tokens resolve to a [`Principal`]. Token cryptography sits behind the
//! [`TokenVerifier`] port; every rule about what a key or token allows is here.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};
use crate::model::{Owner, OwnerType, Principal, Timestamp};
use crate::ports::{ApiKeyRepository, Clock};

// The stored key and its kind are model types (the repository port stores
// them); re-exported here, where every rule about keys lives.
pub use crate::model::{ApiKeyKind, ApiKeyRecord};

/// Hex SHA-256 of a key's text.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Builds a new key from 32 random bytes supplied by the caller (the domain does
/// no I/O, randomness included). Returns `(key text, hash)`.
pub fn new_api_key(kind: ApiKeyKind, random: [u8; 32]) -> (String, String) {
    let key = format!("{}{}", kind.prefix(), hex::encode(random));
    let hash = hash_key(&key);
    (key, hash)
}

/// Checks the syntax of a key: `pk_` or `sk_` followed by 64 lower-case hex digits.
///
/// # Errors
/// `common/invalid-api-key`.
pub fn parse_api_key(raw: &str) -> Result<ApiKeyKind> {
    let kind = if raw.starts_with("pk_") {
        ApiKeyKind::Publishable
    } else if raw.starts_with("sk_") {
        ApiKeyKind::Secret
    } else {
        return Err(Error::with_message(
            ErrorCode::InvalidApiKey,
            "API key must start with pk_ or sk_",
        ));
    };
    let hex_part = &raw[3..];
    if hex_part.len() != 64
        || !hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(Error::with_message(
            ErrorCode::InvalidApiKey,
            "Malformed API key",
        ));
    }
    Ok(kind)
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// `sub`: the user id.
    pub subject: String,
    /// `role == "admin"`.
    pub admin: bool,
    /// `projectId`, when present.
    pub project_id: Option<String>,
    /// `iat` (Unix seconds), when present.
    pub issued_at: Option<i64>,
}

/// Leeway for token times, seconds (docs/api.md §1).
pub const TOKEN_LEEWAY_SECS: i64 = 30;

/// Verifies bearer tokens (signature, algorithm, `exp`/`nbf` with leeway, `iss`/`aud`).
#[cfg_attr(feature = "testing", mockall::automock)]
pub trait TokenVerifier: Send + Sync {
    /// Verifies a token.
    ///
    /// # Errors
    /// A caller-safe message saying why the token is not acceptable
    /// (malformed, bad signature, wrong algorithm, expired, not yet valid, …).
    fn verify(&self, token: &str) -> std::result::Result<TokenClaims, String>;
}

/// Resolves request credentials to a [`Principal`].
pub struct Authenticator {
    keys: Arc<dyn ApiKeyRepository>,
    tokens: Arc<dyn TokenVerifier>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    /// A new authenticator.
    pub fn new(
        keys: Arc<dyn ApiKeyRepository>,
        tokens: Arc<dyn TokenVerifier>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            keys,
            tokens,
            clock,
        }
    }

    /// Applies docs/api.md §1 to the `X-API-Key` and `Authorization` header values.
    ///
    /// # Errors
    /// `common/invalid-api-key` for a missing, malformed, unknown, revoked or
    /// expired key; `common/authentication-required` for a publishable key without
    /// a usable token, or any unusable token; `common/service-unavailable` when
    /// the key store cannot be reached.
    pub async fn authenticate(
        &self,
        api_key: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Principal> {
        let raw = api_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::with_message(ErrorCode::InvalidApiKey, "Missing X-API-Key header")
            })?;
        let kind = parse_api_key(raw)?;
        let record = self
            .keys
            .find_by_hash(&hash_key(raw))
            .await?
            .ok_or_else(|| Error::with_message(ErrorCode::InvalidApiKey, "Unknown API key"))?;
        let now = self.clock.now();
        if record.kind != kind {
            return Err(Error::with_message(
                ErrorCode::InvalidApiKey,
                "Unknown API key",
            ));
        }
        if record.revoked_at.is_some_and(|t| t <= now) {
            return Err(Error::with_message(
                ErrorCode::InvalidApiKey,
                "API key has been revoked",
            ));
        }
        if record.expires_at.is_some_and(|t| t <= now) {
            return Err(Error::with_message(
                ErrorCode::InvalidApiKey,
                "API key has expired",
            ));
        }

        let token = match authorization.map(str::trim).filter(|h| !h.is_empty()) {
            None => None,
            Some(header) => Some(bearer_token(header)?),
        };
        match (kind, token) {
            (ApiKeyKind::Publishable, None) => Err(Error::with_message(
                ErrorCode::AuthenticationRequired,
                "A publishable key needs an Authorization: Bearer token",
            )),
            (ApiKeyKind::Secret, None) => Ok(Principal {
                identity: Owner {
                    kind: OwnerType::Service,
                    id: record.id.clone(),
                },
                tenant: record.tenant,
                admin: true,
            }),
            (kind, Some(token)) => {
                let claims = self
                    .tokens
                    .verify(token)
                    .map_err(|why| Error::with_message(ErrorCode::AuthenticationRequired, why))?;
                if claims
                    .project_id
                    .as_deref()
                    .is_some_and(|p| p != record.tenant.project.as_str())
                {
                    return Err(Error::with_message(
                        ErrorCode::AuthenticationRequired,
                        "Token belongs to another project",
                    ));
                }
                if !crate::text::is_valid_user_id(&claims.subject) {
                    return Err(Error::with_message(
                        ErrorCode::AuthenticationRequired,
                        "Token subject must be 1-255 characters, not blank, without control characters",
                    ));
                }
                if claims
                    .issued_at
                    .is_some_and(|iat| iat > now.unix_seconds() + TOKEN_LEEWAY_SECS)
                {
                    return Err(Error::with_message(
                        ErrorCode::AuthenticationRequired,
                        "Token is issued in the future",
                    ));
                }
                Ok(Principal {
                    identity: Owner {
                        kind: OwnerType::User,
                        id: claims.subject,
                    },
                    tenant: record.tenant,
                    admin: claims.admin || kind == ApiKeyKind::Secret,
                })
            }
        }
    }
}

fn bearer_token(header: &str) -> Result<&str> {
    let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Error::with_message(
            ErrorCode::AuthenticationRequired,
            "Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// A change to the stored API keys, announced by a backend that can push them
/// (PostgreSQL: `LISTEN`/`NOTIFY`, see the adapter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Changes are heard from now on (a listener connected or reconnected).
    Listening,
    /// The key with this hash was created, revoked or deleted.
    Changed(String),
    /// Changes can no longer be heard (the listener lost its connection).
    Lost,
}

/// An [`ApiKeyRepository`] that remembers lookups by hash (found or not),
/// saving a database round trip on almost every request.
///
/// Two ways to keep it honest:
/// - [`CachedApiKeys::new`]: answers are remembered for `ttl_ms`, so a key
///   revoked through another process keeps its old answer on this replica for
///   at most that long;
/// - [`CachedApiKeys::notified`]: changes are pushed through
///   [`CachedApiKeys::apply`]; nothing is served from memory until the feed says
///   [`KeyChange::Listening`], nor after it says [`KeyChange::Lost`], and a
///   changed key is forgotten as soon as it is announced. The TTL then only
///   bounds a feed that dies silently.
///
/// Revocations through this decorator take effect at once either way.
pub struct CachedApiKeys {
    inner: Arc<dyn ApiKeyRepository>,
    clock: Arc<dyn Clock>,
    ttl_ms: i64,
    state: std::sync::Mutex<CacheState>,
}

type CachedRecord = (Timestamp, Option<ApiKeyRecord>);

struct CacheState {
    entries: std::collections::HashMap<String, CachedRecord>,
    /// Bumped by every forget: a lookup that started before a change must not
    /// store the answer it read before the change.
    generation: u64,
    /// Whether answers may be served from memory.
    live: bool,
}

/// Most lookups remembered; past that the cache starts afresh.
const MAX_CACHED_KEYS: usize = 10_000;

impl CachedApiKeys {
    /// Wraps `inner`; lookups are remembered for `ttl_ms` milliseconds.
    pub fn new(inner: Arc<dyn ApiKeyRepository>, clock: Arc<dyn Clock>, ttl_ms: u64) -> Self {
        Self::with_state(inner, clock, ttl_ms, true)
    }

    /// Wraps `inner` for a pushed change feed: serves nothing from memory until
    /// [`KeyChange::Listening`] is applied.
    pub fn notified(inner: Arc<dyn ApiKeyRepository>, clock: Arc<dyn Clock>, ttl_ms: u64) -> Self {
        Self::with_state(inner, clock, ttl_ms, false)
    }

    fn with_state(
        inner: Arc<dyn ApiKeyRepository>,
        clock: Arc<dyn Clock>,
        ttl_ms: u64,
        live: bool,
    ) -> Self {
        Self {
            inner,
            clock,
            ttl_ms: i64::try_from(ttl_ms).unwrap_or(i64::MAX),
            state: std::sync::Mutex::new(CacheState {
                entries: std::collections::HashMap::new(),
                generation: 0,
                live,
            }),
        }
    }

    /// Applies a change announced by the backend.
    pub fn apply(&self, change: KeyChange) {
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        match change {
            KeyChange::Changed(hash) => {
                state.entries.remove(&hash);
            }
            KeyChange::Listening => {
                // Changes made while nobody listened are unknown: start afresh.
                state.entries.clear();
                state.live = true;
            }
            KeyChange::Lost => {
                state.entries.clear();
                state.live = false;
            }
        }
    }

    /// Forgets every remembered answer matching `pred`.
    fn forget(&self, pred: impl Fn(&str, &Option<ApiKeyRecord>) -> bool) {
        let mut state = self.state();
        state.generation = state.generation.wrapping_add(1);
        state.entries.retain(|hash, (_, r)| !pred(hash, r));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl ApiKeyRepository for CachedApiKeys {
    async fn insert_key(&self, key: &ApiKeyRecord) -> Result<()> {
        let inserted = self.inner.insert_key(key).await;
        // After the write: forgetting also voids any lookup still in flight.
        self.forget(|hash, _| hash == key.key_hash);
        inserted
    }

    async fn find_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let now = self.clock.now();
        let generation = {
            let state = self.state();
            if let (true, Some((at, record))) = (state.live, state.entries.get(key_hash)) {
                if now.millis().saturating_sub(at.millis()) < self.ttl_ms {
                    return Ok(record.clone());
                }
            }
            state.generation
        };
        let record = self.inner.find_by_hash(key_hash).await?;
        let mut state = self.state();
        if state.live && state.generation == generation {
            if state.entries.len() >= MAX_CACHED_KEYS {
                state.entries.clear();
            }
            state
                .entries
                .insert(key_hash.to_owned(), (now, record.clone()));
        }
        Ok(record)
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        self.inner.list_keys().await
    }

    async fn revoke_key(&self, id: &str, at: Timestamp) -> Result<bool> {
        let revoked = self.inner.revoke_key(id, at).await;
        // After the write: forgetting also voids any lookup still in flight.
        self.forget(|_, r| r.as_ref().is_some_and(|r| r.id == id));
        revoked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_syntax() {
        let (key, hash) = new_api_key(ApiKeyKind::Secret, [7; 32]);
        assert!(key.starts_with("sk_") && key.len() == 67);
        assert_eq!(hash, hash_key(&key));
        assert_eq!(parse_api_key(&key).ok(), Some(ApiKeyKind::Secret));
        let hex = "a".repeat(64);
        assert_eq!(
            parse_api_key(&format!("pk_{hex}")).ok(),
            Some(ApiKeyKind::Publishable)
        );
        let bad = [
            String::new(),
            "pk_".to_owned(),
            format!("xx_{hex}"),
            format!("pk_{}", "A".repeat(64)),
            format!("pk_{hex}0"),
            format!("sk_{}", "g".repeat(64)),
        ];
        for bad in bad {
            assert_eq!(
                parse_api_key(&bad).err().map(|e| e.code()),
                Some(ErrorCode::InvalidApiKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc").ok(), Some("abc"));
        assert_eq!(bearer_token("bearer  abc ").ok(), Some("abc"));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            assert!(bearer_token(bad).is_err(), "{bad}");
        }
    }
}

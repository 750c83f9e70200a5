//! Bearer-token verification with `jsonwebtoken`: the algorithm is pinned by
//! configuration (never `none`), `exp` and `sub` are required, 30 s leeway,
//! optional `iss`/`aud`. Also mints HS256 tokens for the dev-only CLI helper.

use jsonwebtoken::errors::ErrorKind as JwtKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use stowage_domain::auth::{TokenClaims, TokenVerifier};

use crate::config::JwtConfig;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, rename = "projectId", skip_serializing_if = "Option::is_none")]
    project_id: Option<String>,
}

/// Verifies tokens as configured.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl JwtVerifier {
    /// Builds the verifier.
    ///
    /// # Errors
    /// A message when the configured key cannot be parsed.
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        let key = match (config.algorithm, &config.public_key_pem) {
            (Algorithm::HS256, _) => DecodingKey::from_secret(config.secret.expose()),
            (Algorithm::RS256, Some(pem)) => {
                DecodingKey::from_rsa_pem(pem).map_err(|e| format!("RS256 public key: {e}"))?
            }
            (Algorithm::ES256, Some(pem)) => {
                DecodingKey::from_ec_pem(pem).map_err(|e| format!("ES256 public key: {e}"))?
            }
            (alg, _) => return Err(format!("no key configured for {alg:?}")),
        };
        let mut validation = Validation::new(config.algorithm);
        validation.leeway = stowage_domain::auth::TOKEN_LEEWAY_SECS.unsigned_abs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation })
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify(&self, token: &str) -> Result<TokenClaims, String> {
        let data =
            decode::<Claims>(token, &self.key, &self.validation).map_err(|e| match e.kind() {
                JwtKind::ExpiredSignature => "Token has expired".to_owned(),
                JwtKind::ImmatureSignature => "Token is not yet valid".to_owned(),
                JwtKind::InvalidSignature => "Token signature is invalid".to_owned(),
                JwtKind::InvalidAlgorithm | JwtKind::InvalidAlgorithmName => {
                    "Token algorithm is not allowed".to_owned()
                }
                JwtKind::InvalidIssuer => "Token issuer is not accepted".to_owned(),
                JwtKind::InvalidAudience => "Token audience is not accepted".to_owned(),
                JwtKind::MissingRequiredClaim(c) => format!("Token is missing the `{c}` claim"),
                _ => "Token is malformed".to_owned(),
            })?;
        let c = data.claims;
        Ok(TokenClaims {
            subject: c.sub,
            admin: c.role.as_deref() == Some("admin"),
            project_id: c.project_id,
            issued_at: c.iat,
        })
    }
}

/// Mints an HS256 user token (dev helper).
///
/// # Errors
/// A message when the configuration is not HS256 or signing fails.
pub fn mint(
    config: &JwtConfig,
    sub: &str,
    role: Option<&str>,
    ttl_secs: i64,
) -> Result<String, String> {
    if config.algorithm != Algorithm::HS256 {
        return Err(
            "`stowage token` only mints HS256 tokens; this server verifies another algorithm"
                .into(),
        );
    }
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: sub.to_owned(),
        exp: Some(now + ttl_secs),
        iat: Some(now),
        role: role.map(str::to_owned),
        project_id: None,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(config.secret.expose()),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config() -> JwtConfig {
        JwtConfig {
            algorithm: Algorithm::HS256,
            secret: Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()),
            public_key_pem: None,
            issuer: None,
            audience: None,
        }
    }

    fn sign(claims: serde_json::Value, alg: Algorithm, key: &[u8]) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).expect("sign")
    }

    #[test]
    fn accepts_good_tokens_and_says_why_others_fail() {
        let cfg = config();
        let v = JwtVerifier::new(&cfg).expect("verifier");
        let key = cfg.secret.expose().to_vec();
        let now = chrono::Utc::now().timestamp();
        let ok = mint(&cfg, "alice", Some("admin"), 60).expect("mint");
        assert_eq!(
            v.verify(&ok).map(|c| (c.subject, c.admin)),
            Ok(("alice".into(), true))
        );
        let within_leeway = sign(
            serde_json::json!({"sub":"a","exp": now - 20}),
            Algorithm::HS256,
            &key,
        );
        assert!(v.verify(&within_leeway).is_ok(), "30 s leeway");
        let cases = [
            (
                sign(
                    serde_json::json!({"sub":"a","exp": now - 60}),
                    Algorithm::HS256,
                    &key,
                ),
                "expired",
            ),
            (
                sign(
                    serde_json::json!({"sub":"a","exp": now + 60, "nbf": now + 120}),
                    Algorithm::HS256,
                    &key,
                ),
                "not yet valid",
            ),
            (
                sign(serde_json::json!({"sub":"a"}), Algorithm::HS256, &key),
                "missing the `exp`",
            ),
            (
                sign(serde_json::json!({"exp": now + 60}), Algorithm::HS256, &key),
                "missing the `sub`",
            ),
            (
                sign(
                    serde_json::json!({"sub":"a","exp": now + 60}),
                    Algorithm::HS256,
                    b"another-secret-another-secret!!!",
                ),
                "signature",
            ),
            (
                sign(
                    serde_json::json!({"sub":"a","exp": now + 60}),
                    Algorithm::HS512,
                    &key,
                ),
                "algorithm",
            ),
            ("not.a.token".to_owned(), "malformed"),
        ];
        for (token, why) in cases {
            let err = v.verify(&token).err().unwrap_or_default();
            assert!(err.contains(why), "{why}: got {err}");
        }
        // alg: none, hand-made.
        use base64::Engine as _;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(serde_json::json!({"alg":"none","typ":"JWT"})),
            b64(serde_json::json!({"sub":"a","exp": now + 60}))
        );
        assert!(v.verify(&none).is_err(), "alg none is never accepted");
    }

    #[test]
    fn issuer_and_audience_are_enforced_when_configured() {
        let cfg = JwtConfig {
            issuer: Some("https://auth".into()),
            audience: Some("stowage".into()),
            ..config()
        };
        let v = JwtVerifier::new(&cfg).expect("verifier");
        let key = cfg.secret.expose().to_vec();
        let exp = chrono::Utc::now().timestamp() + 60;
        let good = sign(
            serde_json::json!({"sub":"a","exp":exp,"iss":"https://auth","aud":"stowage"}),
            Algorithm::HS256,
            &key,
        );
        assert!(v.verify(&good).is_ok());
        let bad_iss = sign(
            serde_json::json!({"sub":"a","exp":exp,"iss":"evil","aud":"stowage"}),
            Algorithm::HS256,
            &key,
        );
        assert!(v
            .verify(&bad_iss)
            .err()
            .unwrap_or_default()
            .contains("issuer"));
        let bad_aud = sign(
            serde_json::json!({"sub":"a","exp":exp,"iss":"https://auth","aud":"other"}),
            Algorithm::HS256,
            &key,
        );
        assert!(v
            .verify(&bad_aud)
            .err()
            .unwrap_or_default()
            .contains("audience"));
    }
}

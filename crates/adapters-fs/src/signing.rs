//! Signed gateway URLs: an HMAC-SHA256 over the method, the key, the expiry and
//! every bound parameter, each length-prefixed so no two inputs sign alike.

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use sha2::Sha256;
use stowage_domain::model::Timestamp;
use stowage_domain::{Error, ErrorCode, Result};

type HmacSha256 = Hmac<Sha256>;

const EXPIRES: &str = "X-Stowage-Expires";
const CONTENT_TYPE: &str = "X-Stowage-Content-Type";
const CONTENT_LENGTH: &str = "X-Stowage-Content-Length";
const CHECKSUM_SHA256: &str = "X-Stowage-Checksum-Sha256";
const UPLOAD_ID: &str = "uploadId";
const PART_NUMBER: &str = "partNumber";
const RESPONSE_CONTENT_TYPE: &str = "response-content-type";
const RESPONSE_CONTENT_DISPOSITION: &str = "response-content-disposition";
const SIGNATURE: &str = "X-Stowage-Signature";

/// The parameters of a signed URL (everything in its query string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedParams {
    /// Expiry, Unix seconds.
    pub expires: i64,
    /// Bound request Content-Type (object PUT).
    pub content_type: Option<String>,
    /// Bound request Content-Length (object PUT).
    pub content_length: Option<u64>,
    /// Bound `x-amz-checksum-sha256` (object or part PUT).
    pub checksum_sha256: Option<String>,
    /// Multipart upload id (part PUT).
    pub upload_id: Option<String>,
    /// Part number (part PUT).
    pub part_number: Option<u32>,
    /// Response Content-Type (GET).
    pub response_content_type: Option<String>,
    /// Response Content-Disposition (GET).
    pub response_content_disposition: Option<String>,
    /// Hex signature.
    pub signature: String,
}

impl SignedParams {
    /// Reads the parameters from decoded query pairs.
    ///
    /// # Errors
    /// `file/access-denied` when a parameter is missing or malformed.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let denied = |m: &str| Error::with_message(ErrorCode::AccessDenied, m.to_owned());
        let mut p = SignedParams::default();
        let mut expires = None;
        for (k, v) in pairs {
            match k {
                EXPIRES => {
                    expires = Some(v.parse::<i64>().map_err(|_| denied("Malformed expiry"))?)
                }
                CONTENT_TYPE => p.content_type = Some(v.to_owned()),
                CONTENT_LENGTH => {
                    p.content_length = Some(v.parse().map_err(|_| denied("Malformed length"))?)
                }
                CHECKSUM_SHA256 => p.checksum_sha256 = Some(v.to_owned()),
                UPLOAD_ID => p.upload_id = Some(v.to_owned()),
                PART_NUMBER => {
                    p.part_number = Some(v.parse().map_err(|_| denied("Malformed part number"))?)
                }
                RESPONSE_CONTENT_TYPE => p.response_content_type = Some(v.to_owned()),
                RESPONSE_CONTENT_DISPOSITION => p.response_content_disposition = Some(v.to_owned()),
                SIGNATURE => p.signature = v.to_owned(),
                _ => {}
            }
        }
        p.expires = expires.ok_or_else(|| denied("URL is not signed"))?;
        if p.signature.is_empty() {
            return Err(denied("URL is not signed"));
        }
        Ok(p)
    }
}

/// What a valid signature allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// PUT of a whole object with exactly this Content-Type (and length, if bound).
    PutObject {
        /// Required Content-Type.
        content_type: String,
        /// Required Content-Length.
        content_length: Option<u64>,
        /// Required `x-amz-checksum-sha256`, which the body must match.
        checksum_sha256: Option<String>,
    },
    /// PUT of one part.
    PutPart {
        /// Upload id.
        upload_id: String,
        /// Part number.
        part_number: u32,
        /// Required `x-amz-checksum-sha256`, which the body must match.
        checksum_sha256: Option<String>,
    },
    /// GET/HEAD answered with these headers.
    Get {
        /// Response Content-Type.
        content_type: String,
        /// Response Content-Disposition.
        content_disposition: String,
    },
}

pub(crate) struct Signer {
    mac: HmacSha256,
}

fn field(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.extend_from_slice(b"-\n"),
        Some(v) => {
            out.extend_from_slice(format!("{}:", v.len()).as_bytes());
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
    }
}

impl Signer {
    pub(crate) fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mac = HmacSha256::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self { mac }
    }

    fn mac(&self, method: &str, key: &str, p: &SignedParams) -> HmacSha256 {
        let mut s = b"stowage-v1\n".to_vec();
        field(&mut s, Some(method));
        field(&mut s, Some(key));
        field(&mut s, Some(&p.expires.to_string()));
        field(&mut s, p.content_type.as_deref());
        field(&mut s, p.content_length.map(|n| n.to_string()).as_deref());
        field(&mut s, p.upload_id.as_deref());
        field(&mut s, p.part_number.map(|n| n.to_string()).as_deref());
        field(&mut s, p.response_content_type.as_deref());
        field(&mut s, p.response_content_disposition.as_deref());
        // Appended only when bound, so URLs signed before digests existed
        // keep their signatures; with it, the extra field changes the MAC.
        if let Some(sum) = &p.checksum_sha256 {
            field(&mut s, Some(sum));
        }
        let mut mac = self.mac.clone();
        mac.update(&s);
        mac
    }

    /// The query string of a signed URL.
    pub(crate) fn sign(&self, method: &str, key: &str, p: SignedParams) -> String {
        let signature = hex::encode(self.mac(method, key, &p).finalize().into_bytes());
        let enc = |v: &str| utf8_percent_encode(v, NON_ALPHANUMERIC).to_string();
        let mut q = vec![format!("{EXPIRES}={}", p.expires)];
        if let Some(v) = &p.content_type {
            q.push(format!("{CONTENT_TYPE}={}", enc(v)));
        }
        if let Some(v) = p.content_length {
            q.push(format!("{CONTENT_LENGTH}={v}"));
        }
        if let Some(v) = &p.checksum_sha256 {
            q.push(format!("{CHECKSUM_SHA256}={}", enc(v)));
        }
        if let Some(v) = &p.upload_id {
            q.push(format!("{UPLOAD_ID}={}", enc(v)));
        }
        if let Some(v) = p.part_number {
            q.push(format!("{PART_NUMBER}={v}"));
        }
        if let Some(v) = &p.response_content_type {
            q.push(format!("{RESPONSE_CONTENT_TYPE}={}", enc(v)));
        }
        if let Some(v) = &p.response_content_disposition {
            q.push(format!("{RESPONSE_CONTENT_DISPOSITION}={}", enc(v)));
        }
        q.push(format!("{SIGNATURE}={signature}"));
        q.join("&")
    }

    /// Checks signature (constant time) and expiry; HEAD is allowed where GET is.
    pub(crate) fn verify(
        &self,
        method: &str,
        key: &str,
        p: &SignedParams,
        now: Timestamp,
    ) -> Result<Grant> {
        let denied = |m: &str| Error::with_message(ErrorCode::AccessDenied, m.to_owned());
        let signed_method = if method == "HEAD" { "GET" } else { method };
        let sig = hex::decode(&p.signature).map_err(|_| denied("Signature does not match"))?;
        self.mac(signed_method, key, p)
            .verify_slice(&sig)
            .map_err(|_| denied("Signature does not match"))?;
        if now.unix_seconds() >= p.expires {
            return Err(denied("URL has expired"));
        }
        let grant = match (signed_method, p) {
            (
                "PUT",
                SignedParams {
                    upload_id: Some(id),
                    part_number: Some(n),
                    content_type: None,
                    ..
                },
            ) => Grant::PutPart {
                upload_id: id.clone(),
                part_number: *n,
                checksum_sha256: p.checksum_sha256.clone(),
            },
            (
                "PUT",
                SignedParams {
                    content_type: Some(ct),
                    upload_id: None,
                    part_number: None,
                    ..
                },
            ) => Grant::PutObject {
                content_type: ct.clone(),
                content_length: p.content_length,
                checksum_sha256: p.checksum_sha256.clone(),
            },
            (
                "GET",
                SignedParams {
                    response_content_type: Some(ct),
                    response_content_disposition: Some(cd),
                    ..
                },
            ) => Grant::Get {
                content_type: ct.clone(),
                content_disposition: cd.clone(),
            },
            _ => return Err(denied("URL does not allow this method")),
        };
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> SignedParams {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            })
            .collect();
        SignedParams::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .expect("params")
    }

    #[test]
    fn sign_verify_tamper_expire() {
        let s = Signer::new(&[1; 32]);
        let now = Timestamp::from_millis(1_000_000);
        let p = SignedParams {
            expires: 2000,
            content_type: Some("text/plain".into()),
            content_length: Some(5),
            ..SignedParams::default()
        };
        let q = s.sign("PUT", "a/b", p.clone());
        let parsed = parse(&q);
        assert_eq!(
            s.verify("PUT", "a/b", &parsed, now).ok(),
            Some(Grant::PutObject {
                content_type: "text/plain".into(),
                content_length: Some(5),
                checksum_sha256: None,
            })
        );
        let code = |r: Result<Grant>| r.err().map(|e| e.code());
        let denied = Some(ErrorCode::AccessDenied);
        assert_eq!(
            code(s.verify("PUT", "a/c", &parsed, now)),
            denied,
            "other key"
        );
        assert_eq!(
            code(s.verify("GET", "a/b", &parsed, now)),
            denied,
            "other method"
        );
        assert_eq!(
            code(s.verify(
                "PUT",
                "a/b",
                &SignedParams {
                    content_length: Some(6),
                    ..parsed.clone()
                },
                now
            )),
            denied
        );
        assert_eq!(
            code(s.verify(
                "PUT",
                "a/b",
                &SignedParams {
                    content_type: Some("image/png".into()),
                    ..parsed.clone()
                },
                now
            )),
            denied
        );
        assert_eq!(
            code(s.verify(
                "PUT",
                "a/b",
                &SignedParams {
                    expires: 9999,
                    ..parsed.clone()
                },
                now
            )),
            denied
        );
        assert_eq!(
            code(s.verify("PUT", "a/b", &parsed, Timestamp::from_millis(2_000_000))),
            denied,
            "expired"
        );
        assert_eq!(
            code(Signer::new(&[2; 32]).verify("PUT", "a/b", &parsed, now)),
            denied,
            "other secret"
        );
        let get = parse(&s.sign(
            "GET",
            "a/b",
            SignedParams {
                expires: 2000,
                response_content_type: Some("text/plain".into()),
                response_content_disposition: Some("attachment; filename=\"a b\"".into()),
                ..SignedParams::default()
            },
        ));
        assert!(matches!(
            s.verify("HEAD", "a/b", &get, now),
            Ok(Grant::Get { .. })
        ));
        assert!(
            SignedParams::from_query([("X-Stowage-Expires", "1")]).is_err(),
            "unsigned"
        );
        let summed = parse(&s.sign(
            "PUT",
            "a/b",
            SignedParams {
                checksum_sha256: Some("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=".into()),
                ..p.clone()
            },
        ));
        assert!(matches!(
            s.verify("PUT", "a/b", &summed, now),
            Ok(Grant::PutObject {
                checksum_sha256: Some(_),
                ..
            })
        ));
        for tampered in [
            SignedParams {
                checksum_sha256: None,
                ..summed.clone()
            },
            SignedParams {
                checksum_sha256: Some("AAAAul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=".into()),
                ..summed.clone()
            },
        ] {
            assert_eq!(
                code(s.verify("PUT", "a/b", &tampered, now)),
                denied,
                "a digest removed or changed"
            );
        }
        assert_eq!(
            code(s.verify(
                "PUT",
                "a/b",
                &SignedParams {
                    checksum_sha256: Some("x".into()),
                    ..parsed.clone()
                },
                now
            )),
            denied,
            "a digest added to a URL signed without one"
        );
    }
}

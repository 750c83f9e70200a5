//! AWS Signature Version 4 query-string presigning. rusoto's presigner drops
//! `Content-Type` from the signed headers, so an S3 server would accept any
//! type; this one signs exactly the headers we bind (host, content-type,
//! content-length), so the store itself rejects a mismatched upload.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Credentials for signing.
#[derive(Clone)]
pub struct SigningKey {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// One request to presign.
#[derive(Debug, Clone)]
pub struct Presign<'a> {
    /// `GET`, `PUT`, …
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// `host` or `host:port`, exactly as the client will send it.
    pub host: &'a str,
    /// Absolute path, unencoded (`/bucket/key`).
    pub path: &'a str,
    /// Extra query parameters (unencoded), signed.
    pub query: Vec<(String, String)>,
    /// Headers the client must send (besides Host), signed.
    pub headers: Vec<(String, String)>,
    /// Region name.
    pub region: &'a str,
    /// Lifetime in seconds (1..=604800).
    pub expires_in: u64,
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything
/// else is `%XX`; `/` stays when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The presigned URL.
pub fn presign(key: &SigningKey, req: &Presign<'_>, now: DateTime<Utc>) -> String {
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = now.format("%Y%m%d").to_string();
    let scope = format!("{date}/{}/s3/aws4_request", req.region);

    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.push(("host".into(), req.host.to_owned()));
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let mut query: Vec<(String, String)> = req.query.clone();
    query.push(("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()));
    query.push((
        "X-Amz-Credential".into(),
        format!("{}/{scope}", key.access_key_id),
    ));
    query.push(("X-Amz-Date".into(), amz_date.clone()));
    query.push(("X-Amz-Expires".into(), req.expires_in.to_string()));
    query.push(("X-Amz-SignedHeaders".into(), signed_headers.clone()));
    if let Some(token) = &key.session_token {
        query.push(("X-Amz-Security-Token".into(), token.clone()));
    }
    let mut encoded: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    encoded.sort();
    let canonical_query = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let canonical_uri = uri_encode(req.path, true);
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical_request = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\nUNSIGNED-PAYLOAD",
        req.method
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac(
        format!("AWS4{}", key.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac(&k_date, req.region.as_bytes());
    let k_service = hmac(&k_region, b"s3");
    let k_signing = hmac(&k_service, b"aws4_request");
    let signature = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    format!(
        "{}://{}{canonical_uri}?{canonical_query}&X-Amz-Signature={signature}",
        req.scheme, req.host
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// The presigned GET example of the AWS S3 SigV4 documentation
    /// ("Authenticating Requests: Using Query Parameters").
    #[test]
    fn aws_documentation_example() {
        let key = SigningKey {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        };
        let now = Utc
            .with_ymd_and_hms(2013, 5, 24, 0, 0, 0)
            .single()
            .expect("date");
        let url = presign(
            &key,
            &Presign {
                method: "GET",
                scheme: "https",
                host: "examplebucket.s3.amazonaws.com",
                path: "/test.txt",
                query: vec![],
                headers: vec![],
                region: "us-east-1",
                expires_in: 86400,
            },
            now,
        );
        assert!(
            url.ends_with(
                "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
            ),
            "{url}"
        );
    }

    #[test]
    fn bound_headers_are_signed() {
        let key = SigningKey {
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
        };
        let url = presign(
            &key,
            &Presign {
                method: "PUT",
                scheme: "http",
                host: "127.0.0.1:9000",
                path: "/bucket/a b/c.txt",
                query: vec![],
                headers: vec![
                    ("Content-Type".into(), "text/plain".into()),
                    ("Content-Length".into(), "5".into()),
                ],
                region: "us-east-1",
                expires_in: 900,
            },
            Utc::now(),
        );
        assert!(
            url.starts_with("http://127.0.0.1:9000/bucket/a%20b/c.txt?"),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"),
            "{url}"
        );
    }
}

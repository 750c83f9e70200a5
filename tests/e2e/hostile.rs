//! Hostile input: token forgery, oversized and deeply nested input, Unicode
//! tricks. Each case asserts the exact status and code. (Traversal through keys
//! and gateway URLs, LIKE wildcards, other tenants' ids, replayed URLs, 10,001
//! parts and malformed sizes are asserted in `errors`, `gateway`, `access`.)

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/e2e/fixtures");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": chrono_now() + 600})
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let public = format!("{FIXTURES}/rs256-test-public.pem");
    let s = spawn_with(&[
        ("STOWAGE_JWT_ALGORITHM", "RS256"),
        ("STOWAGE_JWT_PUBLIC_KEY_FILE", public.as_str()),
    ]);
    let rs = |key: &str, header: Header| {
        let k = EncodingKey::from_rsa_pem(&fixture(key)).expect("rsa key");
        encode(&header, &claims("alice"), &k).expect("sign")
    };
    let as_user = |token: String| Creds {
        key: s.pk.clone(),
        token: Some(token),
    };

    let good = rs("rs256-test-private.pem", Header::new(Algorithm::RS256));
    assert_eq!(
        s.get("/v1/files", &as_user(good)).await.0,
        200,
        "a real RS256 token works"
    );

    // Algorithm confusion: HS256 keyed with the server's RSA public key.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        &EncodingKey::from_secret(&fixture("rs256-test-public.pem")),
    )
    .expect("sign");
    let got = s.get("/v1/files", &as_user(confused)).await;
    assert_error(&got, 401, "common/authentication-required");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("algorithm"),
        "{}",
        got.1
    );

    // alg: none.
    use base64::Engine as _;
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims("alice"))
    );
    assert_error(
        &s.get("/v1/files", &as_user(none)).await,
        401,
        "common/authentication-required",
    );

    // kid tricks: a path or URL in `kid` changes nothing; a foreign signer is refused.
    for kid in [
        "../../../../etc/passwd",
        "https://evil.example/jwks.json",
        "' OR 1=1 --",
    ] {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(kid.into());
        let foreign = rs("rs256-other-private.pem", h.clone());
        assert_error(
            &s.get("/v1/files", &as_user(foreign)).await,
            401,
            "common/authentication-required",
        );
        let same_key = rs("rs256-test-private.pem", h);
        assert_eq!(
            s.get("/v1/files", &as_user(same_key)).await.0,
            200,
            "kid is ignored, the configured key decides"
        );
    }

    // A token for another project.
    let mut other = claims("alice");
    other["projectId"] = json!("someone-else");
    let k = EncodingKey::from_rsa_pem(&fixture("rs256-test-private.pem")).expect("rsa key");
    let token = encode(&Header::new(Algorithm::RS256), &other, &k).expect("sign");
    assert_error(
        &s.get("/v1/files", &as_user(token)).await,
        401,
        "common/authentication-required",
    );
}

#[tokio::test]
async fn oversized_and_nested_input() {
    let s = spawn();
    let alice = s.user("alice");
    // A header far beyond any sane size is refused by the HTTP layer before the app.
    let r = s
        .req(Method::GET, "/v1/files", &alice)
        .header("X-Padding", "a".repeat(256 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 431, "oversized headers"),
        Err(e) => assert!(
            e.is_request() || e.is_connect() || e.is_body(),
            "connection refused is acceptable too: {e}"
        ),
    }
    // Body over 64 KiB, with and without Content-Length.
    let big = format!("{{\"filename\":\"{}\"}}", "a".repeat(100 * 1024));
    let r = s
        .req(Method::POST, "/v1/files/presigned-url", &alice)
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 413, "common/payload-too-large");
    let chunked =
        reqwest::Body::wrap_stream(futures_util::stream::iter(vec![Ok::<_, std::io::Error>(
            big.into_bytes(),
        )]));
    let r = s
        .req(Method::POST, "/v1/files/presigned-url", &alice)
        .header("Content-Type", "application/json")
        .body(chunked)
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 413, "common/payload-too-large");

    // Deeply nested metadata.custom: refused as invalid, never a stack overflow.
    let file = s
        .upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    let id = file["id"].as_str().expect("id");
    let nested = format!(
        "{{\"metadata\":{{\"custom\":{{\"a\":{}1{}}}}}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let r = s
        .req(Method::PATCH, &format!("/v1/files/{id}"), &alice)
        .header("Content-Type", "application/json")
        .body(nested)
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 400, "common/invalid-request");
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({"x": deep});
    }
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/files/{id}"),
            &alice,
            Some(json!({"metadata": {"custom": deep}})),
        )
        .await;
    assert_eq!(status, 200, "100 levels within 8 KiB are fine");
    assert_eq!(
        s.get("/health", &alice).await.0,
        200,
        "the server is still alive"
    );
}

#[tokio::test]
async fn unicode_tricks_in_names() {
    let s = spawn();
    let alice = s.user("alice");
    let presign =
        |name: &str| json!({"filename": name, "contentType": "text/plain", "fileSize": 3});
    for bad in [
        "report\u{202e}fdp.exe",
        "a\u{2066}b",
        "x\u{0}y",
        "tab\there",
        "new\nline",
    ] {
        assert_error(
            &s.post("/v1/files/presigned-url", &alice, presign(bad))
                .await,
            400,
            "file/invalid-name",
        );
    }
    // NFC and NFD spellings are different names, each kept exactly as sent.
    let nfc = "caf\u{e9}.txt";
    let nfd = "cafe\u{301}.txt";
    let a = s.upload(&alice, nfc, "text/plain", b"abc", json!({})).await;
    let b = s.upload(&alice, nfd, "text/plain", b"abc", json!({})).await;
    assert_eq!(
        (a["originalName"].as_str(), b["originalName"].as_str()),
        (Some(nfc), Some(nfd))
    );
    assert!(
        a["s3Key"].as_str().is_some_and(|k| k.is_ascii()),
        "keys never carry the raw name"
    );
    // 255 four-byte characters: valid; 256: too long.
    let long = "\u{1F600}".repeat(255);
    let f = s
        .upload(&alice, &long, "text/plain", b"abc", json!({}))
        .await;
    assert_eq!(
        f["originalName"].as_str().map(|n| n.chars().count()),
        Some(255)
    );
    assert_error(
        &s.post(
            "/v1/files/presigned-url",
            &alice,
            presign(&"\u{1F600}".repeat(256)),
        )
        .await,
        400,
        "file/original-name-too-long",
    );
    // The download names it safely (RFC 5987) whatever it is.
    let (_, dl) = s
        .post(
            &format!("/v1/files/{}/download-url", b["id"].as_str().expect("id")),
            &alice,
            json!({}),
        )
        .await;
    let r = s
        .client
        .get(dl["url"].as_str().expect("url"))
        .send()
        .await
        .expect("get");
    let cd = r
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        cd,
        "attachment; filename=\"cafe_.txt\"; filename*=UTF-8''cafe%CC%81.txt"
    );
}

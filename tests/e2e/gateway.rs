//! The embedded object gateway (docs/api.md §7): signatures bind method, key, type,
//! length and expiry; tampering and misuse get 403 with an error body.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

async fn ticket(s: &Server, creds: &Creds, size: usize) -> serde_json::Value {
    let (status, t) = s
        .post(
            "/v1/files/presigned-url",
            creds,
            json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": size}),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    t
}

#[tokio::test]
async fn signed_urls_refuse_misuse() {
    if s3_mode() {
        return; // The embedded gateway (docs/api.md §7) exists only with the disk store; s3.rs covers S3.
    }
    let s = spawn();
    let alice = s.user("alice");
    let t = ticket(&s, &alice, 5).await;
    let url = t["url"].as_str().expect("url").to_owned();
    let key = t["key"].as_str().expect("key").to_owned();

    let put = |url: String, ct: &'static str, body: &'static [u8]| {
        s.client
            .put(url)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    assert_error(
        &read(put(url.clone(), "image/png", b"hello").await.expect("put")).await,
        403,
        "file/access-denied",
    );
    assert_error(
        &read(
            put(url.clone(), "text/plain", b"hello!")
                .await
                .expect("put"),
        )
        .await,
        403,
        "file/access-denied",
    );
    let tampered = url.replace("X-Stowage-Content-Length=5", "X-Stowage-Content-Length=6");
    assert_error(
        &read(put(tampered, "text/plain", b"hello!").await.expect("put")).await,
        403,
        "file/access-denied",
    );
    let other_key = url.replace(&key, &key.replace("a.txt", "b.txt"));
    assert_error(
        &read(put(other_key, "text/plain", b"hello").await.expect("put")).await,
        403,
        "file/access-denied",
    );
    let unsigned = url.split('?').next().unwrap_or_default().to_owned();
    assert_error(
        &read(put(unsigned, "text/plain", b"hello").await.expect("put")).await,
        403,
        "file/access-denied",
    );
    let get_with_put_url = s.client.get(&url).send().await.expect("get");
    assert_error(&read(get_with_put_url).await, 403, "file/access-denied");
    let traversal = url.replace(&key, "demo/dev/../../../etc/passwd");
    let r = s
        .client
        .put(traversal)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("put");
    assert!(r.status() == 403 || r.status() == 404, "{}", r.status());

    let ok = put(url.clone(), "text/plain", b"hello").await.expect("put");
    assert_eq!(ok.status(), 200);
    // Replaying the upload URL on another key is refused (the key is signed).
    let replay = url.replace(&key, &format!("{}x", key));
    assert_error(
        &read(put(replay, "text/plain", b"hello").await.expect("put")).await,
        403,
        "file/access-denied",
    );
}

#[tokio::test]
async fn expired_urls_are_refused() {
    if s3_mode() {
        return; // The embedded gateway (docs/api.md §7) exists only with the disk store; s3.rs covers S3.
    }
    let s = spawn_with(&[("STOWAGE_UPLOAD_URL_TTL_SECS", "1")]);
    let alice = s.user("alice");
    let t = ticket(&s, &alice, 5).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s
        .client
        .put(t["url"].as_str().expect("url"))
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("put");
    let got = read(r).await;
    assert_error(&got, 403, "file/access-denied");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn downloads_support_head_and_ranges() {
    if s3_mode() {
        return; // The embedded gateway (docs/api.md §7) exists only with the disk store; s3.rs covers S3.
    }
    let s = spawn();
    let alice = s.user("alice");
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let file = s
        .upload(
            &alice,
            "naïve report.bin",
            "application/x-custom",
            &body,
            json!({}),
        )
        .await;
    let dl_url = s
        .download_url(&alice, file["id"].as_str().expect("id"))
        .await;
    let url = &dl_url;
    let head = s.client.head(url).send().await.expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("100000")
    );
    assert_eq!(
        head.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-custom"),
        "no charset added"
    );
    assert_eq!(
        head.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"na_ve report.bin\"; filename*=UTF-8''na%C3%AFve%20report.bin")
    );
    let part = s
        .client
        .get(url)
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 1000-1999/100000")
    );
    assert_eq!(
        part.bytes().await.expect("bytes").as_ref(),
        &body[1000..2000]
    );
    let tail = s
        .client
        .get(url)
        .header("Range", "bytes=-10")
        .send()
        .await
        .expect("range");
    assert_eq!(tail.bytes().await.expect("bytes").as_ref(), &body[99_990..]);
    let bad = s
        .client
        .get(url)
        .header("Range", "bytes=100000-")
        .send()
        .await
        .expect("range");
    assert_eq!(bad.status(), 416);
    let tampered = url.replace(
        "response-content-type=application",
        "response-content-type=text",
    );
    assert_error(
        &read(s.client.get(tampered).send().await.expect("get")).await,
        403,
        "file/access-denied",
    );
    let r = s
        .client
        .request(Method::OPTIONS, url)
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "range")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 200);
}

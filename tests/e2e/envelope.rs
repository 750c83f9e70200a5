//! docs/api.md §12 "Every answer is the envelope", and the resource bounds of the
//! hostile-client review: unknown paths and wrong methods, refused CORS
//! preflights, requests actix-http cannot parse, 503s with `Retry-After`, metrics labels from closed sets,
//! `nosniff` on gateway downloads.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_the_envelope() {
    let s = spawn();
    let alice = s.user("alice");
    for path in ["/", "/nope", "/v1", "/v1/filez", "/v1/files/a/b/c"] {
        let got = s.get(path, &alice).await;
        assert_error(&got, 404, "common/not-found");
    }
    for (method, path, allow) in [
        (Method::DELETE, "/v1/files", "POST, GET"),
        (
            Method::PUT,
            "/v1/files/0192f0c4-0000-7000-8000-000000000000",
            "GET, PATCH, DELETE",
        ),
        (Method::GET, "/v1/files/presigned-url", "POST"),
        (Method::POST, "/health", "GET"),
    ] {
        let r = s
            .req(method.clone(), path, &alice)
            .send()
            .await
            .expect("send");
        let allowed = r
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let got = read(r).await;
        assert_error(&got, 405, "common/method-not-allowed");
        assert!(
            allowed.as_deref().is_some_and(|a| a.starts_with(allow)),
            "{method} {path}: Allow {allowed:?}"
        );
    }
}

/// Sends `request` as raw bytes on a fresh connection; returns everything the
/// server wrote before closing it.
async fn raw_exchange(s: &Server, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = s.base.strip_prefix("http://").expect("http base");
    let mut conn = tokio::net::TcpStream::connect(host).await.expect("connect");
    conn.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection")
    .expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn malformed_requests_answer_in_the_envelope() {
    let s = spawn();
    for (request, status) in [
        (&b"GARBAGE\r\n\r\n"[..], "400"),
        (b"GET /health HTTP/9.9\r\n\r\n", "400"),
        (b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", "400"),
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            "400",
        ),
    ] {
        let answer = raw_exchange(&s, request).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {head}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(v["error"]["code"], "common/invalid-request", "{body}");
        assert!(v["error"]["requestId"].is_string(), "{body}");
    }
    // A well-formed request on the same kind of connection is untouched.
    let answer = raw_exchange(
        &s,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

#[tokio::test]
async fn refused_preflights_answer_in_the_envelope() {
    let s = spawn_with(&[("STOWAGE_CORS_ORIGINS", "https://good.example")]);
    let bad = s
        .client
        .request(Method::OPTIONS, s.url("/v1/files"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .expect("preflight");
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    let got = read(bad).await;
    assert!(got.0 >= 400, "{got:?}");
    assert!(
        got.1["error"]["code"].is_string() && got.1["error"]["requestId"].is_string(),
        "{}",
        got.1
    );
}

#[tokio::test]
async fn metrics_labels_come_from_closed_sets() {
    let s = spawn();
    async fn size(s: &Server) -> usize {
        s.client
            .get(s.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
            .len()
    }
    // Warm every label the run below can legitimately produce.
    let _ = s.client.get(s.url("/nope")).send().await;
    let before = size(&s).await;
    for i in 0..2_000u32 {
        let method = Method::from_bytes(format!("X{:040}", i * 7919).as_bytes()).expect("method");
        let _ = s
            .client
            .request(method, s.url(&format!("/v1/files/{i}/random/{i}")))
            .send()
            .await;
    }
    let after = size(&s).await;
    assert!(
        after < before + 4_096,
        "2,000 random methods and paths grew /metrics from {before} to {after} bytes"
    );
}

#[tokio::test]
async fn gateway_downloads_are_not_sniffed() {
    if s3_mode() {
        return;
    }
    let s = spawn();
    let alice = s.user("alice");
    let file = s
        .upload(
            &alice,
            "a.html",
            "text/html",
            b"<script>1</script>",
            json!({}),
        )
        .await;
    let dl_url = s
        .download_url(&alice, file["id"].as_str().expect("id"))
        .await;
    let r = s.client.get(&dl_url).send().await.expect("download");
    assert_eq!(
        r.headers()
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
}

/// Opens a PUT to `url` that declares `declared` bytes and sends `sent`,
/// then stays silent (a slow client); returns the open connection.
async fn slow_put(
    url: &str,
    content_type: &str,
    declared: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut conn = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head = format!(
        "PUT /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&vec![b'x'; sent]).await.expect("body");
    conn.flush().await.expect("flush");
    conn
}

async fn upload_url(s: &Server, who: &Creds, name: &str) -> String {
    let (status, ticket) = s
        .post(
            "/v1/files/presigned-url",
            who,
            json!({"filename": name, "contentType": "text/plain"}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    ticket["url"].as_str().expect("url").to_owned()
}

#[tokio::test]
async fn slow_bodies_are_bounded() {
    if s3_mode() {
        return; // Bodies go to S3, not through Stowage.
    }
    let s = spawn_with(&[
        ("STOWAGE_BODY_IDLE_TIMEOUT_SECS", "1"),
        ("STOWAGE_MAX_INFLIGHT_UPLOADS", "2"),
    ]);
    let alice = s.user("alice");
    let tmp = s.data.path().join("objects").join("tmp");
    let temp_files = || std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0);

    // A second concurrent PUT through the same URL is refused.
    let url = upload_url(&s, &alice, "a.txt").await;
    let first = slow_put(&url, "text/plain", 1_000_000, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let second = s
        .client
        .put(&url)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("second put");
    assert!(second.headers().get("retry-after").is_some());
    assert_error(&read(second).await, 429, "common/rate-limited");

    // Past the in-flight bound: 503 with Retry-After, never 500.
    let other = upload_url(&s, &alice, "b.txt").await;
    let second_slow = slow_put(&other, "text/plain", 1_000_000, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let third = upload_url(&s, &alice, "c.txt").await;
    let refused = s
        .client
        .put(&third)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("third put");
    assert!(refused.headers().get("retry-after").is_some());
    assert_error(&read(refused).await, 503, "common/service-unavailable");

    // Silent bodies are cut off after the idle limit, their temp files gone,
    // and the slots free again.
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(temp_files(), 0, "the silent bodies' temp files are removed");
    drop((first, second_slow));
    let ok = s
        .client
        .put(&third)
        .header("Content-Type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("put after");
    assert_eq!(ok.status(), 200);
}

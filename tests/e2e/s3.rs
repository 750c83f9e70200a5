//! The S3 backend (runs with `STOWAGE_E2E_S3=1`): bytes go straight between the
//! client and the S3 server, which itself enforces the bound Content-Type and
//! Content-Length and rejects tampered or expired URLs.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn bytes_never_pass_through_the_api_process() {
    if !s3_mode() {
        return;
    }
    let s = spawn();
    let alice = s.user("alice");
    let (_, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": 5}),
        )
        .await;
    let url = ticket["url"].as_str().expect("url");
    assert!(
        !url.starts_with(&s.base),
        "upload URL points at the store, not at stowage: {url}"
    );
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("content-type"),
        "SigV4 with content-type signed: {url}"
    );

    let put = |ct: &'static str, body: &'static str| {
        s.client
            .put(url)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    assert_eq!(
        put("image/png", "hello").await.expect("put").status(),
        403,
        "another Content-Type is refused by S3 itself"
    );
    assert_eq!(
        put("text/plain", "hello!").await.expect("put").status(),
        403,
        "another length is refused by S3 itself"
    );
    let tampered = url.replace("a.txt", "b.txt");
    assert_eq!(
        s.client
            .put(&tampered)
            .header("Content-Type", "text/plain")
            .body("hello")
            .send()
            .await
            .expect("put")
            .status(),
        403
    );
    assert_eq!(put("text/plain", "hello").await.expect("put").status(), 200);

    let (status, file) = s.post("/v1/files", &alice, json!({"s3Key": ticket["key"], "originalName": "a.txt", "mimeType": "text/plain", "size": 5})).await;
    assert_eq!(
        status, 201,
        "registration verified the object with HEAD: {file}"
    );
    let dl_url = s
        .download_url(&alice, file["id"].as_str().expect("id"))
        .await;
    let dl_url = &dl_url;
    assert!(!dl_url.starts_with(&s.base));
    let got = s.client.get(dl_url).send().await.expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"a.txt\"")
    );
    assert_eq!(got.bytes().await.expect("bytes").as_ref(), b"hello");

    let metrics = s.metrics().await;
    assert!(
        metrics.contains("stowage_gateway_bytes_total{direction=\"in\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("stowage_gateway_bytes_total{direction=\"out\"} 0"),
        "{metrics}"
    );
    let gateway = s
        .client
        .get(s.url(&format!(
            "/v1/storage/{}",
            ticket["key"].as_str().expect("key")
        )))
        .send()
        .await
        .expect("get");
    assert_eq!(gateway.status(), 404, "no gateway in S3 mode");
}

#[tokio::test]
async fn registration_checks_the_store() {
    if !s3_mode() {
        return;
    }
    let s = spawn();
    let alice = s.user("alice");
    let (_, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "b.txt", "contentType": "text/plain"}),
        )
        .await;
    let body = json!({"s3Key": ticket["key"], "originalName": "b.txt", "mimeType": "text/plain", "size": 3});
    assert_error(
        &s.post("/v1/files", &alice, body.clone()).await,
        404,
        "file/upload-not-found",
    );
    assert_eq!(
        s.put_presigned(&ticket, b"abcd".to_vec()).await.status(),
        200
    );
    assert_error(
        &s.post("/v1/files", &alice, body).await,
        400,
        "file/size-mismatch",
    );
}

#[tokio::test]
async fn a_missing_bucket_is_reported() {
    if !s3_mode() {
        return;
    }
    let s = spawn_with(&[
        ("STOWAGE_S3_BUCKET", "no-such-bucket"),
        ("STOWAGE_S3_INIT_BUCKET", "0"),
    ]);
    let alice = s.user("alice");
    let (_, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": 3}),
        )
        .await;
    let body = json!({"s3Key": ticket["key"], "originalName": "a.txt", "mimeType": "text/plain", "size": 3});
    assert_error(
        &s.post("/v1/files", &alice, body).await,
        500,
        "file/bucket-not-configured",
    );
    let ready = read(s.client.get(s.url("/ready")).send().await.expect("ready")).await;
    assert_error(&ready, 503, "common/service-unavailable");
}

/// The store's certificate chains to a CA this replica does not trust (a
/// wrong `STOWAGE_S3_CA_FILE`): readiness and every call that needs the store
/// fail at once with 503 and Retry-After, the log names the certificate, and
/// the upload is intact for a correctly configured replica.
#[tokio::test]
async fn a_store_certificate_from_an_untrusted_ca_gives_503s_not_hangs() {
    if !s3_mode() {
        return;
    }
    let s = spawn();
    let other = stowage_adapters_s3::test_server::TestTls::generate().expect("certificates");
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, &other.ca_pem).expect("write");
    let wrong = wrong.display().to_string();
    let bad = s.replica_with(&[
        ("STOWAGE_S3_CA_FILE", wrong.as_str()),
        ("STOWAGE_S3_INIT_BUCKET", "0"),
    ]);
    let alice = s.user("alice");
    let (status, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": 5}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(
        s.put_presigned(&ticket, b"hello".to_vec()).await.status(),
        200
    );

    let started = std::time::Instant::now();
    let res = bad
        .client
        .get(bad.url("/ready"))
        .send()
        .await
        .expect("ready");
    assert!(res.headers().contains_key("retry-after"));
    assert_error(&read(res).await, 503, "common/service-unavailable");
    let body = json!({"s3Key": ticket["key"], "originalName": "a.txt", "mimeType": "text/plain", "size": 5});
    let res = bad.post("/v1/files", &alice, body.clone()).await;
    assert_error(&res, 503, "common/service-unavailable");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "refused, not hung: {:?}",
        started.elapsed()
    );
    let log = bad.log();
    assert!(
        log.contains("certificate"),
        "the log names the TLS failure: {log}"
    );

    let (status, file) = s.post("/v1/files", &alice, body).await;
    assert_eq!(status, 201, "the good replica registers it: {file}");
}

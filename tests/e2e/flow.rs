//! The README walkthrough, step by step, with bytes through the presigned URLs.

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;

#[tokio::test]
async fn readme_walkthrough() {
    let s = spawn();
    let alice = s.user("alice");
    let bytes = b"hello, stowage\n".to_vec();

    // 1. Presign.
    let (status, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "hello.txt", "contentType": "text/plain", "fileSize": bytes.len()}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    for field in [
        "url",
        "key",
        "filename",
        "contentType",
        "method",
        "headers",
        "expiresAt",
    ] {
        assert!(!ticket[field].is_null(), "missing {field}");
    }
    assert_eq!(ticket["headers"]["Content-Type"], "text/plain");
    // 2. PUT the bytes where the URL says.
    let put = s.put_presigned(&ticket, bytes.clone()).await;
    assert_eq!(put.status(), 200);
    let etag = put
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(
        etag,
        Some(format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes))
        ))
    );
    // 3. Register.
    let (status, file) = s
        .post("/v1/files", &alice, json!({"s3Key": ticket["key"], "originalName": "hello.txt", "mimeType": "text/plain", "size": bytes.len(), "metadata": {"tags": ["demo"]}}))
        .await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(
        (
            file["ownerId"].as_str(),
            file["ownerType"].as_str(),
            file["visibility"].as_str()
        ),
        (Some("alice"), Some("user"), Some("private"))
    );
    let id = file["id"].as_str().expect("id").to_owned();
    // 4. Get.
    let (status, got) = s.get(&format!("/v1/files/{id}"), &alice).await;
    assert_eq!((status, &got), (200, &file));
    // 5. Download URL, 6. GET the bytes.
    let (status, dl) = s
        .post(&format!("/v1/files/{id}/download-url"), &alice, json!({}))
        .await;
    assert_eq!(status, 200, "{dl}");
    assert_eq!(
        (
            dl["filename"].as_str(),
            dl["contentType"].as_str(),
            dl["size"].as_u64()
        ),
        (
            Some("hello.txt"),
            Some("text/plain"),
            Some(bytes.len() as u64)
        )
    );
    let res = s
        .client
        .get(dl["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain")
    );
    assert_eq!(
        res.headers()
            .get("content-disposition")
            .and_then(|v| v.to_str().ok()),
        Some("attachment; filename=\"hello.txt\"")
    );
    assert_eq!(
        Sha256::digest(res.bytes().await.expect("body")),
        Sha256::digest(&bytes)
    );
    // 7. Delete.
    let (status, body) = s
        .call(Method::DELETE, &format!("/v1/files/{id}"), &alice, None)
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_error(
        &s.get(&format!("/v1/files/{id}"), &alice).await,
        404,
        "file/not-found",
    );
    let gone = s
        .client
        .get(dl["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download");
    assert_eq!(gone.status(), 404, "the object is gone too");
}

#[tokio::test]
async fn readme_curl_commands_work_verbatim() {
    // The README's walkthrough is a shell script between markers; run it as written.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let script = readme
        .split("<!-- walkthrough:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- walkthrough:end -->").next())
        .expect("walkthrough markers");
    let commands: String = script
        .lines()
        .filter(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n");
    let s = spawn();
    let mut bash = std::process::Command::new("bash");
    if s3_mode() {
        // The test store's certificate comes from the suite's own CA.
        bash.env("CURL_CA_BUNDLE", s3_ca_file());
    }
    let out = bash
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&commands)
        .env("STOWAGE", &s.base)
        .env("PK", &s.pk)
        .env("TOKEN", s.token("alice"))
        .current_dir(s.data.path())
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "walkthrough failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Hello from Stowage"),
        "downloaded bytes printed: {stdout}"
    );
}

#[tokio::test]
async fn health_ready_request_ids_and_cors() {
    let s = spawn();
    let r = s.client.get(s.url("/health")).send().await.expect("health");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
    let r = s
        .client
        .get(s.url("/ready"))
        .header("X-Request-Id", "trace-123")
        .send()
        .await
        .expect("ready");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-123"),
        "sane ids are echoed"
    );
    let r = s
        .client
        .get(s.url("/v1/files"))
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await
        .expect("list");
    let header_id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("id");
    assert_ne!(header_id, "bad id with spaces");
    let (status, body) = read(r).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["requestId"].as_str(),
        Some(header_id.as_str()),
        "body and header carry one id"
    );

    for path in [
        "/v1/files",
        "/v1/files/presigned-url",
        "/v1/storage/demo/dev/x/y/z",
    ] {
        let r = s
            .client
            .request(Method::OPTIONS, s.url(path))
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "PUT")
            .header(
                "Access-Control-Request-Headers",
                "x-api-key,authorization,content-type,range,x-request-id",
            )
            .send()
            .await
            .expect("preflight");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("*")
        );
    }
    let r = s
        .client
        .get(s.url("/v1/files"))
        .header("Origin", "https://app.example")
        .send()
        .await
        .expect("list");
    let exposed = r
        .headers()
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    for h in [
        "etag",
        "content-length",
        "content-range",
        "content-disposition",
        "x-request-id",
    ] {
        assert!(exposed.contains(h), "{h} exposed: {exposed}");
    }
}

#[tokio::test]
async fn cors_origins_are_configurable() {
    let s = spawn_with(&[("STOWAGE_CORS_ORIGINS", "https://good.example")]);
    let preflight = |origin: &'static str| {
        s.client
            .request(Method::OPTIONS, s.url("/v1/files"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .send()
    };
    let ok = preflight("https://good.example").await.expect("preflight");
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://good.example")
    );
    let bad = preflight("https://evil.example").await.expect("preflight");
    assert!(bad.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cli_keys_lifecycle() {
    let s = spawn();
    let key = s.cli(&[
        "keys",
        "create",
        "--project",
        "shop",
        "--env",
        "prod",
        "--kind",
        "secret",
    ]);
    assert!(key.starts_with("sk_") && key.len() == 67, "{key}");
    let creds = Creds {
        key: key.clone(),
        token: None,
    };
    assert_eq!(s.get("/v1/files", &creds).await.0, 200);
    let text = s.cli_output(&["keys", "list"]);
    assert!(
        text.contains("shop") && !text.contains(&key),
        "keys list never shows keys: {text}"
    );
    let id = text
        .lines()
        .find(|l| l.contains("shop"))
        .and_then(|l| l.split_whitespace().next())
        .expect("id")
        .to_owned();
    s.cli(&["keys", "revoke", &id]);
    // With PostgreSQL the server remembers keys (10 s by default) and hears of
    // the revocation through NOTIFY, within milliseconds; with SQLite it looks
    // the key up on every request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut after = s.get("/v1/files", &creds).await;
    while after.0 != 401 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        after = s.get("/v1/files", &creds).await;
    }
    assert_error(&after, 401, "common/invalid-api-key");
    // (Embedded mode: the key must not appear anywhere in the database file.)
    let db = std::fs::read(s.data.path().join("stowage.db")).unwrap_or_default();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "only the hash is stored"
    );
}

//! Faults injected from outside the process: a locked database, a broken store
//! folder, a corrupt row. Each must give the documented code and leak nothing.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::helpers::*;

fn python(script: &str) -> std::process::Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3")
}

#[tokio::test]
async fn a_locked_database_is_service_unavailable_not_a_hang() {
    if postgres_admin_url().is_some() {
        return; // Injects the fault through the SQLite file; the PostgreSQL run covers timeouts in the adapter tests.
    }
    let s = spawn();
    let alice = s.user("alice");
    let db = s.data.path().join("stowage.db");
    let mut locker = python(&format!(
        "import sqlite3, sys, time\nc = sqlite3.connect({:?}, isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(6)\n",
        db.display().to_string()
    ));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("read");
    assert_eq!(line.trim(), "locked");
    let started = std::time::Instant::now();
    let got = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain"}),
        )
        .await;
    assert_error(&got, 503, "common/service-unavailable");
    let first = started.elapsed();
    let retry = s
        .req(reqwest::Method::POST, "/v1/files/presigned-url", &alice)
        .json(&json!({"filename": "b.txt", "contentType": "text/plain"}))
        .send()
        .await
        .expect("presign");
    assert_eq!(retry.status(), 503);
    assert!(
        retry.headers().get("retry-after").is_some(),
        "every 503 carries Retry-After"
    );
    assert!(
        first < std::time::Duration::from_secs(3),
        "answered in {first:?}"
    );
    let _ = locker.kill();
    let _ = locker.wait();
    // Recovery without a restart.
    let (status, _) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain"}),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_broken_store_fails_multipart_init_and_readiness() {
    if s3_mode() {
        return; // Breaks the disk store's folders; s3.rs covers an unreachable S3 store.
    }
    let s = spawn();
    let alice = s.user("alice");
    let multipart = s.data.path().join("objects").join("multipart");
    std::fs::remove_dir_all(&multipart).expect("remove");
    std::fs::write(&multipart, b"not a folder").expect("write");
    let got = s
        .post(
            "/v1/files/multipart/init",
            &alice,
            json!({"filename": "a.bin", "contentType": "application/octet-stream", "fileSize": 10}),
        )
        .await;
    assert_error(&got, 500, "file/upload-init-failed");
    let text = got.1.to_string();
    assert!(
        !text.contains(&s.data.path().display().to_string()),
        "no server path in the body: {text}"
    );

    let objects = s.data.path().join("objects").join("objects");
    std::fs::rename(&objects, s.data.path().join("moved")).expect("rename");
    let ready = read(s.client.get(s.url("/ready")).send().await.expect("ready")).await;
    assert_error(&ready, 503, "common/service-unavailable");
    std::fs::rename(s.data.path().join("moved"), &objects).expect("rename back");
    assert_eq!(
        s.client
            .get(s.url("/ready"))
            .send()
            .await
            .expect("ready")
            .status(),
        200,
        "recovers"
    );
}

#[tokio::test]
async fn a_corrupt_row_is_an_opaque_internal_error() {
    if postgres_admin_url().is_some() {
        return; // Injects the fault through the SQLite file; the PostgreSQL run covers timeouts in the adapter tests.
    }
    let s = spawn();
    let alice = s.user("alice");
    let file = s
        .upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    let id = file["id"].as_str().expect("id");
    let db = s.data.path().join("stowage.db");
    let status = python(&format!(
        "import sqlite3\nc = sqlite3.connect({:?})\nc.execute(\"UPDATE files SET visibility = 'bogus' WHERE id = ?\", ({id:?},))\nc.commit()\n",
        db.display().to_string()
    ))
    .wait()
    .expect("python");
    assert!(status.success());
    let got = s.get(&format!("/v1/files/{id}"), &alice).await;
    assert_error(&got, 500, "common/internal");
    assert_eq!(
        got.1["error"]["message"], "Internal server error",
        "no detail leaks: {}",
        got.1
    );
}

#[tokio::test]
async fn metrics_and_openapi_are_served() {
    let s = spawn();
    let alice = s.user("alice");
    s.upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    let text = s.metrics().await;
    for needle in [
        "stowage_http_requests_total{method=\"POST\",route=\"/v1/files\",status=\"201\"} 1",
        "stowage_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/files/presigned-url\"",
        "stowage_uploads_issued_total 1",
        "stowage_files_registered_total 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let gateway_in = if s3_mode() { 0 } else { 3 };
    let needle = format!("stowage_gateway_bytes_total{{direction=\"in\"}} {gateway_in}");
    assert!(text.contains(&needle), "missing {needle} in\n{text}");
    let (status, doc) = read(
        s.client
            .get(s.url("/openapi.json"))
            .send()
            .await
            .expect("openapi"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(doc["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    assert!(doc["paths"]["/v1/files/{id}"]["patch"].is_object());
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let s = spawn_with(&[
        ("STOWAGE_RATE_LIMIT_PER_SEC", "1"),
        ("STOWAGE_RATE_LIMIT_BURST", "2"),
    ]);
    let alice = s.user("alice");
    assert_eq!(s.get("/v1/files", &alice).await.0, 200);
    assert_eq!(s.get("/v1/files", &alice).await.0, 200);
    let r = s
        .req(reqwest::Method::GET, "/v1/files", &alice)
        .send()
        .await
        .expect("send");
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_error(&read(r).await, 429, "common/rate-limited");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(
        s.get("/v1/files", &s.user("bob")).await.0,
        200,
        "limits are per user"
    );
    for _ in 0..5 {
        assert_eq!(
            s.get("/v1/files", &s.service()).await.0,
            200,
            "the service principal is exempt by default"
        );
    }
}

/// A database endpoint that accepts connections and never answers must not
/// hang start-up: the server gives up within STOWAGE_DB_CONNECT_TIMEOUT_SECS
/// with a message saying so.
#[tokio::test]
async fn a_silent_database_fails_start_up_within_the_deadline() {
    // The kernel completes the handshake into the backlog; nobody reads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let data = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .env("STOWAGE_DATA_DIR", data.path())
            .env("STOWAGE_LISTEN", "127.0.0.1:0")
            .env(
                "DATABASE_URL",
                format!("postgres://stowage@127.0.0.1:{port}/db"),
            )
            .env("STOWAGE_DB_CONNECT_TIMEOUT_SECS", "2")
            .env_remove("STOWAGE_STORAGE_BACKEND")
            .stdin(Stdio::null())
            .output()
            .expect("run stowage")
    })
    .await
    .expect("join");
    drop(listener);
    assert!(!out.status.success(), "start-up must fail");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("did not answer within 2 s"),
        "the message says why: {stderr}"
    );
}

//! docs/api.md §12, "Guarantees that hold over time and under concurrency": each
//! finding of the integrity review is a test here, run on every backend the
//! suite runs on (SQLite + disk, PostgreSQL + disk, PostgreSQL + S3; the
//! streaming limits apply where bytes pass through Stowage's own gateway).

use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const MIB: usize = 1024 * 1024;
const JWT_SECRET: &str = "integrity-test-secret-of-at-least-32-bytes";

/// Presigns `name` and PUTs `bytes` with only the bound headers, as a client
/// of the reference API does; returns the ticket.
async fn presign_and_put(s: &Server, who: &Creds, body: Value, bytes: Vec<u8>) -> Value {
    let (status, ticket) = s.post("/v1/files/presigned-url", who, body).await;
    assert_eq!(status, 200, "{ticket}");
    let put = s.put_presigned(&ticket, bytes).await;
    assert_eq!(put.status(), 200);
    ticket
}

/// A PUT through a URL whose upload is over: refused with an error body by
/// the gateway; on S3 (where a URL cannot be revoked) it lands in staging.
async fn late_put(s: &Server, ticket: &Value, bytes: Vec<u8>) {
    let late = s.put_presigned(ticket, bytes).await;
    if !s3_mode() {
        let got = read(late).await;
        assert_error(&got, 403, "file/access-denied");
    }
}

#[tokio::test]
async fn upload_urls_die_with_registration() {
    let s = spawn();
    let (alice, bob) = (s.user("alice"), s.user("bob"));
    // No fileSize: only the content type is bound.
    // A PNG (registration checks the signature) of 1024 bytes.
    let original = [b"\x89PNG\r\n\x1a\n".as_slice(), &[b'a'; 1016]].concat();
    let ticket = presign_and_put(
        &s,
        &alice,
        json!({"filename": "avatar.png", "contentType": "image/png", "category": "images"}),
        original.clone(),
    )
    .await;
    let (status, file) = s
        .post(
            "/v1/files",
            &alice,
            json!({"s3Key": ticket["key"], "originalName": "avatar.png", "mimeType": "image/png",
                   "size": 1024, "visibility": "public"}),
        )
        .await;
    assert_eq!(status, 201, "{file}");
    let id = file["id"].as_str().expect("id").to_owned();
    late_put(&s, &ticket, vec![b'X'; 11 * MIB]).await;
    assert_eq!(s.download(&bob, &id).await, original, "bytes never change");
    let (_, seen) = s.get(&format!("/v1/files/{id}"), &bob).await;
    assert_eq!(seen["size"], 1024);

    // With a declared size, a same-length swap.
    let ticket = presign_and_put(
        &s,
        &alice,
        json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": 5}),
        b"hello".to_vec(),
    )
    .await;
    let (status, file) = s
        .post(
            "/v1/files",
            &alice,
            json!({"s3Key": ticket["key"], "originalName": "a.txt", "mimeType": "text/plain", "size": 5}),
        )
        .await;
    assert_eq!(status, 201, "{file}");
    late_put(&s, &ticket, b"EVIL!".to_vec()).await;
    assert_eq!(
        s.download(&alice, file["id"].as_str().expect("id")).await,
        b"hello".to_vec()
    );
}

#[tokio::test]
async fn nothing_comes_back_after_delete() {
    let s = spawn();
    let alice = s.user("alice");
    let ticket = presign_and_put(
        &s,
        &alice,
        json!({"filename": "a.txt", "contentType": "text/plain"}),
        b"first".to_vec(),
    )
    .await;
    let key = ticket["key"].as_str().expect("key").to_owned();
    let register =
        json!({"s3Key": key, "originalName": "a.txt", "mimeType": "text/plain", "size": 5});
    let (status, file) = s.post("/v1/files", &alice, register.clone()).await;
    assert_eq!(status, 201, "{file}");
    let id = file["id"].as_str().expect("id").to_owned();
    let (_, old_dl) = s
        .post(&format!("/v1/files/{id}/download-url"), &alice, json!({}))
        .await;
    let got = s
        .call(Method::DELETE, &format!("/v1/files/{id}"), &alice, None)
        .await;
    assert_eq!(got.0, 200, "{}", got.1);

    late_put(&s, &ticket, b"again".to_vec()).await;
    let r = s
        .client
        .get(old_dl["url"].as_str().expect("url"))
        .send()
        .await
        .expect("old download url");
    assert!(
        r.status().is_client_error(),
        "the old download URL serves nothing after DELETE, got {}",
        r.status()
    );
    let again = s.post("/v1/files", &alice, register).await;
    assert_error(&again, 409, "file/s3-key-already-exists");
    assert!(!s.stored_object(&key).exists(), "no object at the key");
}

#[tokio::test]
async fn the_worker_empties_staging_once_upload_urls_expired() {
    let s = spawn_with(&[
        ("STOWAGE_UPLOAD_URL_TTL_SECS", "2"),
        ("STOWAGE_STAGING_GRACE_SECS", "0"),
        ("STOWAGE_LIFECYCLE_INTERVAL_SECS", "1"),
    ]);
    let alice = s.user("alice");
    let ticket = presign_and_put(
        &s,
        &alice,
        json!({"filename": "a.txt", "contentType": "text/plain"}),
        b"first".to_vec(),
    )
    .await;
    let key = ticket["key"].as_str().expect("key").to_owned();
    let (status, file) = s
        .post(
            "/v1/files",
            &alice,
            json!({"s3Key": key, "originalName": "a.txt", "mimeType": "text/plain", "size": 5}),
        )
        .await;
    assert_eq!(status, 201, "{file}");
    let staged = s.stored_object(&format!("_staging/{key}"));
    assert!(
        !staged.exists(),
        "registration moved the object out of staging"
    );
    late_put(&s, &ticket, b"late!".to_vec()).await;
    // On S3 the late PUT landed in staging; the worker removes it once the
    // URL has expired (2 s), on its next round (every second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while staged.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!staged.exists(), "staging is emptied after the URL expired");
    assert_eq!(
        s.download(&alice, file["id"].as_str().expect("id")).await,
        b"first".to_vec()
    );
}

#[tokio::test]
async fn the_gateway_stops_reading_past_the_limit() {
    if s3_mode() {
        return; // Bytes go to S3 directly; registration checks the size there.
    }
    let s = spawn();
    let alice = s.user("alice");

    // An `images` upload without fileSize: 10 MiB at most.
    let (status, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.png", "contentType": "image/png", "category": "images"}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    let got = read(s.put_presigned(&ticket, vec![0u8; 12 * MIB]).await).await;
    assert_error(&got, 400, "file/file-too-large");
    let got = s
        .post(
            "/v1/files",
            &alice,
            json!({"s3Key": ticket["key"], "originalName": "a.png", "mimeType": "image/png", "size": 12 * MIB}),
        )
        .await;
    assert_error(&got, 404, "file/upload-not-found");
    // The URL still works for a body within the limit.
    assert_eq!(s.put_presigned(&ticket, vec![1u8; MIB]).await.status(), 200);

    // An `images` multipart upload declared at 1 MiB: no part may pass it.
    let (status, init) = s
        .post(
            "/v1/files/multipart/init",
            &alice,
            json!({"filename": "b.png", "contentType": "image/png", "category": "images", "fileSize": MIB}),
        )
        .await;
    assert_eq!(status, 200, "{init}");
    let (_, part) = s
        .post(
            "/v1/files/multipart/presigned-url",
            &alice,
            json!({"key": init["key"], "uploadId": init["uploadId"], "partNumber": 1}),
        )
        .await;
    let url = part["url"].as_str().expect("url");
    let got = read(
        s.client
            .put(url)
            .body(vec![0u8; 6 * MIB])
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_error(&got, 400, "file/file-too-large");
    let tmp = s.data.path().join("objects").join("tmp");
    assert_eq!(
        std::fs::read_dir(tmp).map(|d| d.count()).unwrap_or(0),
        0,
        "nothing of a refused body is kept"
    );
}

#[tokio::test]
async fn concurrent_patches_all_apply_and_patch_racing_delete_never_wins() {
    let s = spawn();
    let alice = s.user("alice");
    let file = s
        .upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    let id = file["id"].as_str().expect("id").to_owned();
    let patches = (0..20).map(|i| {
        let (s, alice, id) = (&s, &alice, &id);
        async move {
            s.call(
                Method::PATCH,
                &format!("/v1/files/{id}"),
                alice,
                Some(json!({"metadata": {"custom": {format!("k{i}"): i}}})),
            )
            .await
        }
    });
    for (status, body) in futures_util::future::join_all(patches).await {
        assert_eq!(status, 200, "{body}");
    }
    let (_, got) = s.get(&format!("/v1/files/{id}"), &alice).await;
    let custom = got["metadata"]["custom"].as_object().map(|o| o.len());
    assert_eq!(custom, Some(20), "every key survives: {}", got["metadata"]);

    for round in 0..5 {
        let file = s
            .upload(&alice, "r.txt", "text/plain", b"abc", json!({}))
            .await;
        let path = format!("/v1/files/{}", file["id"].as_str().expect("id"));
        let (patched, deleted) = tokio::join!(
            s.call(
                Method::PATCH,
                &path,
                &alice,
                Some(json!({"originalName": "renamed.txt"}))
            ),
            s.call(Method::DELETE, &path, &alice, None)
        );
        assert_eq!(deleted.0, 200, "{}", deleted.1);
        assert!(
            patched.0 == 200 || patched.1["error"]["code"] == "file/not-found",
            "round {round}: {patched:?}"
        );
        assert_error(&s.get(&path, &alice).await, 404, "file/not-found");
    }
}

/// A multipart upload of `sizes` with every part PUT; returns `(init, parts)`.
async fn multipart_with_parts(s: &Server, who: &Creds, sizes: &[usize]) -> (Value, Value) {
    let total: usize = sizes.iter().sum();
    let (status, init) = s
        .post(
            "/v1/files/multipart/init",
            who,
            json!({"filename": "m.bin", "contentType": "application/octet-stream", "fileSize": total}),
        )
        .await;
    assert_eq!(status, 200, "{init}");
    let mut parts = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let n = i + 1;
        let (_, part) = s
            .post(
                "/v1/files/multipart/presigned-url",
                who,
                json!({"key": init["key"], "uploadId": init["uploadId"], "partNumber": n}),
            )
            .await;
        let r = s
            .client
            .put(part["url"].as_str().expect("url"))
            .body(vec![n as u8; *size])
            .send()
            .await
            .expect("put part");
        assert_eq!(r.status(), 200);
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .expect("etag")
            .to_owned();
        parts.push(json!({"partNumber": n, "etag": etag}));
    }
    (init, Value::Array(parts))
}

#[tokio::test]
async fn complete_racing_abort_has_one_winner_and_leaves_nothing() {
    let s = spawn();
    let alice = s.user("alice");
    for round in 0..8 {
        let (init, parts) = multipart_with_parts(&s, &alice, &[5 * MIB, 5 * MIB, 1]).await;
        let body = json!({"key": init["key"], "uploadId": init["uploadId"], "parts": parts});
        let abort = json!({"key": init["key"], "uploadId": init["uploadId"]});
        let (done, aborted) = tokio::join!(
            s.post("/v1/files/multipart/complete", &alice, body),
            s.post("/v1/files/multipart/abort", &alice, abort)
        );
        let key = init["key"].as_str().expect("key");
        let register = json!({"s3Key": key, "originalName": "m.bin",
            "mimeType": "application/octet-stream", "size": 10 * MIB + 1});
        match (done.0, aborted.0) {
            (200, _) => {
                assert_error(&aborted, 404, "file/upload-not-found");
                let (status, file) = s.post("/v1/files", &alice, register).await;
                assert_eq!(status, 201, "round {round}: {file}");
            }
            (_, 200) => {
                assert_error(&done, 404, "file/upload-not-found");
                let got = s.post("/v1/files", &alice, register).await;
                assert_error(&got, 404, "file/upload-not-found");
                assert!(!s.stored_object(key).exists(), "round {round}");
                let staged = s.stored_object(&format!("_staging/{key}"));
                assert!(!staged.exists(), "round {round}: nothing left in staging");
            }
            _ => panic!("round {round}: exactly one must win: {done:?} {aborted:?}"),
        }
    }
}

#[tokio::test]
async fn racing_puts_of_one_part_leave_one_whole_part() {
    let s = spawn();
    let alice = s.user("alice");
    for round in 0..3 {
        let (status, init) = s
            .post(
                "/v1/files/multipart/init",
                &alice,
                json!({"filename": "p.bin", "contentType": "application/octet-stream", "fileSize": 2 * MIB}),
            )
            .await;
        assert_eq!(status, 200, "{init}");
        let (_, part) = s
            .post(
                "/v1/files/multipart/presigned-url",
                &alice,
                json!({"key": init["key"], "uploadId": init["uploadId"], "partNumber": 1}),
            )
            .await;
        let url = part["url"].as_str().expect("url");
        let bodies = [vec![b'a'; 2 * MIB], vec![b'b'; 2 * MIB]];
        let (ra, rb) = tokio::join!(
            s.client.put(url).body(bodies[0].clone()).send(),
            s.client.put(url).body(bodies[1].clone()).send()
        );
        // Both are answered: with an ETag, or (the gateway, one body per URL
        // at a time) `429` for the one that came second.
        let etags: Vec<String> = [ra, rb]
            .into_iter()
            .map(|r| {
                let r = r.expect("put");
                assert!(
                    r.status() == 200 || r.status() == 429,
                    "round {round}: {}",
                    r.status()
                );
                r.headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert!(
            etags.iter().any(|e| !e.is_empty()),
            "round {round}: one body is kept"
        );
        let mut winner = None;
        for (i, etag) in etags.iter().enumerate().filter(|(_, e)| !e.is_empty()) {
            let (status, _) = s
                .post(
                    "/v1/files/multipart/complete",
                    &alice,
                    json!({"key": init["key"], "uploadId": init["uploadId"],
                           "parts": [{"partNumber": 1, "etag": etag}]}),
                )
                .await;
            if status == 200 {
                winner = Some(i);
                break;
            }
        }
        let i = winner.unwrap_or_else(|| panic!("round {round}: neither ETag completes"));
        let (status, file) = s
            .post(
                "/v1/files",
                &alice,
                json!({"s3Key": init["key"], "originalName": "p.bin",
                       "mimeType": "application/octet-stream", "size": 2 * MIB}),
            )
            .await;
        assert_eq!(status, 201, "{file}");
        let got = s.download(&alice, file["id"].as_str().expect("id")).await;
        assert!(
            got == bodies[i],
            "round {round}: the whole body of the winner"
        );
    }
}

#[tokio::test]
async fn completion_compares_part_etags_on_every_store() {
    let s = spawn();
    let alice = s.user("alice");
    let (init, _) = multipart_with_parts(&s, &alice, &[100]).await;
    let got = s
        .post(
            "/v1/files/multipart/complete",
            &alice,
            json!({"key": init["key"], "uploadId": init["uploadId"],
                   "parts": [{"partNumber": 1, "etag": format!("\"{}\"", "0".repeat(32))}]}),
        )
        .await;
    assert_error(&got, 400, "file/invalid-parts-array");
}

fn hs256(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("sign")
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn text_is_text_on_every_backend() {
    let s = spawn_with(&[("STOWAGE_JWT_SECRET", JWT_SECRET)]);
    let alice = s.user("alice");
    let file = s
        .upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    for query in [
        "search=%00",
        "ownerId=a%00",
        "mimeType=text/pl%00ain",
        "search=%1b[31m",
        "cursor=%00",
    ] {
        let got = s.get(&format!("/v1/files?{query}"), &alice).await;
        assert_error(&got, 400, "common/invalid-request");
    }
    let got = s
        .call(
            Method::PATCH,
            &format!("/v1/files/{}", file["id"].as_str().expect("id")),
            &alice,
            Some(json!({"metadata": {"description": "a\u{0}b"}})),
        )
        .await;
    assert_error(&got, 400, "common/invalid-request");
    let got = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.txt", "contentType": "text/plain", "extra": {"k\u{0}": 1}}),
        )
        .await;
    assert_error(&got, 400, "common/invalid-request");

    let now = unix_now();
    let as_user = |token: String| Creds {
        key: s.pk.clone(),
        token: Some(token),
    };
    for claims in [
        json!({"sub": "a\u{0}b", "exp": now + 600}),
        json!({"sub": " ", "exp": now + 600}),
        json!({"sub": "\u{200b}", "exp": now + 600}),
        json!({"sub": "x".repeat(20_000), "exp": now + 600}),
        json!({"sub": "alice", "exp": now + 600, "iat": now + 10 * 365 * 86_400}),
    ] {
        let got = s.get("/v1/files", &as_user(hs256(claims.clone()))).await;
        assert_error(&got, 401, "common/authentication-required");
    }
    let ok = hs256(json!({"sub": "alice", "exp": now + 600, "iat": now}));
    assert_eq!(s.get("/v1/files", &as_user(ok)).await.0, 200);
}

#[tokio::test]
async fn cursors_are_sealed_to_their_caller_and_query() {
    let s = spawn();
    let (alice, bob) = (s.user("alice"), s.user("bob"));
    for i in 0..3 {
        s.upload(
            &alice,
            &format!("f{i}.txt"),
            "text/plain",
            b"abc",
            json!({"visibility": "public"}),
        )
        .await;
    }
    let (status, page) = s.get("/v1/files?limit=1", &alice).await;
    assert_eq!(status, 200, "{page}");
    let cursor = page["pagination"]["nextCursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let (status, next) = s
        .get(&format!("/v1/files?limit=1&cursor={cursor}"), &alice)
        .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["pagination"]["total"], 3);

    // An edited total, with the original seal.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (payload, tag) = cursor.split_once('.').expect("sealed form");
    let mut decoded: Value =
        serde_json::from_slice(&b64.decode(payload).expect("base64")).expect("json");
    decoded["t"] = json!(123_456_789);
    let forged = format!("{}.{tag}", b64.encode(decoded.to_string()));
    for (who, path) in [
        (&alice, format!("/v1/files?limit=1&cursor={forged}")),
        (&bob, format!("/v1/files?limit=1&cursor={cursor}")),
        (
            &alice,
            format!("/v1/files?limit=1&search=f&cursor={cursor}"),
        ),
        (
            &alice,
            format!("/v1/files?limit=1&sortDirection=asc&cursor={cursor}"),
        ),
    ] {
        let got = s.get(&path, who).await;
        assert_error(&got, 400, "common/invalid-request");
    }
}

#[tokio::test]
async fn a_hundred_uploads_issued_at_once_each_carry_their_own_key_and_register() {
    // Issues that arrive together are recorded together (one batch, one
    // commit): each caller still gets its own recorded upload.
    let s = spawn();
    let users: Vec<_> = (0..4).map(|i| s.user(&format!("racer-{i}"))).collect();
    let issues = (0..100).map(|i| {
        let (s, creds) = (&s, &users[i % users.len()]);
        async move {
            let name = format!("race-{i}.txt");
            let bytes = format!("upload number {i}").into_bytes();
            let ticket = s.issue_and_put(creds, &name, "text/plain", &bytes).await;
            (i, ticket, bytes)
        }
    });
    let tickets = futures_util::future::join_all(issues).await;
    let keys: std::collections::HashSet<_> = tickets
        .iter()
        .map(|(_, t, _)| t["key"].as_str().expect("key").to_owned())
        .collect();
    assert_eq!(keys.len(), 100, "every issue has a key of its own");
    let registrations = tickets.iter().map(|(i, ticket, bytes)| {
        let (s, creds) = (&s, &users[i % users.len()]);
        async move {
            let body = json!({"s3Key": ticket["key"], "originalName": format!("race-{i}.txt"),
                              "mimeType": "text/plain", "size": bytes.len()});
            let (status, file) = s.post("/v1/files", creds, body).await;
            assert_eq!(status, 201, "upload {i}: {file}");
            (i, file["id"].as_str().expect("id").to_owned())
        }
    });
    for (i, id) in futures_util::future::join_all(registrations).await {
        if i % 10 == 0 {
            let want = format!("upload number {i}").into_bytes();
            assert_eq!(s.download(&users[i % users.len()], &id).await, want);
        }
    }
}

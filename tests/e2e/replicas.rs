//! Scale-out with real replicas: three `stowage serve` processes on one
//! PostgreSQL database and one S3 server (the suite's PostgreSQL + S3 run),
//! a mixed workload spread across them.

use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::*;

const JWT_SECRET: &str = "replicas-share-this-secret-of-32-bytes-or-more";

fn replicated() -> bool {
    s3_mode() && postgres_admin_url().is_some()
}

#[tokio::test]
async fn three_replicas_share_everything_that_matters() {
    if !replicated() {
        return;
    }
    let a = spawn_with(&[
        ("STOWAGE_JWT_SECRET", JWT_SECRET),
        ("STOWAGE_LIFECYCLE_INTERVAL_SECS", "1"),
        ("STOWAGE_ABANDONED_UPLOAD_TTL_SECS", "2"),
    ]);
    let b = a.replica();
    let c = a.replica();
    let (alice, bob) = (a.user("alice"), a.user("bob"));

    // A file registered through one is read, patched, shared and deleted
    // through the others.
    let file = a
        .upload(&alice, "a.txt", "text/plain", b"hello", json!({}))
        .await;
    let path = format!("/v1/files/{}", file["id"].as_str().expect("id"));
    assert_eq!(b.get(&path, &alice).await.0, 200);
    let (status, patched) = c
        .call(
            Method::PATCH,
            &path,
            &alice,
            Some(json!({"visibility": "shared", "sharedWith": ["bob"]})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(b.get(&path, &bob).await.0, 200, "bob sees the shared file");
    assert_eq!(b.call(Method::DELETE, &path, &alice, None).await.0, 200);
    assert_error(&a.get(&path, &alice).await, 404, "file/not-found");

    // A cursor from one replica works on the others.
    for i in 0..3 {
        a.upload(
            &alice,
            &format!("p{i}.txt"),
            "text/plain",
            b"abc",
            json!({}),
        )
        .await;
    }
    let (_, page) = a.get("/v1/files?limit=1", &alice).await;
    let cursor = page["pagination"]["nextCursor"].as_str().expect("cursor");
    for s in [&b, &c] {
        let (status, next) = s
            .get(&format!("/v1/files?limit=1&cursor={cursor}"), &alice)
            .await;
        assert_eq!(status, 200, "{next}");
    }

    // A key revoked through the CLI is refused by all three within 2 s.
    let key = a.cli(&[
        "keys",
        "create",
        "--project",
        "repl",
        "--env",
        "dev",
        "--kind",
        "secret",
    ]);
    let service = Creds {
        key: key.clone(),
        token: None,
    };
    for s in [&a, &b, &c] {
        assert_eq!(s.get("/v1/files", &service).await.0, 200);
    }
    let listed = a.cli_output(&["keys", "list"]);
    let id = listed
        .lines()
        .find(|l| l.contains("repl"))
        .and_then(|l| l.split_whitespace().next())
        .expect("key id")
        .to_owned();
    a.cli(&["keys", "revoke", &id]);
    let revoked_at = std::time::Instant::now();
    for s in [&a, &b, &c] {
        loop {
            if s.get("/v1/files", &service).await.0 == 401 {
                break;
            }
            assert!(
                revoked_at.elapsed() < std::time::Duration::from_secs(2),
                "a revoked key is refused by every replica within 2 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    // Each abandoned upload is swept exactly once between the three workers.
    let before: u64 = [
        a.counter("stowage_uploads_expired_total").await,
        b.counter("stowage_uploads_expired_total").await,
        c.counter("stowage_uploads_expired_total").await,
    ]
    .iter()
    .sum();
    for i in 0..6 {
        let (status, ticket) = a
            .post(
                "/v1/files/presigned-url",
                &alice,
                json!({"filename": format!("ab{i}.txt"), "contentType": "text/plain"}),
            )
            .await;
        assert_eq!(status, 200, "{ticket}");
        assert_eq!(
            a.put_presigned(&ticket, b"abandoned".to_vec())
                .await
                .status(),
            200
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut swept = 0;
    while std::time::Instant::now() < deadline {
        swept = [
            a.counter("stowage_uploads_expired_total").await,
            b.counter("stowage_uploads_expired_total").await,
            c.counter("stowage_uploads_expired_total").await,
        ]
        .iter()
        .sum::<u64>()
            - before;
        if swept >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let after: u64 = [
        a.counter("stowage_uploads_expired_total").await,
        b.counter("stowage_uploads_expired_total").await,
        c.counter("stowage_uploads_expired_total").await,
    ]
    .iter()
    .sum();
    assert_eq!(
        (swept, after - before),
        (6, 6),
        "six abandoned uploads, swept once each between the replicas"
    );
}

#[tokio::test]
async fn sigkill_of_a_replica_loses_no_registered_file() {
    if !replicated() {
        return;
    }
    let a = spawn_with(&[("STOWAGE_JWT_SECRET", JWT_SECRET)]);
    let b = a.replica();
    let mut c = a.replica();
    let alice = a.user("alice");
    let replicas = [&a, &b, &c];
    let uploads = (0..30).map(|i| {
        let s = replicas[i % 3];
        let alice = alice.clone();
        async move {
            let body: Vec<u8> = (0..4096u32).map(|b| (b as usize * 31 + i) as u8).collect();
            // Any request to the victim may be cut by the kill: it then
            // registers nothing, which is all this test allows it to do.
            let r = s
                .req(Method::POST, "/v1/files/presigned-url", &alice)
                .json(&json!({"filename": format!("k{i}.bin"), "contentType": "application/octet-stream"}))
                .send()
                .await
                .ok()?;
            let (status, ticket) = read(r).await;
            if status != 200 || ticket["url"].as_str().is_none() {
                return None;
            }
            if s.put_presigned(&ticket, body.clone()).await.status() != 200 {
                return None;
            }
            let r = s
                .req(Method::POST, "/v1/files", &alice)
                .json(&json!({"s3Key": ticket["key"], "originalName": format!("k{i}.bin"),
                              "mimeType": "application/octet-stream", "size": body.len()}))
                .send()
                .await
                .ok()?;
            let (status, file) = read(r).await;
            (status == 201).then(|| (file["id"].as_str().map(str::to_owned), Sha256::digest(&body).to_vec()))
        }
    });
    let victim = c.pid();
    let load = futures_util::future::join_all(uploads);
    let kill = async {
        // Mid-load: some of the victim's requests are answered, some cut.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status();
    };
    let (results, ()) = tokio::join!(load, kill);
    c.kill();
    let registered: Vec<_> = results.into_iter().flatten().collect();
    assert!(!registered.is_empty());
    for (id, digest) in registered {
        let id = id.expect("id");
        let bytes = a.download(&alice, &id).await;
        assert_eq!(
            Sha256::digest(&bytes).to_vec(),
            digest,
            "a file that got a 201 is there, byte-identical"
        );
    }
}

//! `stowage transfer`: from the embedded default (SQLite + disk) to
//! PostgreSQL + the S3 server, killed midway and resumed, then served by a
//! server on the target exactly as the source served it; and back again.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

const JWT: &str = "e2e-transfer-jwt-secret-of-enough-length";
const MIB: usize = 1024 * 1024;

/// Runs `stowage transfer` with `server`'s configuration as the source, plus
/// `env`; `(success, stdout + stderr)`.
fn transfer(server: &Server, env: &[(String, String)], args: &[&str]) -> (bool, String) {
    let out = transfer_command(server, env, args)
        .output()
        .expect("run transfer");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn transfer_command(server: &Server, env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_remove("DATABASE_URL")
        .envs(server.cli_env())
        .envs(env.iter().cloned())
        .arg("transfer")
        .args(args)
        .arg("--no-progress");
    cmd
}

/// What a listing shows a caller: ids in order and the total.
async fn listing(server: &Server, creds: &Creds, query: &str) -> (Vec<String>, u64) {
    let (status, list) = server.get(&format!("/v1/files?{query}"), creds).await;
    assert_eq!(status, 200, "{list}");
    let ids = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    (ids, list["pagination"]["total"].as_u64().expect("total"))
}

/// Uploads `bytes` as a multipart upload of 5 MiB parts and registers it.
async fn multipart(server: &Server, creds: &Creds, name: &str, bytes: &[u8]) -> Value {
    let (status, init) = server
        .post(
            "/v1/files/multipart/init",
            creds,
            json!({"filename": name, "contentType": "application/octet-stream", "fileSize": bytes.len()}),
        )
        .await;
    assert_eq!(status, 200, "{init}");
    let mut parts = Vec::new();
    for (i, chunk) in bytes.chunks(5 * MIB).enumerate() {
        let n = i + 1;
        let (status, part) = server
            .post(
                "/v1/files/multipart/presigned-url",
                creds,
                json!({"key": init["key"], "uploadId": init["uploadId"], "partNumber": n}),
            )
            .await;
        assert_eq!(status, 200, "{part}");
        let r = server
            .client
            .put(part["url"].as_str().expect("url"))
            .body(chunk.to_vec())
            .send()
            .await
            .expect("put part");
        assert_eq!(r.status(), 200);
        let etag = header(&r, "etag").expect("etag");
        parts.push(json!({"partNumber": n, "etag": etag.trim_matches('"')}));
    }
    let (status, done) = server
        .post(
            "/v1/files/multipart/complete",
            creds,
            json!({"key": init["key"], "uploadId": init["uploadId"], "parts": parts}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (status, file) = server
        .post(
            "/v1/files",
            creds,
            json!({"s3Key": init["key"], "originalName": name, "mimeType": "application/octet-stream", "size": bytes.len()}),
        )
        .await;
    assert_eq!(status, 201, "{file}");
    file
}

fn object_count(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                object_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_to_postgres_and_s3_killed_resumed_and_served_the_same() {
    // Needs the suite's PostgreSQL; runs once, in the PostgreSQL + disk run.
    if s3_mode() || postgres_admin_url().is_none() {
        return;
    }
    let source = spawn_on(
        Backends {
            postgres: false,
            s3: false,
        },
        &[("STOWAGE_JWT_SECRET", JWT)],
    );
    let (alice, bob, service) = (source.user("alice"), source.user("bob"), source.service());

    // Every visibility, shares, metadata, the service principal, 40 small
    // files (the transfer is killed among them), one multipart file.
    let mut files: Vec<(String, Vec<u8>, Creds)> = Vec::new();
    for i in 0..40usize {
        let bytes: Vec<u8> = (0..(64 * 1024 + i * 911))
            .map(|b| (b * (i + 3)) as u8)
            .collect();
        let (creds, extra) = match i % 5 {
            0 => (
                &alice,
                json!({"visibility": "private", "metadata": {"n": i, "tags": ["a", "b"]}}),
            ),
            1 => (&alice, json!({"visibility": "public"})),
            2 => (&bob, json!({"visibility": "protected"})),
            3 => (
                &alice,
                json!({"visibility": "shared", "sharedWith": ["bob", "carol"]}),
            ),
            _ => (&service, json!({"visibility": "private"})),
        };
        let file = source
            .upload(
                creds,
                &format!("f{i:02}.bin"),
                "application/octet-stream",
                &bytes,
                extra,
            )
            .await;
        files.push((
            file["id"].as_str().expect("id").to_owned(),
            bytes,
            creds.clone(),
        ));
    }
    let big: Vec<u8> = (0..(11 * MIB)).map(|b| (b % 251) as u8).collect();
    let file = multipart(&source, &alice, "big.bin", &big).await;
    files.push((
        file["id"].as_str().expect("id").to_owned(),
        big,
        alice.clone(),
    ));
    // An upload whose bytes arrived but which is not registered yet.
    let (status, pending) = source
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "late.txt", "contentType": "text/plain", "fileSize": 4}),
        )
        .await;
    assert_eq!(status, 200, "{pending}");
    assert_eq!(
        source
            .put_presigned(&pending, b"late".to_vec())
            .await
            .status(),
        200
    );
    // A revoked key.
    let created = source.cli_output(&[
        "keys",
        "create",
        "--project",
        "demo",
        "--env",
        "dev",
        "--kind",
        "secret",
    ]);
    let revoked = created.lines().last().unwrap_or_default().trim().to_owned();
    let revoked_id = created
        .split_whitespace()
        .nth(3)
        .expect("created secret key <id> for …")
        .to_owned();
    source.cli(&["keys", "revoke", &revoked_id]);
    // A webhook endpoint, with the secret its receiver verifies with.
    let hook = source.cli_output(&[
        "webhooks",
        "add",
        "--project",
        "demo",
        "--env",
        "dev",
        "--url",
        "https://example.com/hooks",
        "--events",
        "file.deleted",
    ]);
    let hook_id = hook
        .split_whitespace()
        .nth(2)
        .expect("added endpoint <id> …")
        .to_owned();

    // Onto itself: refused.
    let own_db = source.data.path().join("stowage.db").display().to_string();
    let own_dir = source.data.path().display().to_string();
    let (ok, out) = transfer(
        &source,
        &[],
        &[
            "--to-database",
            &own_db,
            "--to-storage",
            "fs",
            "--to-data-dir",
            &own_dir,
        ],
    );
    assert!(!ok && out.contains("the target is the source"), "{out}");

    // The target: a fresh database and bucket.
    let (db_name, db_url) = fresh_postgres().expect("postgres");
    let bucket = fresh_bucket();
    let mut target_env = s3_env("STOWAGE_TO_", &bucket);
    target_env.push(("STOWAGE_TRANSFER_PART_SIZE".into(), (5 * MIB).to_string()));
    let to = [
        "--to-database",
        db_url.as_str(),
        "--to-storage",
        "s3",
        "--batch",
        "2",
    ];

    // Killed midway: as soon as some objects have reached the bucket.
    let mut child = transfer_command(&source, &target_env, &to)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start transfer");
    let started = Instant::now();
    let dir = s3_bucket_dir(&bucket);
    while object_count(&dir) < 6 {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the transfer finished before it could be interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let at_kill = object_count(&dir);
    assert!(at_kill < files.len(), "killed midway ({at_kill} objects)");

    // Resumed: completes, nothing twice.
    let (ok, out) = transfer(&source, &target_env, &to);
    assert!(ok, "{out}");
    assert!(out.contains("transfer done"), "{out}");
    let (ok, again) = transfer(&source, &target_env, &to);
    assert!(ok, "{again}");
    assert!(
        again.contains(" 0 new on the target; 0 object(s) copied"),
        "a third run copies nothing: {again}"
    );
    let (ok, verified) = transfer(&source, &target_env, &[&to[..], &["--verify"]].concat());
    assert!(ok && verified.contains("no differences"), "{verified}");

    // A server on the target serves everything as the source did.
    let mut env = s3_env("STOWAGE_", &bucket);
    env.extend([
        ("STOWAGE_STORAGE_BACKEND".to_owned(), "s3".to_owned()),
        ("DATABASE_URL".to_owned(), db_url.clone()),
        ("STOWAGE_JWT_SECRET".to_owned(), JWT.to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let target = spawn_on(
        Backends {
            postgres: false,
            s3: false,
        },
        &env,
    )
    .with_client(http_client_for(true))
    .owning_database(db_name);
    // The source's keys work on the target (it made none of its own).
    assert!(target.pk.is_empty(), "the target found the copied keys");
    let hooks = target.cli_output(&["webhooks", "list"]);
    assert!(
        hooks.contains(&hook_id) && hooks.contains("file.deleted"),
        "webhook endpoints are copied: {hooks}"
    );
    for (id, bytes, creds) in &files {
        let (s_status, on_source) = source.get(&format!("/v1/files/{id}"), creds).await;
        let (t_status, there) = target.get(&format!("/v1/files/{id}"), creds).await;
        assert_eq!((s_status, t_status), (200, 200), "{there}");
        for field in [
            "id",
            "ownerId",
            "ownerType",
            "visibility",
            "createdAt",
            "updatedAt",
            "metadata",
            "sharedWith",
            "originalName",
            "size",
            "mimeType",
        ] {
            assert_eq!(on_source[field], there[field], "{field} of {id}");
        }
        assert!(target.download(creds, id).await == *bytes, "bytes of {id}");
    }
    for (who, creds) in [("alice", &alice), ("bob", &bob), ("service", &service)] {
        for query in [
            "limit=100",
            "limit=7&sortBy=size&sortDirection=asc",
            "visibility=shared",
        ] {
            assert_eq!(
                listing(&source, creds, query).await,
                listing(&target, creds, query).await,
                "{who}: {query}"
            );
        }
    }
    // The revoked key stays revoked.
    let revoked_creds = Creds {
        key: revoked.clone(),
        token: None,
    };
    assert_eq!(target.get("/v1/files", &revoked_creds).await.0, 401);
    // The upload issued on the source registers on the target.
    let (status, late) = target
        .post(
            "/v1/files",
            &alice,
            json!({"s3Key": pending["key"], "originalName": "late.txt", "mimeType": "text/plain", "size": 4}),
        )
        .await;
    assert_eq!(status, 201, "{late}");
    // Now the two sides differ, and `--verify` says where.
    let (ok, diff) = transfer(&source, &target_env, &[&to[..], &["--verify"]].concat());
    assert!(!ok, "{diff}");
    let late_id = late["id"].as_str().expect("id");
    let late_key = pending["key"].as_str().expect("key");
    assert!(
        diff.contains(&format!("files {late_id}: only in the target")),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("uploads {late_key}: differs")),
        "{diff}"
    );

    // And back: from PostgreSQL + S3 into a fresh embedded data folder.
    let back = tempfile::tempdir().expect("tempdir");
    let back_db = back.path().join("stowage.db").display().to_string();
    let back_dir = back.path().display().to_string();
    let from_target = |args: &[&str]| {
        let out = Command::new(bin())
            .envs(target.cli_env())
            .arg("transfer")
            .args(args)
            .arg("--no-progress")
            .output()
            .expect("transfer back");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let back_args = [
        "--to-database",
        back_db.as_str(),
        "--to-storage",
        "fs",
        "--to-data-dir",
        back_dir.as_str(),
    ];
    let (ok, out) = from_target(&back_args);
    assert!(ok, "{out}");
    let (ok, verified) = from_target(&[&back_args[..], &["--verify"]].concat());
    assert!(ok && verified.contains("no differences"), "{verified}");
}

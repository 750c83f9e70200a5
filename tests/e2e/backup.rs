//! `stowage backup` / `stowage restore` in the embedded mode: a backup taken
//! while uploads keep arriving restores onto a fresh data folder, and a server
//! there serves every file of the backup byte for byte, with the same ids,
//! owners and keys (secrets restored: tokens stay valid).

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_write_load_restores_byte_for_byte() {
    if s3_mode() || postgres_admin_url().is_some() {
        return; // the embedded mode only
    }
    let s = spawn();
    let alice = s.user("alice");
    let mut before = Vec::new();
    for i in 0..20u32 {
        let bytes: Vec<u8> = (0..(1000 + i * 37)).map(|b| (b * (i + 1)) as u8).collect();
        let vis = ["private", "public", "protected"][i as usize % 3];
        let file = s
            .upload(
                &alice,
                &format!("f{i}.bin"),
                "application/octet-stream",
                &bytes,
                json!({"visibility": vis}),
            )
            .await;
        before.push((file["id"].as_str().expect("id").to_owned(), bytes));
    }

    // Uploads keep arriving while the backup runs.
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let writer = {
        let (base, creds, client) = (s.base.clone(), alice.clone(), s.client.clone());
        let written = written.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            loop {
                let ticket: serde_json::Value = client
                    .post(format!("{base}/v1/files/presigned-url"))
                    .header("X-API-Key", &creds.key)
                    .bearer_auth(creds.token.clone().unwrap_or_default())
                    .json(&json!({"filename": format!("load{n}.txt"), "contentType": "text/plain", "fileSize": 4}))
                    .send()
                    .await
                    .expect("presign")
                    .json()
                    .await
                    .expect("json");
                let url = ticket["url"].as_str().expect("url").to_owned();
                let _ = client
                    .put(url)
                    .header("Content-Type", "text/plain")
                    .body("load")
                    .send()
                    .await;
                let _ = client
                    .post(format!("{base}/v1/files"))
                    .header("X-API-Key", &creds.key)
                    .bearer_auth(creds.token.clone().unwrap_or_default())
                    .json(&json!({"s3Key": ticket["key"], "originalName": format!("load{n}.txt"), "mimeType": "text/plain", "size": 4}))
                    .send()
                    .await;
                n += 1;
                written.store(n, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("backup");
    let target_arg = target.display().to_string();
    let at_start = written.load(std::sync::atomic::Ordering::Relaxed);
    let cli = s.cli_output(&["backup", "--to", &target_arg]);
    let at_end = written.load(std::sync::atomic::Ordering::Relaxed);
    writer.abort();
    assert!(cli.contains("backup in"), "{cli}");
    assert!(
        at_end > at_start,
        "uploads were registered while the backup ran"
    );

    // Restore onto a fresh folder and serve it.
    let fresh = tempfile::tempdir().expect("tempdir");
    let fresh_arg = fresh.path().display().to_string();
    let out = std::process::Command::new(bin())
        .env_remove("DATABASE_URL")
        .env("STOWAGE_DATA_DIR", &fresh_arg)
        .args(["restore", "--from", &target_arg])
        .output()
        .expect("restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::process::Command::new(bin())
        .env_remove("DATABASE_URL")
        .env("STOWAGE_DATA_DIR", &fresh_arg)
        .args(["restore", "--from", &target_arg])
        .output()
        .expect("restore");
    assert!(
        !again.status.success(),
        "a restore never overwrites a data folder"
    );

    let restored = s.replica_with(&[("STOWAGE_DATA_DIR", fresh_arg.as_str())]);
    for (id, bytes) in &before {
        let (status, file) = restored.get(&format!("/v1/files/{id}"), &alice).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(file["ownerId"], "alice");
        let got = restored.download(&alice, id).await;
        assert!(got == *bytes, "file {id} restored byte for byte");
    }
    // Every file the snapshot holds is servable (those registered during the backup too).
    let (status, list) = restored.get("/v1/files?limit=100", &alice).await;
    assert_eq!(status, 200);
    assert!(list["pagination"]["total"].as_u64().unwrap_or(0) >= 20);
}

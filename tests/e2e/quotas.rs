//! docs/api.md §11 through the real binary: quotas (at issue, atomically at
//! registration under 50 racing registrations, freed by deletion), `GET
//! /v1/usage`, and the content check of registration.

use serde_json::{json, Value};

use crate::helpers::*;

async fn register(
    s: &Server,
    creds: &Creds,
    ticket: &Value,
    mime: &str,
    size: usize,
) -> (u16, Value) {
    s.post(
        "/v1/files",
        creds,
        json!({"s3Key": ticket["key"], "originalName": "f", "mimeType": mime, "size": size}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_registrations_never_pass_the_quota() {
    let s = spawn_with(&[
        ("STOWAGE_QUOTA_USER_BYTES", "1000"),
        ("STOWAGE_QUOTA_PROJECT_FILES", "1000"),
    ]);
    let alice = s.user("alice");
    let held = s
        .upload(
            &alice,
            "held.bin",
            "application/octet-stream",
            &[7u8; 600],
            json!({}),
        )
        .await;

    // Issued while 400 bytes are free: each fits on its own.
    let mut tickets = Vec::new();
    for i in 0..50 {
        tickets.push(
            s.issue_and_put(
                &alice,
                &format!("r{i}"),
                "application/octet-stream",
                &[i as u8; 10],
            )
            .await,
        );
    }
    // Over the quota already at issue.
    let (status, refused) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "big", "contentType": "application/octet-stream", "fileSize": 401}),
        )
        .await;
    assert_error(&(status, refused.clone()), 403, "file/quota-exceeded");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("user byte quota"),
        "{refused}"
    );

    let results = futures_util::future::join_all(
        tickets
            .iter()
            .map(|t| register(&s, &alice, t, "application/octet-stream", 10)),
    )
    .await;
    let won = results.iter().filter(|(status, _)| *status == 201).count();
    for r in &results {
        if r.0 != 201 {
            assert_error(r, 403, "file/quota-exceeded");
        }
    }
    assert_eq!(won, 40, "exactly the last 400 bytes are taken");
    let (status, usage) = s.get("/v1/usage", &alice).await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage,
        json!({"user": {"files": 41, "bytes": 1000, "quotaFiles": null, "quotaBytes": 1000}})
    );

    // A refused upload stays pending: freeing space lets it register.
    let refused_ticket = tickets
        .iter()
        .zip(&results)
        .find(|(_, r)| r.0 == 403)
        .map(|(t, _)| t.clone())
        .expect("one was refused");
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/files/{}", held["id"].as_str().expect("id")),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, file) =
        register(&s, &alice, &refused_ticket, "application/octet-stream", 10).await;
    assert_eq!(status, 201, "deletion frees the space at once: {file}");

    // Admins see the project too; the service principal has no user quota.
    let admin = s.admin_user("root");
    let (_, usage) = s.get("/v1/usage", &admin).await;
    assert_eq!(
        usage["project"],
        json!({"files": 41, "bytes": 410, "quotaFiles": 1000, "quotaBytes": null})
    );
    let service = s.service();
    s.upload(
        &service,
        "svc.bin",
        "application/octet-stream",
        &[1u8; 5000],
        json!({}),
    )
    .await;
    let (_, usage) = s.get("/v1/usage", &service).await;
    assert_eq!(
        usage["user"],
        json!({"files": 1, "bytes": 5000, "quotaFiles": null, "quotaBytes": null})
    );
    assert_eq!(usage["project"]["bytes"], 5410);
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89]);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_checks_the_bytes_against_the_type() {
    let s = spawn();
    let alice = s.user("alice");
    let html = b"<!DOCTYPE html><html><script>alert(1)</script></html>".to_vec();

    // An HTML page registered as an image: refused, and its object deleted.
    let ticket = s.issue_and_put(&alice, "cat.png", "image/png", &html).await;
    let refused = register(&s, &alice, &ticket, "image/png", html.len()).await;
    assert_error(&refused, 400, "file/invalid-format");
    let again = register(&s, &alice, &ticket, "image/png", html.len()).await;
    assert_error(&again, 404, "file/upload-not-found");

    // A PNG without width and height gets them from its header.
    let image = png(640, 480);
    let ticket = s
        .issue_and_put(&alice, "real.png", "image/png", &image)
        .await;
    let (status, file) = register(&s, &alice, &ticket, "image/png", image.len()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(
        (file["width"].clone(), file["height"].clone()),
        (json!(640), json!(480))
    );

    // SVG must be XML with an svg root; PDF starts with %PDF-; an unknown
    // subtype is not checked.
    let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
    for (name, mime, bytes, expected) in [
        ("ok.svg", "image/svg+xml", svg, 201),
        ("bad.svg", "image/svg+xml", html.clone(), 400),
        ("ok.pdf", "application/pdf", b"%PDF-1.7\n".to_vec(), 201),
        ("bad.pdf", "application/pdf", html.clone(), 400),
        ("x.bin", "image/x-unheard-of", html.clone(), 201),
    ] {
        let ticket = s.issue_and_put(&alice, name, mime, &bytes).await;
        let (status, body) = register(&s, &alice, &ticket, mime, bytes.len()).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
}

//! Multipart round trip through the gateway: three parts (5 MiB, 5 MiB, 1 MiB)
//! uploaded in reverse order, completed, registered, downloaded, compared.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn three_parts_in_reverse_order() {
    let s = spawn();
    let alice = s.user("alice");
    let sizes = [5 * MIB, 5 * MIB, MIB];
    let parts: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| (0..*n).map(|b| (b * 31 + i * 7) as u8).collect())
        .collect();
    let whole: Vec<u8> = parts.concat();
    let (status, init) = s.post("/v1/files/multipart/init", &alice, json!({"filename": "big.bin", "contentType": "application/octet-stream", "fileSize": whole.len()})).await;
    assert_eq!(status, 200, "{init}");
    let (key, upload_id) = (init["key"].clone(), init["uploadId"].clone());
    assert_eq!(init["filename"], "big.bin");

    let mut etags = vec![Value::Null; 3];
    for n in [3usize, 2, 1] {
        let (status, part) = s
            .post(
                "/v1/files/multipart/presigned-url",
                &alice,
                json!({"key": key, "uploadId": upload_id, "partNumber": n}),
            )
            .await;
        assert_eq!(
            (status, part["partNumber"].as_u64()),
            (200, Some(n as u64)),
            "{part}"
        );
        let url = part["url"].as_str().expect("url");
        if n == 2 {
            // A re-uploaded part replaces the first attempt.
            let first = s
                .client
                .put(url)
                .body(vec![0u8; 10])
                .send()
                .await
                .expect("put");
            assert_eq!(first.status(), 200);
        }
        let r = s
            .client
            .put(url)
            .body(parts[n - 1].clone())
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), 200);
        let etag = r
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .expect("etag")
            .to_owned();
        assert_eq!(
            etag,
            format!(
                "\"{}\"",
                hex::encode(<md5::Md5 as md5::Digest>::digest(&parts[n - 1]))
            )
        );
        etags[n - 1] = json!(if n == 1 {
            etag.clone()
        } else {
            etag.trim_matches('"').to_owned()
        });
    }
    // Registration before completion finds nothing.
    let reg = json!({"s3Key": key, "originalName": "big.bin", "mimeType": "application/octet-stream", "size": whole.len()});
    assert_error(
        &s.post("/v1/files", &alice, reg.clone()).await,
        404,
        "file/upload-not-found",
    );
    let bob = s.user("bob");
    let list: Vec<Value> = (1..=3)
        .map(|n| json!({"partNumber": n, "etag": etags[n - 1]}))
        .collect();
    assert_error(
        &s.post(
            "/v1/files/multipart/complete",
            &bob,
            json!({"key": key, "uploadId": upload_id, "parts": list}),
        )
        .await,
        403,
        "file/access-denied",
    );
    let (status, done) = s
        .post(
            "/v1/files/multipart/complete",
            &alice,
            json!({"key": key, "uploadId": upload_id, "parts": list}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["key"], key);
    assert!(done["location"].is_string());
    assert_error(
        &s.post(
            "/v1/files/multipart/complete",
            &alice,
            json!({"key": key, "uploadId": upload_id, "parts": list}),
        )
        .await,
        404,
        "file/upload-not-found",
    );

    let (status, file) = s.post("/v1/files", &alice, reg).await;
    assert_eq!(status, 201, "{file}");
    let dl_url = s
        .download_url(&alice, file["id"].as_str().expect("id"))
        .await;
    let bytes = s
        .client
        .get(&dl_url)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.len(), whole.len());
    assert_eq!(
        Sha256::digest(&bytes),
        Sha256::digest(&whole),
        "downloaded bytes equal the uploaded parts in order"
    );
}

#[tokio::test]
async fn abort_discards_the_upload() {
    let s = spawn();
    let alice = s.user("alice");
    let (_, init) = s
        .post(
            "/v1/files/multipart/init",
            &alice,
            json!({"filename": "x.bin", "contentType": "application/octet-stream", "fileSize": 10}),
        )
        .await;
    let body = json!({"key": init["key"], "uploadId": init["uploadId"]});
    assert_error(
        &s.post("/v1/files/multipart/abort", &s.user("bob"), body.clone())
            .await,
        403,
        "file/access-denied",
    );
    let (status, res) = s
        .post("/v1/files/multipart/abort", &alice, body.clone())
        .await;
    assert_eq!(
        (status, res),
        (200, json!({"success": true, "key": init["key"]}))
    );
    assert_error(
        &s.post("/v1/files/multipart/abort", &alice, body.clone())
            .await,
        404,
        "file/upload-not-found",
    );
    let mut part = body.clone();
    part["partNumber"] = json!(1);
    assert_error(
        &s.post("/v1/files/multipart/presigned-url", &alice, part)
            .await,
        404,
        "file/upload-not-found",
    );
}

//! docs/api.md §11 checksums through the real binary, bytes through the
//! presigned URLs: a single PUT bound to its digest, parts bound to theirs,
//! the whole-object digest of a multipart upload (verified by the embedded
//! store, recorded as given on S3), and `checksumSha256` on the file.

use base64::Engine as _;
use serde_json::{json, Value};
use stowage_domain::limits::sha256_base64;

use crate::helpers::*;

const MIB: usize = 1024 * 1024;

async fn register(s: &Server, creds: &Creds, key: &Value, size: usize) -> (u16, Value) {
    s.post(
        "/v1/files",
        creds,
        json!({"s3Key": key, "originalName": "summed.bin", "mimeType": "application/octet-stream", "size": size}),
    )
    .await
}

#[tokio::test]
async fn a_single_put_is_bound_to_its_digest() {
    let s = spawn();
    let alice = s.user("alice");
    let body = b"the bytes the client hashed".to_vec();
    let sum = sha256_base64(&body);

    for bad in [
        json!("abc"),
        json!(sha256_base64(b"x").replace('=', "A")),
        // 31 bytes: valid base64, not a SHA-256.
        json!(base64::engine::general_purpose::STANDARD.encode([1u8; 31])),
        json!(42),
    ] {
        let got = s
            .post(
                "/v1/files/presigned-url",
                &alice,
                json!({"filename": "a.bin", "contentType": "application/octet-stream", "checksumSha256": bad}),
            )
            .await;
        assert_error(&got, 400, "common/invalid-request");
    }

    let (status, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "a.bin", "contentType": "application/octet-stream",
                   "fileSize": body.len(), "checksumSha256": sum}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["headers"]["x-amz-checksum-sha256"], sum, "{ticket}");

    // Other bytes of the same length, with every header the ticket asks for.
    let mut forged = body.clone();
    forged[0] ^= 1;
    let r = s.put_presigned(&ticket, forged).await;
    assert_eq!(r.status(), 400, "a body with another digest is refused");
    assert_error(
        &register(&s, &alice, &ticket["key"], body.len()).await,
        404,
        "file/upload-not-found",
    );
    // The right bytes without the bound header: the signature does not hold.
    let r = s
        .client
        .put(ticket["url"].as_str().expect("url"))
        .header("Content-Type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(
        r.status(),
        403,
        "the digest header is part of the signature"
    );

    let r = s.put_presigned(&ticket, body.clone()).await;
    assert_eq!(r.status(), 200);
    let (status, file) = register(&s, &alice, &ticket["key"], body.len()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["checksumSha256"], sum);
    let id = file["id"].as_str().expect("id");
    let (_, again) = s.get(&format!("/v1/files/{id}"), &alice).await;
    assert_eq!(again["checksumSha256"], sum);
    assert_eq!(s.download(&alice, id).await, body);
}

#[tokio::test]
async fn the_file_carries_the_digest_whenever_it_is_known() {
    let s = spawn();
    let alice = s.user("alice");
    let body = b"no digest declared".to_vec();
    let file = s
        .upload(&alice, "plain.txt", "text/plain", &body, json!({}))
        .await;
    if s3_mode() {
        // S3's HEAD does not say, and none was declared: unknown.
        assert!(file.get("checksumSha256").is_none(), "{file}");
    } else {
        // The embedded store computes it for every object.
        assert_eq!(file["checksumSha256"], sha256_base64(&body), "{file}");
    }
    // Listed files carry it too.
    let (_, list) = s.get("/v1/files", &alice).await;
    assert_eq!(list["items"][0]["checksumSha256"], file["checksumSha256"]);
}

/// Starts a multipart upload of `parts` declaring `whole` as its digest,
/// PUTs each part through a URL bound to the part's own digest (after a
/// refused attempt with other bytes), and returns `(key, uploadId, parts list)`.
async fn upload_parts(
    s: &Server,
    alice: &Creds,
    parts: &[Vec<u8>],
    whole: &str,
) -> (Value, Value, Vec<Value>) {
    let size: usize = parts.iter().map(Vec::len).sum();
    let (status, init) = s
        .post(
            "/v1/files/multipart/init",
            alice,
            json!({"filename": "summed.bin", "contentType": "application/octet-stream",
                   "fileSize": size, "checksumSha256": whole}),
        )
        .await;
    assert_eq!(status, 200, "{init}");
    let (key, upload_id) = (init["key"].clone(), init["uploadId"].clone());
    let mut list = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let sum = sha256_base64(part);
        let (status, ticket) = s
            .post(
                "/v1/files/multipart/presigned-url",
                alice,
                json!({"key": key, "uploadId": upload_id, "partNumber": n, "checksumSha256": sum}),
            )
            .await;
        assert_eq!(status, 200, "{ticket}");
        assert_eq!(ticket["headers"]["x-amz-checksum-sha256"], sum, "{ticket}");
        let mut forged = part.clone();
        forged[7] ^= 0xff;
        let r = s.put_presigned(&ticket, forged).await;
        assert_eq!(r.status(), 400, "part {n} with other bytes is refused");
        let r = s.put_presigned(&ticket, part.clone()).await;
        assert_eq!(r.status(), 200, "part {n}");
        let etag = header(&r, "etag").expect("etag");
        list.push(json!({"partNumber": n, "etag": etag}));
    }
    (key, upload_id, list)
}

#[tokio::test]
async fn multipart_parts_and_the_whole_object_are_checked() {
    let s = spawn();
    let alice = s.user("alice");
    let parts: Vec<Vec<u8>> = vec![
        (0..5 * MIB).map(|b| (b * 13) as u8).collect(),
        (0..MIB).map(|b| (b * 7 + 1) as u8).collect(),
    ];
    let whole = parts.concat();
    let sum = sha256_base64(&whole);

    // A malformed part digest is a field error.
    let (_, init) = s
        .post(
            "/v1/files/multipart/init",
            &alice,
            json!({"filename": "x.bin", "contentType": "application/octet-stream", "fileSize": 10}),
        )
        .await;
    for bad in [json!("nope"), json!(7)] {
        assert_error(
            &s.post(
                "/v1/files/multipart/presigned-url",
                &alice,
                json!({"key": init["key"], "uploadId": init["uploadId"], "partNumber": 1, "checksumSha256": bad}),
            )
            .await,
            400,
            "common/invalid-request",
        );
    }

    // The declared digest is the object's: completes, and the file carries it.
    let (key, upload_id, list) = upload_parts(&s, &alice, &parts, &sum).await;
    let (status, done) = s
        .post(
            "/v1/files/multipart/complete",
            &alice,
            json!({"key": key, "uploadId": upload_id, "parts": list}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (status, file) = register(&s, &alice, &key, whole.len()).await;
    assert_eq!(status, 201, "{file}");
    assert_eq!(file["checksumSha256"], sum);

    // A declared digest that is not the assembled object's.
    let wrong = sha256_base64(b"something else");
    let (key, upload_id, list) = upload_parts(&s, &alice, &parts, &wrong).await;
    let complete = json!({"key": key, "uploadId": upload_id, "parts": list});
    let got = s
        .post("/v1/files/multipart/complete", &alice, complete.clone())
        .await;
    if s3_mode() {
        // S3 keeps no whole-object SHA-256 of a multipart upload: recorded as
        // given (each part was verified against its own).
        assert_eq!(got.0, 200, "{}", got.1);
        let (status, file) = register(&s, &alice, &key, whole.len()).await;
        assert_eq!(status, 201, "{file}");
        assert_eq!(file["checksumSha256"], wrong);
    } else {
        // The embedded store refuses before anything appears at the key,
        // and keeps the parts and the upload: the same completion is refused
        // again (not "upload not found"), and the upload can be aborted.
        assert_error(&got, 400, "file/invalid-parts-array");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("SHA-256"),
            "{}",
            got.1
        );
        assert_error(
            &s.post("/v1/files/multipart/complete", &alice, complete)
                .await,
            400,
            "file/invalid-parts-array",
        );
        assert_error(
            &register(&s, &alice, &key, whole.len()).await,
            404,
            "file/upload-not-found",
        );
        let (status, aborted) = s
            .post(
                "/v1/files/multipart/abort",
                &alice,
                json!({"key": key, "uploadId": upload_id}),
            )
            .await;
        assert_eq!(status, 200, "{aborted}");
    }
}

//! Bad input from docs/api.md §2, each case asserting the exact status and code.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn presign(name: &str, mime: &str, size: Value) -> Value {
    json!({"filename": name, "contentType": mime, "fileSize": size})
}

#[tokio::test]
async fn authentication_errors() {
    let s = spawn();
    let no_key = s.client.get(s.url("/v1/files")).send().await.expect("send");
    assert_error(&read(no_key).await, 401, "common/invalid-api-key");
    let cases: Vec<(Creds, &str)> = vec![
        (
            Creds {
                key: "pk_123".into(),
                token: None,
            },
            "common/invalid-api-key",
        ),
        (
            Creds {
                key: format!("sk_{}", "0".repeat(64)),
                token: None,
            },
            "common/invalid-api-key",
        ),
        (
            Creds {
                key: s.pk.clone(),
                token: None,
            },
            "common/authentication-required",
        ),
        (
            Creds {
                key: s.pk.clone(),
                token: Some("garbage".into()),
            },
            "common/authentication-required",
        ),
        (
            Creds {
                key: s.pk.clone(),
                token: Some(s.cli(&["token", "--sub", "a", "--ttl=-100"])),
            },
            "common/authentication-required",
        ),
        (
            Creds {
                key: s.sk.clone(),
                token: Some("garbage".into()),
            },
            "common/authentication-required",
        ),
    ];
    for (creds, code) in cases {
        assert_error(&s.get("/v1/files", &creds).await, 401, code);
    }
    // The token check comes before the body check.
    let r = s
        .req(
            Method::POST,
            "/v1/files",
            &Creds {
                key: s.pk.clone(),
                token: None,
            },
        )
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 401, "common/authentication-required");
    let expired = s
        .get(
            "/v1/files",
            &Creds {
                key: s.pk.clone(),
                token: Some(s.cli(&["token", "--sub", "a", "--ttl=-100"])),
            },
        )
        .await;
    assert!(
        expired.1["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{}",
        expired.1
    );
}

#[tokio::test]
async fn body_and_field_errors() {
    let s = spawn();
    let alice = s.user("alice");
    let raw = |body: &'static str, ct: &'static str| {
        s.req(Method::POST, "/v1/files/presigned-url", &alice)
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    assert_error(
        &read(raw("{not json", "application/json").await.expect("send")).await,
        400,
        "common/invalid-request",
    );
    assert_error(
        &read(raw("[1,2]", "application/json").await.expect("send")).await,
        400,
        "common/invalid-request",
    );
    assert_error(
        &read(raw("{}", "text/plain").await.expect("send")).await,
        400,
        "common/invalid-request",
    );
    let big = format!("{{\"filename\":\"{}\"}}", "a".repeat(70 * 1024));
    let r = s
        .req(Method::POST, "/v1/files/presigned-url", &alice)
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 413, "common/payload-too-large");

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"contentType": "text/plain"}),
            400,
            "common/invalid-request",
        ),
        (
            presign("a.txt", "text/plain", json!("12")),
            400,
            "common/invalid-request",
        ),
        (
            presign("a.txt", "text/plain", json!(1.5)),
            400,
            "common/invalid-request",
        ),
        (
            presign("a.txt", "text/plain", json!(1e30)),
            400,
            "common/invalid-request",
        ),
        (
            json!({"filename": "a", "contentType": "text/plain", "visibility": "secret"}),
            400,
            "common/invalid-request",
        ),
        (
            json!({"filename": "a", "contentType": "text/plain", "category": "music"}),
            400,
            "common/invalid-request",
        ),
        (
            presign("../etc/passwd", "text/plain", json!(1)),
            400,
            "file/invalid-name",
        ),
        (
            presign("..", "text/plain", json!(1)),
            400,
            "file/invalid-name",
        ),
        (
            presign("a\u{0}b", "text/plain", json!(1)),
            400,
            "file/invalid-name",
        ),
        (
            presign("evil\u{202e}gpj.exe", "text/plain", json!(1)),
            400,
            "file/invalid-name",
        ),
        (
            presign(&"a".repeat(256), "text/plain", json!(1)),
            400,
            "file/original-name-too-long",
        ),
        (
            presign("a", "not-a-mime", json!(1)),
            400,
            "file/invalid-format",
        ),
        (
            presign("a", &format!("application/{}", "x".repeat(250)), json!(1)),
            400,
            "file/mime-type-too-long",
        ),
        (
            presign("a", "text/plain", json!(-1)),
            400,
            "file/size-negative",
        ),
        (
            presign("a", "text/plain", json!(0)),
            400,
            "file/file-too-small",
        ),
        (
            json!({"filename": "a.png", "contentType": "image/png", "fileSize": 10 * 1024 * 1024 + 1, "category": "images"}),
            400,
            "file/file-too-large",
        ),
        (
            json!({"filename": "a.pdf", "contentType": "video/mp4", "category": "documents"}),
            400,
            "file/invalid-format",
        ),
    ];
    for (body, status, code) in cases {
        let got = s
            .post("/v1/files/presigned-url", &alice, body.clone())
            .await;
        assert_error(&got, status, code);
    }
    // 255 four-byte characters are a valid name.
    let (status, _) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            presign(&"\u{1F600}".repeat(255), "text/plain", json!(1)),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn registration_errors_in_order() {
    let s = spawn();
    let alice = s.user("alice");
    let bob = s.user("bob");
    let reg = |key: &str, size: i64| json!({"s3Key": key, "originalName": "a.txt", "mimeType": "text/plain", "size": size});
    assert_error(
        &s.post("/v1/files", &alice, reg(&"k".repeat(1025), 3)).await,
        400,
        "file/s3-key-too-long",
    );
    assert_error(
        &s.post("/v1/files", &alice, reg("demo/dev/aaaa/bbbb/a.txt", 3))
            .await,
        400,
        "file/invalid-path",
    );
    assert_error(
        &s.post("/v1/files", &alice, reg("../../etc/passwd", 3))
            .await,
        400,
        "file/invalid-path",
    );
    assert_error(
        &s.post(
            "/v1/files",
            &alice,
            json!({"s3Key": "x", "originalName": "a"}),
        )
        .await,
        400,
        "common/invalid-request",
    );
    assert_error(
        &s.post(
            "/v1/files",
            &alice,
            json!({"s3Key": "x", "originalName": "a", "mimeType": "text/plain", "size": "3"}),
        )
        .await,
        400,
        "common/invalid-request",
    );
    assert_error(
        &s.post(
            "/v1/files",
            &alice,
            json!({"s3Key": "x", "originalName": "a", "mimeType": "text/plain", "size": 9.5}),
        )
        .await,
        400,
        "common/invalid-request",
    );
    let huge = r#"{"s3Key": "x", "originalName": "a", "mimeType": "text/plain", "size": 99999999999999999999}"#;
    let r = s
        .req(Method::POST, "/v1/files", &alice)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 400, "common/invalid-request");
    assert_error(
        &s.post("/v1/files", &alice, reg("x", -5)).await,
        400,
        "file/size-negative",
    );

    let (_, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            presign("a.txt", "text/plain", json!(3)),
        )
        .await;
    let key = ticket["key"].as_str().expect("key").to_owned();
    assert_error(
        &s.post("/v1/files", &bob, reg(&key, 3)).await,
        403,
        "file/access-denied",
    );
    assert_error(
        &s.post(
            "/v1/files",
            &alice,
            json!({"s3Key": key, "originalName": "a.txt", "mimeType": "image/png", "size": 3}),
        )
        .await,
        400,
        "file/invalid-format",
    );
    assert_error(
        &s.post("/v1/files", &alice, reg(&key, 4)).await,
        400,
        "file/size-mismatch",
    );
    assert_error(
        &s.post("/v1/files", &alice, reg(&key, 3)).await,
        404,
        "file/upload-not-found",
    );
    assert_eq!(
        s.put_presigned(&ticket, b"abc".to_vec()).await.status(),
        200
    );
    let ok = s.post("/v1/files", &alice, json!({"s3Key": key, "originalName": "a.txt", "mimeType": "text/plain", "size": 3, "sharedWith": vec!["u"; 101]})).await;
    assert_error(&ok, 400, "common/invalid-request");
    assert_eq!(s.post("/v1/files", &alice, reg(&key, 3)).await.0, 201);
    assert_error(
        &s.post("/v1/files", &alice, reg(&key, 3)).await,
        409,
        "file/s3-key-already-exists",
    );

    // Unsized upload whose object differs from the registered size.
    let (_, t2) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "b.txt", "contentType": "text/plain"}),
        )
        .await;
    assert_eq!(s.put_presigned(&t2, b"abcdef".to_vec()).await.status(), 200);
    assert_error(
        &s.post(
            "/v1/files",
            &alice,
            reg(t2["key"].as_str().expect("key"), 3),
        )
        .await,
        400,
        "file/size-mismatch",
    );
}

#[tokio::test]
async fn concurrent_registrations_give_one_201_and_one_409() {
    let s = spawn();
    let alice = s.user("alice");
    for _ in 0..5 {
        let (_, ticket) = s
            .post(
                "/v1/files/presigned-url",
                &alice,
                presign("a.txt", "text/plain", json!(3)),
            )
            .await;
        assert_eq!(
            s.put_presigned(&ticket, b"abc".to_vec()).await.status(),
            200
        );
        let body = json!({"s3Key": ticket["key"], "originalName": "a.txt", "mimeType": "text/plain", "size": 3});
        let (a, b) = tokio::join!(
            s.post("/v1/files", &alice, body.clone()),
            s.post("/v1/files", &alice, body.clone())
        );
        let mut statuses = [a.0, b.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409]);
    }
}

#[tokio::test]
async fn read_list_patch_multipart_errors() {
    let s = spawn();
    let alice = s.user("alice");
    let file = s
        .upload(&alice, "a.txt", "text/plain", b"abc", json!({}))
        .await;
    let id = file["id"].as_str().expect("id");
    assert_error(
        &s.get("/v1/files/not-a-uuid", &alice).await,
        404,
        "file/not-found",
    );
    assert_error(
        &s.get("/v1/files/0192f0c4-0000-7000-8000-000000000000", &alice)
            .await,
        404,
        "file/not-found",
    );
    for q in [
        "limit=0",
        "limit=101",
        "page=0",
        "page=x",
        "sortBy=id",
        "sortDirection=sideways",
        "visibility=x",
        "ownerType=robot",
        "bucket=x",
        "mimeType=bad",
        "cursor=@@@",
    ] {
        assert_error(
            &s.get(&format!("/v1/files?{q}"), &alice).await,
            400,
            "common/invalid-request",
        );
    }
    for body in [
        json!({"s3Key": "x"}),
        json!({"size": 1}),
        json!({"ownerId": "me"}),
        json!({"visibility": "x"}),
        json!({"sharedWith": "bob"}),
        json!({"metadata": {"custom": [1]}}),
    ] {
        assert_error(
            &s.call(
                Method::PATCH,
                &format!("/v1/files/{id}"),
                &alice,
                Some(body),
            )
            .await,
            400,
            "common/invalid-request",
        );
    }
    assert_error(
        &s.call(
            Method::PATCH,
            &format!("/v1/files/{id}"),
            &alice,
            Some(json!({"originalName": "a/b"})),
        )
        .await,
        400,
        "file/invalid-name",
    );
    // Field rules come before existence: a bad body on an id that names no
    // file is a 400, a good one a 404.
    for (body, status, code) in [
        (json!({"originalName": "a/b"}), 400, "file/invalid-name"),
        (json!({"size": 1}), 400, "common/invalid-request"),
        (json!({"originalName": "b.txt"}), 404, "file/not-found"),
    ] {
        assert_error(
            &s.call(Method::PATCH, "/v1/files/not-a-uuid", &alice, Some(body))
                .await,
            status,
            code,
        );
    }

    assert_error(
        &s.post(
            "/v1/files/multipart/init",
            &alice,
            json!({"filename": "a", "contentType": "text/plain"}),
        )
        .await,
        400,
        "common/invalid-request",
    );
    let (_, init) = s
        .post(
            "/v1/files/multipart/init",
            &alice,
            presign(
                "big.bin",
                "application/octet-stream",
                json!(6 * 1024 * 1024),
            ),
        )
        .await;
    let (key, upload_id) = (init["key"].clone(), init["uploadId"].clone());
    for n in [json!(0), json!(10001), json!(1.5), json!("1")] {
        let got = s
            .post(
                "/v1/files/multipart/presigned-url",
                &alice,
                json!({"key": key, "uploadId": upload_id, "partNumber": n}),
            )
            .await;
        assert_error(&got, 400, "file/invalid-part-number-range");
    }
    let many: Vec<Value> = (1..=10_001)
        .map(|n| json!({"partNumber": n, "etag": "a"}))
        .collect();
    for parts in [
        json!([]),
        json!("x"),
        Value::Null,
        json!([{"partNumber": 2, "etag": "a"}, {"partNumber": 1, "etag": "b"}]),
        json!([{"partNumber": 1, "etag": ""}]),
    ] {
        let got = s
            .post(
                "/v1/files/multipart/complete",
                &alice,
                json!({"key": key, "uploadId": upload_id, "parts": parts}),
            )
            .await;
        assert_error(&got, 400, "file/invalid-parts-array");
    }
    let got = s
        .post(
            "/v1/files/multipart/complete",
            &alice,
            json!({"key": key, "uploadId": upload_id}),
        )
        .await;
    assert_error(&got, 400, "file/invalid-parts-array");
    let r = s
        .req(Method::POST, "/v1/files/multipart/complete", &alice)
        .json(&json!({"key": key, "uploadId": upload_id, "parts": many}))
        .send()
        .await
        .expect("send");
    assert_error(&read(r).await, 400, "file/invalid-parts-array");
    let got = s
        .post(
            "/v1/files/multipart/presigned-url",
            &s.user("bob"),
            json!({"key": key, "uploadId": upload_id, "partNumber": 1}),
        )
        .await;
    assert_error(&got, 403, "file/access-denied");
    let got = s
        .post(
            "/v1/files/multipart/presigned-url",
            &alice,
            json!({"key": key, "uploadId": "0".repeat(32), "partNumber": 1}),
        )
        .await;
    assert_error(&got, 404, "file/upload-not-found");
}

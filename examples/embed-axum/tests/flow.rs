//! The example service end to end over HTTP: upload URL, bytes through the
//! signed URL, registration, read, download — and the contract's errors.

use serde_json::{json, Value};

#[tokio::test]
async fn files_flow_through_an_axum_service() {
    let data = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let router = stowage_example_axum::app(data.path(), &base)
        .await
        .expect("app");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let http = reqwest::Client::new();

    let ticket: Value = http
        .post(format!("{base}/files/presigned-url"))
        .header("x-user", "alice")
        .json(&json!({"filename": "hello.txt", "contentType": "text/plain", "fileSize": 5}))
        .send()
        .await
        .expect("presign")
        .json()
        .await
        .expect("json");
    let url = ticket["url"].as_str().expect("url");
    let put = http
        .put(url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let wrong = http
        .put(url)
        .header("content-type", "text/html")
        .body("hello")
        .send()
        .await
        .expect("put");
    assert_eq!(wrong.status(), 403, "the type bound into the URL");

    let registered = http
        .post(format!("{base}/files"))
        .header("x-user", "alice")
        .json(&json!({"s3Key": ticket["key"], "originalName": "hello.txt", "mimeType": "text/plain", "size": 5}))
        .send()
        .await
        .expect("register");
    assert_eq!(registered.status(), 201);
    let file: Value = registered.json().await.expect("json");
    let id = file["id"].as_str().expect("id");

    let other = http
        .get(format!("{base}/files/{id}"))
        .header("x-user", "mallory")
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 403, "private to alice");
    let body: Value = other.json().await.expect("json");
    assert_eq!(body["error"]["code"], "file/access-denied");

    let dl: Value = http
        .post(format!("{base}/files/{id}/download-url"))
        .header("x-user", "alice")
        .send()
        .await
        .expect("download url")
        .json()
        .await
        .expect("json");
    let bytes = http
        .get(dl["url"].as_str().expect("url"))
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&bytes[..], b"hello");

    let bad = http
        .post(format!("{base}/files/presigned-url"))
        .header("x-user", "alice")
        .json(&json!({"filename": "a/b", "contentType": "text/plain"}))
        .send()
        .await
        .expect("presign");
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "file/invalid-name");
}

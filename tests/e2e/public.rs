//! Public delivery (docs/api.md §8): the bytes of public files without
//! credentials at `publicUrl`, with validators, ranges and CORS; one 404 for
//! everything else, and visibility changes that count at once.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn public_files_are_served_without_credentials() {
    let s = spawn();
    let alice = s.user("alice");
    // A PNG signature (registration checks it), then varied bytes.
    let mut bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    bytes[..8].copy_from_slice(b"\x89PNG\r\n\x1a\n");
    let file = s
        .upload(
            &alice,
            "photo.png",
            "image/png",
            &bytes,
            json!({"visibility": "public"}),
        )
        .await;
    let url = file["publicUrl"]
        .as_str()
        .expect("publicUrl on a public file")
        .to_owned();
    assert!(url.starts_with(&s.url("/v1/public/")), "{url}");
    let anonymous = http_client();

    // HEAD is answered by Stowage on every backend, with every header.
    let res = anonymous
        .head(&url)
        .header("Origin", "https://elsewhere.example")
        .send()
        .await
        .expect("head");
    assert_eq!(res.status(), 200);
    let h = |n: &str| header(&res, n);
    assert_eq!(h("content-type").as_deref(), Some("image/png"));
    assert_eq!(h("content-length").as_deref(), Some("10000"));
    assert_eq!(h("access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(h("cache-control").as_deref(), Some("public, max-age=3600"));
    assert_eq!(h("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        h("content-disposition").as_deref(),
        Some("inline; filename=\"photo.png\"")
    );
    let etag = h("etag").expect("etag");
    let last_modified = h("last-modified").expect("last-modified");

    // GET: the bytes (on S3 through a 302 to a signed URL, which carries CORS too).
    if s3_mode() {
        let no_follow = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let res = no_follow.get(&url).send().await.expect("get");
        assert_eq!(res.status(), 302);
        assert_eq!(
            res.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("*")
        );
        assert!(res.headers().contains_key("location"));
    }
    let res = anonymous.get(&url).send().await.expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/png")
    );
    assert_eq!(res.bytes().await.expect("body").to_vec(), bytes);

    // Validators are answered by Stowage itself.
    let cached = anonymous
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(cached.status(), 304);
    assert!(cached.headers().contains_key("access-control-allow-origin"));
    let since = anonymous
        .get(&url)
        .header("If-Modified-Since", &last_modified)
        .send()
        .await
        .expect("get");
    assert_eq!(since.status(), 304);

    // Ranges (on S3 through the redirect, which the client follows).
    let part = anonymous
        .get(&url)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.bytes().await.expect("body").to_vec(),
        bytes[100..200].to_vec()
    );

    // Private from now on: refused at once, with the same 404 as anything else.
    let id = file["id"].as_str().expect("id");
    let (status, _) = s
        .call(
            Method::PATCH,
            &format!("/v1/files/{id}"),
            &alice,
            Some(json!({"visibility": "private"})),
        )
        .await;
    assert_eq!(status, 200);
    let gone = read(anonymous.get(&url).send().await.expect("get")).await;
    assert_error(&gone, 404, "file/not-found");
    let (_, view) = s.get(&format!("/v1/files/{id}"), &alice).await;
    assert!(
        view["publicUrl"].is_null(),
        "no publicUrl on a private file"
    );
}

#[tokio::test]
async fn everything_not_public_is_the_same_404_and_active_types_are_sandboxed() {
    let s = spawn();
    let alice = s.user("alice");
    let anonymous = http_client();
    let private = s
        .upload(&alice, "secret.txt", "text/plain", b"secret", json!({}))
        .await;
    let (_, ticket) = s
        .post(
            "/v1/files/presigned-url",
            &alice,
            json!({"filename": "pending.txt", "contentType": "text/plain", "fileSize": 3}),
        )
        .await;
    assert_eq!(
        s.put_presigned(&ticket, b"abc".to_vec()).await.status(),
        200
    );
    let page = s
        .upload(
            &alice,
            "page.html",
            "text/html",
            b"<script>alert(1)</script>",
            json!({"visibility": "public"}),
        )
        .await;
    let deleted = s
        .upload(
            &alice,
            "bye.txt",
            "text/plain",
            b"bye",
            json!({"visibility": "public"}),
        )
        .await;
    let deleted_url = deleted["publicUrl"].as_str().expect("url").to_owned();
    let (status, _) = s
        .call(
            Method::DELETE,
            &format!("/v1/files/{}", deleted["id"].as_str().expect("id")),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);

    let private_key = private["s3Key"].as_str().expect("key");
    let pending_key = ticket["key"].as_str().expect("key");
    for url in [
        s.url(&format!("/v1/public/{private_key}")),
        s.url(&format!("/v1/public/{pending_key}")),
        s.url("/v1/public/demo/dev/no/such/key.txt"),
        s.url("/v1/public/demo/dev/..%2F..%2Fetc%2Fpasswd"),
        s.url("/v1/public/"),
        deleted_url,
    ] {
        let res = anonymous.get(&url).send().await.expect("get");
        assert_eq!(
            res.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("*"),
            "{url}"
        );
        assert_error(&read(res).await, 404, "file/not-found");
    }

    let res = anonymous
        .head(page["publicUrl"].as_str().expect("url"))
        .send()
        .await
        .expect("head");
    assert_eq!(res.status(), 200);
    let h = |n: &str| header(&res, n);
    assert_eq!(
        h("content-disposition").as_deref(),
        Some("attachment; filename=\"page.html\""),
        "a type a browser would run is an attachment"
    );
    assert_eq!(h("content-security-policy").as_deref(), Some("sandbox"));

    // GET form of download-url.
    let id = private["id"].as_str().expect("id");
    let (status, dl) = s.get(&format!("/v1/files/{id}/download-url"), &alice).await;
    assert_eq!(status, 200, "{dl}");
    assert!(dl["url"].is_string());
}

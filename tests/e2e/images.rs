//! Image transformations (docs/api.md §9): real images uploaded through
//! presigned URLs, fetched transformed by URL — sizes, formats by magic
//! bytes, validators, caching, the bounds that keep anonymous clients from
//! running up the bill, and every error code of §9.

use reqwest::{Client, Response};
use serde_json::{json, Value};
use stowage_adapters_image::Codec;
use stowage_domain::image::ImageFormat;
use stowage_domain::ports::ImageCodec;

use crate::helpers::*;

/// A photo-like JPEG of `w`×`h`: smooth gradients plus a bright block.
fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let (wu, hu) = (u32::from(w), u32::from(h));
    let pixels: Vec<u8> = (0..hu)
        .flat_map(|y| {
            (0..wu).flat_map(move |x| {
                let c = |v: u32, n: u32| u8::try_from(v * 255 / n.max(1)).unwrap_or(255);
                if x > wu * 3 / 4 && y < hu / 4 {
                    [250, 200, 40]
                } else {
                    [c(x, wu), c(y, hu), 90]
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    out
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    let mut writer = e.write_header().expect("header");
    let data: Vec<u8> = (0..w * h)
        .flat_map(|i| [10, 120, 200, u8::try_from(i % 256).unwrap_or(0)])
        .collect();
    writer.write_image_data(&data).expect("data");
    writer.finish().expect("finish");
    out
}

/// A small PNG declaring 100,000 × 100,000 pixels.
fn png_bomb() -> Vec<u8> {
    let mut out = Vec::new();
    let e = {
        let mut e = png::Encoder::new(&mut out, 100_000, 100_000);
        e.set_color(png::ColorType::Grayscale);
        e.set_depth(png::BitDepth::Eight);
        e
    };
    // The header only, and a scrap of compressed data: a real bomb would
    // inflate to 10 GB; this one is cut short, which must not matter.
    let mut writer = e.write_header().expect("header");
    let _ = writer.write_chunk(
        png::chunk::IDAT,
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF],
    );
    drop(writer);
    out
}

async fn upload_image(
    s: &Server,
    who: &Creds,
    name: &str,
    mime: &str,
    bytes: &[u8],
    visibility: &str,
) -> Value {
    s.upload(who, name, mime, bytes, json!({"visibility": visibility}))
        .await
}

fn img_url(s: &Server, options: &str, file: &Value) -> String {
    s.url(&format!(
        "/v1/img/{options}/{}",
        file["s3Key"].as_str().expect("s3Key")
    ))
}

/// Format (by magic bytes) and size of an answer's body.
async fn image_of(res: Response) -> (ImageFormat, u32, u32, Vec<u8>) {
    let bytes = res.bytes().await.expect("body").to_vec();
    let format = ImageFormat::sniff(&bytes).expect("an image");
    match Codec.probe(&bytes) {
        Ok(info) => (format, info.width, info.height, bytes),
        Err(_) => (format, 0, 0, bytes),
    }
}

async fn fetch(client: &Client, url: &str, accept: Option<&str>) -> Response {
    let mut r = client.get(url);
    if let Some(a) = accept {
        r = r.header("Accept", a);
    }
    r.send().await.expect("get")
}

/// Whether `Vary` names `Accept` (the CORS layer adds its own names).
fn varies_by_accept(res: &Response) -> bool {
    header(res, "vary").is_some_and(|v| {
        v.split(',')
            .any(|name| name.trim().eq_ignore_ascii_case("accept"))
    })
}

/// `stowage_image_transforms_total{result="…"}`.
async fn transforms(s: &Server, result: &str) -> u64 {
    let text = s.metrics().await;
    let prefix = format!("stowage_image_transforms_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn public_images_are_resized_converted_and_cached() {
    let s = spawn();
    let alice = s.user("alice");
    let photo = upload_image(
        &s,
        &alice,
        "photo.jpg",
        "image/jpeg",
        &jpeg(1200, 800),
        "public",
    )
    .await;
    let anon = http_client();

    // fit-in: inside the box, aspect kept; no Accept → the source's format.
    let url = img_url(&s, "fit-in/300x200", &photo);
    let res = fetch(&anon, &url, None).await;
    assert_eq!(res.status(), 200);
    let h = |n: &str| header(&res, n);
    assert_eq!(h("content-type").as_deref(), Some("image/jpeg"));
    assert_eq!(h("access-control-allow-origin").as_deref(), Some("*"));
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(h("cache-control").as_deref(), Some("public, max-age=3600"));
    assert!(varies_by_accept(&res), "{:?}", h("vary"));
    let etag = h("etag").expect("etag");
    assert_eq!(image_of(res).await.0, ImageFormat::Jpeg);
    let (format, w, hgt, first) = image_of(fetch(&anon, &url, None).await).await;
    assert_eq!((format, w, hgt), (ImageFormat::Jpeg, 300, 200));

    // Accept lists WebP → WebP, under another validator.
    let res = fetch(&anon, &url, Some("image/avif,image/webp,*/*")).await;
    assert_eq!(res.status(), 200);
    assert_ne!(header(&res, "etag"), Some(etag.clone()));
    let (format, w, hgt, _) = image_of(res).await;
    assert_eq!((format, w, hgt), (ImageFormat::Webp, 300, 200));

    // Cover crop, smart crop, explicit formats (no Vary then), never enlarged by fit-in.
    for (options, want) in [
        ("300x300", (ImageFormat::Jpeg, 300, 300)),
        ("80x80/smart", (ImageFormat::Jpeg, 80, 80)),
        (
            "fit-in/800x0/filters:format(png)",
            (ImageFormat::Png, 800, 533),
        ),
        ("fit-in/4000x4000", (ImageFormat::Jpeg, 1200, 800)),
        (
            "filters:format(webp):quality(80)",
            (ImageFormat::Webp, 1200, 800),
        ),
        (
            "fit-in/64x64/filters:format(avif)",
            (ImageFormat::Avif, 0, 0),
        ),
        ("100x100/filters:blur(5)", (ImageFormat::Jpeg, 100, 100)),
    ] {
        let res = fetch(&anon, &img_url(&s, options, &photo), Some("image/webp")).await;
        assert_eq!(res.status(), 200, "{options}");
        let explicit = options.contains("format(");
        assert_eq!(varies_by_accept(&res), !explicit, "{options}");
        let (format, w, hgt, _) = image_of(res).await;
        let want = if explicit {
            want
        } else {
            (ImageFormat::Webp, want.1, want.2)
        };
        assert_eq!((format, w, hgt), want, "{options}");
    }

    // Validators: 304 without a body, answered before any work.
    let res = anon
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(res.status(), 304);
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("*")
    );

    // The second request is served from the stored derived image, identically.
    let decodes = s.counter("stowage_image_decodes_total").await;
    let cached = transforms(&s, "cached").await;
    let (_, _, _, again) = image_of(fetch(&anon, &url, None).await).await;
    assert_eq!(again, first, "the stored derived image is the computed one");
    assert_eq!(s.counter("stowage_image_decodes_total").await, decodes);
    assert_eq!(transforms(&s, "cached").await, cached + 1);

    // HEAD: headers only, length known.
    let res = anon.head(&url).send().await.expect("head");
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type").as_deref(), Some("image/jpeg"));

    // The original is unchanged.
    assert_eq!(
        s.download(&alice, photo["id"].as_str().expect("id")).await,
        jpeg(1200, 800)
    );
}

#[tokio::test]
async fn sources_of_every_format_and_exif_free_outputs() {
    let s = spawn();
    let alice = s.user("alice");
    let anon = http_client();
    let picture = upload_image(
        &s,
        &alice,
        "logo.png",
        "image/png",
        &png(400, 200),
        "public",
    )
    .await;
    let (format, w, h, _) =
        image_of(fetch(&anon, &img_url(&s, "fit-in/100x100", &picture), None).await).await;
    assert_eq!((format, w, h), (ImageFormat::Png, 100, 50));
    let (format, w, h, _) = image_of(
        fetch(
            &anon,
            &img_url(&s, "50x50/filters:format(jpeg)", &picture),
            None,
        )
        .await,
    )
    .await;
    assert_eq!((format, w, h), (ImageFormat::Jpeg, 50, 50));
}

#[tokio::test]
async fn every_error_of_section_9() {
    let s = spawn();
    let alice = s.user("alice");
    let anon = http_client();
    let public = upload_image(&s, &alice, "p.jpg", "image/jpeg", &jpeg(64, 64), "public").await;
    let private = upload_image(&s, &alice, "q.jpg", "image/jpeg", &jpeg(64, 64), "private").await;
    let get = |url: String| {
        let anon = anon.clone();
        async move {
            let res = anon.get(&url).send().await.expect("get");
            let cors = header(&res, "access-control-allow-origin");
            assert_eq!(cors.as_deref(), Some("*"), "{url}");
            read(res).await
        }
    };
    // Options are decided before any lookup: the key does not even exist.
    for options in [
        "300x200/fit-in",
        "fit-in",
        "smart/300x200",
        "filters:quality(0)",
        "filters:quality(80):quality(80)",
        "filters:sharpen(2)",
        "filters:format(gif)",
        "filters:blur(151)",
        "fit-in/300x200/smart",
    ] {
        let got = get(s.url(&format!("/v1/img/{options}/nope/dev/x/y/z.jpg"))).await;
        assert_error(&got, 400, "image/invalid-options");
    }
    assert_error(
        &get(s.url("/v1/img/nope/dev/x/y/z.jpg")).await,
        400,
        "image/invalid-options",
    );
    assert_error(
        &get(img_url(&s, "5000x10", &public)).await,
        400,
        "image/too-large",
    );
    assert_error(
        &get(img_url(&s, "fit-in/10x4097", &public)).await,
        400,
        "image/too-large",
    );
    // Not public, unknown, deleted: one 404.
    assert_error(
        &get(img_url(&s, "10x10", &private)).await,
        404,
        "file/not-found",
    );
    assert_error(
        &get(s.url("/v1/img/10x10/nope/dev/x/y/z.jpg")).await,
        404,
        "file/not-found",
    );
    // SVG is never rasterized; text is not an image.
    let svg = upload_image(
        &s,
        &alice,
        "v.svg",
        "image/svg+xml",
        b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        "public",
    )
    .await;
    assert_error(
        &get(img_url(&s, "10x10", &svg)).await,
        415,
        "image/unsupported-format",
    );
    let text = upload_image(&s, &alice, "t.txt", "text/plain", b"hello", "public").await;
    assert_error(
        &get(img_url(&s, "10x10", &text)).await,
        415,
        "image/unsupported-format",
    );
    // A truncated JPEG: decoding fails.
    let full = jpeg(400, 300);
    let cut = upload_image(
        &s,
        &alice,
        "cut.jpg",
        "image/jpeg",
        &full[..full.len() / 3],
        "public",
    )
    .await;
    assert_error(
        &get(img_url(&s, "fit-in/10x10", &cut)).await,
        422,
        "image/decode-failed",
    );
    // A decompression bomb is refused from its header.
    let bomb = upload_image(&s, &alice, "bomb.png", "image/png", &png_bomb(), "public").await;
    assert_error(
        &get(img_url(&s, "fit-in/10x10", &bomb)).await,
        400,
        "image/too-large",
    );
    // A public file made private is refused at once.
    let (status, _) = s
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/files/{}", public["id"].as_str().expect("id")),
            &alice,
            Some(json!({"visibility": "private"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_error(
        &get(img_url(&s, "10x10", &public)).await,
        404,
        "file/not-found",
    );
    assert!(s.log().find("panicked").is_none(), "{}", s.log());
}

#[tokio::test]
async fn concurrent_first_requests_decode_once() {
    let s = spawn();
    let alice = s.user("alice");
    let photo = upload_image(
        &s,
        &alice,
        "big.jpg",
        "image/jpeg",
        &jpeg(2000, 1500),
        "public",
    )
    .await;
    let url = img_url(&s, "fit-in/640x480/filters:blur(2)", &photo);
    let before = s.counter("stowage_image_decodes_total").await;
    let client = http_client();
    let answers = futures_util::future::join_all((0..20).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let res = client.get(&url).send().await.expect("get");
            (
                res.status().as_u16(),
                res.bytes().await.expect("body").to_vec(),
            )
        }
    }))
    .await;
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert!(
        answers.windows(2).all(|w| w[0].1 == w[1].1),
        "one image for all"
    );
    assert_eq!(
        s.counter("stowage_image_decodes_total").await,
        before + 1,
        "twenty concurrent first requests decode the source once"
    );
}

#[tokio::test]
async fn private_images_through_signed_transform_urls() {
    let s = spawn();
    let alice = s.user("alice");
    let bob = s.user("bob");
    let photo = upload_image(
        &s,
        &alice,
        "me.jpg",
        "image/jpeg",
        &jpeg(600, 400),
        "private",
    )
    .await;
    let id = photo["id"].as_str().expect("id");
    let path = format!("/v1/files/{id}/download-url");
    let (status, ticket) = s
        .post(
            &path,
            &alice,
            json!({"transform": "fit-in/150x150/filters:format(webp)"}),
        )
        .await;
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(ticket["contentType"], "image/webp");
    let url = ticket["url"].as_str().expect("url");
    assert!(url.contains("/v1/img/"), "{url}");
    let anon = http_client();
    let res = anon.get(url).send().await.expect("get");
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "cache-control").as_deref(),
        Some("private, max-age=3600")
    );
    let (format, w, h, _) = image_of(res).await;
    assert_eq!((format, w, h), (ImageFormat::Webp, 150, 100));

    // GET form and the query parameter; a tampered signature is a 404.
    let (status, ticket) = s.get(&format!("{path}?transform=100x100"), &alice).await;
    assert_eq!(status, 200, "{ticket}");
    let url = ticket["url"].as_str().expect("url").to_owned();
    let (format, w, h, _) = image_of(anon.get(&url).send().await.expect("get")).await;
    assert_eq!((format, w, h), (ImageFormat::Jpeg, 100, 100));
    let tampered = url.replace("100x100", "101x100");
    assert_error(
        &read(anon.get(&tampered).send().await.expect("get")).await,
        404,
        "file/not-found",
    );
    let (base, _) = url.split_once("signature=").expect("signed");
    assert_error(
        &read(
            anon.get(format!("{base}signature=00"))
                .send()
                .await
                .expect("get"),
        )
        .await,
        404,
        "file/not-found",
    );

    // Read rules hold; options are checked.
    assert_error(
        &s.post(&path, &bob, json!({"transform": "10x10"})).await,
        403,
        "file/access-denied",
    );
    assert_error(
        &s.post(&path, &alice, json!({"transform": "10x10/k"})).await,
        400,
        "image/invalid-options",
    );
    assert_error(
        &s.post(&path, &alice, json!({"transform": 5})).await,
        400,
        "common/invalid-request",
    );
    assert_error(
        &s.post(&path, &alice, json!({"transform": "9999x1"})).await,
        400,
        "image/too-large",
    );
    // Without transform, the plain download URL still works, with or without a body.
    let (status, plain) = s.post(&path, &alice, json!({})).await;
    assert_eq!(status, 200);
    assert!(!plain["url"].as_str().unwrap_or("").contains("/v1/img/"));
    let res = s
        .req(reqwest::Method::POST, &path, &alice)
        .send()
        .await
        .expect("no body");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn the_bill_is_bounded_derivatives_rates_and_deletion() {
    let s = spawn_with(&[
        ("STOWAGE_IMAGE_MAX_DERIVATIVES", "2"),
        ("STOWAGE_IMAGE_RATE_PER_SEC", "0.001"),
        ("STOWAGE_IMAGE_RATE_BURST", "4"),
        ("STOWAGE_LIFECYCLE_INTERVAL_SECS", "1"),
    ]);
    let alice = s.user("alice");
    let photo = upload_image(&s, &alice, "a.jpg", "image/jpeg", &jpeg(300, 200), "public").await;
    let anon = http_client();
    // Three variants computed, two stored: the third is computed again next time.
    for options in ["10x10", "20x20", "30x30"] {
        assert_eq!(
            fetch(&anon, &img_url(&s, options, &photo), None)
                .await
                .status(),
            200
        );
    }
    let decodes = s.counter("stowage_image_decodes_total").await;
    for options in ["10x10", "20x20"] {
        assert_eq!(
            fetch(&anon, &img_url(&s, options, &photo), None)
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        s.counter("stowage_image_decodes_total").await,
        decodes,
        "two stored"
    );
    assert_eq!(
        fetch(&anon, &img_url(&s, "30x30", &photo), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        s.counter("stowage_image_decodes_total").await,
        decodes + 1,
        "past the maximum a variant is served, not stored"
    );
    // Five uncached transforms spent the burst of four: 429 with Retry-After;
    // stored ones are still served.
    let res = fetch(&anon, &img_url(&s, "40x40", &photo), None).await;
    assert_eq!(res.status(), 429);
    assert!(header(&res, "retry-after").is_some());
    assert_eq!(
        header(&res, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_error(&read(res).await, 429, "common/rate-limited");
    // A forged X-Forwarded-For does not buy a new allowance: no proxy is trusted.
    let forged = anon
        .get(img_url(&s, "40x40", &photo))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 429);
    assert_eq!(
        fetch(&anon, &img_url(&s, "10x10", &photo), None)
            .await
            .status(),
        200
    );

    // Deleted with their file: refused at once, objects removed by the worker.
    let derived = derived_folder(&s, &photo);
    if !s3_mode() {
        assert!(derived.is_dir(), "{}", derived.display());
    }
    let (status, _) = s
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/files/{}", photo["id"].as_str().expect("id")),
            &alice,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_error(
        &read(fetch(&anon, &img_url(&s, "10x10", &photo), None).await).await,
        404,
        "file/not-found",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while derived.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "derived images outlived their file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let s = spawn_with(&[
        ("STOWAGE_TRUSTED_PROXIES", "127.0.0.0/8, ::1"),
        ("STOWAGE_IMAGE_RATE_PER_SEC", "0.001"),
        ("STOWAGE_IMAGE_RATE_BURST", "1"),
    ]);
    let alice = s.user("alice");
    let photo = upload_image(&s, &alice, "p.jpg", "image/jpeg", &jpeg(64, 48), "public").await;
    let anon = http_client();
    let from = |client: &'static str, options: &'static str| {
        anon.get(img_url(&s, options, &photo))
            .header("x-forwarded-for", client)
            .send()
    };
    assert_eq!(
        from("198.51.100.1", "10x10").await.expect("1").status(),
        200
    );
    assert_eq!(
        from("198.51.100.1", "11x11").await.expect("2").status(),
        429
    );
    // Another client behind the same proxy still has its own allowance; a hop
    // the client wrote itself (left of the proxy's) does not count.
    assert_eq!(
        from("198.51.100.1, 198.51.100.2", "12x12")
            .await
            .expect("3")
            .status(),
        200
    );
    assert_eq!(
        from("203.0.113.7, 198.51.100.2", "13x13")
            .await
            .expect("4")
            .status(),
        429
    );
}

/// Where the store keeps a file's derived images.
fn derived_folder(s: &Server, file: &Value) -> std::path::PathBuf {
    let key = file["s3Key"].as_str().expect("s3Key");
    let mut parts = key.splitn(3, '/');
    let (project, env) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let probe = format!(
        "{project}/{env}/_derived/{}/x",
        file["id"].as_str().expect("id")
    );
    s.stored_object(&probe)
        .parent()
        .map(std::path::Path::to_path_buf)
        .expect("folder")
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let s = spawn_with(&[
        ("STOWAGE_IMAGE_WORKERS", "1"),
        ("STOWAGE_IMAGE_QUEUE_TIMEOUT_MS", "1"),
    ]);
    let alice = s.user("alice");
    let photo = upload_image(
        &s,
        &alice,
        "big.jpg",
        "image/jpeg",
        &jpeg(1600, 1200),
        "public",
    )
    .await;
    let client = http_client();
    let answers = futures_util::future::join_all((1..=8).map(|n| {
        let url = img_url(
            &s,
            &format!("filters:blur({}):format(png)", 100 + n),
            &photo,
        );
        let client = client.clone();
        async move {
            let res = client.get(&url).send().await.expect("get");
            (
                res.status().as_u16(),
                header(&res, "retry-after"),
                read(res).await.1,
            )
        }
    }))
    .await;
    let busy: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert!(
        !busy.is_empty(),
        "one worker, eight heavy transforms, no wait: {answers:?}"
    );
    for (status, retry, body) in &answers {
        assert!(*status == 200 || *status == 503, "{status} {body}");
        if *status == 503 {
            assert!(retry.is_some());
            assert_eq!(body["error"]["code"], "common/service-unavailable");
        }
    }
}

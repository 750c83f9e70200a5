//! Checks of an object store, bytes moved through its presigned requests by a
//! [`Transfer`].

use super::*;
use crate::limits::{sha256_base64, CHECKSUM_SHA256_HEADER};

/// What a store's contract check needs to move bytes through presigned requests.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// Performs a presigned PUT with `body` and the given extra headers (which
    /// override the request's own); returns `(status, etag)`.
    async fn put(
        &self,
        req: &PresignedRequest,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> (u16, Option<String>);
    /// Performs a presigned GET; returns `(status, content-type, content-disposition, body)`.
    async fn get(&self, req: &PresignedRequest) -> (u16, Option<String>, Option<String>, Vec<u8>);

    /// The time the store judges its URLs by, from which the checks set
    /// expiries: the wall clock unless the store runs on another.
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }

    /// Lets `duration` pass on that clock: sleeps, unless the clock can be
    /// moved (the memory store on a `ManualClock` moves it, so the expiry
    /// checks take no time).
    async fn pass(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

fn later(io: &dyn Transfer) -> Timestamp {
    io.now().plus_secs(600)
}

/// Runs every object store check. `key_prefix` must be a key prefix the store accepts.
pub async fn object_store(store: &dyn ObjectStore, io: &dyn Transfer, key_prefix: &str) {
    presigned_urls_bind_and_round_trip(store, io, key_prefix).await;
    promote_moves_inside_the_store(store, io, key_prefix).await;
    racing_part_uploads_leave_one_whole_part(store, io, key_prefix).await;
    urls_expire(store, io, key_prefix).await;
    multipart_assembles_parts_in_order(store, io, key_prefix).await;
    multipart_refuses_small_parts_and_aborts(store, io, key_prefix).await;
    checksums_bind_puts_parts_and_assemblies(store, io, key_prefix).await;
    put_bytes_stores_whole_objects(store, io, key_prefix).await;
}

/// `head`/`delete` of a missing object, a PUT URL that binds Content-Type and
/// length, the MD5 ETag, a GET URL with exactly the given headers, idempotent
/// delete.
pub async fn presigned_urls_bind_and_round_trip(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let key = format!("{key_prefix}/{}/hello.txt", uuid::Uuid::now_v7().simple());
    assert_eq!(
        store.head(&key).await.expect("head"),
        None,
        "head of a missing object MUST be None"
    );
    store
        .delete(&key)
        .await
        .expect("delete of a missing object MUST succeed");

    let put = store
        .presign_put(&key, "text/plain", Some(5), None, exp)
        .await
        .expect("presign_put");
    let (status, _) = io
        .put(&put, &[("Content-Type", "image/png")], b"hello".to_vec())
        .await;
    assert!(
        status >= 400,
        "a PUT with another Content-Type MUST be refused, got {status}"
    );
    let (status, _) = io
        .put(&put, &[("Content-Length", "6")], b"hello!".to_vec())
        .await;
    assert!(
        status >= 400,
        "a PUT with another length MUST be refused, got {status}"
    );
    assert_eq!(
        store.head(&key).await.expect("head"),
        None,
        "refused PUTs leave nothing"
    );
    let (status, etag) = io.put(&put, &[], b"hello".to_vec()).await;
    assert_eq!(status, 200, "the presigned PUT works as issued");
    let info = store
        .head(&key)
        .await
        .expect("head")
        .expect("object exists after PUT");
    assert_eq!(info.size, 5);
    assert_eq!(
        etag.map(|e| e.trim_matches('"').to_owned()),
        Some("5d41402abc4b2a76b9719d911017c592".into()),
        "ETag is the MD5"
    );

    let get = store
        .presign_get(&key, "text/plain", "attachment; filename=\"hi.txt\"", exp)
        .await
        .expect("presign_get");
    let (status, ct, cd, body) = io.get(&get).await;
    assert_eq!((status, body.as_slice()), (200, b"hello".as_slice()));
    assert_eq!(
        ct.as_deref(),
        Some("text/plain"),
        "GET carries exactly the given Content-Type"
    );
    assert_eq!(cd.as_deref(), Some("attachment; filename=\"hi.txt\""));

    store.delete(&key).await.expect("delete");
    assert_eq!(store.head(&key).await.expect("head"), None, "deleted");
    store.delete(&key).await.expect("delete is idempotent");
    store
        .health_check()
        .await
        .expect("health_check MUST succeed on a live store");
}

/// Parts out of order, one replaced, assembled in order; a missing part and a
/// wrong ETag refused.
pub async fn multipart_assembles_parts_in_order(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let mkey = format!("{key_prefix}/{}/big.bin", uuid::Uuid::now_v7().simple());
    let upload_id = store
        .create_multipart(&mkey, "application/octet-stream")
        .await
        .expect("create_multipart");
    let five_mib = 5 * 1024 * 1024;
    let part1 = vec![1u8; five_mib];
    let part2 = vec![2u8; 10];
    let mut etags = std::collections::BTreeMap::new();
    for (n, body) in [
        (2u32, vec![9u8; 10]),
        (1, part1.clone()),
        (2, part2.clone()),
    ] {
        let req = store
            .presign_part(&mkey, &upload_id, n, None, exp)
            .await
            .expect("presign_part");
        let (status, etag) = io.put(&req, &[], body).await;
        assert_eq!(status, 200, "part {n} upload");
        etags.insert(n, etag.expect("part ETag").trim_matches('"').to_owned());
    }
    let parts: Vec<CompletedPart> = etags
        .iter()
        .map(|(n, e)| CompletedPart {
            part_number: *n,
            etag: e.clone(),
        })
        .collect();
    let missing = vec![
        CompletedPart {
            part_number: 1,
            etag: etags[&1].clone(),
        },
        CompletedPart {
            part_number: 7,
            etag: etags[&2].clone(),
        },
    ];
    assert_eq!(
        code(
            store
                .complete_multipart(&mkey, &upload_id, &missing, None)
                .await
        ),
        Some(ErrorCode::InvalidPartsArray),
        "a part that was never uploaded"
    );
    let wrong = vec![CompletedPart {
        part_number: 1,
        etag: "0".repeat(32),
    }];
    assert_eq!(
        code(
            store
                .complete_multipart(&mkey, &upload_id, &wrong, None)
                .await
        ),
        Some(ErrorCode::InvalidPartsArray),
        "complete_multipart MUST refuse a part whose ETag differs"
    );
    let done = store
        .complete_multipart(&mkey, &upload_id, &parts, None)
        .await
        .expect("complete_multipart");
    assert_eq!(done.size, five_mib as u64 + 10);
    assert!(
        done.etag.trim_matches('"').ends_with("-2"),
        "multipart ETag is <md5>-<n>: {}",
        done.etag
    );
    let get = store
        .presign_get(&mkey, "application/octet-stream", "attachment", exp)
        .await
        .expect("presign_get");
    let (_, _, _, body) = io.get(&get).await;
    assert!(
        body.len() == five_mib + 10
            && body[..five_mib] == part1[..]
            && body[five_mib..] == part2[..],
        "parts assembled in order"
    );
    store.delete(&mkey).await.expect("delete");
}

/// A small non-final part refused; abort discards the parts and is
/// idempotent; an aborted or unknown upload is `file/upload-not-found`.
pub async fn multipart_refuses_small_parts_and_aborts(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let skey = format!("{key_prefix}/{}/small.bin", uuid::Uuid::now_v7().simple());
    let upload_id = store
        .create_multipart(&skey, "application/octet-stream")
        .await
        .expect("create_multipart");
    let mut parts = Vec::new();
    for n in 1..=2u32 {
        let req = store
            .presign_part(&skey, &upload_id, n, None, exp)
            .await
            .expect("presign_part");
        let (_, etag) = io.put(&req, &[], vec![0u8; 100]).await;
        parts.push(CompletedPart {
            part_number: n,
            etag: etag.expect("etag").trim_matches('"').to_owned(),
        });
    }
    assert_eq!(
        code(
            store
                .complete_multipart(&skey, &upload_id, &parts, None)
                .await
        ),
        Some(ErrorCode::InvalidPartsArray),
        "every part but the last MUST be at least 5 MiB"
    );
    store
        .abort_multipart(&skey, &upload_id)
        .await
        .expect("abort");
    store
        .abort_multipart(&skey, &upload_id)
        .await
        .expect("abort is idempotent");
    assert_eq!(store.head(&skey).await.expect("head"), None);
    assert_eq!(
        code(store.complete_multipart(&skey, &upload_id, &parts, None).await),
        Some(ErrorCode::UploadNotFound),
        "abort_multipart MUST discard the parts: completing an aborted upload is file/upload-not-found"
    );
    let unknown = uuid::Uuid::new_v4().simple().to_string();
    assert_eq!(
        code(
            store
                .complete_multipart(&skey, &unknown, &parts, None)
                .await
        ),
        Some(ErrorCode::UploadNotFound),
        "complete_multipart MUST return file/upload-not-found for an unknown upload"
    );
    store
        .abort_multipart(&skey, &unknown)
        .await
        .expect("abort of an unknown upload MUST succeed (idempotent)");
}

/// "A URL for one `PUT` … until `expires_at`" and the same for `GET`: once
/// expired, a URL MUST be refused, and an expired PUT MUST leave no object.
pub async fn urls_expire(store: &dyn ObjectStore, io: &dyn Transfer, key_prefix: &str) {
    let now = || io.now();
    let long = now().plus_secs(600);
    let key = format!(
        "{key_prefix}/{}/expiring.txt",
        uuid::Uuid::now_v7().simple()
    );
    let stored = format!("{key_prefix}/{}/stored.txt", uuid::Uuid::now_v7().simple());
    let put = store
        .presign_put(&stored, "text/plain", Some(5), None, long)
        .await
        .expect("presign_put");
    assert_eq!(io.put(&put, &[], b"hello".to_vec()).await.0, 200);
    let short = now().plus_secs(1);
    let late_put = store
        .presign_put(&key, "text/plain", Some(5), None, short)
        .await
        .expect("presign_put");
    let late_get = store
        .presign_get(&stored, "text/plain", "attachment", short)
        .await
        .expect("presign_get");
    io.pass(std::time::Duration::from_millis(2_100)).await;
    let (status, _) = io.put(&late_put, &[], b"hello".to_vec()).await;
    assert!(
        !(200..300).contains(&status),
        "an expired upload URL MUST be refused (got {status})"
    );
    assert_eq!(
        store.head(&key).await.expect("head"),
        None,
        "a refused PUT MUST leave no object"
    );
    let (status, _, _, _) = io.get(&late_get).await;
    assert!(
        !(200..300).contains(&status),
        "an expired download URL MUST be refused (got {status})"
    );
    store.delete(&stored).await.expect("delete");
}

/// `promote` moves the bytes inside the store and leaves nothing at `from`.
pub async fn promote_moves_inside_the_store(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let id = uuid::Uuid::now_v7().simple();
    let (from, to) = (
        format!("{key_prefix}/{id}/staged.txt"),
        format!("{key_prefix}/{id}/placed.txt"),
    );
    let put = store
        .presign_put(&from, "text/plain", None, None, exp)
        .await
        .expect("presign_put");
    assert_eq!(io.put(&put, &[], b"hello".to_vec()).await.0, 200);
    store.promote(&from, &to, 5).await.expect("promote");
    assert_eq!(
        store.head(&from).await.expect("head"),
        None,
        "promote MUST leave nothing at the source"
    );
    assert_eq!(
        store.head(&to).await.expect("head").map(|i| i.size),
        Some(5),
        "promote MUST put the object at the destination"
    );
    // The URL that wrote the source is still valid: it can only write there.
    let _ = io.put(&put, &[], b"EVIL!".to_vec()).await;
    let get = store
        .presign_get(&to, "text/plain", "attachment", exp)
        .await
        .expect("presign_get");
    assert_eq!(
        io.get(&get).await.3,
        b"hello".to_vec(),
        "a PUT through the source's URL MUST NOT change the promoted object"
    );
    assert_eq!(
        code(
            store
                .promote(&format!("{key_prefix}/{id}/none"), &to, 5)
                .await
        ),
        Some(ErrorCode::UploadNotFound),
        "promote of a missing object"
    );
    assert_eq!(
        io.get(&get).await.3,
        b"hello".to_vec(),
        "a failed promote leaves the destination alone"
    );
    for k in [&from, &to] {
        store.delete(k).await.expect("delete");
    }
}

/// Two racing PUTs of one part leave one of them, whole.
pub async fn racing_part_uploads_leave_one_whole_part(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    for round in 0..3 {
        let key = format!("{key_prefix}/{}/race.bin", uuid::Uuid::now_v7().simple());
        let upload_id = store
            .create_multipart(&key, "application/octet-stream")
            .await
            .expect("create_multipart");
        let req = store
            .presign_part(&key, &upload_id, 1, None, exp)
            .await
            .expect("presign_part");
        let (a, b) = (vec![b'a'; 256 * 1024], vec![b'b'; 256 * 1024 + 1]);
        let ((sa, ea), (sb, eb)) =
            tokio::join!(io.put(&req, &[], a.clone()), io.put(&req, &[], b.clone()));
        assert_eq!((sa, sb), (200, 200), "both part PUTs are answered");
        let mut survivors = Vec::new();
        for (etag, body) in [(ea, &a), (eb, &b)] {
            let etag = etag.expect("etag").trim_matches('"').to_owned();
            let parts = [CompletedPart {
                part_number: 1,
                etag,
            }];
            if let Ok(done) = store
                .complete_multipart(&key, &upload_id, &parts, None)
                .await
            {
                assert_eq!(done.size, body.len() as u64, "round {round}");
                let get = store
                    .presign_get(&key, "application/octet-stream", "attachment", exp)
                    .await
                    .expect("presign_get");
                assert!(
                    io.get(&get).await.3 == *body,
                    "the completed object is the whole body of the part whose ETag was named"
                );
                survivors.push(done);
                break;
            }
        }
        assert_eq!(
            survivors.len(),
            1,
            "two PUTs of one part number MUST leave one whole part that completes (round {round})"
        );
        store.delete(&key).await.expect("delete");
    }
}

pub async fn read_prefix_reads_only_the_first_bytes(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let id = uuid::Uuid::now_v7().simple();
    let (full, empty) = (
        format!("{key_prefix}/{id}/full.bin"),
        format!("{key_prefix}/{id}/empty.bin"),
    );
    for (key, body) in [(&full, b"0123456789".to_vec()), (&empty, Vec::new())] {
        let put = store
            .presign_put(key, "application/octet-stream", None, None, exp)
            .await
            .expect("presign_put");
        assert_eq!(io.put(&put, &[], body).await.0, 200);
    }
    assert_eq!(
        store.read_prefix(&full, 4).await.expect("read"),
        b"0123".to_vec(),
        "read_prefix MUST give exactly the first bytes"
    );
    assert_eq!(
        store.read_prefix(&full, 1 << 20).await.expect("read"),
        b"0123456789".to_vec(),
        "read_prefix MUST give a shorter object whole"
    );
    assert_eq!(
        store.read_prefix(&empty, 16).await.expect("read"),
        Vec::<u8>::new(),
        "read_prefix of an empty object MUST be empty"
    );
    assert_eq!(
        code(
            store
                .read_prefix(&format!("{key_prefix}/{id}/none"), 4)
                .await
        ),
        Some(ErrorCode::UploadNotFound),
        "read_prefix MUST say when there is no object"
    );
}

/// Checksums (docs/api.md §11): a PUT or part URL bound to a digest lists
/// `x-amz-checksum-sha256` and refuses other bytes, storing nothing; a digest
/// a store reports is the bytes' own; a store that computes whole-object
/// digests refuses an assembly with another one and keeps the parts.
pub async fn checksums_bind_puts_parts_and_assemblies(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let exp = later(io);
    let id = uuid::Uuid::now_v7().simple();
    let key = format!("{key_prefix}/{id}/summed.txt");
    let sum = sha256_base64(b"hello");
    let put = store
        .presign_put(&key, "text/plain", Some(5), Some(&sum), exp)
        .await
        .expect("presign_put");
    assert!(
        put.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(CHECKSUM_SHA256_HEADER) && v == &sum),
        "a PUT URL bound to a digest MUST list x-amz-checksum-sha256 among its headers"
    );
    let (status, _) = io.put(&put, &[], b"hellO".to_vec()).await;
    assert!(
        status >= 400,
        "a PUT whose body has another SHA-256 than the bound one MUST be refused, got {status}"
    );
    assert_eq!(
        store.head(&key).await.expect("head"),
        None,
        "a PUT refused for its digest MUST leave no object"
    );
    assert_eq!(io.put(&put, &[], b"hello".to_vec()).await.0, 200);
    let info = store.head(&key).await.expect("head").expect("stored");
    if let Some(have) = info.sha256 {
        assert_eq!(have, sum, "a sha256 head reports MUST be the bytes' own");
    }
    store.delete(&key).await.expect("delete");

    // An unbound PUT: whatever digest the store reports is the bytes' own.
    let plain = format!("{key_prefix}/{id}/plain.txt");
    let put = store
        .presign_put(&plain, "text/plain", None, None, exp)
        .await
        .expect("presign_put");
    assert_eq!(io.put(&put, &[], b"plain".to_vec()).await.0, 200);
    if let Some(have) = store
        .head(&plain)
        .await
        .expect("head")
        .and_then(|i| i.sha256)
    {
        assert_eq!(
            have,
            sha256_base64(b"plain"),
            "head's sha256 MUST be the bytes' own"
        );
    }
    store.delete(&plain).await.expect("delete");

    // Parts bound to their own digest, then the whole object's.
    let mkey = format!("{key_prefix}/{id}/summed.bin");
    let upload_id = store
        .create_multipart(&mkey, "application/octet-stream")
        .await
        .expect("create_multipart");
    let part = vec![7u8; 1000];
    let req = store
        .presign_part(&mkey, &upload_id, 1, Some(&sha256_base64(&part)), exp)
        .await
        .expect("presign_part");
    let (status, _) = io.put(&req, &[], vec![8u8; 1000]).await;
    assert!(
        status >= 400,
        "a part whose body has another SHA-256 than the bound one MUST be refused, got {status}"
    );
    let (status, etag) = io.put(&req, &[], part.clone()).await;
    assert_eq!(status, 200, "the part with its own digest is stored");
    let parts = [CompletedPart {
        part_number: 1,
        etag: etag.expect("etag").trim_matches('"').to_owned(),
    }];
    let wrong = sha256_base64(b"not the object");
    match store
        .complete_multipart(&mkey, &upload_id, &parts, Some(&wrong))
        .await
    {
        Ok(done) => assert_eq!(
            done.sha256, None,
            "a store that computes whole-object digests MUST refuse an assembly with another one"
        ),
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidPartsArray, "a wrong digest");
            assert_eq!(
                store.head(&mkey).await.expect("head"),
                None,
                "an assembly refused for its digest MUST leave nothing at the key"
            );
            let done = store
                .complete_multipart(&mkey, &upload_id, &parts, Some(&sha256_base64(&part)))
                .await
                .expect("an assembly refused for its digest MUST keep the parts");
            assert_eq!(done.sha256, Some(sha256_base64(&part)));
        }
    }
    store.delete(&mkey).await.expect("delete");
}

/// `put_bytes` (derived images): the bytes land whole, readable and signable
/// like any object; a second call replaces them; `delete` removes them.
pub async fn put_bytes_stores_whole_objects(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
) {
    let id = uuid::Uuid::now_v7().simple();
    let key = format!("{key_prefix}/{id}/derived.webp");
    let first: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    store
        .put_bytes(&key, "image/webp", first.clone())
        .await
        .expect("put_bytes");
    assert_eq!(
        store.read_prefix(&key, 1 << 20).await.expect("read"),
        first,
        "put_bytes MUST store exactly the bytes"
    );
    assert_eq!(
        store.head(&key).await.expect("head").map(|i| i.size),
        Some(70_000)
    );
    let get = store
        .presign_get(&key, "image/webp", "inline", later(io))
        .await
        .expect("presign_get");
    let (status, content_type, _, body) = io.get(&get).await;
    assert_eq!((status, body), (200, first), "a stored object is signable");
    assert_eq!(content_type.as_deref(), Some("image/webp"));
    store
        .put_bytes(&key, "image/webp", b"second".to_vec())
        .await
        .expect("replace");
    assert_eq!(
        store.read_prefix(&key, 1 << 20).await.expect("read"),
        b"second".to_vec(),
        "a second put_bytes MUST replace the first"
    );
    store.delete(&key).await.expect("delete");
    assert_eq!(store.head(&key).await.expect("head"), None);
}

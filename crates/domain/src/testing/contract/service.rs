//! `FileService` over given adapters: the use cases end to end, including races.

use super::*;

/// Runs the service-level checks of docs/api.md §12 over a repository and a store:
/// registered bytes never change, concurrent patches all apply, a PATCH
/// racing a DELETE never succeeds on a file that is gone, and of a multipart
/// completion racing an abort exactly one wins and nothing is left behind.
/// Repository crates pass the in-memory store (with itself as `io`); store
/// crates pass the in-memory repository.
pub async fn file_service(
    repo: std::sync::Arc<dyn FileRepository>,
    store: std::sync::Arc<dyn ObjectStore>,
    io: &dyn Transfer,
) {
    use crate::ports::CompletedPart;
    use crate::service::{FilePatch, FileService, ServiceConfig};
    use crate::upload::{CompletedParts, IssueUpload, PartNumber};

    let tenant = crate::testing::fresh_tenant();
    let alice = crate::model::Principal {
        tenant: tenant.clone(),
        identity: user("alice"),
        admin: false,
    };
    let service = FileService::new(
        repo,
        store.clone(),
        std::sync::Arc::new(crate::ports::SystemClock),
        ServiceConfig::default(),
    );
    let issue = |name: &str, size: Option<u64>| {
        let req = IssueUpload::new(name, "text/plain");
        match size {
            Some(n) => req.with_size(n),
            None => req,
        }
    };
    let register =
        |key: &str, size: u64| crate::service::RegisterFile::new(key, "a.txt", "text/plain", size);
    let as_request = |t: &crate::service::UploadTicket| PresignedRequest {
        url: t.url.clone(),
        method: "PUT",
        headers: t
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect(),
    };

    // Registered bytes never change, and nothing comes back after DELETE.
    let ticket = service
        .issue_upload_url(&alice, issue("a.txt", None))
        .await
        .expect("issue");
    let put = as_request(&ticket);
    assert_eq!(io.put(&put, &[], b"hello".to_vec()).await.0, 200);
    let file = service
        .register(&alice, register(&ticket.key, 5))
        .await
        .expect("register");
    let id = file.id;
    let _ = io.put(&put, &[], b"EVIL! and much longer".to_vec()).await;
    let read = |id: crate::model::FileId| {
        let service = &service;
        let alice = &alice;
        async move {
            let dl = service.download_url(alice, id).await.expect("download url");
            let req = PresignedRequest {
                url: dl.url,
                method: "GET",
                headers: Vec::new(),
            };
            io.get(&req).await.3
        }
    };
    assert_eq!(
        read(id).await,
        b"hello".to_vec(),
        "an upload URL used after registration MUST NOT change the file's bytes"
    );
    assert_eq!(
        store.head(&ticket.key).await.expect("head").map(|i| i.size),
        Some(5)
    );
    service.delete(&alice, id).await.expect("delete");
    let _ = io.put(&put, &[], b"again".to_vec()).await;
    assert_eq!(
        store.head(&ticket.key).await.expect("head"),
        None,
        "an upload URL used after DELETE MUST NOT bring the object back"
    );
    assert_eq!(
        code(service.register(&alice, register(&ticket.key, 5)).await),
        Some(ErrorCode::S3KeyAlreadyExists),
        "a registered key stays taken after DELETE"
    );

    // Concurrent patches all apply.
    let ticket = service
        .issue_upload_url(&alice, issue("b.txt", Some(5)))
        .await
        .expect("issue");
    assert_eq!(
        io.put(&as_request(&ticket), &[], b"hello".to_vec()).await.0,
        200
    );
    let file = service
        .register(&alice, register(&ticket.key, 5))
        .await
        .expect("register");
    let id = file.id;
    let patches: Vec<_> = (0..20)
        .map(|i| {
            let patch = FilePatch::default()
                .merge_metadata(serde_json::json!({ "custom": { format!("k{i}"): i } }));
            let (service, alice) = (&service, &alice);
            async move { service.patch(alice, id, patch).await }
        })
        .collect();
    for r in join_all(patches).await {
        r.expect("every concurrent PATCH succeeds");
    }
    let custom = service
        .get(&alice, id)
        .await
        .expect("get")
        .metadata
        .custom
        .map(|c| c.len());
    assert_eq!(
        custom,
        Some(20),
        "twenty concurrent PATCHes adding twenty keys MUST leave all twenty"
    );

    // A PATCH racing a DELETE: as before the delete, or 404, never a 200 for
    // a file that is gone afterwards.
    let patch = FilePatch::default().rename("renamed.txt");
    let (patched, deleted) =
        tokio::join!(service.patch(&alice, id, patch), service.delete(&alice, id));
    deleted.expect("delete");
    if let Err(e) = patched {
        assert_eq!(
            e.code(),
            ErrorCode::FileNotFound,
            "PATCH racing DELETE: {e:?}"
        );
    }
    assert_eq!(
        code(service.get(&alice, id).await),
        Some(ErrorCode::FileNotFound)
    );

    // Complete racing abort: one winner, nothing left behind.
    for round in 0..4 {
        let mut req = issue("m.bin", Some(10));
        req.content_type = "application/octet-stream".into();
        let mp = service.init_multipart(&alice, req).await.expect("init");
        let part = service
            .presign_part(
                &alice,
                &mp.key,
                &mp.upload_id,
                PartNumber::new(1).expect("1"),
                None,
            )
            .await
            .expect("part url");
        let part_req = PresignedRequest {
            url: part.url,
            method: "PUT",
            headers: Vec::new(),
        };
        let (status, etag) = io.put(&part_req, &[], vec![7; 10]).await;
        assert_eq!(status, 200);
        let parts = CompletedParts::try_from(vec![CompletedPart::new(
            PartNumber::new(1).expect("1"),
            &etag.expect("etag"),
        )
        .expect("part")])
        .expect("parts");
        let (done, aborted) = if round % 2 == 0 {
            tokio::join!(
                service.complete_multipart(&alice, &mp.key, &mp.upload_id, parts.clone()),
                service.abort_multipart(&alice, &mp.key, &mp.upload_id)
            )
        } else {
            let (a, d) = tokio::join!(
                service.abort_multipart(&alice, &mp.key, &mp.upload_id),
                service.complete_multipart(&alice, &mp.key, &mp.upload_id, parts.clone())
            );
            (d, a)
        };
        let staged = crate::keys::staging_key(&mp.key);
        match (&done, &aborted) {
            (Ok(_), Err(e)) => {
                assert_eq!(e.code(), ErrorCode::UploadNotFound, "round {round}");
                let mut r = register(&mp.key, 10);
                r.mime_type = "application/octet-stream".into();
                service
                    .register(&alice, r)
                    .await
                    .expect("the completed upload registers");
            }
            (Err(e), Ok(_)) => {
                assert_eq!(e.code(), ErrorCode::UploadNotFound, "round {round}");
                for k in [&mp.key, &staged] {
                    assert_eq!(
                        store.head(k).await.expect("head"),
                        None,
                        "an abort that won MUST leave no object (round {round})"
                    );
                }
            }
            other => {
                panic!("complete vs abort MUST have exactly one winner (round {round}): {other:?}")
            }
        }
    }
}

/// Polls every future on the current task until all are done (the kit has no
/// `futures` dependency, and spawning would need `'static` borrows).
pub(super) async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

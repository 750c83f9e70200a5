//! FileService against the in-memory adapters: the registration checks in their
//! documented order, multipart, patch, delete under store failure, listing, auth.

use std::sync::Arc;

use serde_json::json;
use stowage_domain::auth::{
    new_api_key, ApiKeyKind, ApiKeyRecord, Authenticator, TokenClaims, TokenVerifier,
};
use stowage_domain::keys::{staging_key, STAGING_PREFIX};
use stowage_domain::limits::sha256_base64;
use stowage_domain::list::ListParams;
use stowage_domain::model::*;
use stowage_domain::ports::{ApiKeyRepository, Clock, CompletedPart, FileRepository};
use stowage_domain::service::{FilePatch, FileService, RegisterFile, ServiceConfig};
use stowage_domain::testing::memory::*;
use stowage_domain::testing::{contract, fresh_tenant};
use stowage_domain::upload::{CompletedParts, IssueUpload, PartNumber};
use stowage_domain::ErrorCode;

#[path = "planted/mod.rs"]
mod planted;

struct Harness {
    service: FileService,
    repo: Arc<MemoryFileRepository>,
    store: Arc<MemoryObjectStore>,
    clock: Arc<ManualClock>,
    tenant: Tenant,
}

fn harness() -> Harness {
    let repo = Arc::new(MemoryFileRepository::default());
    let store = Arc::new(MemoryObjectStore::default());
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let service = FileService::new(
        repo.clone(),
        store.clone(),
        clock.clone(),
        ServiceConfig::default(),
    );
    Harness {
        service,
        repo,
        store,
        clock,
        tenant: fresh_tenant(),
    }
}

impl Harness {
    fn user(&self, id: &str) -> Principal {
        Principal {
            tenant: self.tenant.clone(),
            identity: Owner {
                kind: OwnerType::User,
                id: id.into(),
            },
            admin: false,
        }
    }
    fn admin(&self) -> Principal {
        Principal {
            admin: true,
            ..self.user("root")
        }
    }
    async fn upload(&self, p: &Principal, name: &str, body: &[u8]) -> String {
        let t = self
            .service
            .issue_upload_url(p, issue(name, "text/plain", Some(body.len() as u64)))
            .await
            .expect("issue");
        self.store.put_object(&staging_key(&t.key), body);
        t.key
    }
    async fn file(&self, p: &Principal, name: &str, vis: Visibility) -> FileView {
        let key = self.upload(p, name, b"abc").await;
        let req = register(&key, name, "text/plain", 3)
            .with_visibility(vis)
            .share_with(["bob"])
            .with_metadata(json!({"custom": {"a": 1}, "relatedEntityId": "r", "alt": "x"}));
        self.service.register(p, req).await.expect("register")
    }
}

fn issue(name: &str, ct: &str, size: Option<u64>) -> IssueUpload {
    let req = IssueUpload::new(name, ct);
    match size {
        Some(n) => req.with_size(n),
        None => req,
    }
}

fn register(key: &str, name: &str, mime: &str, size: u64) -> RegisterFile {
    RegisterFile::new(key, name, mime, size)
}

fn part_no(n: u64) -> PartNumber {
    PartNumber::new(n).expect("part number in range")
}

fn parts_of(list: &[(u64, &str)]) -> CompletedParts {
    let parts = list
        .iter()
        .map(|(n, etag)| CompletedPart::new(part_no(*n), etag))
        .collect::<stowage_domain::Result<Vec<_>>>()
        .expect("parts");
    CompletedParts::try_from(parts).expect("parts in order")
}

fn code<T>(r: stowage_domain::Result<T>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

/// The in-memory adapters, checked like every other: one test per check.
#[derive(Default)]
struct MemoryFixture {
    files: MemoryFileRepository,
    keys: MemoryApiKeyRepository,
}

impl contract::RepositoryFixture for MemoryFixture {
    fn files(&self) -> &dyn FileRepository {
        &self.files
    }
    fn keys(&self) -> &dyn ApiKeyRepository {
        &self.keys
    }
}

/// The memory store on a clock the kit moves: its expiry checks take no
/// time (the wall-clock store runs the kit in `planted`).
struct ManualStoreFixture(MemoryObjectStore);

impl contract::StoreFixture for ManualStoreFixture {
    fn store(&self) -> &dyn stowage_domain::ports::ObjectStore {
        &self.0
    }
    fn io(&self) -> &dyn contract::Transfer {
        &self.0
    }
}

stowage_domain::repository_kit!(MemoryFixture::default());
stowage_domain::object_store_kit!(ManualStoreFixture(MemoryObjectStore::with_manual_clock(
    Arc::new(ManualClock::at(1_700_000_000_000))
)));

#[tokio::test]
async fn memory_adapters_pass_the_service_kit() {
    let store = Arc::new(MemoryObjectStore::default());
    contract::file_service(
        Arc::new(MemoryFileRepository::default()),
        store.clone(),
        store.as_ref(),
    )
    .await;
}

#[tokio::test]
async fn issue_validates_fields_and_limits() {
    let h = harness();
    let alice = h.user("alice");
    let cases = [
        (issue("", "text/plain", None), ErrorCode::InvalidName),
        (issue("a/b", "text/plain", None), ErrorCode::InvalidName),
        (
            issue(&"a".repeat(256), "text/plain", None),
            ErrorCode::OriginalNameTooLong,
        ),
        (issue("a", "text", None), ErrorCode::InvalidFormat),
        (
            issue("a", &format!("a/{}", "b".repeat(260)), None),
            ErrorCode::MimeTypeTooLong,
        ),
        (issue("a", "text/plain", Some(0)), ErrorCode::FileTooSmall),
        (
            issue("a", "text/plain", Some(5 * 1024 * 1024 * 1024 + 1)),
            ErrorCode::FileTooLarge,
        ),
        (
            issue("a", "text/plain", None).with_category(Category::Images),
            ErrorCode::InvalidFormat,
        ),
        (
            issue("a", "image/png", Some(10 * 1024 * 1024 + 1)).with_category(Category::Images),
            ErrorCode::FileTooLarge,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(
            code(h.service.issue_upload_url(&alice, req.clone()).await),
            Some(want),
            "{req:?}"
        );
    }
    let t = h
        .service
        .issue_upload_url(&alice, issue("My File (1).txt", "Text/Plain", Some(3)))
        .await
        .expect("issue");
    assert!(
        t.key.starts_with(&format!("{}/dev/", h.tenant.project))
            && t.key.ends_with("/My_File_1_.txt"),
        "{}",
        t.key
    );
    assert_eq!(t.content_type, "text/plain");
    assert_eq!(t.method, "PUT");
    assert_eq!(t.headers.get("Content-Type"), Some(&json!("text/plain")));
}

#[tokio::test]
async fn register_checks_run_in_the_documented_order() {
    let h = harness();
    let alice = h.user("alice");
    let bob = h.user("bob");
    let key = h
        .service
        .issue_upload_url(&alice, issue("a.txt", "text/plain", Some(3)))
        .await
        .expect("issue")
        .key;

    // 1. key too long, even if everything else is wrong too.
    assert_eq!(
        code(
            h.service
                .register(&bob, register(&"k".repeat(1025), "", "x", 0))
                .await
        ),
        Some(ErrorCode::S3KeyTooLong)
    );
    // 2. never issued (also: another tenant's key shape).
    assert_eq!(
        code(
            h.service
                .register(
                    &alice,
                    register("other/dev/x/y/z", "a.txt", "text/plain", 3)
                )
                .await
        ),
        Some(ErrorCode::InvalidPath)
    );
    let other_tenant_key = format!("{}/dev/h/u/a.txt", h.tenant.project);
    assert_eq!(
        code(
            h.service
                .register(
                    &alice,
                    register(&other_tenant_key, "a.txt", "text/plain", 3)
                )
                .await
        ),
        Some(ErrorCode::InvalidPath)
    );
    // 3. issued to someone else.
    assert_eq!(
        code(
            h.service
                .register(&bob, register(&key, "a.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::AccessDenied)
    );
    // 5. not as issued.
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&key, "a.txt", "image/png", 3))
                .await
        ),
        Some(ErrorCode::InvalidFormat)
    );
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&key, "a.txt", "text/plain", 4))
                .await
        ),
        Some(ErrorCode::SizeMismatch)
    );
    // 6. nothing uploaded yet.
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&key, "a.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    // 7. uploaded with another size.
    h.store.put_object(&staging_key(&key), b"abcd");
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&key, "a.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::SizeMismatch)
    );
    h.store.put_object(&staging_key(&key), b"abc");
    // An admin registers on behalf of the issuee; the issuee owns the file.
    let view = h
        .service
        .register(&h.admin(), register(&key, "a.txt", "TEXT/plain", 3))
        .await
        .expect("register");
    assert_eq!(
        (view.owner_id.as_str(), view.owner_type, view.visibility),
        ("alice", OwnerType::User, Visibility::Private)
    );
    assert_eq!(view.mime_type, "text/plain");
    // 4. already registered.
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&key, "a.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::S3KeyAlreadyExists)
    );
}

#[tokio::test]
async fn oversized_objects_are_refused_and_deleted() {
    let h = harness();
    let alice = h.user("alice");
    let req = issue("a.png", "image/png", None).with_category(Category::Images);
    let key = h
        .service
        .issue_upload_url(&alice, req)
        .await
        .expect("issue")
        .key;
    let big = vec![0u8; 10 * 1024 * 1024 + 1];
    h.store.put_object(&staging_key(&key), &big);
    assert_eq!(
        code(
            h.service
                .register(
                    &alice,
                    register(&key, "a.png", "image/png", big.len() as u64)
                )
                .await
        ),
        Some(ErrorCode::FileTooLarge)
    );
    assert!(
        h.store.object(&key).is_none(),
        "the oversized object is deleted"
    );
}

#[tokio::test]
async fn reads_follow_section_5_and_project() {
    let h = harness();
    let alice = h.user("alice");
    let f = h.file(&alice, "a.txt", Visibility::Shared).await;
    let id = f.id;
    assert!(f.s3_key.is_some() && f.shared_with.is_some() && f.metadata.custom.is_some());
    let seen = h
        .service
        .get(&h.user("bob"), id)
        .await
        .expect("bob is named");
    assert!(
        seen.s3_key.is_none()
            && seen.shared_with.is_none()
            && seen.metadata.custom.is_none()
            && seen.metadata.related_entity_id.is_none()
    );
    assert_eq!(seen.metadata.alt.as_deref(), Some("x"));
    assert_eq!(
        code(h.service.get(&h.user("carol"), id).await),
        Some(ErrorCode::AccessDenied)
    );
    assert_eq!(
        code(h.service.download_url(&h.user("carol"), id).await),
        Some(ErrorCode::AccessDenied)
    );
    assert_eq!(
        code("not-a-uuid".parse::<stowage_domain::model::FileId>()),
        Some(ErrorCode::FileNotFound)
    );
    let stranger = Principal {
        tenant: fresh_tenant(),
        ..h.admin()
    };
    assert_eq!(
        code(h.service.get(&stranger, id).await),
        Some(ErrorCode::FileNotFound)
    );
    let dl = h
        .service
        .download_url(&h.user("bob"), id)
        .await
        .expect("download");
    assert_eq!(
        (dl.filename.as_str(), dl.content_type.as_str(), dl.size),
        ("a.txt", "text/plain", 3)
    );
}

#[tokio::test]
async fn patch_merges_metadata_and_moves_updated_at() {
    let h = harness();
    let alice = h.user("alice");
    let f = h.file(&alice, "a.txt", Visibility::Private).await;
    let id = f.id;
    assert_eq!(
        code(
            h.service
                .patch(&h.user("bob"), id, FilePatch::default().rename("b"))
                .await
        ),
        Some(ErrorCode::AccessDenied)
    );
    assert_eq!(
        code(
            h.service
                .patch(&alice, id, FilePatch::default().rename(".."))
                .await
        ),
        Some(ErrorCode::InvalidName)
    );
    let out = h
        .service
        .patch(
            &alice,
            id,
            FilePatch::default()
                .rename("b.txt")
                .set_visibility(Visibility::Public)
                .merge_metadata(json!({"custom": {"b": 2}, "alt": null}))
                .share_with(Vec::<String>::new()),
        )
        .await
        .expect("patch");
    assert_eq!(out.original_name, "b.txt");
    assert_eq!(out.visibility, Visibility::Public);
    assert_eq!(
        serde_json::to_value(&out.metadata).ok(),
        Some(json!({"custom": {"a": 1, "b": 2}, "relatedEntityId": "r"}))
    );
    assert!(out.updated_at > f.updated_at);
    assert_eq!(out.created_at, f.created_at);
    let again = h.service.get(&h.user("zed"), id).await.expect("public now");
    assert_eq!(again.original_name, "b.txt");
}

#[tokio::test]
async fn delete_removes_row_and_object_or_queues_the_object() {
    let h = harness();
    let alice = h.user("alice");
    let f = h.file(&alice, "a.txt", Visibility::Public).await;
    let key = f.s3_key.clone().expect("key");
    assert_eq!(
        code(h.service.delete(&h.user("bob"), f.id).await),
        Some(ErrorCode::AccessDenied)
    );
    h.service.delete(&alice, f.id).await.expect("delete");
    assert_eq!(h.store.object(&key), None);
    assert_eq!(
        code(h.service.get(&alice, f.id).await),
        Some(ErrorCode::FileNotFound)
    );

    let g = h.file(&alice, "b.txt", Visibility::Public).await;
    let gkey = g.s3_key.clone().expect("key");
    h.store.set_down(true);
    h.service
        .delete(&h.admin(), g.id)
        .await
        .expect("metadata goes even if the store is down");
    assert_eq!(
        code(h.service.get(&alice, g.id).await),
        Some(ErrorCode::FileNotFound)
    );
    assert_eq!(h.service.retry_object_deletions(10).await.ok(), Some(0));
    h.store.set_down(false);
    assert!(h.store.object(&gkey).is_some());
    h.clock.advance_secs(61);
    assert_eq!(h.service.retry_object_deletions(10).await.ok(), Some(1));
    assert_eq!(
        h.store.object(&gkey),
        None,
        "the queued deletion is retried"
    );
    // What stays queued are the staging keys of the registrations, due once
    // their upload URLs have expired (a late PUT can only have landed there).
    let due = h
        .repo
        .due_object_deletions(h.clock.now().plus_secs(3600), 10)
        .await
        .expect("due");
    assert!(
        !due.is_empty() && due.iter().all(|k| k.starts_with(STAGING_PREFIX)),
        "{due:?}"
    );
}

#[tokio::test]
async fn multipart_is_bound_to_its_starter() {
    let h = harness();
    let alice = h.user("alice");
    let bob = h.user("bob");
    let init = h
        .service
        .init_multipart(
            &alice,
            issue(
                "big.bin",
                "application/octet-stream",
                Some(5 * 1024 * 1024 + 3),
            ),
        )
        .await
        .expect("init");
    assert_eq!(
        code(
            h.service
                .init_multipart(&alice, issue("x", "text/plain", None))
                .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    let (key, id) = (init.key.as_str(), init.upload_id.as_str());
    assert_eq!(
        code(
            h.service
                .presign_part(&bob, key, id, part_no(1), None)
                .await
        ),
        Some(ErrorCode::AccessDenied)
    );
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, key, id, part_no(10_000), Some("not base64"))
                .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, key, "nope", part_no(1), None)
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    let p = h
        .service
        .presign_part(&alice, key, id, part_no(2), None)
        .await
        .expect("part url");
    assert_eq!(p.part_number, 2);
    let e2 = h.store.put_part(id, 2, b"xyz").expect("part");
    let e1 = h
        .store
        .put_part(id, 1, &vec![7u8; 5 * 1024 * 1024])
        .expect("part");
    // Registration before completion: nothing there yet.
    assert_eq!(
        code(
            h.service
                .register(
                    &alice,
                    register(
                        key,
                        "big.bin",
                        "application/octet-stream",
                        5 * 1024 * 1024 + 3
                    )
                )
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    assert_eq!(
        code(
            h.service
                .complete_multipart(&bob, key, id, parts_of(&[(1, &e1)]))
                .await
        ),
        Some(ErrorCode::AccessDenied)
    );
    assert_eq!(
        code(
            h.service
                .complete_multipart(&alice, key, id, CompletedParts::default())
                .await
        ),
        Some(ErrorCode::InvalidPartsArray)
    );
    let quoted = format!("\"{e1}\"");
    let parts = parts_of(&[(1, &quoted), (2, &e2)]);
    let done = h
        .service
        .complete_multipart(&alice, key, id, parts.clone())
        .await
        .expect("complete");
    assert_eq!(done.key, key);
    assert_eq!(
        code(
            h.service
                .complete_multipart(&alice, key, id, parts.clone())
                .await
        ),
        Some(ErrorCode::UploadNotFound),
        "completed"
    );
    assert_eq!(
        code(h.service.abort_multipart(&alice, key, id).await),
        Some(ErrorCode::UploadNotFound)
    );
    let file = h
        .service
        .register(
            &alice,
            register(
                key,
                "big.bin",
                "application/octet-stream",
                5 * 1024 * 1024 + 3,
            ),
        )
        .await
        .expect("register");
    assert_eq!(file.size, 5 * 1024 * 1024 + 3);

    let other = h
        .service
        .init_multipart(&alice, issue("x.bin", "application/octet-stream", Some(10)))
        .await
        .expect("init");
    h.service
        .abort_multipart(&h.admin(), &other.key, &other.upload_id)
        .await
        .expect("admin may abort");
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, &other.key, &other.upload_id, part_no(1), None)
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    let expiring = h
        .service
        .init_multipart(&alice, issue("y.bin", "application/octet-stream", Some(10)))
        .await
        .expect("init");
    h.clock.advance_secs(24 * 3600 + 1);
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, &expiring.key, &expiring.upload_id, part_no(1), None)
                .await
        ),
        Some(ErrorCode::UploadNotFound),
        "expired"
    );
}

#[tokio::test]
async fn list_paginates_and_projects() {
    let h = harness();
    let alice = h.user("alice");
    for i in 0..5 {
        h.file(
            &alice,
            &format!("f{i}.txt"),
            if i % 2 == 0 {
                Visibility::Public
            } else {
                Visibility::Private
            },
        )
        .await;
        h.clock.advance_secs(1);
    }
    let bob = h.user("bob");
    let params = ListParams::parse([("limit", "2")]).expect("params");
    let page = h.service.list(&bob, params).await.expect("list");
    assert_eq!(
        (
            page.pagination.total,
            page.pagination.total_pages,
            page.pagination.has_next_page
        ),
        (3, 2, true)
    );
    assert!(
        page.items.iter().all(|f| f.s3_key.is_none()),
        "public projection for others"
    );
    let cursor = page.pagination.next_cursor.clone().expect("cursor");
    let next = h
        .service
        .list(
            &bob,
            ListParams::parse([("limit", "2"), ("cursor", cursor.as_str())]).expect("params"),
        )
        .await
        .expect("list");
    assert_eq!(next.items.len(), 1);
    assert!(!next.pagination.has_next_page && next.pagination.next_cursor.is_none());
    let far = h
        .service
        .list(&alice, ListParams::parse([("page", "9")]).expect("params"))
        .await
        .expect("list");
    assert!(far.items.is_empty() && far.pagination.total == 5 && far.pagination.has_prev_page);
}

struct FakeTokens;
impl TokenVerifier for FakeTokens {
    fn verify(&self, token: &str) -> Result<TokenClaims, String> {
        match token.split(':').collect::<Vec<_>>().as_slice() {
            ["ok", sub] => Ok(TokenClaims {
                subject: (*sub).into(),
                admin: false,
                project_id: None,
                issued_at: None,
            }),
            ["admin", sub] => Ok(TokenClaims {
                subject: (*sub).into(),
                admin: true,
                project_id: None,
                issued_at: None,
            }),
            ["proj", p] => Ok(TokenClaims {
                subject: "u".into(),
                admin: false,
                project_id: Some((*p).into()),
                issued_at: None,
            }),
            ["iat", secs] => Ok(TokenClaims {
                subject: "u".into(),
                admin: false,
                project_id: None,
                issued_at: secs.parse().ok(),
            }),
            _ => Err("Token signature is invalid".into()),
        }
    }
}

#[tokio::test]
async fn authentication_rules() {
    let keys = Arc::new(MemoryApiKeyRepository::default());
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let auth = Authenticator::new(keys.clone(), Arc::new(FakeTokens), clock.clone());
    let tenant = fresh_tenant();
    let make = |kind, expires: Option<i64>, byte: u8| {
        let (text, hash) = new_api_key(kind, [byte; 32]);
        let rec = ApiKeyRecord {
            id: format!("key-{byte}"),
            key_hash: hash,
            tenant: tenant.clone(),
            kind,
            created_at: clock.now(),
            expires_at: expires.map(Timestamp::from_millis),
            revoked_at: None,
        };
        (text, rec)
    };
    let (pk, pk_rec) = make(ApiKeyKind::Publishable, None, 1);
    let (sk, sk_rec) = make(ApiKeyKind::Secret, None, 2);
    let (old, old_rec) = make(ApiKeyKind::Secret, Some(1_600_000_000_000), 3);
    for r in [&pk_rec, &sk_rec, &old_rec] {
        keys.insert_key(r).await.expect("insert");
    }
    let c = |r: stowage_domain::Result<Principal>| r.err().map(|e| e.code());
    let unknown = new_api_key(ApiKeyKind::Secret, [9; 32]).0;
    assert_eq!(
        c(auth.authenticate(None, None).await),
        Some(ErrorCode::InvalidApiKey)
    );
    assert_eq!(
        c(auth.authenticate(Some("sk_123"), None).await),
        Some(ErrorCode::InvalidApiKey)
    );
    assert_eq!(
        c(auth.authenticate(Some(&unknown), None).await),
        Some(ErrorCode::InvalidApiKey)
    );
    assert_eq!(
        c(auth.authenticate(Some(&old), None).await),
        Some(ErrorCode::InvalidApiKey),
        "expired"
    );
    assert_eq!(
        c(auth.authenticate(Some(&pk), None).await),
        Some(ErrorCode::AuthenticationRequired)
    );
    assert_eq!(
        c(auth.authenticate(Some(&pk), Some("Bearer bad")).await),
        Some(ErrorCode::AuthenticationRequired)
    );
    assert_eq!(
        c(auth.authenticate(Some(&pk), Some("Basic ok:a")).await),
        Some(ErrorCode::AuthenticationRequired)
    );
    assert_eq!(
        c(auth
            .authenticate(Some(&pk), Some("Bearer proj:elsewhere"))
            .await),
        Some(ErrorCode::AuthenticationRequired)
    );
    assert!(auth
        .authenticate(Some(&pk), Some(&format!("Bearer proj:{}", tenant.project)))
        .await
        .is_ok());
    // §12 "Text is text": subjects are 1-255 visible characters without
    // controls; `iat` may not lie beyond the leeway in the future.
    let now_s = clock.now().unix_seconds();
    for bad in [
        "Bearer ok: ".to_owned(),
        "Bearer ok:\u{200b}".to_owned(),
        "Bearer ok:a\u{0}b".to_owned(),
        format!("Bearer ok:{}", "x".repeat(256)),
        format!("Bearer iat:{}", now_s + 31),
        format!("Bearer iat:{}", now_s + 10 * 365 * 86_400),
    ] {
        assert_eq!(
            c(auth.authenticate(Some(&pk), Some(&bad)).await),
            Some(ErrorCode::AuthenticationRequired),
            "{bad:?}"
        );
    }
    for good in [
        format!("Bearer iat:{}", now_s + 30),
        format!("Bearer iat:{}", now_s - 3600),
        format!("Bearer ok:{}", "x".repeat(255)),
    ] {
        assert!(
            auth.authenticate(Some(&pk), Some(&good)).await.is_ok(),
            "{good}"
        );
    }
    let u = auth
        .authenticate(Some(&pk), Some("Bearer ok:alice"))
        .await
        .expect("user");
    assert_eq!(
        (u.identity.id.as_str(), u.identity.kind, u.admin),
        ("alice", OwnerType::User, false)
    );
    let a = auth
        .authenticate(Some(&pk), Some("Bearer admin:root"))
        .await
        .expect("admin");
    assert!(a.admin);
    let s = auth.authenticate(Some(&sk), None).await.expect("service");
    assert_eq!(
        (s.identity.id.as_str(), s.identity.kind, s.admin),
        ("key-2", OwnerType::Service, true)
    );
    let su = auth
        .authenticate(Some(&sk), Some("Bearer ok:alice"))
        .await
        .expect("user via sk");
    assert_eq!((su.identity.kind, su.admin), (OwnerType::User, true));
    assert_eq!(
        c(auth.authenticate(Some(&sk), Some("Bearer bad")).await),
        Some(ErrorCode::AuthenticationRequired)
    );
    keys.revoke_key("key-2", clock.now()).await.expect("revoke");
    assert_eq!(
        c(auth.authenticate(Some(&sk), None).await),
        Some(ErrorCode::InvalidApiKey),
        "revoked"
    );
}

#[tokio::test]
async fn abandoned_uploads_are_swept_and_racing_registrations_lose_cleanly() {
    let h = harness();
    let alice = h.user("alice");
    let stale = h.upload(&alice, "stale.txt", b"abc").await;
    let raced = h.upload(&alice, "raced.txt", b"abc").await;
    let mp = h
        .service
        .init_multipart(
            &alice,
            issue("big.bin", "application/octet-stream", Some(10)),
        )
        .await
        .expect("init");
    let registered = h.file(&alice, "kept.txt", Visibility::Private).await;
    h.clock.advance_secs(24 * 3600 + 1);
    let fresh = h.upload(&alice, "fresh.txt", b"abc").await;

    assert_eq!(h.service.sweep_abandoned_uploads(100).await.ok(), Some(3));
    assert!(
        h.store.object(&staging_key(&stale)).is_none()
            && h.store.object(&staging_key(&raced)).is_none(),
        "objects of abandoned uploads are deleted"
    );
    assert!(
        h.store.object(&staging_key(&fresh)).is_some(),
        "recent uploads are kept"
    );
    assert!(
        h.store
            .object(registered.s3_key.as_deref().expect("key"))
            .is_some(),
        "registered files are never touched"
    );
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&raced, "raced.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, &mp.key, &mp.upload_id, part_no(1), None)
                .await
        ),
        Some(ErrorCode::UploadNotFound)
    );
    assert_eq!(
        h.service.sweep_abandoned_uploads(100).await.ok(),
        Some(0),
        "idempotent"
    );
    // A failed object deletion is queued, never lost.
    h.clock.advance_secs(24 * 3600 + 1);
    h.store.set_down(true);
    assert_eq!(h.service.sweep_abandoned_uploads(100).await.ok(), Some(1));
    h.store.set_down(false);
    h.clock.advance_secs(61);
    assert!(h.service.retry_object_deletions(10).await.is_ok());
    assert!(h.store.object(&staging_key(&fresh)).is_none());
    assert!(
        h.repo
            .due_object_deletions(h.clock.now(), 10)
            .await
            .expect("due")
            .is_empty(),
        "every queued deletion went through"
    );
}

#[tokio::test]
async fn cached_api_keys_trade_a_bounded_revocation_delay_for_round_trips() {
    use stowage_domain::auth::CachedApiKeys;
    let inner = Arc::new(MemoryApiKeyRepository::default());
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let cached = Arc::new(CachedApiKeys::new(inner.clone(), clock.clone(), 5_000));
    let auth = Authenticator::new(cached.clone(), Arc::new(FakeTokens), clock.clone());
    let (sk, hash) = new_api_key(ApiKeyKind::Secret, [4; 32]);
    let rec = ApiKeyRecord {
        id: "key-4".into(),
        key_hash: hash,
        tenant: fresh_tenant(),
        kind: ApiKeyKind::Secret,
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
    };
    let unknown = new_api_key(ApiKeyKind::Secret, [5; 32]).0;
    assert!(
        auth.authenticate(Some(&unknown), None).await.is_err(),
        "unknown before it exists"
    );
    cached.insert_key(&rec).await.expect("insert");
    assert!(auth.authenticate(Some(&sk), None).await.is_ok());
    // Revoked elsewhere (another replica, the CLI): still served from the cache…
    inner
        .revoke_key("key-4", clock.now())
        .await
        .expect("revoke");
    assert!(
        auth.authenticate(Some(&sk), None).await.is_ok(),
        "within the TTL the cached answer stands"
    );
    // …for at most the TTL.
    clock.advance_secs(5);
    assert_eq!(
        auth.authenticate(Some(&sk), None)
            .await
            .err()
            .map(|e| e.code()),
        Some(ErrorCode::InvalidApiKey)
    );
    // Revoked through the cache itself: at once.
    let (sk2, hash2) = new_api_key(ApiKeyKind::Secret, [6; 32]);
    cached
        .insert_key(&ApiKeyRecord {
            id: "key-6".into(),
            key_hash: hash2,
            ..rec.clone()
        })
        .await
        .expect("insert");
    assert!(auth.authenticate(Some(&sk2), None).await.is_ok());
    cached
        .revoke_key("key-6", clock.now())
        .await
        .expect("revoke");
    assert_eq!(
        auth.authenticate(Some(&sk2), None)
            .await
            .err()
            .map(|e| e.code()),
        Some(ErrorCode::InvalidApiKey)
    );
}

/// The inner repository of a notified cache: counts lookups, and can announce
/// a change in the middle of one (the race a generation counter must win).
#[derive(Default)]
struct WatchedKeys {
    inner: MemoryApiKeyRepository,
    lookups: std::sync::atomic::AtomicUsize,
    change_during_lookup:
        std::sync::Mutex<Option<(Arc<stowage_domain::auth::CachedApiKeys>, String)>>,
}

#[async_trait::async_trait]
impl ApiKeyRepository for WatchedKeys {
    async fn insert_key(&self, key: &ApiKeyRecord) -> stowage_domain::Result<()> {
        self.inner.insert_key(key).await
    }
    async fn find_by_hash(&self, hash: &str) -> stowage_domain::Result<Option<ApiKeyRecord>> {
        self.lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let found = self.inner.find_by_hash(hash).await;
        let pending = self
            .change_during_lookup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((cache, changed)) = pending {
            cache.apply(stowage_domain::auth::KeyChange::Changed(changed));
        }
        found
    }
    async fn list_keys(&self) -> stowage_domain::Result<Vec<ApiKeyRecord>> {
        self.inner.list_keys().await
    }
    async fn revoke_key(&self, id: &str, at: Timestamp) -> stowage_domain::Result<bool> {
        self.inner.revoke_key(id, at).await
    }
}

#[tokio::test]
async fn a_notified_key_cache_serves_only_while_it_hears_changes() {
    use std::sync::atomic::Ordering::SeqCst;
    use stowage_domain::auth::{CachedApiKeys, KeyChange};
    let inner = Arc::new(WatchedKeys::default());
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let cached = Arc::new(CachedApiKeys::notified(
        inner.clone(),
        clock.clone(),
        60_000,
    ));
    let auth = Authenticator::new(cached.clone(), Arc::new(FakeTokens), clock.clone());
    let (sk, hash) = new_api_key(ApiKeyKind::Secret, [8; 32]);
    let rec = ApiKeyRecord {
        id: "key-8".into(),
        key_hash: hash.clone(),
        tenant: fresh_tenant(),
        kind: ApiKeyKind::Secret,
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
    };
    inner.insert_key(&rec).await.expect("insert");
    let code = |r: stowage_domain::Result<Principal>| r.err().map(|e| e.code());

    // Not listening yet: every request looks the key up.
    for _ in 0..3 {
        assert!(auth.authenticate(Some(&sk), None).await.is_ok());
    }
    assert_eq!(inner.lookups.load(SeqCst), 3, "no caching before Listening");

    // Listening: one lookup, then answers from memory.
    cached.apply(KeyChange::Listening);
    for _ in 0..3 {
        assert!(auth.authenticate(Some(&sk), None).await.is_ok());
    }
    assert_eq!(inner.lookups.load(SeqCst), 4, "remembered while listening");

    // Revoked elsewhere and announced: refused at once, well within the TTL.
    inner
        .revoke_key("key-8", clock.now())
        .await
        .expect("revoke");
    cached.apply(KeyChange::Changed(hash.clone()));
    assert_eq!(
        code(auth.authenticate(Some(&sk), None).await),
        Some(ErrorCode::InvalidApiKey)
    );

    // A change announced while a lookup is in flight: the answer read before
    // the change is not remembered.
    let (sk2, hash2) = new_api_key(ApiKeyKind::Secret, [9; 32]);
    inner
        .insert_key(&ApiKeyRecord {
            id: "key-9".into(),
            key_hash: hash2.clone(),
            ..rec.clone()
        })
        .await
        .expect("insert");
    *inner
        .change_during_lookup
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((cached.clone(), hash2.clone()));
    assert!(auth.authenticate(Some(&sk2), None).await.is_ok());
    inner
        .revoke_key("key-9", clock.now())
        .await
        .expect("revoke");
    assert_eq!(
        code(auth.authenticate(Some(&sk2), None).await),
        Some(ErrorCode::InvalidApiKey),
        "the racing lookup's answer was not stored"
    );

    // Deaf again: nothing from memory, so an unannounced revocation counts at once.
    let (sk3, hash3) = new_api_key(ApiKeyKind::Secret, [10; 32]);
    inner
        .insert_key(&ApiKeyRecord {
            id: "key-10".into(),
            key_hash: hash3,
            ..rec.clone()
        })
        .await
        .expect("insert");
    assert!(auth.authenticate(Some(&sk3), None).await.is_ok());
    cached.apply(KeyChange::Lost);
    inner
        .revoke_key("key-10", clock.now())
        .await
        .expect("revoke");
    assert_eq!(
        code(auth.authenticate(Some(&sk3), None).await),
        Some(ErrorCode::InvalidApiKey)
    );
}

/// Failure injection with the shipped mocks: a store that cannot sign gives
/// `common/service-unavailable`, and nothing is recorded (the URL is signed
/// before the upload is stored); a repository that fails the record after a
/// multipart upload was started aborts that upload in the store.
#[tokio::test]
async fn mocks_inject_failures_presign_comes_before_the_record() {
    use stowage_domain::testing::{MockFileRepository, MockObjectStore};
    use stowage_domain::Error;

    let tenant = fresh_tenant();
    let alice = Principal {
        tenant: tenant.clone(),
        identity: Owner {
            kind: OwnerType::User,
            id: "alice".into(),
        },
        admin: false,
    };
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));

    let mut store = MockObjectStore::new();
    store
        .expect_presign_put()
        .times(1)
        .returning(|_, _, _, _, _| Err(Error::unavailable("store down")));
    let mut repo = MockFileRepository::new();
    repo.expect_insert_upload().never();
    let service = FileService::new(
        Arc::new(repo),
        Arc::new(store),
        clock.clone(),
        ServiceConfig::default(),
    );
    assert_eq!(
        code(
            service
                .issue_upload_url(&alice, issue("a.txt", "text/plain", Some(3)))
                .await
        ),
        Some(ErrorCode::ServiceUnavailable)
    );

    let mut store = MockObjectStore::new();
    store
        .expect_create_multipart()
        .times(1)
        .returning(|_, _| Ok("upload-1".into()));
    store
        .expect_abort_multipart()
        .withf(|key, id| key.starts_with(STAGING_PREFIX) && id == "upload-1")
        .times(1)
        .returning(|_, _| Ok(()));
    let mut repo = MockFileRepository::new();
    repo.expect_insert_upload()
        .times(1)
        .returning(|_| Err(Error::unavailable("database down")));
    let service = FileService::new(
        Arc::new(repo),
        Arc::new(store),
        clock,
        ServiceConfig::default(),
    );
    assert_eq!(
        code(
            service
                .init_multipart(
                    &alice,
                    issue("big.bin", "application/octet-stream", Some(6 << 20))
                )
                .await
        ),
        Some(ErrorCode::ServiceUnavailable)
    );
}

#[tokio::test]
async fn checksums_are_validated_bound_and_recorded() {
    let h = harness();
    let alice = h.user("alice");
    for bad in [
        "",
        "abc",
        "A".repeat(44).as_str(),
        &sha256_base64(b"x")[..43],
    ] {
        let req = issue("a.txt", "text/plain", Some(3)).with_checksum_sha256(bad.to_owned());
        let err = h.service.issue_upload_url(&alice, req).await.err();
        assert_eq!(
            err.as_ref().map(|e| e.code()),
            Some(ErrorCode::InvalidRequest),
            "{bad:?}"
        );
        assert!(
            err.is_some_and(|e| e.message().starts_with("checksumSha256:")),
            "the message names the field"
        );
    }

    // Declared: the URL binds it and the file records it.
    let sum = sha256_base64(b"abc");
    let summed = |name: &str| issue(name, "text/plain", Some(3)).with_checksum_sha256(sum.clone());
    let t = h
        .service
        .issue_upload_url(&alice, summed("a.txt"))
        .await
        .expect("issue");
    assert_eq!(t.headers["x-amz-checksum-sha256"], json!(sum));
    h.store.put_object(&staging_key(&t.key), b"abc");
    let file = h
        .service
        .register(&alice, register(&t.key, "a.txt", "text/plain", 3))
        .await
        .expect("register");
    assert_eq!(file.checksum_sha256.as_deref(), Some(sum.as_str()));

    // Not declared: the store's digest is recorded.
    let key = h.upload(&alice, "b.txt", b"xyz").await;
    let file = h
        .service
        .register(&alice, register(&key, "b.txt", "text/plain", 3))
        .await
        .expect("register");
    assert_eq!(file.checksum_sha256, Some(sha256_base64(b"xyz")));

    // Declared, and the stored bytes (written past the URL) are others:
    // refused, the object discarded, nothing registered.
    let t = h
        .service
        .issue_upload_url(&alice, summed("c.txt"))
        .await
        .expect("issue");
    h.store.put_object(&staging_key(&t.key), b"abd");
    assert_eq!(
        code(
            h.service
                .register(&alice, register(&t.key, "c.txt", "text/plain", 3))
                .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    assert_eq!(h.store.object(&staging_key(&t.key)), None);

    // A part URL binds the part's digest; a malformed one is a field error.
    let mp = h
        .service
        .init_multipart(
            &alice,
            issue("d.bin", "application/octet-stream", Some(3)).with_checksum_sha256(sum.clone()),
        )
        .await
        .expect("init");
    let part = h
        .service
        .presign_part(&alice, &mp.key, &mp.upload_id, part_no(1), Some(&sum))
        .await
        .expect("part url");
    assert_eq!(part.headers["x-amz-checksum-sha256"], json!(sum));
    assert_eq!(
        code(
            h.service
                .presign_part(&alice, &mp.key, &mp.upload_id, part_no(1), Some("nope"))
                .await
        ),
        Some(ErrorCode::InvalidRequest)
    );
    // The whole object's digest is checked at completion, parts kept.
    let etag = h.store.put_part(&mp.upload_id, 1, b"abX").expect("part");
    let parts = parts_of(&[(1, &etag)]);
    assert_eq!(
        code(
            h.service
                .complete_multipart(&alice, &mp.key, &mp.upload_id, parts.clone())
                .await
        ),
        Some(ErrorCode::InvalidPartsArray)
    );
    let etag = h.store.put_part(&mp.upload_id, 1, b"abc").expect("part");
    let parts = parts_of(&[(1, &etag)]);
    h.service
        .complete_multipart(&alice, &mp.key, &mp.upload_id, parts.clone())
        .await
        .expect("the upload stayed open; the corrected part completes");
    let file = h
        .service
        .register(
            &alice,
            register(&mp.key, "d.bin", "application/octet-stream", 3),
        )
        .await
        .expect("register");
    assert_eq!(file.checksum_sha256, Some(sum));
}

/// Ids come from the `Ids` port: with a predictable source, two services
/// driven alike give the same keys and file ids.
#[tokio::test]
async fn ids_come_from_the_ids_port() {
    async fn run() -> (String, FileView) {
        let mut h = harness();
        h.tenant = Tenant {
            project: ProjectId::new("det").expect("project"),
            env: Environment::Dev,
        };
        let service = FileService::new(
            h.repo.clone(),
            h.store.clone(),
            h.clock.clone(),
            ServiceConfig::default(),
        )
        .with_ids(Arc::new(SequentialIds::default()));
        let alice = h.user("alice");
        let t = service
            .issue_upload_url(&alice, issue("a.txt", "text/plain", Some(3)))
            .await
            .expect("issue");
        h.store.put_object(&staging_key(&t.key), b"abc");
        let file = service
            .register(&alice, register(&t.key, "a.txt", "text/plain", 3))
            .await
            .expect("register");
        (t.key, file)
    }
    let (key, file) = run().await;
    assert!(
        key.contains(&SequentialIds::nth(1).simple().to_string()),
        "the key's unique segment is the first id: {key}"
    );
    assert_eq!(file.id, FileId(SequentialIds::nth(2)));
    let (again_key, again) = run().await;
    assert_eq!((again_key, again.id), (key, file.id), "deterministic");
}

/// Registration checks the staged object, then moves it; bytes that a late
/// PUT put in its place meanwhile are never registered under the digest
/// (or the content check) of the bytes that were checked.
#[tokio::test]
async fn bytes_replaced_between_checks_and_move_are_not_registered() {
    let h = harness();
    let store = Arc::new(planted::BuggyStore::new(
        planted::StoreBug::PutLandsBeforePromote,
    ));
    let service = FileService::new(
        h.repo.clone(),
        store.clone(),
        h.clock.clone(),
        ServiceConfig::default(),
    );
    let alice = h.user("alice");
    let t = service
        .issue_upload_url(&alice, issue("a.txt", "text/plain", Some(4)))
        .await
        .expect("issue");
    store.inner.put_object(&staging_key(&t.key), b"good");
    let err = service
        .register(&alice, register(&t.key, "a.txt", "text/plain", 4))
        .await
        .err()
        .map(|e| e.code());
    assert_eq!(err, Some(ErrorCode::UploadNotFound));
    assert_eq!(
        store.inner.object(&t.key),
        None,
        "the replaced object is discarded"
    );
    let listed = h
        .repo
        .find_file_by_key(&h.tenant, &t.key)
        .await
        .expect("find");
    assert!(listed.is_none(), "nothing registered");
}

/// Collects what an [`EventFeed`] hands it; fails on the event ids in `fail`.
#[derive(Default)]
struct Collect {
    got: std::sync::Mutex<Vec<stowage_domain::events::StoredEvent>>,
    fail: std::sync::Mutex<Vec<uuid::Uuid>>,
}

#[async_trait::async_trait]
impl stowage_domain::events::EventSubscriber for Collect {
    async fn handle(&self, e: &stowage_domain::events::StoredEvent) -> stowage_domain::Result<()> {
        if self.fail.lock().expect("lock").contains(&e.event.id) {
            return Err(stowage_domain::Error::unavailable("subscriber down"));
        }
        self.got.lock().expect("lock").push(e.clone());
        Ok(())
    }
}

#[tokio::test]
async fn every_committed_change_is_an_event_and_the_feed_hands_them_out_in_order() {
    use stowage_domain::events::{EventFeed, EventType};
    let h = harness();
    let alice = h.user("alice");
    let bob = h.user("bob");
    let mut feed = EventFeed::from_now(h.repo.clone()).await.expect("feed");
    let f = h.file(&alice, "a.txt", Visibility::Private).await;
    let id: FileId = f.id;
    // A change, a PATCH that changes nothing, a refused PATCH, a rename.
    h.service
        .patch(
            &alice,
            id,
            FilePatch::default().set_visibility(Visibility::Public),
        )
        .await
        .expect("patch");
    h.service
        .patch(
            &alice,
            id,
            FilePatch::default().set_visibility(Visibility::Public),
        )
        .await
        .expect("same again");
    assert!(h
        .service
        .patch(&bob, id, FilePatch::default().rename("x.txt"))
        .await
        .is_err());
    h.service
        .patch(
            &alice,
            id,
            FilePatch::default()
                .rename("b.txt")
                .merge_metadata(json!({"tags": ["t"]})),
        )
        .await
        .expect("rename");
    assert!(h.service.delete(&bob, id).await.is_err());
    h.service.delete(&alice, id).await.expect("delete");
    // An abandoned upload swept by the lifecycle worker.
    let key = h.upload(&alice, "left.txt", b"x").await;
    h.clock.advance_secs(2 * 24 * 3600);
    assert_eq!(h.service.sweep_abandoned_uploads(100).await.ok(), Some(1));

    let sink = Collect::default();
    assert_eq!(feed.poll(&sink, 100).await.ok(), Some(5));
    let got = sink.got.lock().expect("lock").clone();
    let kinds: Vec<EventType> = got.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            EventType::FileRegistered,
            EventType::FileUpdated,
            EventType::FileUpdated,
            EventType::FileDeleted,
            EventType::UploadExpired
        ]
    );
    assert_eq!(got[0].event.data["file"]["originalName"], "a.txt");
    assert_eq!(got[0].event.data["file"]["sharedWith"], json!(["bob"]));
    assert_eq!(got[1].event.data["changed"], json!(["visibility"]));
    assert_eq!(
        got[2].event.data["changed"],
        json!(["originalName", "metadata"])
    );
    assert_eq!(
        got[3].event.data["file"]["originalName"], "b.txt",
        "as it was deleted"
    );
    assert_eq!(got[4].event.data, json!({"key": key}));
    assert!(got.iter().all(|e| e.event.tenant == h.tenant));
    assert_eq!(
        h.service.events_written().snapshot().map(|(_, n)| n),
        [1, 2, 1, 1]
    );
    assert_eq!(feed.poll(&sink, 100).await.ok(), Some(0), "nothing twice");

    // A subscriber that fails stops the feed at that event, and gets it again.
    let g = h.file(&alice, "c.txt", Visibility::Private).await;
    h.service.delete(&alice, g.id).await.expect("delete");
    let picky = Collect::default();
    let all = h
        .repo
        .events_after(feed.cursor(), 10)
        .await
        .expect("events");
    picky.fail.lock().expect("lock").push(all[1].event.id);
    let before = feed.cursor();
    assert!(feed.poll(&picky, 100).await.is_err());
    assert!(feed.cursor() > before && feed.cursor() < all[1].cursor);
    picky.fail.lock().expect("lock").clear();
    assert_eq!(feed.poll(&picky, 100).await.ok(), Some(1));
    let kinds: Vec<EventType> = picky
        .got
        .lock()
        .expect("lock")
        .iter()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(kinds, [EventType::FileRegistered, EventType::FileDeleted]);
    // A resumed feed starts where a persisted cursor says.
    let cursor: stowage_domain::events::EventCursor = before.to_string().parse().expect("cursor");
    let mut resumed = EventFeed::resume(h.repo.clone(), cursor);
    let again = Collect::default();
    assert_eq!(resumed.poll(&again, 100).await.ok(), Some(2));
}

#[tokio::test]
async fn a_delete_racing_a_patch_deletes_the_file_as_it_now_is() {
    // The repository's compare-and-set refuses a delete of a stale read; the
    // service reads again, so the event names the latest state.
    let h = harness();
    let alice = h.user("alice");
    let f = h.file(&alice, "a.txt", Visibility::Private).await;
    let stale = h
        .repo
        .get_file(&h.tenant, f.id)
        .await
        .expect("get")
        .expect("file");
    h.service
        .patch(&alice, f.id, FilePatch::default().rename("new.txt"))
        .await
        .expect("patch");
    let event = stowage_domain::testing::deleted_event(&stale);
    assert_eq!(
        h.repo
            .delete_file(&stale, h.clock.now(), &event)
            .await
            .expect("delete"),
        None
    );
    h.service.delete(&alice, f.id).await.expect("delete");
    let events = h
        .repo
        .events_after(Default::default(), 10)
        .await
        .expect("events");
    let last = events.last().expect("event");
    assert_eq!(last.event.data["file"]["originalName"], "new.txt");
    assert!(events.iter().all(|e| e.event.id != event.id));
}

/// The output of a future that never waits (the memory repository's).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the memory repository waited"),
    }
}

/// Every key queued for deletion, whenever due.
async fn queued_deletions(repo: &MemoryFileRepository) -> Vec<String> {
    repo.due_object_deletions(Timestamp::from_millis(i64::MAX), 10)
        .await
        .expect("due")
}

/// The keys `store` is asked to delete, as they come (each deletion succeeds).
fn record_deletions(
    store: &mut stowage_domain::testing::MockObjectStore,
) -> Arc<std::sync::Mutex<Vec<String>>> {
    let deleted = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let into = deleted.clone();
    store.expect_delete().returning(move |key| {
        into.lock().expect("lock").push(key.to_owned());
        Ok(())
    });
    deleted
}

/// A registered public image in a fresh tenant of `repo`.
async fn an_image(repo: &MemoryFileRepository) -> File {
    let tenant = fresh_tenant();
    let alice = Owner {
        kind: OwnerType::User,
        id: "alice".into(),
    };
    let now = Timestamp::from_millis(1_700_000_000_000);
    let key = format!("{}/dev/h/img/a.jpg", tenant.project);
    repo.insert_upload(&stowage_domain::testing::pending_upload(
        &tenant, &alice, &key, now,
    ))
    .await
    .expect("upload");
    let file =
        stowage_domain::testing::file(&tenant, &alice, &key, "a.jpg", Visibility::Public, now);
    repo.register_file(
        &file,
        None,
        &stowage_domain::quota::Quota::NONE,
        &stowage_domain::testing::registered_event(&file),
    )
    .await
    .expect("register");
    file
}

fn image_service(
    repo: Arc<MemoryFileRepository>,
    store: stowage_domain::testing::MockObjectStore,
    clock: Arc<ManualClock>,
    max_derivatives: u32,
) -> FileService {
    use stowage_domain::service::ImageConfig;
    FileService::new(repo, Arc::new(store), clock, ServiceConfig::default()).with_images(
        ImageConfig {
            max_derivatives,
            ..ImageConfig::default()
        },
    )
}

fn variant(options: &str) -> stowage_domain::image::Variant {
    use stowage_domain::image::{parse_options, ImageBounds, ImageFormat, Variant};
    let transform = parse_options(options, &ImageBounds::default()).expect("options");
    Variant::new(&transform, ImageFormat::Jpeg)
}

/// Past `STOWAGE_IMAGE_MAX_DERIVATIVES` a variant is served but not stored
/// (docs/api.md §9): not even written to the store and removed again.
#[tokio::test]
async fn a_file_at_its_maximum_of_derived_images_writes_nothing_more() {
    let repo = Arc::new(MemoryFileRepository::default());
    let file = an_image(&repo).await;
    let mut store = stowage_domain::testing::MockObjectStore::new();
    store
        .expect_put_bytes()
        .times(2)
        .returning(|_, _, _| Ok(()));
    store.expect_delete().never();
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let service = image_service(repo.clone(), store, clock, 2);
    let mut kept = Vec::new();
    for options in ["10x10", "20x20", "30x30", "40x40"] {
        kept.push(
            service
                .keep_derived_image(&file, &variant(options), vec![1, 2, 3])
                .await
                .expect("keep"),
        );
    }
    assert_eq!(kept, [true, true, false, false]);
    assert_eq!(
        repo.derivative_count(file.id).await.expect("count"),
        Some(2)
    );
    assert!(
        queued_deletions(&repo).await.is_empty(),
        "recorded derived images leave nothing queued for deletion"
    );
}

/// A derived image written but never recorded (the store's answer lost,
/// the database down, the process killed in between) does not outlive its
/// attempt: its deletion was queued before it was written and falls due.
#[tokio::test]
async fn a_derived_image_that_is_never_recorded_is_removed_once_its_deletion_is_due() {
    use stowage_domain::service::DERIVED_IMAGE_GRACE_SECS;
    let repo = Arc::new(MemoryFileRepository::default());
    let file = an_image(&repo).await;
    let written = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut store = stowage_domain::testing::MockObjectStore::new();
    {
        let (repo, written) = (repo.clone(), written.clone());
        store
            .expect_put_bytes()
            .times(1)
            .returning(move |key, _, _| {
                written.lock().expect("lock").push(key.to_owned());
                // Were the process killed now, the object would already be
                // queued for deletion.
                assert_eq!(ready(queued_deletions(&repo)), [key.to_owned()]);
                // The bytes landed; the answer never arrives.
                Err(stowage_domain::Error::unavailable("timed out"))
            });
    }
    let deleted = record_deletions(&mut store);
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let service = image_service(repo.clone(), store, clock.clone(), 5);
    service
        .keep_derived_image(&file, &variant("10x10"), vec![1, 2, 3])
        .await
        .expect_err("the write failed");
    let key = written.lock().expect("lock")[0].clone();
    assert!(key.contains("/_derived/"), "{key}");
    assert_eq!(
        repo.find_derivative(file.id, &variant("10x10").name)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        service.retry_object_deletions(10).await.expect("retry"),
        0,
        "nothing is deleted before the grace period ends"
    );
    clock.advance_secs(DERIVED_IMAGE_GRACE_SECS as i64);
    assert_eq!(service.retry_object_deletions(10).await.expect("retry"), 1);
    assert_eq!(*deleted.lock().expect("lock"), [key]);
    assert!(queued_deletions(&repo).await.is_empty());
}

/// Two requests computing the same variant each write an object of their
/// own; the one recorded second is removed at once and the first one stays.
#[tokio::test]
async fn a_second_copy_of_a_derived_image_is_removed_and_the_first_stays() {
    let repo = Arc::new(MemoryFileRepository::default());
    let file = an_image(&repo).await;
    let written = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut store = stowage_domain::testing::MockObjectStore::new();
    {
        let written = written.clone();
        store
            .expect_put_bytes()
            .times(2)
            .returning(move |key, _, _| {
                written.lock().expect("lock").push(key.to_owned());
                Ok(())
            });
    }
    let deleted = record_deletions(&mut store);
    let clock = Arc::new(ManualClock::at(1_700_000_000_000));
    let service = image_service(repo.clone(), store, clock, 5);
    for _ in 0..2 {
        assert!(service
            .keep_derived_image(&file, &variant("10x10"), vec![1, 2, 3])
            .await
            .expect("keep"));
    }
    let written = written.lock().expect("lock").clone();
    assert_ne!(
        written[0], written[1],
        "every attempt writes a key of its own"
    );
    let recorded = repo
        .find_derivative(file.id, &variant("10x10").name)
        .await
        .expect("find")
        .expect("recorded");
    assert_eq!(recorded.key, written[0]);
    assert_eq!(*deleted.lock().expect("lock"), [written[1].clone()]);
    assert!(queued_deletions(&repo).await.is_empty());
}

//! The contract test kit: async checks of every MUST in [`crate::ports`]. Each
//! adapter crate calls [`file_repository`], [`api_key_repository`] and
//! [`object_store`] from its own tests against a real backend. Checks panic with
//! a message naming the broken sentence.

use async_trait::async_trait;

use crate::auth::{ApiKeyKind, ApiKeyRecord};
use crate::error::ErrorCode;
use crate::list::{Cursor, ListParams, ListQuery, MimeFilter, Scope, SortBy, SortDirection};
use crate::model::{Bucket, File, Owner, OwnerType, OwnerTypeFilter, Timestamp, Visibility};
use crate::ports::{
    ApiKeyRepository, CompletedPart, FileRepository, ObjectStore, PresignedRequest,
};
use crate::upload::UploadState;

use super::{file, fresh_tenant, pending_upload, user};

fn code<T>(r: crate::Result<T>) -> Option<ErrorCode> {
    r.err().map(|e| e.code())
}

const T0: i64 = 1_700_000_000_000;

/// Runs every repository check.
pub async fn file_repository(repo: &dyn FileRepository) {
    uploads_are_recorded_and_scoped(repo).await;
    registration_is_atomic_and_unique(repo).await;
    files_are_scoped_updated_and_deleted(repo).await;
    deletion_queue(repo).await;
    abandoned_uploads(repo).await;
    instance_secrets(repo).await;
    list_scope_filters_and_order(repo).await;
    list_pagination_and_cursor(repo).await;
    caller_listings_in_every_order(repo).await;
    repo.health_check()
        .await
        .expect("health_check MUST succeed on a live backend");
}

async fn uploads_are_recorded_and_scoped(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let other = fresh_tenant();
    let alice = user("alice");
    let key = format!("{}/dev/h/u1/a.txt", t.project);
    let up = pending_upload(&t, &alice, &key, Timestamp::from_millis(T0));
    repo.insert_upload(&up).await.expect("insert_upload");
    assert_eq!(
        repo.find_upload(&t, &key).await.expect("find"),
        Some(up.clone()),
        "find_upload returns what was inserted"
    );
    assert_eq!(
        repo.find_upload(&other, &key).await.expect("find"),
        None,
        "uploads MUST be scoped to the tenant"
    );
    assert_eq!(
        code(repo.insert_upload(&up).await),
        Some(ErrorCode::S3KeyAlreadyExists),
        "duplicate upload key"
    );
    let mut multipart =
        pending_upload(&t, &alice, &format!("{key}.mp"), Timestamp::from_millis(T0));
    multipart.multipart_id = Some("upload-1".into());
    multipart.declared_size = None;
    multipart.category = Some(crate::model::Category::Images);
    multipart.visibility = Some(Visibility::Shared);
    repo.insert_upload(&multipart)
        .await
        .expect("insert multipart");
    assert_eq!(
        repo.find_upload(&t, &multipart.key).await.expect("find"),
        Some(multipart.clone()),
        "every field round-trips"
    );

    assert!(repo
        .transition_upload(
            &t,
            &multipart.key,
            UploadState::Pending,
            UploadState::Completed
        )
        .await
        .expect("cas"));
    assert!(
        !repo
            .transition_upload(
                &t,
                &multipart.key,
                UploadState::Pending,
                UploadState::Aborted
            )
            .await
            .expect("cas"),
        "transition_upload MUST only move from the expected state"
    );
    assert!(!repo
        .transition_upload(
            &other,
            &multipart.key,
            UploadState::Completed,
            UploadState::Aborted
        )
        .await
        .expect("cas"));
}

async fn registration_is_atomic_and_unique(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);

    // The service claims an upload (pending/completed -> registering) before
    // it moves the object; registration then completes from that claim.
    let claimed = format!("{}/dev/h/u2/claimed.txt", t.project);
    let issued = pending_upload(&t, &alice, &claimed, now);
    repo.insert_upload(&issued).await.expect("insert");
    assert_eq!(
        repo.claim_for_registration(&fresh_tenant(), &claimed)
            .await
            .expect("claim"),
        None,
        "claims are scoped to the tenant"
    );
    assert_eq!(
        repo.claim_for_registration(&t, &claimed)
            .await
            .expect("claim"),
        Some(issued.clone()),
        "claim_for_registration returns the upload as it was"
    );
    assert_eq!(
        repo.claim_for_registration(&t, &claimed)
            .await
            .expect("claim"),
        None,
        "a claimed upload cannot be claimed again"
    );
    let mut multipart = pending_upload(&t, &alice, &format!("{claimed}.mp"), now);
    multipart.multipart_id = Some("mp-claim".into());
    repo.insert_upload(&multipart).await.expect("insert");
    assert_eq!(
        repo.claim_for_registration(&t, &multipart.key)
            .await
            .expect("claim"),
        None,
        "a multipart upload is claimable only once completed"
    );
    assert!(repo
        .transition_upload(
            &t,
            &multipart.key,
            UploadState::Pending,
            UploadState::Completed
        )
        .await
        .expect("cas"));
    assert_eq!(
        repo.claim_for_registration(&t, &multipart.key)
            .await
            .expect("claim")
            .map(|u| u.state),
        Some(UploadState::Completed)
    );
    assert_eq!(
        repo.find_upload(&t, &claimed)
            .await
            .expect("find")
            .map(|u| u.state),
        Some(UploadState::Registering),
        "every state round-trips"
    );
    repo.register_file(
        &file(&t, &alice, &claimed, "c.txt", Visibility::Private, now),
        None,
    )
    .await
    .expect("register_file MUST accept an upload claimed as registering");

    let key = format!("{}/dev/h/u2/a.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");

    let a = file(&t, &alice, &key, "a.txt", Visibility::Private, now);
    let b = file(&t, &alice, &key, "b.txt", Visibility::Private, now);
    let queued = |name: &str| crate::ports::QueuedDeletion {
        key: format!("_staging/{key}/{name}"),
        due: now.plus_secs(60),
    };
    let (qa, qb) = (queued("a"), queued("b"));
    let (ra, rb) = tokio::join!(
        repo.register_file(&a, Some(&qa)),
        repo.register_file(&b, Some(&qb))
    );
    let oks = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        oks, 1,
        "exactly one of two concurrent registrations MUST succeed: {ra:?} {rb:?}"
    );
    let due = repo
        .due_object_deletions(now.plus_secs(60), 100_000)
        .await
        .expect("due");
    let (won, lost) = if ra.is_ok() { (&qa, &qb) } else { (&qb, &qa) };
    assert!(
        due.contains(&won.key) && !due.contains(&lost.key),
        "register_file MUST queue its cleanup with the registration, and only then"
    );
    for q in [&qa, &qb] {
        repo.finish_object_deletion(&q.key).await.expect("finish");
    }
    let loser = if ra.is_ok() { rb } else { ra };
    assert_eq!(
        code(loser),
        Some(ErrorCode::S3KeyAlreadyExists),
        "the other MUST get s3-key-already-exists"
    );
    let upload = repo
        .find_upload(&t, &key)
        .await
        .expect("find")
        .expect("upload kept");
    assert_eq!(
        upload.state,
        UploadState::Registered,
        "registration marks the upload registered"
    );

    let missing = file(
        &t,
        &alice,
        &format!("{}/dev/h/u3/x", t.project),
        "x",
        Visibility::Private,
        now,
    );
    assert_eq!(
        code(repo.register_file(&missing, None).await),
        Some(ErrorCode::UploadNotFound),
        "no upload, no file"
    );
    assert_eq!(
        repo.get_file(&t, missing.id).await.expect("get"),
        None,
        "nothing half-written"
    );
}

async fn files_are_scoped_updated_and_deleted(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let other = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let key = format!("{}/dev/h/u4/a.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let mut f = file(&t, &alice, &key, "a.txt", Visibility::Shared, now);
    f.width = Some(800);
    f.height = Some(600);
    f.shared_with = vec!["bob".into(), "carol".into()];
    f.metadata = crate::model::FileMetadata::from_json(serde_json::json!({
        "category": "c", "tags": ["x", "y"], "custom": {"nested": {"n": 1}}, "relatedEntityId": "r"
    }))
    .expect("metadata");
    f.bucket = Bucket::Images;
    f.owner = Owner {
        kind: OwnerType::User,
        id: "alice".into(),
    };
    repo.register_file(&f, None).await.expect("register");
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(f.clone()),
        "every field round-trips"
    );
    assert_eq!(
        repo.get_file(&other, f.id).await.expect("get"),
        None,
        "other tenants' files MUST NOT be returned"
    );

    let mut changed = f.clone();
    changed.original_name = "b.txt".into();
    changed.visibility = Visibility::Public;
    changed.shared_with = vec![];
    changed.metadata.tags = None;
    changed.updated_at = now.plus_secs(5);
    let mut stale = changed.clone();
    stale.original_name = "stale.txt".into();
    assert_eq!(
        repo.update_file(&stale, now.plus_secs(1)).await.ok(),
        Some(false),
        "update_file MUST refuse a row whose updatedAt is not the expected one"
    );
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(f.clone()),
        "a refused update_file MUST change nothing"
    );
    assert_eq!(
        repo.update_file(&changed, f.updated_at).await.ok(),
        Some(true),
        "update_file from the expected updatedAt"
    );
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(changed.clone())
    );
    assert_eq!(
        repo.update_file(&stale, f.updated_at).await.ok(),
        Some(false),
        "a second update from the same state MUST be refused (no lost update)"
    );
    let mut foreign = changed.clone();
    foreign.tenant = other.clone();
    assert_eq!(
        code(repo.update_file(&foreign, changed.updated_at).await),
        Some(ErrorCode::FileNotFound),
        "update across tenants"
    );

    assert_eq!(
        repo.delete_file(&other, f.id, now).await.expect("delete"),
        None,
        "delete across tenants"
    );
    assert_eq!(
        repo.delete_file(&t, f.id, now).await.expect("delete"),
        Some(changed)
    );
    assert_eq!(repo.get_file(&t, f.id).await.expect("get"), None);
    assert_eq!(
        repo.delete_file(&t, f.id, now).await.expect("delete"),
        None,
        "second delete finds nothing"
    );
    assert_eq!(
        code(repo.update_file(&f, f.updated_at).await),
        Some(ErrorCode::FileNotFound),
        "update of a deleted file"
    );
    let due = repo.due_object_deletions(now, 1000).await.expect("due");
    assert!(
        due.contains(&key),
        "delete_file MUST queue the object for deletion"
    );
    repo.finish_object_deletion(&key).await.expect("finish");
}

async fn instance_secrets(repo: &dyn FileRepository) {
    let name = format!("test-{}", uuid::Uuid::now_v7().simple());
    let first = repo
        .instance_secret(&name, &[1; 32])
        .await
        .expect("instance_secret");
    assert_eq!(first, vec![1; 32], "the first candidate is stored");
    assert_eq!(
        repo.instance_secret(&name, &[2; 32]).await.expect("again"),
        first,
        "instance_secret MUST keep the first stored secret"
    );
    let other = format!("{name}-b");
    assert_eq!(
        repo.instance_secret(&other, &[3; 40]).await.expect("other"),
        vec![3; 40],
        "secrets are kept by name"
    );
}

async fn abandoned_uploads(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let old = Timestamp::from_millis(T0 - 100 * 3600 * 1000);
    let key = |n: &str| format!("{}/dev/h/ab/{n}", t.project);
    let mut single_old = pending_upload(&t, &alice, &key("single-old"), old);
    single_old.expires_at = old.plus_secs(900);
    repo.insert_upload(&single_old).await.expect("insert");
    repo.insert_upload(&pending_upload(
        &t,
        &alice,
        &key("single-new"),
        Timestamp::from_millis(T0),
    ))
    .await
    .expect("insert");
    let mut mp_expired = pending_upload(&t, &alice, &key("mp-expired"), old);
    mp_expired.multipart_id = Some("u1".into());
    mp_expired.expires_at = Timestamp::from_millis(T0 - 1);
    repo.insert_upload(&mp_expired).await.expect("insert");
    let mut mp_live = pending_upload(&t, &alice, &key("mp-live"), old);
    mp_live.multipart_id = Some("u2".into());
    mp_live.expires_at = Timestamp::from_millis(T0 + 1000);
    repo.insert_upload(&mp_live).await.expect("insert");
    let mut mp_done = pending_upload(&t, &alice, &key("mp-done"), old);
    mp_done.multipart_id = Some("u3".into());
    repo.insert_upload(&mp_done).await.expect("insert");
    repo.transition_upload(
        &t,
        &mp_done.key,
        UploadState::Pending,
        UploadState::Completed,
    )
    .await
    .expect("cas");
    let registered = pending_upload(&t, &alice, &key("registered"), old);
    repo.insert_upload(&registered).await.expect("insert");
    repo.register_file(
        &file(&t, &alice, &registered.key, "r", Visibility::Private, old),
        None,
    )
    .await
    .expect("register");
    let aborted = pending_upload(&t, &alice, &key("aborted"), old);
    repo.insert_upload(&aborted).await.expect("insert");
    repo.transition_upload(&t, &aborted.key, UploadState::Pending, UploadState::Aborted)
        .await
        .expect("cas");

    // Left mid-way by a crash: a completion and a registration.
    for (name, state, multipart) in [
        ("stuck-completing", UploadState::Completing, true),
        ("stuck-registering", UploadState::Registering, false),
    ] {
        let mut up = pending_upload(&t, &alice, &key(name), old);
        if multipart {
            up.multipart_id = Some(format!("u-{name}"));
        }
        repo.insert_upload(&up).await.expect("insert");
        assert!(
            repo.transition_upload(&t, &up.key, UploadState::Pending, state)
                .await
                .expect("cas"),
            "pending -> {state:?}"
        );
    }
    let mut fresh_registering = pending_upload(
        &t,
        &alice,
        &key("registering-now"),
        Timestamp::from_millis(T0),
    );
    fresh_registering.expires_at = Timestamp::from_millis(T0 + 1000);
    repo.insert_upload(&fresh_registering)
        .await
        .expect("insert");
    repo.transition_upload(
        &t,
        &fresh_registering.key,
        UploadState::Pending,
        UploadState::Registering,
    )
    .await
    .expect("cas");

    let cutoff = Timestamp::from_millis(T0 - 3600 * 1000);
    let found = repo
        .abandoned_uploads(cutoff, Timestamp::from_millis(T0), 10_000)
        .await
        .expect("abandoned");
    let mut mine: Vec<&str> = found
        .iter()
        .filter(|u| u.tenant == t)
        .map(|u| u.key.rsplit('/').next().unwrap_or_default())
        .collect();
    mine.sort_unstable();
    assert_eq!(
        mine,
        [
            "mp-done",
            "mp-expired",
            "single-old",
            "stuck-completing",
            "stuck-registering"
        ],
        "abandoned uploads are exactly the stale pending/completed ones"
    );
}

async fn deletion_queue(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let key = format!("{}/dev/h/q/a", t.project);
    let now = Timestamp::from_millis(T0 - 10_000_000);
    repo.enqueue_object_deletion(&key, now)
        .await
        .expect("enqueue");
    repo.enqueue_object_deletion(&key, now)
        .await
        .expect("enqueue is idempotent");
    let due = repo.due_object_deletions(now, 1000).await.expect("due");
    assert_eq!(due.iter().filter(|k| **k == key).count(), 1);
    repo.defer_object_deletion(&key, now.plus_secs(60))
        .await
        .expect("defer");
    assert!(
        !repo
            .due_object_deletions(now, 1000)
            .await
            .expect("due")
            .contains(&key),
        "deferred keys are not due"
    );
    assert!(repo
        .due_object_deletions(now.plus_secs(60), 1000)
        .await
        .expect("due")
        .contains(&key));
    repo.finish_object_deletion(&key).await.expect("finish");
    repo.finish_object_deletion(&key)
        .await
        .expect("finish is idempotent");
    assert!(!repo
        .due_object_deletions(now.plus_secs(120), 1000)
        .await
        .expect("due")
        .contains(&key));
}

/// Owner, name, visibility, shared with, MIME type, size.
type SeedRow<'a> = (&'a str, &'a str, Visibility, &'a [&'a str], &'a str, u64);

/// Seeds a tenant with a known set of files and returns it.
async fn seed(repo: &dyn FileRepository) -> crate::model::Tenant {
    let t = fresh_tenant();
    let rows: &[SeedRow<'_>] = &[
        (
            "alice",
            "Alpha.png",
            Visibility::Private,
            &[],
            "image/png",
            10,
        ),
        (
            "alice",
            "beta.jpg",
            Visibility::Public,
            &[],
            "image/jpeg",
            20,
        ),
        (
            "alice",
            "50%_off.txt",
            Visibility::Shared,
            &["bob"],
            "text/plain",
            30,
        ),
        (
            "bob",
            "gamma.PNG",
            Visibility::Protected,
            &[],
            "image/png",
            20,
        ),
        (
            "bob",
            "delta.txt",
            Visibility::Private,
            &[],
            "text/plain",
            5,
        ),
        (
            "carol",
            "500 off.txt",
            Visibility::Shared,
            &["dave"],
            "text/plain",
            7,
        ),
        (
            "carol",
            "Émile.txt",
            Visibility::Public,
            &[],
            "text/plain",
            7,
        ),
        (
            "carol",
            "zeta",
            Visibility::Private,
            &[],
            "application/zip",
            7,
        ),
    ];
    for (i, (owner, name, vis, shared, mime, size)) in rows.iter().enumerate() {
        let key = format!("{}/dev/h/s{i}/x", t.project);
        let at = Timestamp::from_millis(T0 + (i as i64 % 3) * 1000);
        repo.insert_upload(&pending_upload(&t, &user(owner), &key, at))
            .await
            .expect("insert");
        let mut f = file(&t, &user(owner), &key, name, *vis, at);
        f.shared_with = shared.iter().map(|s| s.to_string()).collect();
        f.mime_type = (*mime).into();
        f.size = *size;
        repo.register_file(&f, None).await.expect("register");
    }
    let svc = Owner {
        kind: OwnerType::Service,
        id: "key-1".into(),
    };
    let key = format!("{}/dev/h/svc/x", t.project);
    let at = Timestamp::from_millis(T0);
    repo.insert_upload(&pending_upload(&t, &svc, &key, at))
        .await
        .expect("insert");
    let mut f = file(&t, &svc, &key, "service.bin", Visibility::Private, at);
    f.bucket = Bucket::Temp;
    repo.register_file(&f, None).await.expect("register");
    t
}

fn visible_to(id: &str) -> Scope {
    Scope::VisibleTo {
        owner: user(id),
        user_id: Some(id.into()),
    }
}

async fn names(
    repo: &dyn FileRepository,
    t: &crate::model::Tenant,
    scope: Scope,
    params: ListParams,
) -> (Vec<String>, u64) {
    let page = repo
        .list_files(&ListQuery {
            tenant: t.clone(),
            scope,
            params,
        })
        .await
        .expect("list");
    (
        page.items.into_iter().map(|f| f.original_name).collect(),
        page.total,
    )
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort_unstable();
    v.into_iter().map(str::to_owned).collect()
}

async fn list_scope_filters_and_order(repo: &dyn FileRepository) {
    let t = seed(repo).await;
    let by_name = ListParams {
        sort_by: SortBy::OriginalName,
        direction: SortDirection::Asc,
        limit: 100,
        ..ListParams::default()
    };

    let (all, total) = names(repo, &t, Scope::All, by_name.clone()).await;
    assert_eq!(total, 9, "admins see every file of the tenant");
    assert_eq!(
        all,
        [
            "50%_off.txt",
            "500 off.txt",
            "Alpha.png",
            "beta.jpg",
            "delta.txt",
            "gamma.PNG",
            "service.bin",
            "zeta",
            "Émile.txt"
        ],
        "originalName sorts by code point"
    );
    let (bob, total) = names(repo, &t, visible_to("bob"), by_name.clone()).await;
    assert_eq!(
        sorted(bob.iter().map(String::as_str).collect()),
        sorted(vec![
            "50%_off.txt",
            "beta.jpg",
            "delta.txt",
            "gamma.PNG",
            "Émile.txt"
        ]),
        "own + public + protected + shared-with-me, and nothing else"
    );
    assert_eq!(total, 5, "total counts only visible rows");
    let (eve, _) = names(repo, &t, visible_to("eve"), by_name.clone()).await;
    assert_eq!(
        sorted(eve.iter().map(String::as_str).collect()),
        sorted(vec!["beta.jpg", "gamma.PNG", "Émile.txt"])
    );
    let svc_scope = Scope::VisibleTo {
        owner: Owner {
            kind: OwnerType::Service,
            id: "key-1".into(),
        },
        user_id: None,
    };
    let (svc, _) = names(repo, &t, svc_scope, by_name.clone()).await;
    assert!(svc.contains(&"service.bin".to_owned()) && !svc.contains(&"50%_off.txt".to_owned()));
    let (other, total) = names(repo, &fresh_tenant(), Scope::All, by_name.clone()).await;
    assert!(other.is_empty() && total == 0, "other tenants see nothing");

    let cases: Vec<(ListParams, Vec<&str>)> = vec![
        (
            ListParams {
                visibility: Some(Visibility::Public),
                ..by_name.clone()
            },
            vec!["beta.jpg", "Émile.txt"],
        ),
        (
            ListParams {
                owner_id: Some("carol".into()),
                ..by_name.clone()
            },
            vec!["500 off.txt", "zeta", "Émile.txt"],
        ),
        (
            ListParams {
                owner_type: Some(OwnerTypeFilter::Service),
                ..by_name.clone()
            },
            vec!["service.bin"],
        ),
        (
            ListParams {
                owner_type: Some(OwnerTypeFilter::Session),
                ..by_name.clone()
            },
            vec![],
        ),
        (
            ListParams {
                owner_type: Some(OwnerTypeFilter::Public),
                ..by_name.clone()
            },
            vec![],
        ),
        (
            ListParams {
                bucket: Some(Bucket::Temp),
                ..by_name.clone()
            },
            vec!["service.bin"],
        ),
        (
            ListParams {
                mime_type: Some(MimeFilter::Exact("image/png".into())),
                ..by_name.clone()
            },
            vec!["Alpha.png", "gamma.PNG"],
        ),
        (
            ListParams {
                mime_type: Some(MimeFilter::Prefix("image/".into())),
                ..by_name.clone()
            },
            vec!["Alpha.png", "beta.jpg", "gamma.PNG"],
        ),
        (
            ListParams {
                search: Some("png".into()),
                ..by_name.clone()
            },
            vec!["Alpha.png", "gamma.PNG"],
        ),
        (
            ListParams {
                search: Some("50%_".into()),
                ..by_name.clone()
            },
            vec!["50%_off.txt"],
        ),
        (
            ListParams {
                search: Some("0_o".into()),
                ..by_name.clone()
            },
            vec![],
        ),
        (
            ListParams {
                search: Some("%".into()),
                ..by_name.clone()
            },
            vec!["50%_off.txt"],
        ),
        (
            ListParams {
                search: Some("émile".into()),
                ..by_name.clone()
            },
            vec!["Émile.txt"],
        ),
    ];
    for (params, want) in cases {
        let (got, total) = names(repo, &t, Scope::All, params.clone()).await;
        assert_eq!(got, want, "filter {params:?}");
        assert_eq!(total, want.len() as u64, "total of {params:?}");
    }

    for sort_by in [
        SortBy::CreatedAt,
        SortBy::UpdatedAt,
        SortBy::Size,
        SortBy::MimeType,
        SortBy::OriginalName,
    ] {
        for direction in [SortDirection::Asc, SortDirection::Desc] {
            let params = ListParams {
                sort_by,
                direction,
                limit: 100,
                ..ListParams::default()
            };
            let page = repo
                .list_files(&ListQuery {
                    tenant: t.clone(),
                    scope: Scope::All,
                    params,
                })
                .await
                .expect("list");
            let keys: Vec<_> = page
                .items
                .iter()
                .map(|f| (Cursor::after(f, sort_by, direction).value, f.id))
                .collect();
            let mut want = keys.clone();
            want.sort_by(|a, b| {
                let o = match (&a.0, &b.0) {
                    (crate::list::SortValue::Int(x), crate::list::SortValue::Int(y)) => x.cmp(y),
                    (crate::list::SortValue::Text(x), crate::list::SortValue::Text(y)) => x.cmp(y),
                    _ => std::cmp::Ordering::Equal,
                }
                .then(a.1.cmp(&b.1));
                if direction == SortDirection::Desc {
                    o.reverse()
                } else {
                    o
                }
            });
            assert_eq!(
                keys, want,
                "order by {sort_by:?} {direction:?} with ties broken by id in the same direction"
            );
        }
    }

    // Totals follow visibility changes and deletions.
    let total_for = |scope: Scope| {
        let query = ListQuery {
            tenant: t.clone(),
            scope,
            params: ListParams {
                limit: 100,
                ..ListParams::default()
            },
        };
        async move { repo.list_files(&query).await }
    };
    let everything = total_for(Scope::All).await.expect("list");
    let alpha = everything
        .items
        .iter()
        .find(|f| f.original_name == "Alpha.png")
        .cloned()
        .expect("Alpha");
    let beta = everything
        .items
        .iter()
        .find(|f| f.original_name == "beta.jpg")
        .cloned()
        .expect("beta");
    assert_eq!(total_for(visible_to("eve")).await.expect("list").total, 3);
    let mut public_alpha = alpha.clone();
    public_alpha.visibility = Visibility::Public;
    public_alpha.updated_at = alpha.updated_at.plus_secs(1);
    assert_eq!(
        repo.update_file(&public_alpha, alpha.updated_at).await.ok(),
        Some(true)
    );
    assert_eq!(
        total_for(visible_to("eve")).await.expect("list").total,
        4,
        "a file made public counts for everyone"
    );
    let mut again = public_alpha.clone();
    again.updated_at = public_alpha.updated_at.plus_secs(1);
    assert_eq!(
        repo.update_file(&again, public_alpha.updated_at).await.ok(),
        Some(true),
        "update again, same visibility"
    );
    let public_alpha = again;
    assert_eq!(total_for(visible_to("eve")).await.expect("list").total, 4);
    repo.delete_file(&t, beta.id, Timestamp::from_millis(T0))
        .await
        .expect("delete");
    assert_eq!(
        total_for(visible_to("eve")).await.expect("list").total,
        3,
        "a deleted file no longer counts"
    );
    assert_eq!(total_for(Scope::All).await.expect("list").total, 8);
    let public_alpha_at = public_alpha.updated_at;
    let mut private_again = public_alpha;
    private_again.visibility = Visibility::Private;
    private_again.updated_at = private_again.updated_at.plus_secs(1);
    assert_eq!(
        repo.update_file(&private_again, public_alpha_at).await.ok(),
        Some(true)
    );
    assert_eq!(total_for(visible_to("eve")).await.expect("list").total, 2);
    assert_eq!(
        total_for(visible_to("alice")).await.expect("list").total,
        4,
        "owners still count their own private files"
    );
}

async fn list_pagination_and_cursor(repo: &dyn FileRepository) {
    let t = seed(repo).await;
    for sort_by in [SortBy::CreatedAt, SortBy::Size, SortBy::OriginalName] {
        for direction in [SortDirection::Asc, SortDirection::Desc] {
            let all_params = ListParams {
                sort_by,
                direction,
                limit: 100,
                ..ListParams::default()
            };
            let (all, _) = names(repo, &t, Scope::All, all_params).await;
            // Offset pages.
            let mut paged = Vec::new();
            for page in 1..=5 {
                let params = ListParams {
                    sort_by,
                    direction,
                    limit: 2,
                    page,
                    ..ListParams::default()
                };
                let res = repo
                    .list_files(&ListQuery {
                        tenant: t.clone(),
                        scope: Scope::All,
                        params,
                    })
                    .await
                    .expect("list");
                assert_eq!(res.total, 9);
                assert_eq!(res.has_more, page < 5, "has_more on page {page}");
                paged.extend(res.items.into_iter().map(|f| f.original_name));
            }
            assert_eq!(
                paged, all,
                "offset pages partition the list ({sort_by:?} {direction:?})"
            );
            let far = ListParams {
                sort_by,
                direction,
                limit: 2,
                page: 50,
                ..ListParams::default()
            };
            let res = repo
                .list_files(&ListQuery {
                    tenant: t.clone(),
                    scope: Scope::All,
                    params: far,
                })
                .await
                .expect("list");
            assert!(
                res.items.is_empty() && res.total == 9 && !res.has_more,
                "out-of-range page"
            );
            // Cursor pages.
            let mut walked = Vec::new();
            let mut cursor = None;
            for _ in 0..10 {
                let params = ListParams {
                    sort_by,
                    direction,
                    limit: 2,
                    cursor: cursor.clone(),
                    ..ListParams::default()
                };
                let res = repo
                    .list_files(&ListQuery {
                        tenant: t.clone(),
                        scope: Scope::All,
                        params,
                    })
                    .await
                    .expect("list");
                assert_eq!(res.total, 9, "total ignores the cursor");
                cursor = res
                    .items
                    .last()
                    .map(|f| Cursor::after(f, sort_by, direction));
                walked.extend(res.items.into_iter().map(|f| f.original_name));
                if !res.has_more {
                    break;
                }
            }
            assert_eq!(
                walked, all,
                "cursor pages walk the list exactly once ({sort_by:?} {direction:?})"
            );
        }
    }
}

/// Runs every API key repository check.
pub async fn api_key_repository(repo: &dyn ApiKeyRepository) {
    let t = fresh_tenant();
    let rec = ApiKeyRecord {
        id: uuid::Uuid::now_v7().to_string(),
        key_hash: crate::auth::hash_key(&uuid::Uuid::new_v4().to_string()),
        tenant: t.clone(),
        kind: ApiKeyKind::Publishable,
        created_at: Timestamp::from_millis(T0),
        expires_at: Some(Timestamp::from_millis(T0 + 1000)),
        revoked_at: None,
    };
    repo.insert_key(&rec).await.expect("insert_key");
    assert_eq!(
        repo.find_by_hash(&rec.key_hash).await.expect("find"),
        Some(rec.clone()),
        "keys round-trip"
    );
    assert_eq!(repo.find_by_hash("00").await.expect("find"), None);
    assert!(repo.list_keys().await.expect("list").contains(&rec));
    assert!(repo
        .revoke_key(&rec.id, Timestamp::from_millis(T0 + 5))
        .await
        .expect("revoke"));
    assert!(
        !repo
            .revoke_key(&rec.id, Timestamp::from_millis(T0 + 6))
            .await
            .expect("revoke"),
        "revoking twice reports false"
    );
    assert_eq!(
        repo.find_by_hash(&rec.key_hash)
            .await
            .expect("find")
            .and_then(|k| k.revoked_at),
        Some(Timestamp::from_millis(T0 + 5))
    );
}

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
}

/// Runs every object store check. `key_prefix` must be a key prefix the store accepts.
pub async fn object_store(store: &dyn ObjectStore, io: &dyn Transfer, key_prefix: &str) {
    let exp = Timestamp::from_datetime(chrono::Utc::now()).plus_secs(600);
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
        .presign_put(&key, "text/plain", Some(5), exp)
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

    promote_moves_inside_the_store(store, io, key_prefix, exp).await;
    racing_part_uploads_leave_one_whole_part(store, io, key_prefix, exp).await;

    // Multipart: parts out of order, one replaced, assembled in order.
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
            .presign_part(&mkey, &upload_id, n, exp)
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
        code(store.complete_multipart(&mkey, &upload_id, &missing).await),
        Some(ErrorCode::InvalidPartsArray),
        "a part that was never uploaded"
    );
    let wrong = vec![CompletedPart {
        part_number: 1,
        etag: "0".repeat(32),
    }];
    assert_eq!(
        code(store.complete_multipart(&mkey, &upload_id, &wrong).await),
        Some(ErrorCode::InvalidPartsArray),
        "complete_multipart MUST refuse a part whose ETag differs"
    );
    let done = store
        .complete_multipart(&mkey, &upload_id, &parts)
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

    // Small non-final part, abort.
    let skey = format!("{key_prefix}/{}/small.bin", uuid::Uuid::now_v7().simple());
    let upload_id = store
        .create_multipart(&skey, "application/octet-stream")
        .await
        .expect("create_multipart");
    let mut parts = Vec::new();
    for n in 1..=2u32 {
        let req = store
            .presign_part(&skey, &upload_id, n, exp)
            .await
            .expect("presign_part");
        let (_, etag) = io.put(&req, &[], vec![0u8; 100]).await;
        parts.push(CompletedPart {
            part_number: n,
            etag: etag.expect("etag").trim_matches('"').to_owned(),
        });
    }
    assert_eq!(
        code(store.complete_multipart(&skey, &upload_id, &parts).await),
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
    store.health_check().await.expect("health_check");
}

async fn promote_moves_inside_the_store(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
    exp: Timestamp,
) {
    let id = uuid::Uuid::now_v7().simple();
    let (from, to) = (
        format!("{key_prefix}/{id}/staged.txt"),
        format!("{key_prefix}/{id}/placed.txt"),
    );
    let put = store
        .presign_put(&from, "text/plain", None, exp)
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

async fn racing_part_uploads_leave_one_whole_part(
    store: &dyn ObjectStore,
    io: &dyn Transfer,
    key_prefix: &str,
    exp: Timestamp,
) {
    for round in 0..3 {
        let key = format!("{key_prefix}/{}/race.bin", uuid::Uuid::now_v7().simple());
        let upload_id = store
            .create_multipart(&key, "application/octet-stream")
            .await
            .expect("create_multipart");
        let req = store
            .presign_part(&key, &upload_id, 1, exp)
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
            if let Ok(done) = store.complete_multipart(&key, &upload_id, &parts).await {
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
    use crate::service::{FilePatch, FileService, ServiceConfig};
    use crate::upload::IssueUpload;

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
    let issue = |name: &str, size: Option<i64>| IssueUpload {
        filename: name.into(),
        content_type: "text/plain".into(),
        file_size: size,
        visibility: None,
        category: None,
    };
    let register = |key: &str, size: i64| crate::service::RegisterFile {
        s3_key: key.into(),
        original_name: "a.txt".into(),
        mime_type: "text/plain".into(),
        size,
        width: None,
        height: None,
        visibility: None,
        bucket: None,
        metadata: None,
        shared_with: None,
    };
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
    let id = file.id.to_string();
    let _ = io.put(&put, &[], b"EVIL! and much longer".to_vec()).await;
    let read = |id: String| {
        let service = &service;
        let alice = &alice;
        async move {
            let dl = service
                .download_url(alice, &id)
                .await
                .expect("download url");
            let req = PresignedRequest {
                url: dl.url,
                method: "GET",
                headers: Vec::new(),
            };
            io.get(&req).await.3
        }
    };
    assert_eq!(
        read(id.clone()).await,
        b"hello".to_vec(),
        "an upload URL used after registration MUST NOT change the file's bytes"
    );
    assert_eq!(
        store.head(&ticket.key).await.expect("head").map(|i| i.size),
        Some(5)
    );
    service.delete(&alice, &id).await.expect("delete");
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
    let id = file.id.to_string();
    let patches: Vec<_> = (0..20)
        .map(|i| {
            let patch = FilePatch {
                metadata: Some(serde_json::json!({ "custom": { format!("k{i}"): i } })),
                ..FilePatch::default()
            };
            let (service, alice, id) = (&service, &alice, &id);
            async move { service.patch(alice, id, patch).await }
        })
        .collect();
    for r in join_all(patches).await {
        r.expect("every concurrent PATCH succeeds");
    }
    let custom = service
        .get(&alice, &id)
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
    let patch = FilePatch {
        original_name: Some("renamed.txt".into()),
        ..FilePatch::default()
    };
    let (patched, deleted) = tokio::join!(
        service.patch(&alice, &id, patch),
        service.delete(&alice, &id)
    );
    deleted.expect("delete");
    if let Err(e) = patched {
        assert_eq!(
            e.code(),
            ErrorCode::FileNotFound,
            "PATCH racing DELETE: {e:?}"
        );
    }
    assert_eq!(
        code(service.get(&alice, &id).await),
        Some(ErrorCode::FileNotFound)
    );

    // Complete racing abort: one winner, nothing left behind.
    for round in 0..4 {
        let mut req = issue("m.bin", Some(10));
        req.content_type = "application/octet-stream".into();
        let mp = service.init_multipart(&alice, req).await.expect("init");
        let part = service
            .presign_part(&alice, &mp.key, &mp.upload_id, &serde_json::json!(1))
            .await
            .expect("part url");
        let part_req = PresignedRequest {
            url: part.url,
            method: "PUT",
            headers: Vec::new(),
        };
        let (status, etag) = io.put(&part_req, &[], vec![7; 10]).await;
        assert_eq!(status, 200);
        let parts = serde_json::json!([{ "partNumber": 1, "etag": etag.expect("etag") }]);
        let (done, aborted) = if round % 2 == 0 {
            tokio::join!(
                service.complete_multipart(&alice, &mp.key, &mp.upload_id, Some(&parts)),
                service.abort_multipart(&alice, &mp.key, &mp.upload_id)
            )
        } else {
            let (a, d) = tokio::join!(
                service.abort_multipart(&alice, &mp.key, &mp.upload_id),
                service.complete_multipart(&alice, &mp.key, &mp.upload_id, Some(&parts))
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
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
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

/// A caller's listing (own files, public and protected files, shared files
/// naming them), read in every order by offset pages and by cursor pages, is
/// exactly the reference: the rows of docs/api.md §5 in order, ties broken by id,
/// whatever plan the adapter uses (one query or merged branches).
async fn caller_listings_in_every_order(repo: &dyn FileRepository) {
    use crate::list::SortValue;
    let t = fresh_tenant();
    let owners = ["me", "ann", "bob", "cy"];
    let visibilities = [
        Visibility::Private,
        Visibility::Public,
        Visibility::Protected,
        Visibility::Shared,
    ];
    let mut all = Vec::new();
    for i in 0..48u32 {
        let owner = user(owners[(i % 4) as usize]);
        let vis = visibilities[((i / 4) % 4) as usize];
        let key = format!("{}/dev/h/branches/{i}", t.project);
        let at = Timestamp::from_millis(T0 + i64::from(i % 7) * 1000);
        repo.insert_upload(&pending_upload(&t, &owner, &key, at))
            .await
            .expect("insert");
        // Repeated names, sizes, types and times, so ties are broken by id.
        let mut f = file(&t, &owner, &key, &format!("n{}", i % 5), vis, at);
        f.size = u64::from(i % 6);
        f.mime_type = ["text/plain", "image/png", "application/pdf"][(i % 3) as usize].into();
        f.updated_at = Timestamp::from_millis(T0 + i64::from(i % 9) * 1000);
        if vis == Visibility::Shared && i % 8 < 6 {
            f.shared_with = vec!["me".into()];
        }
        repo.register_file(&f, None).await.expect("register");
        all.push(f);
    }
    let me = user("me");
    let scope = Scope::VisibleTo {
        owner: me.clone(),
        user_id: Some("me".into()),
    };
    let filters: [(Option<Visibility>, Option<OwnerTypeFilter>); 5] = [
        (None, None),
        (Some(Visibility::Public), None),
        (Some(Visibility::Shared), None),
        (Some(Visibility::Private), None),
        (None, Some(OwnerTypeFilter::User)),
    ];
    for sort_by in [
        SortBy::CreatedAt,
        SortBy::UpdatedAt,
        SortBy::OriginalName,
        SortBy::Size,
        SortBy::MimeType,
    ] {
        for direction in [SortDirection::Asc, SortDirection::Desc] {
            for (visibility, owner_type) in filters {
                let key = |f: &File| -> (SortValue, uuid::Uuid) {
                    (Cursor::after(f, sort_by, direction).value, f.id.0)
                };
                let mut want: Vec<&File> = all
                    .iter()
                    .filter(|f| crate::testing::memory::in_scope(&scope, f))
                    .filter(|f| visibility.is_none_or(|v| f.visibility == v))
                    .collect();
                want.sort_by(|a, b| {
                    let o = key(a).cmp(&key(b));
                    if direction == SortDirection::Desc {
                        o.reverse()
                    } else {
                        o
                    }
                });
                let want: Vec<_> = want.iter().map(|f| f.id).collect();
                let params = ListParams {
                    limit: 5,
                    sort_by,
                    direction,
                    visibility,
                    owner_type,
                    ..ListParams::default()
                };
                let what = format!("{sort_by:?} {direction:?} {visibility:?} {owner_type:?}");
                // Offset pages.
                let mut got = Vec::new();
                for page in 1..=12u32 {
                    let query = ListQuery {
                        tenant: t.clone(),
                        scope: scope.clone(),
                        params: ListParams {
                            page,
                            ..params.clone()
                        },
                    };
                    let res = repo.list_files(&query).await.expect("list");
                    assert_eq!(res.total as usize, want.len(), "total ({what})");
                    got.extend(res.items.iter().map(|f| f.id));
                    if !res.has_more {
                        break;
                    }
                }
                assert_eq!(
                    got, want,
                    "offset pages walk the caller's rows in order ({what})"
                );
                // Cursor pages.
                let mut got = Vec::new();
                let mut cursor: Option<Cursor> = None;
                loop {
                    let query = ListQuery {
                        tenant: t.clone(),
                        scope: scope.clone(),
                        params: ListParams {
                            cursor: cursor.clone(),
                            ..params.clone()
                        },
                    };
                    let res = repo.list_files(&query).await.expect("list");
                    got.extend(res.items.iter().map(|f| f.id));
                    match res.items.last() {
                        Some(last) if res.has_more => {
                            cursor = Some(Cursor::after(last, sort_by, direction));
                        }
                        _ => break,
                    }
                    assert!(got.len() <= want.len(), "cursor pages end ({what})");
                }
                assert_eq!(
                    got, want,
                    "cursor pages walk the caller's rows in order ({what})"
                );
            }
        }
    }
}

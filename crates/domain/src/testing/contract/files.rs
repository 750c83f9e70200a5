//! Checks of the file rows (scope, compare-and-set update, delete), the
//! deletion queue and instance secrets.

use super::*;

pub async fn files_are_scoped_updated_and_deleted(repo: &dyn FileRepository) {
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
    assert_eq!(
        repo.find_file_by_key(&t, &key).await.expect("find by key"),
        None,
        "find_file_by_key MUST be None for an upload not registered"
    );
    super::register_plainly(repo, &f).await.expect("register");
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
    assert_eq!(
        repo.find_file_by_key(&t, &key).await.expect("find by key"),
        Some(f.clone()),
        "find_file_by_key MUST return the registered file of the key"
    );
    assert_eq!(
        repo.find_file_by_key(&other, &key)
            .await
            .expect("find by key"),
        None,
        "find_file_by_key MUST NOT return another tenant's file"
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
        repo.update_file(
            &stale,
            now.plus_secs(1),
            &crate::testing::updated_event(&stale)
        )
        .await
        .ok(),
        Some(false),
        "update_file MUST refuse a row whose updatedAt is not the expected one"
    );
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(f.clone()),
        "a refused update_file MUST change nothing"
    );
    assert_eq!(
        repo.update_file(
            &changed,
            f.updated_at,
            &crate::testing::updated_event(&changed)
        )
        .await
        .ok(),
        Some(true),
        "update_file from the expected updatedAt"
    );
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(changed.clone()),
        "update_file MUST store every field of the file as given"
    );
    assert_eq!(
        repo.update_file(&stale, f.updated_at, &crate::testing::updated_event(&stale))
            .await
            .ok(),
        Some(false),
        "a second update from the same state MUST be refused (no lost update)"
    );
    let mut foreign = changed.clone();
    foreign.tenant = other.clone();
    assert_eq!(
        code(
            repo.update_file(
                &foreign,
                changed.updated_at,
                &crate::testing::updated_event(&foreign)
            )
            .await
        ),
        Some(ErrorCode::FileNotFound),
        "update across tenants"
    );

    let mut foreign_copy = changed.clone();
    foreign_copy.tenant = other.clone();
    assert_eq!(
        repo.delete_file(
            &foreign_copy,
            now,
            &crate::testing::deleted_event(&foreign_copy)
        )
        .await
        .expect("delete"),
        None,
        "delete across tenants"
    );
    assert_eq!(
        repo.delete_file(&f, now, &crate::testing::deleted_event(&f))
            .await
            .expect("delete"),
        None,
        "delete_file MUST NOT delete a file changed since it was read (compare-and-set)"
    );
    assert_eq!(
        repo.get_file(&t, f.id).await.expect("get"),
        Some(changed.clone()),
        "a refused delete_file MUST change nothing"
    );
    assert_eq!(
        repo.delete_file(&changed, now, &crate::testing::deleted_event(&changed))
            .await
            .expect("delete"),
        Some(changed.clone())
    );
    assert_eq!(repo.get_file(&t, f.id).await.expect("get"), None);
    assert_eq!(
        repo.delete_file(&changed, now, &crate::testing::deleted_event(&changed))
            .await
            .expect("delete"),
        None,
        "second delete finds nothing"
    );
    assert_eq!(
        code(
            repo.update_file(&f, f.updated_at, &crate::testing::updated_event(&f))
                .await
        ),
        Some(ErrorCode::FileNotFound),
        "update of a deleted file"
    );
    assert_eq!(
        repo.find_file_by_key(&t, &key).await.expect("find by key"),
        None,
        "find_file_by_key MUST NOT return a deleted file"
    );
    let due = repo.due_object_deletions(now, 1000).await.expect("due");
    assert!(
        due.contains(&key),
        "delete_file MUST queue the object for deletion"
    );
    repo.finish_object_deletion(&key).await.expect("finish");
}

pub async fn deletion_queue(repo: &dyn FileRepository) {
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

pub async fn instance_secrets(repo: &dyn FileRepository) {
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

/// Racing writers: of concurrent `update_file`s from one `updated_at`, exactly
/// one wins (no lost update), and of concurrent `transition_upload`s from one
/// state (a completion racing an abort), exactly one moves it.
pub async fn concurrent_writers_one_wins(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let key = format!("{}/dev/h/u9/race.txt", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let f = file(&t, &alice, &key, "race.txt", Visibility::Private, now);
    super::register_plainly(repo, &f).await.expect("register");
    let updates: Vec<_> = (0..8)
        .map(|i| {
            let mut changed = f.clone();
            changed.original_name = format!("writer-{i}.txt");
            changed.updated_at = now.plus_secs(i + 1);
            changed
        })
        .collect();
    let events: Vec<_> = updates.iter().map(crate::testing::updated_event).collect();
    let results = futures_join_all(
        updates
            .iter()
            .zip(&events)
            .map(|(u, e)| repo.update_file(u, f.updated_at, e)),
    )
    .await;
    let wins = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(
        wins, 1,
        "of concurrent update_file calls from one updatedAt exactly one MUST win: {results:?}"
    );
    let stored = repo.get_file(&t, f.id).await.expect("get").expect("file");
    assert!(
        updates.contains(&stored),
        "the stored file MUST be one writer's whole file"
    );

    let mkey = format!("{}/dev/h/u9/race.bin", t.project);
    let mut upload = pending_upload(&t, &alice, &mkey, now);
    upload.multipart_id = Some("race-upload".into());
    repo.insert_upload(&upload).await.expect("insert");
    let (complete, abort) = tokio::join!(
        repo.transition_upload(
            &t,
            &mkey,
            UploadState::Pending,
            UploadState::Completing,
            None
        ),
        repo.transition_upload(&t, &mkey, UploadState::Pending, UploadState::Aborted, None),
    );
    let moved = [&complete, &abort]
        .iter()
        .filter(|r| matches!(r, Ok(true)))
        .count();
    assert_eq!(
        moved, 1,
        "of a completion racing an abort exactly one MUST move the upload: {complete:?} {abort:?}"
    );
}

/// Polls every future to completion concurrently (the kit brings no runtime).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    super::service::join_all(futures.collect()).await
}

/// Derived images (docs/api.md §9): recorded once per variant, at most `max`
/// per file, never for a file that is gone, and forgotten with their file,
/// their objects queued for deletion in the same transaction.
pub async fn derivatives_follow_their_file(repo: &dyn FileRepository) {
    use crate::ports::{Derivative, DerivativeAdded};
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let key = format!("{}/dev/h/d1/a.jpg", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let f = file(&t, &alice, &key, "a.jpg", Visibility::Public, now);
    super::register_plainly(repo, &f).await.expect("register");
    let derived = |n: u32| Derivative {
        variant: format!("{n}x{n}>webp"),
        key: format!("{}/dev/_derived/{}/{n}.webp", t.project, f.id),
        size: u64::from(n) * 10,
    };
    assert_eq!(
        repo.find_derivative(f.id, "1x1>webp").await.expect("find"),
        None
    );
    // The caller's intent: each key queued for deletion before its object is written.
    let intent = now.plus_secs(900);
    let margin = crate::ports::DERIVATIVE_RECORD_MARGIN_SECS;
    let far = intent.plus_secs(1);
    let queued = |key: String| async move {
        repo.due_object_deletions(far, 10_000)
            .await
            .expect("due")
            .contains(&key)
    };
    let queue = |key: String, due: Timestamp| async move {
        repo.enqueue_object_deletion(&key, due)
            .await
            .expect("queue");
    };
    let unqueue = |key: String| async move {
        repo.finish_object_deletion(&key).await.expect("finish");
    };
    assert_eq!(
        repo.add_derivative(f.id, &derived(1), 3, now)
            .await
            .expect("unqueued"),
        DerivativeAdded::Unclaimed,
        "add_derivative MUST refuse a key that is not queued for deletion"
    );
    queue(derived(1).key, now.plus_secs(margin)).await;
    assert_eq!(
        repo.add_derivative(f.id, &derived(1), 3, now)
            .await
            .expect("due soon"),
        DerivativeAdded::Unclaimed,
        "add_derivative MUST refuse a key whose deletion is due within the margin"
    );
    assert!(
        queued(derived(1).key).await,
        "a refused recording leaves the queue as it was"
    );
    unqueue(derived(1).key).await;
    for n in 1..=3 {
        queue(derived(n).key, intent).await;
        assert_eq!(
            repo.add_derivative(f.id, &derived(n), 3, now)
                .await
                .expect("add"),
            DerivativeAdded::Added
        );
        assert!(
            !queued(derived(n).key).await,
            "recording a derivative MUST take its key off the deletion queue"
        );
    }
    let again = Derivative {
        key: format!("{}/dev/_derived/{}/2-again.webp", t.project, f.id),
        ..derived(2)
    };
    queue(again.key.clone(), intent).await;
    assert_eq!(
        repo.find_derivative(f.id, "2x2>webp").await.expect("find"),
        Some(derived(2)),
        "a recorded derivative round-trips"
    );
    assert_eq!(
        repo.add_derivative(f.id, &again, 3, now)
            .await
            .expect("again"),
        DerivativeAdded::Exists,
        "a variant is recorded once"
    );
    assert_eq!(
        repo.find_derivative(f.id, "2x2>webp").await.expect("find"),
        Some(derived(2)),
        "the first recording stands"
    );
    assert!(
        queued(again.key.clone()).await,
        "a second attempt's key stays queued for deletion"
    );
    unqueue(again.key.clone()).await;
    queue(derived(4).key, intent).await;
    assert_eq!(
        repo.add_derivative(f.id, &derived(4), 3, now)
            .await
            .expect("fourth"),
        DerivativeAdded::LimitReached,
        "add_derivative MUST keep a file's derivatives at the maximum"
    );
    assert!(
        queued(derived(4).key).await,
        "a key not recorded stays queued for deletion"
    );
    unqueue(derived(4).key).await;
    assert_eq!(
        repo.find_derivative(f.id, "4x4>webp").await.expect("find"),
        None
    );
    let later = now.plus_secs(5);
    super::delete_as_stored(repo, &t, f.id, later).await;
    for n in 1..=3 {
        assert_eq!(
            repo.find_derivative(f.id, &format!("{n}x{n}>webp"))
                .await
                .expect("find"),
            None,
            "derivatives MUST go with their file"
        );
    }
    let due = repo
        .due_object_deletions(later.plus_secs(1), 10_000)
        .await
        .expect("due");
    for n in 1..=3 {
        assert!(
            due.contains(&derived(n).key),
            "a deleted file's derived images MUST be queued for deletion"
        );
        unqueue(derived(n).key).await;
    }
    repo.finish_object_deletion(&key).await.expect("finish");
    queue(derived(9).key, later.plus_secs(900)).await;
    assert_eq!(
        repo.add_derivative(f.id, &derived(9), 3, later)
            .await
            .expect("gone"),
        DerivativeAdded::FileGone,
        "add_derivative MUST refuse a file that is gone"
    );
}

/// Racing recordings of different variants of one file never pass its maximum.
pub async fn derivative_maximum_holds_under_races(repo: &dyn FileRepository) {
    use crate::ports::{Derivative, DerivativeAdded};
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let key = format!("{}/dev/h/d2/a.jpg", t.project);
    repo.insert_upload(&pending_upload(&t, &alice, &key, now))
        .await
        .expect("insert");
    let f = file(&t, &alice, &key, "a.jpg", Visibility::Public, now);
    super::register_plainly(repo, &f).await.expect("register");
    let adds = (0..12u32).map(|n| {
        let d = Derivative {
            variant: format!("v{n}"),
            key: format!("{}/dev/_derived/{}/v{n}", t.project, f.id),
            size: 1,
        };
        async move {
            repo.enqueue_object_deletion(&d.key, now.plus_secs(900))
                .await?;
            repo.add_derivative(f.id, &d, 5, now).await
        }
    });
    let results = futures_join_all(adds).await;
    let added = results
        .iter()
        .filter(|r| matches!(r, Ok(DerivativeAdded::Added)))
        .count();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(added, 5, "exactly the maximum is recorded: {results:?}");
    let counted = repo.derivative_count(f.id).await.expect("count");
    assert!(
        counted.is_none_or(|n| n == 5),
        "derivative_count, when known, MUST be what is recorded: {counted:?}"
    );
}

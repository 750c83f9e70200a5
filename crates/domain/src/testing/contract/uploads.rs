//! Checks of the upload records: recording and scoping, registration's claim and
//! atomicity, abandoned uploads.

use super::*;

pub async fn uploads_are_recorded_and_scoped(repo: &dyn FileRepository) {
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
            UploadState::Completed,
            None
        )
        .await
        .expect("cas"));
    assert!(
        !repo
            .transition_upload(
                &t,
                &multipart.key,
                UploadState::Pending,
                UploadState::Aborted,
                None
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
            UploadState::Aborted,
            None
        )
        .await
        .expect("cas"));
}

pub async fn registration_is_atomic_and_unique(repo: &dyn FileRepository) {
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
            UploadState::Completed,
            None
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
        &crate::quota::Quota::NONE,
        &crate::testing::registered_event(&file(
            &t,
            &alice,
            &claimed,
            "c.txt",
            Visibility::Private,
            now,
        )),
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
    let (ea, eb) = (
        crate::testing::registered_event(&a),
        crate::testing::registered_event(&b),
    );
    let (ra, rb) = tokio::join!(
        repo.register_file(&a, Some(&qa), &crate::quota::Quota::NONE, &ea),
        repo.register_file(&b, Some(&qb), &crate::quota::Quota::NONE, &eb)
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
        code(super::register_plainly(repo, &missing).await),
        Some(ErrorCode::UploadNotFound),
        "no upload, no file"
    );
    assert_eq!(
        repo.get_file(&t, missing.id).await.expect("get"),
        None,
        "nothing half-written"
    );
}

pub async fn abandoned_uploads(repo: &dyn FileRepository) {
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
        None,
    )
    .await
    .expect("cas");
    let registered = pending_upload(&t, &alice, &key("registered"), old);
    repo.insert_upload(&registered).await.expect("insert");
    repo.register_file(
        &file(&t, &alice, &registered.key, "r", Visibility::Private, old),
        None,
        &crate::quota::Quota::NONE,
        &crate::testing::registered_event(&file(
            &t,
            &alice,
            &registered.key,
            "r",
            Visibility::Private,
            old,
        )),
    )
    .await
    .expect("register");
    let aborted = pending_upload(&t, &alice, &key("aborted"), old);
    repo.insert_upload(&aborted).await.expect("insert");
    repo.transition_upload(
        &t,
        &aborted.key,
        UploadState::Pending,
        UploadState::Aborted,
        None,
    )
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
            repo.transition_upload(&t, &up.key, UploadState::Pending, state, None)
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
        None,
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

/// Uploads issued at once (which an adapter may write together): each is
/// recorded, and of two racing uploads with the same key exactly one is,
/// the other refused with `file/s3-key-already-exists`.
pub async fn uploads_issued_at_once_are_each_recorded(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let now = Timestamp::from_millis(T0);
    let keys: Vec<String> = (0..40)
        .map(|i| format!("{}/dev/h/many/{}.txt", t.project, i % 30))
        .collect();
    let uploads: Vec<_> = keys
        .iter()
        .map(|k| pending_upload(&t, &alice, k, now))
        .collect();
    let results =
        super::service::join_all(uploads.iter().map(|u| repo.insert_upload(u)).collect()).await;
    for (i, key) in keys.iter().enumerate().take(30) {
        let outcomes: Vec<_> = results
            .iter()
            .enumerate()
            .filter(|(j, _)| &keys[*j] == key)
            .map(|(j, r)| (j, code(r.clone())))
            .collect();
        let recorded = outcomes.iter().filter(|(_, c)| c.is_none()).count();
        assert_eq!(
            recorded, 1,
            "upload {i}: exactly one of its racing issues MUST be recorded: {outcomes:?}"
        );
        assert!(
            outcomes
                .iter()
                .all(|(_, c)| c.is_none() || *c == Some(ErrorCode::S3KeyAlreadyExists)),
            "upload {i}: the others are duplicates: {outcomes:?}"
        );
        assert_eq!(
            repo.find_upload(&t, key)
                .await
                .expect("find")
                .map(|u| u.key),
            Some(key.clone()),
            "upload {i} is recorded"
        );
    }
    // A burst far larger than any batch an adapter writes at once: each
    // still recorded.
    let many: Vec<_> = (0..5_000)
        .map(|i| {
            let key = format!("{}/dev/h/burst/{i}.txt", t.project);
            pending_upload(&t, &alice, &key, now)
        })
        .collect();
    let results =
        super::service::join_all(many.iter().map(|u| repo.insert_upload(u)).collect()).await;
    assert!(
        results.iter().all(Result::is_ok),
        "a burst of issues MUST all be recorded: {:?}",
        results.iter().find(|r| r.is_err())
    );
    for u in many.iter().step_by(499) {
        assert!(
            repo.find_upload(&t, &u.key).await.expect("find").is_some(),
            "{} is recorded",
            u.key
        );
    }
}

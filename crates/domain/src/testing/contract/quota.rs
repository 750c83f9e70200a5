//! Checks of usage and quotas (docs/api.md §11): the maintained counts follow
//! every registration, change and deletion, and a quota holds when
//! registrations race for the last bytes.

use super::*;
use crate::quota::{Limit, Quota, Usage};

/// Registers a file of `size` bytes for `owner` as `vis`.
async fn registered(
    repo: &dyn FileRepository,
    t: &crate::model::Tenant,
    owner: &Owner,
    name: &str,
    size: u64,
    quota: &Quota,
) -> crate::error::Result<File> {
    let now = Timestamp::from_millis(T0);
    let key = format!("{}/dev/h/{}/{name}", t.project, owner.id);
    repo.insert_upload(&pending_upload(t, owner, &key, now))
        .await
        .expect("insert upload");
    let mut f = file(t, owner, &key, name, Visibility::Private, now);
    f.size = size;
    repo.register_file(&f, None, quota, &crate::testing::registered_event(&f))
        .await
        .map(|()| f)
}

fn service() -> Owner {
    Owner {
        kind: OwnerType::Service,
        id: "key-1".into(),
    }
}

pub async fn usage_follows_registrations_changes_and_deletions(repo: &dyn FileRepository) {
    let (t, other) = (fresh_tenant(), fresh_tenant());
    let (alice, bob) = (user("alice"), user("bob"));
    let none = Quota::NONE;
    assert_eq!(
        repo.usage(&t, Some(&alice)).await.expect("usage"),
        Usage::default(),
        "usage MUST be zero before any file"
    );
    let a1 = registered(repo, &t, &alice, "a1", 10, &none)
        .await
        .expect("a1");
    let a2 = registered(repo, &t, &alice, "a2", 20, &none)
        .await
        .expect("a2");
    registered(repo, &t, &alice, "a3", 30, &none)
        .await
        .expect("a3");
    registered(repo, &t, &bob, "b1", 7, &none)
        .await
        .expect("b1");
    registered(repo, &t, &service(), "s1", 5, &none)
        .await
        .expect("s1");
    registered(repo, &other, &alice, "o1", 1000, &none)
        .await
        .expect("o1");
    let usage = |files, bytes| Usage { files, bytes };
    assert_eq!(
        repo.usage(&t, Some(&alice)).await.expect("usage"),
        usage(3, 60)
    );
    assert_eq!(
        repo.usage(&t, Some(&bob)).await.expect("usage"),
        usage(1, 7)
    );
    assert_eq!(
        repo.usage(&t, Some(&service())).await.expect("usage"),
        usage(1, 5)
    );
    assert_eq!(
        repo.usage(&t, None).await.expect("usage"),
        usage(5, 72),
        "the project's usage MUST add every owner's, the service principal's too, and no other tenant's"
    );
    // A change of visibility moves counts between rows, never the usage.
    let mut changed = a1.clone();
    changed.visibility = Visibility::Public;
    changed.updated_at = Timestamp::from_millis(T0 + 1);
    assert!(repo
        .update_file(
            &changed,
            a1.updated_at,
            &crate::testing::updated_event(&changed)
        )
        .await
        .expect("update"));
    assert_eq!(
        repo.usage(&t, Some(&alice)).await.expect("usage"),
        usage(3, 60)
    );
    // A deletion frees its bytes at once.
    super::delete_as_stored(repo, &t, a2.id, Timestamp::from_millis(T0 + 2)).await;
    assert_eq!(
        repo.usage(&t, Some(&alice)).await.expect("usage"),
        usage(2, 40),
        "a deletion MUST free its file and bytes at once"
    );
    assert_eq!(repo.usage(&t, None).await.expect("usage"), usage(4, 52));
    assert_eq!(
        repo.usage(&other, None).await.expect("usage"),
        usage(1, 1000)
    );
}

pub async fn quotas_hold_when_registrations_race(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let alice = user("alice");
    let quota = Quota {
        user: Limit {
            files: None,
            bytes: Some(100),
        },
        project: Limit {
            files: Some(12),
            bytes: None,
        },
    };
    registered(repo, &t, &alice, "held", 60, &quota)
        .await
        .expect("within quota");
    // Ten registrations of 10 bytes race for the last 40.
    let now = Timestamp::from_millis(T0);
    let mut racers = Vec::new();
    for i in 0..10 {
        let key = format!("{}/dev/h/alice/r{i}", t.project);
        repo.insert_upload(&pending_upload(&t, &alice, &key, now))
            .await
            .expect("insert upload");
        let mut f = file(&t, &alice, &key, "r", Visibility::Private, now);
        f.size = 10;
        racers.push(f);
    }
    // Open as many connections as racers first, so that the registrations
    // below run side by side rather than one after another on a pool that
    // is still growing.
    for _ in 0..3 {
        super::service::join_all((0..10).map(|_| repo.usage(&t, Some(&alice))).collect()).await;
    }
    let events: Vec<_> = racers
        .iter()
        .map(crate::testing::registered_event)
        .collect();
    let results = super::service::join_all(
        racers
            .iter()
            .zip(&events)
            .map(|(f, e)| repo.register_file(f, None, &quota, e))
            .collect(),
    )
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            assert_eq!(e.code(), ErrorCode::QuotaExceeded, "{e:#}");
            assert!(e.message().contains("user byte quota"), "{}", e.message());
        }
    }
    assert_eq!(
        won, 4,
        "exactly the last 40 bytes MUST be taken, never more"
    );
    assert_eq!(
        repo.usage(&t, Some(&alice)).await.expect("usage"),
        Usage {
            files: 5,
            bytes: 100
        }
    );
    for (f, r) in racers.iter().zip(&results) {
        if r.is_err() {
            assert_eq!(
                repo.find_upload(&t, &f.s3_key)
                    .await
                    .expect("find")
                    .map(|u| u.state),
                Some(UploadState::Pending),
                "a registration refused for quota MUST leave its upload as it was"
            );
        }
    }
    // The service principal has no user quota; it counts toward the project's
    // file quota (5 files of alice so far, limit 12).
    for i in 0..7 {
        registered(repo, &t, &service(), &format!("s{i}"), 1_000, &quota)
            .await
            .expect("the service principal has no user quota");
    }
    let e = registered(repo, &t, &service(), "s-over", 1, &quota)
        .await
        .expect_err("the project's file quota is full");
    assert_eq!(e.code(), ErrorCode::QuotaExceeded);
    assert!(
        e.message().contains("project file quota"),
        "{}",
        e.message()
    );
}

/// After a migration that adds the byte counts, with three files written
/// before it in project `p1`, environment `dev` (alice: 10 and 20 bytes, the
/// service principal `k1`: 5 bytes): usage MUST count them all.
pub async fn usage_backfilled(repo: &dyn FileRepository) {
    let tenant = crate::model::Tenant {
        project: crate::model::ProjectId::new("p1").expect("project"),
        env: crate::model::Environment::Dev,
    };
    assert_eq!(
        repo.usage(&tenant, Some(&user("alice")))
            .await
            .expect("usage"),
        Usage {
            files: 2,
            bytes: 30
        },
        "files written before the migration MUST be counted with their bytes"
    );
    assert_eq!(
        repo.usage(&tenant, None).await.expect("usage"),
        Usage {
            files: 3,
            bytes: 35
        }
    );
}

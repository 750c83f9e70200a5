//! Checks of listing: scopes, filters, every order, offset and cursor pages,
//! against a seeded tenant and a reference computed here.

use super::*;
use crate::model::Tenant;

/// Owner, name, visibility, shared with, MIME type, size.
type SeedRow<'a> = (&'a str, &'a str, Visibility, &'a [&'a str], &'a str, u64);

/// Seeds a tenant with a known set of files and returns it.
pub(super) async fn seed(repo: &dyn FileRepository) -> crate::model::Tenant {
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
        super::register_plainly(repo, &f).await.expect("register");
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
    super::register_plainly(repo, &f).await.expect("register");
    t
}

pub(super) fn visible_to(id: &str) -> Scope {
    Scope::VisibleTo {
        owner: user(id),
        user_id: Some(id.into()),
    }
}

pub(super) async fn names(
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

pub(super) fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort_unstable();
    v.into_iter().map(str::to_owned).collect()
}

/// Scopes, filters, every order, and totals that follow changes, on one
/// seeded tenant (the last step changes it, so it runs last).
pub async fn list_scope_filters_and_order(repo: &dyn FileRepository) {
    let t = seed(repo).await;
    list_scopes(repo, &t).await;
    list_filters(repo, &t).await;
    list_orders(repo, &t).await;
    list_totals_follow_changes(repo, &t).await;
}

/// Listing by name, ascending, one page of everything.
fn by_name() -> ListParams {
    ListParams {
        sort_by: SortBy::OriginalName,
        direction: SortDirection::Asc,
        limit: 100,
        ..ListParams::default()
    }
}

/// Who sees what: admins, users, the service principal, other tenants.
async fn list_scopes(repo: &dyn FileRepository, t: &Tenant) {
    let by_name = by_name();
    let (all, total) = names(repo, t, Scope::All, by_name.clone()).await;
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
    let (bob, total) = names(repo, t, visible_to("bob"), by_name.clone()).await;
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
    let (eve, _) = names(repo, t, visible_to("eve"), by_name.clone()).await;
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
    let (svc, _) = names(repo, t, svc_scope, by_name.clone()).await;
    assert!(svc.contains(&"service.bin".to_owned()) && !svc.contains(&"50%_off.txt".to_owned()));
    let (other, total) = names(repo, &fresh_tenant(), Scope::All, by_name.clone()).await;
    assert!(other.is_empty() && total == 0, "other tenants see nothing");

    // The same user ids shared with in another tenant: counted there only.
    let elsewhere = fresh_tenant();
    let key = format!("{}/dev/h/elsewhere/x", elsewhere.project);
    let at = Timestamp::from_millis(T0);
    repo.insert_upload(&pending_upload(&elsewhere, &user("zoe"), &key, at))
        .await
        .expect("insert");
    let mut f = file(
        &elsewhere,
        &user("zoe"),
        &key,
        "theirs.txt",
        Visibility::Shared,
        at,
    );
    f.shared_with = vec!["bob".into(), "eve".into()];
    super::register_plainly(repo, &f).await.expect("register");
    let (bob_again, total) = names(repo, t, visible_to("bob"), by_name.clone()).await;
    assert_eq!(
        (bob_again, total),
        (bob, 5),
        "a listing and its total MUST NOT count files shared with the caller in another tenant"
    );
    let (theirs, total) = names(repo, &elsewhere, visible_to("eve"), by_name.clone()).await;
    assert_eq!((theirs, total), (vec!["theirs.txt".to_owned()], 1));
}

/// Each filter alone, with its total.
async fn list_filters(repo: &dyn FileRepository, t: &Tenant) {
    let by_name = by_name();
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
        let (got, total) = names(repo, t, Scope::All, params.clone()).await;
        assert_eq!(got, want, "filter {params:?}");
        assert_eq!(total, want.len() as u64, "total of {params:?}");
    }
}

/// Every sort column in both directions, ties broken by id.
async fn list_orders(repo: &dyn FileRepository, t: &Tenant) {
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
}

/// Totals follow visibility changes and deletions (changes the tenant).
async fn list_totals_follow_changes(repo: &dyn FileRepository, t: &Tenant) {
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
        repo.update_file(
            &public_alpha,
            alpha.updated_at,
            &crate::testing::updated_event(&public_alpha)
        )
        .await
        .ok(),
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
        repo.update_file(
            &again,
            public_alpha.updated_at,
            &crate::testing::updated_event(&again)
        )
        .await
        .ok(),
        Some(true),
        "update again, same visibility"
    );
    let public_alpha = again;
    assert_eq!(total_for(visible_to("eve")).await.expect("list").total, 4);
    super::delete_as_stored(repo, t, beta.id, Timestamp::from_millis(T0)).await;
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
        repo.update_file(
            &private_again,
            public_alpha_at,
            &crate::testing::updated_event(&private_again)
        )
        .await
        .ok(),
        Some(true)
    );
    assert_eq!(total_for(visible_to("eve")).await.expect("list").total, 2);
    assert_eq!(
        total_for(visible_to("alice")).await.expect("list").total,
        4,
        "owners still count their own private files"
    );
}

pub async fn list_pagination_and_cursor(repo: &dyn FileRepository) {
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

/// A caller's listing (own files, public and protected files, shared files
/// naming them), read in every order by offset pages and by cursor pages, is
/// exactly the reference: the rows of docs/api.md §5 in order, ties broken by id,
/// whatever plan the adapter uses (one query or merged branches).
pub async fn caller_listings_in_every_order(repo: &dyn FileRepository) {
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
        super::register_plainly(repo, &f).await.expect("register");
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

/// A cursor of a listing that had no file shared with the caller
/// (`ListPage::shared_empty`, carried as `Cursor::shared_empty`) MUST NOT
/// hide a file shared with the caller afterwards: pages through it still
/// show files shared since, where they sort.
pub async fn shares_made_during_a_walk_still_show(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let add = |owner: &'static str, name: String, vis: Visibility, shared: Vec<String>, i: i64| {
        let t = t.clone();
        async move {
            let key = format!("{}/dev/h/walk{i}/x", t.project);
            let at = Timestamp::from_millis(T0 + i * 1000);
            repo.insert_upload(&pending_upload(&t, &user(owner), &key, at))
                .await
                .expect("insert");
            let mut f = file(&t, &user(owner), &key, &name, vis, at);
            f.shared_with = shared;
            super::register_plainly(repo, &f).await.expect("register");
        }
    };
    for i in 0..6 {
        add(
            "ann",
            format!("own-{i}"),
            Visibility::Private,
            Vec::new(),
            i,
        )
        .await;
        add(
            "zed",
            format!("closed-{i}"),
            Visibility::Private,
            Vec::new(),
            100 + i,
        )
        .await;
    }
    let params = ListParams {
        limit: 3,
        sort_by: SortBy::CreatedAt,
        direction: SortDirection::Asc,
        ..ListParams::default()
    };
    let list = |params: ListParams| {
        let query = ListQuery {
            tenant: t.clone(),
            scope: visible_to("ann"),
            params,
        };
        async move { repo.list_files(&query).await }
    };
    let first = list(params.clone()).await.expect("list");
    assert_eq!(first.items.len(), 3);
    let cursor = first
        .cursor_after_last(params.sort_by, params.direction)
        .expect("a row");
    // Shared with ann after the first page, sorting after the cursor.
    add(
        "zed",
        "shared-late".into(),
        Visibility::Shared,
        vec!["ann".into()],
        50,
    )
    .await;
    let next = list(ListParams {
        cursor: Some(cursor),
        limit: 10,
        ..params
    })
    .await
    .expect("list");
    let names: Vec<String> = next.items.into_iter().map(|f| f.original_name).collect();
    assert_eq!(
        names,
        ["own-3", "own-4", "own-5", "shared-late"],
        "a file shared with the caller after the first page MUST show on later pages"
    );
}

/// The part of a caller's total that is shared with them MUST follow every
/// change of share lists, visibility and deletion, whatever the filters; and
/// many such changes at once on files of one owner MUST all succeed (an
/// adapter that keeps counts takes their rows in an order that cannot
/// deadlock).
pub async fn shared_totals_follow_share_changes(repo: &dyn FileRepository) {
    let t = fresh_tenant();
    let mut stored = Vec::new();
    for i in 0..16_i64 {
        let owner = if i % 4 == 3 { "bob" } else { "ann" };
        let key = format!("{}/dev/h/shares{i}/x", t.project);
        let at = Timestamp::from_millis(T0 + i * 1000);
        repo.insert_upload(&pending_upload(&t, &user(owner), &key, at))
            .await
            .expect("insert");
        let (vis, shared): (_, &[&str]) = match i % 4 {
            0 => (Visibility::Shared, &["bob", "carol"]),
            1 => (Visibility::Shared, &["carol", "bob"]),
            2 => (Visibility::Public, &["bob"]),
            _ => (Visibility::Shared, &["bob", "dave"]),
        };
        let mut f = file(&t, &user(owner), &key, &format!("s{i}"), vis, at);
        f.shared_with = shared.iter().map(|s| s.to_string()).collect();
        super::register_plainly(repo, &f).await.expect("register");
        stored.push(f);
    }
    let check = |step: &'static str| {
        let t = t.clone();
        async move {
            let everything = repo
                .list_files(&ListQuery {
                    tenant: t.clone(),
                    scope: Scope::All,
                    params: ListParams {
                        limit: 100,
                        ..ListParams::default()
                    },
                })
                .await
                .expect("list");
            let filters: [(Option<Visibility>, Option<&str>); 4] = [
                (None, None),
                (Some(Visibility::Shared), None),
                (None, Some("ann")),
                (Some(Visibility::Shared), Some("bob")),
            ];
            let in_filters = |f: &File, visibility: Option<Visibility>, owner_id: Option<&str>| {
                visibility.is_none_or(|v| f.visibility == v)
                    && owner_id.is_none_or(|o| f.owner.id == o)
            };
            for (visibility, owner_id) in filters {
                let expected = everything
                    .items
                    .iter()
                    .filter(|f| in_filters(f, visibility, owner_id))
                    .count();
                let params = ListParams {
                    visibility,
                    owner_id: owner_id.map(str::to_owned),
                    limit: 1,
                    ..ListParams::default()
                };
                let (_, total) = names(repo, &t, Scope::All, params).await;
                assert_eq!(
                    total, expected as u64,
                    "{step}: every file, visibility {visibility:?}, owner {owner_id:?}"
                );
            }
            for who in ["ann", "bob", "carol", "dave", "erin"] {
                for (visibility, owner_id) in filters {
                    let expected = everything
                        .items
                        .iter()
                        .filter(|f| in_filters(f, visibility, owner_id))
                        .filter(|f| {
                            f.owner.id == who
                                || matches!(
                                    f.visibility,
                                    Visibility::Public | Visibility::Protected
                                )
                                || (f.visibility == Visibility::Shared
                                    && f.shared_with.iter().any(|u| u == who))
                        })
                        .count();
                    let params = ListParams {
                        visibility,
                        owner_id: owner_id.map(str::to_owned),
                        limit: 100,
                        ..ListParams::default()
                    };
                    let (names, total) = names(repo, &t, visible_to(who), params).await;
                    assert_eq!(
                        (names.len(), total),
                        (expected, expected as u64),
                        "{step}: total as {who} with visibility {visibility:?}, owner {owner_id:?}"
                    );
                }
            }
        }
    };
    check("as registered").await;
    let update = |before: &File, change: &(dyn Fn(&mut File) + Sync)| {
        let mut after = before.clone();
        change(&mut after);
        after.updated_at = before.updated_at.plus_secs(100);
        after
    };
    let mut write = async |i: usize, change: &(dyn Fn(&mut File) + Sync)| {
        let after = update(&stored[i], change);
        let event = crate::testing::updated_event(&after);
        assert_eq!(
            repo.update_file(&after, stored[i].updated_at, &event)
                .await
                .ok(),
            Some(true)
        );
        stored[i] = after;
    };
    write(0, &|f| f.shared_with = vec!["carol".into()]).await;
    check("a share taken back").await;
    write(1, &|f| f.visibility = Visibility::Private).await;
    check("a shared file made private").await;
    write(1, &|f| {
        f.visibility = Visibility::Shared;
        f.shared_with = vec!["dave".into(), "ann".into()];
    })
    .await;
    check("shared again, with its owner among them").await;
    write(2, &|f| f.visibility = Visibility::Shared).await;
    check("a public file with a share list made shared").await;
    super::delete_as_stored(repo, &t, stored[3].id, stored[3].updated_at).await;
    stored.remove(3);
    check("a shared file deleted").await;
    // Every remaining file of ann flips at once: shared ones become public,
    // the others shared with a reversed list.
    let flips: Vec<File> = stored
        .iter()
        .filter(|f| f.owner.id == "ann")
        .map(|f| {
            update(f, &|g| {
                if g.visibility == Visibility::Shared {
                    g.visibility = Visibility::Public;
                } else {
                    g.visibility = Visibility::Shared;
                    g.shared_with = vec!["dave".into(), "carol".into(), "bob".into()];
                }
            })
        })
        .collect();
    let events: Vec<_> = flips.iter().map(crate::testing::updated_event).collect();
    let before: Vec<Timestamp> = stored
        .iter()
        .filter(|f| f.owner.id == "ann")
        .map(|f| f.updated_at)
        .collect();
    let results = super::service::join_all(
        flips
            .iter()
            .zip(&events)
            .zip(&before)
            .map(|((f, e), at)| repo.update_file(f, *at, e))
            .collect(),
    )
    .await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(true))),
        "concurrent updates of different files MUST all succeed: {results:?}"
    );
    check("after concurrent flips").await;
}

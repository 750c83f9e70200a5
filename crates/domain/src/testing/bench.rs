//! The measurements of `cargo xtask bench-db`, written once against the
//! [`FileRepository`] port: each adapter's bench seeds its own database (bulk
//! SQL of its own) in the shapes described here, then runs these through the
//! real adapter and prints the rows. Usable for any adapter of the port.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::list::{Cursor, ListParams, ListQuery, Scope, SortBy, SortDirection};
use crate::model::{Environment, FileId, Owner, OwnerType, ProjectId, Tenant, Visibility};
use crate::ports::FileRepository;
use crate::quota::Quota;

/// Owners of the seeded files: `user-0` … `user-999`.
pub const USERS: u64 = 1000;

/// The tenants where one caller, `lonely` (3 files of their own, the first
/// three rows), sees few or all of the tenant's files: `(project,
/// visibility of everyone else's files, whether they are shared with
/// lonely, whether each has an owner of its own)` — the others' files
/// belong to [`USERS`] owners, or each to its own (avatars, say).
pub const CLIFFS: [(&str, &str, bool, bool); 4] = [
    ("privy", "private", false, false),
    ("opens", "public", false, false),
    ("sharing", "shared", true, false),
    ("avatars", "public", false, true),
];

/// The mixed tenant: `bench/dev`, files of [`USERS`] owners, visibility
/// cycling private, public, protected, shared (with two other users).
pub const MIXED: &str = "bench";

/// Samples per operation (fewer when they take over 10 s in all).
pub const RUNS: usize = 200;

/// Timestamp of the seeded rows: row `i` was created at `BASE_MS + i s`.
pub const BASE_MS: i64 = 1_700_000_000_000;

/// The report's rows: `| operation | p50 ms | p99 ms | runs |`.
#[derive(Debug, Default)]
pub struct Report {
    /// The table's rows, in the order measured.
    pub rows: Vec<String>,
}

impl Report {
    /// Times `f` ([`RUNS`] samples after up to 20 warm-up calls) and adds
    /// a row `name`.
    pub async fn measure<F, Fut>(&mut self, name: &str, mut f: F)
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = ()>,
    {
        let warm = Instant::now();
        for i in 0..20 {
            f(i).await;
            if warm.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        let mut samples = Vec::with_capacity(RUNS);
        let started = Instant::now();
        for i in 0..RUNS {
            let t = Instant::now();
            f(i).await;
            samples.push(t.elapsed());
            if started.elapsed() > Duration::from_secs(10) {
                break;
            }
        }
        let runs = samples.len();
        samples.sort_unstable();
        let at = |p: f64| {
            let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let (p50, p99) = (at(0.50), at(0.99));
        eprintln!("{name}: p50 {p50:.2} ms, p99 {p99:.2} ms ({runs} runs)");
        self.rows
            .push(format!("| {name} | {p50:.2} | {p99:.2} | {runs} |"));
    }

    /// The table, header included.
    pub fn table(&self) -> String {
        let mut out = String::from("| operation | p50 ms | p99 ms | runs |\n|---|---|---|---|\n");
        for r in &self.rows {
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

fn tenant(project: &str) -> Tenant {
    Tenant {
        project: ProjectId::new(project).unwrap_or_else(|e| panic!("project {project}: {e}")),
        env: Environment::Dev,
    }
}

fn caller(id: &str) -> Scope {
    Scope::VisibleTo {
        owner: Owner {
            kind: OwnerType::User,
            id: id.into(),
        },
        user_id: Some(id.into()),
    }
}

fn viewer(n: u64) -> Scope {
    caller(&format!("user-{n}"))
}

/// Lists of the [`MIXED`] tenant: a first page, a cursor page 5,000 rows
/// deep, an offset page, a search, an admin's first page.
pub async fn mixed_listings(repo: &dyn FileRepository, report: &mut Report) {
    let t = tenant(MIXED);
    let q = |scope: Scope, params: ListParams| ListQuery {
        tenant: t.clone(),
        scope,
        params,
    };
    report
        .measure(
            "first list page (20, createdAt desc, visibility scope)",
            |i| {
                let query = q(viewer(i as u64 % USERS), ListParams::default());
                async move {
                    repo.list_files(&query).await.expect("list");
                }
            },
        )
        .await;
    // A cursor 5,000 rows deep, found by walking.
    let mut cursor = None;
    let mut walked = 0;
    while walked < 5000 {
        let params = ListParams {
            limit: 100,
            cursor: cursor.clone(),
            ..ListParams::default()
        };
        let page = repo.list_files(&q(viewer(42), params)).await.expect("walk");
        if page.items.is_empty() {
            break;
        }
        walked += page.items.len();
        cursor = page
            .items
            .last()
            .map(|f| Cursor::after(f, SortBy::CreatedAt, SortDirection::Desc));
    }
    if let Some(cursor) = cursor {
        // As the service hands it out: the cursor carries the first page's total.
        let deep = Cursor {
            total: Some(1),
            ..cursor
        };
        report
            .measure("cursor page 5,000 rows deep", |_| {
                let query = q(
                    viewer(42),
                    ListParams {
                        cursor: Some(deep.clone()),
                        ..ListParams::default()
                    },
                );
                async move {
                    repo.list_files(&query).await.expect("list");
                }
            })
            .await;
    }
    report
        .measure("offset page 500 (rows 9,981-10,000)", |i| {
            let query = q(
                viewer(i as u64 % USERS),
                ListParams {
                    page: 500,
                    ..ListParams::default()
                },
            );
            async move {
                repo.list_files(&query).await.expect("list");
            }
        })
        .await;
    report
        .measure("list with search (substring of the name)", |i| {
            let query = q(
                viewer(i as u64 % USERS),
                ListParams {
                    search: Some(format!("{}7", i % 90 + 10)),
                    ..ListParams::default()
                },
            );
            async move {
                repo.list_files(&query).await.expect("list");
            }
        })
        .await;
    report
        .measure("first page, admin (all files)", |_| {
            let query = q(Scope::All, ListParams::default());
            async move {
                repo.list_files(&query).await.expect("list");
            }
        })
        .await;
}

/// The [`CLIFFS`] tenants of `files` files: `lonely`'s first page and the
/// page after it (by cursor), in every sort order.
pub async fn cliff_listings(repo: &dyn FileRepository, files: u64, report: &mut Report) {
    for (project, visibility, shared, distinct) in CLIFFS {
        let shape = match (shared, distinct) {
            (true, _) => format!("{files} files of others shared with the caller, 3 own"),
            (false, true) => format!("{files} {visibility} files of {files} other owners, 3 own"),
            (false, false) => format!("{files} {visibility} files of others, 3 own"),
        };
        for sort_by in [
            SortBy::CreatedAt,
            SortBy::UpdatedAt,
            SortBy::OriginalName,
            SortBy::Size,
            SortBy::MimeType,
        ] {
            let params = ListParams {
                sort_by,
                ..ListParams::default()
            };
            let query = ListQuery {
                tenant: tenant(project),
                scope: caller("lonely"),
                params: params.clone(),
            };
            let first = match repo.list_files(&query).await {
                Ok(first) => {
                    // What the caller sees: their 3 files, and all of the
                    // others' unless those are private.
                    let expected = if visibility == "private" {
                        3
                    } else {
                        files + 3
                    };
                    assert_eq!(
                        (first.total, first.items.len() as u64),
                        (expected, expected.min(20)),
                        "{shape}, sortBy {}: total and page size",
                        sort_by.as_str()
                    );
                    first
                }
                Err(e) => {
                    eprintln!("{shape}, sortBy {}: {e}", sort_by.as_str());
                    report.rows.push(format!(
                        "| {shape}: first page, sortBy {} | failed: {} | | |",
                        sort_by.as_str(),
                        e.code()
                    ));
                    continue;
                }
            };
            // As the service hands it out: the first page's total, and
            // what it found shared with the caller.
            let cursor = first.cursor_after_last(sort_by, SortDirection::Desc);
            for (label, cursor) in [("first page", None), ("cursor page", cursor)] {
                let query = ListQuery {
                    params: ListParams {
                        cursor,
                        ..params.clone()
                    },
                    ..query.clone()
                };
                report
                    .measure(
                        &format!("{shape}: {label}, sortBy {}", sort_by.as_str()),
                        |_| {
                            let query = query.clone();
                            async move {
                                // A timeout is measured as the time it took.
                                let _ = repo.list_files(&query).await;
                            }
                        },
                    )
                    .await;
            }
        }
    }
}

/// Reads of `ids` (files of the [`MIXED`] tenant) by id, and registrations
/// (an issued upload, then the file) into it.
pub async fn point_operations(repo: &dyn FileRepository, ids: &[FileId], report: &mut Report) {
    let t = tenant(MIXED);
    if !ids.is_empty() {
        report
            .measure("get by id", |i| {
                let (t, id) = (t.clone(), ids[i % ids.len()]);
                async move {
                    repo.get_file(&t, id).await.expect("get");
                }
            })
            .await;
    }
    let next = AtomicU64::new(0);
    report
        .measure("register (consume upload + insert file)", |i| {
            let t = t.clone();
            let n = next.fetch_add(1, Ordering::Relaxed);
            async move {
                let owner = Owner {
                    kind: OwnerType::User,
                    id: format!("user-{}", i as u64 % USERS),
                };
                let key = format!("{MIXED}/dev/h/reg-{n}/f");
                let now = crate::model::Timestamp::from_millis(BASE_MS + 2_000_000_000);
                let upload = super::pending_upload(&t, &owner, &key, now);
                repo.insert_upload(&upload).await.expect("upload");
                let file = super::file(&t, &owner, &key, "r.txt", Visibility::Private, now);
                let event = super::registered_event(&file);
                repo.register_file(&file, None, &Quota::NONE, &event)
                    .await
                    .expect("register");
            }
        })
        .await;
}

/// The whole benchmark on a seeded repository: [`mixed_listings`],
/// [`cliff_listings`], then [`point_operations`] on `ids`, in one report.
pub async fn run_all(repo: &dyn FileRepository, files: u64, ids: &[FileId]) -> Report {
    let mut report = Report::default();
    mixed_listings(repo, &mut report).await;
    cliff_listings(repo, files, &mut report).await;
    point_operations(repo, ids, &mut report).await;
    report
}

/// What the report says about the seed.
pub fn preface(files: u64, seed_secs: f64, adapter: &str) -> String {
    format!(
        "Seeded {files} files for {USERS} users (mixed visibility, a quarter shared with two \
         users), and four tenants of {files} files where the caller `lonely` owns 3 (others' \
         files all private, all public, or all shared with `lonely`, of {USERS} owners; or all \
         public, each of its own owner), in {seed_secs:.1} s.\n\
         Up to {RUNS} runs per operation (fewer when they take over 10 s in all) after up to 20 \
         warm-up runs, one client, through `{adapter}`.\n"
    )
}

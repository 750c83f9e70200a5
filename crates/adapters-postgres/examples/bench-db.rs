//! `cargo xtask bench-db`: seeds 1,000,000 files for 1,000 users in a fresh
//! PostgreSQL database and measures the repository's hot paths through the real
//! adapter. Prints a Markdown report (numbers and EXPLAIN plans) on stdout.
//!
//! Usage: bench-db <admin postgres url> [files]

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use stowage_adapters_postgres::{
    create_database, drop_database, migrate, PostgresConfig, PostgresRepository,
};
use stowage_domain::list::{Cursor, ListParams, ListQuery, Scope, SortBy, SortDirection};
use stowage_domain::model::{
    Environment, FileId, Owner, OwnerType, ProjectId, Tenant, Timestamp, Visibility,
};
use stowage_domain::ports::FileRepository;

const USERS: u64 = 1000;
/// `(project, visibility of others' files, shared with lonely)`.
const CLIFFS: [(&str, &str, bool); 3] = [
    ("privy", "private", false),
    ("opens", "public", false),
    ("sharing", "shared", true),
];
const RUNS: usize = 200;

fn percentile(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort_unstable();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

async fn measure<F, Fut>(name: &str, rows: &mut Vec<String>, mut f: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let warm = Instant::now();
    for i in 0..20 {
        f(i).await; // warm-up
        if warm.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    // RUNS samples, or as many as fit in 10 s for an operation that is slow
    // (the report says how many).
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
    let (p50, p99) = (
        percentile(&mut samples, 0.50),
        percentile(&mut samples, 0.99),
    );
    eprintln!("{name}: p50 {p50:.2} ms, p99 {p99:.2} ms ({runs} runs)");
    rows.push(format!("| {name} | {p50:.2} | {p99:.2} | {runs} |"));
}

fn viewer(n: u64) -> Scope {
    let id = format!("user-{n}");
    Scope::VisibleTo {
        owner: Owner {
            kind: OwnerType::User,
            id: id.clone(),
        },
        user_id: Some(id),
    }
}

async fn explain(conn: &mut AsyncPgConnection, title: &str, sql: &str, out: &mut Vec<String>) {
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    let lines: Vec<Line> =
        diesel::sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"))
            .load(conn)
            .await
            .unwrap_or_default();
    out.push(format!("### {title}\n\n```sql\n{sql}\n```\n\n```text"));
    out.extend(lines.into_iter().map(|l| l.line));
    out.push("```\n".into());
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let admin = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let files: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let name = format!("stowage_bench_{}", uuid::Uuid::new_v4().simple());
    create_database(&admin, &name)
        .await
        .expect("create database");
    let url = format!(
        "{}/{name}",
        admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin)
    );
    migrate(&url).await.expect("migrate");

    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    let seed_started = Instant::now();
    let base_ms: i64 = 1_700_000_000_000;
    // Tenants where a user sees few of the tenant's files (the shapes that
    // break a single `OR` query): `files` files of 1,000 other owners, all
    // private / all public / all shared with `lonely`, and 3 of `lonely`'s own.
    let cliffs: String = CLIFFS
        .iter()
        .map(|(project, visibility, shared)| {
            format!(
                "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, size, visibility, bucket,
                                    owner_type, owner_id, shared_with, metadata, created_at, updated_at)
                 SELECT gen_random_uuid()::text, '{project}', 'dev', '{project}/dev/h/' || i || '/f',
                        CASE WHEN i <= 3 THEN 'Mine-' ELSE 'File-' END || i || '.txt',
                        CASE WHEN i <= 3 THEN 'mine-' ELSE 'file-' END || i || '.txt',
                        (ARRAY['text/plain','image/png','application/pdf'])[1 + i % 3], 1 + i % 100000,
                        CASE WHEN i <= 3 THEN 'private' ELSE '{visibility}' END, 'files', 'user',
                        CASE WHEN i <= 3 THEN 'lonely' ELSE 'user-' || (i % {USERS}) END,
                        CASE WHEN i > 3 AND {shared} THEN ARRAY['lonely'] ELSE ARRAY[]::text[] END,
                        '{{}}'::jsonb, {base_ms} + i * 1000, {base_ms} + i * 1000
                 FROM generate_series(1, {files} + 3) AS i;"
            )
        })
        .collect();
    conn.batch_execute(&format!(
        "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, size, visibility, bucket,
                            owner_type, owner_id, shared_with, metadata, created_at, updated_at)
         SELECT gen_random_uuid()::text, 'bench', 'dev', 'bench/dev/h/' || i || '/f', 'File-' || i || '.txt',
                'file-' || i || '.txt', (ARRAY['text/plain','image/png','application/pdf'])[1 + i % 3],
                1 + i % 100000, (ARRAY['private','public','protected','shared'])[1 + i % 4], 'files', 'user',
                'user-' || (i % {USERS}),
                CASE WHEN i % 4 = 3 THEN ARRAY['user-' || ((i + 1) % {USERS}), 'user-' || ((i + 7) % {USERS})] ELSE ARRAY[]::text[] END,
                '{{}}'::jsonb, {base_ms} + i * 1000, {base_ms} + i * 1000
         FROM generate_series(1, {files}) AS i;
         {cliffs}
         INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n)
             SELECT project, env, visibility, owner_type, owner_id, count(*) FROM files
             GROUP BY project, env, visibility, owner_type, owner_id;
         ANALYZE files;
         ANALYZE file_counts;"
    ))
    .await
    .expect("seed");
    // A freshly bulk-loaded table has no visibility map: without a VACUUM the
    // first minutes of measurements race autovacuum and read heap pages that
    // index-only scans would skip later.
    for table in ["files", "file_counts"] {
        conn.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum");
    }
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded {files} files in {seed_secs:.1} s");

    let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
        .await
        .expect("pool");
    let tenant = Tenant {
        project: ProjectId::new("bench").expect("project"),
        env: Environment::Dev,
    };
    let q = |scope: Scope, params: ListParams| ListQuery {
        tenant: tenant.clone(),
        scope,
        params,
    };
    let mut rows = Vec::new();

    measure(
        "first list page (20, createdAt desc, visibility scope)",
        &mut rows,
        |i| {
            let query = q(viewer(i as u64 % USERS), ListParams::default());
            let repo = repo.clone();
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
        walked += page.items.len();
        cursor = page
            .items
            .last()
            .map(|f| Cursor::after(f, SortBy::CreatedAt, SortDirection::Desc));
    }
    // As the service hands it out: the cursor carries the first page's total.
    let deep = Cursor {
        total: Some(1),
        ..cursor.expect("cursor")
    };
    measure("cursor page 5,000 rows deep", &mut rows, |_| {
        let query = q(
            viewer(42),
            ListParams {
                cursor: Some(deep.clone()),
                ..ListParams::default()
            },
        );
        let repo = repo.clone();
        async move {
            repo.list_files(&query).await.expect("list");
        }
    })
    .await;
    measure("offset page 500 (rows 9,981-10,000)", &mut rows, |i| {
        let query = q(
            viewer(i as u64 % USERS),
            ListParams {
                page: 500,
                ..ListParams::default()
            },
        );
        let repo = repo.clone();
        async move {
            repo.list_files(&query).await.expect("list");
        }
    })
    .await;
    measure("list with search (substring of the name)", &mut rows, |i| {
        let query = q(
            viewer(i as u64 % USERS),
            ListParams {
                search: Some(format!("{}7", i % 90 + 10)),
                ..ListParams::default()
            },
        );
        let repo = repo.clone();
        async move {
            repo.list_files(&query).await.expect("list");
        }
    })
    .await;
    measure("first page, admin (all files)", &mut rows, |_| {
        let query = q(Scope::All, ListParams::default());
        let repo = repo.clone();
        async move {
            repo.list_files(&query).await.expect("list");
        }
    })
    .await;

    // The cliff tenants: `lonely` lists, in every order, the first page and
    // the page after it (by cursor).
    let lonely = Scope::VisibleTo {
        owner: Owner {
            kind: OwnerType::User,
            id: "lonely".into(),
        },
        user_id: Some("lonely".into()),
    };
    for (project, visibility, shared) in CLIFFS {
        let cliff = Tenant {
            project: ProjectId::new(project).expect("project"),
            env: Environment::Dev,
        };
        let shape = match (visibility, shared) {
            (_, true) => format!("{files} files of others shared with the caller, 3 own"),
            (v, false) => format!("{files} {v} files of others, 3 own"),
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
                tenant: cliff.clone(),
                scope: lonely.clone(),
                params: params.clone(),
            };
            let first = match repo.list_files(&query).await {
                Ok(first) => first,
                Err(e) => {
                    eprintln!("{shape}, sortBy {}: {e}", sort_by.as_str());
                    rows.push(format!(
                        "| {shape}: first page, sortBy {} | failed: {} | | |",
                        sort_by.as_str(),
                        e.code()
                    ));
                    continue;
                }
            };
            // As the service hands it out: the first page's total, and
            // whether it found no file shared with the caller.
            let cursor = first.items.last().map(|f| Cursor {
                total: Some(first.total),
                shared_empty: first.shared_empty,
                shared: first.shared_count,
                ..Cursor::after(f, sort_by, SortDirection::Desc)
            });
            for (label, cursor) in [("first page", None), ("cursor page", cursor)] {
                let query = ListQuery {
                    params: ListParams {
                        cursor,
                        ..params.clone()
                    },
                    ..query.clone()
                };
                measure(
                    &format!("{shape}: {label}, sortBy {}", sort_by.as_str()),
                    &mut rows,
                    |_| {
                        let (repo, query) = (repo.clone(), query.clone());
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

    #[derive(diesel::QueryableByName)]
    struct IdRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let ids: Vec<IdRow> =
        diesel::sql_query("SELECT id FROM files TABLESAMPLE SYSTEM (1) LIMIT 1000")
            .load(&mut conn)
            .await
            .expect("ids");
    let ids: Vec<FileId> = ids
        .into_iter()
        .filter_map(|r| FileId::parse(&r.id).ok())
        .collect();
    measure("get by id", &mut rows, |i| {
        let (repo, tenant, id) = (repo.clone(), tenant.clone(), ids[i % ids.len()]);
        async move {
            repo.get_file(&tenant, id).await.expect("get");
        }
    })
    .await;
    measure("register (consume upload + insert file)", &mut rows, |i| {
        let repo = repo.clone();
        let tenant = tenant.clone();
        async move {
            let owner = Owner {
                kind: OwnerType::User,
                id: format!("user-{}", i as u64 % USERS),
            };
            let key = format!("bench/dev/h/reg-{}/f", uuid::Uuid::new_v4().simple());
            let now = Timestamp::from_millis(base_ms + 2_000_000_000);
            let upload = stowage_domain::testing::pending_upload(&tenant, &owner, &key, now);
            repo.insert_upload(&upload).await.expect("upload");
            let file = stowage_domain::testing::file(
                &tenant,
                &owner,
                &key,
                "r.txt",
                Visibility::Private,
                now,
            );
            let event = stowage_domain::testing::registered_event(&file);
            repo.register_file(&file, None, &stowage_domain::quota::Quota::NONE, &event)
                .await
                .expect("register");
        }
    })
    .await;

    let mut plans = Vec::new();
    let scope = "project = 'bench' AND env = 'dev' AND ((owner_type = 'user' AND owner_id = 'user-42') \
                 OR visibility IN ('public', 'protected') OR (visibility = 'shared' AND shared_with @> ARRAY['user-42']))";
    explain(
        &mut conn,
        "First page",
        &format!("SELECT * FROM files WHERE {scope} ORDER BY created_at DESC, id DESC LIMIT 21"),
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Total of the first page",
        &format!("SELECT count(*) FROM files WHERE {scope}"),
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Cursor page",
        &format!("SELECT * FROM files WHERE {scope} AND created_at <= {0} AND (created_at < {0} OR (created_at = {0} AND id < 'ffff')) ORDER BY created_at DESC, id DESC LIMIT 21", base_ms + 500_000_000),
        &mut plans,
    )
    .await;
    explain(&mut conn, "Search", &format!("SELECT * FROM files WHERE {scope} AND name_folded LIKE '%123%' ESCAPE '\\' ORDER BY created_at DESC, id DESC LIMIT 21"), &mut plans).await;
    explain(
        &mut conn,
        "Caller branch: own files (tenant of 1 M private files of others)",
        "SELECT * FROM files WHERE project = 'privy' AND env = 'dev' AND owner_type = 'user' AND owner_id = 'lonely' \
         ORDER BY size DESC, id DESC LIMIT 21",
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Caller branch: public and protected files of others (tenant of 1 M private files of others)",
        "SELECT * FROM files WHERE project = 'privy' AND env = 'dev' AND files.visibility IN ('public', 'protected') \
         AND NOT (owner_type = 'user' AND owner_id = 'lonely') ORDER BY size DESC, id DESC LIMIT 21",
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Caller branch: files shared with the caller (tenant of 1 M files shared with them)",
        "SELECT * FROM files WHERE project = 'sharing' AND env = 'dev' AND visibility = 'shared' \
         AND shared_with @> ARRAY['lonely'] AND NOT (owner_type = 'user' AND owner_id = 'lonely') \
         ORDER BY created_at DESC, id DESC LIMIT 21",
        &mut plans,
    )
    .await;
    explain(&mut conn, "Get by id", "SELECT * FROM files WHERE project = 'bench' AND env = 'dev' AND id = '00000000-0000-0000-0000-000000000000'", &mut plans).await;

    drop(repo);
    drop(conn);
    let _ = drop_database(&admin, &name).await;

    println!("Seeded {files} files for {USERS} users (mixed visibility, a quarter shared with two users), and three tenants of {files} files where the caller `lonely` owns 3 (others' files all private, all public, or all shared with `lonely`), in {seed_secs:.1} s.");
    println!("Up to {RUNS} runs per operation (fewer when they take over 10 s in all) after up to 20 warm-up runs, one client, through `PostgresRepository`.\n");
    println!("| operation | p50 ms | p99 ms | runs |\n|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!("\n## EXPLAIN plans\n");
    for p in plans {
        println!("{p}");
    }
}

//! `cargo xtask bench-db`: seeds 1,000,000 files for 1,000 users in a fresh
//! PostgreSQL database and measures the repository's hot paths through the real
//! adapter. Prints a Markdown report (numbers and EXPLAIN plans) on stdout.
//!
//! Usage: bench-db <admin postgres url> [files]

use std::time::Instant;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use stowage_adapters_postgres::{
    create_database, drop_database, migrate, PostgresConfig, PostgresRepository,
};
use stowage_domain::model::FileId;
use stowage_domain::testing::bench::{self, BASE_MS, CLIFFS, MIXED, USERS};

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
    let base_ms = BASE_MS;
    // Tenants where a user sees few of the tenant's files (the shapes that
    // break a single `OR` query): `files` files of 1,000 other owners, all
    // private / all public / all shared with `lonely`, or all public each of
    // its own owner, and 3 of `lonely`'s own.
    let cliffs: String = CLIFFS
        .iter()
        .map(|(project, visibility, shared, distinct)| {
            let owners = if *distinct { files + 10 } else { USERS };
            format!(
                "INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, size, visibility, bucket,
                                    owner_type, owner_id, shared_with, metadata, created_at, updated_at)
                 SELECT gen_random_uuid()::text, '{project}', 'dev', '{project}/dev/h/' || i || '/f',
                        CASE WHEN i <= 3 THEN 'Mine-' ELSE 'File-' END || i || '.txt',
                        CASE WHEN i <= 3 THEN 'mine-' ELSE 'file-' END || i || '.txt',
                        (ARRAY['text/plain','image/png','application/pdf'])[1 + i % 3], 1 + i % 100000,
                        CASE WHEN i <= 3 THEN 'private' ELSE '{visibility}' END, 'files', 'user',
                        CASE WHEN i <= 3 THEN 'lonely' ELSE 'user-' || (i % {owners}) END,
                        CASE WHEN i > 3 AND {shared} THEN ARRAY['lonely'] ELSE ARRAY[]::text[] END,
                        '{{}}'::jsonb, {base_ms} + i * 1000, {base_ms} + i * 1000
                 FROM generate_series(1, {files} + 3) AS i;"
            )
        })
        .collect();
    // The counts the trigger keeps are summed once after the load rather
    // than per row (migration `list_counts`' own recount).
    conn.batch_execute(&format!(
        "ALTER TABLE files DISABLE TRIGGER USER;
         INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, size, visibility, bucket,
                            owner_type, owner_id, shared_with, metadata, created_at, updated_at)
         SELECT gen_random_uuid()::text, '{MIXED}', 'dev', '{MIXED}/dev/h/' || i || '/f', 'File-' || i || '.txt',
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
         SELECT stowage_recount_lists();
         ALTER TABLE files ENABLE TRIGGER USER;
         ANALYZE files;
         ANALYZE file_counts;
         ANALYZE share_counts;
         ANALYZE tenant_counts;"
    ))
    .await
    .expect("seed");
    // A freshly bulk-loaded table has no visibility map: without a VACUUM the
    // first minutes of measurements race autovacuum and read heap pages that
    // index-only scans would skip later.
    for table in ["files", "file_counts", "share_counts", "tenant_counts"] {
        conn.batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum");
    }
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded {files} files in {seed_secs:.1} s");

    let repo = PostgresRepository::connect(&PostgresConfig::new(&url))
        .await
        .expect("pool");

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
    let report = bench::run_all(&repo, files, &ids).await;

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
    let totals = |project: &str, user: &str| {
        format!(
            "SELECT (SELECT COALESCE(SUM(n), 0) FROM file_counts WHERE project = '{project}' AND env = 'dev' \
             AND owner_type = 'user' AND owner_id = '{user}' AND visibility IN ('private', 'shared')) \
             + (SELECT COALESCE(SUM(n), 0) FROM tenant_counts WHERE project = '{project}' AND env = 'dev' \
             AND visibility IN ('public', 'protected')), \
             (SELECT COALESCE(SUM(n), 0) FROM share_counts WHERE project = '{project}' AND env = 'dev' \
             AND user_id = '{user}' AND NOT (owner_type = 'user' AND owner_id = '{user}'))"
        )
    };
    explain(
        &mut conn,
        "Total of the first page (maintained counts)",
        &totals(MIXED, "user-42"),
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Total of the first page (tenant of 1 M files shared with the caller)",
        &totals("sharing", "lonely"),
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "Total of the first page (tenant of 1 M public files of 1 M owners)",
        &totals("avatars", "lonely"),
        &mut plans,
    )
    .await;
    explain(
        &mut conn,
        "The same total as summed before decision 57 (one file_counts row per owner)",
        "SELECT COALESCE(SUM(n), 0) FROM file_counts WHERE project = 'avatars' AND env = 'dev' \
         AND (visibility IN ('public', 'protected') OR (owner_type = 'user' AND owner_id = 'lonely'))",
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

    println!("{}", bench::preface(files, seed_secs, "PostgresRepository"));
    print!("{}", report.table());
    println!("\n## EXPLAIN plans\n");
    for p in plans {
        println!("{p}");
    }
}

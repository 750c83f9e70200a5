//! `cargo xtask bench-db --db sqlite`: seeds the shapes of the PostgreSQL
//! bench (`stowage_domain::testing::bench`) in a fresh SQLite file under a
//! temporary directory and measures the repository's hot paths through the
//! real adapter. Prints a Markdown report on stdout.
//!
//! Usage: bench-db [files per tenant]

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use stowage_adapters_sqlite::{migrate, SqliteConfig, SqliteRepository};
use stowage_domain::model::FileId;
use stowage_domain::testing::bench::{self, BASE_MS, CLIFFS, MIXED, USERS};

/// `INSERT INTO files … SELECT` of `files` rows numbered 1…`files` (a
/// recursive count: SQLite has no `generate_series` built in), ids
/// `{i}-{tenant no}-4000-8000-0`, with the given expressions of `i`.
fn seed_tenant(
    no: u32,
    project: &str,
    files: u64,
    name: &str,
    visibility: &str,
    owner: &str,
    shared: &str,
) -> String {
    format!(
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {files})
         INSERT INTO files (id, project, env, s3_key, original_name, name_folded, mime_type, size,
                            visibility, bucket, owner_type, owner_id, shared_with, metadata,
                            created_at, updated_at)
         SELECT printf('%08x-%04x-4000-8000-000000000000', i, {no}), '{project}', 'dev',
                '{project}/dev/h/' || i || '/f', {name}, lower({name}),
                CASE i % 3 WHEN 0 THEN 'text/plain' WHEN 1 THEN 'image/png' ELSE 'application/pdf' END,
                1 + i % 100000, {visibility}, 'files', 'user', {owner}, {shared}, '{{}}',
                {BASE_MS} + i * 1000, {BASE_MS} + i * 1000
         FROM s;"
    )
}

#[tokio::main]
async fn main() {
    let files: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bench.db");
    let path = path.to_str().expect("a UTF-8 path").to_owned();
    migrate(&path).expect("migrate");

    let seed_started = Instant::now();
    let mut conn = SqliteConnection::establish(&path).expect("open");
    let mut seed = String::from("PRAGMA synchronous = OFF; BEGIN;");
    seed.push_str(&seed_tenant(
        0,
        MIXED,
        files,
        "'File-' || i || '.txt'",
        "CASE i % 4 WHEN 1 THEN 'public' WHEN 2 THEN 'protected' WHEN 3 THEN 'shared' ELSE 'private' END",
        &format!("'user-' || (i % {USERS})"),
        &format!(
            "CASE WHEN i % 4 = 3 THEN json_array('user-' || ((i + 1) % {USERS}), \
             'user-' || ((i + 7) % {USERS})) ELSE '[]' END"
        ),
    ));
    for (no, (project, visibility, shared, distinct)) in (1..).zip(CLIFFS) {
        let owners = if distinct { files + 10 } else { USERS };
        seed.push_str(&seed_tenant(
            no,
            project,
            files + 3,
            "CASE WHEN i <= 3 THEN 'Mine-' ELSE 'File-' END || i || '.txt'",
            &format!("CASE WHEN i <= 3 THEN 'private' ELSE '{visibility}' END"),
            &format!("CASE WHEN i <= 3 THEN 'lonely' ELSE 'user-' || (i % {owners}) END"),
            if shared {
                "CASE WHEN i > 3 THEN '[\"lonely\"]' ELSE '[]' END"
            } else {
                "'[]'"
            },
        ));
    }
    // What the adapter writes beside each file: its shares (with the file's
    // tenant) and the per-owner counts (`share_counts` and `tenant_counts`
    // its triggers kept).
    seed.push_str(
        "INSERT INTO file_shares (file_id, user_id, project, env)
             SELECT f.id, j.value, f.project, f.env FROM files f, json_each(f.shared_with) j;
         INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n, bytes)
             SELECT project, env, visibility, owner_type, owner_id, count(*), sum(size) FROM files
             GROUP BY project, env, visibility, owner_type, owner_id;
         COMMIT;
         ANALYZE;
         PRAGMA synchronous = NORMAL;",
    );
    conn.batch_execute(&seed).expect("seed");
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded 5 × {files} files in {seed_secs:.1} s");

    #[derive(diesel::QueryableByName)]
    struct IdRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
    }
    let ids: Vec<IdRow> = diesel::sql_query(format!(
        "SELECT id FROM files WHERE project = '{MIXED}' ORDER BY random() LIMIT 1000"
    ))
    .load(&mut conn)
    .expect("ids");
    drop(conn);
    let ids: Vec<FileId> = ids
        .into_iter()
        .filter_map(|r| FileId::parse(&r.id).ok())
        .collect();

    let repo = SqliteRepository::connect(&SqliteConfig::new(&path))
        .await
        .expect("pool");
    let report = bench::run_all(&repo, files, &ids).await;

    println!("{}", bench::preface(files, seed_secs, "SqliteRepository"));
    print!("{}", report.table());
}

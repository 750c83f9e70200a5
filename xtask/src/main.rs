//! Project automation, run as `cargo xtask <command>`:
//! - `test`    every test of the workspace, against every backend it can reach:
//!   SQLite + disk always; PostgreSQL + disk and PostgreSQL + S3 (an in-process,
//!   signature-checking S3 server) when a PostgreSQL server is found
//!   (`$DATABASE_URL`, else 127.0.0.1:5432). With `STOWAGE_REQUIRE_POSTGRES=1` a
//!   missing PostgreSQL fails the run instead of being skipped.
//! - `migrate` apply migrations to `DATABASE_URL` (default: the embedded SQLite file).
//! - `bench-db [--db postgres|sqlite] [--files N]` seeds N files per tenant (default
//!   1,000,000 on PostgreSQL, 200,000 on SQLite) in a throwaway database,
//!   measures the list/get/register paths and writes the table (and
//!   PostgreSQL's EXPLAIN plans) into docs/performance.md.
//! - `fuzz-api [--max-examples N]` runs schemathesis (PyPI, in a venv under
//!   target/) against /openapi.json of a fresh embedded server with keys and a
//!   token; fails on any 5xx or any response that breaks the documented schema.
//! - `bench-http [--mode embedded|postgres] [--duration S] [--concurrency C]
//!   [--key-cache-ms MS] [--server-bin PATH] [--only TEXT]` load-tests a release server and
//!   writes requests/s, p50/p99, CPU and RSS into docs/performance.md
//!   (`--server-bin`: measure another build, report on stdout only; `--only`:
//!   the phases whose name contains TEXT, report on stdout only).
//! - `bench-webhooks [--mode embedded|postgres] [--duration S]` registration
//!   req/s on a fresh server without and with one webhook endpoint (a local
//!   receiver), and the delivery rate, into docs/performance.md.
//! - `bench-img [--duration S] [--concurrency C]` image transformations
//!   against Thumbor (installed from PyPI into target/thumbor-venv) on the
//!   same generated images, cold and warm, into docs/performance.md.
//! - `soak [--mode embedded|postgres] [--minutes N] [--concurrency C]` a mixed
//!   workload for N minutes (default 10, 64 connections); per minute: requests,
//!   errors, p99, RSS and open fds of the server, written into docs/performance.md.
//! - `bench-promote` times registration's move out of staging on S3 (1 MiB,
//!   100 MiB, 1 GiB against the in-process server; CopyObject and multipart
//!   copy) and writes the table into docs/performance.md.
//! - `audit [--db PATH]` `Cargo.lock` against the RustSec advisory database
//!   (cargo-audit installed into target/tools when missing; `--db` a checkout
//!   of the database, else cargo-audit fetches it); fails on any vulnerability
//!   not ignored with its reason in `.cargo/audit.toml`. Not part of `test`.
//! - `check-openapi [--write]` lints /openapi.json (redocly, recommended
//!   rules), regenerates the TypeScript types (openapi-typescript) against
//!   `clients/typescript/src/schema.d.ts` and compiles the client with
//!   `tsc --strict`; tools from npm under target/ts-tools.
//! - `browser-test` the TypeScript client against a fresh server in headless
//!   Chromium (also part of `test` when Chromium is installed).
//! - `s3-server --port P --dir D --bucket B --access-key K --secret-key S`
//!   an S3-compatible server (s3s-fs, SigV4-checking) in the foreground on 127.0.0.1.
#![forbid(unsafe_code)]

mod audit;
mod bench_http;
mod bench_img;
mod loadgen;
mod local_pg;
mod soak;
mod ts;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

/// Where cargo builds (`CARGO_TARGET_DIR`, else `target`).
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), Into::into)
}

/// The debug `stowage` that `start_stowage` builds.
fn debug_stowage() -> std::path::PathBuf {
    target_dir().join("debug/stowage")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// An admin URL of a reachable PostgreSQL server, if any.
fn find_postgres() -> Option<String> {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Some(url);
        }
    }
    let addr: SocketAddr = "127.0.0.1:5432".parse().ok()?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    Some("postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn test(extra: &[String]) -> Result<(), String> {
    let require = std::env::var("STOWAGE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    // $DATABASE_URL, else a server on 127.0.0.1:5432, else a throwaway cluster
    // under target/ (STOWAGE_LOCAL_POSTGRES=1 forces the latter).
    let force_local = std::env::var("STOWAGE_LOCAL_POSTGRES").is_ok_and(|v| v == "1");
    let mut cluster = None;
    let mut postgres = if force_local { None } else { find_postgres() };
    if postgres.is_none() {
        match local_pg::LocalCluster::start() {
            Ok(c) => {
                eprintln!("xtask: started a throwaway PostgreSQL cluster at {}", c.url);
                postgres = Some(c.url.clone());
                cluster = Some(c);
            }
            Err(e) => eprintln!("xtask: no throwaway PostgreSQL cluster: {e}"),
        }
    }
    if postgres.is_none() && require {
        return Err("STOWAGE_REQUIRE_POSTGRES=1 but no PostgreSQL server was found ($DATABASE_URL or 127.0.0.1:5432)".into());
    }
    let mut skipped = Vec::new();

    // 1. Unit tests, the contract kit against every adapter (PostgreSQL on its
    //    own throwaway database, S3 against an in-process server), and the
    //    end-to-end suite on SQLite + disk.
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features", "--locked"])
        .args(extra)
        .env_remove("DATABASE_URL");
    match &postgres {
        Some(url) => {
            cmd.env("STOWAGE_TEST_POSTGRES_URL", url);
        }
        None => skipped.push("PostgreSQL contract kit (crates/adapters-postgres)"),
    }
    run(cmd)?;

    // 2. The end-to-end suite again on PostgreSQL + disk and PostgreSQL + S3
    //    (a fresh database per server).
    match &postgres {
        Some(url) => {
            for s3 in [false, true] {
                let mut cmd = cargo();
                cmd.args([
                    "test",
                    "--locked",
                    "--all-features",
                    "-p",
                    "stowage-api-actix",
                    "--test",
                    "e2e",
                ])
                .args(extra)
                .env_remove("DATABASE_URL")
                .env("STOWAGE_E2E_POSTGRES_URL", url);
                if s3 {
                    cmd.env("STOWAGE_E2E_S3", "1");
                }
                run(cmd)?;
            }
        }
        None => {
            skipped.push("end-to-end suite on PostgreSQL + disk");
            skipped.push("end-to-end suite on PostgreSQL + S3");
        }
    }

    let no_postgres = !skipped.is_empty();

    // 3. The TypeScript client in headless Chromium, when there is one.
    ts::browser_tests_in_suite(&mut skipped)?;

    if skipped.is_empty() {
        eprintln!(
            "xtask: all suites ran (SQLite + disk, PostgreSQL + disk, PostgreSQL + S3, browser)"
        );
    } else {
        eprintln!("\n==================== SKIPPED SUITES ====================");
        for s in &skipped {
            eprintln!("  - {s}");
        }
        if no_postgres {
            eprintln!("  No PostgreSQL server found and none could be started under target/.");
            eprintln!("  Start one on 127.0.0.1:5432 (user postgres, trust auth), install PostgreSQL (initdb),");
            eprintln!("  or set DATABASE_URL=postgres://…; set STOWAGE_REQUIRE_POSTGRES=1 to make this an error.");
        }
        if ts::chromium().is_none() {
            eprintln!("  No Chromium: install Debian's `chromium` (and Node.js) to run the client's browser");
            eprintln!("  tests; set STOWAGE_REQUIRE_BROWSER=1 to make this an error.");
        }
        eprintln!("=========================================================\n");
    }
    drop(cluster);
    Ok(())
}

/// Replaces the text between `<!-- {name}:start -->` and `<!-- {name}:end -->`
/// in docs/performance.md (appending the section when it is missing).
fn write_report(name: &str, title: &str, body: &str) -> Result<(), String> {
    let path = std::path::Path::new("docs/performance.md");
    let doc = std::fs::read_to_string(path).unwrap_or_else(|_| "# Performance\n".into());
    let (start, end) = (
        format!("<!-- {name}:start -->"),
        format!("<!-- {name}:end -->"),
    );
    let section = format!("{start}\n{body}\n{end}");
    let updated = match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &doc[..a], &doc[b + end.len()..]),
        _ => format!("{}\n## {title}\n\n{section}\n", doc.trim_end()),
    };
    std::fs::write(path, updated).map_err(|e| format!("write {}: {e}", path.display()))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| format!("{} GiB", kb / 1024 / 1024))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem} RAM")
}

fn bench_db(args: &[String]) -> Result<(), String> {
    let db = flag(args, "--db").unwrap_or_else(|| "postgres".into());
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--locked", "-p"]);
    match db.as_str() {
        "postgres" => {
            let admin = find_postgres()
                .ok_or("bench-db needs PostgreSQL ($DATABASE_URL or 127.0.0.1:5432)")?;
            let files = flag(args, "--files").unwrap_or_else(|| "1000000".into());
            cmd.args(["stowage-adapters-postgres", "--example", "bench-db", "--"])
                .args([&admin, &files]);
            run_report(
                cmd,
                "bench-db",
                "Metadata queries at a million files (cargo xtask bench-db)",
                "PostgreSQL on the same machine.",
            )
        }
        "sqlite" => {
            // Seeding four tenants of a million rows in SQLite outlasts the
            // measurements many times over: the same shapes, a fifth the size.
            let files = flag(args, "--files").unwrap_or_else(|| "200000".into());
            cmd.args([
                "stowage-adapters-sqlite",
                "--example",
                "bench-db-sqlite",
                "--",
            ])
            .arg(&files);
            run_report(
                cmd,
                "bench-db-sqlite",
                "Metadata queries in SQLite (cargo xtask bench-db --db sqlite)",
                "SQLite (bundled, WAL) in a temporary directory on the same disk.",
            )
        }
        other => Err(format!(
            "bench-db --db {other}: expected postgres or sqlite"
        )),
    }
}

/// Runs a benchmark whose stdout is a Markdown report, shows it, and writes it
/// into docs/performance.md under `name`, after the machine and `preface`.
fn run_report(mut cmd: Command, name: &str, title: &str, preface: &str) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.output().map_err(|e| e.to_string())?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(format!("{name} failed"));
    }
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    let body = format!("Machine: {}. {preface}\n\n{report}", machine());
    write_report(name, title, &body)
}

fn bench_promote() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--release",
        "--locked",
        "-p",
        "stowage-adapters-s3",
        "--features",
        "test-server",
        "--example",
        "bench-promote",
        "--",
    ])
    .arg(std::path::Path::new("target").join("bench-promote"));
    run_report(
        cmd,
        "bench-promote",
        "Registration's move out of staging on S3 (cargo xtask bench-promote)",
        "The in-process S3 server (s3s-fs) on the same disk; a copy there is a file copy, \
         so these are an upper bound for a store that copies server-side without moving bytes over the network. \
         The disk store moves with one rename(2), independent of size.",
    )
}

/// Starts `stowage` (debug build) on a free port with a fresh data folder;
/// returns the child, its base URL and the demo secret key.
/// A fresh embedded `stowage serve` (debug build) and what its banner said.
struct Started {
    child: std::process::Child,
    base: String,
    pk: String,
    sk: String,
}

fn start_stowage(data: &std::path::Path) -> Result<Started, String> {
    use std::io::BufRead;
    let mut build = cargo();
    build.args([
        "build",
        "--locked",
        "-p",
        "stowage-api-actix",
        "--bin",
        "stowage",
    ]);
    run(build)?;
    let bin = debug_stowage();
    let mut child = Command::new(bin)
        .env("STOWAGE_DATA_DIR", data)
        .env("STOWAGE_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("start stowage: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut base, mut pk, mut sk) = (None, None, None);
    while base.is_none() || pk.is_none() || sk.is_none() {
        let line = lines
            .next()
            .ok_or("stowage exited early")?
            .map_err(|e| e.to_string())?;
        if let Some(url) = line.strip_prefix("Stowage listening on ") {
            base = Some(url.trim().to_owned());
        } else if let Some(k) = line.trim().strip_prefix("publishable:") {
            pk = Some(k.trim().to_owned());
        } else if let Some(k) = line.trim().strip_prefix("secret:") {
            sk = Some(k.trim().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(Started {
        child,
        base: base.unwrap_or_default(),
        pk: pk.unwrap_or_default(),
        sk: sk.unwrap_or_default(),
    })
}

/// Runs schemathesis (from PyPI, in a virtual environment under target/)
/// against /openapi.json of a fresh embedded server.
fn fuzz_api(args: &[String]) -> Result<(), String> {
    let examples = flag(args, "--max-examples").unwrap_or_else(|| "350".into());
    let venv = std::path::Path::new("target/fuzz-venv");
    let st = venv.join("bin/st");
    if !st.exists() {
        let mut mk = Command::new("python3");
        mk.args(["-m", "venv"]).arg(venv);
        run(mk)?;
        let mut pip = Command::new(venv.join("bin/pip"));
        pip.args(["install", "--quiet", "schemathesis==4.32.5"]);
        run(pip)?;
    }
    let data = std::env::temp_dir().join(format!("stowage-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let Started {
        mut child,
        base,
        sk,
        ..
    } = start_stowage(&data)?;
    let token = Command::new(debug_stowage())
        .env("STOWAGE_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .args(["token", "--sub", "fuzzer", "--role", "admin"])
        .output()
        .map_err(|e| e.to_string())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let mut cmd = Command::new(&st);
    cmd.args(["run", &format!("{base}/openapi.json")])
        .args(["-H", &format!("X-API-Key: {sk}"), "-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        .args(["--max-examples", &examples, "--phases", "examples,coverage,fuzzing", "--seed", "20261128"]);
    let result = run(cmd);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    result.map_err(|e| format!("schemathesis found problems: {e}"))
}

/// Builds the release `stowage` that load tests measure.
fn build_release_server() -> Result<(), String> {
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--locked",
        "-p",
        "stowage-api-actix",
        "--bin",
        "stowage",
    ]);
    run(build)
}

/// Runs `verb` again from a release build of xtask: a load generator must
/// not be the debug build `cargo xtask` runs (unoptimised, it would spend the
/// CPU the server is measured on).
fn rerun_as_release(verb: &str, args: &[String]) -> Result<(), String> {
    let mut build = cargo();
    build.args(["build", "--release", "--locked", "-p", "xtask"]);
    run(build)?;
    let mut again = Command::new("target/release/xtask");
    again.arg(verb).args(args);
    run(again)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn soak(args: &[String]) -> Result<(), String> {
    let mode = flag(args, "--mode").unwrap_or_else(|| "embedded".into());
    if mode != "embedded" && mode != "postgres" {
        return Err("--mode must be embedded or postgres".into());
    }
    let minutes: u64 = flag(args, "--minutes")
        .and_then(|m| m.parse().ok())
        .unwrap_or(10)
        .max(1);
    let concurrency: usize = flag(args, "--concurrency")
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    build_release_server()?;
    if cfg!(debug_assertions) {
        return rerun_as_release("soak", args);
    }
    let report = runtime()?.block_on(soak::run(
        &mode,
        minutes,
        concurrency,
        find_postgres(),
        "target/release/stowage",
    ))?;
    println!("{report}");
    write_report(
        &format!("soak-{mode}"),
        &format!("Soak, {mode} mode (cargo xtask soak --mode {mode} --minutes {minutes})"),
        &format!("Machine: {}.\n\n{report}", machine()),
    )
}

/// What the HTTP benchmarks share: `--mode`, `--duration`, `--concurrency`,
/// and `--server-bin` (another build, say the previous commit's, measured
/// the same way; its report goes to stdout only, not docs/performance.md).
struct BenchArgs {
    mode: String,
    duration: Duration,
    concurrency: usize,
    server_bin: String,
    custom_bin: bool,
}

/// The benchmark's arguments, the release server built (unless another is
/// given); `None` when this debug build re-ran `verb` as a release build.
fn bench_args(
    args: &[String],
    verb: &str,
    default_mode: &str,
    default_secs: u64,
) -> Result<Option<BenchArgs>, String> {
    let mode = flag(args, "--mode").unwrap_or_else(|| default_mode.into());
    if mode != "embedded" && mode != "postgres" {
        return Err("--mode must be embedded or postgres".into());
    }
    let duration = flag(args, "--duration")
        .and_then(|d| d.parse().ok())
        .unwrap_or(default_secs);
    let concurrency = flag(args, "--concurrency")
        .and_then(|c| c.parse().ok())
        .unwrap_or(32);
    let custom_bin = flag(args, "--server-bin");
    if custom_bin.is_none() {
        build_release_server()?;
    }
    if cfg!(debug_assertions) {
        return rerun_as_release(verb, args).map(|()| None);
    }
    Ok(Some(BenchArgs {
        mode,
        duration: Duration::from_secs(duration),
        concurrency,
        custom_bin: custom_bin.is_some(),
        server_bin: custom_bin.unwrap_or_else(|| "target/release/stowage".into()),
    }))
}

fn bench_http(args: &[String]) -> Result<(), String> {
    let key_cache_ms: Option<u64> = flag(args, "--key-cache-ms").and_then(|c| c.parse().ok());
    let only = flag(args, "--only");
    let Some(BenchArgs {
        mode,
        duration,
        concurrency,
        server_bin,
        custom_bin,
    }) = bench_args(args, "bench-http", "embedded", 20)?
    else {
        return Ok(());
    };
    let report = runtime()?.block_on(bench_http::run(
        &mode,
        duration,
        concurrency,
        find_postgres(),
        key_cache_ms,
        &server_bin,
        only.clone(),
    ))?;
    println!("{report}");
    if custom_bin || only.is_some() {
        return Ok(());
    }
    let body = format!("Machine: {}.\n\n{report}", machine());
    let (name, command) = match key_cache_ms {
        None => (mode.clone(), format!("--mode {mode}")),
        Some(ms) => (
            format!("{mode}-key-cache-{ms}ms"),
            format!("--mode {mode} --key-cache-ms {ms}"),
        ),
    };
    write_report(
        &format!("bench-http-{name}"),
        &format!("HTTP throughput, {name} (cargo xtask bench-http {command})"),
        &body,
    )
}

fn bench_webhooks(args: &[String]) -> Result<(), String> {
    let Some(BenchArgs {
        mode,
        duration,
        concurrency,
        server_bin,
        custom_bin,
    }) = bench_args(args, "bench-webhooks", "postgres", 10)?
    else {
        return Ok(());
    };
    let report = runtime()?.block_on(bench_http::run_webhooks(
        &mode,
        duration,
        concurrency,
        find_postgres(),
        &server_bin,
    ))?;
    println!("{report}");
    if custom_bin {
        return Ok(());
    }
    write_report(
        &format!("bench-webhooks-{mode}"),
        &format!("Registration with and without a webhook endpoint, {mode} mode (cargo xtask bench-webhooks --mode {mode})"),
        &format!("Machine: {}.\n\n{report}", machine()),
    )
}

fn bench_img(args: &[String]) -> Result<(), String> {
    let Some(BenchArgs {
        duration,
        concurrency,
        server_bin,
        custom_bin,
        ..
    }) = bench_args(args, "bench-img", "embedded", 10)?
    else {
        return Ok(());
    };
    // Four connections unless told: twice the workers of this 2-core box.
    let concurrency = if flag(args, "--concurrency").is_some() {
        concurrency
    } else {
        4
    };
    let report = runtime()?.block_on(bench_img::run(duration, concurrency, &server_bin))?;
    println!("{report}");
    if custom_bin {
        return Ok(());
    }
    write_report(
        "bench-img",
        "Image transformations against Thumbor (cargo xtask bench-img)",
        &format!("Machine: {}.\n\n{report}", machine()),
    )
}

fn migrate() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "stowage-api-actix",
        "--bin",
        "stowage",
        "--",
        "migrate",
    ]);
    run(cmd)
}

/// `--name value` from the arguments.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn s3_server(args: &[String]) -> Result<(), String> {
    let need = |name: &str| flag(args, name).ok_or_else(|| format!("missing {name}"));
    let port: u16 = need("--port")?
        .parse()
        .map_err(|_| "--port must be a number".to_owned())?;
    let dir = std::path::PathBuf::from(need("--dir")?);
    let bucket = need("--bucket")?;
    let (access, secret) = (need("--access-key")?, need("--secret-key")?);
    stowage_adapters_s3::test_server::create_bucket(&dir, &bucket)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = stowage_adapters_s3::test_server::start(&dir, addr, &access, &secret).await?;
        println!(
            "S3 server on {} (bucket {bucket}, data in {}); Ctrl-C stops it",
            server.endpoint(),
            dir.display()
        );
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        drop(server);
        Ok(())
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("migrate") => migrate(),
        Some("s3-server") => s3_server(&args[1..]),
        Some("bench-db") => bench_db(&args[1..]),
        Some("fuzz-api") => fuzz_api(&args[1..]),
        Some("bench-http") => bench_http(&args[1..]),
        Some("bench-webhooks") => bench_webhooks(&args[1..]),
        Some("bench-img") => bench_img(&args[1..]),
        Some("bench-promote") => bench_promote(),
        Some("soak") => soak(&args[1..]),
        Some("audit") => audit::audit(&args[1..]),
        Some("check-openapi") => ts::check_openapi(&args[1..]),
        Some("browser-test") => ts::browser_test(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args…] | migrate | bench-db [--db postgres|sqlite] [--files N] | fuzz-api [--max-examples N] | bench-http [--mode embedded|postgres] [--duration S] [--concurrency C] [--only TEXT] | bench-webhooks [--mode embedded|postgres] [--duration S] | bench-img [--duration S] [--concurrency C] | bench-promote | soak [--mode embedded|postgres] [--minutes N] [--concurrency C] | audit [--db PATH] | check-openapi [--write] | browser-test | \
                 s3-server --port P --dir D --bucket B --access-key K --secret-key S>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

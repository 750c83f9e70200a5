//! Project automation, run as `cargo xtask <command>`:
//! - `test`    every test of the workspace, against every backend it can reach:
//!   SQLite + disk always; PostgreSQL + disk and PostgreSQL + S3 (an in-process,
//!   signature-checking S3 server) when a PostgreSQL server is found
//!   (`$DATABASE_URL`, else 127.0.0.1:5432). With `STOWAGE_REQUIRE_POSTGRES=1` a
//!   missing PostgreSQL fails the run instead of being skipped.
//! - `migrate` apply migrations to `DATABASE_URL` (default: the embedded SQLite file).
//! - `s3-server --port P --dir D --bucket B --access-key K --secret-key S`
//!   an S3-compatible server (s3s-fs, SigV4-checking) in the foreground on 127.0.0.1.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitCode};
use std::time::Duration;

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
    let postgres = find_postgres();
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

    if skipped.is_empty() {
        eprintln!("xtask: all suites ran (SQLite + disk, PostgreSQL + disk, PostgreSQL + S3)");
    } else {
        eprintln!("\n==================== SKIPPED SUITES ====================");
        for s in &skipped {
            eprintln!("  - {s}");
        }
        eprintln!(
            "  No PostgreSQL server found. Start one on 127.0.0.1:5432 (user postgres, trust auth)"
        );
        eprintln!("  or set DATABASE_URL=postgres://…; set STOWAGE_REQUIRE_POSTGRES=1 to make this an error.");
        eprintln!("=========================================================\n");
    }
    Ok(())
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
        _ => {
            eprintln!(
                "usage: cargo xtask <test [cargo test args…] | migrate | \
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

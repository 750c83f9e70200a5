//! Project automation, run as `cargo xtask <command>`:
//! - `test`    every test of the workspace, against every backend it can reach:
//!   SQLite + disk always; PostgreSQL + disk when a server is found
//!   (`$DATABASE_URL`, else 127.0.0.1:5432). With `STOWAGE_REQUIRE_POSTGRES=1`
//!   a missing PostgreSQL fails the run instead of being skipped.
//! - `migrate` apply migrations to `DATABASE_URL` (default: the embedded SQLite file).

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
    //    own throwaway database), and the end-to-end suite on SQLite + disk.
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

    // 2. The end-to-end suite again, on PostgreSQL + disk (a fresh database per server).
    match &postgres {
        Some(url) => {
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
            run(cmd)?;
        }
        None => skipped.push("end-to-end suite on PostgreSQL + disk"),
    }

    if skipped.is_empty() {
        eprintln!("xtask: all suites ran (SQLite + disk, PostgreSQL + disk)");
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("migrate") => migrate(),
        _ => {
            eprintln!("usage: cargo xtask <test [cargo test args…] | migrate>");
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

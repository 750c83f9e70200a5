//! Project automation, run as `cargo xtask <command>`:
//! - `test`    every test of the workspace, with the features they need;
//! - `migrate` apply migrations to `DATABASE_URL` (default: the embedded SQLite file).

use std::process::{Command, ExitCode};

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

fn test(extra: &[String]) -> Result<(), String> {
    // Unit tests, the contract kit against every adapter, and the end-to-end
    // suite (which Cargo links against the freshly built `stowage` binary).
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--all-features", "--locked"])
        .args(extra);
    run(cmd)
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

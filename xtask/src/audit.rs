//! `cargo xtask audit [--db PATH]`: `Cargo.lock` against the RustSec advisory
//! database. Installs `cargo-audit` from crates.io into `target/tools` when
//! missing; reads the database from `--db PATH` (a checkout, no network) or
//! lets cargo-audit fetch it where the network allows. Any vulnerability not
//! ignored, with its reason, in `.cargo/audit.toml` fails the run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, run};

/// The cargo-audit release this project is checked with.
const CARGO_AUDIT_VERSION: &str = "0.22.2";

pub fn audit(args: &[String]) -> Result<(), String> {
    let mut db: Option<PathBuf> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--db" => {
                let path = rest.next().ok_or("--db needs a path")?;
                db = Some(PathBuf::from(path));
            }
            other => return Err(format!("audit: unknown argument `{other}`")),
        }
    }
    let tool = install()?;
    let mut cmd = Command::new(&tool);
    cmd.args(["audit", "--file", "Cargo.lock"]);
    match &db {
        Some(path) => {
            if !path.join("crates").is_dir() {
                return Err(format!(
                    "{} is not an advisory database checkout (no crates/ folder)",
                    path.display()
                ));
            }
            cmd.arg("--db").arg(path).arg("--no-fetch");
        }
        None => {
            eprintln!(
                "xtask: no --db given: cargo-audit fetches the advisory database \
                 (where the network does not allow it, pass --db PATH to a checkout)"
            );
        }
    }
    run(cmd).map_err(|e| {
        format!("{e}\n(a vulnerability that is truly unreachable goes into .cargo/audit.toml with its reason, and into docs/decisions.md)")
    })
}

/// `target/tools/bin/cargo-audit`, installed at the pinned version when absent.
fn install() -> Result<PathBuf, String> {
    let root = Path::new("target/tools");
    let tool = root.join("bin/cargo-audit");
    let pinned = Command::new(&tool)
        .args(["audit", "--version"])
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_AUDIT_VERSION));
    if !pinned {
        eprintln!("xtask: installing cargo-audit {CARGO_AUDIT_VERSION} into target/tools (a few minutes, once)");
        let mut cmd = cargo();
        cmd.args([
            "install",
            "cargo-audit",
            "--locked",
            "--no-default-features",
            "--version",
            &format!("={CARGO_AUDIT_VERSION}"),
            "--root",
        ])
        .arg(root);
        run(cmd)?;
    }
    Ok(tool)
}

//! The OpenAPI document and the TypeScript client (`clients/typescript`):
//! - `check-openapi [--write]`: lints `/openapi.json` with redocly's
//!   recommended rules, generates TypeScript types with openapi-typescript
//!   (they must equal `clients/typescript/src/schema.d.ts`; `--write` updates
//!   it) and compiles the client with `tsc --strict`.
//! - `browser-test`: the client against a fresh server in headless Chromium.
//!
//! The tools come from npm at the versions of the client's `package-lock.json`,
//! installed once under `target/ts-tools` (`npm ci`: the network is needed the
//! first time only).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run, start_stowage};

const CLIENT: &str = "clients/typescript";
const TOOLS: &str = "target/ts-tools";
const BUILT: &str = "target/ts-client";

/// `npm ci` of the client's lock file into `target/ts-tools`, unless the
/// installed lock is the same.
fn tools() -> Result<PathBuf, String> {
    let tools = Path::new(TOOLS);
    let lock = std::fs::read(Path::new(CLIENT).join("package-lock.json"))
        .map_err(|e| format!("read {CLIENT}/package-lock.json: {e}"))?;
    let installed = std::fs::read(tools.join("package-lock.json")).ok();
    if installed.as_deref() != Some(lock.as_slice()) || !tools.join("node_modules").is_dir() {
        std::fs::create_dir_all(tools).map_err(|e| e.to_string())?;
        for f in ["package.json", "package-lock.json"] {
            std::fs::copy(Path::new(CLIENT).join(f), tools.join(f))
                .map_err(|e| format!("copy {f}: {e}"))?;
        }
        eprintln!("xtask: installing the TypeScript tools from npm into {TOOLS}");
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(tools);
        run(npm).map_err(|e| format!("{e} (is Node.js with npm installed?)"))?;
    }
    Ok(tools.join("node_modules/.bin"))
}

/// Compiles the client (`tsc --strict`, the package's tsconfig) into
/// `target/ts-client`.
fn build_client(bin: &Path) -> Result<(), String> {
    let mut tsc = Command::new(bin.join("tsc"));
    tsc.args(["-p", CLIENT, "--strict", "--outDir", BUILT]);
    run(tsc)
}

/// A fresh embedded server, its base URL, publishable key and a user token.
struct Server {
    child: std::process::Child,
    base: String,
    pk: String,
    token: String,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn server(name: &str) -> Result<Server, String> {
    let data = std::env::temp_dir().join(format!("stowage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let started = start_stowage(&data)?;
    let out = Command::new(crate::debug_stowage())
        .env("STOWAGE_DATA_DIR", &data)
        .env_remove("DATABASE_URL")
        .args(["token", "--sub", "browser-user"])
        .output()
        .map_err(|e| format!("stowage token: {e}"))?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if token.is_empty() {
        return Err("stowage token printed nothing".into());
    }
    Ok(Server {
        child: started.child,
        base: started.base,
        pk: started.pk,
        token,
        data,
    })
}

fn fetch_text(url: &str) -> Result<String, String> {
    crate::runtime()?.block_on(async {
        reqwest::get(url)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    })
}

pub fn check_openapi(args: &[String]) -> Result<(), String> {
    let write = args.iter().any(|a| a == "--write");
    let bin = tools()?;
    let server = server("openapi")?;
    let doc = fetch_text(&format!("{}/openapi.json", server.base))?;
    drop(server);
    let doc_path = Path::new(TOOLS).join("openapi.json");
    std::fs::write(&doc_path, doc).map_err(|e| e.to_string())?;

    let mut lint = Command::new(bin.join("redocly"));
    lint.args(["lint", "--format=stylish", "--max-problems=100"])
        .arg(&doc_path)
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true");
    run(lint).map_err(|e| format!("redocly lint: {e}"))?;

    let generated = Path::new(TOOLS).join("schema.d.ts");
    let mut gen = Command::new(bin.join("openapi-typescript"));
    gen.arg(&doc_path).arg("-o").arg(&generated);
    run(gen)?;
    let committed = Path::new(CLIENT).join("src/schema.d.ts");
    let new = std::fs::read_to_string(&generated).map_err(|e| e.to_string())?;
    let old = std::fs::read_to_string(&committed).unwrap_or_default();
    if new != old {
        if write {
            std::fs::write(&committed, new).map_err(|e| e.to_string())?;
            eprintln!("xtask: updated {}", committed.display());
        } else {
            return Err(format!(
                "{} is not what /openapi.json generates; run `cargo xtask check-openapi --write` and commit it",
                committed.display()
            ));
        }
    }
    build_client(&bin)?;
    eprintln!("xtask: /openapi.json lints clean; the generated types and the client compile with --strict");
    Ok(())
}

/// Chromium from `STOWAGE_CHROMIUM` or the PATH (Debian's `chromium`).
pub fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("STOWAGE_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

pub fn browser_test(_args: &[String]) -> Result<(), String> {
    let chromium = chromium()
        .ok_or("no Chromium found (install Debian's `chromium`, or set STOWAGE_CHROMIUM)")?;
    let bin = tools()?;
    build_client(&bin)?;
    let script = Path::new(TOOLS).join("browser.mjs");
    std::fs::copy(Path::new(CLIENT).join("test/browser.mjs"), &script)
        .map_err(|e| format!("copy browser.mjs: {e}"))?;
    let server = server("browser")?;
    let built = std::fs::canonicalize(BUILT).map_err(|e| e.to_string())?;
    let mut node = Command::new("node");
    node.arg(&script)
        .arg(built)
        .env("STOWAGE_URL", &server.base)
        .env("STOWAGE_PK", &server.pk)
        .env("STOWAGE_TOKEN", &server.token)
        .env("CHROMIUM", chromium);
    let result = run(node);
    drop(server);
    result.map_err(|e| format!("browser tests: {e}"))
}

/// Part of `cargo xtask test`: the browser tests when Chromium is there,
/// else a loud skip (an error with `STOWAGE_REQUIRE_BROWSER=1`).
pub fn browser_tests_in_suite(skipped: &mut Vec<&'static str>) -> Result<(), String> {
    if chromium().is_none() {
        if std::env::var("STOWAGE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            return Err("STOWAGE_REQUIRE_BROWSER=1 but no Chromium was found".into());
        }
        skipped.push("TypeScript client in headless Chromium (no `chromium` on PATH)");
        return Ok(());
    }
    browser_test(&[])
}

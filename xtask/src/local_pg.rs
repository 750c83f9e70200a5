//! A throwaway PostgreSQL cluster under `target/` (initdb + pg_ctl), for
//! machines with PostgreSQL installed but no server running. As root, the
//! cluster runs as the unprivileged `postgres` user (PostgreSQL refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster; stopped on drop.
pub struct LocalCluster {
    dir: PathBuf,
    bin: PathBuf,
    as_user: Option<String>,
    /// Admin URL.
    pub url: String,
}

fn find_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn command(bin: &Path, tool: &str, as_user: &Option<String>) -> Command {
    match as_user {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(bin.join(tool));
            c
        }
        None => Command::new(bin.join(tool)),
    }
}

impl LocalCluster {
    /// Creates and starts a cluster in `target/pg-cluster` on a free port.
    ///
    /// # Errors
    /// A message saying what is missing or failed.
    pub fn start() -> Result<Self, String> {
        let bin = find_bin().ok_or("no initdb/pg_ctl under /usr/lib/postgresql")?;
        let dir = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join("target/pg-cluster");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let as_user = if is_root() {
            Some("postgres".to_owned())
        } else {
            None
        };
        if let Some(user) = &as_user {
            let ok = Command::new("chown")
                .args(["-R", &format!("{user}:")])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err(format!("cannot hand {} to user {user}", dir.display()));
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let data = dir.join("data");
        let init = command(&bin, "initdb", &as_user)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !init.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&init.stderr)
            ));
        }
        let start = command(&bin, "pg_ctl", &as_user)
            .arg("-D")
            .arg(&data)
            .args([
                "-o",
                &format!(
                    "-p {port} -c listen_addresses=127.0.0.1 -k {}",
                    dir.display()
                ),
                "-l",
            ])
            .arg(dir.join("server.log"))
            .args(["-w", "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if !start.status.success() {
            return Err(format!(
                "pg_ctl start failed: {}",
                String::from_utf8_lossy(&start.stderr)
            ));
        }
        Ok(Self {
            dir,
            bin,
            as_user,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        })
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = command(&self.bin, "pg_ctl", &self.as_user)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

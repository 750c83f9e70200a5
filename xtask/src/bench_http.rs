//! `cargo xtask bench-http [--mode embedded|postgres] [--duration S] [--concurrency C]`:
//! starts a release `stowage` with fresh state, seeds files over many users,
//! drives each operation with C concurrent connections for S seconds, and
//! reports requests/s, p50, p99, server CPU and RSS into docs/performance.md.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper1::Method;
use serde_json::{json, Value};

use crate::loadgen::{Conn, Req};

pub(crate) const USERS: usize = 100;
const SEED_FILES: usize = 3000;
/// The registration phase: `--only` never leaves it out (later phases read
/// what it registers).
const REGISTER: &str = "POST /v1/files (register, objects pre-uploaded)";

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    pub(crate) pk: String,
    pub(crate) pid: u32,
    env: Vec<(String, String)>,
    bin: String,
    /// Only the phases whose name contains this run (`--only`); the others
    /// report nothing. Registration always runs: it shapes the data later
    /// phases read.
    pub(crate) only: Option<String>,
}

impl Server {
    /// Whether the phase `name` is measured in this run (`--only`).
    fn runs(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| name.contains(o) || name == REGISTER)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh data folder (`{label}-{pid}` under the temp folder) and the
/// environment of a quiet server on a free port using it.
pub(crate) fn fresh_server_env(label: &str) -> (std::path::PathBuf, Vec<(String, String)>) {
    let data = std::env::temp_dir().join(format!("{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let env = vec![
        ("STOWAGE_DATA_DIR".to_owned(), data.display().to_string()),
        ("STOWAGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        ("RUST_LOG".to_owned(), "error".to_owned()),
    ];
    (data, env)
}

/// Drops database `name` (best effort: a benchmark's leftovers).
pub(crate) fn drop_database(admin: &str, name: &str) {
    let _ = Command::new("psql")
        .args([
            admin,
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        ])
        .status();
}

/// Creates database `name` on the server of `admin` (with `psql`); returns its URL.
pub(crate) fn create_database(admin: &str, name: &str) -> Result<String, String> {
    let status = Command::new("psql")
        .args([admin, "-q", "-c", &format!("CREATE DATABASE {name}")])
        .status()
        .map_err(|e| format!("psql: {e}"))?;
    if !status.success() {
        return Err(format!("could not create database {name}"));
    }
    Ok(format!(
        "{}/{name}",
        admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin)
    ))
}

pub(crate) fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) the process has used.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields after the command: state is index 0; utime is 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

/// The `p` quantile (0..=1) of sorted latencies in µs, in ms.
pub(crate) fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    let i = ((sorted_us.len().max(1) - 1) as f64 * p).round() as usize;
    f64::from(sorted_us.get(i).copied().unwrap_or(0)) / 1000.0
}

/// CPU seconds used by all local `postgres` processes (server and backends).
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

pub(crate) fn start(bin: &str, env: Vec<(String, String)>) -> Result<Server, String> {
    let mut child = Command::new(bin)
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start stowage: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let (mut base, mut pk) = (None, None);
    while base.is_none() || pk.is_none() {
        let line = lines
            .next()
            .ok_or("stowage exited early")?
            .map_err(|e| e.to_string())?;
        if let Some(u) = line.strip_prefix("Stowage listening on ") {
            base = Some(u.trim().to_owned());
        } else if let Some(k) = line.trim().strip_prefix("publishable: ") {
            pk = Some(k.trim().to_owned());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let pid = child.id();
    Ok(Server {
        child,
        base: base.unwrap_or_default(),
        pk: pk.unwrap_or_default(),
        pid,
        env,
        bin: bin.to_owned(),
        only: None,
    })
}

pub(crate) fn token(server: &Server, sub: &str) -> String {
    Command::new(&server.bin)
        .envs(server.env.iter().cloned())
        .args(["token", "--sub", sub, "--ttl", "7200"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) key: String,
    pub(crate) token: Option<String>,
}

pub(crate) fn request(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    c: &Caller,
) -> reqwest::RequestBuilder {
    let mut r = client.request(method, url).header("X-API-Key", &c.key);
    if let Some(t) = &c.token {
        r = r.bearer_auth(t);
    }
    r
}

pub(crate) async fn upload(
    client: &reqwest::Client,
    base: &str,
    c: &Caller,
    i: usize,
) -> Result<String, String> {
    let body =
        json!({"filename": format!("file-{i}.txt"), "contentType": "text/plain", "fileSize": 16});
    let t: Value = request(
        client,
        reqwest::Method::POST,
        format!("{base}/v1/files/presigned-url"),
        c,
    )
    .json(&body)
    .send()
    .await
    .map_err(|e| e.to_string())?
    .json()
    .await
    .map_err(|e| e.to_string())?;
    let url = t["url"].as_str().ok_or("no url")?;
    let put = client
        .put(url)
        .header("Content-Type", "text/plain")
        .body(vec![b'x'; 16])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !put.status().is_success() {
        let status = put.status();
        let body = put.text().await.unwrap_or_default();
        return Err(format!("PUT answered {status}: {body}"));
    }
    Ok(t["key"].as_str().unwrap_or_default().to_owned())
}

/// The registration of seeded file `i`: a mix of visibilities, each shared
/// with the next user.
fn register_body(key: &str, i: usize) -> Value {
    let vis = ["public", "private", "protected", "shared"][i % 4];
    json!({"s3Key": key, "originalName": format!("file-{i}.txt"), "mimeType": "text/plain", "size": 16,
           "visibility": vis, "sharedWith": [format!("user-{}", (i + 1) % USERS)]})
}

pub(crate) async fn register(
    client: &reqwest::Client,
    base: &str,
    c: &Caller,
    key: &str,
    i: usize,
) -> Result<String, String> {
    let body = register_body(key, i);
    let f: Value = request(client, reqwest::Method::POST, format!("{base}/v1/files"), c)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match f["id"].as_str() {
        Some(id) => Ok(id.to_owned()),
        None => Err(format!(
            "{} ({})",
            f["error"]["code"].as_str().unwrap_or("no id"),
            f["error"]["message"].as_str().unwrap_or_default()
        )),
    }
}

struct Outcome {
    name: &'static str,
    requests: usize,
    errors: usize,
    secs: f64,
    p50: f64,
    p99: f64,
    /// CPU seconds used during the phase: server, load generator, PostgreSQL.
    cpu: f64,
    client_cpu: f64,
    db_cpu: f64,
    rss_kib: u64,
}

impl Outcome {
    /// A phase `--only` left out.
    fn skipped(name: &'static str) -> Self {
        Self {
            name,
            requests: 0,
            errors: 0,
            secs: 0.0,
            p50: 0.0,
            p99: 0.0,
            cpu: 0.0,
            client_cpu: 0.0,
            db_cpu: 0.0,
            rss_kib: 0,
        }
    }

    /// CPU microseconds per request of `seconds`.
    fn per_request(&self, seconds: f64) -> f64 {
        seconds / self.requests.max(1) as f64 * 1e6
    }
}

/// `req` with the caller's credentials.
fn authed(req: Req, c: &Caller) -> Req {
    let req = req.header("x-api-key", c.key.clone());
    match &c.token {
        Some(t) => req.header("authorization", format!("Bearer {t}")),
        None => req,
    }
}

/// Drives the requests `make` builds with `concurrency` workers, each on
/// its own kept-alive connection ([`crate::loadgen::Conn`]), for `duration`
/// (or until `make` says stop); `ok` tells a good answer by its status.
async fn drive<F>(
    name: &'static str,
    server: &Server,
    concurrency: usize,
    duration: Duration,
    make: F,
    ok: fn(u16) -> bool,
) -> Outcome
where
    F: Fn(usize) -> Option<Req> + Send + Sync + 'static,
{
    if !server.runs(name) {
        return Outcome::skipped(name);
    }
    let make = Arc::new(make);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let cpu_before = cpu_seconds(server.pid);
    let client_cpu_before = cpu_seconds(std::process::id());
    let db_cpu_before = postgres_cpu_seconds();
    let mut peak_rss = 0;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (make, stop, counter) = (make.clone(), stop.clone(), counter.clone());
        let base = server.base.clone();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0;
            let Ok(mut conn) = Conn::new(&base) else {
                return (lat, 1);
            };
            while !stop.load(Ordering::Relaxed) {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let Some(req) = make(i) else { break };
                let t = Instant::now();
                let good = conn.send(req).await.is_ok_and(ok);
                lat.push(t.elapsed().as_micros() as u32);
                if !good {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    while started.elapsed() < duration && workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak_rss = peak_rss.max(proc_status(server.pid, "VmRSS:"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((lat, e)) = w.await {
            all.extend(lat);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.pid) - cpu_before;
    let client_cpu = cpu_seconds(std::process::id()) - client_cpu_before;
    let db_cpu = postgres_cpu_seconds() - db_cpu_before;
    all.sort_unstable();
    let pct = |p: f64| percentile_ms(&all, p);
    let o = Outcome {
        name,
        requests: all.len(),
        errors,
        secs,
        p50: pct(0.5),
        p99: pct(0.99),
        cpu,
        client_cpu,
        db_cpu,
        rss_kib: peak_rss,
    };
    eprintln!(
        "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, CPU per request: server {:.0} µs, load generator {:.0} µs, PostgreSQL {:.0} µs; peak RSS {:.1} MiB",
        o.requests as f64 / o.secs,
        o.p50,
        o.p99,
        o.errors,
        o.per_request(o.cpu),
        o.per_request(o.client_cpu),
        o.per_request(o.db_cpu),
        o.rss_kib as f64 / 1024.0
    );
    o
}

/// Runs the benchmark; returns the Markdown report.
pub async fn run(
    mode: &str,
    duration: Duration,
    concurrency: usize,
    postgres: Option<String>,
    key_cache_ms: Option<u64>,
    server_bin: &str,
    only: Option<String>,
) -> Result<String, String> {
    let (data, mut env) = fresh_server_env("stowage-bench-http");
    if let Some(ms) = key_cache_ms {
        env.push(("STOWAGE_API_KEY_CACHE_MS".to_owned(), ms.to_string()));
    }
    let cache = match (key_cache_ms, mode) {
        (Some(ms), _) => format!("{ms} ms"),
        (None, "postgres") => "10000 ms with change notifications (the default)".to_owned(),
        (None, _) => "off (the default)".to_owned(),
    };
    let mut database = None;
    if mode == "postgres" {
        let admin =
            postgres.ok_or("--mode postgres needs PostgreSQL ($DATABASE_URL or 127.0.0.1:5432)")?;
        let name = format!("stowage_bench_http_{}", std::process::id());
        let url = create_database(&admin, &name)?;
        env.push(("DATABASE_URL".to_owned(), url.clone()));
        database = Some((admin, name, url));
    }
    let mut server = start(server_bin, env)?;
    server.only = only;
    let idle_rss = proc_status(server.pid, "VmRSS:");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()
        .map_err(|e| e.to_string())?;
    let users: Vec<Caller> = (0..USERS)
        .map(|u| Caller {
            key: server.pk.clone(),
            token: Some(token(&server, &format!("user-{u}"))),
        })
        .collect();
    let base = server.base.clone();

    // Seed: files over many users, through the API.
    eprintln!("seeding {SEED_FILES} files over {USERS} users…");
    let mut ids = Vec::new();
    for chunk in (0..SEED_FILES).collect::<Vec<_>>().chunks(64) {
        let futs = chunk.iter().map(|&i| {
            let (client, base, c) = (client.clone(), base.clone(), users[i % USERS].clone());
            async move {
                let key = upload(&client, &base, &c, i).await?;
                register(&client, &base, &c, &key, i).await
            }
        });
        for r in futures_util::future::join_all(futs).await {
            ids.push(r?);
        }
    }
    // Pre-uploaded objects for the register phase.
    let prepared = 20_000;
    eprintln!("pre-uploading {prepared} objects for the register phase…");
    let mut keys = Vec::new();
    for chunk in (0..prepared).collect::<Vec<_>>().chunks(128) {
        let futs = chunk.iter().map(|&i| {
            let (client, base, c) = (client.clone(), base.clone(), users[i % USERS].clone());
            async move { upload(&client, &base, &c, i).await.map(|k| (k, i)) }
        });
        for r in futures_util::future::join_all(futs).await {
            keys.push(r?);
        }
    }
    let ids = Arc::new(ids);
    let keys = Arc::new(keys);
    let users = Arc::new(users);
    let mut outcomes = Vec::new();

    let success = |status: u16| (200..300).contains(&status);
    outcomes.push(
        drive(
            "GET /health (HTTP-stack ceiling)",
            &server,
            concurrency,
            duration,
            |_| Some(Req::new(Method::GET, "/health".to_owned())),
            success,
        )
        .await,
    );
    let u = users.clone();
    outcomes.push(
        drive(
            "POST /v1/files/presigned-url",
            &server,
            concurrency,
            duration,
            move |i| {
                let body =
                    json!({"filename": "a.txt", "contentType": "text/plain", "fileSize": 16});
                let req = Req::new(Method::POST, "/v1/files/presigned-url".to_owned());
                Some(authed(req, &u[i % USERS]).json(&body))
            },
            success,
        )
        .await,
    );
    let (u, k) = (users.clone(), keys.clone());
    outcomes.push(
        drive(
            REGISTER,
            &server,
            concurrency,
            duration,
            move |i| {
                let (key, n) = k.get(i)?;
                let req = Req::new(Method::POST, "/v1/files".to_owned());
                Some(authed(req, &u[n % USERS]).json(&register_body(key, *n)))
            },
            |status| status == 201,
        )
        .await,
    );
    // The register phase just wrote 20,000 rows: let PostgreSQL catch up
    // (statistics, visibility map) as it would in steady state, instead of
    // measuring reads against autovacuum running on the same two cores.
    if let Some((_, _, url)) = &database {
        let _ = Command::new("psql")
            .args([url, "-q", "-c", "VACUUM ANALYZE"])
            .status();
    }
    let (u, f) = (users.clone(), ids.clone());
    outcomes.push(
        drive(
            "GET /v1/files/:id",
            &server,
            concurrency,
            duration,
            move |i| {
                let id = &f[i % f.len()];
                let req = Req::new(Method::GET, format!("/v1/files/{id}"));
                Some(authed(req, &u[i % USERS]))
            },
            |status| status == 200 || status == 403,
        )
        .await,
    );
    let u = users.clone();
    outcomes.push(
        drive(
            "GET /v1/files (list 20)",
            &server,
            concurrency,
            duration,
            move |i| {
                let req = Req::new(Method::GET, "/v1/files?limit=20".to_owned());
                Some(authed(req, &u[i % USERS]))
            },
            success,
        )
        .await,
    );
    let (u, f) = (users.clone(), ids.clone());
    outcomes.push(
        drive(
            "POST /v1/files/:id/download-url",
            &server,
            concurrency,
            duration,
            move |i| {
                let id = &f[i % f.len()];
                let req = Req::new(Method::POST, format!("/v1/files/{id}/download-url"));
                Some(authed(req, &u[(i % f.len()) % USERS]))
            },
            success,
        )
        .await,
    );
    let (u, f) = (users.clone(), ids.clone());
    outcomes.push(
        drive(
            "PATCH /v1/files/:id (metadata merge)",
            &server,
            concurrency,
            duration,
            move |i| {
                let id = &f[i % f.len()];
                let req = Req::new(Method::PATCH, format!("/v1/files/{id}"));
                Some(
                    authed(req, &u[(i % f.len()) % USERS])
                        .json(&json!({"metadata": {"custom": {"n": i}}})),
                )
            },
            success,
        )
        .await,
    );

    let upload_report = if mode == "embedded" && server.runs("upload") {
        upload_throughput(&server, &client, &data).await?
    } else {
        String::new()
    };
    let peak = proc_status(server.pid, "VmHWM:");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    if let Some((admin, name, _)) = database {
        drop_database(&admin, &name);
    }
    // `/health` is the first phase; `--only` may have left it out.
    let health_rps = outcomes
        .first()
        .filter(|o| o.requests > 0)
        .map(|o| o.requests as f64 / o.secs);
    let mut report = format!(
        "Mode: {mode}, API-key cache {cache}. {concurrency} concurrent connections, {}s per operation, load generator on the same machine. \
         Seeded {SEED_FILES} files over {USERS} users. Server RSS idle {:.1} MiB, peak (VmHWM) {:.1} MiB.\n\n\
         The load generator is our own raw HTTP/1.1 client (hyper's connection API, one kept-alive connection per worker); CPU columns are CPU time per request.\n\n\
         | operation | req/s | % of /health | p50 ms | p99 ms | errors | server CPU µs/req | load generator CPU µs/req | PostgreSQL CPU µs/req | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|\n",
        duration.as_secs(),
        idle_rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    for o in outcomes.iter().filter(|o| o.requests > 0) {
        let rps = o.requests as f64 / o.secs;
        report.push_str(&format!(
            "| {} | {:.0} | {} | {:.2} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.1} |\n",
            o.name,
            rps,
            health_rps.map_or_else(|| "—".to_owned(), |h| format!("{:.0}%", rps / h * 100.0)),
            o.p50,
            o.p99,
            o.errors,
            o.per_request(o.cpu),
            o.per_request(o.client_cpu),
            o.per_request(o.db_cpu),
            o.rss_kib as f64 / 1024.0
        ));
    }
    report.push_str(&upload_report);
    Ok(report)
}

/// 1 GiB through the gateway vs `dd` to the same disk, with the server's RSS.
async fn upload_throughput(
    server: &Server,
    client: &reqwest::Client,
    data: &std::path::Path,
) -> Result<String, String> {
    const SIZE: u64 = 1 << 30;
    let src = data.join("bench-1gib.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&src).map_err(|e| e.to_string())?;
        let block: Vec<u8> = (0..1 << 20)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for _ in 0..1024 {
            f.write_all(&block).map_err(|e| e.to_string())?;
        }
        f.sync_all().map_err(|e| e.to_string())?;
    }
    let dd_started = Instant::now();
    let dd = Command::new("dd")
        .arg(format!("if={}", src.display()))
        .arg(format!("of={}", data.join("dd.bin").display()))
        .args(["bs=1M", "conv=fsync", "status=none"])
        .status()
        .map_err(|e| format!("dd: {e}"))?;
    let dd_secs = dd_started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(data.join("dd.bin"));
    if !dd.success() {
        return Err("dd failed".into());
    }
    let sk_caller = Caller {
        key: server.pk.clone(),
        token: Some(token(server, "uploader")),
    };
    let ticket: Value = request(client, reqwest::Method::POST, format!("{}/v1/files/presigned-url", server.base), &sk_caller)
        .json(&json!({"filename": "big.bin", "contentType": "application/octet-stream", "fileSize": SIZE}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let rss_before = proc_status(server.pid, "VmRSS:");
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, pid) = (done.clone(), server.pid);
        tokio::spawn(async move {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(proc_status(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let file = tokio::fs::File::open(&src)
        .await
        .map_err(|e| e.to_string())?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    ));
    let started = Instant::now();
    let status = client
        .put(ticket["url"].as_str().unwrap_or_default())
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", SIZE.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .status();
    let put_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let rss_peak = sampler.await.unwrap_or(0);
    let _ = std::fs::remove_file(&src);
    let mib = (SIZE >> 20) as f64;
    eprintln!(
        "1 GiB upload: {status}, {:.0} MiB/s (dd {:.0} MiB/s), RSS {rss_before} -> {rss_peak} KiB",
        mib / put_secs,
        mib / dd_secs
    );
    Ok(format!(
        "\n1 GiB through the gateway (status {}): {:.2} s = {:.0} MiB/s; `dd bs=1M conv=fsync` to the same disk: {:.2} s = {:.0} MiB/s \
         ({:.0}% of dd). Server RSS {:.1} MiB before, {:.1} MiB peak during the upload (growth {:.1} MiB).\n",
        status.as_u16(),
        put_secs,
        mib / put_secs,
        dd_secs,
        mib / dd_secs,
        dd_secs / put_secs * 100.0,
        rss_before as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss_peak.saturating_sub(rss_before) as f64 / 1024.0
    ))
}

/// A webhook receiver for the benchmark: HTTP/1.1 with keep-alive, answers
/// every request `204`, counts them and notes when the last came.
struct Receiver {
    url: String,
    count: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Receiver {
    async fn start() -> Result<Self, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let url = format!(
            "http://{}/hooks",
            listener.local_addr().map_err(|e| e.to_string())?
        );
        let count = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(None));
        let (c, l) = (count.clone(), last.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (c, l) = (c.clone(), l.clone());
                tokio::spawn(async move {
                    let mut buf: Vec<u8> = Vec::new();
                    let mut chunk = [0u8; 16384];
                    loop {
                        // One request: head, then Content-Length bytes.
                        let head_end = loop {
                            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < head_end + len {
                            match conn.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..head_end + len);
                        c.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut t) = l.lock() {
                            *t = Some(Instant::now());
                        }
                        if conn
                            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { url, count, last })
    }
}

/// `cargo xtask bench-webhooks`: registration with no webhook endpoint and
/// with one (a local receiver answering 204), each on a fresh server, and
/// how fast the events of the second run reach the receiver.
pub async fn run_webhooks(
    mode: &str,
    duration: Duration,
    concurrency: usize,
    postgres: Option<String>,
    server_bin: &str,
) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut delivery = String::new();
    for with_endpoint in [false, true] {
        let (data, mut env) = fresh_server_env("stowage-bench-webhooks");
        env.push(("STOWAGE_WEBHOOK_ALLOW_PRIVATE".into(), "1".into()));
        let mut database = None;
        if mode == "postgres" {
            let admin = postgres
                .clone()
                .ok_or("--mode postgres needs PostgreSQL ($DATABASE_URL or 127.0.0.1:5432)")?;
            let name = format!("stowage_bench_webhooks_{}", std::process::id());
            let url = create_database(&admin, &name)?;
            env.push(("DATABASE_URL".to_owned(), url));
            database = Some((admin, name));
        }
        let server = start(server_bin, env)?;
        let receiver = Receiver::start().await?;
        if with_endpoint {
            let out = Command::new(&server.bin)
                .envs(server.env.iter().cloned())
                .args([
                    "webhooks",
                    "add",
                    "--project",
                    "demo",
                    "--env",
                    "dev",
                    "--url",
                    &receiver.url,
                ])
                .output()
                .map_err(|e| e.to_string())?;
            if !out.status.success() {
                return Err(format!(
                    "webhooks add: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency * 2)
            .build()
            .map_err(|e| e.to_string())?;
        let users: Arc<Vec<Caller>> = Arc::new(
            (0..USERS)
                .map(|u| Caller {
                    key: server.pk.clone(),
                    token: Some(token(&server, &format!("user-{u}"))),
                })
                .collect(),
        );
        let prepared = 20_000;
        eprintln!("pre-uploading {prepared} objects…");
        let mut keys = Vec::new();
        for chunk in (0..prepared).collect::<Vec<_>>().chunks(128) {
            let futs = chunk.iter().map(|&i| {
                let (client, base, c) = (
                    client.clone(),
                    server.base.clone(),
                    users[i % USERS].clone(),
                );
                async move { upload(&client, &base, &c, i).await.map(|k| (k, i)) }
            });
            for r in futures_util::future::join_all(futs).await {
                keys.push(r?);
            }
        }
        let keys = Arc::new(keys);
        let started = Instant::now();
        let (u, k) = (users.clone(), keys.clone());
        let name = if with_endpoint {
            "POST /v1/files, one webhook endpoint"
        } else {
            "POST /v1/files, no webhook endpoint"
        };
        let o = drive(
            name,
            &server,
            concurrency,
            duration,
            move |i| {
                let (key, n) = k.get(i)?;
                let req = Req::new(Method::POST, "/v1/files".to_owned());
                Some(authed(req, &u[n % USERS]).json(&register_body(key, *n)))
            },
            |status| status == 201,
        )
        .await;
        if with_endpoint {
            let registered = o.requests - o.errors;
            let phase_end = Instant::now();
            let at_phase_end = receiver.count.load(Ordering::Relaxed);
            let deadline = phase_end + Duration::from_secs(300);
            while receiver.count.load(Ordering::Relaxed) < registered && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let got = receiver.count.load(Ordering::Relaxed);
            let last = receiver
                .last
                .lock()
                .ok()
                .and_then(|t| *t)
                .unwrap_or(phase_end);
            let span = last.duration_since(started).as_secs_f64();
            let backlog = last.saturating_duration_since(phase_end).as_secs_f64();
            delivery = format!(
                "\n\nDelivery during and after that phase: {got} of {registered} events delivered \
                 to the local receiver in {span:.1} s from the phase's start: {at_phase_end} while \
                 registrations were being made ({:.0}/s), {}.",
                at_phase_end as f64 / o.secs.max(0.001),
                if backlog < 0.5 {
                    format!(
                        "the other {} within {backlog:.1} s after (delivery kept pace)",
                        got - at_phase_end
                    )
                } else {
                    format!(
                        "the other {} in the {backlog:.1} s after ({:.0}/s, the server delivering alone)",
                        got - at_phase_end,
                        (got - at_phase_end) as f64 / backlog
                    )
                }
            );
        }
        rows.push(o);
        drop(server);
        let _ = std::fs::remove_dir_all(&data);
        if let Some((admin, name)) = database {
            drop_database(&admin, &name);
        }
    }
    let mut report = format!(
        "Mode: {mode}. {concurrency} concurrent connections, {}s per run, a fresh server per run, \
         load generator and receiver on the same machine.\n\n\
         | run | req/s | p50 ms | p99 ms | errors | server CPU µs/req | PostgreSQL CPU µs/req |\n|---|---|---|---|---|---|---|\n",
        duration.as_secs()
    );
    for o in &rows {
        report.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.0} | {:.0} |\n",
            o.name,
            o.requests as f64 / o.secs,
            o.p50,
            o.p99,
            o.errors,
            o.per_request(o.cpu),
            o.per_request(o.db_cpu),
        ));
    }
    report.push_str(&delivery);
    Ok(report)
}

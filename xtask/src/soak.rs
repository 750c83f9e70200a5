//! `cargo xtask soak [--minutes N] [--mode embedded|postgres] [--concurrency C]`:
//! a release `stowage` with fresh state under a mixed workload (upload +
//! register, get, list, download URL, patch, delete) for N minutes; reports,
//! per minute, requests, errors, p99, the server's RSS and open file
//! descriptors. A leak shows as RSS or fds that keep growing; an error as a
//! non-zero count. Loopback only; stops by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench_http::{
    self, drop_database, fresh_server_env, proc_status, request, Caller, USERS,
};

/// Error descriptions, counted.
type Reasons = Mutex<std::collections::BTreeMap<String, u64>>;

fn note(stats: &(Arc<Mutex<Vec<Minute>>>, Arc<Reasons>), reason: &str) -> bool {
    *stats
        .1
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(reason.to_owned())
        .or_default() += 1;
    false
}

fn outcome(
    stats: &(Arc<Mutex<Vec<Minute>>>, Arc<Reasons>),
    op: &str,
    r: Result<reqwest::Response, reqwest::Error>,
) -> bool {
    match r {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => note(stats, &format!("{op}: {}", r.status())),
        Err(e) => note(stats, &format!("{op}: {e}")),
    }
}

#[derive(Default)]
struct Minute {
    requests: u64,
    errors: u64,
    latencies: Vec<Duration>,
    /// Latencies per operation, to see which one a change in p99 comes from.
    by_op: std::collections::BTreeMap<&'static str, Vec<Duration>>,
}

/// The 99th percentile of `latencies` in milliseconds (sorts them).
fn p99_ms(latencies: &mut [Duration]) -> f64 {
    latencies.sort_unstable();
    latencies
        .get(((latencies.len() as f64 - 1.0) * 0.99).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The mix, one entry per request of ten ("upload" is upload + register).
const MIX: [&str; 10] = [
    "upload",
    "upload",
    "upload",
    "list",
    "list",
    "get",
    "get",
    "download URL",
    "patch",
    "delete",
];

/// How often the soak vacuums when the server's autovacuum is off.
const VACUUM_EVERY: Duration = Duration::from_secs(30);

/// Whether the PostgreSQL server at `url` runs autovacuum.
fn autovacuum_on(url: &str) -> bool {
    std::process::Command::new("psql")
        .args([url, "-Atc", "SHOW autovacuum"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "off")
        .unwrap_or(true)
}

/// `VACUUM ANALYZE` of the database at `url` every [`VACUUM_EVERY`] until
/// `stop` is set.
fn vacuum_until(url: &str, stop: &AtomicBool) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if last.elapsed() >= VACUUM_EVERY {
            let _ = std::process::Command::new("psql")
                .args([url, "-q", "-c", "VACUUM ANALYZE"])
                .status();
            last = Instant::now();
        }
    }
}

/// Runs the soak; returns the Markdown report.
pub async fn run(
    mode: &str,
    minutes: u64,
    concurrency: usize,
    postgres: Option<String>,
    server_bin: &str,
) -> Result<String, String> {
    let (data, mut env) = fresh_server_env("stowage-soak");
    let mut database = None;
    let mut vacuum_note = String::new();
    let stop = Arc::new(AtomicBool::new(false));
    let mut vacuum = None;
    if mode == "postgres" {
        let admin = postgres.ok_or("--mode postgres needs PostgreSQL")?;
        let name = format!("stowage_soak_{}", std::process::id());
        let url = bench_http::create_database(&admin, &name)?;
        if !autovacuum_on(&url) {
            // Without autovacuum (some test installations turn it off), dead
            // rows and missing statistics pile up and every statement slows
            // down minute by minute: the soak would measure the database's
            // configuration, not Stowage. Do what autovacuum would.
            vacuum_note = format!(
                "The server's autovacuum is off: the soak runs `VACUUM ANALYZE` every {} s in its place.\n\n",
                VACUUM_EVERY.as_secs()
            );
            vacuum = Some(std::thread::spawn({
                let (url, stop) = (url.clone(), stop.clone());
                move || vacuum_until(&url, &stop)
            }));
        }
        env.push(("DATABASE_URL".to_owned(), url));
        database = Some((admin, name));
    }
    let server = bench_http::start(server_bin, env)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let users: Arc<Vec<Caller>> = Arc::new(
        (0..USERS)
            .map(|u| Caller {
                key: server.pk.clone(),
                token: Some(bench_http::token(&server, &format!("user-{u}"))),
            })
            .collect(),
    );
    let base = server.base.clone();
    let started = Instant::now();
    let minutes_stats: Arc<Mutex<Vec<Minute>>> = Arc::new(Mutex::new(
        (0..minutes).map(|_| Minute::default()).collect(),
    ));
    let reasons: Arc<Reasons> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, base, users, stop) =
            (client.clone(), base.clone(), users.clone(), stop.clone());
        let stats = (minutes_stats.clone(), reasons.clone());
        workers.push(tokio::spawn(async move {
            let mut mine: Vec<(String, usize)> = Vec::new(); // (file id, owner)
            let mut i = w;
            // Each worker walks the whole mix in turn (starting at its own
            // place in it): `i % 10` with a stride of `concurrency` would give
            // a worker only some operations (64 workers: half never delete).
            let mut step = w;
            while !stop.load(Ordering::Relaxed) {
                i += concurrency;
                step += 1;
                let u = i % USERS;
                let caller = &users[u];
                let t = Instant::now();
                // Operations on a file wait until the worker has one.
                let op = match MIX[step % MIX.len()] {
                    "upload" | "list" => MIX[step % MIX.len()],
                    _ if mine.is_empty() => "none",
                    other => other,
                };
                let ok = match op {
                    "none" => true,
                    "upload" => match bench_http::upload(&client, &base, caller, i).await {
                        Ok(key) => {
                            match bench_http::register(&client, &base, caller, &key, i).await {
                                Ok(id) if !id.is_empty() => {
                                    mine.push((id, u));
                                    true
                                }
                                Ok(_) => note(&stats, "register: no id in the answer"),
                                Err(e) => note(&stats, &format!("register: {e}")),
                            }
                        }
                        Err(e) => note(&stats, &format!("upload: {e}")),
                    },
                    "list" => {
                        let r = request(
                            &client,
                            reqwest::Method::GET,
                            format!("{base}/v1/files?limit=20"),
                            caller,
                        )
                        .send()
                        .await;
                        outcome(&stats, "list", r)
                    }
                    "get" => {
                        let (id, owner) = &mine[i % mine.len()];
                        let r = request(
                            &client,
                            reqwest::Method::GET,
                            format!("{base}/v1/files/{id}"),
                            &users[*owner],
                        )
                        .send()
                        .await;
                        outcome(&stats, "get", r)
                    }
                    "download URL" => {
                        let (id, owner) = &mine[i % mine.len()];
                        let r = request(
                            &client,
                            reqwest::Method::POST,
                            format!("{base}/v1/files/{id}/download-url"),
                            &users[*owner],
                        )
                        .send()
                        .await;
                        outcome(&stats, "download URL", r)
                    }
                    "patch" => {
                        let (id, owner) = &mine[i % mine.len()];
                        let r = request(
                            &client,
                            reqwest::Method::PATCH,
                            format!("{base}/v1/files/{id}"),
                            &users[*owner],
                        )
                        .json(&json!({"metadata": {"custom": {"n": i}}}))
                        .send()
                        .await;
                        outcome(&stats, "patch", r)
                    }
                    _ => {
                        let (id, owner) = mine.swap_remove(i % mine.len());
                        let r = request(
                            &client,
                            reqwest::Method::DELETE,
                            format!("{base}/v1/files/{id}"),
                            &users[owner],
                        )
                        .send()
                        .await;
                        outcome(&stats, "delete", r)
                    }
                };
                let elapsed = t.elapsed();
                let minute = (started.elapsed().as_secs() / 60) as usize;
                let mut per_minute = stats
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(m) = per_minute.get_mut(minute) {
                    m.requests += 1;
                    m.errors += u64::from(!ok);
                    m.latencies.push(elapsed);
                    m.by_op.entry(op).or_default().push(elapsed);
                }
            }
        }));
    }
    let mut samples = Vec::new();
    for minute in 0..minutes {
        tokio::time::sleep_until(tokio::time::Instant::from_std(
            started + Duration::from_secs((minute + 1) * 60),
        ))
        .await;
        let rss = proc_status(server.pid, "VmRSS:");
        let fds = open_fds(server.pid);
        eprintln!(
            "minute {}: RSS {:.1} MiB, {fds} fds",
            minute + 1,
            rss as f64 / 1024.0
        );
        samples.push((rss, fds));
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    if let Some(v) = vacuum {
        let _ = v.join();
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
    if let Some((admin, name)) = database {
        drop_database(&admin, &name);
    }
    let mut stats = minutes_stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut ops: Vec<&str> = Vec::new();
    for op in MIX {
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    let mut report = format!(
        "{vacuum_note}Mode: {mode}, {concurrency} connections, {minutes} minutes; mix per 10 requests: 3 upload + register, \
         2 list, 2 get, 1 download URL, 1 patch, 1 delete.\n\n\
         | minute | requests | errors | p99 ms | RSS MiB | open fds | p99 ms by operation ({}) |\n\
         |---|---|---|---|---|---|---|\n",
        ops.join(" / ")
    );
    let mut total_errors = 0;
    for (i, (m, (rss, fds))) in stats.iter_mut().zip(samples).enumerate() {
        let p99 = p99_ms(&mut m.latencies);
        let by_op: Vec<String> = ops
            .iter()
            .map(|op| {
                m.by_op
                    .get_mut(op)
                    .map_or("–".to_owned(), |l| format!("{:.0}", p99_ms(l)))
            })
            .collect();
        total_errors += m.errors;
        report.push_str(&format!(
            "| {} | {} | {} | {p99:.1} | {:.1} | {fds} | {} |\n",
            i + 1,
            m.requests,
            m.errors,
            rss as f64 / 1024.0,
            by_op.join(" / ")
        ));
    }
    report.push_str(&format!("\nErrors in all: {total_errors}.\n"));
    for (reason, n) in reasons
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        report.push_str(&format!("- {n} × {reason}\n"));
    }
    Ok(report)
}

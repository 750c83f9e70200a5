//! `cargo xtask bench-img`: Stowage's image transformations against the
//! reference implementation of their URL grammar, Thumbor, on this machine.
//!
//! Thumbor comes from PyPI into a venv under `target/thumbor-venv` (pinned;
//! installed once). Both servers get the same images (generated here with the
//! venv's Pillow: a 24 MP photo-like JPEG, a 2 MP PNG with alpha, a 1 MP
//! WebP), as many worker processes/threads (Stowage's image workers =
//! Thumbor's `--processes`), the same encoder settings (quality 80, baseline
//! JPEG, no metadata), the same option strings and the same concurrency, one
//! kept-alive connection per client. Cold: nothing cached (Stowage stores no
//! derived image, Thumbor has no result storage), and each connection asks
//! for its own copy of the image so that no two requests can share work.
//! Warm: Stowage serves its stored derived image, Thumbor its result storage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper1::Method;
use serde_json::{json, Value};

use crate::bench_http::{
    cpu_seconds, fresh_server_env, percentile_ms, proc_status, start, token, Caller, Server,
};
use crate::loadgen::{Conn, Req};

const VENV: &str = "target/thumbor-venv";
const THUMBOR: &str = "thumbor==7.8.0";

/// The images: (file name stem, extension, MIME type, Pillow code making it as `img`).
const IMAGES: [(&str, &str, &str, &str); 3] = [
    (
        "photo-24mp",
        "jpg",
        "image/jpeg",
        "w, h = 6000, 4000\n\
         r = Image.effect_noise((w // 40, h // 40), 70).resize((w, h), Image.BICUBIC)\n\
         g = Image.linear_gradient('L').resize((w, h))\n\
         b = Image.effect_noise((w // 80, h // 80), 90).resize((w, h), Image.BICUBIC)\n\
         img = Image.merge('RGB', (r, g, b))\n\
         grain = Image.effect_noise((w, h), 24).convert('RGB')\n\
         img = Image.blend(img, grain, 0.12)\n\
         img.save(path, quality=90)",
    ),
    (
        "alpha-2mp",
        "png",
        "image/png",
        "w, h = 1632, 1224\n\
         r = Image.linear_gradient('L').resize((w, h))\n\
         g = Image.effect_noise((w // 16, h // 16), 60).resize((w, h), Image.BICUBIC)\n\
         b = Image.linear_gradient('L').rotate(90).resize((w, h))\n\
         a = Image.radial_gradient('L').resize((w, h))\n\
         img = Image.merge('RGBA', (r, g, b, a))\n\
         img.save(path)",
    ),
    (
        "small-1mp",
        "webp",
        "image/webp",
        "w, h = 1000, 1000\n\
         r = Image.effect_noise((w // 20, h // 20), 70).resize((w, h), Image.BICUBIC)\n\
         g = Image.linear_gradient('L').resize((w, h))\n\
         b = Image.radial_gradient('L').resize((w, h))\n\
         img = Image.merge('RGB', (r, g, b))\n\
         img.save(path, quality=80)",
    ),
];

/// The option strings, as both grammars write them.
const OPTIONS: [&str; 4] = [
    "fit-in/300x200",
    "800x0",
    "80x80/smart",
    "filters:format(webp):quality(80)",
];

/// The venv's Python, Thumbor installed (once).
fn venv() -> Result<PathBuf, String> {
    let python = Path::new(VENV).join("bin/python");
    let thumbor = Path::new(VENV).join("bin/thumbor");
    if !thumbor.exists() {
        eprintln!("bench-img: installing {THUMBOR} from PyPI into {VENV}");
        crate::run({
            let mut c = Command::new("python3");
            c.args(["-m", "venv", VENV]);
            c
        })
        .map_err(|e| format!("{e} (is python3 with venv installed?)"))?;
        crate::run({
            let mut c = Command::new(&python);
            c.args(["-m", "pip", "install", "--quiet", THUMBOR]);
            c
        })?;
    }
    Ok(python)
}

/// Generates the images (and `copies` copies of each) into `dir`.
fn images(python: &Path, dir: &Path, copies: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for (stem, ext, _, code) in IMAGES {
        let first = dir.join(format!("{stem}-0.{ext}"));
        if !first.exists() {
            let script = format!(
                "from PIL import Image\npath = {:?}\n{code}\n",
                first.display().to_string()
            );
            crate::run({
                let mut c = Command::new(python);
                c.args(["-c", &script]);
                c
            })?;
        }
        for i in 1..copies {
            let copy = dir.join(format!("{stem}-{i}.{ext}"));
            if !copy.exists() {
                std::fs::copy(&first, &copy).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// A running Thumbor (its process group killed on drop).
struct Thumbor {
    child: Child,
    base: String,
}

impl Drop for Thumbor {
    fn drop(&mut self) {
        for pid in descendants(self.child.id()) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process under `pid` (children, their children…).
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let after = stat.rsplit(')').next()?;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            Some((p, ppid))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// The process and its descendants.
fn family(pid: u32) -> Vec<u32> {
    let mut all = descendants(pid);
    all.push(pid);
    all
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn start_thumbor(dir: &Path, processes: usize, warm: bool) -> Result<Thumbor, String> {
    let port = free_port()?;
    let result_root = dir.join(format!("thumbor-results-{port}"));
    let conf = dir.join(format!("thumbor-{port}.conf"));
    let result_storage = if warm {
        format!(
            "RESULT_STORAGE = 'thumbor.result_storages.file_storage'\n\
             RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = {:?}\n\
             RESULT_STORAGE_STORES_UNSAFE = True\n\
             RESULT_STORAGE_EXPIRATION_SECONDS = 0\n",
            result_root.display().to_string()
        )
    } else {
        String::new()
    };
    let text = format!(
        "LOADER = 'thumbor.loaders.file_loader'\n\
         FILE_LOADER_ROOT_PATH = {:?}\n\
         STORAGE = 'thumbor.storages.no_storage'\n\
         {result_storage}\
         ALLOW_UNSAFE_URL = True\n\
         QUALITY = 80\n\
         WEBP_QUALITY = 80\n\
         PROGRESSIVE_JPEG = False\n\
         PRESERVE_EXIF_INFO = False\n\
         AUTO_WEBP = False\n\
         MAX_WIDTH = 0\n\
         MAX_HEIGHT = 0\n",
        dir.display().to_string()
    );
    std::fs::write(&conf, text).map_err(|e| e.to_string())?;
    let child = Command::new(Path::new(VENV).join("bin/thumbor"))
        .args([
            "-p",
            &port.to_string(),
            "-i",
            "127.0.0.1",
            "-c",
            &conf.display().to_string(),
            "-l",
            "error",
            "--processes",
            &processes.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start thumbor: {e}"))?;
    let thumbor = Thumbor {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("thumbor did not start within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let every forked process come up.
    std::thread::sleep(Duration::from_secs(2));
    Ok(thumbor)
}

/// Uploads `bytes` as a public file; its key.
async fn upload(
    client: &reqwest::Client,
    server: &Server,
    c: &Caller,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> Result<String, String> {
    let authed = |r: reqwest::RequestBuilder| {
        let r = r.header("X-API-Key", &c.key);
        match &c.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    };
    let ticket: Value = authed(client.post(format!("{}/v1/files/presigned-url", server.base)))
        .json(&json!({"filename": name, "contentType": mime, "fileSize": bytes.len()}))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let key = ticket["key"].as_str().ok_or("no key")?.to_owned();
    let mut put = client.put(ticket["url"].as_str().ok_or("no url")?);
    if let Some(headers) = ticket["headers"].as_object() {
        for (k, v) in headers {
            if !k.eq_ignore_ascii_case("content-length") {
                put = put.header(k, v.as_str().unwrap_or_default());
            }
        }
    }
    let status = put
        .body(bytes.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?
        .status();
    if !status.is_success() {
        return Err(format!("upload of {name}: {status}"));
    }
    let registered = authed(client.post(format!("{}/v1/files", server.base)))
        .json(&json!({"s3Key": key, "originalName": name, "mimeType": mime, "size": bytes.len(), "visibility": "public"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if registered.status().as_u16() != 201 {
        return Err(format!("registration of {name}: {}", registered.status()));
    }
    Ok(key)
}

/// One measured row.
struct Row {
    requests: usize,
    errors: usize,
    secs: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
    rss_mib: f64,
}

impl Row {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }
}

/// Drives `concurrency` connections to `base` for `duration`, connection
/// `i` sending `path(i)`; samples the CPU and peak RSS of `pid`'s family.
async fn drive(
    base: &str,
    pid: u32,
    concurrency: usize,
    duration: Duration,
    path: Arc<dyn Fn(usize) -> String + Send + Sync>,
) -> Row {
    let cpu_of = |pid: u32| family(pid).into_iter().map(cpu_seconds).sum::<f64>();
    let rss_of = |pid: u32| {
        family(pid)
            .into_iter()
            .map(|p| proc_status(p, "VmRSS:"))
            .sum::<u64>()
    };
    let cpu_before = cpu_of(pid);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for i in 0..concurrency {
        let (base, path) = (base.to_owned(), path.clone());
        workers.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::new();
            let mut errors = 0;
            let Ok(mut conn) = Conn::new(&base) else {
                return (lat, 1);
            };
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = conn
                    .send(Req::new(Method::GET, path(i)))
                    .await
                    .is_ok_and(|s| s == 200);
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut peak = 0;
    while workers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_of(pid));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((lat, e)) = w.await {
            all.extend(lat);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| percentile_ms(&all, p);
    Row {
        requests: all.len(),
        errors,
        secs,
        p50: pct(0.5),
        p99: pct(0.99),
        cpu: cpu_of(pid) - cpu_before,
        rss_mib: peak as f64 / 1024.0,
    }
}

fn cell(r: &Row) -> String {
    let errors = if r.errors > 0 {
        format!(" ({} errors)", r.errors)
    } else {
        String::new()
    };
    format!(
        "{:.1} req/s{errors} | {:.1} / {:.1} ms | {:.0} ms | {:.0} MiB",
        r.rate(),
        r.p50,
        r.p99,
        r.cpu / r.requests.max(1) as f64 * 1000.0,
        r.rss_mib
    )
}

/// Runs the comparison; the report's Markdown.
pub async fn run(
    duration: Duration,
    concurrency: usize,
    server_bin: &str,
) -> Result<String, String> {
    let python = venv()?;
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join("target/bench-img");
    images(&python, &dir, concurrency)?;
    let client = reqwest::Client::new();
    let mut report = format!(
        "Thumbor {} (PIL engine, `--processes {workers}`) and Stowage (`STOWAGE_IMAGE_WORKERS={workers}`), \
         {concurrency} connections, {} s per row; each cell: throughput | p50 / p99 | server CPU per request | peak RSS \
         (Thumbor: all its processes). Thumbor runs without face/feature detectors, so its `smart` is a centre crop.\n",
        THUMBOR.trim_start_matches("thumbor=="),
        duration.as_secs()
    );
    for warm in [false, true] {
        let (_data, mut env) = fresh_server_env(if warm {
            "stowage-bench-img-warm"
        } else {
            "stowage-bench-img-cold"
        });
        env.push(("STOWAGE_IMAGE_RATE_PER_SEC".into(), "0".into()));
        env.push(("STOWAGE_IMAGE_WORKERS".into(), workers.to_string()));
        if !warm {
            env.push(("STOWAGE_IMAGE_MAX_DERIVATIVES".into(), "0".into()));
        }
        let server = start(server_bin, env)?;
        let caller = Caller {
            key: server.pk.clone(),
            token: Some(token(&server, "bench")),
        };
        let thumbor = start_thumbor(&dir, workers, warm)?;
        let mut keys: Vec<Vec<String>> = Vec::new();
        for (stem, ext, mime, _) in IMAGES {
            let mut copies = Vec::new();
            for i in 0..concurrency {
                let name = format!("{stem}-{i}.{ext}");
                let bytes = std::fs::read(dir.join(&name)).map_err(|e| e.to_string())?;
                copies.push(upload(&client, &server, &caller, &name, mime, bytes).await?);
            }
            keys.push(copies);
        }
        report.push_str(&format!(
            "\n**{}**\n\n| image | options | Stowage | p50 / p99 | CPU/req | RSS | Thumbor | p50 / p99 | CPU/req | RSS | Stowage ÷ Thumbor |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
            if warm { "Warm (derived image cached)" } else { "Cold (nothing cached; each connection its own copy)" }
        ));
        for (n, (stem, ext, _, _)) in IMAGES.iter().enumerate() {
            for options in OPTIONS {
                let own = keys[n].clone();
                let options_owned = options.to_owned();
                let stowage_path: Arc<dyn Fn(usize) -> String + Send + Sync> = Arc::new(move |i| {
                    let key = if warm { &own[0] } else { &own[i % own.len()] };
                    format!("/v1/img/{options_owned}/{key}")
                });
                let (stem_owned, ext_owned) = (stem.to_string(), ext.to_string());
                let options_owned = options.to_owned();
                let thumbor_path: Arc<dyn Fn(usize) -> String + Send + Sync> = Arc::new(move |i| {
                    let copy = if warm { 0 } else { i };
                    format!("/unsafe/{options_owned}/{stem_owned}-{copy}.{ext_owned}")
                });
                if warm {
                    // Fill both caches first.
                    drive(
                        &server.base,
                        server.pid,
                        1,
                        Duration::from_millis(1),
                        stowage_path.clone(),
                    )
                    .await;
                    drive(
                        &thumbor.base,
                        thumbor.child.id(),
                        1,
                        Duration::from_millis(1),
                        thumbor_path.clone(),
                    )
                    .await;
                }
                let s = drive(
                    &server.base,
                    server.pid,
                    concurrency,
                    duration,
                    stowage_path,
                )
                .await;
                let t = drive(
                    &thumbor.base,
                    thumbor.child.id(),
                    concurrency,
                    duration,
                    thumbor_path,
                )
                .await;
                let line = format!(
                    "| {}.{} | `{options}` | {} | {} | {:.1}× |\n",
                    stem,
                    ext,
                    cell(&s),
                    cell(&t),
                    s.rate() / t.rate().max(1e-9)
                );
                eprint!("{line}");
                report.push_str(&line);
            }
        }
        drop(thumbor);
        drop(server);
    }

    // Memory: 20 concurrent transforms of the 24 MP JPEG, each its own variant.
    let (_data, mut env) = fresh_server_env("stowage-bench-img-rss");
    env.push(("STOWAGE_IMAGE_RATE_PER_SEC".into(), "0".into()));
    env.push(("STOWAGE_IMAGE_MAX_DERIVATIVES".into(), "0".into()));
    // Every one of the 20 waits its turn rather than getting 503.
    env.push(("STOWAGE_IMAGE_QUEUE_TIMEOUT_MS".into(), "600000".into()));
    let server = start(server_bin, env)?;
    let caller = Caller {
        key: server.pk.clone(),
        token: Some(token(&server, "bench")),
    };
    let bytes = std::fs::read(dir.join("photo-24mp-0.jpg")).map_err(|e| e.to_string())?;
    let key = upload(&client, &server, &caller, "photo.jpg", "image/jpeg", bytes).await?;
    let idle = proc_status(server.pid, "VmRSS:") as f64 / 1024.0;
    let path: Arc<dyn Fn(usize) -> String + Send + Sync> =
        Arc::new(move |i| format!("/v1/img/filters:format(webp):quality({})/{key}", 60 + i));
    let r = drive(&server.base, server.pid, 20, duration, path).await;
    report.push_str(&format!(
        "\n20 concurrent full-size transforms of the 24 MP JPEG to WebP (20 distinct variants, nothing cached): \
         {:.2} req/s, p50 {:.0} ms, p99 {:.0} ms, {} errors; server RSS idle {idle:.0} MiB, peak {:.0} MiB.\n",
        r.rate(),
        r.p50,
        r.p99,
        r.errors,
        r.rss_mib
    ));
    Ok(report)
}

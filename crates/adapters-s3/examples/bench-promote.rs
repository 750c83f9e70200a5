//! What registration's move out of staging costs on S3 (docs/api.md §12):
//! uploads of 1 MiB, 100 MiB and 1 GiB through presigned URLs to the
//! in-process S3 server, then `promote` timed — one `CopyObject`, and for
//! 1 GiB also the multipart copy that objects over 5 GiB take (here forced
//! with 128 MiB parts). Prints a Markdown table; `cargo xtask bench-promote`
//! writes it into docs/performance.md.

use std::time::{Duration, Instant};

use stowage_adapters_s3::{test_server, CopyLimits, S3Config, S3Store};
use stowage_domain::model::Timestamp;
use stowage_domain::ports::ObjectStore;

const MIB: u64 = 1 << 20;
const ROUNDS: usize = 3;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let root = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("stowage-bench-promote"));
    let _ = std::fs::remove_dir_all(&root);
    let server = test_server::start(
        &root,
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        "AKBENCH",
        "bench-secret",
    )
    .await?;
    let store = S3Store::new(&S3Config {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        bucket: "bench".into(),
        credentials: Some(("AKBENCH".into(), "bench-secret".into())),
        timeout: Duration::from_secs(30),
        ca_file: None,
    })
    .map_err(|e| e.to_string())?;
    store.init_bucket(&[]).await.map_err(|e| e.to_string())?;
    let client = reqwest::Client::new();
    let mut table = String::from(
        "| object | move | rounds | median ms | min ms | max ms | MiB/s (median) |\n|---|---|---|---|---|---|---|\n",
    );
    let cases: [(u64, &str, CopyLimits); 4] = [
        (MIB, "CopyObject", CopyLimits::default()),
        (100 * MIB, "CopyObject", CopyLimits::default()),
        (1024 * MIB, "CopyObject", CopyLimits::default()),
        (
            1024 * MIB,
            "multipart copy, 8 × 128 MiB parts, 8 in flight",
            CopyLimits {
                single_max: 512 * MIB,
                part_size: 128 * MIB,
                concurrency: 8,
            },
        ),
    ];
    let mut store = store;
    for (size, how, limits) in cases {
        store = store.with_copy_limits(limits);
        let mut times = Vec::new();
        for round in 0..ROUNDS {
            let staged = format!("_staging/bench/dev/h/{round}/{size}.bin");
            let key = format!("bench/dev/h/{round}/{size}.bin");
            let exp = Timestamp::from_datetime(chrono::Utc::now()).plus_secs(3600);
            let put = store
                .presign_put(&staged, "application/octet-stream", Some(size), None, exp)
                .await
                .map_err(|e| e.to_string())?;
            let chunk = bytes_chunk();
            let chunks = (size / MIB) as usize;
            let body = futures_util::stream::iter(
                (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let mut req = client.put(&put.url);
            for (k, v) in &put.headers {
                req = req.header(k, v);
            }
            let r = req
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("upload answered {}", r.status()));
            }
            let started = Instant::now();
            store
                .promote(&staged, &key, size)
                .await
                .map_err(|e| e.to_string())?;
            times.push(started.elapsed());
            store.delete(&key).await.map_err(|e| e.to_string())?;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = times[times.len() / 2];
        table.push_str(&format!(
            "| {} MiB | {how} | {ROUNDS} | {:.1} | {:.1} | {:.1} | {:.0} |\n",
            size / MIB,
            ms(median),
            ms(times[0]),
            ms(times[times.len() - 1]),
            (size / MIB) as f64 / median.as_secs_f64()
        ));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
    println!("{table}");
    Ok(())
}

fn bytes_chunk() -> Vec<u8> {
    (0..MIB).map(|i| (i % 251) as u8).collect()
}

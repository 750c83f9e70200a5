//! Where a transform's time goes, stage by stage, on a generated 24 MP
//! photo-like JPEG: `cargo run --release -p stowage-adapters-image --example codec-bench`.
//! The figures behind docs/decisions.md 54.

use std::time::Instant;

use stowage_adapters_image::Codec;
use stowage_domain::image::{parse_options, ImageBounds, ImageFormat, Job};
use stowage_domain::ports::ImageCodec;

fn photo(w: u16, h: u16) -> Vec<u8> {
    let (wu, hu) = (usize::from(w), usize::from(h));
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut pixels = Vec::with_capacity(wu * hu * 3);
    for y in 0..hu {
        for x in 0..wu {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let grain = (seed % 24) as usize;
            pixels.push(((x * 255 / wu + grain) % 256) as u8);
            pixels.push(((y * 255 / hu + grain) % 256) as u8);
            pixels.push((((x + y) * 255 / (wu + hu) + grain) % 256) as u8);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    out
}

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) -> T {
    let mut out = f();
    let started = Instant::now();
    for _ in 0..runs {
        out = f();
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    println!("{label:<58} {ms:>9.1} ms");
    out
}

/// A `/proc/self/status` field, KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak memory of `threads` threads each running full-size WebP conversions.
fn peak_memory(src: &[u8], threads: usize) {
    let job = Job {
        transform: parse_options("filters:quality(80)", &ImageBounds::default()).expect("options"),
        output: ImageFormat::Webp,
        bounds: ImageBounds::default(),
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..2 {
                    Codec.transform(src, &job).expect("transform");
                }
            });
        }
    });
    println!(
        "{threads} threads × 2 full-size WebP conversions: peak RSS {} MiB (now {} MiB)",
        status_kib("VmHWM:") / 1024,
        status_kib("VmRSS:") / 1024
    );
}

fn main() {
    if std::env::args().nth(2).as_deref() == Some("--memory") {
        let src = std::fs::read(std::env::args().nth(1).expect("path")).expect("read");
        let threads = std::env::args()
            .nth(3)
            .and_then(|t| t.parse().ok())
            .unwrap_or(2);
        peak_memory(&src, threads);
        return;
    }
    // A JPEG named on the command line, else a generated one.
    let src = match std::env::args().nth(1) {
        Some(path) => std::fs::read(&path).expect("read the JPEG"),
        None => photo(6000, 4000),
    };
    println!("source: JPEG of {} bytes", src.len());
    time("jpeg-decoder, full size (24 MP)", 3, || {
        let mut d = jpeg_decoder::Decoder::new(&src[..]);
        d.decode().expect("decode").len()
    });
    for (w, h) in [(3000u16, 2000u16), (1500, 1000), (750, 500)] {
        time(
            &format!("jpeg-decoder, DCT-scaled to ≥{w}×{h}"),
            3,
            || {
                let mut d = jpeg_decoder::Decoder::new(&src[..]);
                d.scale(w, h).expect("scale");
                d.decode().expect("decode").len()
            },
        );
    }
    for (options, format) in [
        ("fit-in/300x200", ImageFormat::Jpeg),
        ("800x0", ImageFormat::Jpeg),
        ("80x80/smart", ImageFormat::Jpeg),
        ("fit-in/300x200", ImageFormat::Webp),
        ("fit-in/300x200", ImageFormat::Avif),
        ("fit-in/300x200", ImageFormat::Png),
        ("filters:quality(80)", ImageFormat::Webp),
        ("filters:quality(80)", ImageFormat::Jpeg),
        ("fit-in/1200x1200/filters:blur(20)", ImageFormat::Jpeg),
    ] {
        let job = Job {
            transform: parse_options(options, &ImageBounds::default()).expect("options"),
            output: format,
            bounds: ImageBounds::default(),
        };
        let runs = if options.starts_with("filters") { 1 } else { 5 };
        let out = time(
            &format!("transform {options} → {}", format.name()),
            runs,
            || Codec.transform(&src, &job).expect("transform"),
        );
        println!("{:>68} bytes", out.len());
    }
}

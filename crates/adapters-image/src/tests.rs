//! The codec through its port, on images made here.

use stowage_domain::image::{parse_options, ImageBounds, ImageFormat, Job, Transform};
use stowage_domain::ports::ImageCodec;
use stowage_domain::ErrorCode;

use crate::Codec;

/// A smooth colourful RGB image.
fn gradient(w: u32, h: u32) -> Vec<u8> {
    (0..h)
        .flat_map(|y| {
            (0..w).flat_map(move |x| {
                let c = |v: u32, n: u32| u8::try_from(v * 255 / n.max(1)).unwrap_or(255);
                [c(x, w), c(y, h), 128]
            })
        })
        .collect()
}

pub(crate) fn jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(
            &gradient(u32::from(w), u32::from(h)),
            w,
            h,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encodes");
    out
}

/// A JPEG carrying an EXIF block with `orientation` (and a "secret" tag text).
fn jpeg_with_orientation(w: u16, h: u16, orientation: u16) -> Vec<u8> {
    let plain = jpeg(w, h);
    // TIFF, little-endian, IFD0 with one entry: Orientation (SHORT).
    let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0".to_vec();
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    tiff.extend_from_slice(b"GPS-SECRET-42");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = u16::try_from(app1.len() + 2).expect("small");
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn png_rgba(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = png::Encoder::new(&mut out, w, h);
    e.set_color(png::ColorType::Rgba);
    e.set_depth(png::BitDepth::Eight);
    let mut writer = e.write_header().expect("header");
    let data: Vec<u8> = (0..w * h)
        .flat_map(|i| [200, 10, 10, u8::try_from(i % 256).unwrap_or(0)])
        .collect();
    writer.write_image_data(&data).expect("data");
    writer.finish().expect("finish");
    out
}

fn webp(w: u32, h: u32) -> Vec<u8> {
    webp::Encoder::from_rgb(&gradient(w, h), w, h)
        .encode(80.0)
        .to_vec()
}

fn gif(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let palette = [0u8, 0, 0, 255, 0, 0];
        let mut e = gif::Encoder::new(&mut out, w, h, &palette).expect("encoder");
        let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h))
            .map(|i| u8::from(i % 2 == 0))
            .collect();
        let frame = gif::Frame {
            width: w,
            height: h,
            buffer: std::borrow::Cow::Owned(pixels),
            ..gif::Frame::default()
        };
        e.write_frame(&frame).expect("frame");
    }
    out
}

/// A small PNG whose header declares `w`×`h`, with a few bytes of zeros as
/// its (far too short) pixel data.
pub(crate) fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let chunk = |out: &mut Vec<u8>, body: &[u8]| {
        let len = u32::try_from(body.len() - 4).expect("small");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&crc32(body).to_be_bytes());
    };
    let mut out = b"\x89PNG\r\n\x1A\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, &ihdr);
    // zlib: one stored block of 64 zeros, then its Adler-32 (1 + 0, 64 × 1).
    let mut idat = b"IDAT\x78\x01\x01\x40\x00\xBF\xFF".to_vec();
    idat.extend_from_slice(&[0; 64]);
    idat.extend_from_slice(&[0x00, 0x40, 0x00, 0x01]);
    chunk(&mut out, &idat);
    chunk(&mut out, b"IEND");
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn job(options: &str, output: ImageFormat) -> Job {
    Job {
        transform: parse_options(options, &ImageBounds::default()).expect("options"),
        output,
        bounds: ImageBounds::default(),
    }
}

fn run(source: &[u8], options: &str, output: ImageFormat) -> (u32, u32, ImageFormat) {
    let out = Codec
        .transform(source, &job(options, output))
        .expect("transforms");
    let info = Codec.probe(&out).ok();
    let format = ImageFormat::sniff(&out).expect("a known format");
    assert_eq!(format, output, "magic bytes of {options}");
    match info {
        Some(i) => (i.width, i.height, format),
        // AVIF is written, not read: its size is checked by its encoder.
        None => (0, 0, format),
    }
}

#[test]
fn every_source_format_probes() {
    for (bytes, format, size) in [
        (jpeg(64, 48), ImageFormat::Jpeg, (64, 48)),
        (png_rgba(30, 20), ImageFormat::Png, (30, 20)),
        (webp(50, 40), ImageFormat::Webp, (50, 40)),
        (gif(9, 7), ImageFormat::Gif, (9, 7)),
        (
            jpeg_with_orientation(40, 20, 6),
            ImageFormat::Jpeg,
            (20, 40),
        ),
    ] {
        let info = Codec.probe(&bytes).expect("probes");
        assert_eq!((info.format, (info.width, info.height)), (format, size));
    }
}

#[test]
fn every_output_format_is_written_at_the_planned_size() {
    let src = jpeg(640, 480);
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp] {
        assert_eq!(run(&src, "fit-in/300x200", format), (267, 200, format));
        assert_eq!(run(&src, "80x80/smart", format), (80, 80, format));
        assert_eq!(run(&src, "100x0", format), (100, 75, format));
    }
    let avif = Codec
        .transform(&src, &job("fit-in/64x64", ImageFormat::Avif))
        .expect("avif");
    assert_eq!(ImageFormat::sniff(&avif), Some(ImageFormat::Avif));
}

#[test]
fn sources_of_every_format_transform() {
    assert_eq!(
        run(&png_rgba(300, 200), "150x100", ImageFormat::Png),
        (150, 100, ImageFormat::Png)
    );
    assert_eq!(
        run(&png_rgba(300, 200), "150x100", ImageFormat::Jpeg),
        (150, 100, ImageFormat::Jpeg)
    );
    assert_eq!(
        run(&webp(300, 200), "fit-in/30x30", ImageFormat::Webp),
        (30, 20, ImageFormat::Webp)
    );
    assert_eq!(
        run(&gif(40, 20), "20x10", ImageFormat::Png),
        (20, 10, ImageFormat::Png)
    );
}

#[test]
fn fit_in_never_enlarges_but_cover_fills_the_box() {
    let src = jpeg(120, 80);
    assert_eq!(run(&src, "fit-in/1000x1000", ImageFormat::Png).0, 120);
    assert_eq!(
        run(&src, "300x300", ImageFormat::Png),
        (300, 300, ImageFormat::Png)
    );
}

#[test]
fn exif_orientation_is_applied_and_metadata_stripped() {
    let src = jpeg_with_orientation(400, 200, 6);
    assert!(src.windows(13).any(|w| w == b"GPS-SECRET-42"));
    for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp] {
        let out = Codec
            .transform(&src, &job("fit-in/100x100", format))
            .expect("transforms");
        let info = Codec.probe(&out).expect("probes");
        // Rotated to portrait, then fitted.
        assert_eq!((info.width, info.height), (50, 100), "{format:?}");
        assert!(!out.windows(13).any(|w| w == b"GPS-SECRET-42"));
        assert!(!out.windows(4).any(|w| w == b"Exif"));
    }
}

#[test]
fn a_large_jpeg_is_decoded_at_reduced_size_for_a_thumbnail() {
    // 4000×3000 to 80×80: the decoder scales by 1/8 on decode; the output is exact.
    let src = jpeg(4000, 3000);
    assert_eq!(
        run(&src, "80x80", ImageFormat::Jpeg),
        (80, 80, ImageFormat::Jpeg)
    );
    assert_eq!(
        run(&src, "fit-in/300x200", ImageFormat::Webp),
        (267, 200, ImageFormat::Webp)
    );
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    let bomb = png_bomb(100_000, 100_000);
    assert!(bomb.len() < 200);
    let info = Codec.probe(&bomb).expect("the header reads");
    assert_eq!((info.width, info.height), (100_000, 100_000));
    let e = Codec
        .transform(&bomb, &job("fit-in/10x10", ImageFormat::Png))
        .expect_err("refused");
    assert_eq!(e.code(), ErrorCode::ImageTooLarge);
}

#[test]
fn corrupt_truncated_and_foreign_bytes_are_told_apart() {
    let full = jpeg(200, 100);
    let truncated = &full[..full.len() / 3];
    let code = |bytes: &[u8]| {
        Codec
            .transform(bytes, &job("fit-in/10x10", ImageFormat::Png))
            .expect_err("refused")
            .code()
    };
    assert_eq!(code(truncated), ErrorCode::ImageDecodeFailed);
    assert_eq!(code(&full[..40]), ErrorCode::ImageDecodeFailed);
    let png = png_rgba(50, 50);
    assert_eq!(code(&png[..png.len() - 30]), ErrorCode::ImageDecodeFailed);
    let mut garbled = png.clone();
    for b in garbled.iter_mut().skip(60).take(40) {
        *b ^= 0x5A;
    }
    assert_eq!(code(&garbled), ErrorCode::ImageDecodeFailed);
    assert_eq!(
        code(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ErrorCode::ImageUnsupportedFormat
    );
    assert_eq!(code(b"plain text"), ErrorCode::ImageUnsupportedFormat);
    assert_eq!(code(b""), ErrorCode::ImageUnsupportedFormat);
    assert_eq!(code(&png_bomb(0, 10)), ErrorCode::ImageDecodeFailed);
}

#[test]
fn blur_and_quality_change_the_bytes_deterministically() {
    let src = jpeg(200, 150);
    let once = |o: &str| {
        Codec
            .transform(&src, &job(o, ImageFormat::Jpeg))
            .expect("transforms")
    };
    assert_eq!(once("fit-in/100x100"), once("fit-in/100x100"));
    assert_ne!(
        once("fit-in/100x100"),
        once("fit-in/100x100/filters:blur(3)")
    );
    assert!(
        once("fit-in/100x100/filters:quality(10)").len()
            < once("fit-in/100x100/filters:quality(95)").len()
    );
    assert_eq!(
        run(&src, "filters:blur(150)", ImageFormat::Png),
        (200, 150, ImageFormat::Png)
    );
}

#[test]
fn transform_without_size_keeps_the_image_size() {
    let t = Transform::default();
    let j = Job {
        transform: t,
        output: ImageFormat::Png,
        bounds: ImageBounds::default(),
    };
    let out = Codec.transform(&webp(33, 21), &j).expect("converts");
    let info = Codec.probe(&out).expect("probes");
    assert_eq!((info.width, info.height), (33, 21));
}

//! The image codec of docs/api.md §9, behind the domain's
//! [`ImageCodec`] port: JPEG, PNG, WebP and GIF in; JPEG, PNG, WebP and AVIF
//! out. Pure Rust everywhere except the WebP encoder (libwebp, bundled C);
//! nothing to install (docs/decisions.md 54).
//!
//! The pipeline: read the header and refuse a source over the pixel bound
//! before allocating pixels; decode — a JPEG at a reduced size when the
//! target is small (DCT scaling); apply the EXIF orientation; scale and crop
//! in one convolution pass (SIMD); blur; encode from pixels only, so no
//! metadata reaches the output.

use std::panic::{catch_unwind, AssertUnwindSafe};

use stowage_domain::image::{geometry, ImageFormat, ImageInfo, Job};
use stowage_domain::ports::ImageCodec;
use stowage_domain::{Error, ErrorCode, Result};

mod decode;
mod encode;
mod ops;
mod smart;

pub use ops::Pixels;
pub use smart::salient_offset;

/// The codec (stateless; one value serves every thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct Codec;

fn decode_failed(detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorCode::ImageDecodeFailed).with_detail(detail.to_string())
}

fn unsupported() -> Error {
    Error::with_message(
        ErrorCode::ImageUnsupportedFormat,
        "Not a JPEG, PNG, WebP or GIF image",
    )
}

impl ImageCodec for Codec {
    fn probe(&self, bytes: &[u8]) -> Result<ImageInfo> {
        guard(|| decode::probe(bytes).map(|h| h.info()))
    }

    fn transform(&self, bytes: &[u8], job: &Job) -> Result<Vec<u8>> {
        guard(|| run(bytes, job))
    }
}

/// A codec that panics on hostile input is a decode failure, not a crash.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(decode_failed("decoder panicked")))
}

fn run(bytes: &[u8], job: &Job) -> Result<Vec<u8>> {
    let header = decode::probe(bytes)?;
    let info = header.info();
    job.bounds.check_source(info.width, info.height)?;
    let geo = geometry(&job.transform, info.width, info.height);
    let pixels = decode::decode(bytes, &header, geo.scaled)?;
    // Scale factors from the decoded (possibly DCT-reduced) image to the
    // scaled one; the crop is mapped back into decoded pixels.
    let fx = f64::from(pixels.width) / f64::from(geo.scaled.0);
    let fy = f64::from(pixels.height) / f64::from(geo.scaled.1);
    let (out_w, out_h) = geo.output();
    let region = match geo.crop {
        None => None,
        Some(crop) => {
            let (w, h) = (f64::from(crop.width) * fx, f64::from(crop.height) * fy);
            let (x, y) = if job.transform.smart {
                salient_offset(&pixels, w, h)
            } else {
                (f64::from(crop.x) * fx, f64::from(crop.y) * fy)
            };
            Some((x, y, w, h))
        }
    };
    let mut out = if region.is_none() && (out_w, out_h) == (pixels.width, pixels.height) {
        pixels
    } else {
        // The decoded image is dropped as soon as the scaled one exists.
        ops::resize(&pixels, region, out_w, out_h)?
    };
    if let Some(radius) = job.transform.blur {
        ops::blur(&mut out, f64::from(radius));
    }
    encode::encode(&out, job.output, job.quality())
}

/// The format of `bytes` by magic number, or `image/unsupported-format`.
fn format_of(bytes: &[u8]) -> Result<ImageFormat> {
    match ImageFormat::sniff(bytes) {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Webp | ImageFormat::Gif)) => {
            Ok(f)
        }
        _ => Err(unsupported()),
    }
}

#[cfg(test)]
mod tests;

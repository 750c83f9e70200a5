//! Writing images from pixels only (so no metadata survives).

use std::borrow::Cow;

use stowage_domain::image::ImageFormat;
use stowage_domain::{Error, Result};

use crate::ops::Pixels;

fn failed(format: ImageFormat, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("encoding {}: {e}", format.name()))
}

/// Composites RGBA over white for formats without alpha.
fn opaque(p: &Pixels) -> Cow<'_, [u8]> {
    if p.channels == 3 {
        return Cow::Borrowed(&p.data);
    }
    Cow::Owned(
        p.data
            .chunks_exact(4)
            .flat_map(|px| {
                let a = u16::from(px[3]);
                let mix =
                    |v: u8| u8::try_from((u16::from(v) * a + 255 * (255 - a)) / 255).unwrap_or(255);
                [mix(px[0]), mix(px[1]), mix(px[2])]
            })
            .collect(),
    )
}

/// Encodes `p` as `format` at `quality` (1..=100, lossy formats only).
pub(crate) fn encode(p: &Pixels, format: ImageFormat, quality: u8) -> Result<Vec<u8>> {
    let quality = quality.clamp(1, 100);
    match format {
        ImageFormat::Jpeg => {
            let (w, h) = (
                u16::try_from(p.width).map_err(|e| failed(format, e))?,
                u16::try_from(p.height).map_err(|e| failed(format, e))?,
            );
            let mut out = Vec::new();
            jpeg_encoder::Encoder::new(&mut out, quality)
                .encode(&opaque(p), w, h, jpeg_encoder::ColorType::Rgb)
                .map_err(|e| failed(format, e))?;
            Ok(out)
        }
        ImageFormat::Webp => {
            let encoder = if p.channels == 4 {
                webp::Encoder::from_rgba(&p.data, p.width, p.height)
            } else {
                webp::Encoder::from_rgb(&p.data, p.width, p.height)
            };
            let memory = encoder
                .encode_simple(false, f32::from(quality))
                .map_err(|e| failed(format, format!("{e:?}")))?;
            Ok(memory.to_vec())
        }
        ImageFormat::Avif => {
            let encoder = ravif::Encoder::new()
                .with_quality(f32::from(quality))
                .with_speed(8)
                .with_num_threads(Some(1));
            let (w, h) = (p.width as usize, p.height as usize);
            let encoded = if p.channels == 4 {
                let px: Vec<rgb::RGBA8> = p
                    .data
                    .chunks_exact(4)
                    .map(|c| rgb::RGBA8::new(c[0], c[1], c[2], c[3]))
                    .collect();
                encoder.encode_rgba(imgref::Img::new(&px[..], w, h))
            } else {
                let px: Vec<rgb::RGB8> = p
                    .data
                    .chunks_exact(3)
                    .map(|c| rgb::RGB8::new(c[0], c[1], c[2]))
                    .collect();
                encoder.encode_rgb(imgref::Img::new(&px[..], w, h))
            };
            Ok(encoded.map_err(|e| failed(format, e))?.avif_file)
        }
        ImageFormat::Png | ImageFormat::Gif => {
            let mut out = Vec::new();
            let mut e = png::Encoder::new(&mut out, p.width, p.height);
            e.set_color(if p.channels == 4 {
                png::ColorType::Rgba
            } else {
                png::ColorType::Rgb
            });
            e.set_depth(png::BitDepth::Eight);
            e.set_compression(png::Compression::Fast);
            let mut writer = e.write_header().map_err(|e| failed(format, e))?;
            writer
                .write_image_data(&p.data)
                .map_err(|e| failed(format, e))?;
            writer.finish().map_err(|e| failed(format, e))?;
            Ok(out)
        }
    }
}

//! Reading images: the header first (format, size, orientation) with no
//! pixel allocated, then the pixels — a JPEG reduced by DCT scaling when the
//! target is small enough.

use std::io::Cursor;

use stowage_domain::image::{ImageFormat, ImageInfo};
use stowage_domain::Result;

use crate::ops::{orient, Pixels};
use crate::{decode_failed, format_of};

/// What the header says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    format: ImageFormat,
    /// As stored (before orientation).
    width: u32,
    height: u32,
    /// EXIF orientation, 1..=8.
    orientation: u8,
}

impl Header {
    /// Whether the orientation swaps width and height.
    fn transposed(&self) -> bool {
        self.orientation >= 5
    }

    /// Format and size as displayed (after orientation).
    pub(crate) fn info(&self) -> ImageInfo {
        let (width, height) = if self.transposed() {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        };
        ImageInfo {
            format: self.format,
            width,
            height,
        }
    }
}

/// Reads the header of `bytes`.
pub(crate) fn probe(bytes: &[u8]) -> Result<Header> {
    let format = format_of(bytes)?;
    let (width, height, exif) = match format {
        ImageFormat::Jpeg => {
            let mut d = jpeg_decoder::Decoder::new(bytes);
            d.read_info().map_err(decode_failed)?;
            let info = d.info().ok_or_else(|| decode_failed("no JPEG frame"))?;
            (
                u32::from(info.width),
                u32::from(info.height),
                jpeg_exif(bytes),
            )
        }
        ImageFormat::Png => {
            let reader = png_reader(bytes)?;
            let info = reader.info();
            let exif = info.exif_metadata.as_deref().map(<[u8]>::to_vec);
            (info.width, info.height, exif)
        }
        ImageFormat::Webp => {
            let mut d = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(decode_failed)?;
            let (w, h) = d.dimensions();
            (w, h, d.exif_metadata().ok().flatten())
        }
        _ => {
            let d = gif_options().read_info(bytes).map_err(decode_failed)?;
            (u32::from(d.width()), u32::from(d.height()), None)
        }
    };
    Ok(Header {
        format,
        width,
        height,
        orientation: exif.as_deref().map_or(1, exif_orientation),
    })
}

fn png_reader(bytes: &[u8]) -> Result<png::Reader<&[u8]>> {
    let mut d = png::Decoder::new_with_limits(
        bytes,
        png::Limits {
            // Pixels are bounded by the caller from the header; this bounds
            // the decoder's own buffers (text chunks, ICC profiles).
            bytes: 1 << 30,
        },
    );
    d.set_transformations(png::Transformations::normalize_to_color8());
    d.read_info().map_err(decode_failed)
}

fn gif_options() -> gif::DecodeOptions {
    let mut o = gif::DecodeOptions::new();
    o.set_color_output(gif::ColorOutput::RGBA);
    o.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(1 << 30).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    o
}

/// Decodes the pixels, oriented, at least `want` (oriented) when the format
/// can decode at a reduced size, else at full size.
pub(crate) fn decode(bytes: &[u8], header: &Header, want: (u32, u32)) -> Result<Pixels> {
    let pixels = match header.format {
        ImageFormat::Jpeg => decode_jpeg(bytes, header, want)?,
        ImageFormat::Png => decode_png(bytes)?,
        ImageFormat::Webp => decode_webp(bytes)?,
        _ => decode_gif(bytes)?,
    };
    Ok(orient(pixels, header.orientation))
}

fn decode_jpeg(bytes: &[u8], header: &Header, want: (u32, u32)) -> Result<Pixels> {
    let mut d = jpeg_decoder::Decoder::new(bytes);
    let (ww, wh) = if header.transposed() {
        (want.1, want.0)
    } else {
        want
    };
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    let (w, h) = d.scale(clamp(ww), clamp(wh)).map_err(decode_failed)?;
    let data = d.decode().map_err(decode_failed)?;
    let info = d.info().ok_or_else(|| decode_failed("no JPEG frame"))?;
    let (w, h) = (u32::from(w), u32::from(h));
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0]])
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|c| {
                // Adobe CMYK JPEGs store inverted values: c[i] is 255 - ink.
                let k = u16::from(c[3]);
                let ch = |v: u8| u8::try_from(u16::from(v) * k / 255).unwrap_or(255);
                [ch(c[0]), ch(c[1]), ch(c[2])]
            })
            .collect(),
    };
    Pixels::new(w, h, 3, rgb)
}

fn decode_png(bytes: &[u8]) -> Result<Pixels> {
    let mut reader = png_reader(bytes)?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf).map_err(decode_failed)?;
    buf.truncate(frame.buffer_size());
    let (w, h) = (frame.width, frame.height);
    match frame.color_type {
        png::ColorType::Rgb => Pixels::new(w, h, 3, buf),
        png::ColorType::Rgba => Pixels::new(w, h, 4, buf),
        png::ColorType::Grayscale => {
            Pixels::new(w, h, 3, buf.iter().flat_map(|&l| [l, l, l]).collect())
        }
        png::ColorType::GrayscaleAlpha => Pixels::new(
            w,
            h,
            4,
            buf.chunks_exact(2)
                .flat_map(|c| [c[0], c[0], c[0], c[1]])
                .collect(),
        ),
        png::ColorType::Indexed => Err(decode_failed("palette not expanded")),
    }
}

/// Still images through libwebp (already linked for encoding; 2.7× faster
/// than `image-webp` here, docs/decisions.md 54), animations' first frame
/// through `image-webp` (libwebp's simple API decodes no animation).
fn decode_webp(bytes: &[u8]) -> Result<Pixels> {
    if let Some(image) = webp::Decoder::new(bytes).decode() {
        let channels = if image.is_alpha() { 4 } else { 3 };
        return Pixels::new(image.width(), image.height(), channels, image.to_vec());
    }
    let mut d = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(decode_failed)?;
    let (w, h) = d.dimensions();
    let channels = if d.has_alpha() { 4 } else { 3 };
    let size = d
        .output_buffer_size()
        .ok_or_else(|| decode_failed("WebP too large"))?;
    let mut buf = vec![0; size];
    d.read_image(&mut buf).map_err(decode_failed)?;
    Pixels::new(w, h, channels, buf)
}

fn decode_gif(bytes: &[u8]) -> Result<Pixels> {
    let mut d = gif_options().read_info(bytes).map_err(decode_failed)?;
    let (w, h) = (u32::from(d.width()), u32::from(d.height()));
    let mut canvas = vec![0u8; w as usize * h as usize * 4];
    let frame = d
        .read_next_frame()
        .map_err(decode_failed)?
        .ok_or_else(|| decode_failed("GIF without a frame"))?;
    // The first frame, drawn at its place on the (transparent) screen.
    let (fx, fy) = (usize::from(frame.left), usize::from(frame.top));
    let fw = usize::from(frame.width);
    for (row, line) in frame.buffer.chunks_exact(fw * 4).enumerate() {
        let y = fy + row;
        if y >= h as usize {
            break;
        }
        let visible = (w as usize).saturating_sub(fx).min(fw);
        let start = (y * w as usize + fx) * 4;
        canvas[start..start + visible * 4].copy_from_slice(&line[..visible * 4]);
    }
    Pixels::new(w, h, 4, canvas)
}

/// The APP1 `Exif` payload of a JPEG (the TIFF structure), read from the
/// markers before the first scan.
fn jpeg_exif(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let body = bytes.get(i + 4..i + 2 + len)?;
        if marker == 0xE1 {
            if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                return Some(tiff.to_vec());
            }
        }
        i += 2 + len;
    }
    None
}

/// The orientation tag (0x0112) of IFD0 of an EXIF TIFF structure; 1 when
/// absent or unreadable.
pub(crate) fn exif_orientation(tiff: &[u8]) -> u8 {
    let tiff = tiff.strip_prefix(b"Exif\0\0").unwrap_or(tiff);
    let big = match tiff.get(..2) {
        Some(b"MM") => true,
        Some(b"II") => false,
        _ => return 1,
    };
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(o..o + 2)?.try_into().ok()?;
        Some(if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(o..o + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let found = (|| {
        let ifd = usize::try_from(u32_at(4)?).ok()?;
        let count = usize::from(u16_at(ifd)?);
        (0..count).find_map(|n| {
            let entry = ifd + 2 + n * 12;
            (u16_at(entry)? == 0x0112).then(|| u16_at(entry + 8))?
        })
    })();
    match found {
        Some(o @ 1..=8) => u8::try_from(o).unwrap_or(1),
        _ => 1,
    }
}

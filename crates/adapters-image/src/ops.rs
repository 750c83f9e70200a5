//! Operations on decoded pixels: orientation, scale-and-crop, blur.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use stowage_domain::{Error, Result};

/// 8-bit pixels, RGB (3 channels) or RGBA (4), rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// 3 (RGB) or 4 (RGBA).
    pub channels: usize,
    /// `width * height * channels` bytes.
    pub data: Vec<u8>,
}

impl Pixels {
    /// Pixels from a buffer of exactly the right length.
    ///
    /// # Errors
    /// `image/decode-failed` when the buffer does not match the size.
    pub fn new(width: u32, height: u32, channels: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != width as usize * height as usize * channels {
            return Err(crate::decode_failed("pixel buffer of the wrong length"));
        }
        Ok(Self {
            width,
            height,
            channels,
            data,
        })
    }

    fn pixel_type(&self) -> PixelType {
        if self.channels == 4 {
            PixelType::U8x4
        } else {
            PixelType::U8x3
        }
    }
}

/// Applies EXIF orientation `o` (1..=8): the pixels as they are meant to be seen.
pub(crate) fn orient(p: Pixels, o: u8) -> Pixels {
    if !(2..=8).contains(&o) {
        return p;
    }
    let (w, h, c) = (p.width as usize, p.height as usize, p.channels);
    let (ow, oh) = if o >= 5 { (h, w) } else { (w, h) };
    let mut out = vec![0u8; p.data.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match o {
                2 => (w - 1 - x, y),
                3 => (w - 1 - x, h - 1 - y),
                4 => (x, h - 1 - y),
                5 => (y, x),
                6 => (y, h - 1 - x),
                7 => (w - 1 - y, h - 1 - x),
                _ => (w - 1 - y, x),
            };
            let from = (sy * w + sx) * c;
            let to = (y * ow + x) * c;
            out[to..to + c].copy_from_slice(&p.data[from..from + c]);
        }
    }
    Pixels {
        width: u32::try_from(ow).unwrap_or(u32::MAX),
        height: u32::try_from(oh).unwrap_or(u32::MAX),
        channels: c,
        data: out,
    }
}

/// Scales `region` (x, y, w, h in pixels of `src`; all of it when `None`) to
/// exactly `width`×`height`, in one Lanczos-3 pass (alpha premultiplied).
pub(crate) fn resize(
    src: &Pixels,
    region: Option<(f64, f64, f64, f64)>,
    width: u32,
    height: u32,
) -> Result<Pixels> {
    let full = (0.0, 0.0, f64::from(src.width), f64::from(src.height));
    let (x, y, w, h) = region.unwrap_or(full);
    let failed = |e: &dyn std::fmt::Display| Error::internal(format!("resize: {e}"));
    let view = ImageRef::new(src.width, src.height, &src.data, src.pixel_type())
        .map_err(|e| failed(&e))?;
    let mut dst = Image::new(width, height, src.pixel_type());
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(x, y, w, h);
    Resizer::new()
        .resize(&view, &mut dst, &options)
        .map_err(|e| failed(&e))?;
    Pixels::new(width, height, src.channels, dst.into_vec())
}

/// The widths of the `n` box blurs whose succession approximates a Gaussian
/// of standard deviation `sigma` (W. Jarosz, "Fast image convolutions").
fn box_sizes(sigma: f64, n: usize) -> Vec<usize> {
    let nf = n as f64;
    let ideal = (12.0 * sigma * sigma / nf + 1.0).sqrt();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let mut wl = ideal.floor() as usize;
    if wl.is_multiple_of(2) {
        wl = wl.saturating_sub(1).max(1);
    }
    let wlf = wl as f64;
    let m = ((12.0 * sigma * sigma - nf * wlf * wlf - 4.0 * nf * wlf - 3.0 * nf)
        / (-4.0 * wlf - 4.0))
        .round();
    (0..n)
        .map(|i| if (i as f64) < m { wl } else { wl + 2 })
        .collect()
}

/// Gaussian blur of standard deviation `radius` (as the reference grammar's
/// `blur(radius)`), by three box blurs in each direction: linear in the
/// pixel count whatever the radius.
pub(crate) fn blur(p: &mut Pixels, radius: f64) {
    let (w, h, c) = (p.width as usize, p.height as usize, p.channels);
    let mut tmp = vec![0u8; p.data.len()];
    for size in box_sizes(radius, 3) {
        let r = (size - 1) / 2;
        // Rows into tmp, then columns back into p.
        box_pass(&p.data, &mut tmp, w, h, c, r, true);
        box_pass(&tmp, &mut p.data, w, h, c, r, false);
    }
}

/// One box blur of radius `r` along rows (`horizontal`) or columns, edges
/// extended.
fn box_pass(src: &[u8], dst: &mut [u8], w: usize, h: usize, c: usize, r: usize, horizontal: bool) {
    let (lines, len, step, line_step) = if horizontal {
        (h, w, c, w * c)
    } else {
        (w, h, w * c, c)
    };
    if len == 0 {
        return;
    }
    let width = 2 * r + 1;
    let width_u32 = u32::try_from(width).unwrap_or(u32::MAX);
    for line in 0..lines {
        let base = line * line_step;
        for ch in 0..c {
            let at = |i: usize| u32::from(src[base + i.min(len - 1) * step + ch]);
            // Window [i - r, i + r], indices clamped to the line.
            let mut sum = at(0) * u32::try_from(r + 1).unwrap_or(u32::MAX);
            for i in 1..=r {
                sum += at(i);
            }
            for i in 0..len {
                let v = (sum + width_u32 / 2) / width_u32;
                dst[base + i * step + ch] = u8::try_from(v).unwrap_or(u8::MAX);
                let leaving = at(i.saturating_sub(r));
                let entering = at(i + r + 1);
                sum = sum + entering - leaving;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(w: u32, h: u32) -> Pixels {
        let data = (0..w * h)
            .flat_map(|i| {
                let v = u8::try_from(i).unwrap_or(0);
                [v, v, v]
            })
            .collect();
        Pixels::new(w, h, 3, data).expect("sized")
    }

    fn at(p: &Pixels, x: u32, y: u32) -> u8 {
        p.data[((y * p.width + x) as usize) * p.channels]
    }

    #[test]
    fn orientations_move_the_corners_where_exif_says() {
        // 3×2: 0 1 2 / 3 4 5
        let src = numbered(3, 2);
        let cases: [(u8, (u32, u32), [u8; 2]); 8] = [
            (1, (3, 2), [0, 1]),
            (2, (3, 2), [2, 1]),
            (3, (3, 2), [5, 4]),
            (4, (3, 2), [3, 4]),
            (5, (2, 3), [0, 3]),
            (6, (2, 3), [3, 0]),
            (7, (2, 3), [5, 2]),
            (8, (2, 3), [2, 5]),
        ];
        for (o, size, first_row) in cases {
            let p = orient(src.clone(), o);
            assert_eq!((p.width, p.height), size, "orientation {o}");
            assert_eq!([at(&p, 0, 0), at(&p, 1, 0)], first_row, "orientation {o}");
        }
    }

    #[test]
    fn box_sizes_grow_with_sigma() {
        assert_eq!(box_sizes(1.0, 3).len(), 3);
        for s in [1.0, 3.0, 10.0, 150.0] {
            let sizes = box_sizes(s, 3);
            assert!(sizes.iter().all(|b| !b.is_multiple_of(2)), "{sizes:?}");
            let var: f64 = sizes.iter().map(|&b| ((b * b) as f64 - 1.0) / 12.0).sum();
            assert!((var.sqrt() - s).abs() / s < 0.2, "sigma {s}: {sizes:?}");
        }
    }

    #[test]
    fn blur_keeps_flat_images_flat_and_spreads_a_dot() {
        let mut flat = Pixels::new(20, 10, 4, vec![77; 20 * 10 * 4]).expect("sized");
        blur(&mut flat, 5.0);
        assert!(flat.data.iter().all(|&v| v == 77));
        let mut dot = Pixels::new(21, 21, 3, vec![0; 21 * 21 * 3]).expect("sized");
        let centre = (10 * 21 + 10) * 3;
        dot.data[centre..centre + 3].copy_from_slice(&[255, 255, 255]);
        blur(&mut dot, 2.0);
        assert!(at(&dot, 10, 10) < 255 && at(&dot, 10, 10) > 0);
        assert!(at(&dot, 12, 10) > 0 && at(&dot, 10, 12) > 0);
        assert_eq!(at(&dot, 0, 0), 0);
    }

    #[test]
    fn resize_scales_and_crops() {
        let src = Pixels::new(40, 20, 3, vec![9; 40 * 20 * 3]).expect("sized");
        let out = resize(&src, None, 10, 5).expect("resized");
        assert_eq!((out.width, out.height, out.data.len()), (10, 5, 150));
        let out = resize(&src, Some((10.0, 0.0, 20.0, 20.0)), 7, 7).expect("cropped");
        assert_eq!((out.width, out.height), (7, 7));
        assert!(out.data.iter().all(|&v| v == 9));
    }
}

//! Smart crop: where to place a crop window so it keeps the most salient
//! part of the image. Saliency follows smartcrop's recipe, on a thumbnail of
//! at most [`ANALYSIS_SIDE`] pixels a side: edges (a Laplacian of the
//! luminance), skin tones and saturation, each scored per pixel; the window
//! whose sum is highest wins, ties going to the one nearest the centre.

use crate::ops::{resize, Pixels};

/// Longest side of the thumbnail the saliency is computed on.
const ANALYSIS_SIDE: u32 = 192;

const EDGE_WEIGHT: f32 = 1.0;
const SKIN_WEIGHT: f32 = 1.8;
const SATURATION_WEIGHT: f32 = 0.6;
/// smartcrop's reference skin colour, normalised.
const SKIN: [f32; 3] = [0.78, 0.57, 0.44];

/// The top-left corner, in pixels of `p`, of the `w`×`h` window (no larger
/// than `p`) that holds the most salient region.
pub fn salient_offset(p: &Pixels, w: f64, h: f64) -> (f64, f64) {
    let (pw, ph) = (f64::from(p.width), f64::from(p.height));
    let (w, h) = (w.min(pw), h.min(ph));
    let centre = ((pw - w) / 2.0, (ph - h) / 2.0);
    let factor = (f64::from(ANALYSIS_SIDE) / pw.max(ph)).min(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let side = |v: f64| ((v * factor).round() as u32).max(1);
    let (tw, th) = (side(pw), side(ph));
    let Ok(thumb) = resize(p, None, tw, th) else {
        return centre;
    };
    let scores = saliency(&thumb);
    let (cw, ch) = (side(w).min(tw), side(h).min(th));
    let (x, y) = best_window(&scores, tw as usize, th as usize, cw as usize, ch as usize);
    let back = |v: usize, limit: f64| (v as f64 / factor).min(limit).max(0.0);
    (back(x, pw - w), back(y, ph - h))
}

/// Per-pixel saliency of `p`, row-major.
fn saliency(p: &Pixels) -> Vec<f32> {
    let (w, h, c) = (p.width as usize, p.height as usize, p.channels);
    let rgb = |x: usize, y: usize| -> [f32; 3] {
        let i = (y * w + x) * c;
        let px = &p.data[i..i + 3];
        [
            f32::from(px[0]) / 255.0,
            f32::from(px[1]) / 255.0,
            f32::from(px[2]) / 255.0,
        ]
    };
    let luma = |v: [f32; 3]| 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2];
    let mut out = vec![0.0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let v = rgb(x, y);
            let l = luma(v);
            let n = |dx: isize, dy: isize| {
                let nx = x.saturating_add_signed(dx).min(w - 1);
                let ny = y.saturating_add_signed(dy).min(h - 1);
                luma(rgb(nx, ny))
            };
            let edge = (4.0 * l - n(-1, 0) - n(1, 0) - n(0, -1) - n(0, 1)).abs();
            // Skin: closeness of the chromaticity to the reference, in mid luminance.
            let mag = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-6);
            let d = ((v[0] / mag - SKIN[0]).powi(2)
                + (v[1] / mag - SKIN[1]).powi(2)
                + (v[2] / mag - SKIN[2]).powi(2))
            .sqrt();
            let skin = if (0.2..=1.0).contains(&l) {
                (1.0 - d / 0.3).max(0.0)
            } else {
                0.0
            };
            // Saturation (HSL), ignoring near-black and near-white.
            let max = v[0].max(v[1]).max(v[2]);
            let min = v[0].min(v[1]).min(v[2]);
            let lightness = (max + min) / 2.0;
            let sat = if max == min || !(0.05..=0.95).contains(&lightness) {
                0.0
            } else {
                (max - min) / (1.0 - (2.0 * lightness - 1.0).abs())
            };
            out[y * w + x] = EDGE_WEIGHT * edge + SKIN_WEIGHT * skin + SATURATION_WEIGHT * sat;
        }
    }
    out
}

/// The window of `cw`×`ch` over a `w`×`h` score map with the highest sum
/// (summed-area table), ties to the one nearest the centre.
fn best_window(scores: &[f32], w: usize, h: usize, cw: usize, ch: usize) -> (usize, usize) {
    let mut table = vec![0.0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += f64::from(scores[y * w + x]);
            table[(y + 1) * (w + 1) + x + 1] = table[y * (w + 1) + x + 1] + row;
        }
    }
    let sum = |x: usize, y: usize| {
        let at = |x: usize, y: usize| table[y * (w + 1) + x];
        at(x + cw, y + ch) - at(x, y + ch) - at(x + cw, y) + at(x, y)
    };
    let (cx, cy) = ((w - cw) as f64 / 2.0, (h - ch) as f64 / 2.0);
    let mut best = (cx.round() as usize, cy.round() as usize);
    let mut best_key = (f64::MIN, f64::MIN);
    for y in 0..=h - ch {
        for x in 0..=w - cw {
            let distance = (x as f64 - cx).hypot(y as f64 - cy);
            // Sums compared at a precision that lets near-equal windows tie.
            let key = ((sum(x, y) * 1e3).round(), -distance);
            if key > best_key {
                best_key = key;
                best = (x, y);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat grey scene with a busy, saturated subject at `(sx, sy)`.
    fn scene(w: u32, h: u32, sx: u32, sy: u32, size: u32) -> Pixels {
        let mut data = vec![128u8; (w * h * 3) as usize];
        for y in sy..(sy + size).min(h) {
            for x in sx..(sx + size).min(w) {
                let i = ((y * w + x) * 3) as usize;
                let px = if (x / 4 + y / 4) % 2 == 0 {
                    [220, 30, 40]
                } else {
                    [30, 60, 220]
                };
                data[i..i + 3].copy_from_slice(&px);
            }
        }
        Pixels::new(w, h, 3, data).expect("sized")
    }

    #[test]
    fn the_window_moves_to_an_off_centre_subject() {
        // Subject at the right edge of a wide image: a centred 200×200 window
        // (x = 200) would miss it entirely.
        let p = scene(600, 200, 480, 50, 100);
        let (x, y) = salient_offset(&p, 200.0, 200.0);
        assert!((380.0..=400.0).contains(&x), "x = {x}");
        assert!(y.abs() < 1.0);
        // Subject at the top of a tall image.
        let p = scene(300, 900, 100, 20, 100);
        let (x, y) = salient_offset(&p, 300.0, 300.0);
        assert!(x.abs() < 1.0);
        assert!(y <= 20.0, "y = {y}");
        // Subject in the bottom-left corner of a big image.
        let p = scene(2000, 1500, 50, 1300, 150);
        let (x, y) = salient_offset(&p, 500.0, 500.0);
        assert!(x <= 50.0 && y >= 950.0, "({x}, {y})");
    }

    #[test]
    fn a_featureless_image_is_cropped_in_the_centre() {
        let p = Pixels::new(400, 100, 3, vec![90; 400 * 100 * 3]).expect("sized");
        let (x, y) = salient_offset(&p, 100.0, 100.0);
        assert!((x - 150.0).abs() <= 3.0, "x = {x}");
        assert!(y.abs() < 1.0);
    }

    #[test]
    fn skin_tones_attract_the_window() {
        // A skin-coloured patch left, nothing else.
        let mut p = Pixels::new(600, 200, 3, vec![40; 600 * 200 * 3]).expect("sized");
        for y in 60..140u32 {
            for x in 20..100u32 {
                let i = ((y * 600 + x) * 3) as usize;
                p.data[i..i + 3].copy_from_slice(&[199, 145, 112]);
            }
        }
        let (x, _) = salient_offset(&p, 200.0, 200.0);
        assert!(x <= 20.0, "x = {x}");
    }

    #[test]
    fn a_window_as_large_as_the_image_stays_put() {
        let p = scene(100, 80, 0, 0, 30);
        assert_eq!(salient_offset(&p, 100.0, 80.0), (0.0, 0.0));
        assert_eq!(salient_offset(&p, 500.0, 500.0), (0.0, 0.0));
    }
}

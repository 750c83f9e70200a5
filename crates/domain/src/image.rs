//! Image transformations (docs/api.md §9): the URL grammar of the reference's
//! image CDN, the geometry it asks for, the output format a request gets, and
//! the names and validators of derived images. Decoding and encoding are the
//! [`crate::ports::ImageCodec`] port's job; everything decided before a pixel
//! is touched is decided here.
//!
//! ```
//! use stowage_domain::image::{parse_path, ImageBounds, ImageFormat};
//!
//! let (t, key) = parse_path("fit-in/300x200/filters:quality(80):format(webp)/p/e/k.jpg",
//!     &ImageBounds::default()).unwrap();
//! assert!(t.fit_in);
//! assert_eq!(t.size, Some((300, 200)));
//! assert_eq!(t.format, Some(ImageFormat::Webp));
//! assert_eq!(key, "p/e/k.jpg");
//! assert_eq!(t.to_string(), "fit-in/300x200/filters:format(webp):quality(80)");
//! ```

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorCode, Result};
use crate::model::FileId;

/// An image format Stowage reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (read and write).
    Jpeg,
    /// PNG (read and write).
    Png,
    /// WebP (read and write).
    Webp,
    /// GIF (read only: its first frame; written as PNG).
    Gif,
    /// AVIF (write only).
    Avif,
}

impl ImageFormat {
    /// The format of a source file by its registered MIME type; `None` for
    /// anything that is not a readable image (SVG included: never rasterized).
    pub fn of_source_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/webp" => Some(Self::Webp),
            "image/gif" => Some(Self::Gif),
            _ => None,
        }
    }

    /// The format the bytes are in, by their magic numbers.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', b'f' | b's', ..] => {
                Some(Self::Avif)
            }
            _ => None,
        }
    }

    /// The MIME type of this format.
    pub const fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
        }
    }

    /// The name used in `format(...)` and file extensions.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Avif => "avif",
        }
    }

    /// Whether `quality(...)` applies to this output format.
    pub const fn is_lossy(self) -> bool {
        matches!(self, Self::Jpeg | Self::Webp | Self::Avif)
    }
}

/// The bounds of docs/api.md §9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageBounds {
    /// Largest target width or height (`STOWAGE_IMAGE_MAX_DIMENSION`).
    pub max_dimension: u32,
    /// Largest source, in pixels (`STOWAGE_IMAGE_MAX_SOURCE_PIXELS`).
    pub max_source_pixels: u64,
    /// Largest source file, in bytes: larger files are refused before they are read.
    pub max_source_bytes: u64,
}

impl Default for ImageBounds {
    fn default() -> Self {
        Self {
            max_dimension: 4096,
            max_source_pixels: 50_000_000,
            max_source_bytes: 128 << 20,
        }
    }
}

impl ImageBounds {
    /// Refuses a source whose header declares more pixels than allowed (a
    /// decompression bomb is refused here, before any pixel is allocated).
    ///
    /// # Errors
    /// `image/too-large`; `image/decode-failed` for a zero dimension.
    pub fn check_source(&self, width: u32, height: u32) -> Result<()> {
        if width == 0 || height == 0 {
            return Err(Error::with_message(
                ErrorCode::ImageDecodeFailed,
                "The image declares no pixels",
            ));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_source_pixels {
            return Err(Error::with_message(
                ErrorCode::ImageTooLarge,
                format!(
                    "The source image has {pixels} pixels; at most {} are transformed",
                    self.max_source_pixels
                ),
            ));
        }
        Ok(())
    }
}

/// One transformation: what the option segments of a URL asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Transform {
    /// `fit-in`: fit inside the box, keep the aspect ratio, never enlarge.
    pub fit_in: bool,
    /// `{W}x{H}`; 0 follows the aspect ratio.
    pub size: Option<(u32, u32)>,
    /// `smart`: crop around the most salient region.
    pub smart: bool,
    /// `quality(1-100)`.
    pub quality: Option<u8>,
    /// `format(webp|jpeg|png|avif)`.
    pub format: Option<ImageFormat>,
    /// `blur(1-150)`: Gaussian radius in pixels.
    pub blur: Option<u8>,
}

/// The canonical option string: segments in grammar order, filters sorted by
/// name, so two spellings of one transformation share one derived image.
impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if self.fit_in {
            parts.push("fit-in".into());
        }
        if let Some((w, h)) = self.size {
            parts.push(format!("{w}x{h}"));
        }
        if self.smart {
            parts.push("smart".into());
        }
        let mut filters = Vec::new();
        if let Some(b) = self.blur {
            filters.push(format!("blur({b})"));
        }
        if let Some(format) = self.format {
            filters.push(format!("format({})", format.name()));
        }
        if let Some(q) = self.quality {
            filters.push(format!("quality({q})"));
        }
        if !filters.is_empty() {
            parts.push(format!("filters:{}", filters.join(":")));
        }
        f.write_str(&parts.join("/"))
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::with_message(ErrorCode::ImageInvalidOptions, message)
}

/// What kind of option a path segment is, if it looks like one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Segment {
    FitIn,
    Size,
    Smart,
    Filters,
}

impl Segment {
    fn of(segment: &str) -> Option<Self> {
        if segment == "fit-in" {
            Some(Self::FitIn)
        } else if segment == "smart" {
            Some(Self::Smart)
        } else if segment.starts_with("filters:") {
            Some(Self::Filters)
        } else {
            let (w, h) = segment.split_once('x')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (digits(w) && digits(h)).then_some(Self::Size)
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::FitIn => "fit-in",
            Self::Size => "{W}x{H}",
            Self::Smart => "smart",
            Self::Filters => "filters:",
        }
    }
}

/// Splits `/v1/img/` paths: the options read from the left while segments
/// look like options, then the key (everything else, `/` included).
///
/// # Errors
/// `image/invalid-options` for no option, an option out of order or
/// repeated, `fit-in` or `smart` without a size, `smart` with `fit-in`, or a
/// bad filter; `image/too-large` for a side over `bounds.max_dimension`;
/// `file/not-found` when no key follows the options.
pub fn parse_path<'a>(path: &'a str, bounds: &ImageBounds) -> Result<(Transform, &'a str)> {
    let mut rest = path;
    let mut options = Vec::new();
    while let Some((segment, tail)) = rest.split_once('/') {
        let Some(kind) = Segment::of(segment) else {
            break;
        };
        options.push((kind, segment));
        rest = tail;
    }
    let transform = build(&options, bounds)?;
    if rest.is_empty() {
        return Err(Error::new(ErrorCode::FileNotFound));
    }
    Ok((transform, rest))
}

/// Parses a whole option string (the `transform` of a download-URL request):
/// every segment must be an option.
///
/// # Errors
/// As [`parse_path`], and `image/invalid-options` for a segment that is not an option.
pub fn parse_options(options: &str, bounds: &ImageBounds) -> Result<Transform> {
    let options = options.strip_suffix('/').unwrap_or(options);
    let mut parsed = Vec::new();
    for segment in options.split('/') {
        let kind = Segment::of(segment).ok_or_else(|| {
            invalid(format!(
                "`{}` is not a transformation option",
                shorten(segment)
            ))
        })?;
        parsed.push((kind, segment));
    }
    build(&parsed, bounds)
}

/// At most 40 characters of a client's text, for messages.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

fn build(segments: &[(Segment, &str)], bounds: &ImageBounds) -> Result<Transform> {
    if segments.is_empty() {
        return Err(invalid(
            "No transformation option: expected fit-in, {W}x{H}, smart or filters:",
        ));
    }
    let mut t = Transform::default();
    let mut last: Option<Segment> = None;
    for &(kind, text) in segments {
        if let Some(prev) = last {
            if kind == prev {
                return Err(invalid(format!("`{}` is repeated", kind.name())));
            }
            if kind < prev {
                return Err(invalid(format!(
                    "`{}` must come before `{}`",
                    kind.name(),
                    prev.name()
                )));
            }
        }
        last = Some(kind);
        match kind {
            Segment::FitIn => t.fit_in = true,
            Segment::Smart => t.smart = true,
            Segment::Size => t.size = Some(parse_size(text, bounds)?),
            Segment::Filters => parse_filters(&text["filters:".len()..], &mut t)?,
        }
    }
    if t.size.is_none() && (t.fit_in || t.smart) {
        return Err(invalid("`fit-in` and `smart` need a {W}x{H} size"));
    }
    if t.fit_in && t.smart {
        return Err(invalid("`smart` crops, `fit-in` does not: use one"));
    }
    Ok(t)
}

fn parse_size(text: &str, bounds: &ImageBounds) -> Result<(u32, u32)> {
    let (w, h) = text.split_once('x').unwrap_or((text, ""));
    let side = |s: &str| -> Result<u32> {
        // Digits only (checked by `Segment::of`); a number too long for u32 is
        // as much over the bound as any other.
        let v = s.parse::<u32>().unwrap_or(u32::MAX);
        if v > bounds.max_dimension {
            return Err(Error::with_message(
                ErrorCode::ImageTooLarge,
                format!(
                    "A target side of {} is over the limit of {}",
                    shorten(s),
                    bounds.max_dimension
                ),
            ));
        }
        Ok(v)
    };
    Ok((side(w)?, side(h)?))
}

fn parse_filters(list: &str, t: &mut Transform) -> Result<()> {
    if list.is_empty() {
        return Err(invalid("`filters:` names no filter"));
    }
    for filter in list.split(':') {
        let (name, arg) = filter
            .strip_suffix(')')
            .and_then(|f| f.split_once('('))
            .ok_or_else(|| invalid(format!("`{}` is not a filter(argument)", shorten(filter))))?;
        let number = |lo: u32, hi: u32| -> Result<u8> {
            let ok = !arg.is_empty() && arg.len() <= 3 && arg.bytes().all(|b| b.is_ascii_digit());
            arg.parse::<u32>()
                .ok()
                .filter(|v| ok && (lo..=hi).contains(v))
                .and_then(|v| u8::try_from(v).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "`{name}` takes a whole number from {lo} to {hi}, not `{}`",
                        shorten(arg)
                    ))
                })
        };
        let repeated = || invalid(format!("The filter `{name}` is repeated"));
        match name {
            "quality" => {
                if t.quality.replace(number(1, 100)?).is_some() {
                    return Err(repeated());
                }
            }
            "blur" => {
                if t.blur.replace(number(1, 150)?).is_some() {
                    return Err(repeated());
                }
            }
            "format" => {
                let format = match arg {
                    "webp" => ImageFormat::Webp,
                    "jpeg" => ImageFormat::Jpeg,
                    "png" => ImageFormat::Png,
                    "avif" => ImageFormat::Avif,
                    other => {
                        return Err(invalid(format!(
                            "`format` takes webp, jpeg, png or avif, not `{}`",
                            shorten(other)
                        )))
                    }
                };
                if t.format.replace(format).is_some() {
                    return Err(repeated());
                }
            }
            other => {
                return Err(invalid(format!(
                    "Unknown filter `{}`: quality, format and blur are supported",
                    shorten(other)
                )))
            }
        }
    }
    Ok(())
}

/// Whether an `Accept` header lists `image/webp` (with a non-zero quality).
pub fn accepts_webp(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        media.eq_ignore_ascii_case("image/webp") && !refused
    })
}

/// The output format of a transformation, and whether it depended on the
/// request's `Accept` (then the answer carries `Vary: Accept`).
pub fn output_format(
    t: &Transform,
    source: ImageFormat,
    accepts_webp: bool,
) -> (ImageFormat, bool) {
    if let Some(format) = t.format {
        return (format, false);
    }
    if accepts_webp {
        return (ImageFormat::Webp, true);
    }
    let same = match source {
        ImageFormat::Gif | ImageFormat::Avif => ImageFormat::Png,
        other => other,
    };
    (same, true)
}

/// What an image's header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// Its format.
    pub format: ImageFormat,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
}

/// One transformation for the codec to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// What the URL asked for.
    pub transform: Transform,
    /// The format to write ([`output_format`]).
    pub output: ImageFormat,
    /// The bounds the source must respect.
    pub bounds: ImageBounds,
}

impl Job {
    /// The encoder quality: `quality(...)`, else [`DEFAULT_QUALITY`].
    pub fn quality(&self) -> u8 {
        self.transform.quality.unwrap_or(DEFAULT_QUALITY)
    }
}

/// A conservative estimate of the memory one transformation needs at its
/// peak, in bytes: the decoded image (a JPEG at the DCT scale that still
/// covers the target) and the scaled one, each counted twice for the
/// decoder's and encoder's working copies. What a worker budget weighs jobs by.
pub fn peak_bytes(info: &ImageInfo, job: &Job) -> u64 {
    let geo = geometry(&job.transform, info.width, info.height);
    let (sw, sh) = geo.scaled;
    let mut scale = 1u32;
    if info.format == ImageFormat::Jpeg {
        for s in [8u32, 4, 2] {
            if info.width / s >= sw && info.height / s >= sh {
                scale = s;
                break;
            }
        }
    }
    let decoded = u64::from(info.width.div_ceil(scale)) * u64::from(info.height.div_ceil(scale));
    let (ow, oh) = geo.output();
    let output = u64::from(ow) * u64::from(oh);
    (decoded + output) * 4 * 2
}

/// Quality used for lossy output when `quality(...)` is not given.
pub const DEFAULT_QUALITY: u8 = 80;

/// One derived image of one file: its options and output format. Its name,
/// key and validator follow from it, so every replica agrees on them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The canonical option string plus the output format: `fit-in/300x200>webp`.
    pub name: String,
    /// The output format.
    pub format: ImageFormat,
}

impl Variant {
    /// The variant of `t` written as `format`.
    pub fn new(t: &Transform, format: ImageFormat) -> Self {
        Self {
            name: format!("{t}>{}", format.name()),
            format,
        }
    }

    fn digest(&self) -> String {
        hex::encode(&Sha256::digest(self.name.as_bytes())[..8])
    }

    /// Where one attempt at storing the derived image puts it: beside the
    /// file's tenant, under a segment no issued key has (`_derived`, where
    /// issued keys hold an owner hash), so a derived image is never mistaken
    /// for a file. Every attempt has a key of its own (`attempt`, unique), so
    /// racing attempts never write one object and the deletion queued for
    /// an attempt that is not recorded can only remove that attempt's object.
    pub fn key(&self, source_key: &str, file: FileId, attempt: uuid::Uuid) -> String {
        let mut tenant = source_key.splitn(3, '/');
        let project = tenant.next().unwrap_or("");
        let env = tenant.next().unwrap_or("");
        format!(
            "{project}/{env}/_derived/{file}/{}-{}.{}",
            self.digest(),
            attempt.simple(),
            self.format.name()
        )
    }

    /// The strong validator of the derived image: the file's bytes never
    /// change and the codec is deterministic, so it is known before the image is.
    pub fn etag(&self, file: FileId) -> String {
        format!("\"{file}.{}\"", self.digest())
    }
}

/// The geometry of a transformation on a source of `width`×`height` (after
/// EXIF orientation): scale the whole image to `scaled`, then cut `crop`
/// (x, y, w, h in scaled pixels) out of it. A `None` crop keeps everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Size of the scaled image.
    pub scaled: (u32, u32),
    /// Region of the scaled image kept; `None` for all of it.
    pub crop: Option<Crop>,
}

/// A crop box, in pixels of the scaled image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Geometry {
    /// The size of the output image.
    pub fn output(&self) -> (u32, u32) {
        self.crop.map_or(self.scaled, |c| (c.width, c.height))
    }
}

fn scale(v: u32, factor: f64) -> u32 {
    // Rounded to the nearest pixel, never below one.
    let scaled = (f64::from(v) * factor).round();
    if scaled < 1.0 {
        1
    } else if scaled >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range by the checks above.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let s = scaled as u32;
        s
    }
}

/// The geometry of `t` on a `width`×`height` source. Without a size, or with
/// `0x0`, the image keeps its size. With one side 0, the other sets the scale.
/// `fit-in` fits inside the box and never enlarges; otherwise the image is
/// scaled to cover the box and cropped to exactly W×H around its centre (the
/// codec moves a `smart` crop to the salient region).
pub fn geometry(t: &Transform, width: u32, height: u32) -> Geometry {
    let (w, h) = match t.size {
        None | Some((0, 0)) => {
            return Geometry {
                scaled: (width, height),
                crop: None,
            }
        }
        Some(size) => size,
    };
    let fx = f64::from(w) / f64::from(width);
    let fy = f64::from(h) / f64::from(height);
    if w == 0 || h == 0 {
        let mut factor = if w == 0 { fy } else { fx };
        if t.fit_in {
            factor = factor.min(1.0);
        }
        return Geometry {
            scaled: (scale(width, factor), scale(height, factor)),
            crop: None,
        };
    }
    if t.fit_in {
        let factor = fx.min(fy).min(1.0);
        return Geometry {
            scaled: (scale(width, factor), scale(height, factor)),
            crop: None,
        };
    }
    let factor = fx.max(fy);
    let scaled = (scale(width, factor).max(w), scale(height, factor).max(h));
    Geometry {
        scaled,
        crop: Some(Crop {
            x: (scaled.0 - w) / 2,
            y: (scaled.1 - h) / 2,
            width: w,
            height: h,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str) -> Result<(Transform, &str)> {
        parse_path(path, &ImageBounds::default())
    }

    fn code(path: &str) -> ErrorCode {
        match parse(path) {
            Ok(t) => panic!("{path} parsed as {t:?}"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn the_documented_examples_parse() {
        let (t, key) = parse("fit-in/300x200/p/e/o/u/a.jpg").expect("parses");
        assert_eq!((t.fit_in, t.size, t.smart), (true, Some((300, 200)), false));
        assert_eq!(key, "p/e/o/u/a.jpg");
        let (t, _) = parse("300x200/smart/k").expect("parses");
        assert_eq!((t.fit_in, t.size, t.smart), (false, Some((300, 200)), true));
        let (t, _) = parse("fit-in/800x0/filters:quality(85)/k").expect("parses");
        assert_eq!((t.size, t.quality), (Some((800, 0)), Some(85)));
        let (t, _) = parse("filters:format(webp)/k").expect("parses");
        assert_eq!(t.format, Some(ImageFormat::Webp));
        let (t, _) =
            parse("80x80/smart/filters:blur(3):quality(1):format(avif)/k").expect("parses");
        assert_eq!(
            (t.blur, t.quality, t.format),
            (Some(3), Some(1), Some(ImageFormat::Avif))
        );
    }

    #[test]
    fn every_option_alone_and_every_ordered_combination_parses() {
        let segments = ["fit-in", "300x200", "smart", "filters:quality(50)"];
        for mask in 1u32..16 {
            let chosen: Vec<&str> = (0..4)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| segments[i])
                .collect();
            let path = format!("{}/p/e/k", chosen.join("/"));
            let has = |s: &str| chosen.contains(&s);
            let valid = !((has("fit-in") || has("smart")) && !has("300x200"))
                && !(has("fit-in") && has("smart"));
            assert_eq!(parse(&path).is_ok(), valid, "{path}");
            if valid {
                let (t, key) = parse(&path).expect("valid");
                assert_eq!(key, "p/e/k");
                assert_eq!(t.to_string(), chosen.join("/"), "canonical form of {path}");
            }
        }
    }

    #[test]
    fn options_out_of_order_or_repeated_are_invalid() {
        for path in [
            "300x200/fit-in/k",
            "smart/300x200/k",
            "filters:quality(5)/300x200/k",
            "filters:quality(5)/fit-in/300x200/k",
            "fit-in/fit-in/300x200/k",
            "300x200/300x200/k",
            "300x200/smart/smart/k",
            "filters:quality(5)/filters:blur(2)/k",
            "fit-in/k",
            "smart/k",
            "fit-in/smart/k",
            "fit-in/300x200/smart/k",
        ] {
            assert_eq!(code(path), ErrorCode::ImageInvalidOptions, "{path}");
        }
    }

    #[test]
    fn no_option_at_all_is_invalid_before_any_lookup() {
        assert_eq!(code("p/e/k.jpg"), ErrorCode::ImageInvalidOptions);
        assert_eq!(code(""), ErrorCode::ImageInvalidOptions);
        assert_eq!(code("k"), ErrorCode::ImageInvalidOptions);
    }

    #[test]
    fn options_without_a_key_are_not_found() {
        assert_eq!(code("300x200/"), ErrorCode::FileNotFound);
        // With no `/` after it, the last segment is the key.
        let (t, key) = parse("300x200/smart").expect("key `smart`");
        assert_eq!((t.size, t.smart, key), (Some((300, 200)), false, "smart"));
    }

    #[test]
    fn segments_that_only_resemble_options_start_the_key() {
        for (path, key) in [
            ("100x100/x200/k", "x200/k"),
            ("100x100/200x/k", "200x/k"),
            ("100x100/-1x5/k", "-1x5/k"),
            ("100x100/1x2x3/k", "1x2x3/k"),
            ("100x100/FIT-IN/k", "FIT-IN/k"),
            ("100x100/Smart/k", "Smart/k"),
            ("100x100/filters/k", "filters/k"),
            ("100x100/100X100/k", "100X100/k"),
            ("100x100/ 1x1/k", " 1x1/k"),
        ] {
            let (_, got) = parse(path).expect(path);
            assert_eq!(got, key, "{path}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let (t, _) = parse("4096x4096/k").expect("at the bound");
        assert_eq!(t.size, Some((4096, 4096)));
        let (t, _) = parse("0x0/k").expect("zero is allowed");
        assert_eq!(t.size, Some((0, 0)));
        let (t, _) = parse("007x08/k").expect("leading zeros are digits");
        assert_eq!(t.size, Some((7, 8)));
        for path in [
            "4097x1/k",
            "1x4097/k",
            "99999999999999999999x1/k",
            "fit-in/1x100000/k",
        ] {
            assert_eq!(code(path), ErrorCode::ImageTooLarge, "{path}");
        }
        let small = ImageBounds {
            max_dimension: 100,
            ..ImageBounds::default()
        };
        assert!(parse_path("100x100/k", &small).is_ok());
        assert!(parse_path("101x100/k", &small).is_err());
    }

    #[test]
    fn filters_are_checked() {
        for (path, ok) in [
            ("filters:quality(1)/k", true),
            ("filters:quality(100)/k", true),
            ("filters:quality(0)/k", false),
            ("filters:quality(101)/k", false),
            ("filters:quality(-5)/k", false),
            ("filters:quality(5.5)/k", false),
            ("filters:quality()/k", false),
            ("filters:quality(0080)/k", false),
            ("filters:quality(080)/k", true),
            ("filters:quality 80/k", false),
            ("filters:quality(80/k", false),
            ("filters:blur(1)/k", true),
            ("filters:blur(150)/k", true),
            ("filters:blur(151)/k", false),
            ("filters:blur(0)/k", false),
            ("filters:format(webp)/k", true),
            ("filters:format(jpeg)/k", true),
            ("filters:format(png)/k", true),
            ("filters:format(avif)/k", true),
            ("filters:format(gif)/k", false),
            ("filters:format(jpg)/k", false),
            ("filters:format(WEBP)/k", false),
            ("filters:format()/k", false),
            ("filters:/k", false),
            ("filters::/k", false),
            ("filters:quality(5):/k", false),
            ("filters:grayscale()/k", false),
            ("filters:upscale()/k", false),
            ("filters:quality(5):quality(6)/k", false),
            ("filters:format(png):format(png)/k", false),
            ("filters:blur(2):blur(2)/k", false),
            ("filters:blur(2):quality(5):format(png)/k", true),
        ] {
            let got = parse(path);
            assert_eq!(got.is_ok(), ok, "{path}: {got:?}");
            if let Err(e) = got {
                assert_eq!(e.code(), ErrorCode::ImageInvalidOptions, "{path}");
            }
        }
    }

    #[test]
    fn the_canonical_form_sorts_filters_and_round_trips() {
        let (t, _) = parse("filters:quality(80):format(webp):blur(3)/k").expect("parses");
        let canonical = t.to_string();
        assert_eq!(canonical, "filters:blur(3):format(webp):quality(80)");
        assert_eq!(parse_options(&canonical, &ImageBounds::default()), Ok(t));
        let (u, _) = parse("filters:blur(3):quality(080):format(webp)/k").expect("parses");
        assert_eq!(
            Variant::new(&t, ImageFormat::Webp),
            Variant::new(&u, ImageFormat::Webp)
        );
    }

    #[test]
    fn option_strings_for_download_urls() {
        let b = ImageBounds::default();
        assert!(parse_options("fit-in/300x200", &b).is_ok());
        assert!(parse_options("fit-in/300x200/", &b).is_ok());
        for bad in ["", "/", "fit-in/300x200/k", "300x200//", "k"] {
            assert_eq!(
                parse_options(bad, &b).map_err(|e| e.code()),
                Err(ErrorCode::ImageInvalidOptions),
                "{bad}"
            );
        }
        assert_eq!(
            parse_options("5000x1", &b).map_err(|e| e.code()),
            Err(ErrorCode::ImageTooLarge)
        );
    }

    #[test]
    fn messages_never_echo_long_input() {
        let long = "q".repeat(5000);
        let e = parse(&format!("filters:{long}(1)/k")).expect_err("unknown");
        assert!(e.message().len() < 200, "{}", e.message());
    }

    #[test]
    fn formats_by_mime_and_magic() {
        assert_eq!(
            ImageFormat::of_source_mime("image/jpeg"),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::of_source_mime("IMAGE/PNG"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::of_source_mime("image/webp"),
            Some(ImageFormat::Webp)
        );
        assert_eq!(
            ImageFormat::of_source_mime("image/gif"),
            Some(ImageFormat::Gif)
        );
        assert_eq!(ImageFormat::of_source_mime("image/svg+xml"), None);
        assert_eq!(ImageFormat::of_source_mime("image/avif"), None);
        assert_eq!(ImageFormat::of_source_mime("text/plain"), None);
        assert_eq!(
            ImageFormat::sniff(b"\xFF\xD8\xFF\xE0"),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1A\n"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(ImageFormat::sniff(b"GIF89a"), Some(ImageFormat::Gif));
        assert_eq!(
            ImageFormat::sniff(b"\0\0\0\x1cftypavif"),
            Some(ImageFormat::Avif)
        );
        assert_eq!(ImageFormat::sniff(b"<svg"), None);
    }

    #[test]
    fn output_format_follows_format_then_accept_then_source() {
        let none = Transform::default();
        let png = Transform {
            format: Some(ImageFormat::Png),
            ..Transform::default()
        };
        assert_eq!(
            output_format(&png, ImageFormat::Jpeg, true),
            (ImageFormat::Png, false)
        );
        assert_eq!(
            output_format(&none, ImageFormat::Jpeg, true),
            (ImageFormat::Webp, true)
        );
        assert_eq!(
            output_format(&none, ImageFormat::Jpeg, false),
            (ImageFormat::Jpeg, true)
        );
        assert_eq!(
            output_format(&none, ImageFormat::Gif, false),
            (ImageFormat::Png, true)
        );
        assert_eq!(
            output_format(&none, ImageFormat::Webp, false),
            (ImageFormat::Webp, true)
        );
        assert!(accepts_webp("image/avif,image/webp,*/*"));
        assert!(accepts_webp("text/html, IMAGE/WEBP;q=0.8"));
        assert!(!accepts_webp("image/webp;q=0"));
        assert!(!accepts_webp("image/*"));
        assert!(!accepts_webp(""));
    }

    #[test]
    fn variants_name_keys_and_validators() {
        let (t, _) = parse("fit-in/300x200/k").expect("parses");
        let id = FileId(uuid::Uuid::nil());
        let v = Variant::new(&t, ImageFormat::Webp);
        assert_eq!(v.name, "fit-in/300x200>webp");
        let attempt = uuid::Uuid::from_u128(7);
        let key = v.key("proj/env/0123456789abcdef/uuid/a.jpg", id, attempt);
        assert!(
            key.starts_with(&format!("proj/env/_derived/{id}/")),
            "{key}"
        );
        assert!(key.ends_with(".webp"));
        assert_ne!(
            key,
            Variant::new(&t, ImageFormat::Png).key("proj/env/x", id, attempt)
        );
        assert_ne!(
            key,
            v.key(
                "proj/env/0123456789abcdef/uuid/a.jpg",
                id,
                uuid::Uuid::from_u128(8)
            ),
            "every attempt has a key of its own"
        );
        assert!(v.etag(id).starts_with('"') && v.etag(id).ends_with('"'));
        assert_ne!(v.etag(id), Variant::new(&t, ImageFormat::Png).etag(id));
    }

    fn geo(path: &str, w: u32, h: u32) -> Geometry {
        let (t, _) = parse(&format!("{path}/k")).expect("parses");
        geometry(&t, w, h)
    }

    #[test]
    fn fit_in_fits_and_never_enlarges() {
        assert_eq!(geo("fit-in/300x200", 6000, 4000).output(), (300, 200));
        assert_eq!(geo("fit-in/300x200", 4000, 6000).output(), (133, 200));
        assert_eq!(geo("fit-in/300x200", 100, 50).output(), (100, 50));
        assert_eq!(geo("fit-in/800x0", 6000, 4000).output(), (800, 533));
        assert_eq!(geo("fit-in/0x100", 6000, 4000).output(), (150, 100));
        assert_eq!(geo("fit-in/800x0", 400, 300).output(), (400, 300));
        assert_eq!(geo("fit-in/300x200", 10000, 1).output(), (300, 1));
        assert_eq!(geo("fit-in/0x0", 640, 480).output(), (640, 480));
        assert_eq!(geo("fit-in/300x200", 6000, 4000).crop, None);
    }

    #[test]
    fn cover_crops_to_exactly_the_box() {
        let g = geo("300x200", 6000, 3000);
        assert_eq!(g.output(), (300, 200));
        assert_eq!(g.scaled, (400, 200));
        assert_eq!(
            g.crop,
            Some(Crop {
                x: 50,
                y: 0,
                width: 300,
                height: 200
            })
        );
        assert_eq!(geo("80x80", 4000, 6000).output(), (80, 80));
        // Without fit-in a small image is enlarged to the box.
        assert_eq!(geo("300x200", 30, 20).output(), (300, 200));
        assert_eq!(geo("800x0", 6000, 4000).output(), (800, 533));
        assert_eq!(geo("0x0", 640, 480).output(), (640, 480));
        assert_eq!(geo("filters:blur(2)", 640, 480).output(), (640, 480));
        for (w, h) in [(1, 1), (7, 3), (4095, 1), (1, 4095), (6000, 4000)] {
            for (bw, bh) in [(1, 1), (300, 200), (4096, 1), (1, 4096)] {
                let g = geo(&format!("{bw}x{bh}"), w, h);
                let c = g.crop.expect("cropped");
                assert_eq!((c.width, c.height), (bw, bh));
                assert!(c.x + c.width <= g.scaled.0 && c.y + c.height <= g.scaled.1);
            }
        }
    }

    #[test]
    fn peak_memory_follows_the_decoded_and_output_sizes() {
        let info = |format, width, height| ImageInfo {
            format,
            width,
            height,
        };
        let job = |options: &str| Job {
            transform: parse_options(options, &ImageBounds::default()).expect("options"),
            output: ImageFormat::Webp,
            bounds: ImageBounds::default(),
        };
        let photo = info(ImageFormat::Jpeg, 6000, 4000);
        let full = peak_bytes(&photo, &job("filters:quality(80)"));
        assert_eq!(full, 2 * 24_000_000 * 8);
        // A thumbnail of a JPEG is decoded at 1/8: 750×500.
        let thumb = peak_bytes(&photo, &job("fit-in/300x200"));
        assert_eq!(thumb, (750 * 500 + 300 * 200) * 8);
        // A PNG is decoded whole whatever the target.
        let png = peak_bytes(&info(ImageFormat::Png, 6000, 4000), &job("fit-in/300x200"));
        assert_eq!(png, (24_000_000 + 300 * 200) * 8);
        // Enlarging costs the output.
        let big = peak_bytes(&info(ImageFormat::Png, 10, 10), &job("4000x4000"));
        assert_eq!(big, (100 + 16_000_000) * 8);
    }

    #[test]
    fn source_bounds() {
        let b = ImageBounds::default();
        assert!(b.check_source(8000, 6000).is_ok());
        assert_eq!(
            b.check_source(100_000, 100_000).map_err(|e| e.code()),
            Err(ErrorCode::ImageTooLarge)
        );
        assert_eq!(
            b.check_source(0, 10).map_err(|e| e.code()),
            Err(ErrorCode::ImageDecodeFailed)
        );
    }
}

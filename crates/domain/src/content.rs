//! The content check of registration (docs/api.md §11, step 8 after the
//! seven checks of §4): a file registered as `image/*`, `application/pdf`,
//! `audio/*` or `video/*` must start with a signature of that family, read
//! from the object's first bytes ([`HEAD_BYTES`], never the whole object);
//! `image/svg+xml` must be XML whose root element is `svg`. Subtypes without
//! a known signature are accepted unchecked. Raster images also give their
//! width and height.

use crate::error::{Error, ErrorCode, Result};

/// How many leading bytes of an object the check reads: enough for every
/// signature here and for the dimensions of a JPEG behind its metadata
/// segments in all but unusual files (a JPEG whose size marker lies later
/// is accepted with unknown dimensions).
pub const HEAD_BYTES: u64 = 64 * 1024;

/// What a check found in a file's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The type has no known signature: not checked.
    Unchecked,
    /// The bytes match the type's family; dimensions when it is a raster
    /// image whose header states them.
    Matches {
        /// `(width, height)` in pixels.
        dimensions: Option<(u32, u32)>,
    },
}

/// Raster image subtypes with a known signature.
const IMAGE_SUBTYPES: &[&str] = &[
    "png",
    "apng",
    "jpeg",
    "jpg",
    "pjpeg",
    "gif",
    "webp",
    "bmp",
    "x-ms-bmp",
    "tiff",
    "avif",
    "heic",
    "heif",
    "x-icon",
    "vnd.microsoft.icon",
];

/// Audio subtypes with a known signature.
const AUDIO_SUBTYPES: &[&str] = &[
    "mpeg", "mp3", "wav", "wave", "x-wav", "vnd.wave", "ogg", "opus", "vorbis", "flac", "x-flac",
    "aac", "x-aac", "mp4", "x-m4a", "m4a", "webm", "midi", "x-midi", "amr", "aiff", "x-aiff",
];

/// Video subtypes with a known signature.
const VIDEO_SUBTYPES: &[&str] = &[
    "mp4",
    "quicktime",
    "webm",
    "x-matroska",
    "ogg",
    "x-msvideo",
    "avi",
    "mpeg",
    "3gpp",
    "3gpp2",
    "x-flv",
    "x-m4v",
];

/// Whether a file of `mime` is checked (so its first bytes are worth reading).
pub fn is_checked(mime: &str) -> bool {
    let (family, subtype) = split(mime);
    match family.as_str() {
        "image" => subtype == "svg+xml" || IMAGE_SUBTYPES.contains(&subtype.as_str()),
        "audio" => AUDIO_SUBTYPES.contains(&subtype.as_str()),
        "video" => VIDEO_SUBTYPES.contains(&subtype.as_str()),
        "application" => subtype == "pdf",
        _ => false,
    }
}

/// Checks the first bytes of a file registered as `mime`.
///
/// # Errors
/// `file/invalid-format` when the bytes are not of the type's family.
pub fn check(mime: &str, head: &[u8]) -> Result<Verdict> {
    if !is_checked(mime) {
        return Ok(Verdict::Unchecked);
    }
    let (family, subtype) = split(mime);
    let matches = match (family.as_str(), subtype.as_str()) {
        ("image", "svg+xml") => is_svg(head),
        ("image", _) => {
            return match raster(head) {
                Some(dimensions) => Ok(Verdict::Matches { dimensions }),
                None => Err(refused(mime)),
            }
        }
        ("application", "pdf") => head.len() >= 5 && find(&head[..head.len().min(1024)], b"%PDF-"),
        ("audio", _) => is_audio(head),
        ("video", _) => is_video(head),
        _ => false,
    };
    if matches {
        Ok(Verdict::Matches { dimensions: None })
    } else {
        Err(refused(mime))
    }
}

fn refused(mime: &str) -> Error {
    Error::with_message(
        ErrorCode::InvalidFormat,
        format!("The uploaded bytes are not {mime} (their signature is of another kind of file)"),
    )
}

/// `type/subtype` in lower case, parameters dropped.
fn split(mime: &str) -> (String, String) {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((t, s)) => (t.to_owned(), s.to_owned()),
        None => (essence, String::new()),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
    ])))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    Some(
        u32::from(*b.get(at)?) | u32::from(*b.get(at + 1)?) << 8 | u32::from(*b.get(at + 2)?) << 16,
    )
}

/// An ISO base media file (`ftyp` box first): MP4, QuickTime, 3GPP, M4A,
/// AVIF, HEIC; its major brand.
fn ftyp_brand(b: &[u8]) -> Option<&[u8]> {
    (b.get(4..8)? == b"ftyp").then(|| b.get(8..12)).flatten()
}

/// Whether `b` is a raster image; its dimensions when its header gives them.
fn raster(b: &[u8]) -> Option<Option<(u32, u32)>> {
    let dims = |w: Option<u32>, h: Option<u32>| w.zip(h).filter(|&(w, h)| w > 0 && h > 0);
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR is the first chunk: width and height at 16 and 20.
        return Some(dims(be32(b, 16), be32(b, 20)));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some(dims(le16(b, 6), le16(b, 8)));
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(jpeg_dimensions(b));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return Some(match b.get(12..16) {
            Some(b"VP8 ") => dims(
                le16(b, 26).map(|w| w & 0x3FFF),
                le16(b, 28).map(|h| h & 0x3FFF),
            ),
            Some(b"VP8L") => le32(b, 21)
                .and_then(|v| dims(Some((v & 0x3FFF) + 1), Some(((v >> 14) & 0x3FFF) + 1))),
            Some(b"VP8X") => dims(le24(b, 24).map(|w| w + 1), le24(b, 27).map(|h| h + 1)),
            _ => None,
        });
    }
    if b.starts_with(b"BM") && b.len() >= 26 {
        let height = le32(b, 22).map(|h| (h as i32).unsigned_abs());
        return Some(dims(le32(b, 18), height));
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") || b.starts_with(&[0, 0, 1, 0]) {
        return Some(None);
    }
    match ftyp_brand(b) {
        Some(b"avif" | b"avis" | b"heic" | b"heix" | b"mif1" | b"msf1" | b"hevc") => Some(None),
        _ => None,
    }
}

/// A JPEG's dimensions from its first start-of-frame marker, if within `b`.
fn jpeg_dimensions(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    while at + 4 <= b.len() {
        if b[at] != 0xFF {
            return None;
        }
        let marker = b[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if matches!(marker, 0xD8 | 0x01 | 0xD0..=0xD7) {
            at += 2; // markers without a length
            continue;
        }
        let len = usize::try_from(be16(b, at + 2)?).ok()?;
        let frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if frame {
            let (h, w) = (be16(b, at + 5)?, be16(b, at + 7)?);
            return (w > 0 && h > 0).then_some((w, h));
        }
        if marker == 0xDA || len < 2 {
            return None; // image data began without a frame header
        }
        at += 2 + len;
    }
    None
}

fn is_audio(b: &[u8]) -> bool {
    b.starts_with(b"ID3")
        || (b.len() >= 2 && b[0] == 0xFF && b[1] & 0xE0 == 0xE0) // MPEG audio frame / ADTS
        || (b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WAVE"))
        || b.starts_with(b"OggS")
        || b.starts_with(b"fLaC")
        || b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) // EBML (WebM, Matroska)
        || b.starts_with(b"MThd")
        || b.starts_with(b"#!AMR")
        || (b.starts_with(b"FORM") && matches!(b.get(8..12), Some(b"AIFF" | b"AIFC")))
        || ftyp_brand(b).is_some()
}

fn is_video(b: &[u8]) -> bool {
    ftyp_brand(b).is_some()
        || b.get(4..8)
            .is_some_and(|t| matches!(t, b"moov" | b"mdat" | b"free" | b"wide"))
        || b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
        || b.starts_with(b"OggS")
        || (b.starts_with(b"RIFF") && b.get(8..12) == Some(b"AVI "))
        || b.starts_with(&[0, 0, 1, 0xBA])
        || b.starts_with(&[0, 0, 1, 0xB3])
        || b.starts_with(b"FLV")
}

/// XML (after an optional BOM, whitespace, declaration, comments,
/// processing instructions and a doctype) whose first element is `svg`.
fn is_svg(b: &[u8]) -> bool {
    let text = String::from_utf8_lossy(b);
    let mut rest = text.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        let skip_to = |s: &str, end: &str| s.find(end).map(|i| i + end.len());
        let next = if rest.starts_with("<?") {
            skip_to(rest, "?>")
        } else if rest.starts_with("<!--") {
            skip_to(rest, "-->")
        } else if rest.starts_with("<!DOCTYPE") || rest.starts_with("<!doctype") {
            skip_to(rest, ">")
        } else {
            break;
        };
        match next {
            Some(i) => rest = &rest[i..],
            None => return false,
        }
    }
    let Some(tag) = rest.strip_prefix('<') else {
        return false;
    };
    let name: String = tag
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
        .collect();
    name == "svg" || name.ends_with(":svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0]);
        b
    }

    fn jpeg(w: u16, h: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        // An APP0 segment, then a fill byte, then SOF0.
        b.extend([0xFF, 0xE0, 0, 16]);
        b.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        b.extend([0xFF, 0xFF, 0xC0, 0, 17, 8]);
        b.extend(h.to_be_bytes());
        b.extend(w.to_be_bytes());
        b.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        b
    }

    const HTML: &[u8] = b"<!DOCTYPE html><html><body>hi</body></html>";

    #[test]
    fn raster_images_give_their_dimensions() {
        type Case = (&'static str, Vec<u8>, Option<(u32, u32)>);
        let cases: Vec<Case> = vec![
            ("image/png", png(800, 600), Some((800, 600))),
            ("image/jpeg", jpeg(1024, 768), Some((1024, 768))),
            (
                "image/gif",
                b"GIF89a\x40\x01\xf0\x00\x80\0\0".to_vec(),
                Some((320, 240)),
            ),
            (
                "image/webp",
                [
                    b"RIFF\0\0\0\0WEBPVP8X".as_slice(),
                    &[10, 0, 0, 0, 0, 0, 0, 0],
                    &[0x1F, 0x03, 0],
                    &[0xDF, 0x01, 0],
                ]
                .concat(),
                Some((800, 480)),
            ),
            (
                "image/bmp",
                [
                    b"BM".as_slice(),
                    &[0; 16],
                    &64u32.to_le_bytes(),
                    &(-32i32).to_le_bytes(),
                ]
                .concat(),
                Some((64, 32)),
            ),
            ("image/tiff", b"II*\0\x08\0\0\0".to_vec(), None),
            ("image/avif", b"\0\0\0\x1cftypavif\0\0\0\0".to_vec(), None),
        ];
        for (mime, bytes, dims) in cases {
            assert_eq!(
                check(mime, &bytes).map_err(|e| e.to_string()),
                Ok(Verdict::Matches { dimensions: dims }),
                "{mime}"
            );
        }
    }

    #[test]
    fn a_family_accepts_any_of_its_formats_and_nothing_else() {
        // A PNG registered as image/jpeg is still an image.
        assert!(check("image/jpeg", &png(1, 1)).is_ok());
        for mime in [
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/webp",
            "application/pdf",
            "audio/mpeg",
            "video/mp4",
        ] {
            let e = check(mime, HTML).expect_err(mime);
            assert_eq!(e.code(), ErrorCode::InvalidFormat, "{mime}");
            assert!(check(mime, b"").is_err(), "{mime}: empty");
        }
    }

    #[test]
    fn svg_must_be_xml_with_an_svg_root() {
        let ok: [&[u8]; 5] = [
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"x\">\n<svg width=\"1\">",
            b"  <svg>",
            b"<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\">",
            b"<?xml version=\"1.0\"?><svg\n viewBox=\"0 0 1 1\">",
        ];
        for b in ok {
            assert!(
                check("image/svg+xml", b).is_ok(),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        let bad: [&[u8]; 5] = [
            HTML,
            b"<svgfoo>",
            b"<!-- never closed <svg>",
            b"hello <svg>",
            &png(1, 1),
        ];
        for b in bad {
            assert!(
                check("image/svg+xml", b).is_err(),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
    }

    #[test]
    fn pdf_audio_and_video_signatures() {
        assert!(check("application/pdf", b"%PDF-1.7\n%\xe2\xe3").is_ok());
        for (mime, bytes) in [
            ("audio/mpeg", b"ID3\x04\0\0\0\0\0\0".as_slice()),
            ("audio/mpeg", &[0xFF, 0xFB, 0x90, 0x64]),
            ("audio/wav", b"RIFF\0\0\0\0WAVEfmt "),
            ("audio/ogg", b"OggS\0\x02"),
            ("audio/flac", b"fLaC\0\0\0\x22"),
            ("audio/mp4", b"\0\0\0\x20ftypM4A "),
            ("audio/webm", &[0x1A, 0x45, 0xDF, 0xA3, 0x9F]),
            ("video/mp4", b"\0\0\0\x18ftypmp42"),
            ("video/quicktime", b"\0\0\0\x14ftypqt  "),
            ("video/quicktime", b"\0\0\0\x08wide\0\0\0\0mdat"),
            ("video/webm", &[0x1A, 0x45, 0xDF, 0xA3, 0x9F]),
            ("video/x-msvideo", b"RIFF\0\0\0\0AVI LIST"),
            ("video/mpeg", &[0, 0, 1, 0xBA, 0x44]),
        ] {
            assert!(check(mime, bytes).is_ok(), "{mime}");
        }
        // A WAVE file is audio, not video; an AVI is video, not audio.
        assert!(check("video/mp4", b"RIFF\0\0\0\0WAVEfmt ").is_err());
        assert!(check("audio/wav", b"RIFF\0\0\0\0AVI LIST").is_err());
    }

    #[test]
    fn types_without_a_known_signature_are_unchecked() {
        for mime in [
            "text/html",
            "application/zip",
            "image/x-unknown",
            "audio/x-weird",
            "video/x-new",
            "application/json",
        ] {
            assert!(!is_checked(mime), "{mime}");
            assert_eq!(
                check(mime, HTML).map_err(|e| e.to_string()),
                Ok(Verdict::Unchecked),
                "{mime}"
            );
        }
        assert!(
            is_checked("IMAGE/PNG; charset=binary"),
            "case and parameters do not matter"
        );
    }

    #[test]
    fn truncated_or_zero_headers_give_no_dimensions_and_never_panic() {
        assert_eq!(
            check("image/png", &png(0, 600)).ok(),
            Some(Verdict::Matches { dimensions: None })
        );
        let cut = &jpeg(10, 10)[..12];
        assert_eq!(
            check("image/jpeg", cut).ok(),
            Some(Verdict::Matches { dimensions: None })
        );
        for n in 0..40 {
            let _ = check("image/png", &png(5, 5)[..n.min(29)]);
            let _ = check("image/jpeg", &jpeg(5, 5)[..n.min(41)]);
            let _ = check(
                "image/webp",
                &b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f\x01\x02\x03\x04"[..n.min(25)],
            );
        }
    }
}

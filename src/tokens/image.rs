//! Image token cost (OpenAI's published tile rule) and image dimensions read from the first
//! bytes of a base64 PNG, JPEG, GIF or WebP, decoding only the few bytes each header needs.

/// Tokens every image costs, and all a `detail: low` image costs. Source: OpenAI vision
/// guide, "Calculating costs" (platform.openai.com/docs/guides/vision#calculating-costs):
/// "All images with detail: low cost 85 tokens each … Another 85 tokens are always added".
pub const IMAGE_BASE_TOKENS: u64 = 85;

/// Tokens per 512 px tile of a high-detail image (same source: "Each of those squares costs
/// 170 tokens").
pub const IMAGE_TILE_TOKENS: u64 = 170;

/// Tile side in pixels (same source: "we count how many 512px squares the image consists of").
pub const IMAGE_TILE_PX: f64 = 512.0;

/// A high-detail image is first scaled to fit this square (same source: "scaled to fit within
/// a 2048 x 2048 square, maintaining their aspect ratio").
pub const IMAGE_FIT_PX: f64 = 2048.0;

/// … then scaled so its shortest side is this long (same source: "scaled such that the
/// shortest side of the image is 768px long"). Only ever a downscale: the guide's own
/// examples never enlarge a smaller image.
pub const IMAGE_SHORT_SIDE_PX: f64 = 768.0;

/// Most JPEG segments walked looking for the frame header: a real file has a handful (APPn,
/// DQT, DHT …) before it; the bound keeps a hostile chain of empty segments cheap.
pub const MAX_JPEG_SEGMENTS: usize = 64;

/// How much detail an image is read at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// `detail: low`: a fixed cost.
    Low,
    /// `detail: high` (and `auto`, counted as high: the larger of the two).
    High,
}

/// The published token cost of a `width`×`height` image.
pub fn image_tokens(width: u32, height: u32, detail: Detail) -> u64 {
    if detail == Detail::Low || width == 0 || height == 0 {
        return IMAGE_BASE_TOKENS;
    }
    let (mut w, mut h) = (f64::from(width), f64::from(height));
    let longest = w.max(h);
    if longest > IMAGE_FIT_PX {
        w = w * IMAGE_FIT_PX / longest;
        h = h * IMAGE_FIT_PX / longest;
    }
    let shortest = w.min(h);
    if shortest > IMAGE_SHORT_SIDE_PX {
        w = w * IMAGE_SHORT_SIDE_PX / shortest;
        h = h * IMAGE_SHORT_SIDE_PX / shortest;
    }
    // Both sides are at most 2048 here, so the tile counts are small whole numbers.
    let tiles = (w / IMAGE_TILE_PX).ceil() as u64 * (h / IMAGE_TILE_PX).ceil() as u64;
    IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles
}

/// What an image of unknown size (a URL, a Files API id, an unreadable header) is counted
/// as: the most any image can cost at high detail. After the two scalings no image exceeds
/// 768×2048, which is 2×4 tiles (1445 tokens), so the estimate never falls short for want
/// of a size; over-counting is the safe side for a context-window check.
pub fn unknown_image_tokens() -> u64 {
    image_tokens(768, 2048, Detail::High)
}

/// Width and height of a base64-encoded PNG, JPEG, GIF or WebP, read from its header.
/// `None` when the data is not one of those or its header is cut short or malformed.
pub fn base64_image_size(data: &str) -> Option<(u32, u32)> {
    let b = B64(data.as_bytes());
    let mut head = [0u8; 30];
    let n = b.read(0, &mut head);
    let head = head.get(..n)?;
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        // Signature (8), IHDR length (4), "IHDR" (4), then width and height, big-endian.
        if head.get(12..16)? != b"IHDR" {
            return None;
        }
        return Some((be32(head, 16)?, be32(head, 20)?));
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Some((u32::from(le16(head, 6)?), u32::from(le16(head, 8)?)));
    }
    if head.starts_with(b"RIFF") && head.get(8..12)? == b"WEBP" {
        return webp_size(head);
    }
    if head.starts_with(&[0xFF, 0xD8]) {
        return jpeg_size(&b);
    }
    None
}

/// WebP: the first chunk after the RIFF header says which of the three layouts it is.
fn webp_size(h: &[u8]) -> Option<(u32, u32)> {
    match h.get(12..16)? {
        // Lossy: frame tag (3 bytes at 20), start code 9d 01 2a, then 14-bit sizes.
        b"VP8 " => {
            if h.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            Some((
                u32::from(le16(h, 26)? & 0x3fff),
                u32::from(le16(h, 28)? & 0x3fff),
            ))
        }
        // Lossless: signature 0x2f, then 14-bit width-1 and height-1, bit-packed.
        b"VP8L" => {
            if *h.get(20)? != 0x2f {
                return None;
            }
            let bits = u32::from_le_bytes(h.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        // Extended: 24-bit canvas width-1 and height-1 at 24 and 27.
        b"VP8X" => {
            let w = le24(h, 24)? + 1;
            let hh = le24(h, 27)? + 1;
            Some((w, hh))
        }
        _ => None,
    }
}

/// JPEG: hop from segment to segment (each names its length) to the first start-of-frame,
/// decoding only each segment's few header bytes.
fn jpeg_size(b: &B64<'_>) -> Option<(u32, u32)> {
    let mut pos = 2usize;
    for _ in 0..MAX_JPEG_SEGMENTS {
        let mut seg = [0u8; 9];
        let n = b.read(pos, &mut seg);
        if n < 4 || seg[0] != 0xFF {
            return None;
        }
        let marker = seg[1];
        match marker {
            // Fill byte: the marker starts one byte later.
            0xFF => pos += 1,
            // Markers without a length (TEM, RSTn).
            0x01 | 0xD0..=0xD7 => pos += 2,
            // SOF0–SOF15, less DHT (C4), JPG (C8) and DAC (CC): height, then width.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if n < seg.len() {
                    return None;
                }
                return Some((u32::from(be16(&seg, 7)?), u32::from(be16(&seg, 5)?)));
            }
            // Start of scan or end of image before any frame header: not a usable JPEG.
            0xDA | 0xD9 => return None,
            _ => pos = pos.checked_add(2 + usize::from(be16(&seg, 2)?))?,
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Base64 text read at any decoded byte offset without decoding what comes before it:
/// every 4 characters are 3 bytes, so byte `k` lives in quad `k / 3`. Assumes no line
/// breaks inside the data (the API sends none); breaks just make a header unreadable.
struct B64<'a>(&'a [u8]);

impl B64<'_> {
    /// Decode bytes `offset..offset + out.len()` into `out`; returns how many were available.
    fn read(&self, offset: usize, out: &mut [u8]) -> usize {
        let mut n = 0;
        let mut quad = offset / 3;
        let mut skip = offset % 3;
        while n < out.len() {
            let Some(bytes) = self.quad(quad) else {
                break;
            };
            let (three, valid) = bytes;
            for &byte in three.get(skip..valid).unwrap_or_default() {
                if let Some(slot) = out.get_mut(n) {
                    *slot = byte;
                    n += 1;
                }
            }
            if valid < 3 {
                break;
            }
            skip = 0;
            quad += 1;
        }
        n
    }

    /// The 3 bytes quad `i` encodes and how many of them are real (fewer at `=` padding).
    fn quad(&self, i: usize) -> Option<([u8; 3], usize)> {
        let start = i.checked_mul(4)?;
        let chars = self.0.get(start..start.checked_add(4)?.min(self.0.len()))?;
        let mut v = [0u32; 4];
        let mut valid = 0;
        for (slot, &c) in v.iter_mut().zip(chars) {
            if c == b'=' {
                break;
            }
            *slot = u32::from(crate::translate::util::base64_sextet(c)?);
            valid += 1;
        }
        if valid < 2 {
            return None;
        }
        let word = v[0] << 18 | v[1] << 12 | v[2] << 6 | v[3];
        let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        Some((bytes, valid - 1))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Standard base64 (tests only: the code under test only ever decodes).
    pub(crate) fn b64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in bytes.chunks(3) {
            let w = u32::from(c[0]) << 16
                | u32::from(*c.get(1).unwrap_or(&0)) << 8
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    s.push(A[(w >> (18 - 6 * k) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]); // depth, colour, …, CRC
        v
    }

    #[test]
    fn published_examples() {
        // The vision guide's own worked examples.
        assert_eq!(image_tokens(1024, 1024, Detail::High), 765);
        assert_eq!(image_tokens(2048, 4096, Detail::High), 1105);
        assert_eq!(image_tokens(4096, 8192, Detail::Low), 85);
        // Small images are not enlarged: one tile.
        assert_eq!(image_tokens(500, 500, Detail::High), 255);
        assert_eq!(image_tokens(513, 500, Detail::High), 425);
    }

    #[test]
    fn unknown_size_is_the_maximum() {
        assert_eq!(unknown_image_tokens(), 85 + 170 * 8);
        for (w, h) in [
            (1, 1),
            (768, 2048),
            (2048, 2048),
            (100_000, 3),
            (3, 100_000),
            (u32::MAX, u32::MAX),
        ] {
            assert!(
                image_tokens(w, h, Detail::High) <= unknown_image_tokens(),
                "{w}x{h}"
            );
        }
    }

    #[test]
    fn png_gif_webp_headers() {
        assert_eq!(base64_image_size(&b64(&png(640, 480))), Some((640, 480)));
        let gif = b"GIF89a\x20\x03\x58\x02\0\0\0";
        assert_eq!(base64_image_size(&b64(gif)), Some((800, 600)));
        let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
        vp8.extend_from_slice(&[0x00, 0x04, 0x00, 0x03]); // 1024 x 768
        assert_eq!(base64_image_size(&b64(&vp8)), Some((1024, 768)));
        let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(&[0xff, 0x01, 0x00, 0x3f, 0x01, 0x00]); // 512 x 320
        assert_eq!(base64_image_size(&b64(&vp8x)), Some((512, 320)));
        // VP8L: width-1 = 99, height-1 = 49 packed as 14-bit fields.
        let bits: u32 = 99 | 49 << 14;
        let mut vp8l = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        vp8l.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(base64_image_size(&b64(&vp8l)), Some((100, 50)));
    }

    #[test]
    fn jpeg_frame_found_past_a_large_app_segment() {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let app = 40_000u16; // an EXIF block with a thumbnail: the frame header is far in
        j.extend_from_slice(&app.to_be_bytes());
        j.resize(j.len() + usize::from(app) - 2, 0xAB);
        j.extend_from_slice(&[0xFF, 0xC2, 0x00, 0x11, 0x08, 0x02, 0xD0, 0x05, 0x00]); // 1280x720
        assert_eq!(base64_image_size(&b64(&j)), Some((1280, 720)));
        // Cut before the frame header: unknown, not a guess.
        let cut = b64(&j[..j.len() - 9]);
        assert_eq!(base64_image_size(&cut), None);
    }

    #[test]
    fn reads_at_any_offset() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        let text = b64(&bytes);
        let b = B64(text.as_bytes());
        for off in [0, 1, 2, 3, 100, 254] {
            let mut out = [0u8; 5];
            let n = b.read(off, &mut out);
            assert_eq!(n, 5.min(256 - off));
            assert_eq!(&out[..n], &bytes[off..off + n]);
        }
    }

    #[test]
    fn garbage_is_unknown() {
        for s in [
            "",
            "=",
            "====",
            "iVBORw0KGgo",
            "not base64 at all!",
            "/9j/",
            "R0lGODlh",
        ] {
            assert_eq!(base64_image_size(s), None, "{s:?}");
        }
    }
}

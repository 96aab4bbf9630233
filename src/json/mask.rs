//! The byte masks string scans run on: which of sixteen bytes are quotes, backslashes or
//! control characters (what ends a JSON string run, and what escaping must rewrite).

/// Bytes a string is scanned by at a time.
pub(super) const BLOCK: usize = 16;

/// One bit per byte of the block at `at` that a string scan stops at: a quote, a backslash or
/// a control character. Bytes past the end of `b` are flagged too.
#[inline(always)]
pub(super) fn special_mask(b: &[u8], at: usize) -> u32 {
    match b
        .get(at..at + BLOCK)
        .and_then(|s| <&[u8; BLOCK]>::try_from(s).ok())
    {
        Some(block) => block_mask(block),
        None => {
            // The tail: what is there, then zero bytes (control characters: flagged).
            let mut block = [0u8; BLOCK];
            let tail = b.get(at..).unwrap_or_default();
            block[..tail.len()].copy_from_slice(tail);
            block_mask(&block)
        }
    }
}

/// Bytes a string scan takes a mask of at a time: four blocks, so a run with an escape every
/// ~17 bytes (an agent's source files) walks one mask across several escapes.
pub(super) const WIDE: usize = 4 * BLOCK;

/// [`special_mask`] of the [`WIDE`] bytes at `at`, one bit per byte. Bytes past the end of
/// `b` are flagged too.
#[inline(always)]
pub(super) fn wide_mask(b: &[u8], at: usize) -> u64 {
    match b
        .get(at..at + WIDE)
        .and_then(|s| <&[u8; WIDE]>::try_from(s).ok())
    {
        Some(wide) => {
            let mut mask = 0u64;
            for (k, block) in wide.chunks_exact(BLOCK).enumerate() {
                if let Ok(block) = <&[u8; BLOCK]>::try_from(block) {
                    mask |= u64::from(block_mask(block)) << (k * BLOCK);
                }
            }
            mask
        }
        None => {
            let mut mask = 0u64;
            for k in 0..WIDE / BLOCK {
                mask |= u64::from(special_mask(b, at + k * BLOCK)) << (k * BLOCK);
            }
            mask
        }
    }
}

/// [`special_mask`] of one whole block, with SSE2 (every x86_64 has it): two 16-byte loads,
/// three compares and a byte mask each. Measured: the scan of a 300 KB agent body fell from
/// 5.5 to 1.1 instructions per byte against the portable loop below (callgrind), which the
/// compiler does not turn into vector code.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn block_mask(block: &[u8; BLOCK]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    #[expect(unsafe_code, reason = "SSE2 compares, measured to matter (see above)")]
    // SAFETY: SSE2 is in every x86_64 target's baseline, so its intrinsics are available;
    // `block` holds 16 bytes, and the load has no alignment need.
    let any = unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast());
        let q = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let b = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned c <= 0x1f exactly when max(c, 0x1f) is 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let c = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(q, b), c))
    };
    any as u32
}

/// [`special_mask`] of one whole block, a byte at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn block_mask(block: &[u8; BLOCK]) -> u32 {
    portable_mask(block)
}

/// The mask of up to 32 bytes, a byte at a time: where there is no SSE2, and the reference
/// the vector form is tested against.
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
fn portable_mask(bytes: &[u8]) -> u32 {
    let mut mask = 0u32;
    for (k, &c) in bytes.iter().take(BLOCK).enumerate() {
        let special = (c == b'"') | (c == b'\\') | (c < 0x20);
        mask |= u32::from(special) << k;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vector_mask_is_the_portable_one() {
        // Every byte value in every lane, and random blocks.
        for v in 0..=255u8 {
            for lane in [0, 7, 8, 15] {
                let mut block = [b'a'; BLOCK];
                block[lane] = v;
                assert_eq!(
                    block_mask(&block),
                    portable_mask(&block),
                    "{v:#x} at {lane}"
                );
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..10_000 {
            let mut block = [0u8; BLOCK];
            for b in &mut block {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the bytes that matter, some of everything.
                *b = match x % 8 {
                    0 => b'"',
                    1 => b'\\',
                    2 => (x >> 8) as u8 % 0x21,
                    _ => (x >> 8) as u8,
                };
            }
            assert_eq!(block_mask(&block), portable_mask(&block), "{block:?}");
        }
    }

    #[test]
    fn masks_flag_quotes_backslashes_controls_and_the_end() {
        assert_eq!(special_mask(&[b'a'; 40], 0), 0);
        let block = (1u32 << BLOCK) - 1;
        assert_eq!(special_mask(b"ab\"", 0), block & !0b11);
        assert_eq!(special_mask(&[b'a'; 40], 30), block & !0b11_1111_1111);
        let mut b = [b'x'; 64];
        b[33] = b'\\';
        b[40] = 0x1f;
        b[45] = 0x7f;
        b[46] = 0xc3;
        assert_eq!(special_mask(&b, 32), (1 << 1) | (1 << 8));
    }
}

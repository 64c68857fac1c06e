//! Element-wise and row kernels of a llama forward pass: RMS norm, SwiGLU, softmax, RoPE.
//!
//! The loops are written with independent partial sums so LLVM vectorizes them, and each hot
//! body is compiled twice: for the baseline target and, through `dispatch!` (`simd.rs`), with
//! AVX2 + FMA (AVX-512 adds little at these sizes: rows of 576 to 1536 values).

use crate::error::{Error, Result, check_len};
use crate::simd::{dispatch, exp_f32, sum_f32, sum16};

/// Partial sums per reduction (vector width of AVX-512 f32; also fine for AVX2 / SSE).
const LANES: usize = 16;

#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i] * c[i];
        }
    }
    sum16(acc) + tail
}

/// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight` for each row `r` of `weight.len()` values.
pub fn rms_norm_f32(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let d = weight.len();
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::InvalidShape(format!(
            "rms_norm: {} values are not rows of {d}",
            x.len()
        )));
    }
    check_len("rms_norm output", x.len(), out.len(), "elements")?;
    dispatch!(
        fn body(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
            let d = weight.len();
            for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
                let scale = 1.0 / (sum_squares(xr) / d as f32 + eps).sqrt();
                for ((o, &v), &w) in or.iter_mut().zip(xr).zip(weight) {
                    *o = v * scale * w;
                }
            }
        }
    );
    body(x, weight, eps, out);
    Ok(())
}

/// SwiGLU: `out[i] = silu(gate[i]) * up[i]`, `silu(g) = g / (1 + exp(-g))`.
pub fn silu_mul_f32(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    check_len("silu_mul up", gate.len(), up.len(), "elements")?;
    check_len("silu_mul output", gate.len(), out.len(), "elements")?;
    dispatch!(
        fn body(gate: &[f32], up: &[f32], out: &mut [f32]) {
            for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                *o = g / (1.0 + exp_f32(-g)) * u;
            }
        }
    );
    body(gate, up, out);
    Ok(())
}

/// In-place numerically stable softmax of one row (the maximum is subtracted first). An empty
/// row is left alone; a row of all `-inf` is an error (no value has any probability).
pub fn softmax_f32(x: &mut [f32]) -> Result<()> {
    if x.is_empty() {
        return Ok(());
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY || max.is_nan() {
        return Err(Error::InvalidShape(
            "softmax: every value is -inf or NaN".into(),
        ));
    }
    dispatch!(
        fn body(x: &mut [f32], max: f32) {
            for v in x.iter_mut() {
                *v = exp_f32(*v - max);
            }
            let inv = 1.0 / sum_f32(x);
            for v in x.iter_mut() {
                *v *= inv;
            }
        }
    );
    body(x, max);
    Ok(())
}

/// Which elements RoPE rotates together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeMode {
    /// llama.cpp's "normal" mode (LLaMA GGUF): pairs `(x[2i], x[2i+1])`.
    Normal,
    /// GPT-NeoX / Hugging Face style: pairs `(x[i], x[i + d/2])`.
    Neox,
}

/// Rotary position embedding, in place. `x` is `[n_tokens, n_heads, head_dim]` with
/// `n_tokens = positions.len()`; pair `i` of a head of the token at position `p` is rotated by
/// `p * theta_base^(-2i / head_dim)`.
pub fn rope_f32(
    x: &mut [f32],
    head_dim: usize,
    positions: &[u32],
    theta_base: f32,
    mode: RopeMode,
) -> Result<()> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::InvalidShape(format!(
            "rope: head_dim {head_dim} must be even and non-zero"
        )));
    }
    if positions.is_empty() && x.is_empty() {
        return Ok(());
    }
    let per_token = if positions.is_empty() {
        0
    } else {
        x.len() / positions.len()
    };
    if per_token == 0
        || !per_token.is_multiple_of(head_dim)
        || per_token * positions.len() != x.len()
    {
        return Err(Error::InvalidShape(format!(
            "rope: {} values are not {} tokens of whole heads of {head_dim}",
            x.len(),
            positions.len()
        )));
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| theta_base.powf(-2.0 * i as f32 / head_dim as f32))
        .collect();
    let mut cs = vec![(0.0f32, 0.0f32); half];
    for (xt, &pos) in x.chunks_exact_mut(per_token).zip(positions) {
        for (c, &f) in cs.iter_mut().zip(&inv_freq) {
            let (s, co) = (pos as f32 * f).sin_cos();
            *c = (co, s);
        }
        for head in xt.chunks_exact_mut(head_dim) {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = match mode {
                    RopeMode::Normal => (2 * i, 2 * i + 1),
                    RopeMode::Neox => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
    Ok(())
}

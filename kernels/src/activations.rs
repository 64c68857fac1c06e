//! Activations quantized to 8 bits for the integer dot products of the quantized matmul.
//!
//! The layout is struct-of-arrays (all `qs`, then f32 scales, then f32 block sums) rather than
//! ggml's interleaved Q8_1 blocks: the kernels load 32 `qs` bytes per block with one aligned-
//! stride load and read the scales as plain f32, without an f16 conversion per block. The values
//! are the same as ggml's Q8_1 except that `d` and `s` stay in f32 (slightly more precise).

use crate::error::{Error, Result, check_len};
use crate::formats::{QK, quantize_block_i8};

/// `n` rows of `k` activations, quantized per 32-element block:
/// `x[j][b*32 + i] ~= d[j*nb + b] * qs[j*k + b*32 + i]`, and `s[j*nb + b] = d * sum_i qs`.
#[derive(Debug, Clone, Default)]
pub struct Q8Activations {
    n: usize,
    k: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
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
        check_len("activations", n * k, x.len(), "elements")?;
        let nb = k / QK;
        self.n = n;
        self.k = k;
        self.qs.resize(n * k, 0);
        self.d.resize(n * nb, 0.0);
        self.s.resize(n * nb, 0.0);
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
        Ok(())
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

    /// The dequantized value of row `j`, element `i` (for tests and references).
    pub fn value(&self, j: usize, i: usize) -> f32 {
        self.d[(j * self.k + i) / QK] * self.qs[j * self.k + i] as f32
    }
}

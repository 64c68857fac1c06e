//! ggml block formats (F32, F16, Q4_0, Q4_1, Q8_0) and the block dot products of a quantized
//! matmul, done the way llama.cpp's CPU backend does them so that logits agree closely: the
//! activations are first quantized to 8 bits per block of 32 (Q8_0, or Q8_1 for Q4_1 weights),
//! and each block contributes `d_w * d_x * sum(q_w * q_x)` (plus `m_w * s_x` for Q4_1).
//!
//! This is the plain reference path; `agentc-kernels` provides the fast kernels that replace it.

use agentc_model::GgmlType;
use half::f16;

/// Elements per block of the classic quant formats.
pub const QK: usize = 32;
/// Largest magnitude of an 8-bit quantized activation.
const Q8_MAX: f32 = 127.0;

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Rounds to f16 precision and back, as storing a value in a ggml f16 field does.
pub fn round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

/// Bytes one row of `cols` elements takes in `ty` (`cols` is a multiple of the block size).
pub fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    let (block_elements, block_bytes) = ty.block_geometry();
    cols / block_elements * block_bytes
}

/// Writes the f32 values of one row stored as `ty`.
///
/// Only the types of [`GgmlType::is_supported`] reach here; the loader rejects the others.
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::Q8_0 => {
            for (o, block) in out.chunks_exact_mut(QK).zip(row.chunks_exact(34)) {
                let d = f16_at(block, 0);
                for (v, &q) in o.iter_mut().zip(&block[2..]) {
                    *v = d * f32::from(q as i8);
                }
            }
        }
        GgmlType::Q4_0 => {
            for (o, block) in out.chunks_exact_mut(QK).zip(row.chunks_exact(18)) {
                let d = f16_at(block, 0);
                for (j, &byte) in block[2..].iter().enumerate() {
                    o[j] = d * (f32::from(byte & 0x0F) - 8.0);
                    o[j + QK / 2] = d * (f32::from(byte >> 4) - 8.0);
                }
            }
        }
        GgmlType::Q4_1 => {
            for (o, block) in out.chunks_exact_mut(QK).zip(row.chunks_exact(20)) {
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                for (j, &byte) in block[4..].iter().enumerate() {
                    o[j] = d * f32::from(byte & 0x0F) + m;
                    o[j + QK / 2] = d * f32::from(byte >> 4) + m;
                }
            }
        }
        _ => out.fill(0.0),
    }
}

/// Activations prepared for dot products with one weight type: 8-bit blocks for quantized
/// weights, f16-rounded values for F16 weights, plain f32 for F32 weights.
pub struct PreparedActivations {
    pub cols: usize,
    pub values: Vec<f32>,
    pub qs: Vec<i8>,
    /// Per block: the scale `d` as stored (f16-rounded).
    pub d: Vec<f32>,
    /// Per block (Q8_1 only): `d * sum(qs)`, f16-rounded.
    pub s: Vec<f32>,
}

impl PreparedActivations {
    /// Prepares `rows` activation rows of `cols` values (`x.len() == rows * cols`) for `ty`.
    pub fn new(ty: GgmlType, x: &[f32], cols: usize) -> Self {
        let mut prepared = Self {
            cols,
            values: Vec::new(),
            qs: Vec::new(),
            d: Vec::new(),
            s: Vec::new(),
        };
        match ty {
            GgmlType::F32 => prepared.values = x.to_vec(),
            GgmlType::F16 => prepared.values = x.iter().map(|&v| round_f16(v)).collect(),
            _ => prepared.quantize_q8(x, ty == GgmlType::Q4_1),
        }
        prepared
    }

    /// llama.cpp's x86 `quantize_row_q8_0`/`q8_1`: scale by 127/amax, round half to even.
    fn quantize_q8(&mut self, x: &[f32], with_sums: bool) {
        let blocks = x.len() / QK;
        self.qs = vec![0; blocks * QK];
        self.d = Vec::with_capacity(blocks);
        self.s = Vec::with_capacity(if with_sums { blocks } else { 0 });
        for (block, q) in x.chunks_exact(QK).zip(self.qs.chunks_exact_mut(QK)) {
            let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / Q8_MAX;
            let inverse = if amax != 0.0 { Q8_MAX / amax } else { 0.0 };
            let mut sum = 0i32;
            for (qv, &v) in q.iter_mut().zip(block) {
                let rounded = (v * inverse).round_ties_even() as i32;
                *qv = rounded as i8;
                sum += rounded;
            }
            self.d.push(round_f16(d));
            if with_sums {
                self.s.push(round_f16(d * sum as f32));
            }
        }
    }

    /// The dot product of weight row `w` (stored as `ty`) with activation row `row`.
    pub fn dot(&self, ty: GgmlType, w: &[u8], row: usize) -> f32 {
        let blocks_per_row = self.cols / QK;
        let first_block = row * blocks_per_row;
        match ty {
            GgmlType::F32 => {
                let x = &self.values[row * self.cols..(row + 1) * self.cols];
                w.chunks_exact(4)
                    .zip(x)
                    .map(|(b, &xv)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * xv)
                    .sum()
            }
            GgmlType::F16 => {
                let x = &self.values[row * self.cols..(row + 1) * self.cols];
                w.chunks_exact(2)
                    .zip(x)
                    .map(|(b, &xv)| f16::from_le_bytes([b[0], b[1]]).to_f32() * xv)
                    .sum()
            }
            GgmlType::Q4_0 => self.dot_blocks(w, 18, first_block, |block, q, _, dx| {
                let qs = &block[2..18];
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    sumi += (i32::from(qs[j] & 0x0F) - 8) * i32::from(q[j])
                        + (i32::from(qs[j] >> 4) - 8) * i32::from(q[j + QK / 2]);
                }
                f16_at(block, 0) * dx * sumi as f32
            }),
            GgmlType::Q4_1 => self.dot_blocks(w, 20, first_block, |block, q, sx, dx| {
                let qs = &block[4..20];
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    sumi += i32::from(qs[j] & 0x0F) * i32::from(q[j])
                        + i32::from(qs[j] >> 4) * i32::from(q[j + QK / 2]);
                }
                f16_at(block, 0) * dx * sumi as f32 + f16_at(block, 2) * sx
            }),
            GgmlType::Q8_0 => self.dot_blocks(w, 34, first_block, |block, q, _, dx| {
                let qs = &block[2..34];
                let mut sumi = 0i32;
                for j in 0..QK {
                    sumi += i32::from(qs[j] as i8) * i32::from(q[j]);
                }
                f16_at(block, 0) * dx * sumi as f32
            }),
            _ => 0.0,
        }
    }

    fn dot_blocks(
        &self,
        w: &[u8],
        block_bytes: usize,
        first_block: usize,
        block_dot: impl Fn(&[u8], &[i8], f32, f32) -> f32,
    ) -> f32 {
        let mut sum = 0.0f32;
        for (i, block) in w.chunks_exact(block_bytes).enumerate() {
            let b = first_block + i;
            let q = &self.qs[b * QK..(b + 1) * QK];
            let sx = self.s.get(b).copied().unwrap_or(0.0);
            sum += block_dot(block, q, sx, self.d[b]);
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Q4_1 block for values 0..32 scaled: d = 0.5, m = -1.
    fn q4_1_block() -> Vec<u8> {
        let mut block = f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        for j in 0..16u8 {
            block.push(j | ((15 - j) << 4));
        }
        block
    }

    #[test]
    fn q4_1_dequantizes_low_then_high_nibbles() {
        let mut out = [0.0f32; QK];
        dequantize_row(GgmlType::Q4_1, &q4_1_block(), &mut out);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[15], 6.5);
        assert_eq!(out[16], 6.5);
        assert_eq!(out[31], -1.0);
    }

    #[test]
    fn quantized_dots_are_close_to_the_f32_dot() {
        let x: Vec<f32> = (0..QK).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut w = [0.0f32; QK];
        let block = q4_1_block();
        dequantize_row(GgmlType::Q4_1, &block, &mut w);
        let exact: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        let prepared = PreparedActivations::new(GgmlType::Q4_1, &x, QK);
        let approx = prepared.dot(GgmlType::Q4_1, &block, 0);
        assert!(
            (exact - approx).abs() < 0.05 * exact.abs().max(1.0),
            "{exact} vs {approx}"
        );
    }

    #[test]
    fn q8_quantization_rounds_half_to_even() {
        let mut x = vec![0.0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        let prepared = PreparedActivations::new(GgmlType::Q8_0, &x, QK);
        assert_eq!(&prepared.qs[..3], &[127, 2, 4]);
        assert_eq!(prepared.d[0], 1.0);
    }
}

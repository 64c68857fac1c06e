//! ggml block formats (F32, F16, Q4_0, Q4_1, Q8_0) and the block dot products of a quantized
//! matmul, done the way llama.cpp's CPU backend does them so that logits agree closely: the
//! activations are first quantized to 8 bits per block of 32 (Q8_0, or Q8_1 for Q4_1 weights),
//! and each block contributes `d_w * d_x * sum(q_w * q_x)` (plus `m_w * s_x` for Q4_1).
//!
//! This is the plain reference path; `agentc-kernels` provides the fast kernels that replace it.

use agentc_model::GgmlType;
use half::f16;

use crate::weights::QuantTensor;

#[cfg(target_arch = "x86_64")]
mod avx2;

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

    /// The dot product of weight row `r` of `w` with activation row `t`.
    pub fn dot(&self, w: &QuantTensor, r: usize, t: usize) -> f32 {
        let row_bytes = w.row_bytes();
        let raw = &w.data[r * row_bytes..(r + 1) * row_bytes];
        let blocks = self.cols / QK;
        let (wb, xb) = (r * blocks..(r + 1) * blocks, t * blocks..(t + 1) * blocks);
        match w.ty {
            GgmlType::F32 => {
                let x = &self.values[t * self.cols..(t + 1) * self.cols];
                raw.chunks_exact(4)
                    .zip(x)
                    .map(|(b, &xv)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * xv)
                    .sum()
            }
            GgmlType::F16 => {
                let x = &self.values[t * self.cols..(t + 1) * self.cols];
                raw.chunks_exact(2)
                    .zip(x)
                    .map(|(b, &xv)| f16::from_le_bytes([b[0], b[1]]).to_f32() * xv)
                    .sum()
            }
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => {
                let rows = BlockRows {
                    ty: w.ty,
                    raw,
                    w_scales: &w.scales.d[wb.clone()],
                    w_mins: w.scales.m.get(wb).unwrap_or(&[]),
                    x_quants: &self.qs[t * self.cols..(t + 1) * self.cols],
                    x_scales: &self.d[xb.clone()],
                    x_sums: self.s.get(xb).unwrap_or(&[]),
                };
                rows.dot()
            }
            _ => 0.0,
        }
    }
}

/// Per-block scales (and Q4_1 minimums) of a quantized tensor, converted from f16 once at load.
#[derive(Debug, Default)]
pub struct BlockScales {
    pub d: Vec<f32>,
    pub m: Vec<f32>,
}

impl BlockScales {
    pub fn of(ty: GgmlType, data: &[u8]) -> Self {
        let (_, block_bytes) = ty.block_geometry();
        let mut scales = Self::default();
        if matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0) {
            for block in data.chunks_exact(block_bytes) {
                scales.d.push(f16_at(block, 0));
                if ty == GgmlType::Q4_1 {
                    scales.m.push(f16_at(block, 2));
                }
            }
        }
        scales
    }
}

/// One quantized weight row and one 8-bit activation row, block by block.
struct BlockRows<'a> {
    ty: GgmlType,
    raw: &'a [u8],
    w_scales: &'a [f32],
    w_mins: &'a [f32],
    x_quants: &'a [i8],
    x_scales: &'a [f32],
    x_sums: &'a [f32],
}

impl BlockRows<'_> {
    fn dot(&self) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above, and the slices come from one weight row and
            // one activation row of the same width, as the AVX2 functions require.
            unsafe {
                return match self.ty {
                    GgmlType::Q4_1 => avx2::dot_q4_1(
                        self.raw,
                        self.w_scales,
                        self.w_mins,
                        self.x_quants,
                        self.x_scales,
                        self.x_sums,
                    ),
                    GgmlType::Q4_0 => {
                        avx2::dot_q4_0(self.raw, self.w_scales, self.x_quants, self.x_scales)
                    }
                    GgmlType::Q8_0 => {
                        avx2::dot_q8_0(self.raw, self.w_scales, self.x_quants, self.x_scales)
                    }
                    _ => self.dot_portable(),
                };
            }
        }
        self.dot_portable()
    }

    #[inline(always)]
    fn dot_portable(&self) -> f32 {
        let (_, block_bytes) = self.ty.block_geometry();
        let blocks = self
            .raw
            .chunks_exact(block_bytes)
            .zip(self.x_quants.chunks_exact(QK));
        let mut sum = 0.0f32;
        match self.ty {
            GgmlType::Q4_1 => {
                for (b, (block, q)) in blocks.enumerate() {
                    let sumi = nibble_dot::<0>(&block[4..20], q);
                    sum += self.w_scales[b] * self.x_scales[b] * sumi as f32
                        + self.w_mins[b] * self.x_sums[b];
                }
            }
            GgmlType::Q4_0 => {
                for (b, (block, q)) in blocks.enumerate() {
                    let sumi = nibble_dot::<8>(&block[2..18], q);
                    sum += self.w_scales[b] * self.x_scales[b] * sumi as f32;
                }
            }
            GgmlType::Q8_0 => {
                for (b, (block, q)) in blocks.enumerate() {
                    let mut sumi = 0i32;
                    for (&wq, &xq) in block[2..34].iter().zip(q) {
                        sumi += i32::from(wq as i8) * i32::from(xq);
                    }
                    sum += self.w_scales[b] * self.x_scales[b] * sumi as f32;
                }
            }
            _ => {}
        }
        sum
    }
}

/// `sum((nibble - OFFSET) * q)` over one block: low nibbles hold elements 0..16, high nibbles
/// elements 16..32.
#[inline(always)]
fn nibble_dot<const OFFSET: i32>(qs: &[u8], q: &[i8]) -> i32 {
    let (low, high) = q.split_at(QK / 2);
    let mut sumi = 0i32;
    for ((&byte, &l), &h) in qs.iter().zip(low).zip(high) {
        sumi += (i32::from(byte & 0x0F) - OFFSET) * i32::from(l)
            + (i32::from(byte >> 4) - OFFSET) * i32::from(h);
    }
    sumi
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
        let tensor = QuantTensor::from_raw("w", GgmlType::Q4_1, 1, QK, block);
        let approx = prepared.dot(&tensor, 0, 0);
        assert!(
            (exact - approx).abs() < 0.05 * exact.abs().max(1.0),
            "{exact} vs {approx}"
        );
    }

    #[test]
    fn every_dot_path_gives_identical_bits() {
        const COLS: usize = 4 * QK;
        let x: Vec<f32> = (0..COLS)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let w: Vec<f32> = (0..COLS)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.021)
            .collect();
        for (ty, block_bytes) in [
            (GgmlType::Q4_0, 18),
            (GgmlType::Q4_1, 20),
            (GgmlType::Q8_0, 34),
        ] {
            let data = crate::quant::tests::quantize_for_test(ty, &w, block_bytes);
            let tensor = QuantTensor::from_raw("w", ty, 1, COLS, data);
            let prepared = PreparedActivations::new(ty, &x, COLS);
            let fast = prepared.dot(&tensor, 0, 0);
            let rows = BlockRows {
                ty,
                raw: &tensor.data,
                w_scales: &tensor.scales.d,
                w_mins: &tensor.scales.m,
                x_quants: &prepared.qs,
                x_scales: &prepared.d,
                x_sums: &prepared.s,
            };
            assert_eq!(fast.to_bits(), rows.dot_portable().to_bits(), "{ty}");
            let mut dequantized = vec![0.0; COLS];
            dequantize_row(ty, &tensor.data, &mut dequantized);
            let exact: f32 = dequantized.iter().zip(&x).map(|(a, b)| a * b).sum();
            assert!(
                (fast - exact).abs() < 0.02 * exact.abs().max(1.0),
                "{ty}: {fast} vs {exact}"
            );
        }
    }

    /// A crude quantizer (scale by max, no rounding subtleties) good enough to make test blocks.
    pub(crate) fn quantize_for_test(ty: GgmlType, w: &[f32], block_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for block in w.chunks_exact(QK) {
            let start = out.len();
            out.resize(start + block_bytes, 0);
            let bytes = &mut out[start..];
            let (min, max) = block
                .iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            match ty {
                GgmlType::Q4_1 => {
                    let d = (max - min) / 15.0;
                    bytes[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    bytes[2..4].copy_from_slice(&f16::from_f32(min).to_le_bytes());
                    for j in 0..QK / 2 {
                        let lo = ((block[j] - min) / d).round() as u8;
                        let hi = ((block[j + QK / 2] - min) / d).round() as u8;
                        bytes[4 + j] = lo.min(15) | (hi.min(15) << 4);
                    }
                }
                GgmlType::Q4_0 => {
                    let d = max.abs().max(min.abs()) / 8.0;
                    bytes[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    for j in 0..QK / 2 {
                        let lo = ((block[j] / d).round() + 8.0).clamp(0.0, 15.0) as u8;
                        let hi = ((block[j + QK / 2] / d).round() + 8.0).clamp(0.0, 15.0) as u8;
                        bytes[2 + j] = lo | (hi << 4);
                    }
                }
                _ => {
                    let d = max.abs().max(min.abs()) / 127.0;
                    bytes[0..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
                    for j in 0..QK {
                        bytes[2 + j] = ((block[j] / d).round() as i8) as u8;
                    }
                }
            }
        }
        out
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

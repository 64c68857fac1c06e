//! Every supported quantized weight format seen one way: 32-element sub-blocks of unsigned
//! quants `u` with, per half of 16, a scale `d`, a minimum `m` and a zero point, so that element
//! `i` is `d[h] * (u[i] - zero) + m[h]` with `h = i / 16`.
//!
//! Decoding a ggml block into sub-blocks is the only place that knows the bit layouts of the
//! 5-bit and k-quant types; dequantization, the packed-layout repacking and the matmul oracle
//! all read the sub-blocks. The values are computed with the same f32 operations in the same
//! order as ggml's `dequantize_row_*`, so dequantization is bit for bit ggml's.
//!
//! | type | block | sub-block `u`                      | `d[h]`            | `m[h]`          | zero |
//! |------|-------|------------------------------------|-------------------|-----------------|------|
//! | Q4_0 | 32    | 4-bit                              | `d`               | 0               | 8    |
//! | Q4_1 | 32    | 4-bit                              | `d`               | `m`             | 0    |
//! | Q5_0 | 32    | 5-bit                              | `d`               | 0               | 16   |
//! | Q5_1 | 32    | 5-bit                              | `d`               | `m`             | 0    |
//! | Q8_0 | 32    | `q + 128`                          | `d`               | 0               | 128  |
//! | Q4_K | 256   | 4-bit, 8 sub-blocks                | `d * sc_j`        | `-dmin * m_j`   | 0    |
//! | Q5_K | 256   | 5-bit, 8 sub-blocks                | `d * sc_j`        | `-dmin * m_j`   | 0    |
//! | Q6_K | 256   | 6-bit, 8 sub-blocks, scale per 16  | `d * sc_{2j+h}`   | 0               | 32   |

use super::{GgmlType, QK, f16_at};

/// One 32-element sub-block; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubBlock {
    /// The unsigned quants.
    pub u: [u8; QK],
    /// Scale per half (elements 0..16 and 16..32).
    pub d: [f32; 2],
    /// Minimum per half.
    pub m: [f32; 2],
    /// Subtracted from each quant before scaling.
    pub zero: u8,
}

impl Default for SubBlock {
    fn default() -> Self {
        Self {
            u: [0; QK],
            d: [0.0; 2],
            m: [0.0; 2],
            zero: 0,
        }
    }
}

impl SubBlock {
    /// Element `i`, with ggml's rounding.
    #[inline]
    pub fn value(&self, i: usize) -> f32 {
        let h = i / (QK / 2);
        let q = (i32::from(self.u[i]) - i32::from(self.zero)) as f32;
        if self.m[h] == 0.0 {
            self.d[h] * q
        } else {
            self.d[h] * q + self.m[h]
        }
    }

    /// `(scale, offset)` of half `h` with element `i` = `scale * u[i] + offset`.
    #[inline]
    pub fn coefficients(&self, h: usize) -> (f32, f32) {
        (self.d[h], self.m[h] - f32::from(self.zero) * self.d[h])
    }

    /// Whether the two halves have different coefficients (only Q6_K's do).
    #[inline]
    pub fn is_split(&self) -> bool {
        self.d[0] != self.d[1] || self.m[0] != self.m[1]
    }
}

/// Sub-blocks per block of `ty`.
pub fn sub_blocks(ty: GgmlType) -> usize {
    ty.block_size() / QK
}

/// Whether `ty` is a quantized type that [`decode_block`] reads.
pub fn is_affine(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q5K | Q6K)
}

fn same_halves(d: f32, m: f32, zero: u8) -> SubBlock {
    SubBlock {
        u: [0; QK],
        d: [d; 2],
        m: [m; 2],
        zero,
    }
}

/// Decodes one ggml block of `ty` (`block.len() == ty.type_size()`) into its
/// [`sub_blocks`]`(ty)` sub-blocks. `ty` must satisfy [`is_affine`].
pub fn decode_block(ty: GgmlType, block: &[u8], out: &mut [SubBlock]) {
    debug_assert_eq!(block.len(), ty.type_size());
    debug_assert_eq!(out.len(), sub_blocks(ty));
    match ty {
        GgmlType::Q4_0 | GgmlType::Q4_1 => {
            let (m, qs) = if ty == GgmlType::Q4_1 {
                (f16_at(&block[2..]), &block[4..20])
            } else {
                (0.0, &block[2..18])
            };
            let zero = if ty == GgmlType::Q4_0 { 8 } else { 0 };
            let sb = &mut out[0];
            *sb = same_halves(f16_at(block), m, zero);
            for (i, &q) in qs.iter().enumerate() {
                sb.u[i] = q & 0x0f;
                sb.u[i + QK / 2] = q >> 4;
            }
        }
        GgmlType::Q5_0 | GgmlType::Q5_1 => {
            let (m, rest) = if ty == GgmlType::Q5_1 {
                (f16_at(&block[2..]), &block[4..])
            } else {
                (0.0, &block[2..])
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            let zero = if ty == GgmlType::Q5_0 { 16 } else { 0 };
            let sb = &mut out[0];
            *sb = same_halves(f16_at(block), m, zero);
            for (j, &q) in rest[4..20].iter().enumerate() {
                let h0 = (((qh >> j) << 4) & 0x10) as u8;
                let h1 = ((qh >> (j + 12)) & 0x10) as u8;
                sb.u[j] = (q & 0x0f) | h0;
                sb.u[j + QK / 2] = (q >> 4) | h1;
            }
        }
        GgmlType::Q8_0 => {
            let sb = &mut out[0];
            *sb = same_halves(f16_at(block), 0.0, 128);
            for (u, &q) in sb.u.iter_mut().zip(&block[2..]) {
                *u = q ^ 0x80;
            }
        }
        GgmlType::Q4K | GgmlType::Q5K => {
            let (d, dmin) = (f16_at(block), f16_at(&block[2..]));
            let scales = &block[4..16];
            let (qh, ql) = if ty == GgmlType::Q5K {
                (Some(&block[16..48]), &block[48..176])
            } else {
                (None, &block[16..144])
            };
            for (j, pair) in out.chunks_exact_mut(2).enumerate() {
                let q = &ql[32 * j..32 * j + 32];
                for (k, sb) in pair.iter_mut().enumerate() {
                    let (sc, mn) = scale_min_k4(2 * j + k, scales);
                    *sb = same_halves(d * f32::from(sc), -(dmin * f32::from(mn)), 0);
                    let high_bit = 1u8 << (2 * j + k);
                    for (l, &byte) in q.iter().enumerate() {
                        let low = if k == 0 { byte & 0x0f } else { byte >> 4 };
                        let high = qh.map_or(0, |qh| if qh[l] & high_bit != 0 { 16 } else { 0 });
                        sb.u[l] = low | high;
                    }
                }
            }
        }
        GgmlType::Q6K => {
            let (ql, qh, scales) = (&block[0..128], &block[128..192], &block[192..208]);
            let d = f16_at(&block[208..]);
            for (n, quarter) in out.chunks_exact_mut(4).enumerate() {
                let (ql, qh, sc) = (&ql[64 * n..], &qh[32 * n..], &scales[8 * n..]);
                // Sub-block `s` of this 128-element half holds elements 32s..32s+32: the low
                // nibbles of ql[0..32] (s = 0), of ql[32..64] (s = 1), then the high nibbles;
                // its two high bits sit at bits 2s, 2s+1 of qh[l].
                for (s, sb) in quarter.iter_mut().enumerate() {
                    *sb = SubBlock {
                        u: [0; QK],
                        d: [
                            d * f32::from(sc[2 * s] as i8),
                            d * f32::from(sc[2 * s + 1] as i8),
                        ],
                        m: [0.0; 2],
                        zero: 32,
                    };
                    for l in 0..QK {
                        let byte = ql[l + 32 * (s % 2)];
                        let low = if s < 2 { byte & 0x0f } else { byte >> 4 };
                        sb.u[l] = low | (((qh[l] >> (2 * s)) & 3) << 4);
                    }
                }
            }
        }
        _ => unreachable!("decode_block called with {ty}"),
    }
}

/// The 6-bit scale and minimum of sub-block `j` of a Q4_K/Q5_K block (ggml's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

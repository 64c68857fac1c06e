//! Portable kernels: the oracle over raw ggml bytes and a scalar kernel over the packed layout.

use super::pack::{Layout, VEC_BYTES};
use super::{PackedMatrix, QMatrix, ROW_GROUP, blocks};
use crate::activations::Q8Activations;
use crate::error::{Error, Result};
use crate::formats::affine::{self, SubBlock};
use crate::formats::{QK, QK_K, dequantize_row, f16_at};
use crate::simd::{dispatch, sum16};
use std::ops::Range;

/// Per-block weight coefficients `(d, c)` of the single-scale layouts such that a block's dot
/// product with 8-bit activations `(dx, s = dx * sum(qx))` is `d * dx * sum(u * qx) + c * s`,
/// where `u` are the stored unsigned quants (Q4: the nibble; packed Q8_0: `q + 128`).
#[inline(always)]
fn coefficients(layout: Layout, d: f32, c: f32) -> (f32, f32) {
    match layout {
        Layout::Q4_0 => (d, -8.0 * d),
        Layout::Q4_1 | Layout::Q5 => (d, c),
        _ => (d, -128.0 * d),
    }
}

/// The oracle: every output from the raw ggml blocks, one at a time, with the exact f32
/// coefficients of each sub-block: per half `h`, `d_h * dx * sum((u - zero) * qx) + m_h * s_h`.
pub(super) fn matmul_ref_q8(w: &QMatrix, acts: &Q8Activations, y: &mut [f32]) -> Result<()> {
    let ty = w.ty();
    if !affine::is_affine(ty) {
        return Err(Error::UnsupportedType {
            op: "matmul_ref",
            ty: ty.name(),
        });
    }
    let (k, nb) = (w.cols(), blocks(w.cols()));
    y.fill(0.0);
    let mut subs = [SubBlock::default(); QK_K / QK];
    let subs = &mut subs[..affine::sub_blocks(ty)];
    for r in 0..w.rows() {
        for (gb, blk) in w.row(r).chunks_exact(ty.type_size()).enumerate() {
            affine::decode_block(ty, blk, subs);
            for (i, sb) in subs.iter().enumerate() {
                let b = gb * subs.len() + i;
                for j in 0..acts.n() {
                    let xb = &acts.qs()[j * k + b * QK..j * k + (b + 1) * QK];
                    let at = j * nb + b;
                    let s16 = [acts.s16()[2 * at], acts.s16()[2 * at + 1]];
                    y[j * w.rows() + r] += sub_block_dot(sb, xb, acts.d()[at], acts.s()[at], s16);
                }
            }
        }
    }
    Ok(())
}

/// One sub-block's dot product with a block of 8-bit activations.
fn sub_block_dot(sb: &SubBlock, xb: &[i8], dx: f32, s: f32, s16: [f32; 2]) -> f32 {
    let half = |h: usize| -> i32 {
        (h * QK / 2..(h + 1) * QK / 2)
            .map(|i| (i32::from(sb.u[i]) - i32::from(sb.zero)) * i32::from(xb[i]))
            .sum()
    };
    if sb.is_split() {
        (0..2)
            .map(|h| sb.d[h] * dx * half(h) as f32 + sb.m[h] * s16[h])
            .sum()
    } else {
        sb.d[0] * dx * (half(0) + half(1)) as f32 + sb.m[0] * s
    }
}

/// The oracle for float weights.
pub(super) fn matmul_ref_f32(w: &QMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
    let (k, rows) = (w.cols(), w.rows());
    let mut row = vec![0.0f32; k];
    for r in 0..rows {
        dequantize_row(w.ty(), w.row(r), &mut row)?;
        for j in 0..n {
            y[j * rows + r] = row
                .iter()
                .zip(&x[j * k..(j + 1) * k])
                .map(|(a, b)| a * b)
                .sum();
        }
    }
    Ok(())
}

/// Scalar kernel over the packed layout, for row groups `groups`; `out[j]` holds the outputs of
/// activation row `j` for the rows of those groups.
pub(super) fn matmul_groups(
    w: &PackedMatrix,
    acts: &Q8Activations,
    groups: Range<usize>,
    out: &mut [&mut [f32]],
) {
    let layout = w.layout();
    let (k, nb, gbb, qs_off) = (
        w.cols(),
        blocks(w.cols()),
        layout.group_block_bytes(),
        layout.qs_offset(),
    );
    let base = groups.start * ROW_GROUP;
    for g in groups {
        let gdata = w.group_data(g);
        let valid = ROW_GROUP.min(w.rows() - g * ROW_GROUP);
        for (j, yj) in out.iter_mut().enumerate() {
            let xq = &acts.qs()[j * k..(j + 1) * k];
            let mut acc = [0.0f32; ROW_GROUP];
            for (b, gb) in gdata.chunks_exact(gbb).enumerate() {
                let xb = &xq[b * QK..(b + 1) * QK];
                let at = j * nb + b;
                let (dx, sx) = (acts.d()[at], acts.s()[at]);
                for (r, a) in acc.iter_mut().enumerate() {
                    let f16_row = |array: usize| f16_at(&gb[array * 2 * ROW_GROUP + 2 * r..]);
                    let byte = |t: usize, i: usize| gb[qs_off + t * VEC_BYTES + 4 * r + i];
                    match layout {
                        Layout::U8 => {
                            // Halves: vectors 0..4 hold elements 0..16, vectors 4..8 the rest.
                            for h in 0..2 {
                                let mut isum = 0i32;
                                for t in 4 * h..4 * h + 4 {
                                    for i in 0..4 {
                                        isum += i32::from(byte(t, i)) * i32::from(xb[4 * t + i]);
                                    }
                                }
                                let (d, c) = (f16_row(h), f16_row(2 + h));
                                *a += d * dx * isum as f32 + c * acts.s16()[2 * at + h];
                            }
                        }
                        Layout::Q8_0 => {
                            let mut isum = 0i32;
                            for t in 0..QK / 4 {
                                for i in 0..4 {
                                    isum += i32::from(byte(t, i)) * i32::from(xb[4 * t + i]);
                                }
                            }
                            let (d, c) = coefficients(layout, f16_row(0), 0.0);
                            *a += d * dx * isum as f32 + c * sx;
                        }
                        _ => {
                            // Q5: bit 4 of element 4v + i is bit v of the plane's byte 4r + i.
                            let high = |v: usize, i: usize| -> u8 {
                                if layout == Layout::Q5 {
                                    let plane = gb[qs_off + QK / 8 * VEC_BYTES + 4 * r + i];
                                    ((plane >> v) & 1) << 4
                                } else {
                                    0
                                }
                            };
                            let mut isum = 0i32;
                            for t in 0..QK / 8 {
                                for i in 0..4 {
                                    let q = byte(t, i);
                                    let lo = (q & 0x0f) | high(t, i);
                                    let hi = (q >> 4) | high(t + 4, i);
                                    isum += i32::from(lo) * i32::from(xb[4 * t + i]);
                                    isum += i32::from(hi) * i32::from(xb[QK / 2 + 4 * t + i]);
                                }
                            }
                            let c = if layout == Layout::Q4_0 {
                                0.0
                            } else {
                                f16_row(1)
                            };
                            let (d, c) = coefficients(layout, f16_row(0), c);
                            *a += d * dx * isum as f32 + c * sx;
                        }
                    }
                }
            }
            let at = g * ROW_GROUP - base;
            yj[at..at + valid].copy_from_slice(&acc[..valid]);
        }
    }
}

/// Float weights: plain dot products, each weight row reused for all activation rows.
pub(super) fn matmul_groups_f32(
    w: &PackedMatrix,
    x: &[f32],
    groups: Range<usize>,
    out: &mut [&mut [f32]],
) {
    // Compiled for AVX2 + FMA too: the dot product then runs 8 wide with fused multiply-adds.
    dispatch!(
        fn body(w: &PackedMatrix, x: &[f32], groups: Range<usize>, out: &mut [&mut [f32]]) {
            let k = w.cols();
            let base = groups.start * ROW_GROUP;
            let end = (groups.end * ROW_GROUP).min(w.rows());
            for r in base..end {
                let wr = w.float_row(r);
                for (j, yj) in out.iter_mut().enumerate() {
                    yj[r - base] = dot_f32(wr, &x[j * k..(j + 1) * k]);
                }
            }
        }
    );
    body(w, x, groups, out)
}

/// Lanes of independent partial sums, so the compiler vectorizes the dot product.
const DOT_LANES: usize = 16;

/// Dot product of two equal-length slices.
#[inline(always)]
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (ac, bc) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in ac.zip(bc) {
        for i in 0..DOT_LANES {
            acc[i] += ca[i] * cb[i];
        }
    }
    sum16(acc) + tail
}

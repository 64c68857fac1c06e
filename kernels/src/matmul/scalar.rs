//! Portable kernels: the oracle over raw ggml bytes and a scalar kernel over the packed layout.

use super::pack::{VEC_BYTES, group_block_bytes, qs_offset};
use super::{PackedMatrix, QMatrix, ROW_GROUP, blocks};
use crate::activations::Q8Activations;
use crate::error::{Error, Result};
use crate::formats::{GgmlType, QK, dequantize_row, f16_at};
use crate::simd::{dispatch, sum16};
use std::ops::Range;

/// Per-block weight coefficients `(d, c)` such that a block's dot product with 8-bit activations
/// `(dx, s = dx * sum(qx))` is `d * dx * sum(u * qx) + c * s`, where `u` are the stored unsigned
/// quants (Q4: the nibble; packed Q8_0: `q + 128`).
#[inline(always)]
fn coefficients(ty: GgmlType, d: f32, m: f32) -> (f32, f32) {
    match ty {
        GgmlType::Q4_0 => (d, -8.0 * d),
        GgmlType::Q4_1 => (d, m),
        _ => (d, -128.0 * d),
    }
}

/// The oracle: every output from the raw ggml blocks, one at a time.
pub(super) fn matmul_ref_q8(w: &QMatrix, acts: &Q8Activations, y: &mut [f32]) -> Result<()> {
    let ty = w.ty();
    if !matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0) {
        return Err(Error::UnsupportedType {
            op: "matmul_ref",
            ty: ty.name(),
        });
    }
    let (k, nb, ts) = (w.cols(), blocks(w.cols()), ty.type_size());
    for j in 0..acts.n() {
        let xq = &acts.qs()[j * k..(j + 1) * k];
        for r in 0..w.rows() {
            let mut acc = 0.0f32;
            for (b, blk) in w.row(r).chunks_exact(ts).enumerate() {
                let xb = &xq[b * QK..(b + 1) * QK];
                let (dx, sx) = (acts.d()[j * nb + b], acts.s()[j * nb + b]);
                let d = f16_at(blk);
                let (isum, c) = match ty {
                    GgmlType::Q8_0 => {
                        let isum: i32 = blk[2..]
                            .iter()
                            .zip(xb)
                            .map(|(&q, &x)| q as i8 as i32 * x as i32)
                            .sum();
                        (isum, 0.0)
                    }
                    _ => {
                        let (qs, m) = if ty == GgmlType::Q4_1 {
                            (&blk[4..], f16_at(&blk[2..]))
                        } else {
                            (&blk[2..], 0.0)
                        };
                        let mut isum = 0i32;
                        for (i, &q) in qs.iter().enumerate() {
                            isum += (q & 0x0f) as i32 * xb[i] as i32
                                + (q >> 4) as i32 * xb[i + QK / 2] as i32;
                        }
                        (isum, coefficients(ty, d, m).1)
                    }
                };
                acc += d * dx * isum as f32 + c * sx;
            }
            y[j * w.rows() + r] = acc;
        }
    }
    Ok(())
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
    let ty = w.ty();
    let (k, nb, gbb, qs_off) = (
        w.cols(),
        blocks(w.cols()),
        group_block_bytes(ty),
        qs_offset(ty),
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
                let (dx, sx) = (acts.d()[j * nb + b], acts.s()[j * nb + b]);
                for (r, a) in acc.iter_mut().enumerate() {
                    let d = f16_at(&gb[2 * r..]);
                    let m = if ty == GgmlType::Q4_1 {
                        f16_at(&gb[2 * ROW_GROUP + 2 * r..])
                    } else {
                        0.0
                    };
                    let mut isum = 0i32;
                    if ty == GgmlType::Q8_0 {
                        for t in 0..QK / 4 {
                            for i in 0..4 {
                                isum += gb[qs_off + t * VEC_BYTES + 4 * r + i] as i32
                                    * xb[4 * t + i] as i32;
                            }
                        }
                    } else {
                        for t in 0..QK / 8 {
                            for i in 0..4 {
                                let q = gb[qs_off + t * VEC_BYTES + 4 * r + i];
                                isum += (q & 0x0f) as i32 * xb[4 * t + i] as i32;
                                isum += (q >> 4) as i32 * xb[QK / 2 + 4 * t + i] as i32;
                            }
                        }
                    }
                    let (d, c) = coefficients(ty, d, m);
                    *a += d * dx * isum as f32 + c * sx;
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

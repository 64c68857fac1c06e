//! [`PackedMatrix`]: weights repacked once (at model load) into the layout the fast kernels read.
//!
//! Rows are grouped by [`ROW_GROUP`] = 16 (the last group padded with zero rows). For each group
//! and each 32-element block `b`, one *group block* holds, for the 16 rows `r`, the block's
//! coefficients and quants in one of four [`Layout`]s (every quantized type is read through its
//! sub-blocks, see `formats::affine`, so element `i` of a block is `d * u_i + c`):
//!
//! - `d[r]`: 16 f16 scales (32 bytes), then for [`Layout::Q4_1`] `c[r]`: 16 f16 offsets;
//! - [`Layout::Q4_0`]/[`Layout::Q4_1`]: 4 vectors `t` of 64 bytes; byte `4r + i` of vector `t`
//!   holds element `4t + i` of row `r` in its low nibble and element `16 + 4t + i` in its high
//!   nibble (ggml's own `qs` order);
//! - [`Layout::Q8_0`]: 8 vectors `t` of 64 bytes; byte `4r + i` of vector `t` is element `4t + i`
//!   of row `r` as `q + 128` (i.e. an unsigned byte, which is what `vpdpbusd` multiplies);
//! - [`Layout::Q5`]: `d` and `c` as Q4_1, the 4 nibble vectors of the low 4 bits, then one
//!   64-byte *high-bit plane*: bit `v` of its byte `4r + i` is bit 4 of element `4v + i` of row `r`
//!   (the element whose low bits are in nibble vector `v % 4`, low nibble for `v < 4`); a kernel
//!   gets vector `v`'s high bits with one 16-bit shift and a mask (6 bits per weight);
//! - [`Layout::U8`]: 16 f16 `d` for elements 0..16, 16 for 16..32, then 16 f16 `c` for each half
//!   (128 bytes), and 8 vectors as for Q8_0 holding the unsigned quants `u` themselves.
//!
//! Q4_0, Q4_1 and Q8_0 keep their size and values exactly, as do Q5_0 and Q5_1 (as Q5); Q4_K
//! (as Q4_1), Q5_K (as Q5) and Q6_K (as U8, as it needs a scale per 16) round each sub-block's
//! `d * scale` and minimum to f16, a relative change of at most 2^-11 of that coefficient.
//! F32/F16/BF16 matrices are kept as plain f32 rows.

use super::{QMatrix, ROW_GROUP, blocks};
use crate::error::{Error, Result};
use crate::formats::affine::{self, SubBlock};
use crate::formats::{GgmlType, QK, QK_K, dequantize_row};
use half::f16;

/// Bytes of one group block's quantized values (`qs`) for 4-bit layouts.
const Q4_QS_BYTES: usize = ROW_GROUP * QK / 2;
/// Bytes of a group block's high-bit plane (Q5).
const Q5_QH_BYTES: usize = ROW_GROUP * QK / 8;
/// Bytes of one group block's quantized values for 8-bit layouts.
const Q8_QS_BYTES: usize = ROW_GROUP * QK;
/// Bytes of 16 f16 values.
const F16X16_BYTES: usize = ROW_GROUP * 2;
/// Bytes per k-group vector: 16 rows x 4 bytes.
pub(crate) const VEC_BYTES: usize = ROW_GROUP * 4;

/// The packed layout of a group block; chosen from the weights' type by [`Layout::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// 4-bit quants, f16 `d`, offset `-8 d`.
    Q4_0,
    /// 4-bit quants, f16 `d` and `c`.
    Q4_1,
    /// 8-bit `q + 128`, f16 `d`, offset `-128 d`.
    Q8_0,
    /// 5-bit quants as nibbles plus a high-bit plane, f16 `d` and `c`.
    Q5,
    /// 8-bit unsigned quants, f16 `d` and `c` per half block.
    U8,
    /// Plain f32 rows.
    Float,
}

impl Layout {
    /// The layout weights of type `ty` are packed into, if the kernels support `ty`.
    pub(crate) fn of(ty: GgmlType) -> Option<Self> {
        use GgmlType::*;
        Some(match ty {
            F32 | F16 | Bf16 => Self::Float,
            Q4_0 => Self::Q4_0,
            Q4_1 | Q4K => Self::Q4_1,
            Q8_0 => Self::Q8_0,
            Q5_0 | Q5_1 | Q5K => Self::Q5,
            Q6K => Self::U8,
            _ => return None,
        })
    }

    /// Offset of the `qs` vectors inside a group block.
    pub(crate) const fn qs_offset(self) -> usize {
        match self {
            Self::Q4_1 | Self::Q5 => 2 * F16X16_BYTES,
            Self::U8 => 4 * F16X16_BYTES,
            _ => F16X16_BYTES,
        }
    }

    /// Bytes of one group block.
    pub(crate) const fn group_block_bytes(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 => self.qs_offset() + Q4_QS_BYTES,
            Self::Q5 => self.qs_offset() + Q4_QS_BYTES + Q5_QH_BYTES,
            Self::Q8_0 | Self::U8 => self.qs_offset() + Q8_QS_BYTES,
            Self::Float => 0,
        }
    }
}

/// A weight matrix repacked for [`super::matmul`]; see the module docs for the layout.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    ty: GgmlType,
    layout: Layout,
    rows: usize,
    cols: usize,
    /// Quantized types: `groups * blocks * group_block_bytes` bytes.
    data: Vec<u8>,
    /// Float types: `rows * cols` values.
    floats: Vec<f32>,
}

fn put_f16(dst: &mut [u8], v: f32) {
    dst[..2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

impl PackedMatrix {
    /// Repacks `w`. Supports every type of [`GgmlType::is_supported`]: the quantized ones are
    /// repacked, the float ones converted to f32.
    pub fn pack(w: &QMatrix) -> Result<Self> {
        let (ty, rows, cols) = (w.ty(), w.rows(), w.cols());
        let layout = Layout::of(ty).ok_or(Error::UnsupportedType {
            op: "PackedMatrix::pack",
            ty: ty.name(),
        })?;
        let mut p = Self {
            ty,
            layout,
            rows,
            cols,
            data: Vec::new(),
            floats: Vec::new(),
        };
        if layout == Layout::Float {
            p.floats = vec![0.0; rows * cols];
            if cols > 0 {
                for (r, dst) in p.floats.chunks_exact_mut(cols).enumerate() {
                    dequantize_row(ty, w.row(r), dst)?;
                }
            }
        } else {
            p.pack_quantized(w);
        }
        Ok(p)
    }

    /// Packs several matrices of the same type and width stacked by rows into one (e.g. the Q,
    /// K and V projections, or the FFN gate and up): one [`super::matmul`] call then computes
    /// all of them, `y[j]` holding each part's outputs one after another. Fewer, larger calls
    /// pay the per-call thread hand-off once.
    pub fn pack_stacked(parts: &[QMatrix]) -> Result<Self> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidShape("pack_stacked: no matrices".into()))?;
        let (ty, cols) = (first.ty(), first.cols());
        if let Some(p) = parts.iter().find(|p| p.ty() != ty || p.cols() != cols) {
            return Err(Error::InvalidShape(format!(
                "pack_stacked: a {} matrix with {} columns among {ty} matrices with {cols}",
                p.ty(),
                p.cols()
            )));
        }
        let data: Vec<u8> = parts
            .iter()
            .flat_map(|p| p.data().iter().copied())
            .collect();
        let rows = parts.iter().map(|p| p.rows()).sum();
        Self::pack(&QMatrix::new(ty, rows, cols, &data)?)
    }

    fn pack_quantized(&mut self, w: &QMatrix) {
        let (ty, layout) = (self.ty, self.layout);
        let nb = blocks(self.cols);
        let gbb = layout.group_block_bytes();
        let per_block = affine::sub_blocks(ty);
        self.data = vec![0u8; self.groups() * nb * gbb];
        if nb == 0 {
            return;
        }
        let mut subs = [SubBlock::default(); QK_K / QK];
        let subs = &mut subs[..per_block];
        for (g, gdata) in self.data.chunks_exact_mut(nb * gbb).enumerate() {
            for r in 0..ROW_GROUP.min(self.rows - g * ROW_GROUP) {
                let row = w.row(g * ROW_GROUP + r);
                let mut dst_blocks = gdata.chunks_exact_mut(gbb);
                for src in row.chunks_exact(ty.type_size()) {
                    affine::decode_block(ty, src, subs);
                    for (sb, dst) in subs.iter().zip(dst_blocks.by_ref()) {
                        write_sub_block(layout, sb, r, dst);
                    }
                }
            }
        }
    }
    /// The weights' ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// The packed layout the kernels read.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of row groups (`rows / 16`, rounded up).
    pub fn groups(&self) -> usize {
        self.rows.div_ceil(ROW_GROUP)
    }

    /// Bytes the kernels stream per full pass over the matrix.
    pub fn weight_bytes(&self) -> usize {
        self.data.len() + self.floats.len() * 4
    }

    /// The packed bytes of group `g` (quantized types).
    pub(crate) fn group_data(&self, g: usize) -> &[u8] {
        let len = blocks(self.cols) * self.layout.group_block_bytes();
        &self.data[g * len..(g + 1) * len]
    }

    /// Row `r` as f32 (float types).
    pub(crate) fn float_row(&self, r: usize) -> &[f32] {
        &self.floats[r * self.cols..(r + 1) * self.cols]
    }
}

/// Writes row `r`'s part of one group block from sub-block `sb`.
fn write_sub_block(layout: Layout, sb: &SubBlock, r: usize, dst: &mut [u8]) {
    let qs_off = layout.qs_offset();
    let (d, c) = sb.coefficients(0);
    put_f16(&mut dst[2 * r..], d);
    match layout {
        Layout::Q4_0 | Layout::Q4_1 | Layout::Q5 => {
            if layout != Layout::Q4_0 {
                put_f16(&mut dst[F16X16_BYTES + 2 * r..], c);
            }
            for t in 0..QK / 8 {
                for i in 0..4 {
                    let e = 4 * t + i;
                    dst[qs_off + t * VEC_BYTES + 4 * r + i] =
                        (sb.u[e] & 0x0f) | ((sb.u[e + QK / 2] & 0x0f) << 4);
                }
            }
            if layout == Layout::Q5 {
                let plane = qs_off + Q4_QS_BYTES;
                for i in 0..4 {
                    dst[plane + 4 * r + i] = (0..8)
                        .map(|v| ((sb.u[4 * v + i] >> 4) & 1) << v)
                        .fold(0, |byte, bit| byte | bit);
                }
            }
        }
        Layout::Q8_0 => {
            for t in 0..QK / 4 {
                for i in 0..4 {
                    let e = 4 * t + i;
                    // `u - zero` is the signed quant; stored as an unsigned byte `+ 128`.
                    let q = i32::from(sb.u[e]) - i32::from(sb.zero);
                    dst[qs_off + t * VEC_BYTES + 4 * r + i] = (q + 128) as u8;
                }
            }
        }
        Layout::U8 => {
            let (d_hi, c_hi) = sb.coefficients(1);
            put_f16(&mut dst[F16X16_BYTES + 2 * r..], d_hi);
            put_f16(&mut dst[2 * F16X16_BYTES + 2 * r..], c);
            put_f16(&mut dst[3 * F16X16_BYTES + 2 * r..], c_hi);
            for t in 0..QK / 4 {
                for i in 0..4 {
                    dst[qs_off + t * VEC_BYTES + 4 * r + i] = sb.u[4 * t + i];
                }
            }
        }
        Layout::Float => unreachable!("float matrices are not packed in blocks"),
    }
}

//! [`PackedMatrix`]: weights repacked once (at model load) into the layout the fast kernels read.
//!
//! Rows are grouped by [`ROW_GROUP`] = 16 (the last group padded with zero rows). For each group
//! and each 32-element block `b`, one *group block* holds, for the 16 rows `r`:
//!
//! - `d[r]`: 16 f16 scales (32 bytes), then for Q4_1 `m[r]`: 16 f16 minimums (32 bytes);
//! - Q4_0/Q4_1: 4 vectors `t` of 64 bytes; byte `4r + i` of vector `t` is byte `4t + i` of row
//!   `r`'s ggml `qs`, so its low nibble is element `4t + i` and its high nibble element
//!   `16 + 4t + i`;
//! - Q8_0: 8 vectors `t` of 64 bytes; byte `4r + i` of vector `t` is element `4t + i` of row `r`
//!   XOR 0x80 (i.e. `q + 128` as an unsigned byte, which is what `vpdpbusd` multiplies).
//!
//! The size is the same as the ggml bytes. F32/F16 matrices are kept as plain f32 rows.

use super::{QMatrix, ROW_GROUP, blocks};
use crate::error::{Error, Result};
use crate::formats::{GgmlType, QK, dequantize_row};

/// Bytes of one group block's quantized values (`qs`) for 4-bit types.
const Q4_QS_BYTES: usize = ROW_GROUP * QK / 2;
/// Bytes of one group block's quantized values for Q8_0.
const Q8_QS_BYTES: usize = ROW_GROUP * QK;
/// Bytes of 16 f16 values.
const F16X16_BYTES: usize = ROW_GROUP * 2;
/// Bytes per k-group vector: 16 rows x 4 bytes.
pub(crate) const VEC_BYTES: usize = ROW_GROUP * 4;

/// A weight matrix repacked for [`super::matmul`]; see the module docs for the layout.
#[derive(Debug, Clone)]
pub struct PackedMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    /// Quantized types: `groups * blocks * group_block_bytes` bytes.
    data: Vec<u8>,
    /// Float types: `rows * cols` values.
    floats: Vec<f32>,
}

/// Offset of the `qs` vectors inside a group block.
pub(crate) const fn qs_offset(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_1 => 2 * F16X16_BYTES,
        _ => F16X16_BYTES,
    }
}

/// Bytes of one group block.
pub(crate) const fn group_block_bytes(ty: GgmlType) -> usize {
    match ty {
        GgmlType::Q4_0 => F16X16_BYTES + Q4_QS_BYTES,
        GgmlType::Q4_1 => 2 * F16X16_BYTES + Q4_QS_BYTES,
        GgmlType::Q8_0 => F16X16_BYTES + Q8_QS_BYTES,
        _ => 0,
    }
}

impl PackedMatrix {
    /// Repacks `w`. Supports Q4_0, Q4_1, Q8_0 (repacked) and F32, F16 (converted to f32).
    pub fn pack(w: &QMatrix) -> Result<Self> {
        let (ty, rows, cols) = (w.ty(), w.rows(), w.cols());
        let mut p = Self {
            ty,
            rows,
            cols,
            data: Vec::new(),
            floats: Vec::new(),
        };
        match ty {
            GgmlType::F32 | GgmlType::F16 => {
                p.floats = vec![0.0; rows * cols];
                if cols > 0 {
                    for (r, dst) in p.floats.chunks_exact_mut(cols).enumerate() {
                        dequantize_row(ty, w.row(r), dst)?;
                    }
                }
            }
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 => p.pack_quantized(w),
            GgmlType::Q8_1 => {
                return Err(Error::UnsupportedType {
                    op: "PackedMatrix::pack",
                    ty: ty.name(),
                });
            }
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
        let ty = self.ty;
        let nb = blocks(self.cols);
        let gbb = group_block_bytes(ty);
        let ts = ty.type_size();
        let qs_off = qs_offset(ty);
        // Offset of the quants inside a ggml block: after d (and m for Q4_1).
        let src_qs = ts - if ty == GgmlType::Q8_0 { QK } else { QK / 2 };
        self.data = vec![0u8; self.groups() * nb * gbb];
        if nb == 0 {
            return;
        }
        for (g, gdata) in self.data.chunks_exact_mut(nb * gbb).enumerate() {
            for r in 0..ROW_GROUP.min(self.rows - g * ROW_GROUP) {
                let row = w.row(g * ROW_GROUP + r);
                for (src, dst) in row.chunks_exact(ts).zip(gdata.chunks_exact_mut(gbb)) {
                    dst[2 * r..2 * r + 2].copy_from_slice(&src[0..2]);
                    if ty == GgmlType::Q4_1 {
                        dst[F16X16_BYTES + 2 * r..F16X16_BYTES + 2 * r + 2]
                            .copy_from_slice(&src[2..4]);
                    }
                    let flip = if ty == GgmlType::Q8_0 { 0x80 } else { 0 };
                    for (t, quad) in src[src_qs..].chunks_exact(4).enumerate() {
                        let at = qs_off + t * VEC_BYTES + 4 * r;
                        for (o, &q) in dst[at..at + 4].iter_mut().zip(quad) {
                            *o = q ^ flip;
                        }
                    }
                }
            }
        }
    }

    /// The weights' ggml type.
    pub fn ty(&self) -> GgmlType {
        self.ty
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
        let len = blocks(self.cols) * group_block_bytes(self.ty);
        &self.data[g * len..(g + 1) * len]
    }

    /// Row `r` as f32 (float types).
    pub(crate) fn float_row(&self, r: usize) -> &[f32] {
        &self.floats[r * self.cols..(r + 1) * self.cols]
    }
}

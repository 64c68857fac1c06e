//! ggml tensor types and their block layouts, with dequantization into f32 and weight
//! quantization (the latter mainly to make test and bench matrices).
//!
//! Layouts, exactly as ggml's `ggml-common.h` defines them (all little-endian):
//!
//! | type | block | bytes | layout                                  | value of element `i`        |
//! |------|-------|-------|-----------------------------------------|-----------------------------|
//! | F32  | 1     | 4     | f32                                     | `x`                         |
//! | F16  | 1     | 2     | f16                                     | `x`                         |
//! | Q4_0 | 32    | 18    | f16 `d`, 16 bytes `qs`                  | `(q_i - 8) * d`             |
//! | Q4_1 | 32    | 20    | f16 `d`, f16 `m`, 16 bytes `qs`         | `q_i * d + m`               |
//! | Q8_0 | 32    | 34    | f16 `d`, 32 x i8 `qs`                   | `q_i * d`                   |
//! | Q8_1 | 32    | 36    | f16 `d`, f16 `s = d * sum(q)`, 32 x i8  | `q_i * d`                   |
//!
//! For the 4-bit types, `q_i` for `i < 16` is the low nibble of `qs[i]` and `q_{i+16}` is the
//! high nibble of `qs[i]`.

use crate::error::{Error, Result, check_len};
use half::f16;

/// Elements per block of every 32-element quantized type.
pub const QK: usize = 32;

/// The ggml tensor types this crate understands. Discriminants are ggml's type ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgmlType {
    /// 32-bit float.
    F32 = 0,
    /// IEEE half.
    F16 = 1,
    /// 4-bit, symmetric, one f16 scale per 32 weights.
    Q4_0 = 2,
    /// 4-bit, affine (scale and minimum) per 32 weights.
    Q4_1 = 3,
    /// 8-bit, symmetric, one f16 scale per 32 weights.
    Q8_0 = 8,
    /// 8-bit with the block sum; the activation format for Q4_1 dot products.
    Q8_1 = 9,
}

impl GgmlType {
    /// The type with ggml type id `id`, if this crate supports it.
    pub fn from_ggml_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::F16,
            2 => Self::Q4_0,
            3 => Self::Q4_1,
            8 => Self::Q8_0,
            9 => Self::Q8_1,
            _ => return None,
        })
    }

    /// ggml's type id.
    pub fn ggml_id(self) -> u32 {
        self as u32
    }

    /// ggml's name for the type.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q8_0 => "q8_0",
            Self::Q8_1 => "q8_1",
        }
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        match self {
            Self::F32 | Self::F16 => 1,
            _ => QK,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
            Self::Q4_0 => 2 + QK / 2,
            Self::Q4_1 => 4 + QK / 2,
            Self::Q8_0 => 2 + QK,
            Self::Q8_1 => 4 + QK,
        }
    }

    /// Bytes of a row of `cols` elements; an error if `cols` is not a whole number of blocks.
    pub fn row_bytes(self, cols: usize) -> Result<usize> {
        let block = self.block_size();
        if !cols.is_multiple_of(block) {
            return Err(Error::NotBlockAligned {
                ty: self.name(),
                block,
                cols,
            });
        }
        Ok(cols / block * self.type_size())
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads the little-endian f16 at `b[0..2]` as f32.
#[inline(always)]
pub(crate) fn f16_at(b: &[u8]) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

#[inline(always)]
fn put_f16(b: &mut [u8], v: f32) {
    b[..2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes());
}

/// Checks `src`/`dst` lengths for a row of `dst.len()` elements of type `ty`.
fn check_row(ty: GgmlType, what: &'static str, src_bytes: usize, elems: usize) -> Result<()> {
    let expected = ty.row_bytes(elems)?;
    check_len(what, expected, src_bytes, "bytes")
}

/// Dequantizes a Q4_0 row: `dst.len()` elements from `src`.
pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::Q4_0, "q4_0 row", src.len(), dst.len())?;
    for (b, out) in src
        .chunks_exact(GgmlType::Q4_0.type_size())
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_at(b);
        for (i, &q) in b[2..].iter().enumerate() {
            out[i] = ((q & 0x0f) as i32 - 8) as f32 * d;
            out[i + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
    Ok(())
}

/// Dequantizes a Q4_1 row: `dst.len()` elements from `src`.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::Q4_1, "q4_1 row", src.len(), dst.len())?;
    for (b, out) in src
        .chunks_exact(GgmlType::Q4_1.type_size())
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_at(b);
        let m = f16_at(&b[2..]);
        for (i, &q) in b[4..].iter().enumerate() {
            out[i] = (q & 0x0f) as f32 * d + m;
            out[i + QK / 2] = (q >> 4) as f32 * d + m;
        }
    }
    Ok(())
}

/// Dequantizes a Q8_0 row: `dst.len()` elements from `src`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::Q8_0, "q8_0 row", src.len(), dst.len())?;
    for (b, out) in src
        .chunks_exact(GgmlType::Q8_0.type_size())
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_at(b);
        for (o, &q) in out.iter_mut().zip(&b[2..]) {
            *o = q as i8 as f32 * d;
        }
    }
    Ok(())
}

/// Dequantizes a Q8_1 row (the `s` field is not needed for values).
pub fn dequantize_row_q8_1(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::Q8_1, "q8_1 row", src.len(), dst.len())?;
    for (b, out) in src
        .chunks_exact(GgmlType::Q8_1.type_size())
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_at(b);
        for (o, &q) in out.iter_mut().zip(&b[4..]) {
            *o = q as i8 as f32 * d;
        }
    }
    Ok(())
}

/// Converts an F16 row to f32.
pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::F16, "f16 row", src.len(), dst.len())?;
    for (b, o) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *o = f16_at(b);
    }
    Ok(())
}

/// Copies an F32 row (little-endian bytes) to f32.
pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::F32, "f32 row", src.len(), dst.len())?;
    for (b, o) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// Dequantizes a row of any supported type.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    match ty {
        GgmlType::F32 => dequantize_row_f32(src, dst),
        GgmlType::F16 => dequantize_row_f16(src, dst),
        GgmlType::Q4_0 => dequantize_row_q4_0(src, dst),
        GgmlType::Q4_1 => dequantize_row_q4_1(src, dst),
        GgmlType::Q8_0 => dequantize_row_q8_0(src, dst),
        GgmlType::Q8_1 => dequantize_row_q8_1(src, dst),
    }
}

fn check_quant(ty: GgmlType, x: &[f32], dst: &[u8]) -> Result<()> {
    let expected = ty.row_bytes(x.len())?;
    check_len("quantized row output", expected, dst.len(), "bytes")
}

/// Quantizes a row to Q4_0 as ggml's reference `quantize_row_q4_0_ref` does.
pub fn quantize_row_q4_0(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::Q4_0, x, dst)?;
    for (xb, b) in x
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(GgmlType::Q4_0.type_size()))
    {
        // The signed value of largest magnitude maps to -8, so the full range [-8, 7] is used.
        let max = xb
            .iter()
            .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, d);
        for i in 0..QK / 2 {
            let q0 = ((xb[i] * id + 8.5) as i32).clamp(0, 15) as u8;
            let q1 = ((xb[i + QK / 2] * id + 8.5) as i32).clamp(0, 15) as u8;
            b[2 + i] = q0 | (q1 << 4);
        }
    }
    Ok(())
}

/// Quantizes a row to Q4_1 as ggml's reference `quantize_row_q4_1_ref` does.
pub fn quantize_row_q4_1(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::Q4_1, x, dst)?;
    for (xb, b) in x
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(GgmlType::Q4_1.type_size()))
    {
        let min = xb.iter().copied().fold(f32::INFINITY, f32::min);
        let max = xb.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(b, d);
        put_f16(&mut b[2..], min);
        for i in 0..QK / 2 {
            let q0 = (((xb[i] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            let q1 = (((xb[i + QK / 2] - min) * id + 0.5) as i32).clamp(0, 15) as u8;
            b[4 + i] = q0 | (q1 << 4);
        }
    }
    Ok(())
}

/// 1.5 * 2^23: adding it to a small float leaves its value rounded to an integer in the mantissa.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Symmetric 8-bit quantization of one block: returns `(d, qs)` with `d = amax / 127`.
#[inline]
pub(crate) fn quantize_block_i8(xb: &[f32], qs: &mut [i8]) -> (f32, i32) {
    let amax = xb.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(xb) {
        // Round half to even by adding and removing 1.5 * 2^23 (exact for |v * id| <= 127):
        // branch-free, vectorizable without SSE4.1, and no libm call. ggml's `roundf` rounds
        // ties away from zero; the two differ only on exact ties.
        let r = ((v * id + ROUND_MAGIC) - ROUND_MAGIC) as i32;
        *q = r as i8;
        sum += r;
    }
    (d, sum)
}

/// Quantizes a row to Q8_0 (weights or activations), as ggml's `quantize_row_q8_0_ref`.
pub fn quantize_row_q8_0(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::Q8_0, x, dst)?;
    let mut qs = [0i8; QK];
    for (xb, b) in x
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(GgmlType::Q8_0.type_size()))
    {
        let (d, _) = quantize_block_i8(xb, &mut qs);
        put_f16(b, d);
        for (o, &q) in b[2..].iter_mut().zip(&qs) {
            *o = q as u8;
        }
    }
    Ok(())
}

/// Quantizes a row to Q8_1 (activations for Q4_1 dot products), as ggml's
/// `quantize_row_q8_1_ref`: `s = d * sum(q)`.
pub fn quantize_row_q8_1(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::Q8_1, x, dst)?;
    let mut qs = [0i8; QK];
    for (xb, b) in x
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(GgmlType::Q8_1.type_size()))
    {
        let (d, sum) = quantize_block_i8(xb, &mut qs);
        put_f16(b, d);
        put_f16(&mut b[2..], sum as f32 * d);
        for (o, &q) in b[4..].iter_mut().zip(&qs) {
            *o = q as u8;
        }
    }
    Ok(())
}

/// Converts f32 values to an F16 row.
pub fn quantize_row_f16(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::F16, x, dst)?;
    for (&v, b) in x.iter().zip(dst.chunks_exact_mut(2)) {
        put_f16(b, v);
    }
    Ok(())
}

/// Stores f32 values as an F32 row (little-endian bytes).
pub fn quantize_row_f32(x: &[f32], dst: &mut [u8]) -> Result<()> {
    check_quant(GgmlType::F32, x, dst)?;
    for (&v, b) in x.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&v.to_le_bytes());
    }
    Ok(())
}

/// Quantizes a row into any supported type.
pub fn quantize_row(ty: GgmlType, x: &[f32], dst: &mut [u8]) -> Result<()> {
    match ty {
        GgmlType::F32 => quantize_row_f32(x, dst),
        GgmlType::F16 => quantize_row_f16(x, dst),
        GgmlType::Q4_0 => quantize_row_q4_0(x, dst),
        GgmlType::Q4_1 => quantize_row_q4_1(x, dst),
        GgmlType::Q8_0 => quantize_row_q8_0(x, dst),
        GgmlType::Q8_1 => quantize_row_q8_1(x, dst),
    }
}

/// Quantizes a `rows x cols` row-major f32 matrix into a newly allocated buffer of type `ty`.
pub fn quantize_matrix(ty: GgmlType, x: &[f32], rows: usize, cols: usize) -> Result<Vec<u8>> {
    check_len("matrix to quantize", rows * cols, x.len(), "elements")?;
    let rb = ty.row_bytes(cols)?;
    let mut out = vec![0u8; rows * rb];
    if cols == 0 {
        return Ok(out);
    }
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rb)) {
        quantize_row(ty, xr, or)?;
    }
    Ok(out)
}

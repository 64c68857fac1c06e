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
//! | BF16 | 1     | 2     | the high half of an f32                 | `x`                         |
//! | Q5_0 | 32    | 22    | f16 `d`, 4 bytes `qh`, 16 bytes `qs`    | `(q_i - 16) * d`            |
//! | Q5_1 | 32    | 24    | f16 `d`, f16 `m`, `qh`, `qs`            | `q_i * d + m`               |
//! | Q4_K | 256   | 144   | f16 `d`, `dmin`, 12 bytes scales, 128 `qs` | see [`affine`]           |
//! | Q5_K | 256   | 176   | as Q4_K plus 32 bytes `qh`              | see [`affine`]              |
//! | Q6_K | 256   | 210   | 128 `ql`, 64 `qh`, 16 x i8 scales, f16 `d` | see [`affine`]           |
//!
//! For the 4-bit types, `q_i` for `i < 16` is the low nibble of `qs[i]` and `q_{i+16}` is the
//! high nibble of `qs[i]`; the 5-bit types add bit `i` of `qh` as bit 4 of `q_i`. Every quantized
//! type is dequantized through [`affine::decode_block`].

use crate::error::{Error, Result, check_len};
use half::f16;

pub mod affine;

/// Elements per block of every 32-element quantized type.
pub const QK: usize = 32;

/// A ggml tensor type. Every type llama.cpp writes is listed (discriminants are ggml's type
/// ids, `enum ggml_type` in ggml.h), so that byte sizes, and therefore bounds checks, are right
/// even for tensors agentc cannot compute with; [`GgmlType::is_supported`] says which it can.
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
    /// 5-bit, symmetric, one f16 scale per 32 weights.
    Q5_0 = 6,
    /// 5-bit, affine per 32 weights.
    Q5_1 = 7,
    /// 8-bit, symmetric, one f16 scale per 32 weights.
    Q8_0 = 8,
    /// 8-bit with the block sum; the activation format of llama.cpp's Q4_1/Q5_1 dot products.
    Q8_1 = 9,
    Q2K = 10,
    Q3K = 11,
    /// 4-bit k-quant: super-blocks of 256 with 6-bit scales and minimums per 32.
    Q4K = 12,
    /// 5-bit k-quant: as Q4_K plus one high bit per weight.
    Q5K = 13,
    /// 6-bit k-quant: super-blocks of 256 with an 8-bit scale per 16.
    Q6K = 14,
    /// 8-bit k-quant, llama.cpp's activation type for k-quant dot products.
    Q8K = 15,
    Iq2Xxs = 16,
    Iq2Xs = 17,
    Iq3Xxs = 18,
    Iq1S = 19,
    Iq4Nl = 20,
    Iq3S = 21,
    Iq2S = 22,
    Iq4Xs = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    Iq1M = 29,
    /// bfloat16.
    Bf16 = 30,
}

/// Elements per super-block of the k-quant and most i-quant types.
pub const QK_K: usize = 256;

impl GgmlType {
    /// Every type, in id order.
    pub const ALL: [GgmlType; 29] = {
        use GgmlType::*;
        [
            F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2K, Q3K, Q4K, Q5K, Q6K, Q8K, Iq2Xxs,
            Iq2Xs, Iq3Xxs, Iq1S, Iq4Nl, Iq3S, Iq2S, Iq4Xs, I8, I16, I32, I64, F64, Iq1M, Bf16,
        ]
    };

    /// The type with ggml id `id`, if ggml defines one (ids 4 and 5, Q4_2 and Q4_3, were removed).
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// ggml's type id.
    #[inline]
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name llama.cpp's tools print for the type.
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            Q8K => "Q8_K",
            Iq2Xxs => "IQ2_XXS",
            Iq2Xs => "IQ2_XS",
            Iq3Xxs => "IQ3_XXS",
            Iq1S => "IQ1_S",
            Iq4Nl => "IQ4_NL",
            Iq3S => "IQ3_S",
            Iq2S => "IQ2_S",
            Iq4Xs => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            Iq1M => "IQ1_M",
            Bf16 => "BF16",
        }
    }

    /// (elements per block, bytes per block), from ggml's `type_traits` table.
    pub fn block_geometry(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | Bf16 => (1, 2),
            Q4_0 => (QK, 18),
            Q4_1 => (QK, 20),
            Q5_0 => (QK, 22),
            Q5_1 => (QK, 24),
            Q8_0 => (QK, 34),
            Q8_1 => (QK, 36),
            Q2K => (QK_K, 84),
            Q3K => (QK_K, 110),
            Q4K => (QK_K, 144),
            Q5K => (QK_K, 176),
            Q6K => (QK_K, 210),
            Q8K => (QK_K, 292),
            Iq2Xxs => (QK_K, 66),
            Iq2Xs => (QK_K, 74),
            Iq3Xxs => (QK_K, 98),
            Iq1S => (QK_K, 50),
            Iq4Nl => (QK, 18),
            Iq3S => (QK_K, 110),
            Iq2S => (QK_K, 82),
            Iq4Xs => (QK_K, 136),
            I8 => (1, 1),
            I16 => (1, 2),
            I32 => (1, 4),
            I64 | F64 => (1, 8),
            Iq1M => (QK_K, 56),
        }
    }

    /// Elements per block.
    #[inline]
    pub fn block_size(self) -> usize {
        self.block_geometry().0
    }

    /// Bytes per block.
    #[inline]
    pub fn type_size(self) -> usize {
        self.block_geometry().1
    }

    /// Whether agentc can dequantize weights of this type and multiply with them.
    pub fn is_supported(self) -> bool {
        use GgmlType::*;
        matches!(
            self,
            F32 | F16 | Bf16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q4K | Q5K | Q6K
        )
    }

    /// The names of the supported weight types, for error messages.
    pub fn supported_names() -> String {
        Self::ALL
            .iter()
            .filter(|t| t.is_supported())
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
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
    dequantize_row_affine(GgmlType::Q4_0, src, dst)
}

/// Dequantizes a Q4_1 row: `dst.len()` elements from `src`.
pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) -> Result<()> {
    dequantize_row_affine(GgmlType::Q4_1, src, dst)
}

/// Dequantizes a Q8_0 row: `dst.len()` elements from `src`.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) -> Result<()> {
    dequantize_row_affine(GgmlType::Q8_0, src, dst)
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

/// Converts a BF16 row to f32.
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(GgmlType::Bf16, "bf16 row", src.len(), dst.len())?;
    for (b, o) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *o = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
    }
    Ok(())
}

/// Dequantizes a row of a quantized type through its sub-blocks (see [`affine`]).
fn dequantize_row_affine(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_row(ty, "quantized row", src.len(), dst.len())?;
    let mut subs = [affine::SubBlock::default(); QK_K / QK];
    let subs = &mut subs[..affine::sub_blocks(ty)];
    for (block, out) in src
        .chunks_exact(ty.type_size())
        .zip(dst.chunks_exact_mut(ty.block_size()))
    {
        affine::decode_block(ty, block, subs);
        for (sb, o) in subs.iter().zip(out.chunks_exact_mut(QK)) {
            for (i, v) in o.iter_mut().enumerate() {
                *v = sb.value(i);
            }
        }
    }
    Ok(())
}

/// Dequantizes a row of any supported type (and of Q8_1), with ggml's rounding.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    match ty {
        GgmlType::F32 => dequantize_row_f32(src, dst),
        GgmlType::F16 => dequantize_row_f16(src, dst),
        GgmlType::Bf16 => dequantize_row_bf16(src, dst),
        GgmlType::Q8_1 => dequantize_row_q8_1(src, dst),
        ty if affine::is_affine(ty) => dequantize_row_affine(ty, src, dst),
        ty => Err(Error::UnsupportedType {
            op: "dequantize_row",
            ty: ty.name(),
        }),
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
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

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
        ty => Err(Error::UnsupportedType {
            op: "quantize_row",
            ty: ty.name(),
        }),
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

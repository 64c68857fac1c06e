//! The 5-bit, k-quant and BF16 formats against an independent implementation, candle's port of
//! ggml's quantizers (`candle_core::quantized::k_quants`): candle quantizes random weights,
//! and this crate's dequantization must equal candle's bit for bit; then every instruction set's
//! packed matmul must equal the raw-bytes oracle within the stated f16 rounding of the packed
//! coefficients, and the oracle the f64 dot product within the 8-bit activation bound.

use agentc_kernels::formats::affine::{self, SubBlock};
use agentc_kernels::*;
use candle_core::quantized::k_quants::{self as cq, GgmlType as CandleType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Weights shaped like a trained layer's: mostly small, a few larger, not centred on zero.
fn weights(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0f32..1.0);
            0.05 * v * v * v + 0.01 * rng.random_range(-1.0f32..1.0) + 0.002
        })
        .collect()
}

/// `x` quantized by candle into blocks of `B`, as the raw bytes a GGUF file holds.
fn candle_bytes<B: CandleType>(x: &[f32]) -> Vec<u8> {
    let mut blocks = vec![B::zeros(); x.len() / B::BLCK_SIZE];
    B::from_float(x, &mut blocks);
    let len = blocks.len() * std::mem::size_of::<B>();
    // SAFETY: candle's blocks are `#[repr(C)]` structs of integers and f16s with no padding
    // (their sizes are ggml's block sizes, checked below), so their bytes are the file layout.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, len) }.to_vec()
}

/// candle's dequantization of `bytes` (blocks of `B`).
fn candle_values<B: CandleType>(bytes: &[u8]) -> Vec<f32> {
    let n = bytes.len() / std::mem::size_of::<B>();
    let mut blocks = vec![B::zeros(); n];
    // SAFETY: as above; `blocks` holds exactly `bytes.len()` bytes and is suitably aligned.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), blocks.as_mut_ptr() as *mut u8, bytes.len())
    };
    let mut out = vec![0.0; n * B::BLCK_SIZE];
    B::to_float(&blocks, &mut out);
    out
}

type Quantizer = fn(&[f32]) -> Vec<u8>;
type Dequantizer = fn(&[u8]) -> Vec<f32>;

/// The types checked against candle, with candle's quantizer and dequantizer for each.
fn candle_types() -> Vec<(GgmlType, Quantizer, Dequantizer, usize)> {
    vec![
        (
            GgmlType::Q4_0,
            candle_bytes::<cq::BlockQ4_0>,
            candle_values::<cq::BlockQ4_0>,
            std::mem::size_of::<cq::BlockQ4_0>(),
        ),
        (
            GgmlType::Q4_1,
            candle_bytes::<cq::BlockQ4_1>,
            candle_values::<cq::BlockQ4_1>,
            std::mem::size_of::<cq::BlockQ4_1>(),
        ),
        (
            GgmlType::Q5_0,
            candle_bytes::<cq::BlockQ5_0>,
            candle_values::<cq::BlockQ5_0>,
            std::mem::size_of::<cq::BlockQ5_0>(),
        ),
        (
            GgmlType::Q5_1,
            candle_bytes::<cq::BlockQ5_1>,
            candle_values::<cq::BlockQ5_1>,
            std::mem::size_of::<cq::BlockQ5_1>(),
        ),
        (
            GgmlType::Q8_0,
            candle_bytes::<cq::BlockQ8_0>,
            candle_values::<cq::BlockQ8_0>,
            std::mem::size_of::<cq::BlockQ8_0>(),
        ),
        (
            GgmlType::Q4K,
            candle_bytes::<cq::BlockQ4K>,
            candle_values::<cq::BlockQ4K>,
            std::mem::size_of::<cq::BlockQ4K>(),
        ),
        (
            GgmlType::Q5K,
            candle_bytes::<cq::BlockQ5K>,
            candle_values::<cq::BlockQ5K>,
            std::mem::size_of::<cq::BlockQ5K>(),
        ),
        (
            GgmlType::Q6K,
            candle_bytes::<cq::BlockQ6K>,
            candle_values::<cq::BlockQ6K>,
            std::mem::size_of::<cq::BlockQ6K>(),
        ),
    ]
}

#[test]
fn dequantization_equals_candle_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(19);
    for (ty, quantize, candle_dequantize, block_bytes) in candle_types() {
        assert_eq!(block_bytes, ty.type_size(), "{ty}: candle's block size");
        let x = weights(&mut rng, 8 * 256);
        let bytes = quantize(&x);
        let want = candle_dequantize(&bytes);
        let mut got = vec![f32::NAN; x.len()];
        dequantize_row(ty, &bytes, &mut got).unwrap();
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            assert!(a == b, "{ty} element {i}: {a} vs candle's {b}");
        }
        // And the quantization is real: the values are close to the input.
        let worst = got
            .iter()
            .zip(&x)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 0.02, "{ty}: worst round-trip error {worst}");
    }
}

#[test]
fn bf16_is_the_high_half_of_f32() {
    let x = [1.0f32, -2.5, 3.140625, 1e-20, -0.0];
    let bytes: Vec<u8> = x
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_bits().to_le_bytes())
        .collect();
    let mut got = [f32::NAN; 5];
    dequantize_row(GgmlType::Bf16, &bytes, &mut got).unwrap();
    let want: Vec<f32> = x
        .iter()
        .map(|v| half::bf16::from_f32(*v).to_f32())
        .collect();
    assert_eq!(got.to_vec(), want);
}

/// One sub-block's terms `sum_i (|d_h u_i| + |c_h|) |x_i|`: the f16 rounding of the packed
/// `d_h` and `c_h` (relative 2^-11 at most) moves an output by at most 2^-11 of this.
fn coefficient_magnitude(sb: &SubBlock, x: &[f32]) -> f64 {
    (0..32)
        .map(|i| {
            let (d, c) = sb.coefficients(i / 16);
            (f64::from(d * f32::from(sb.u[i])).abs() + f64::from(c).abs()) * f64::from(x[i].abs())
        })
        .sum()
}

#[test]
fn packed_kernels_match_the_oracle_within_f16_coefficient_rounding() {
    let mut rng = StdRng::seed_from_u64(23);
    let ctxs: Vec<KernelContext> = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|i| i.is_available())
        .flat_map(|isa| [1, 2].map(|t| KernelContext::with_isa(isa, t).unwrap()))
        .collect();
    for (ty, quantize, _, _) in candle_types() {
        for (rows, k, n) in [(1, 256, 1), (17, 512, 3), (33, 256, 9), (40, 768, 8)] {
            let bytes = quantize(&weights(&mut rng, rows * k));
            let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
            let x: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut want = vec![0.0f32; n * rows];
            matmul_ref(&w, &x, n, &mut want).unwrap();
            let packed = PackedMatrix::pack(&w).unwrap();
            let mut subs = vec![SubBlock::default(); affine::sub_blocks(ty)];
            for ctx in &ctxs {
                let mut got = vec![f32::NAN; n * rows];
                matmul(&packed, &x, n, &mut got, ctx).unwrap();
                for j in 0..n {
                    for r in 0..rows {
                        let xr = &x[j * k..(j + 1) * k];
                        let mut mag = 0.0f64;
                        let row = &bytes[r * bytes.len() / rows..(r + 1) * bytes.len() / rows];
                        for (b, block) in row.chunks_exact(ty.type_size()).enumerate() {
                            affine::decode_block(ty, block, &mut subs);
                            for (s, sb) in subs.iter().enumerate() {
                                let at = (b * subs.len() + s) * 32;
                                mag += coefficient_magnitude(sb, &xr[at..at + 32]);
                            }
                        }
                        let tol = mag * (2.0f64.powi(-11) + 1e-5) + 1e-6;
                        let (a, b) = (got[j * rows + r], want[j * rows + r]);
                        assert!(
                            f64::from((a - b).abs()) <= tol,
                            "{ty} {rows}x{k} n={n} {:?}: out ({j},{r}) {a} vs oracle {b} (bound {tol})",
                            ctx.isa()
                        );
                    }
                }
            }
        }
    }
}

/// The oracle against f64 arithmetic on the dequantized weights and the unquantized x, within
/// the 8-bit activation rounding (`amax_b / 254` per element, as in `matmul.rs`, with `b` the
/// block of 32 values, or of 256 for k-quant weights).
#[test]
fn oracle_within_activation_quantization_bound() {
    let mut rng = StdRng::seed_from_u64(29);
    for (ty, quantize, _, _) in candle_types() {
        let (rows, k, n) = (9, 512, 3);
        let bytes = quantize(&weights(&mut rng, rows * k));
        let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
        let mut wd = vec![0.0f32; rows * k];
        let rb = bytes.len() / rows;
        for r in 0..rows {
            dequantize_row(
                ty,
                &bytes[r * rb..(r + 1) * rb],
                &mut wd[r * k..(r + 1) * k],
            )
            .unwrap();
        }
        let x: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut got = vec![0.0f32; n * rows];
        matmul_ref(&w, &x, n, &mut got).unwrap();
        for j in 0..n {
            for r in 0..rows {
                let (wr, xr) = (&wd[r * k..(r + 1) * k], &x[j * k..(j + 1) * k]);
                let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                let (mut bound, mut mag) = (0.0f64, 0.0f64);
                // k-quant weights take one activation scale per 256 values (llama.cpp's Q8_K).
                let span = if ty.block_size() == 256 { 256 } else { 32 };
                for (wb, xb) in wr.chunks(span).zip(xr.chunks(span)) {
                    let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
                    let wsum: f64 = wb.iter().map(|v| v.abs() as f64).sum();
                    bound += amax / 254.0 * wsum;
                    mag += wsum * amax;
                }
                let tol = bound * 1.001 + 1e-5 * mag + 1e-6;
                let e = (got[j * rows + r] as f64 - exact).abs();
                assert!(e <= tol, "{ty} r={r} j={j}: err {e} > bound {tol}");
            }
        }
    }
}

#[test]
fn unsupported_types_are_named_errors() {
    for ty in [GgmlType::Q2K, GgmlType::Q3K, GgmlType::Iq4Xs] {
        let bytes = vec![0u8; ty.type_size()];
        let w = QMatrix::new(ty, 1, 256, &bytes).unwrap();
        let err = PackedMatrix::pack(&w).unwrap_err().to_string();
        assert!(err.contains(ty.name()), "{err}");
        let mut out = vec![0.0; 256];
        let err = dequantize_row(ty, &bytes, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains(ty.name()), "{err}");
    }
}

/// Activations for k-quant weights are quantized as llama.cpp's Q8_K (`quantize_row_q8_K_ref`:
/// one scale per 256, the largest value to -127); candle's port of the same function uses -128
/// (an older ggml), so the quants are checked against the formula itself, on values with an
/// outlier (the case the per-256 scale changes most).
#[test]
fn k_quant_activations_use_one_scale_per_256() {
    let mut rng = StdRng::seed_from_u64(31);
    let mut x: Vec<f32> = (0..512).map(|_| rng.random_range(-1.0..1.0)).collect();
    x[300] = -9.5;
    let acts = Q8Activations::quantize_for(GgmlType::Q4K, &x, 1, 512).unwrap();
    for (block, xs) in x.chunks(256).enumerate() {
        let (amax, max) = xs.iter().fold((0.0f32, 0.0f32), |(a, m), &v| {
            if v.abs() > a { (v.abs(), v) } else { (a, m) }
        });
        let iscale = -127.0 / max;
        for b in 0..8 {
            assert_eq!(acts.d()[block * 8 + b], 1.0 / iscale);
        }
        for (i, &v) in xs.iter().enumerate() {
            let q = (iscale * v).round_ties_even().min(127.0) as i8;
            assert_eq!(acts.qs()[block * 256 + i], q, "block {block} element {i}");
        }
        assert!(amax > 0.0);
    }
    assert_eq!(
        acts.qs()[300],
        -127,
        "the value of largest magnitude maps to -127"
    );
    // Other types keep one scale per 32.
    let per_32 = Q8Activations::quantize_for(GgmlType::Q5_0, &x, 1, 512).unwrap();
    assert_ne!(per_32.d()[0], per_32.d()[9]);
}

//! Quantized matmul: every instruction set and the packed layout against the raw-bytes oracle,
//! and the oracle against f32 arithmetic within the 8-bit activation error bound.

use agentc_kernels::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rng: &mut StdRng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn isas() -> Vec<Isa> {
    [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|i| i.is_available())
        .collect()
}

/// `(rows, k, n)` shapes: odd row counts (partial last group), one block, n = 1..=9 (tiles of
/// 8 and 4 plus remainders), and prefill-sized n across several 64-row activation blocks.
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut s = Vec::new();
    for (rows, k) in [
        (1, 32),
        (7, 64),
        (16, 32),
        (17, 96),
        (33, 160),
        (64, 576),
        (100, 64),
    ] {
        for n in 1..=9 {
            s.push((rows, k, n));
        }
    }
    s.push((576, 576, 2));
    s.push((100, 64, 150));
    s.push((33, 96, 64));
    s
}

/// Every ISA and thread count equals the oracle up to f32 summation order: the integer block
/// sums are exact, so only `nb` float additions per output differ (relative 1e-5 of the sum of
/// absolute terms is ~100 ulps of slack).
#[test]
fn packed_kernels_match_oracle() {
    let mut rng = StdRng::seed_from_u64(7);
    let ctxs: Vec<KernelContext> = isas()
        .into_iter()
        .flat_map(|isa| [1, 2, 3].map(|t| KernelContext::with_isa(isa, t).unwrap()))
        .collect();
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::F32,
        GgmlType::F16,
    ] {
        for (rows, k, n) in shapes() {
            let wf = random(&mut rng, rows * k);
            let bytes = quantize_matrix(ty, &wf, rows, k).unwrap();
            let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
            let x = random(&mut rng, n * k);
            let mut want = vec![0.0f32; n * rows];
            matmul_ref(&w, &x, n, &mut want).unwrap();
            // Scale of the terms: |w| <= ~1, |x| <= 1.
            let tol = 1e-5 * k as f32 + 1e-6;
            let packed = PackedMatrix::pack(&w).unwrap();
            for ctx in &ctxs {
                let mut got = vec![f32::NAN; n * rows];
                matmul(&packed, &x, n, &mut got, ctx).unwrap();
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= tol,
                        "{ty} {rows}x{k} n={n} {:?} t={} out {i}: {a} vs {b}",
                        ctx.isa(),
                        ctx.threads()
                    );
                }
            }
        }
    }
}

/// The oracle against f64 arithmetic on the dequantized weights and the *unquantized* x. Per
/// element, 8-bit rounding moves x by at most `amax_b / 254` (half a step of `amax_b / 127`), so
/// `|err| <= sum_b amax_b / 254 * sum_{i in b} |w_i|`, plus f16 rounding of the scales (folded
/// into the weights already) and f32 summation (1e-5 relative).
#[test]
fn oracle_within_activation_quantization_bound() {
    let mut rng = StdRng::seed_from_u64(11);
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        for (rows, k, n) in [(5, 64, 3), (31, 256, 2), (8, 576, 9)] {
            let wf = random(&mut rng, rows * k);
            let bytes = quantize_matrix(ty, &wf, rows, k).unwrap();
            let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
            let mut wd = vec![0.0f32; rows * k];
            for r in 0..rows {
                dequantize_row(
                    ty,
                    &bytes[r * bytes.len() / rows..(r + 1) * bytes.len() / rows],
                    &mut wd[r * k..(r + 1) * k],
                )
                .unwrap();
            }
            let x = random(&mut rng, n * k);
            let mut got = vec![0.0f32; n * rows];
            matmul_ref(&w, &x, n, &mut got).unwrap();
            for j in 0..n {
                for r in 0..rows {
                    let (wr, xr) = (&wd[r * k..(r + 1) * k], &x[j * k..(j + 1) * k]);
                    let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let mut bound = 0.0f64;
                    let mut mag = 0.0f64;
                    for (wb, xb) in wr.chunks(32).zip(xr.chunks(32)) {
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
}

#[test]
fn matmul_q8_reuses_activations() {
    let mut rng = StdRng::seed_from_u64(3);
    let (rows, k, n) = (48, 128, 5);
    let bytes = quantize_matrix(GgmlType::Q4_1, &random(&mut rng, rows * k), rows, k).unwrap();
    let packed =
        PackedMatrix::pack(&QMatrix::new(GgmlType::Q4_1, rows, k, &bytes).unwrap()).unwrap();
    let x = random(&mut rng, n * k);
    let ctx = KernelContext::new(2).unwrap();
    let acts = Q8Activations::quantize(&x, n, k).unwrap();
    let (mut a, mut b) = (vec![0.0; n * rows], vec![0.0; n * rows]);
    matmul_q8(&packed, &acts, &mut a, &ctx).unwrap();
    matmul(&packed, &x, n, &mut b, &ctx).unwrap();
    assert_eq!(a, b);
}

#[test]
fn bad_shapes_are_errors() {
    let bytes = vec![0u8; 4 * 20];
    let w = PackedMatrix::pack(&QMatrix::new(GgmlType::Q4_1, 4, 32, &bytes).unwrap()).unwrap();
    let ctx = KernelContext::new(1).unwrap();
    let mut y = vec![0.0; 8];
    assert!(matmul(&w, &[0.0; 63], 2, &mut y, &ctx).is_err());
    assert!(matmul(&w, &[0.0; 64], 2, &mut y[..7], &ctx).is_err());
    assert!(matmul(&w, &[0.0; 64], 2, &mut y, &ctx).is_ok());
    let q81 = vec![0u8; 36];
    assert!(PackedMatrix::pack(&QMatrix::new(GgmlType::Q8_1, 1, 32, &q81).unwrap()).is_err());
}

/// The SIMD activation quantizer is bit-identical to the portable one (including ties, which
/// both round to even, and all-zero blocks).
#[test]
fn simd_quantizer_is_bit_identical() {
    let mut rng = StdRng::seed_from_u64(9);
    let mut x = random(&mut rng, 9 * 576);
    x[..32].fill(0.0);
    // Exact ties: amax 127 gives id 1, so x.5 values are ties.
    for (i, v) in x[32..64].iter_mut().enumerate() {
        *v = i as f32 - 15.5;
    }
    x[63] = 127.0;
    let a = Q8Activations::quantize(&x, 9, 576).unwrap();
    let b = agentc_kernels::activations::quantize_portable(&x, 9, 576).unwrap();
    assert_eq!((a.qs(), a.d(), a.s()), (b.qs(), b.d(), b.s()));
    if let Some(c) = agentc_kernels::activations::quantize_avx2(&x, 9, 576).unwrap() {
        assert_eq!((c.qs(), c.d(), c.s()), (b.qs(), b.d(), b.s()));
    }
}

#[test]
fn stacked_matrices_equal_separate_calls() {
    let mut rng = StdRng::seed_from_u64(13);
    let (k, n) = (64, 3);
    let shapes = [40usize, 9, 9];
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|&r| quantize_matrix(GgmlType::Q4_1, &random(&mut rng, r * k), r, k).unwrap())
        .collect();
    let parts: Vec<QMatrix> = shapes
        .iter()
        .zip(&bytes)
        .map(|(&r, b)| QMatrix::new(GgmlType::Q4_1, r, k, b).unwrap())
        .collect();
    let stacked = PackedMatrix::pack_stacked(&parts).unwrap();
    let total: usize = shapes.iter().sum();
    let x = random(&mut rng, n * k);
    let ctx = KernelContext::new(2).unwrap();
    let mut y = vec![0.0; n * total];
    matmul(&stacked, &x, n, &mut y, &ctx).unwrap();
    let mut off = 0;
    for (p, &r) in parts.iter().zip(&shapes) {
        let mut yp = vec![0.0; n * r];
        matmul(&PackedMatrix::pack(p).unwrap(), &x, n, &mut yp, &ctx).unwrap();
        for j in 0..n {
            assert_eq!(
                &y[j * total + off..j * total + off + r],
                &yp[j * r..(j + 1) * r]
            );
        }
        off += r;
    }
    let q8 = quantize_matrix(GgmlType::Q8_0, &random(&mut rng, k), 1, k).unwrap();
    let other = QMatrix::new(GgmlType::Q8_0, 1, k, &q8).unwrap();
    assert!(PackedMatrix::pack_stacked(&[parts[0], other]).is_err());
    assert!(PackedMatrix::pack_stacked(&[]).is_err());
}

/// A context on the caller's rayon pool splits work across that pool and gives the same bits
/// as a context with its own pool.
#[test]
fn current_pool_context_matches_own_pool() {
    let mut rng = StdRng::seed_from_u64(17);
    let (rows, k, n) = (200, 96, 3);
    let bytes = quantize_matrix(GgmlType::Q4_0, &random(&mut rng, rows * k), rows, k).unwrap();
    let w = PackedMatrix::pack(&QMatrix::new(GgmlType::Q4_0, rows, k, &bytes).unwrap()).unwrap();
    let x = random(&mut rng, n * k);
    let own = KernelContext::new(2).unwrap();
    let mut want = vec![0.0; n * rows];
    matmul(&w, &x, n, &mut want, &own).unwrap();
    let engine_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let ctx = KernelContext::on_current_pool();
    let (got, threads) = engine_pool.install(|| {
        let mut got = vec![0.0; n * rows];
        matmul(&w, &x, n, &mut got, &ctx).unwrap();
        (got, ctx.threads())
    });
    assert_eq!(threads, 2);
    assert_eq!(got, want);
    assert!(KernelContext::with_isa_on_current_pool(Isa::Scalar).is_ok());
}

/// Raw bytes no ggml quantizer writes but a GGUF file may hold: Q8_0 quants of -128, Q4 nibbles
/// of 15 everywhere, negative and tiny f16 scales; activations at +-amax (quants +-127).
#[test]
fn extreme_raw_blocks_match_oracle() {
    let mut rng = StdRng::seed_from_u64(21);
    let (rows, k, n) = (35, 128, 9);
    let scales = [1.0f32, -0.5, 6.0e-5, -3.0, 0.0];
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        let ts = ty.type_size();
        let mut bytes = vec![0u8; rows * k / 32 * ts];
        for (i, b) in bytes.chunks_exact_mut(ts).enumerate() {
            let d = half::f16::from_f32(scales[i % scales.len()])
                .to_bits()
                .to_le_bytes();
            b[..2].copy_from_slice(&d);
            let start = if ty == GgmlType::Q4_1 {
                b[2..4].copy_from_slice(
                    &half::f16::from_f32(-scales[(i + 1) % 5])
                        .to_bits()
                        .to_le_bytes(),
                );
                4
            } else {
                2
            };
            for q in &mut b[start..] {
                *q = match rng.random_range(0..3) {
                    0 => 0x80,
                    1 => 0xff,
                    _ => rng.random(),
                };
            }
        }
        let w = QMatrix::new(ty, rows, k, &bytes).unwrap();
        let x: Vec<f32> = (0..n * k)
            .map(|i| if i % 3 == 0 { 1.0 } else { -1.0 })
            .collect();
        let mut want = vec![0.0; n * rows];
        matmul_ref(&w, &x, n, &mut want).unwrap();
        let packed = PackedMatrix::pack(&w).unwrap();
        for isa in isas() {
            let ctx = KernelContext::with_isa(isa, 2).unwrap();
            let mut got = vec![f32::NAN; n * rows];
            matmul(&packed, &x, n, &mut got, &ctx).unwrap();
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0) * k as f32,
                    "{ty} {isa:?}: {a} vs {b}"
                );
            }
        }
    }
}

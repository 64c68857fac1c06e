//! f32 kernels against straightforward f64 references on seeded random data.
//! Tolerances: f32 results of O(1) values after sums of up to ~1000 terms: 1e-5 relative
//! (plus 1e-6 absolute) is ~100 ulps; exp and sin/cos in f32 add a few ulps.

use agentc_kernels::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

fn close(a: f32, b: f64, rel: f64) -> bool {
    (a as f64 - b).abs() <= rel * b.abs() + 1e-6
}

#[test]
fn rms_norm_matches_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    for (rows, d) in [(1, 1), (3, 17), (2, 576), (5, 64)] {
        let x = random(&mut rng, rows * d, 3.0);
        let w = random(&mut rng, d, 1.0);
        let mut out = vec![0.0; rows * d];
        rms_norm_f32(&x, &w, 1e-5, &mut out).unwrap();
        for r in 0..rows {
            let xr = &x[r * d..(r + 1) * d];
            let ms: f64 = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
            let s = 1.0 / (ms + 1e-5).sqrt();
            for i in 0..d {
                assert!(close(out[r * d + i], xr[i] as f64 * s * w[i] as f64, 1e-5));
            }
        }
    }
    assert!(rms_norm_f32(&[0.0; 5], &[1.0; 2], 1e-5, &mut [0.0; 5]).is_err());
    assert!(rms_norm_f32(&[0.0; 4], &[1.0; 2], 1e-5, &mut [0.0; 3]).is_err());
}

#[test]
fn silu_mul_matches_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    let g = random(&mut rng, 1537, 10.0);
    let u = random(&mut rng, 1537, 2.0);
    let mut out = vec![0.0; 1537];
    silu_mul_f32(&g, &u, &mut out).unwrap();
    for i in 0..g.len() {
        let gv = g[i] as f64;
        assert!(close(out[i], gv / (1.0 + (-gv).exp()) * u[i] as f64, 1e-5));
    }
    assert!(silu_mul_f32(&g, &u[1..], &mut out).is_err());
}

#[test]
fn softmax_is_stable_and_matches_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    for len in [1, 2, 31, 1000] {
        // Large offsets would overflow a naive exp.
        let x: Vec<f32> = random(&mut rng, len, 20.0)
            .iter()
            .map(|v| v + 500.0)
            .collect();
        let mut y = x.clone();
        softmax_f32(&mut y).unwrap();
        let max = x.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
        for i in 0..len {
            assert!(
                close(y[i], (x[i] as f64 - max).exp() / sum, 1e-5),
                "len {len} i {i}"
            );
        }
    }
    let mut masked = [f32::NEG_INFINITY, 0.0];
    softmax_f32(&mut masked).unwrap();
    assert_eq!(masked, [0.0, 1.0]);
    assert!(softmax_f32(&mut [f32::NEG_INFINITY; 3]).is_err());
}

fn rope_reference(x: &[f32], hd: usize, pos: &[u32], base: f64, neox: bool) -> Vec<f64> {
    let per = x.len() / pos.len();
    let mut y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for (t, &p) in pos.iter().enumerate() {
        for h in 0..per / hd {
            let o = t * per + h * hd;
            for i in 0..hd / 2 {
                let th = p as f64 * base.powf(-2.0 * i as f64 / hd as f64);
                let (a, b) = if neox {
                    (o + i, o + i + hd / 2)
                } else {
                    (o + 2 * i, o + 2 * i + 1)
                };
                let (x0, x1) = (x[a] as f64, x[b] as f64);
                y[a] = x0 * th.cos() - x1 * th.sin();
                y[b] = x0 * th.sin() + x1 * th.cos();
            }
        }
    }
    y
}

#[test]
fn rope_both_modes_match_reference() {
    let mut rng = StdRng::seed_from_u64(4);
    for (mode, neox) in [(RopeMode::Normal, false), (RopeMode::Neox, true)] {
        for (n_heads, hd, pos) in [
            (1, 2, vec![0u32]),
            (9, 64, vec![0, 1, 7, 511]),
            (3, 8, vec![100, 3]),
        ] {
            let x = random(&mut rng, pos.len() * n_heads * hd, 1.0);
            let mut y = x.clone();
            rope_f32(&mut y, hd, &pos, 10000.0, mode).unwrap();
            let want = rope_reference(&x, hd, &pos, 10000.0, neox);
            for (a, b) in y.iter().zip(&want) {
                // f32 angles of up to ~500 rad lose ~3e-5 absolute in the argument.
                assert!((*a as f64 - b).abs() <= 1e-4, "{mode:?} {a} vs {b}");
            }
        }
    }
    // Position 0 is the identity.
    let x = random(&mut rng, 64, 1.0);
    let mut y = x.clone();
    rope_f32(&mut y, 64, &[0], 10000.0, RopeMode::Normal).unwrap();
    assert_eq!(x, y);
    assert!(rope_f32(&mut y, 63, &[0], 10000.0, RopeMode::Normal).is_err());
    assert!(rope_f32(&mut y, 64, &[0, 1], 10000.0, RopeMode::Normal).is_err());
    assert!(rope_f32(&mut [], 64, &[], 10000.0, RopeMode::Normal).is_ok());
}

#[test]
fn paged_attention_matches_dense_reference() {
    let mut rng = StdRng::seed_from_u64(5);
    for (n_heads, n_kv, hd, bs, len) in [
        (9usize, 3usize, 64usize, 16usize, 37usize),
        (4, 4, 8, 4, 1),
        (8, 2, 16, 8, 64),
        (2, 1, 32, 5, 13),
    ] {
        let num_blocks = len.div_ceil(bs) + 3;
        let k = random(&mut rng, num_blocks * bs * n_kv * hd, 1.0);
        let v = random(&mut rng, num_blocks * bs * n_kv * hd, 1.0);
        let pool = KvPool::new(&k, &v, bs, n_kv, hd).unwrap();
        // A shuffled block table: blocks in reverse order.
        let table: Vec<u32> = (0..len.div_ceil(bs)).rev().map(|b| b as u32 + 1).collect();
        let q = random(&mut rng, n_heads * hd, 1.0);
        let scale = 1.0 / (hd as f32).sqrt();
        let mut out = vec![0.0; n_heads * hd];
        attention_paged_f32(&q, &pool, &table, len, scale, &mut out).unwrap();
        let group = n_heads / n_kv;
        for h in 0..n_heads {
            let kvh = h / group;
            let at = |t: usize| ((table[t / bs] as usize * bs + t % bs) * n_kv + kvh) * hd;
            let s: Vec<f64> = (0..len)
                .map(|t| {
                    (0..hd)
                        .map(|i| q[h * hd + i] as f64 * k[at(t) + i] as f64)
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let max = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|x| (x - max).exp()).sum();
            for i in 0..hd {
                let want: f64 = (0..len)
                    .map(|t| (s[t] - max).exp() / z * v[at(t) + i] as f64)
                    .sum();
                assert!(
                    close(out[h * hd + i], want, 1e-4),
                    "h {h} i {i}: {} vs {want}",
                    out[h * hd + i]
                );
            }
        }
    }
}

#[test]
fn paged_attention_rejects_bad_input() {
    let k = vec![0.0; 2 * 4 * 2 * 8];
    let pool = KvPool::new(&k, &k, 4, 2, 8).unwrap();
    let q = vec![0.0; 4 * 8];
    let mut out = vec![0.0; 4 * 8];
    assert!(matches!(
        attention_paged_f32(&q, &pool, &[0, 2], 6, 1.0, &mut out),
        Err(Error::BlockOutOfRange {
            index: 1,
            block: 2,
            num_blocks: 2
        })
    ));
    assert!(attention_paged_f32(&q, &pool, &[0], 5, 1.0, &mut out).is_err());
    assert!(attention_paged_f32(&q, &pool, &[0], 0, 1.0, &mut out).is_err());
    assert!(attention_paged_f32(&q[..24], &pool, &[0], 3, 1.0, &mut out[..24]).is_err());
    assert!(KvPool::new(&k, &k[1..], 4, 2, 8).is_err());
    assert!(attention_paged_f32(&q, &pool, &[1, 0], 8, 1.0, &mut out).is_ok());
}

/// The vectorizable exp behind softmax and SwiGLU, through softmax of two values:
/// `softmax([x, 0])[0] = e^x / (e^x + 1)`, over the whole useful range.
#[test]
fn fast_exp_through_softmax() {
    let mut x = -87.0f32;
    while x < 80.0 {
        let mut v = [x, 0.0];
        softmax_f32(&mut v).unwrap();
        let want = 1.0 / (1.0 + (-(x as f64)).exp());
        assert!(close(v[0], want, 1e-6), "x {x}: {} vs {want}", v[0]);
        x += 0.37;
    }
}

//! CUDA kernels against the CPU kernels (the oracle, STYLE rule 4) on seeded random data.
//!
//! Every test needs a GPU, so each is `#[ignore]`d (a plain `cargo test` reports them as ignored,
//! never as passed). Run them on a GPU machine with
//! `cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored --nocapture`;
//! there, no CUDA device, NVRTC missing or failing, a launch error or a wrong value fails the
//! test.
//!
//! Tolerances: the GPU sums in a different order than the CPU (warp trees against lane-parallel
//! partial sums), so results agree to ~100 ulps of the sum of absolute terms, not bit for bit.
#![cfg(feature = "cuda")]

use agentc_kernels::cuda::{self, CudaBuffer};
use agentc_kernels::*;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Why every test here is ignored, and how to run them.
const NEEDS_GPU: &str =
    "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored";

/// Device 0; a test that runs without one fails.
fn device(test: &str) -> CudaDevice {
    CudaDevice::open(0).unwrap_or_else(|e| panic!("{test}: cannot open cuda:0: {e} ({NEEDS_GPU})"))
}

fn random(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}

fn up(dev: &CudaDevice, host: &[f32]) -> CudaBuffer<f32> {
    dev.upload(host).unwrap()
}

fn down(dev: &CudaDevice, buf: &CudaBuffer<f32>) -> Vec<f32> {
    dev.download(buf).unwrap()
}

/// `|got - want| <= rel * |want| + abs` for every element, naming the first that is not.
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * w.abs() + abs,
            "{what}: element {i}: GPU {g}, CPU {w}"
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn every_module_compiles() {
    let dev = device("every_module_compiles");
    dev.kernels().compile_all().unwrap();
    let files: Vec<&str> = cuda_source::CUDA_MODULES.iter().map(|m| m.file).collect();
    assert_eq!(dev.kernels().compiled_files(), files);
    let (major, _) = dev.compute_capability().unwrap();
    let mem = dev.memory().unwrap();
    eprintln!(
        "cuda:0 = {} (compute {major}.x, {} MiB)",
        dev.name().unwrap(),
        mem.total_bytes >> 20
    );
    assert!(major >= 5 && mem.total_bytes > 0 && mem.free_bytes <= mem.total_bytes);
}

/// Each weight type's matmul against f64 sums of the CPU-dequantized weights times the f32
/// activations (the GPU does not quantize activations, so this is the exact reference), over
/// odd row counts, several blocks, and token counts including one past the grid's y limit.
#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn matmuls_match_cpu_dequantized_weights() {
    let dev = device("matmuls_match_cpu_dequantized_weights");
    let mut rng = StdRng::seed_from_u64(11);
    let mut shapes = Vec::new();
    for (rows, cols) in [(1, 32), (5, 64), (7, 96), (33, 160), (100, 576), (576, 576)] {
        for n in [1, 2, 3, 8, 9] {
            shapes.push((rows, cols, n));
        }
    }
    shapes.push((3, 32, 65_537));
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::F16,
    ] {
        for &(rows, cols, n) in &shapes {
            let wf = random(&mut rng, rows * cols, 1.0);
            let bytes = quantize_matrix(ty, &wf, rows, cols).unwrap();
            let w = QMatrix::new(ty, rows, cols, &bytes).unwrap();
            let mut deq = vec![0f32; rows * cols];
            let row_bytes = ty.row_bytes(cols).unwrap();
            for (r, out) in deq.chunks_exact_mut(cols).enumerate() {
                dequantize_row(ty, &bytes[r * row_bytes..(r + 1) * row_bytes], out).unwrap();
            }
            let x = random(&mut rng, n * cols, 1.0);
            let gw = CudaMatrix::upload(&dev, &w).unwrap();
            let gx = up(&dev, &x);
            let mut gy = dev.zeros(n * rows).unwrap();
            let f = match ty {
                GgmlType::Q4_0 => cuda::matmul_q4_0,
                GgmlType::Q4_1 => cuda::matmul_q4_1,
                GgmlType::Q8_0 => cuda::matmul_q8_0,
                _ => cuda::matmul_f16,
            };
            f(&dev, &gw, &gx, n, &mut gy).unwrap();
            let y = down(&dev, &gy);
            for j in 0..n {
                let xr = &x[j * cols..(j + 1) * cols];
                for r in 0..rows {
                    let wr = &deq[r * cols..(r + 1) * cols];
                    let exact: f64 = wr.iter().zip(xr).map(|(&a, &b)| a as f64 * b as f64).sum();
                    let mag: f64 = wr.iter().zip(xr).map(|(&a, &b)| (a * b).abs() as f64).sum();
                    let got = y[j * rows + r] as f64;
                    assert!(
                        (got - exact).abs() <= 1e-5 * mag + 1e-6,
                        "{} {rows}x{cols} n={n}: y[{j}][{r}] = {got}, want {exact}",
                        ty.name()
                    );
                }
            }
            // The type dispatch runs the same kernel.
            let mut gy2 = dev.zeros(n * rows).unwrap();
            cuda::matmul(&dev, &gw, &gx, n, &mut gy2).unwrap();
            assert_eq!(down(&dev, &gy2), y);
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn matmul_rejects_what_the_cpu_rejects() {
    let dev = device("matmul_rejects_what_the_cpu_rejects");
    let bytes = quantize_matrix(GgmlType::Q4_1, &[0.5; 64], 2, 32).unwrap();
    let w =
        CudaMatrix::upload(&dev, &QMatrix::new(GgmlType::Q4_1, 2, 32, &bytes).unwrap()).unwrap();
    let x = up(&dev, &[1.0; 32]);
    let mut y = dev.zeros(2).unwrap();
    assert_eq!(
        cuda::matmul_q4_0(&dev, &w, &x, 1, &mut y),
        Err(Error::UnsupportedType {
            op: "matmul_q4_0",
            ty: "q4_1"
        })
    );
    assert!(matches!(
        cuda::matmul_q4_1(&dev, &w, &x, 2, &mut y),
        Err(Error::LengthMismatch { .. })
    ));
    let f32_bytes = quantize_matrix(GgmlType::F32, &[0.5; 64], 2, 32).unwrap();
    let wf = QMatrix::new(GgmlType::F32, 2, 32, &f32_bytes).unwrap();
    assert!(matches!(
        CudaMatrix::upload(&dev, &wf),
        Err(Error::UnsupportedType { .. })
    ));
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn rms_norm_silu_and_softmax_match_cpu() {
    let dev = device("rms_norm_silu_and_softmax_match_cpu");
    let mut rng = StdRng::seed_from_u64(12);
    for (rows, d) in [(1, 1), (3, 17), (2, 576), (5, 64), (7, 1536)] {
        let x = random(&mut rng, rows * d, 3.0);
        let w = random(&mut rng, d, 1.0);
        let mut want = vec![0.0; rows * d];
        rms_norm_f32(&x, &w, 1e-5, &mut want).unwrap();
        let mut out = dev.zeros(rows * d).unwrap();
        cuda::rms_norm_f32(&dev, &up(&dev, &x), &up(&dev, &w), 1e-5, &mut out).unwrap();
        assert_close("rms_norm", &down(&dev, &out), &want, 1e-5, 1e-6);
    }
    for len in [1, 255, 256, 257, 1537, 100_000] {
        let g = random(&mut rng, len, 10.0);
        let u = random(&mut rng, len, 2.0);
        let mut want = vec![0.0; len];
        silu_mul_f32(&g, &u, &mut want).unwrap();
        let mut out = dev.zeros(len).unwrap();
        cuda::silu_mul_f32(&dev, &up(&dev, &g), &up(&dev, &u), &mut out).unwrap();
        assert_close("silu_mul", &down(&dev, &out), &want, 1e-5, 1e-6);
    }
    for (rows, len) in [(1, 1), (2, 31), (3, 1000), (4, 4097)] {
        // Large offsets would overflow a naive exp; some masked (-inf) entries.
        let mut x: Vec<f32> = random(&mut rng, rows * len, 20.0)
            .iter()
            .map(|v| v + 500.0)
            .collect();
        for i in (1..x.len()).step_by(7) {
            if i % len != 0 {
                x[i] = f32::NEG_INFINITY;
            }
        }
        let mut want = x.clone();
        for row in want.chunks_exact_mut(len) {
            softmax_f32(row).unwrap();
        }
        let mut gx = up(&dev, &x);
        cuda::softmax_f32(&dev, &mut gx, len).unwrap();
        assert_close("softmax", &down(&dev, &gx), &want, 1e-5, 1e-7);
    }
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn rope_both_modes_match_cpu() {
    let dev = device("rope_both_modes_match_cpu");
    let mut rng = StdRng::seed_from_u64(13);
    for mode in [RopeMode::Normal, RopeMode::Neox] {
        for (n_heads, hd, max_pos, tol) in
            [(9, 64, 512, 1e-4), (3, 128, 512, 1e-4), (2, 8, 8192, 2e-3)]
        {
            // Angles up to 8191 rad: f32 angle rounding differs between sincosf and libm by
            // up to ~pos * 2^-24, hence the looser bound there.
            let positions: Vec<u32> = (0..5).map(|_| rng.random_range(0..max_pos)).collect();
            let x = random(&mut rng, positions.len() * n_heads * hd, 1.0);
            let mut want = x.clone();
            rope_f32(&mut want, hd, &positions, 10000.0, mode).unwrap();
            let mut gx = up(&dev, &x);
            let gp = dev.upload(&positions).unwrap();
            cuda::rope_f32(&dev, &mut gx, hd, &gp, 10000.0, mode).unwrap();
            assert_close("rope", &down(&dev, &gx), &want, 0.0, tol);
        }
    }
    let mut gx = up(&dev, &[0.0; 12]);
    let gp = dev.upload(&[1u32, 2]).unwrap();
    assert!(cuda::rope_f32(&dev, &mut gx, 5, &gp, 1e4, RopeMode::Normal).is_err());
    assert!(cuda::rope_f32(&dev, &mut gx, 4, &gp, 1e4, RopeMode::Normal).is_err());
}

/// Paged attention with GQA, shuffled block tables, partial last blocks, head sizes that are
/// and are not multiples of 32, against the CPU kernel on the same pools.
#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn paged_attention_matches_cpu() {
    let dev = device("paged_attention_matches_cpu");
    let mut rng = StdRng::seed_from_u64(14);
    for (n_heads, n_kv, hd, bs) in [
        (9, 3, 64, 16),
        (4, 4, 40, 4),
        (8, 2, 128, 16),
        (2, 1, 256, 8),
    ] {
        let num_blocks = 40;
        let k = random(&mut rng, num_blocks * bs * n_kv * hd, 1.0);
        let v = random(&mut rng, k.len(), 1.0);
        let cpu_pool = KvPool::new(&k, &v, bs, n_kv, hd).unwrap();
        let gpu_pool = CudaKvPool::new(up(&dev, &k), up(&dev, &v), bs, n_kv, hd).unwrap();
        let mut table: Vec<u32> = (0..num_blocks as u32).collect();
        for len in [1, 2, bs - 1, bs, bs + 1, 100, num_blocks * bs] {
            table.shuffle(&mut rng);
            let q = random(&mut rng, n_heads * hd, 1.0);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut want = vec![0.0; q.len()];
            attention_paged_f32(&q, &cpu_pool, &table, len, scale, &mut want).unwrap();
            let mut out = dev.zeros(q.len()).unwrap();
            cuda::attention_paged_f32(&dev, &up(&dev, &q), &gpu_pool, &table, len, scale, &mut out)
                .unwrap();
            assert_close(
                &format!("attention {n_heads}/{n_kv} heads of {hd}, len {len}"),
                &down(&dev, &out),
                &want,
                2e-5,
                1e-6,
            );
        }
    }
    // The CPU kernel's errors, for the same bad input.
    let k = vec![0.0; 4 * 4 * 2 * 8];
    let cpu_pool = KvPool::new(&k, &k, 4, 2, 8).unwrap();
    let gpu_pool = CudaKvPool::new(up(&dev, &k), up(&dev, &k), 4, 2, 8).unwrap();
    let q = vec![0.0; 4 * 8];
    let gq = up(&dev, &q);
    let mut gout = dev.zeros(q.len()).unwrap();
    for (table, len) in [(&[0u32, 9][..], 5), (&[0, 1][..], 0), (&[0, 1][..], 9)] {
        let cpu = attention_paged_f32(&q, &cpu_pool, table, len, 1.0, &mut vec![0.0; q.len()]);
        let gpu = cuda::attention_paged_f32(&dev, &gq, &gpu_pool, table, len, 1.0, &mut gout);
        assert!(cpu.is_err());
        assert_eq!(gpu, cpu);
    }
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn kv_block_copies_match_host_copies() {
    let dev = device("kv_block_copies_match_host_copies");
    let mut rng = StdRng::seed_from_u64(15);
    let (bs, n_kv, hd, num_blocks) = (16, 3, 64, 12);
    let be = bs * n_kv * hd;
    let k = random(&mut rng, num_blocks * be, 1.0);
    let v = random(&mut rng, k.len(), 1.0);
    let mut pool = CudaKvPool::new(up(&dev, &k), up(&dev, &v), bs, n_kv, hd).unwrap();
    let copies = [(0u32, 5u32), (0, 6), (3, 11), (2, 1)];
    cuda::kv_block_copy_f32(&dev, &mut pool, &copies).unwrap();
    for (host, buf) in [(k, pool.k()), (v, pool.v())] {
        let mut want = host;
        for &(s, d) in &copies {
            want.copy_within(s as usize * be..(s as usize + 1) * be, d as usize * be);
        }
        assert_eq!(down(&dev, buf), want);
    }
    assert!(cuda::kv_block_copy_f32(&dev, &mut pool, &[(0, 1), (1, 2)]).is_err());
    assert!(matches!(
        cuda::kv_block_copy_f32(&dev, &mut pool, &[(0, 12)]),
        Err(Error::BlockOutOfRange { .. })
    ));
}

#[test]
#[ignore = "needs a CUDA GPU: cargo test -p agentc-kernels --features cuda --test cuda_diff -- --ignored"]
fn copy_and_timing() {
    let dev = device("copy_and_timing");
    let x: Vec<f32> = (0..1_000_003).map(|i| i as f32).collect();
    let gx = up(&dev, &x);
    let mut gy = dev.zeros(x.len()).unwrap();
    let seconds = dev
        .time_seconds(|| cuda::copy_f32(&dev, &gx, &mut gy))
        .unwrap();
    assert_eq!(down(&dev, &gy), x);
    assert!(seconds > 0.0 && seconds < 1.0, "{seconds}");
    let mut small = dev.zeros(3).unwrap();
    dev.write(&[1.0, 2.0, 3.0], &mut small).unwrap();
    assert_eq!(down(&dev, &small), [1.0, 2.0, 3.0]);
    assert!(dev.write(&[1.0], &mut small).is_err());
}

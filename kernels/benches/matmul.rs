//! Q4_1 matmul at SmolLM2-135M shapes, n = 1 and n = 8, on the context's default threads (2, or
//! `AGENTC_THREADS`). Criterion reports time and bytes/s of weights streamed; a summary table
//! (GB/s, GOP/s, and n=8 cost / (8 x n=1 cost)) is printed first from a simple best-of timing,
//! then a decode step's matmuls over distinct weights (30 layers and the output layer).
//! `AGENTC_BENCH_STREAM_ONLY=1` stops after that.

use agentc_kernels::*;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// (rows, cols) of SmolLM2-135M's matrices: attention q/o, ffn gate/up, ffn down, output.
const SHAPES: [(usize, usize); 4] = [(576, 576), (1536, 576), (576, 1536), (49152, 576)];

fn threads() -> usize {
    std::env::var("AGENTC_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn setup(rows: usize, cols: usize, n: usize) -> (PackedMatrix, Vec<f32>) {
    setup_typed(GgmlType::Q4_1, rows, cols, n)
}

fn setup_typed(ty: GgmlType, rows: usize, cols: usize, n: usize) -> (PackedMatrix, Vec<f32>) {
    // A cheap deterministic pseudo-random fill (an LCG), so the bench needs no rand crate.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let w: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
    let bytes = quantize_matrix(ty, &w, rows, cols).expect("quantize");
    let packed =
        PackedMatrix::pack(&QMatrix::new(ty, rows, cols, &bytes).expect("shape")).expect("pack");
    let x: Vec<f32> = (0..n * cols).map(|_| next()).collect();
    (packed, x)
}

/// Best time of several timed batches of calls (robust against a shared machine).
fn best_time(f: &mut dyn FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        let mut iters = 0u32;
        while t.elapsed() < Duration::from_millis(40) {
            f();
            iters += 1;
        }
        best = best.min(t.elapsed() / iters);
    }
    best
}

fn summary(ctx: &KernelContext) {
    eprintln!("Q4_1 matmul, {:?}, {} threads", ctx.isa(), ctx.threads());
    eprintln!(
        "{:>12} {:>3} {:>10} {:>8} {:>8} {:>14}",
        "shape", "n", "time", "GB/s", "GOP/s", "n8/(8*n1)"
    );
    for (rows, cols) in SHAPES {
        let mut t1 = Duration::ZERO;
        for n in [1, 8] {
            let (w, x) = setup(rows, cols, n);
            let mut y = vec![0.0f32; n * rows];
            let t = best_time(&mut || matmul(&w, black_box(&x), n, &mut y, ctx).expect("matmul"));
            let gbs = w.weight_bytes() as f64 / t.as_secs_f64() / 1e9;
            let gops = 2.0 * (rows * cols * n) as f64 / t.as_secs_f64() / 1e9;
            let ratio = if n == 1 {
                t1 = t;
                String::new()
            } else {
                format!("{:.3}", t.as_secs_f64() / (8.0 * t1.as_secs_f64()))
            };
            eprintln!(
                "{:>12} {n:>3} {:>8.1}us {gbs:>8.1} {gops:>8.1} {ratio:>14}",
                format!("{rows}x{cols}"),
                t.as_secs_f64() * 1e6
            );
        }
    }
}

/// A decode step's matmuls as the model runs them: 30 layers' distinct matrices (qkv, o,
/// gate+up, down; 66 MB of Q4_1), then the Q8_0 output layer (28 MB), one after the other, so
/// the weights stream from memory rather than sit in cache as above. GB/s here is what decode
/// can reach.
fn model_stream(ctx: &KernelContext) {
    const LAYERS: usize = 30;
    let mut shapes = vec![(GgmlType::Q4_1, 960, 576), (GgmlType::Q4_1, 576, 576)];
    shapes.extend([(GgmlType::Q4_1, 3072, 576), (GgmlType::Q4_1, 576, 1536)]);
    let mut matrices: Vec<PackedMatrix> = (0..LAYERS)
        .flat_map(|_| shapes.iter().map(|&(ty, r, c)| setup_typed(ty, r, c, 0).0))
        .collect();
    matrices.push(setup_typed(GgmlType::Q8_0, 49152, 576, 0).0);
    let bytes: usize = matrices.iter().map(PackedMatrix::weight_bytes).sum();
    let mut t1 = Duration::ZERO;
    for n in [1, 8] {
        let mut io: Vec<(Vec<f32>, Vec<f32>)> = matrices
            .iter()
            .map(|w| {
                let x = (0..n * w.cols()).map(|i| (i as f32 * 0.37).sin()).collect();
                (x, vec![0.0; n * w.rows()])
            })
            .collect();
        let t = best_time(&mut || {
            for (w, (x, y)) in matrices.iter().zip(io.iter_mut()) {
                matmul(w, black_box(x), n, y, ctx).expect("matmul");
            }
        });
        if n == 1 {
            t1 = t;
        }
        eprintln!(
            "decode step's weights ({LAYERS} layers + output, {:.1} MB) n={n}: {:.2} ms, {:.1} GB/s{}",
            bytes as f64 / 1e6,
            t.as_secs_f64() * 1e3,
            bytes as f64 / t.as_secs_f64() / 1e9,
            if n == 8 {
                format!(
                    ", n8/(8*n1) {:.3}",
                    t.as_secs_f64() / (8.0 * t1.as_secs_f64())
                )
            } else {
                String::new()
            }
        );
    }
}

/// Cost of quantizing the activations alone (included in every `matmul` call above).
fn quantize_cost() {
    for (n, k) in [(1, 576), (8, 576), (8, 1536)] {
        let x: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut a = Q8Activations::default();
        let t = best_time(&mut || a.requantize(black_box(&x), n, k).expect("quantize"));
        eprintln!(
            "quantize activations n={n} k={k}: {:.2}us",
            t.as_secs_f64() * 1e6
        );
    }
}

/// SmolLM2's output layer is the Q8_0 token embedding (30 MB, the largest matrix of a step).
fn output_layer(ctx: &KernelContext) {
    let mut t1 = Duration::ZERO;
    for n in [1, 8] {
        let (w, x) = setup_typed(GgmlType::Q8_0, 49152, 576, n);
        let mut y = vec![0.0f32; n * 49152];
        let t = ctx.install(|| {
            best_time(&mut || matmul(&w, black_box(&x), n, &mut y, ctx).expect("matmul"))
        });
        if n == 1 {
            t1 = t;
        }
        let ratio = t.as_secs_f64() / (8.0 * t1.as_secs_f64());
        eprintln!(
            "Q8_0 49152x576 n={n}: {:.1}us, {:.1} GB/s{}",
            t.as_secs_f64() * 1e6,
            w.weight_bytes() as f64 / t.as_secs_f64() / 1e9,
            if n == 8 {
                format!(", n8/(8*n1) {ratio:.3}")
            } else {
                String::new()
            }
        );
    }
}

/// One decode step's attention for one layer at SmolLM2 shapes (9 heads, 3 KV heads, 64 dims),
/// 512 tokens of context in blocks of 16 (not a matmul; here to keep one bench entry point).
fn attention_cost() {
    let (n_heads, n_kv, hd, bs, len) = (9, 3, 64, 16, 512);
    let blocks = len / bs;
    let k: Vec<f32> = (0..blocks * bs * n_kv * hd)
        .map(|i| (i as f32 * 0.01).sin())
        .collect();
    let v: Vec<f32> = (0..k.len()).map(|i| (i as f32 * 0.02).cos()).collect();
    let pool = KvPool::new(&k, &v, bs, n_kv, hd).expect("pool");
    let table: Vec<u32> = (0..blocks as u32).rev().collect();
    let q: Vec<f32> = (0..n_heads * hd).map(|i| (i as f32 * 0.03).sin()).collect();
    let mut out = vec![0.0f32; q.len()];
    let t = best_time(&mut || {
        attention_paged_f32(black_box(&q), &pool, &table, len, 0.125, &mut out).expect("attention")
    });
    eprintln!(
        "attention_paged_f32 9/3 heads x 64, len {len}: {:.2}us",
        t.as_secs_f64() * 1e6
    );
}

/// A prefill-sized batch: compute-bound, so GOP/s is the figure of merit.
fn prefill_rate(ctx: &KernelContext) {
    let (rows, cols, n) = (1536, 576, 128);
    let (w, x) = setup(rows, cols, n);
    let mut y = vec![0.0f32; n * rows];
    let t = ctx
        .install(|| best_time(&mut || matmul(&w, black_box(&x), n, &mut y, ctx).expect("matmul")));
    let gops = 2.0 * (rows * cols * n) as f64 / t.as_secs_f64() / 1e9;
    eprintln!(
        "{rows}x{cols} n={n}: {:.1}us, {gops:.1} GOP/s",
        t.as_secs_f64() * 1e6
    );
}

/// 576x576 n=1 (the smallest decode matmul) under the three ways of running kernel threads.
fn dispatch_cost(threads: usize) {
    let (w, x) = setup(576, 576, 1);
    let mut y = vec![0.0f32; 576];
    let own = KernelContext::new(threads).expect("context");
    let t_out = best_time(&mut || matmul(&w, black_box(&x), 1, &mut y, &own).expect("matmul"));
    let t_in = own
        .install(|| best_time(&mut || matmul(&w, black_box(&x), 1, &mut y, &own).expect("matmul")));
    let engine = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let cur = KernelContext::on_current_pool();
    let t_cur = engine
        .install(|| best_time(&mut || matmul(&w, black_box(&x), 1, &mut y, &cur).expect("matmul")));
    let one = KernelContext::new(1).expect("context");
    let t_one = best_time(&mut || matmul(&w, black_box(&x), 1, &mut y, &one).expect("matmul"));
    eprintln!(
        "576x576 n=1: 1 thread {:.2}us; {threads} threads: own pool from outside {:.2}us, \
         inside install {:.2}us, caller's pool {:.2}us",
        t_one.as_secs_f64() * 1e6,
        t_out.as_secs_f64() * 1e6,
        t_in.as_secs_f64() * 1e6,
        t_cur.as_secs_f64() * 1e6
    );
}

fn bench(c: &mut Criterion) {
    let ctx = KernelContext::new(threads()).expect("context");
    ctx.install(|| summary(&ctx));
    model_stream(&ctx);
    if std::env::var_os("AGENTC_BENCH_STREAM_ONLY").is_some() {
        return;
    }
    quantize_cost();
    dispatch_cost(threads());
    prefill_rate(&ctx);
    output_layer(&ctx);
    attention_cost();
    let mut g = c.benchmark_group("matmul_q4_1");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    for (rows, cols) in SHAPES {
        for n in [1, 8] {
            let (w, x) = setup(rows, cols, n);
            let mut y = vec![0.0f32; n * rows];
            g.throughput(Throughput::Bytes(w.weight_bytes() as u64));
            g.bench_function(BenchmarkId::new(format!("{rows}x{cols}"), n), |b| {
                b.iter(|| matmul(&w, black_box(&x), n, &mut y, &ctx).expect("matmul"))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

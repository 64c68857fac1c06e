//! Measures this machine for the cost model (`agentc profile`): memory bandwidth, matmul
//! throughput of the engine's own kernels, and the engine's real prefill and decode timings.

use std::time::{Duration, Instant};

use agentc_kernels::{GgmlType, KernelContext, PackedMatrix, QMatrix, matmul, quantize_matrix};
use rayon::prelude::*;

use crate::{Engine, GenerateRequest, Prompt, Result, SamplingParams};

/// Bytes streamed per bandwidth trial: far larger than any cache.
const BANDWIDTH_BYTES: usize = 512 << 20;
/// Trials per measurement; the best is kept (the machine is shared and noisy).
const TRIALS: usize = 5;

/// `fixed_s + per_token_s x tokens`, fitted from timings at two sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearTiming {
    pub fixed_s: f64,
    pub per_token_s: f64,
    pub samples: u32,
}

impl LinearTiming {
    /// The line through `(n1, t1)` and `(n2, t2)`, clamped to non-negative parts.
    pub fn fit(n1: f64, t1: f64, n2: f64, t2: f64, samples: u32) -> LinearTiming {
        let per_token_s = ((t2 - t1) / (n2 - n1)).max(0.0);
        LinearTiming {
            fixed_s: (t1 - per_token_s * n1).max(0.0),
            per_token_s,
            samples,
        }
    }
}

/// The fastest of `trials` runs of `f` (at least one), with the last run's result.
fn best<T>(trials: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let start = Instant::now();
    let mut out = f();
    let mut best = start.elapsed();
    for _ in 1..trials {
        let start = Instant::now();
        out = f();
        best = best.min(start.elapsed());
    }
    (best, out)
}

/// Read bandwidth in GB/s with `threads` threads summing a large buffer.
pub fn memory_bandwidth_gbs(threads: usize) -> Result<f64> {
    let words = BANDWIDTH_BYTES / 8;
    let data: Vec<u64> = (0..words as u64).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| crate::Error::InvalidRequest(e.to_string()))?;
    let (t, sum) = best(TRIALS, || {
        pool.install(|| {
            data.par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
                .reduce(|| 0, u64::wrapping_add)
        })
    });
    std::hint::black_box(sum);
    Ok(BANDWIDTH_BYTES as f64 / t.as_secs_f64() / 1e9)
}

/// Matmul throughput of the engine's kernels, in GFLOP/s (f32 weights) and GOP/s (Q8_0 weights
/// against 8-bit activations, the int8 path), at a prefill-sized batch.
pub fn matmul_throughput(threads: usize) -> Result<(f64, f64)> {
    const ROWS: usize = 1536;
    const COLS: usize = 576;
    const BATCH: usize = 128;
    let ctx = KernelContext::new(threads.max(1))?;
    let x: Vec<f32> = (0..BATCH * COLS)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 500.0)
        .collect();
    let w: Vec<f32> = (0..ROWS * COLS)
        .map(|i| ((i * 104_729 % 1000) as f32 - 500.0) / 5000.0)
        .collect();
    let mut y = vec![0f32; BATCH * ROWS];
    let ops = 2.0 * (ROWS * COLS * BATCH) as f64;
    let mut rate = |ty: GgmlType| -> Result<f64> {
        let bytes = quantize_matrix(ty, &w, ROWS, COLS)?;
        let packed = PackedMatrix::pack(&QMatrix::new(ty, ROWS, COLS, &bytes)?)?;
        let (t, r) = best(TRIALS, || matmul(&packed, &x, BATCH, &mut y, &ctx));
        r?;
        Ok(ops / t.as_secs_f64() / 1e9)
    };
    Ok((rate(GgmlType::F32)?, rate(GgmlType::Q8_0)?))
}

/// The engine's prefill and decode timings on `engine`'s model, fitted over two prompt sizes and
/// two generation lengths (greedy, so runs are repeatable).
pub fn engine_timings(engine: &Engine) -> Result<(LinearTiming, LinearTiming)> {
    let text = |words: usize| -> String {
        (0..words)
            .map(|i| ["the", "quick", "model", "runs", "fast"][i % 5])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let run = |words: usize, max_tokens: usize| -> Result<(usize, f64, usize, f64)> {
        let req = GenerateRequest {
            prompt: Prompt::Text(text(words)),
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
        };
        let mut best_prefill = f64::MAX;
        let mut best_decode = f64::MAX;
        let mut counts = (0, 0);
        for _ in 0..3 {
            let g = engine.generate(&req)?;
            best_prefill = best_prefill.min(g.timings.prefill.as_secs_f64());
            best_decode = best_decode.min(g.timings.decode.as_secs_f64());
            counts = (
                g.timings.prompt_tokens,
                g.timings.generated_tokens.saturating_sub(1),
            );
        }
        Ok((counts.0, best_prefill, counts.1, best_decode))
    };
    let (p1, tp1, d1, td1) = run(32, 9)?;
    let (p2, tp2, d2, td2) = run(256, 33)?;
    Ok((
        LinearTiming::fit(p1 as f64, tp1, p2 as f64, tp2, 6),
        LinearTiming::fit(d1 as f64, td1, d2 as f64, td2, 6),
    ))
}

#[cfg(test)]
mod tests {
    use super::LinearTiming;

    #[test]
    fn fits_a_line_through_two_points() {
        let t = LinearTiming::fit(10.0, 0.2, 110.0, 1.2, 2);
        assert!((t.per_token_s - 0.01).abs() < 1e-12 && (t.fixed_s - 0.1).abs() < 1e-12);
        // A noisy, decreasing pair does not produce negative figures.
        let t = LinearTiming::fit(10.0, 0.5, 20.0, 0.4, 2);
        assert_eq!((t.per_token_s, t.fixed_s), (0.0, 0.5));
    }
}

//! Measures this machine for the cost model (`agentc profile`): memory bandwidth, matmul
//! throughput of the engine's own kernels, and the engine's real prefill and decode timings;
//! on a CUDA device ([`cuda_profile`]), bandwidth, matmul throughput and per-kernel timings of
//! the CUDA kernels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentc_kernels::cuda::{self, CudaBuffer};
use agentc_kernels::{
    CudaDevice, CudaKvPool, CudaMatrix, GgmlType, KernelContext, PackedMatrix, QMatrix, RopeMode,
    matmul, quantize_matrix,
};

use crate::serving::{SequenceEvent, ServingConfig, ServingEngine, SubmitOptions};
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

/// Read bandwidth in GB/s with `threads` threads summing a buffer far larger than any cache
/// (main memory's).
pub fn memory_bandwidth_gbs(threads: usize) -> Result<f64> {
    read_bandwidth_gbs(BANDWIDTH_BYTES, threads)
}

/// Bytes ahead of the line being summed that the bandwidth loop prefetches into L1, and into
/// L2: one stream per core with the hardware prefetcher alone measured half of what the memory
/// system gives (as in the matmul kernels).
const READ_PREFETCH_BYTES: usize = 4096;
const READ_PREFETCH_L2_BYTES: usize = 16384;

/// Read bandwidth in GB/s with `threads` threads summing a `bytes` buffer over and over (the
/// best of a few passes). A buffer that fits the last-level cache measures what a workload
/// re-reading that much data each step can reach, e.g. decode re-reading a small model's
/// weights.
pub fn read_bandwidth_gbs(bytes: usize, threads: usize) -> Result<f64> {
    let words = (bytes / 8).max(LINE_WORDS);
    let data: Vec<u64> = (0..words as u64).collect();
    let threads = threads.max(1);
    // One contiguous share per thread, each on its own OS thread (a rayon pool may run two
    // shares on one thread, which measured half the bandwidth).
    let share = words.div_ceil(threads).next_multiple_of(LINE_WORDS);
    let (t, sum) = best(BANDWIDTH_TRIALS, || {
        std::thread::scope(|scope| {
            let readers: Vec<_> = data
                .chunks(share)
                .map(|part| scope.spawn(move || sum_words(part)))
                .collect();
            readers
                .into_iter()
                .map(|r| r.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        })
    });
    std::hint::black_box(sum);
    Ok((words * 8) as f64 / t.as_secs_f64() / 1e9)
}

/// Passes per bandwidth measurement (the best is kept: the machine is shared and noisy).
const BANDWIDTH_TRIALS: usize = 10;

/// u64 words in a 64-byte cache line.
const LINE_WORDS: usize = 8;

/// The wrapping sum of `words`, a line at a time into independent sums, prefetching ahead.
fn sum_words(words: &[u64]) -> u64 {
    let mut sums = [0u64; LINE_WORDS];
    let mut lines = words.chunks_exact(LINE_WORDS);
    for line in &mut lines {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
            let at = line.as_ptr().cast::<i8>();
            // SAFETY: a prefetch is a hint: it never faults, whatever the address.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(READ_PREFETCH_BYTES));
                _mm_prefetch::<_MM_HINT_T1>(at.wrapping_add(READ_PREFETCH_L2_BYTES));
            }
        }
        for (sum, &w) in sums.iter_mut().zip(line) {
            *sum = sum.wrapping_add(w);
        }
    }
    let tail = lines
        .remainder()
        .iter()
        .fold(0u64, |a, &w| a.wrapping_add(w));
    sums.iter().fold(tail, |a, &s| a.wrapping_add(s))
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
            logit_bias: Vec::new(),
            logprobs: None,
            constraint: None,
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

/// Batch sizes (concurrent sequences) at which [`serving_step_timing`] times decode steps.
const STEP_BATCHES: [usize; 4] = [1, 2, 4, 8];
/// Tokens each timed sequence generates at most.
const STEP_DECODE_TOKENS: usize = 24;
/// Words of each timed prompt for decode batches, and for the prefill-heavy batch.
const STEP_SHORT_PROMPT_WORDS: usize = 12;
const STEP_LONG_PROMPT_WORDS: usize = 300;
/// Sequences of the prefill-heavy batch (short prompts, so that prompt tokens and attention
/// pairs are told apart).
const STEP_PREFILL_BATCH: usize = 8;
const STEP_PREFILL_WORDS: usize = 48;
/// Sequences of the batch that samples at a temperature (the sampler sorts the vocabulary for
/// every token), and the temperature.
const STEP_SAMPLED_BATCH: usize = 4;
const STEP_SAMPLING_TEMPERATURE: f32 = 0.7;

/// One timed batch: forward passes run, prompt and decode tokens they carried, the attention
/// pairs (query token x earlier position) they computed, and the wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepSample {
    pub steps: u64,
    pub prefill_tokens: u64,
    pub decode_tokens: u64,
    /// Of the decode tokens, those sampled at a temperature (the rest are greedy).
    pub sampled_tokens: u64,
    pub attention_pairs: u64,
    pub seconds: f64,
}

/// The time of one continuous-batching step as `fixed_s + per_prefill_token_s x prompt tokens +
/// per_decode_token_s x decode tokens + per_attention_pair_s x attention pairs +
/// per_sampled_token_s x sampled decode tokens`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepTimingFit {
    pub fixed_s: f64,
    pub per_prefill_token_s: f64,
    pub per_decode_token_s: f64,
    pub per_attention_pair_s: f64,
    /// Extra per sampled decode token.
    pub per_sampled_token_s: f64,
    /// Forward passes the fit covers.
    pub samples: u32,
}

/// Measures the serving engine's batch steps: batches of 1, 2, 4 and 8 concurrent decodes after
/// short prompts, one after a long prompt (attention over a longer context), and one
/// prefill-heavy batch of short prompts, each the fastest of `TRIALS`, fitted by [`fit_steps`]. It includes
/// everything a step costs the engine (the forward pass, sampling, scheduling, thread hand-offs),
/// which is what the simulator needs to price a batch. A decode token costs more than a prompt
/// token: it computes the vocabulary logits and is sampled, where a prompt chunk does that only
/// for its last token.
pub fn serving_step_timing(engine: Arc<Engine>) -> Result<(StepTimingFit, Vec<StepSample>)> {
    let config = ServingConfig {
        // Distinct prompts anyway; no caching, so every batch computes what it is given.
        prefix_caching: false,
        ..ServingConfig::default()
    };
    let serving = ServingEngine::start(engine, config)?;
    let prompt = |seq: usize, words: usize| -> String {
        let vocab = [
            "river", "stone", "quiet", "lamp", "orbit", "maple", "signal", "harbor",
        ];
        (0..words)
            .map(|i| vocab[(i * 7 + seq * 3 + i / 8) % vocab.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let batch = |n: usize, words: usize, max_tokens: usize, sampled: bool| -> Result<StepSample> {
        let before = serving.stats();
        let start = Instant::now();
        let mut seqs = Vec::with_capacity(n);
        for i in 0..n {
            let request = GenerateRequest {
                constraint: None,
                logit_bias: Vec::new(),
                logprobs: None,
                prompt: Prompt::Text(prompt(i, words)),
                max_tokens,
                sampling: if sampled {
                    SamplingParams {
                        temperature: STEP_SAMPLING_TEMPERATURE,
                        seed: i as u64 + 1,
                        ..SamplingParams::greedy()
                    }
                } else {
                    SamplingParams::greedy()
                },
                stop: Vec::new(),
            };
            seqs.push(
                serving
                    .submit(request, SubmitOptions::default())
                    .map_err(|e| crate::Error::InvalidRequest(format!("profile batch: {e}")))?,
            );
        }
        let mut prompt_tokens = 0u64;
        let mut attention_pairs = 0u64;
        for seq in &mut seqs {
            let mut prompt = 0u64;
            while let Some(event) = seq.blocking_next() {
                match event {
                    SequenceEvent::Started {
                        prompt_tokens: p, ..
                    } => prompt = p as u64,
                    SequenceEvent::Finished { usage, .. } => {
                        // Prompt token i attends to i earlier positions; decode token j (after
                        // the first generated token, which the prompt's last step yields) to
                        // prompt + j.
                        let decoded = (usage.completion_tokens as u64).saturating_sub(1);
                        attention_pairs += prompt * prompt.saturating_sub(1) / 2
                            + decoded * prompt
                            + decoded * (decoded + 1) / 2;
                    }
                    SequenceEvent::Failed(e) => return Err(e.into()),
                    _ => {}
                }
            }
            prompt_tokens += prompt;
        }
        let seconds = start.elapsed().as_secs_f64();
        let after = serving.stats();
        let tokens = after.step_tokens - before.step_tokens;
        let decode_tokens = tokens.saturating_sub(prompt_tokens);
        Ok(StepSample {
            steps: after.steps - before.steps,
            prefill_tokens: prompt_tokens.min(tokens),
            decode_tokens,
            sampled_tokens: if sampled { decode_tokens } else { 0 },
            attention_pairs,
            seconds,
        })
    };
    let mut samples = Vec::new();
    let shapes = STEP_BATCHES
        .iter()
        .map(|&n| (n, STEP_SHORT_PROMPT_WORDS, STEP_DECODE_TOKENS, false))
        .chain([
            (1, STEP_LONG_PROMPT_WORDS, STEP_DECODE_TOKENS, false),
            (STEP_PREFILL_BATCH, STEP_PREFILL_WORDS, 2, false),
            (
                STEP_SAMPLED_BATCH,
                STEP_SHORT_PROMPT_WORDS,
                STEP_DECODE_TOKENS,
                true,
            ),
        ]);
    for (n, words, max_tokens, sampled) in shapes {
        let mut fastest: Option<StepSample> = None;
        for _ in 0..TRIALS {
            let s = batch(n, words, max_tokens, sampled)?;
            if fastest.is_none_or(|f| s.seconds < f.seconds) {
                fastest = Some(s);
            }
        }
        samples.extend(fastest);
    }
    serving.shutdown();
    Ok((fit_steps(&samples), samples))
}

/// Columns of the step-time fit: steps, prompt tokens, decode tokens, attention pairs, sampled
/// decode tokens.
const STEP_COLUMNS: usize = 5;

/// Least squares of `seconds = fixed x steps + per_prefill x prompt tokens + per_decode x decode
/// tokens + per_pair x attention pairs` (no intercept). A coefficient the fit makes negative
/// (noise) is set to 0 and the others refitted.
pub fn fit_steps(samples: &[StepSample]) -> StepTimingFit {
    let rows: Vec<([f64; STEP_COLUMNS], f64)> = samples
        .iter()
        .map(|s| {
            (
                [
                    s.steps as f64,
                    s.prefill_tokens as f64,
                    s.decode_tokens as f64,
                    s.attention_pairs as f64,
                    s.sampled_tokens as f64,
                ],
                s.seconds,
            )
        })
        .collect();
    let mut active = [true; STEP_COLUMNS];
    let mut coef = [0.0; STEP_COLUMNS];
    for _ in 0..STEP_COLUMNS {
        coef = least_squares(&rows, active);
        match (0..STEP_COLUMNS).find(|&i| active[i] && coef[i] < 0.0) {
            Some(i) => active[i] = false,
            None => break,
        }
    }
    StepTimingFit {
        fixed_s: coef[0].max(0.0),
        per_prefill_token_s: coef[1].max(0.0),
        per_decode_token_s: coef[2].max(0.0),
        per_attention_pair_s: coef[3].max(0.0),
        per_sampled_token_s: coef[4].max(0.0),
        samples: samples.iter().map(|s| s.steps).sum::<u64>() as u32,
    }
}

/// Least squares over the `active` columns (the others fixed at 0), by the normal equations and
/// Gauss-Jordan elimination on columns scaled to unit norm; a singular system leaves the
/// dependent columns at 0.
fn least_squares(
    rows: &[([f64; STEP_COLUMNS], f64)],
    active: [bool; STEP_COLUMNS],
) -> [f64; STEP_COLUMNS] {
    let cols: Vec<usize> = (0..STEP_COLUMNS).filter(|&i| active[i]).collect();
    let n = cols.len();
    // Columns differ by orders of magnitude (steps vs attention pairs): scale them.
    let scale: Vec<f64> = cols
        .iter()
        .map(|&i| {
            let norm = rows.iter().map(|(x, _)| x[i] * x[i]).sum::<f64>().sqrt();
            if norm > 0.0 { norm } else { 1.0 }
        })
        .collect();
    let mut a = vec![vec![0.0; n + 1]; n];
    for (x, y) in rows {
        for (r, &i) in cols.iter().enumerate() {
            for (c, &j) in cols.iter().enumerate() {
                a[r][c] += x[i] / scale[r] * x[j] / scale[c];
            }
            a[r][n] += x[i] / scale[r] * y;
        }
    }
    for p in 0..n {
        let Some(pivot) = (p..n).max_by(|&r, &s| a[r][p].abs().total_cmp(&a[s][p].abs())) else {
            break;
        };
        a.swap(p, pivot);
        if a[p][p].abs() < 1e-9 {
            continue;
        }
        let pivot_row = a[p].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != p {
                let f = row[p] / pivot_row[p];
                for (x, y) in row.iter_mut().zip(&pivot_row).skip(p) {
                    *x -= f * y;
                }
            }
        }
    }
    let mut out = [0.0; STEP_COLUMNS];
    for (r, &i) in cols.iter().enumerate() {
        if a[r][r].abs() >= 1e-9 {
            out[i] = a[r][n] / a[r][r] / scale[r];
        }
    }
    out
}

/// f32 values copied per GPU bandwidth trial (256 MiB read and 256 MiB written), fewer if the
/// device has less free memory.
const CUDA_COPY_ELEMS: usize = 64 << 20;
/// Launches averaged per GPU kernel timing.
const CUDA_REPS: usize = 20;

/// What `agentc profile --device cuda:N` measures.
#[derive(Clone, Debug, PartialEq)]
pub struct CudaProfile {
    /// The device's name.
    pub device_name: String,
    /// Device-to-device copy bandwidth (bytes read + written per second), GB/s.
    pub bandwidth_gbs: f64,
    /// `matmul_f16` at a prefill-sized batch, GFLOP/s (f16 weights, f32 arithmetic).
    pub f16_gflops: f64,
    /// `matmul_q4_1` at a prefill-sized batch, GFLOP/s (the quantized-weights path).
    pub q4_1_gflops: f64,
    /// Device time per launch of a one-element kernel, in microseconds.
    pub launch_overhead_us: f64,
    /// Each kernel at the shapes of one SmolLM2-135M decode step.
    pub kernels: Vec<KernelTiming>,
}

/// One kernel's average device time at one shape.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTiming {
    pub kernel: &'static str,
    pub shape: String,
    pub seconds: f64,
}

/// Average device seconds of `CUDA_REPS` runs of `f`, after one warm-up run.
fn cuda_time(dev: &CudaDevice, mut f: impl FnMut() -> agentc_kernels::Result<()>) -> Result<f64> {
    f()?;
    let t = dev.time_seconds(|| {
        for _ in 0..CUDA_REPS {
            f()?;
        }
        Ok(())
    })?;
    Ok(t / CUDA_REPS as f64)
}

/// Deterministic values in [-scale, scale) (no RNG dependency in the runtime).
fn pattern(len: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 * scale - scale)
        .collect()
}

/// Measures CUDA device `dev`: copy bandwidth, matmul throughput at a prefill-sized batch, the
/// cost of a launch, and every kernel at the shapes of one SmolLM2-135M decode step.
pub fn cuda_profile(dev: &CudaDevice) -> Result<CudaProfile> {
    dev.kernels().compile_all()?;
    let device_name = dev.name()?;

    // Bandwidth: a copy kernel over buffers far larger than the L2 cache (freed after).
    let bandwidth_gbs = {
        let free = dev.memory()?.free_bytes;
        let elems = CUDA_COPY_ELEMS.min(free / 4 / 4).max(1 << 20);
        let src = dev.upload(&pattern(elems, 1, 1.0))?;
        let mut dst = dev.zeros::<f32>(elems)?;
        let copy = cuda_time(dev, || cuda::copy_f32(dev, &src, &mut dst))?;
        2.0 * (elems * 4) as f64 / copy / 1e9
    };

    // Matmul throughput: a 4096 x 4096 weight matrix against 128 tokens.
    const ROWS: usize = 4096;
    const COLS: usize = 4096;
    const BATCH: usize = 128;
    let (f16_gflops, q4_1_gflops) = {
        let w = pattern(ROWS * COLS, 2, 0.1);
        let x = dev.upload(&pattern(BATCH * COLS, 3, 1.0))?;
        let mut y = dev.zeros::<f32>(BATCH * ROWS)?;
        let flops = 2.0 * (ROWS * COLS * BATCH) as f64;
        let mut rate = |ty: GgmlType| -> Result<f64> {
            let bytes = quantize_matrix(ty, &w, ROWS, COLS)?;
            let gw = CudaMatrix::upload(dev, &QMatrix::new(ty, ROWS, COLS, &bytes)?)?;
            let t = cuda_time(dev, || cuda::matmul(dev, &gw, &x, BATCH, &mut y))?;
            Ok(flops / t / 1e9)
        };
        (rate(GgmlType::F16)?, rate(GgmlType::Q4_1)?)
    };

    let one = dev.upload(&[1.0f32])?;
    let mut one_out = dev.zeros::<f32>(1)?;
    let launch_overhead_us = cuda_time(dev, || cuda::copy_f32(dev, &one, &mut one_out))? * 1e6;

    Ok(CudaProfile {
        device_name,
        bandwidth_gbs,
        f16_gflops,
        q4_1_gflops,
        launch_overhead_us,
        kernels: decode_step_kernels(dev)?,
    })
}

/// Every kernel at SmolLM2-135M's decode shapes (hidden 576, FFN 1536, 9 query and 3 KV heads
/// of 64, vocabulary 49152, Q4_1 weights, Q8_0 output layer), context 512 in blocks of 16.
fn decode_step_kernels(dev: &CudaDevice) -> Result<Vec<KernelTiming>> {
    const HIDDEN: usize = 576;
    const FFN: usize = 1536;
    const HEADS: usize = 9;
    const KV_HEADS: usize = 3;
    const HEAD_DIM: usize = 64;
    const VOCAB: usize = 49_152;
    const CONTEXT: usize = 512;
    const BLOCK: usize = 16;
    let mut out = Vec::new();
    let mut time = |kernel: &'static str, shape: String, seconds: f64| {
        out.push(KernelTiming {
            kernel,
            shape,
            seconds,
        })
    };
    let buf = |len: usize, seed: usize| -> Result<CudaBuffer<f32>> {
        Ok(dev.upload(&pattern(len, seed, 1.0))?)
    };

    for (ty, rows, cols) in [
        (GgmlType::Q4_1, HIDDEN, HIDDEN),
        (GgmlType::Q4_1, FFN, HIDDEN),
        (GgmlType::Q4_1, HIDDEN, FFN),
        (GgmlType::Q8_0, VOCAB, HIDDEN),
    ] {
        let bytes = quantize_matrix(ty, &pattern(rows * cols, rows, 0.1), rows, cols)?;
        let w = CudaMatrix::upload(dev, &QMatrix::new(ty, rows, cols, &bytes)?)?;
        let x = buf(cols, 1)?;
        let mut y = dev.zeros::<f32>(rows)?;
        let t = cuda_time(dev, || cuda::matmul(dev, &w, &x, 1, &mut y))?;
        let name = if ty == GgmlType::Q8_0 {
            "matmul_q8_0"
        } else {
            "matmul_q4_1"
        };
        time(name, format!("{rows}x{cols}, 1 token"), t);
    }

    let x = buf(HIDDEN, 2)?;
    let weight = buf(HIDDEN, 3)?;
    let mut h = dev.zeros::<f32>(HIDDEN)?;
    let t = cuda_time(dev, || cuda::rms_norm_f32(dev, &x, &weight, 1e-5, &mut h))?;
    time("rms_norm_f32", format!("1x{HIDDEN}"), t);

    let mut q = buf(HEADS * HEAD_DIM, 4)?;
    let positions = dev.upload(&[CONTEXT as u32 - 1])?;
    let t = cuda_time(dev, || {
        cuda::rope_f32(
            dev,
            &mut q,
            HEAD_DIM,
            &positions,
            10_000.0,
            RopeMode::Normal,
        )
    })?;
    time("rope_f32", format!("{HEADS} heads of {HEAD_DIM}"), t);

    let blocks = CONTEXT / BLOCK;
    let pool_len = blocks * BLOCK * KV_HEADS * HEAD_DIM;
    let mut pool = CudaKvPool::new(
        buf(pool_len, 5)?,
        buf(pool_len, 6)?,
        BLOCK,
        KV_HEADS,
        HEAD_DIM,
    )?;
    let table: Vec<u32> = (0..blocks as u32).rev().collect();
    let mut attn = dev.zeros::<f32>(HEADS * HEAD_DIM)?;
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    let t = cuda_time(dev, || {
        cuda::attention_paged_f32(dev, &q, &pool, &table, CONTEXT, scale, &mut attn)
    })?;
    time(
        "attention_paged_f32",
        format!("{HEADS}/{KV_HEADS} heads of {HEAD_DIM}, context {CONTEXT}"),
        t,
    );

    let gate = buf(FFN, 7)?;
    let upv = buf(FFN, 8)?;
    let mut ffn = dev.zeros::<f32>(FFN)?;
    let t = cuda_time(dev, || cuda::silu_mul_f32(dev, &gate, &upv, &mut ffn))?;
    time("silu_mul_f32", format!("{FFN}"), t);

    let mut logits = buf(VOCAB, 9)?;
    let t = cuda_time(dev, || cuda::softmax_f32(dev, &mut logits, VOCAB))?;
    time("softmax_f32", format!("1x{VOCAB}"), t);

    let t = cuda_time(dev, || cuda::kv_block_copy_f32(dev, &mut pool, &[(0, 1)]))?;
    time("kv_block_copy_f32", format!("1 block of {BLOCK} tokens"), t);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{LinearTiming, StepSample, fit_steps, read_bandwidth_gbs, sum_words};

    #[test]
    fn the_bandwidth_loop_sums_every_word_including_a_partial_line() {
        let words: Vec<u64> = (0..1003u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let want = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
        assert_eq!(sum_words(&words), want);
        assert_eq!(sum_words(&words[..5]), words[..5].iter().sum::<u64>());
        assert_eq!(sum_words(&[]), 0);
        let gbs = read_bandwidth_gbs(1 << 20, 2).expect("measures");
        assert!(gbs.is_finite() && gbs > 0.0, "{gbs}");
    }

    #[test]
    fn fits_step_times_exactly_when_they_are_linear() {
        // 4 ms per step, 0.8 ms per prompt token, 1.2 ms per decode token, 10 us per attention
        // pair, at the shapes the profile times.
        let sample = |steps: u64, prefill: u64, decode: u64, pairs: u64, sampled: u64| StepSample {
            steps,
            prefill_tokens: prefill,
            decode_tokens: decode,
            sampled_tokens: sampled,
            attention_pairs: pairs,
            seconds: 0.004 * steps as f64
                + 0.0008 * prefill as f64
                + 0.0012 * decode as f64
                + 1e-5 * pairs as f64
                + 0.002 * sampled as f64,
        };
        let samples = [
            sample(24, 12, 23, 600, 0),
            sample(24, 24, 46, 1200, 0),
            sample(24, 48, 92, 2400, 0),
            sample(25, 100, 23, 7000, 0),
            sample(3, 640, 4, 60000, 0),
            sample(24, 48, 92, 2400, 92),
        ];
        let t = fit_steps(&samples);
        assert!((t.fixed_s - 0.004).abs() < 1e-9, "{t:?}");
        assert!((t.per_prefill_token_s - 0.0008).abs() < 1e-9, "{t:?}");
        assert!((t.per_decode_token_s - 0.0012).abs() < 1e-9, "{t:?}");
        assert!((t.per_attention_pair_s - 1e-5).abs() < 1e-12, "{t:?}");
        assert!((t.per_sampled_token_s - 0.002).abs() < 1e-9, "{t:?}");
        assert_eq!(t.samples, 124);
        // Noise that would make the per-step figure negative: it is 0 and the rest refitted.
        let mut noisy = samples;
        noisy[0].seconds = 0.0;
        noisy[1].seconds = 0.0;
        let t = fit_steps(&noisy);
        assert_eq!(t.fixed_s, 0.0, "{t:?}");
        assert!(
            t.per_prefill_token_s >= 0.0 && t.per_decode_token_s >= 0.0,
            "{t:?}"
        );
    }

    #[test]
    fn fits_a_line_through_two_points() {
        let t = LinearTiming::fit(10.0, 0.2, 110.0, 1.2, 2);
        assert!((t.per_token_s - 0.01).abs() < 1e-12 && (t.fixed_s - 0.1).abs() < 1e-12);
        // A noisy, decreasing pair does not produce negative figures.
        let t = LinearTiming::fit(10.0, 0.5, 20.0, 0.4, 2);
        assert_eq!((t.per_token_s, t.fixed_s), (0.0, 0.5));
    }
}

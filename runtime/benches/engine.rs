//! End-to-end engine speed on SmolLM2-135M Q4_1 (`models/`), 2 threads (or `AGENTC_THREADS`):
//! batch-1 decode at context 8 and 512, prefill of 512 tokens, decode summed over 8
//! concurrent sequences, 8 concurrent requests sharing a 400-token prefix (64 tokens each),
//! and time to first token with a cached 400-token prefix against a cold one.
//!
//! A summary with tok/s is printed first (best of a few runs; the machine is shared, so the
//! best is the least disturbed); criterion then times the same operations.
//! `cargo bench -p agentc-runtime --bench engine`; with `AGENTC_BENCH_SUMMARY=1` only the
//! summary runs; `AGENTC_BENCH_ONLY=decode8` (or `decode1`, `prefill`, `shared`, `ttft`) runs
//! only that part of it (for profiling).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentc_runtime::{
    Engine, EngineOptions, GenerateRequest, Prompt, Sequence, SequenceEvent, ServingConfig,
    ServingEngine, SubmitOptions,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FILLER: &str =
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch. ";
const DECODE_TOKENS: usize = 64;
const CONCURRENT: usize = 8;
const SHARED_PREFIX: usize = 400;
const SUMMARY_RUNS: usize = 3;

fn threads() -> usize {
    std::env::var("AGENTC_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn engine() -> Option<Arc<Engine>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_runtime::bundled::present(&path) {
        return None;
    }
    let options = EngineOptions {
        threads: threads(),
        ..EngineOptions::default()
    };
    Some(Arc::new(Engine::load_with(&path, &options).expect("loads")))
}

/// `n` prompt tokens of prose, starting with `lead` (so prompts can differ from the start).
fn prompt(engine: &Engine, lead: &str, n: usize) -> Vec<u32> {
    let mut tokens = engine
        .tokenizer()
        .encode(lead, false, false)
        .expect("encodes");
    while tokens.len() < n {
        tokens.extend(
            engine
                .tokenizer()
                .encode(FILLER, false, false)
                .expect("encodes"),
        );
    }
    tokens.truncate(n);
    tokens
}

/// Greedy generation of exactly `max_tokens` tokens (end-of-generation never stops it early
/// for this prose, and `Length` is checked).
fn request(tokens: Vec<u32>, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Tokens(tokens),
        ..GenerateRequest::greedy("", max_tokens)
    }
}

/// Batch-1 decode: (decode time, decoded tokens after the first).
fn decode_batch1(engine: &Engine, context: usize) -> (Duration, usize) {
    let generation = engine
        .generate(&request(prompt(engine, "", context), DECODE_TOKENS))
        .expect("generates");
    let t = generation.timings;
    (t.decode, t.generated_tokens - 1)
}

/// Prefill of `n` tokens (through the first sampled token).
fn prefill(engine: &Engine, n: usize) -> Duration {
    engine
        .generate(&request(prompt(engine, "", n), 1))
        .expect("generates")
        .timings
        .prefill
}

/// Waits for a sequence's first token; then its end. Returns (first token, end) instants.
async fn drive(mut sequence: Sequence) -> (Instant, Instant, usize) {
    let mut first = None;
    let mut tokens = 0;
    loop {
        match sequence.next().await {
            Some(SequenceEvent::Started { .. }) => {}
            Some(SequenceEvent::Token { .. }) => {
                tokens += 1;
                first.get_or_insert_with(Instant::now);
            }
            Some(SequenceEvent::Finished { .. }) => {
                let end = Instant::now();
                return (first.unwrap_or(end), end, tokens);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Runs `future` to completion on a single-threaded async runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Runs `requests` concurrently on a fresh serving engine; returns per-sequence (first token,
/// end, tokens) and the submission instant. The sequences are read by tasks of one
/// single-threaded async runtime, as the server reads them (a thread per sequence would take
/// the cores from the engine at every step).
fn serve(
    engine: &Arc<Engine>,
    config: ServingConfig,
    requests: Vec<GenerateRequest>,
) -> (Instant, Vec<(Instant, Instant, usize)>) {
    let serving = ServingEngine::start(Arc::clone(engine), config).expect("starts");
    let start = Instant::now();
    let sequences: Vec<_> = requests
        .into_iter()
        .map(|r| {
            serving
                .submit(r, SubmitOptions::default())
                .expect("admitted")
        })
        .collect();
    let results = block_on(futures::future::join_all(sequences.into_iter().map(drive)));
    serving.shutdown();
    (start, results)
}

/// Decode tok/s summed over 8 concurrent sequences: tokens after each sequence's first, over
/// the time from the last first token to the last end (all 8 decode together in between).
fn decode_batch8(engine: &Arc<Engine>) -> (Duration, usize) {
    let requests = (0..CONCURRENT)
        .map(|i| request(prompt(engine, &format!("Story {i}: "), 32), DECODE_TOKENS))
        .collect();
    let (_, results) = serve(engine, ServingConfig::default(), requests);
    let from = results.iter().map(|r| r.0).max().expect("sequences");
    let to = results.iter().map(|r| r.1).max().expect("sequences");
    let tokens = results.iter().map(|r| r.2 - 1).sum();
    (to - from, tokens)
}

/// 8 concurrent requests sharing a 400-token prefix, 64 tokens each, on a cold cache: wall time.
fn shared_prefix_8x64(engine: &Arc<Engine>, config: ServingConfig) -> Duration {
    let base = prompt(engine, "", SHARED_PREFIX);
    let requests = (0..CONCURRENT)
        .map(|i| {
            let mut tokens = base.clone();
            tokens.extend(prompt(engine, &format!(" Question {i}: why?"), 6));
            request(tokens, DECODE_TOKENS)
        })
        .collect();
    let (start, results) = serve(engine, config, requests);
    results.iter().map(|r| r.1).max().expect("sequences") - start
}

/// Time to first token of a request with a 400-token prefix, cold or with the prefix cached
/// by an earlier request.
fn ttft(engine: &Arc<Engine>, cached: bool) -> Duration {
    let serving =
        ServingEngine::start(Arc::clone(engine), ServingConfig::default()).expect("starts");
    let base = prompt(engine, "", SHARED_PREFIX);
    if cached {
        let mut warm = base.clone();
        warm.extend(prompt(engine, " Warm up.", 4));
        block_on(drive(
            serving
                .submit(request(warm, 1), SubmitOptions::default())
                .expect("admitted"),
        ));
    }
    let mut tokens = base;
    tokens.extend(prompt(engine, " Question: why?", 6));
    let start = Instant::now();
    let (first, _, _) = block_on(drive(
        serving
            .submit(request(tokens, 1), SubmitOptions::default())
            .expect("admitted"),
    ));
    serving.shutdown();
    first - start
}

fn best<T: Copy>(runs: usize, mut f: impl FnMut() -> T, key: impl Fn(&T) -> f64) -> T {
    let mut all: Vec<T> = (0..runs).map(|_| f()).collect();
    all.sort_by(|a, b| key(a).total_cmp(&key(b)));
    all[0]
}

fn summary(engine: &Arc<Engine>) {
    let rate = |(d, n): &(Duration, usize)| -(*n as f64 / d.as_secs_f64());
    let secs = |d: &Duration| d.as_secs_f64();
    let line = |name: &str, (d, n): (Duration, usize)| {
        println!("{name:<44} {:>8.1} tok/s", n as f64 / d.as_secs_f64());
    };
    let only = std::env::var("AGENTC_BENCH_ONLY").unwrap_or_default();
    let run = |part: &str| only.is_empty() || only == part;
    println!(
        "engine summary: {} threads, best of {SUMMARY_RUNS}",
        threads()
    );
    if run("decode1") {
        for context in [8, 512] {
            let best = best(SUMMARY_RUNS, || decode_batch1(engine, context), rate);
            line(&format!("decode, batch 1, context {context}"), best);
        }
    }
    if run("prefill") {
        let best = best(SUMMARY_RUNS, || prefill(engine, 512), secs);
        line("prefill, 512 tokens", (best, 512));
    }
    if run("decode8") {
        let best = best(SUMMARY_RUNS, || decode_batch8(engine), rate);
        line("decode, 8 concurrent sequences (summed)", best);
    }
    if run("shared") {
        let unoptimized = ServingConfig {
            batching: false,
            prefix_caching: false,
            ..ServingConfig::default()
        };
        for (name, config) in [
            ("batched + prefix cache", ServingConfig::default()),
            ("one at a time, no prefix cache", unoptimized),
        ] {
            let d = best(
                SUMMARY_RUNS,
                || shared_prefix_8x64(engine, config.clone()),
                secs,
            );
            println!(
                "8 x 64 tokens, shared 400-token prefix, {name}: {:.2} s",
                d.as_secs_f64()
            );
        }
    }
    if run("ttft") {
        let cold = best(SUMMARY_RUNS, || ttft(engine, false), secs);
        let warm = best(SUMMARY_RUNS, || ttft(engine, true), secs);
        println!(
            "TTFT with a 400-token prefix: cold {:.1} ms, cached {:.1} ms ({:.1}x)",
            cold.as_secs_f64() * 1e3,
            warm.as_secs_f64() * 1e3,
            cold.as_secs_f64() / warm.as_secs_f64()
        );
    }
}

fn benches(c: &mut Criterion) {
    let Some(engine) = engine() else { return };
    summary(&engine);
    if std::env::var_os("AGENTC_BENCH_SUMMARY").is_some() {
        return;
    }
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for context in [8, 512] {
        group.throughput(Throughput::Elements((DECODE_TOKENS - 1) as u64));
        group.bench_function(format!("decode_batch1_ctx{context}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| decode_batch1(&engine, context).0).sum())
        });
    }
    group.throughput(Throughput::Elements(512));
    group.bench_function("prefill_512", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| prefill(&engine, 512)).sum())
    });
    group.throughput(Throughput::Elements(
        (CONCURRENT * (DECODE_TOKENS - 1)) as u64,
    ));
    group.bench_function("decode_batch8_summed", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| decode_batch8(&engine).0).sum())
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("shared_prefix_8x64", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| shared_prefix_8x64(&engine, ServingConfig::default()))
                .sum()
        })
    });
    group.bench_function("ttft_cold_400", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ttft(&engine, false)).sum())
    });
    group.bench_function("ttft_cached_400", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| ttft(&engine, true)).sum())
    });
    group.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);

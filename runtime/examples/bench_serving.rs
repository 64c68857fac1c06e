//! The engine figures `scripts/bench-engine.sh` compares with llama.cpp, one `name value` line
//! each: memory bandwidth (main memory, and over a buffer the size of the weights one decode
//! step reads, which may stay in the last-level cache), those weight bytes, batch-1 prefill and
//! decode, decode summed over 8 concurrent sequences through the serving engine, and time to
//! first token with a 400-token prefix cold and cached.
//! Usage: cargo run --release -p agentc-runtime --example bench_serving -- MODEL.gguf [THREADS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentc_runtime::profile::{memory_bandwidth_gbs, read_bandwidth_gbs};
use agentc_runtime::{
    Engine, EngineOptions, GenerateRequest, Prompt, SamplingParams, SequenceEvent, ServingConfig,
    ServingEngine, SubmitOptions,
};

/// Prose repeated into prompts (the same text `bench_generate` and the llama.cpp script use).
const FILLER: &str =
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch. ";
const DECODE_TOKENS: usize = 64;
const CONCURRENT_SEQUENCES: usize = 8;
const SHARED_PREFIX_TOKENS: usize = 400;
/// Runs per batch-1 figure; the median is printed.
const RUNS: usize = 3;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn filler_tokens(engine: &Engine, count: usize) -> BoxResult<Vec<u32>> {
    let mut tokens = Vec::new();
    while tokens.len() < count {
        tokens.extend(engine.tokenizer().encode(FILLER, false, false)?);
    }
    tokens.truncate(count);
    Ok(tokens)
}

/// Bytes of weights one decode step reads, as stored in the GGUF file: every tensor but the
/// token embedding, of which one row is read (unless it doubles as the output projection).
fn decode_weight_bytes(model: &str) -> BoxResult<u64> {
    let gguf = agentc_model::GgufFile::open(model)?;
    let mut total = 0u64;
    for info in gguf.tensors() {
        let bytes = gguf.tensor_data(&info.name)?.1.len() as u64;
        total += if info.name == "token_embd.weight" && gguf.tensor_info("output.weight").is_some()
        {
            bytes / info.row_count().max(1)
        } else {
            bytes
        };
    }
    Ok(total)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn greedy(tokens: Vec<u32>, max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        logit_bias: Vec::new(),
        logprobs: None,
        constraint: None,
        prompt: Prompt::Tokens(tokens),
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    }
}

/// Median (prefill tok/s, decode tok/s) of batch-1 generation from a `prompt_tokens` prompt.
fn batch1(engine: &Engine, prompt_tokens: usize) -> BoxResult<(f64, f64)> {
    let tokens = filler_tokens(engine, prompt_tokens)?;
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..RUNS {
        let t = engine
            .generate(&greedy(tokens.clone(), DECODE_TOKENS))?
            .timings;
        prefill.push(t.prefill_tokens_per_second());
        decode.push(t.decode_tokens_per_second());
    }
    Ok((median(prefill), median(decode)))
}

/// Waits for a sequence's end; returns (time to first token, completion tokens, cached tokens).
fn drain(
    mut sequence: agentc_runtime::Sequence,
    submitted: Instant,
) -> BoxResult<(Duration, usize, usize)> {
    let mut first = None;
    while let Some(event) = sequence.blocking_next() {
        match event {
            SequenceEvent::Token { .. } => {
                first.get_or_insert_with(|| submitted.elapsed());
            }
            SequenceEvent::Finished { usage, .. } => {
                let first = first.unwrap_or_else(|| submitted.elapsed());
                return Ok((first, usage.completion_tokens, usage.cached_tokens));
            }
            SequenceEvent::Failed(error) => return Err(error.into()),
            SequenceEvent::Started { .. } => {}
        }
    }
    Err("the sequence ended without finishing".into())
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: bench_serving MODEL.gguf [THREADS]")?;
    let threads = match args.get(1) {
        Some(t) => t.parse()?,
        None => agentc_runtime::DEFAULT_THREADS,
    };
    let weight_bytes = decode_weight_bytes(model)?;
    println!("memory_bandwidth_gbs {:.1}", memory_bandwidth_gbs(threads)?);
    println!("decode_weight_bytes {weight_bytes}");
    println!(
        "weights_bandwidth_gbs {:.1}",
        read_bandwidth_gbs(weight_bytes as usize, threads)?
    );
    let engine = Arc::new(Engine::load_with(
        model,
        &EngineOptions {
            threads,
            ..EngineOptions::default()
        },
    )?);

    let (prefill_512, decode_512) = batch1(&engine, 512)?;
    let (_, decode_8) = batch1(&engine, 8)?;
    println!("prefill_512_tok_s {prefill_512:.1}");
    println!("decode_ctx8_tok_s {decode_8:.1}");
    println!("decode_ctx512_tok_s {decode_512:.1}");

    let serving = ServingEngine::start(Arc::clone(&engine), ServingConfig::default())?;
    // Eight different 8-token prompts, 64 tokens each, all submitted at once.
    let started = Instant::now();
    let sequences = (0..CONCURRENT_SEQUENCES)
        .map(|i| {
            let mut tokens = filler_tokens(&engine, 8 + i)?;
            tokens.drain(..i);
            Ok(serving.submit(greedy(tokens, DECODE_TOKENS), SubmitOptions::default())?)
        })
        .collect::<BoxResult<Vec<_>>>()?;
    let mut generated = 0;
    for sequence in sequences {
        generated += drain(sequence, started)?.1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "decode_8seq_tok_s {:.1}",
        generated as f64 / elapsed.max(f64::MIN_POSITIVE)
    );

    // Time to first token after a 400-token prefix: first cold, then with the prefix cached.
    let prefix = filler_tokens(&engine, SHARED_PREFIX_TOKENS)?;
    let question = |text: &str| -> BoxResult<Vec<u32>> {
        let mut tokens = prefix.clone();
        tokens.extend(engine.tokenizer().encode(text, false, false)?);
        Ok(tokens)
    };
    let ttft = |text: &str| -> BoxResult<(Duration, usize)> {
        let submitted = Instant::now();
        let sequence = serving.submit(greedy(question(text)?, 1), SubmitOptions::default())?;
        let (first, _, cached) = drain(sequence, submitted)?;
        Ok((first, cached))
    };
    let (cold, _) = ttft(" Question one: who watches?")?;
    let (cached, cached_tokens) = ttft(" Question two: who jumps?")?;
    println!("ttft_cold_ms {:.1}", cold.as_secs_f64() * 1e3);
    println!("ttft_cached_ms {:.1}", cached.as_secs_f64() * 1e3);
    println!("ttft_cached_tokens {cached_tokens}");
    serving.shutdown();
    Ok(())
}

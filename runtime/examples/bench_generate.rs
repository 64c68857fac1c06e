//! Batch-1 prefill and decode speed on a synthetic prompt of a given length.
//! Usage: cargo run --release -p agentc-runtime --example bench_generate -- MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS]

use agentc_runtime::{Engine, EngineOptions, GenerateRequest, Prompt, SamplingParams};

const DEFAULT_PROMPT_TOKENS: usize = 512;
const DEFAULT_DECODE_TOKENS: usize = 64;
/// Prose to repeat into a prompt of the requested length.
const FILLER: &str =
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch. ";

fn arg(args: &[String], index: usize, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    Ok(match args.get(index) {
        Some(value) => value.parse()?,
        None => default,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: bench_generate MODEL.gguf [PROMPT_TOKENS] [DECODE_TOKENS] [THREADS]")?;
    let prompt_tokens = arg(&args, 1, DEFAULT_PROMPT_TOKENS)?;
    let decode_tokens = arg(&args, 2, DEFAULT_DECODE_TOKENS)?;
    let options = EngineOptions {
        threads: arg(&args, 3, agentc_runtime::DEFAULT_THREADS)?,
        ..EngineOptions::default()
    };
    let engine = Engine::load_with(model, &options)?;
    let mut tokens = Vec::new();
    while tokens.len() < prompt_tokens {
        tokens.extend(engine.tokenizer().encode(FILLER, false, false)?);
    }
    tokens.truncate(prompt_tokens);
    let request = GenerateRequest {
        logit_bias: Vec::new(),
        logprobs: None,
        constraint: None,
        prompt: Prompt::Tokens(tokens),
        max_tokens: decode_tokens,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let generation = engine.generate(&request)?;
    let t = &generation.timings;
    println!(
        "threads {}: prefill {} tokens {:.1} tok/s ({:.0} ms); decode {} tokens at context {}..{} {:.1} tok/s",
        options.threads,
        t.prompt_tokens,
        t.prefill_tokens_per_second(),
        t.prefill.as_secs_f64() * 1e3,
        t.generated_tokens,
        t.prompt_tokens,
        t.prompt_tokens + t.generated_tokens,
        t.decode_tokens_per_second()
    );
    Ok(())
}

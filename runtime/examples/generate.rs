//! Greedy generation with timings.
//! Usage: cargo run --release -p agentc-runtime --example generate -- MODEL.gguf "prompt" [max_tokens]

use agentc_runtime::{Engine, GenerateRequest};

const DEFAULT_MAX_TOKENS: usize = 32;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or("usage: generate MODEL.gguf PROMPT [MAX_TOKENS]")?;
    let prompt = args
        .next()
        .ok_or("usage: generate MODEL.gguf PROMPT [MAX_TOKENS]")?;
    let max_tokens = match args.next() {
        Some(n) => n.parse()?,
        None => DEFAULT_MAX_TOKENS,
    };
    let engine = Engine::load(&model)?;
    let generation = engine.generate(&GenerateRequest::greedy(prompt, max_tokens))?;
    println!("{}", generation.text);
    let t = &generation.timings;
    eprintln!(
        "prompt {} tokens in {:.1} ms ({:.1} tok/s); generated {} tokens, decode {:.1} tok/s; finish {:?}; ids {:?}",
        t.prompt_tokens,
        t.prefill.as_secs_f64() * 1e3,
        t.prefill_tokens_per_second(),
        t.generated_tokens,
        t.decode_tokens_per_second(),
        generation.finish_reason,
        generation.tokens
    );
    Ok(())
}

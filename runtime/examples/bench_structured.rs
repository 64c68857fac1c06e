//! Structured-output decoding speed, measured side by side in one run on the same engine:
//! - batch-1 and batch-8 decode tokens/s under a JSON Schema against unconstrained decoding
//!   (target: at least 0.95x);
//! - a schema with long fixed keys with fast-forward on against off (target: at least 1.3x);
//! - the time to compute one token mask (it overlaps the forward pass).
//!
//! Usage: cargo run --release -p agentc-runtime --example bench_structured -- MODEL.gguf [THREADS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentc_runtime::constraint::OutputConstraint;
use agentc_runtime::{
    ChatMessage, Engine, EngineOptions, GenerateRequest, Prompt, SamplingParams, SequenceEvent,
    ServingConfig, ServingEngine, SubmitOptions, Timings,
};
use serde_json::json;

/// Runs per figure; the median is printed.
const RUNS: usize = 5;
const CONCURRENT: usize = 8;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A free-text field long enough that nearly every token is sampled under a mask.
fn story_schema() -> OutputConstraint {
    OutputConstraint::JsonSchema(json!({
        "type": "object",
        "properties": {"story": {"type": "string", "minLength": 200, "maxLength": 240}},
        "required": ["story"], "additionalProperties": false
    }))
}

/// Six long keys the model cannot choose, each with a short value it does choose.
fn long_keys_schema() -> OutputConstraint {
    let keys = [
        "the_name_of_the_customer_who_placed_this_order",
        "the_shipping_priority_level_selected_at_checkout",
        "the_number_of_items_in_the_customer_shopping_cart",
        "whether_the_customer_asked_for_gift_wrapping_service",
        "the_preferred_delivery_weekday_chosen_by_the_customer",
        "the_payment_method_used_to_complete_this_purchase",
    ];
    let values = [
        json!({"type": "string", "maxLength": 12}),
        json!({"enum": ["low", "normal", "high"]}),
        json!({"type": "integer", "minimum": 1, "maximum": 9}),
        json!({"type": "boolean"}),
        json!({"enum": ["monday", "friday"]}),
        json!({"enum": ["card", "cash"]}),
    ];
    let properties: serde_json::Map<_, _> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| ((*k).to_owned(), v))
        .collect();
    OutputConstraint::JsonSchema(json!({
        "type": "object", "properties": properties, "required": keys,
        "additionalProperties": false
    }))
}

fn request(engine: &Engine, constraint: Option<OutputConstraint>, seed: u64) -> GenerateRequest {
    let prompt = Prompt::Chat(vec![
        ChatMessage::new("system", "You are a helpful assistant that writes JSON."),
        ChatMessage::new(
            "user",
            "Write a short story about a lighthouse keeper, then describe an order.",
        ),
    ]);
    // Unconstrained runs may not end early: their end-of-generation tokens are banned.
    let logit_bias = if constraint.is_none() {
        engine
            .tokenizer()
            .end_of_generation_ids()
            .map(|id| (id, -100.0))
            .collect()
    } else {
        Vec::new()
    };
    GenerateRequest {
        prompt,
        max_tokens: 240,
        sampling: SamplingParams {
            temperature: 0.7,
            top_k: 40,
            top_p: 0.95,
            seed,
        },
        stop: Vec::new(),
        constraint,
        logit_bias,
    }
}

/// Median batch-1 decode tokens/s, and the last run's timings.
fn batch1(engine: &Engine, constraint: Option<OutputConstraint>) -> BoxResult<(f64, Timings)> {
    let mut rates = Vec::new();
    let mut last = Timings::default();
    for run in 0..RUNS {
        let generation = engine.generate(&request(engine, constraint.clone(), run as u64))?;
        rates.push(generation.timings.decode_tokens_per_second());
        last = generation.timings;
    }
    Ok((median(rates), last))
}

/// Median tokens/s summed over `CONCURRENT` sequences served together, and each run's
/// sequence lengths. With `lengths`, sequence i of run r generates exactly `lengths[r][i]`
/// tokens (so an unconstrained batch has the same shape as the constrained one it is compared
/// with: the batch shrinks as the same sequences end).
fn batch8(
    engine: &Arc<Engine>,
    constraint: Option<OutputConstraint>,
    lengths: Option<&[Vec<usize>]>,
) -> BoxResult<(f64, Vec<Vec<usize>>)> {
    let mut all_lengths = Vec::new();
    let serving = ServingEngine::start(Arc::clone(engine), ServingConfig::default())?;
    let mut rates = Vec::new();
    for run in 0..RUNS {
        let started = Instant::now();
        let sequences: Vec<_> = (0..CONCURRENT)
            .map(|i| {
                let seed = (run * CONCURRENT + i) as u64;
                let mut request = request(engine, constraint.clone(), seed);
                if let Some(lengths) = lengths {
                    request.max_tokens = lengths[run][i];
                }
                serving.submit(request, SubmitOptions::default())
            })
            .collect::<Result<_, _>>()?;
        let mut tokens = 0;
        let mut run_lengths = Vec::new();
        let mut first_token: Option<Duration> = None;
        for mut sequence in sequences {
            loop {
                match sequence.blocking_next() {
                    Some(SequenceEvent::Token { .. }) => {
                        first_token.get_or_insert_with(|| started.elapsed());
                    }
                    Some(SequenceEvent::Finished { usage, .. }) => {
                        tokens += usage.completion_tokens;
                        run_lengths.push(usage.completion_tokens);
                        break;
                    }
                    Some(SequenceEvent::Failed(e)) => return Err(e.into()),
                    Some(SequenceEvent::Started { .. }) => {}
                    None => return Err("sequence ended without finishing".into()),
                }
            }
        }
        // Decode rate: after the (shared) prefill that produced the first tokens.
        let decode = started.elapsed() - first_token.unwrap_or_default();
        rates.push((tokens - CONCURRENT) as f64 / decode.as_secs_f64());
        all_lengths.push(run_lengths);
    }
    serving.shutdown();
    Ok((median(rates), all_lengths))
}

fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .get(1)
        .ok_or("usage: bench_structured MODEL.gguf [THREADS]")?;
    let threads = args.get(2).map(|t| t.parse()).transpose()?.unwrap_or(2);
    let engine = Arc::new(Engine::load_with(
        model,
        &EngineOptions {
            threads,
            ..EngineOptions::default()
        },
    )?);
    // Build the vocabulary's token trie before timing anything.
    engine.guide(&story_schema())?;

    let (plain1, _) = batch1(&engine, None)?;
    let (schema1, t) = batch1(&engine, Some(story_schema()))?;
    let mask_us = t.mask.as_secs_f64() * 1e6 / f64::from(t.masks.max(1));
    let (schema8, lengths) = batch8(&engine, Some(story_schema()), None)?;
    let (plain8, _) = batch8(&engine, None, Some(&lengths))?;
    engine.set_fast_forward(false);
    let (no_ff, t_no_ff) = batch1(&engine, Some(long_keys_schema()))?;
    engine.set_fast_forward(true);
    let (ff, t_ff) = batch1(&engine, Some(long_keys_schema()))?;
    let long_mask_us = t_ff.mask.as_secs_f64() * 1e6 / f64::from(t_ff.masks.max(1));

    println!("| figure | constrained | baseline | ratio | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| batch-1 decode, schema vs unconstrained | {schema1:.1} tok/s | {plain1:.1} tok/s | {:.2}x | >= 0.95x |",
        schema1 / plain1
    );
    println!(
        "| batch-8 decode (summed), schema vs unconstrained | {schema8:.1} tok/s | {plain8:.1} tok/s | {:.2}x | >= 0.95x |",
        schema8 / plain8
    );
    println!(
        "| long fixed keys, fast-forward on vs off | {ff:.1} tok/s | {no_ff:.1} tok/s | {:.2}x | >= 1.3x |",
        ff / no_ff
    );
    println!(
        "mask per token: {mask_us:.1} us (free-text string), {long_mask_us:.1} us (long-keys schema); \
         long-keys output {} tokens, {} forced with fast-forward ({} without)",
        t_ff.generated_tokens, t_ff.forced_tokens, t_no_ff.forced_tokens
    );
    Ok(())
}

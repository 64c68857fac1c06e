//! Structured-output decoding speed, measured side by side in one run on the same engine:
//! - batch-1 and batch-8 decode tokens/s under a JSON Schema against unconstrained decoding
//!   (target: at least 0.95x), with plain temperature sampling (lazy masks) and with top-k and
//!   top-p (a mask every step);
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

/// Pairs per figure; medians are printed.
const RUNS: usize = 7;
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

/// How tokens are drawn: temperature 0.7 alone (OpenAI's defaults otherwise: lazy masks), or
/// with top-k 40 and top-p 0.95 (a mask on every step, computed during the forward pass).
#[derive(Clone, Copy)]
enum Draw {
    Temperature,
    TopKTopP,
}

fn request(
    engine: &Engine,
    constraint: Option<OutputConstraint>,
    seed: u64,
    draw: Draw,
) -> GenerateRequest {
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
        sampling: match draw {
            Draw::Temperature => SamplingParams {
                temperature: 0.7,
                top_k: 0,
                top_p: 1.0,
                seed,
            },
            Draw::TopKTopP => SamplingParams {
                temperature: 0.7,
                top_k: 40,
                top_p: 0.95,
                seed,
            },
        },
        stop: Vec::new(),
        constraint,
        logit_bias,
        logprobs: None,
    }
}

/// One figure: the medians of each side's rate and of the per-pair ratios.
struct Paired {
    constrained: f64,
    baseline: f64,
    /// Median of constrained/baseline over pairs measured back to back.
    ratio: f64,
    /// The lowest and highest pair ratios.
    range: (f64, f64),
}

impl Paired {
    fn new(pairs: &[(f64, f64)]) -> Self {
        let ratios: Vec<f64> = pairs.iter().map(|(c, b)| c / b).collect();
        Self {
            constrained: median(pairs.iter().map(|p| p.0).collect()),
            baseline: median(pairs.iter().map(|p| p.1).collect()),
            ratio: median(ratios.clone()),
            range: (
                ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ),
        }
    }

    fn row(&self, figure: &str, target: &str) -> String {
        format!(
            "| {figure} | {:.1} tok/s | {:.1} tok/s | {:.2}x ({:.2}-{:.2}) | {target} |",
            self.constrained, self.baseline, self.ratio, self.range.0, self.range.1
        )
    }
}

/// Batch-1 decode tokens/s of `constrained` against `baseline`, measured pair by pair with the
/// order alternating (this machine drifts), the same seed in both halves of a pair; and the
/// last constrained run's timings. Each side says whether fast-forward is on.
fn batch1(
    engine: &Engine,
    draw: Draw,
    constrained: (&OutputConstraint, bool),
    baseline: (Option<&OutputConstraint>, bool),
) -> BoxResult<(Paired, Timings)> {
    let mut pairs = Vec::new();
    let mut last = Timings::default();
    for run in 0..RUNS {
        let one = |constraint: Option<&OutputConstraint>, fast_forward: bool| {
            engine.set_fast_forward(fast_forward);
            engine.generate(&request(engine, constraint.cloned(), run as u64, draw))
        };
        let (c, b) = if run % 2 == 0 {
            let c = one(Some(constrained.0), constrained.1)?;
            (c, one(baseline.0, baseline.1)?)
        } else {
            let b = one(baseline.0, baseline.1)?;
            (one(Some(constrained.0), constrained.1)?, b)
        };
        pairs.push((
            c.timings.decode_tokens_per_second(),
            b.timings.decode_tokens_per_second(),
        ));
        last = c.timings;
    }
    engine.set_fast_forward(true);
    Ok((Paired::new(&pairs), last))
}

/// Tokens/s summed over `CONCURRENT` sequences served together, and their lengths. With
/// `lengths`, sequence i generates exactly `lengths[i]` tokens (so an unconstrained batch has
/// the shape of the constrained one it is compared with: the batch shrinks as the same
/// sequences end).
fn batch8_run(
    serving: &ServingEngine,
    engine: &Engine,
    constraint: Option<&OutputConstraint>,
    run: usize,
    lengths: Option<&[usize]>,
    draw: Draw,
) -> BoxResult<(f64, Vec<usize>)> {
    let started = Instant::now();
    let sequences: Vec<_> = (0..CONCURRENT)
        .map(|i| {
            let seed = (run * CONCURRENT + i) as u64;
            let mut request = request(engine, constraint.cloned(), seed, draw);
            if let Some(lengths) = lengths {
                request.max_tokens = lengths[i];
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
    Ok((
        (tokens - CONCURRENT) as f64 / decode.as_secs_f64(),
        run_lengths,
    ))
}

/// Batch-8 constrained against unconstrained, pair by pair with the order alternating; the
/// unconstrained half takes the lengths of the latest constrained batch.
fn batch8(engine: &Arc<Engine>, constraint: &OutputConstraint, draw: Draw) -> BoxResult<Paired> {
    let serving = ServingEngine::start(Arc::clone(engine), ServingConfig::default())?;
    let mut pairs = Vec::new();
    let mut lengths = Vec::new();
    for run in 0..RUNS {
        let pair = if run % 2 == 0 {
            let (c, l) = batch8_run(&serving, engine, Some(constraint), run, None, draw)?;
            lengths = l;
            let (b, _) = batch8_run(&serving, engine, None, run, Some(&lengths), draw)?;
            (c, b)
        } else {
            let (b, _) = batch8_run(&serving, engine, None, run, Some(&lengths), draw)?;
            let (c, l) = batch8_run(&serving, engine, Some(constraint), run, None, draw)?;
            lengths = l;
            (c, b)
        };
        pairs.push(pair);
    }
    serving.shutdown();
    Ok(Paired::new(&pairs))
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

    let story = story_schema();
    let long_keys = long_keys_schema();
    let mut rows = Vec::new();
    let mut mask_us = Vec::new();
    for (draw, label) in [
        (Draw::Temperature, "T=0.7"),
        (Draw::TopKTopP, "T=0.7, top-k 40, top-p 0.95"),
    ] {
        let (one, t) = batch1(&engine, draw, (&story, true), (None, true))?;
        mask_us.push((
            label,
            t.mask.as_secs_f64() * 1e6 / f64::from(t.masks.max(1)),
            t.masks,
            t.generated_tokens,
        ));
        rows.push(one.row(
            &format!("batch-1 decode, schema vs unconstrained ({label})"),
            ">= 0.95x",
        ));
        let eight = batch8(&engine, &story, draw)?;
        rows.push(eight.row(
            &format!("batch-8 decode (summed), schema vs unconstrained ({label})"),
            ">= 0.95x",
        ));
    }
    let (ff, t_ff) = batch1(
        &engine,
        Draw::TopKTopP,
        (&long_keys, true),
        (Some(&long_keys), false),
    )?;
    rows.push(ff.row(
        "long fixed keys, fast-forward on vs off (top-k, top-p)",
        ">= 1.3x",
    ));
    engine.set_fast_forward(false);
    let t_no_ff = engine
        .generate(&request(&engine, Some(long_keys), 0, Draw::TopKTopP))?
        .timings;
    engine.set_fast_forward(true);

    println!(
        "{RUNS} pairs per figure, each measured back to back in alternating order; medians, \
         with the lowest and highest pair ratio"
    );
    println!("| figure | constrained | baseline | ratio (pair range) | target |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    for (label, us, masks, tokens) in mask_us {
        println!(
            "{label}: {masks} masks for {tokens} tokens, {us:.1} us per mask (free-text string)"
        );
    }
    println!(
        "long keys: {:.1} us per mask; output {} tokens, {} forced with fast-forward ({} without)",
        t_ff.mask.as_secs_f64() * 1e6 / f64::from(t_ff.masks.max(1)),
        t_ff.generated_tokens,
        t_ff.forced_tokens,
        t_no_ff.forced_tokens
    );
    Ok(())
}

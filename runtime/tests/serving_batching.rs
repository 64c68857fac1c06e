//! Differential tests of continuous batching and prefix caching: whatever the batch, the chunk
//! size, the cache hits or the preemptions, every request gets exactly the tokens that
//! `Engine::generate` gives it alone (the plain, unbatched, uncached path).

use std::path::PathBuf;
use std::sync::Arc;

use agentc_runtime::{
    Engine, FinishReason, GenerateRequest, Prompt, SamplingParams, Sequence, SequenceEvent,
    ServingConfig, ServingEngine, SubmitOptions, TokenLogprob, Usage,
};

fn engine() -> Option<Arc<Engine>> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_runtime::bundled::present(&path) {
        return None;
    }
    Some(Arc::new(Engine::load(&path).expect("loads")))
}

#[derive(Debug)]
struct Outcome {
    tokens: Vec<u32>,
    text: String,
    logprobs: Vec<TokenLogprob>,
    reason: FinishReason,
    usage: Usage,
    started_cached: usize,
}

fn collect(mut sequence: Sequence) -> Outcome {
    let started_cached = match sequence.blocking_next() {
        Some(SequenceEvent::Started { cached_tokens, .. }) => cached_tokens,
        other => panic!("expected Started first, got {other:?}"),
    };
    let mut tokens = Vec::new();
    let mut streamed = String::new();
    let mut all_logprobs = Vec::new();
    loop {
        match sequence.blocking_next() {
            Some(SequenceEvent::Token {
                token,
                text,
                logprobs,
            }) => {
                tokens.push(token);
                streamed.push_str(&text);
                all_logprobs.extend(logprobs);
            }
            Some(SequenceEvent::Finished {
                reason,
                usage,
                text,
            }) => {
                assert_eq!(text, streamed, "Finished text is the streamed text");
                assert_eq!(usage.completion_tokens, tokens.len());
                return Outcome {
                    tokens,
                    text,
                    logprobs: all_logprobs,
                    reason,
                    usage,
                    started_cached,
                };
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Serves all `requests` at once and checks each against `Engine::generate` alone.
fn assert_served_like_alone(
    engine: &Arc<Engine>,
    config: ServingConfig,
    requests: &[GenerateRequest],
) -> (Vec<Outcome>, ServingEngine) {
    let expected: Vec<_> = requests
        .iter()
        .map(|r| engine.generate(r).expect("generates"))
        .collect();
    let serving = ServingEngine::start(Arc::clone(engine), config).expect("starts");
    let sequences: Vec<_> = requests
        .iter()
        .map(|r| {
            serving
                .submit(r.clone(), SubmitOptions::default())
                .expect("admitted")
        })
        .collect();
    let outcomes: Vec<_> = sequences.into_iter().map(collect).collect();
    for (i, (got, want)) in outcomes.iter().zip(&expected).enumerate() {
        assert_eq!(got.tokens, want.tokens, "request {i}: tokens");
        assert_eq!(got.text, want.text, "request {i}: text");
        assert_eq!(got.reason, want.finish_reason, "request {i}: finish reason");
        assert_eq!(
            got.logprobs.len(),
            want.logprobs.len(),
            "request {i}: logprobs"
        );
        for (g, w) in got.logprobs.iter().zip(&want.logprobs) {
            assert_eq!(g.token, w.token, "request {i}: logprob token");
            assert!(
                (g.logprob - w.logprob).abs() < 1e-3,
                "request {i}: {g:?} vs {w:?}"
            );
            let ids = |lp: &TokenLogprob| lp.top.iter().map(|&(id, _)| id).collect::<Vec<_>>();
            assert_eq!(ids(g), ids(w), "request {i}: alternatives");
        }
        assert_eq!(got.usage.prompt_tokens, want.prompt_tokens.len());
    }
    (outcomes, serving)
}

const PROMPTS: [&str; 8] = [
    "The capital of France is",
    "List three prime numbers:",
    "def fibonacci(n):",
    "Water boils at",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "Translate to French: good morning",
    "SELECT name FROM users WHERE",
];

fn greedy_requests(max_tokens: usize) -> Vec<GenerateRequest> {
    PROMPTS
        .iter()
        .map(|p| GenerateRequest::greedy(*p, max_tokens))
        .collect()
}

#[test]
fn eight_concurrent_greedy_requests_match_generation_alone() {
    let Some(engine) = engine() else { return };
    let (_, serving) =
        assert_served_like_alone(&engine, ServingConfig::default(), &greedy_requests(24));
    let stats = serving.stats();
    assert_eq!(stats.finished, 8);
    // They really were batched: fewer forward passes than tokens.
    assert!(stats.steps < stats.step_tokens, "{stats:?}");
    serving.shutdown();
}

#[test]
fn seeded_sampling_with_stops_matches_generation_alone() {
    let Some(engine) = engine() else { return };
    let requests: Vec<_> = PROMPTS
        .iter()
        .enumerate()
        .map(|(i, p)| GenerateRequest {
            logit_bias: Vec::new(),
            // Half of them report log-probabilities with 3 alternatives.
            logprobs: (i % 2 == 1).then_some(3),
            constraint: None,
            prompt: Prompt::Text((*p).to_owned()),
            max_tokens: 20,
            sampling: SamplingParams {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.95,
                seed: 7 + i as u64,
            },
            stop: vec![".".to_owned()],
        })
        .collect();
    let (_, serving) = assert_served_like_alone(&engine, ServingConfig::default(), &requests);
    serving.shutdown();
}

#[test]
fn chunked_prefill_and_unbatched_serving_match_generation_alone() {
    let Some(engine) = engine() else { return };
    let chunked = ServingConfig {
        step_token_budget: 5,
        ..ServingConfig::default()
    };
    let (_, serving) = assert_served_like_alone(&engine, chunked, &greedy_requests(10));
    serving.shutdown();
    let unbatched = ServingConfig {
        batching: false,
        prefix_caching: false,
        ..ServingConfig::default()
    };
    let (_, serving) = assert_served_like_alone(&engine, unbatched, &greedy_requests(10));
    // One sequence per pass: one prefill and nine decodes for each of the eight requests.
    assert_eq!(serving.stats().steps, 8 * 10);
    serving.shutdown();
}

fn shared_prefix_prompt(engine: &Engine, prefix_tokens: usize, suffix: &str) -> Vec<u32> {
    let text = "The history of the city begins with a small settlement on the river, where \
                traders met to exchange grain, salt and cloth. Over the centuries it grew. "
        .repeat(40);
    let mut tokens = engine
        .tokenizer()
        .encode(&text, true, true)
        .expect("encodes");
    tokens.truncate(prefix_tokens);
    tokens.extend(
        engine
            .tokenizer()
            .encode(suffix, false, true)
            .expect("encodes"),
    );
    tokens
}

#[test]
fn a_shared_prefix_is_computed_once_and_changes_nothing() {
    let Some(engine) = engine() else { return };
    let requests: Vec<_> = ["Question: who founded it?", "Summarize:", "In short,"]
        .iter()
        .map(|s| GenerateRequest {
            prompt: Prompt::Tokens(shared_prefix_prompt(&engine, 400, s)),
            ..GenerateRequest::greedy("", 16)
        })
        .collect();
    // Served twice over one engine: the second round hits the cache for every request.
    let (first, serving) = assert_served_like_alone(&engine, ServingConfig::default(), &requests);
    // Requests arriving together compute the prefix once: the later ones find it cached.
    assert!(
        first[1..].iter().all(|o| o.started_cached >= 384),
        "{first:?}"
    );
    for request in &requests {
        let again = collect(
            serving
                .submit(request.clone(), SubmitOptions::default())
                .expect("admitted"),
        );
        assert!(again.usage.cached_tokens >= 400, "{:?}", again.usage);
        assert_eq!(again.usage.cached_tokens, again.started_cached);
        assert_eq!(
            again.tokens,
            engine.generate(request).expect("generates").tokens
        );
    }
    let stats = serving.stats();
    assert!(stats.prefix_hit_tokens >= 5 * 384, "{stats:?}");
    assert!(stats.prefix_hit_tokens < stats.prefix_query_tokens);
    serving.shutdown();
}

#[test]
fn preemption_under_a_tiny_kv_cache_changes_nothing() {
    let Some(engine) = engine() else { return };
    // 4-position blocks of 184 KiB: 2 MiB holds 11 blocks (44 positions), enough for any one
    // of these requests (at most 40 positions) but far from all eight at once.
    let config = ServingConfig {
        kv_cache_mib: 2,
        block_size: 4,
        ..ServingConfig::default()
    };
    let (_, serving) = assert_served_like_alone(&engine, config, &greedy_requests(28));
    let stats = serving.stats();
    assert!(stats.preemptions > 0, "{stats:?}");
    assert_eq!(stats.finished, 8);
    serving.shutdown();
}

#[test]
fn requests_that_can_never_fit_fail_clearly() {
    let Some(engine) = engine() else { return };
    let config = ServingConfig {
        kv_cache_mib: 2,
        block_size: 4,
        ..ServingConfig::default()
    };
    let serving = ServingEngine::start(engine, config).expect("starts");
    let mut sequence = serving
        .submit(
            GenerateRequest::greedy("The capital of France is", 100),
            SubmitOptions::default(),
        )
        .expect("admitted");
    match sequence.blocking_next() {
        Some(SequenceEvent::Failed(error)) => {
            assert!(error.to_string().contains("raise kv_cache_mib"), "{error}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(serving.stats().failed, 1);
    serving.shutdown();
}

#[test]
fn cancellation_frees_the_sequences_blocks_at_once() {
    let Some(engine) = engine() else { return };
    for prefix_caching in [false, true] {
        let config = ServingConfig {
            prefix_caching,
            ..ServingConfig::default()
        };
        let serving = ServingEngine::start(Arc::clone(&engine), config).expect("starts");
        let before = serving.stats();
        let mut sequence = serving
            .submit(
                GenerateRequest::greedy("Once upon a time", 2000),
                SubmitOptions::default(),
            )
            .expect("admitted");
        assert!(matches!(
            sequence.blocking_next(),
            Some(SequenceEvent::Started { .. })
        ));
        // Let it generate a while: it holds blocks for its prompt and its tokens.
        for _ in 0..40 {
            assert!(matches!(
                sequence.blocking_next(),
                Some(SequenceEvent::Token { .. })
            ));
        }
        assert!(serving.stats().kv_blocks_used > before.kv_blocks_used);
        sequence.cancel();
        let reason = loop {
            match sequence.blocking_next() {
                Some(SequenceEvent::Token { .. }) => {}
                Some(SequenceEvent::Finished { reason, .. }) => break reason,
                other => panic!("unexpected event {other:?}"),
            }
        };
        assert_eq!(reason, FinishReason::Cancelled);
        let after = serving.stats();
        // Only blocks the prefix cache kept (the prompt's full blocks) may remain.
        assert_eq!(
            after.kv_blocks_used - after.kv_blocks_cached,
            before.kv_blocks_used,
            "{after:?}"
        );
        assert_eq!(after.cancelled, 1);
        serving.shutdown();
    }
}

#[test]
fn a_retained_prefix_survives_eviction_until_released() {
    let Some(engine) = engine() else { return };
    // 16-position blocks of 720 KiB: 40 MiB holds 56 blocks, so the flood below (8 requests of
    // about 270 distinct prompt tokens, 17 blocks each) must evict whatever is not retained.
    let config = ServingConfig {
        kv_cache_mib: 40,
        ..ServingConfig::default()
    };
    let serving = ServingEngine::start(Arc::clone(&engine), config).expect("starts");
    let kept = GenerateRequest {
        prompt: Prompt::Tokens(shared_prefix_prompt(&engine, 400, "Question:")),
        ..GenerateRequest::greedy("", 4)
    };
    let first = serving
        .submit(
            kept.clone(),
            SubmitOptions {
                retain_prefix_tokens: 400,
                ..SubmitOptions::default()
            },
        )
        .expect("admitted");
    let id = first.id();
    collect(first);
    let flood: Vec<_> = (0..8)
        .map(|i| {
            let text = format!("{i} apples and {i} pears. ").repeat(30);
            serving
                .submit(GenerateRequest::greedy(text, 2), SubmitOptions::default())
                .expect("admitted")
        })
        .collect();
    flood.into_iter().for_each(|s| drop(collect(s)));
    let again = collect(
        serving
            .submit(kept.clone(), SubmitOptions::default())
            .expect("admitted"),
    );
    assert_eq!(
        again.usage.cached_tokens, 400,
        "the retained prefix was evicted"
    );
    serving.release_retained(id);
    let flood: Vec<_> = (0..8)
        .map(|i| {
            let text = format!("{i} cats and {i} dogs. ").repeat(30);
            serving
                .submit(GenerateRequest::greedy(text, 2), SubmitOptions::default())
                .expect("admitted")
        })
        .collect();
    flood.into_iter().for_each(|s| drop(collect(s)));
    let last = collect(
        serving
            .submit(kept, SubmitOptions::default())
            .expect("admitted"),
    );
    assert!(
        last.usage.cached_tokens < 400,
        "released prefix was kept: {:?}",
        last.usage
    );
    serving.shutdown();
}

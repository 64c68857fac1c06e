//! The serving engine against the single-sequence engine: the same requests give the same
//! tokens whether they are served concurrently or alone, events arrive in order, admission is
//! bounded and cancellation ends a sequence.

use std::path::PathBuf;
use std::sync::Arc;

use agentc_runtime::{
    Engine, FinishReason, GenerateRequest, SequenceEvent, ServingConfig, ServingEngine,
    SubmitError, SubmitOptions,
};

fn model_path() -> Option<PathBuf> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_runtime::bundled::present(&path) {
        return None;
    }
    Some(path)
}

/// Every event of a sequence, checked for order; returns the tokens, text and reason.
fn collect(mut sequence: agentc_runtime::Sequence) -> (Vec<u32>, String, FinishReason) {
    let mut tokens = Vec::new();
    let mut streamed = String::new();
    match sequence.blocking_next() {
        Some(SequenceEvent::Started { .. }) => {}
        other => panic!("expected Started first, got {other:?}"),
    }
    loop {
        match sequence.blocking_next() {
            Some(SequenceEvent::Token { token, text, .. }) => {
                tokens.push(token);
                streamed.push_str(&text);
            }
            Some(SequenceEvent::Finished {
                reason,
                usage,
                text,
            }) => {
                assert_eq!(text, streamed, "Finished text is the streamed text");
                assert_eq!(usage.completion_tokens, tokens.len());
                assert!(sequence.blocking_next().is_none(), "nothing after Finished");
                return (tokens, text, reason);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

#[test]
fn concurrent_requests_match_single_sequence_generation() {
    let Some(path) = model_path() else { return };
    let engine = Arc::new(Engine::load(&path).expect("loads"));
    let prompts = [
        "The capital of France is",
        "List three prime numbers:",
        "def fibonacci(n):",
        "Water boils at",
    ];
    let expected: Vec<_> = prompts
        .iter()
        .map(|p| {
            engine
                .generate(&GenerateRequest::greedy(*p, 12))
                .expect("generates")
        })
        .collect();
    let serving =
        ServingEngine::start(Arc::clone(&engine), ServingConfig::default()).expect("starts");
    let sequences: Vec<_> = prompts
        .iter()
        .map(|p| {
            serving
                .submit(GenerateRequest::greedy(*p, 12), SubmitOptions::default())
                .expect("admitted")
        })
        .collect();
    for (sequence, expected) in sequences.into_iter().zip(&expected) {
        let (tokens, text, reason) = collect(sequence);
        assert_eq!(tokens, expected.tokens);
        assert_eq!(text, expected.text);
        assert_eq!(reason, expected.finish_reason);
    }
    assert_eq!(serving.stats().finished, 4);
    serving.shutdown();
}

#[test]
fn admission_is_bounded_and_cancellation_ends_the_sequence() {
    let Some(path) = model_path() else { return };
    let engine = Arc::new(Engine::load(&path).expect("loads"));
    let config = ServingConfig {
        max_waiting: 1,
        batching: false,
        ..ServingConfig::default()
    };
    let serving = ServingEngine::start(engine, config).expect("starts");
    // A long request occupies the engine; once it has started, one more may wait.
    let mut running = serving
        .submit(
            GenerateRequest::greedy("Once upon a time", 2000),
            SubmitOptions::default(),
        )
        .expect("admitted");
    assert!(matches!(
        running.blocking_next(),
        Some(SequenceEvent::Started { .. })
    ));
    let waiting = serving
        .submit(
            GenerateRequest::greedy("Hello", 4),
            SubmitOptions::default(),
        )
        .expect("admitted");
    match serving.submit(GenerateRequest::greedy("Hi", 4), SubmitOptions::default()) {
        Err(SubmitError::Overloaded { waiting: 1 }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
    running.cancel();
    let reason = loop {
        match running.blocking_next() {
            Some(SequenceEvent::Token { .. }) => {}
            Some(SequenceEvent::Finished { reason, .. }) => break reason,
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert_eq!(reason, FinishReason::Cancelled);
    let (tokens, _, _) = collect(waiting);
    assert_eq!(tokens.len(), 4);
    let stats = serving.stats();
    assert_eq!((stats.cancelled, stats.finished), (1, 1));
    serving.shutdown();
}

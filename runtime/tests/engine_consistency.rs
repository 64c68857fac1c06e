//! Differential tests of the engine against itself: batched prefill against one-token decode,
//! and thread counts against each other. Both must agree bit for bit, since every path runs the
//! same per-row kernels in the same order.

use std::path::PathBuf;

use agentc_runtime::{Engine, EngineOptions, GenerateRequest, MatmulBackend};

fn model_path() -> Option<PathBuf> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_runtime::bundled::present(&path) {
        return None;
    }
    Some(path)
}

#[test]
fn prefill_and_token_by_token_decode_give_identical_logits() {
    let Some(path) = model_path() else { return };
    let engine = Engine::load(&path).expect("loads");
    let tokens = engine
        .tokenizer()
        .encode("Rust is a systems programming language that", true, true)
        .expect("encodes");
    let (last, before) = tokens.split_last().expect("non-empty prompt");
    let batched = engine.logits(&tokens).expect("prefill");
    // Prefill all but the last token, then decode the last one alone.
    let stepwise = engine
        .teacher_forced_logits(before, &[*last, 0])
        .expect("decode");
    assert_eq!(batched.len(), stepwise[1].len());
    let first_difference = batched
        .iter()
        .zip(&stepwise[1])
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert_eq!(first_difference, None, "prefill and decode logits differ");
}

#[test]
fn thread_count_does_not_change_results() {
    let Some(path) = model_path() else { return };
    let options = |threads| EngineOptions {
        threads,
        context_length: Some(256),
        ..EngineOptions::default()
    };
    let one = Engine::load_with(&path, &options(1)).expect("loads");
    let two = Engine::load_with(&path, &options(2)).expect("loads");
    let request = GenerateRequest::greedy("The three primary colors are", 16);
    let a = one.generate(&request).expect("generates");
    let b = two.generate(&request).expect("generates");
    assert_eq!(a.tokens, b.tokens);
    let prompt = a.prompt_tokens.clone();
    let la = one.logits(&prompt).expect("logits");
    let lb = two.logits(&prompt).expect("logits");
    assert!(la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// The kernels crate's packed matmuls against this crate's reference matmul. They sum in a
/// different order, so logits differ by rounding noise amplified by the 8-bit activations (see
/// llama_cpp_reference.rs); a real kernel bug moves them by whole units.
#[test]
fn kernel_matmuls_agree_with_the_reference_matmul() {
    const LOGIT_TOLERANCE: f32 = 1.0;
    let Some(path) = model_path() else { return };
    let options = |matmul| EngineOptions {
        threads: 2,
        context_length: Some(256),
        matmul,
        chat_template: None,
    };
    let fast = Engine::load_with(&path, &options(MatmulBackend::Kernels)).expect("loads");
    let reference = Engine::load_with(&path, &options(MatmulBackend::Reference)).expect("loads");
    for prompt in [
        "The capital of France is",
        "def fibonacci(n):\n    ",
        "日本語のテキスト",
    ] {
        let tokens = fast
            .tokenizer()
            .encode(prompt, true, true)
            .expect("encodes");
        let a = fast.logits(&tokens).expect("logits");
        let b = reference.logits(&tokens).expect("logits");
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < LOGIT_TOLERANCE,
            "{prompt:?}: logits differ by up to {worst}"
        );
    }
}

/// `Engine::perplexity` (chunks evaluated 512 tokens a pass, every row's logits) against the
/// same scores from token-by-token decoding, which gives bit-identical logits (see above).
#[test]
fn perplexity_equals_the_teacher_forced_negative_log_likelihood() {
    let Some(path) = model_path() else { return };
    let engine = Engine::load(&path).expect("loads");
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(20);
    let tokens = engine
        .tokenizer()
        .encode(&text, true, false)
        .expect("encodes");
    let context = 64;
    let result = engine
        .perplexity(&tokens, context, Some(2), |_, _| {})
        .expect("perplexity");
    assert_eq!(result.tokens_scored, 2 * (context - 1 - context / 2));
    assert_eq!(result.running.len(), 2);

    let bos = engine.tokenizer().special_ids().bos;
    let mut nll = 0.0f64;
    for chunk in tokens.chunks_exact(context).take(2) {
        let mut chunk = chunk.to_vec();
        if let (true, Some(bos)) = (engine.tokenizer().adds_bos(), bos) {
            chunk[0] = bos;
        }
        let first = context / 2;
        let rows = engine
            .teacher_forced_logits(&chunk[..=first], &chunk[first + 1..])
            .expect("decodes");
        for (row, &target) in rows.iter().zip(&chunk[first + 1..]) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
            nll += sum.ln() - f64::from(row[target as usize] - max);
        }
    }
    let expected = (nll / result.tokens_scored as f64).exp();
    assert!(
        (result.value - expected).abs() <= 1e-9 * expected,
        "{} vs {expected}",
        result.value
    );
    // A repeated sentence is easy to predict.
    assert!(result.value > 1.0 && result.value < 3.0, "{}", result.value);

    let short = engine.perplexity(&tokens[..10], context, None, |_, _| {});
    assert_eq!(
        short.unwrap_err().to_string(),
        "invalid generation request: the text has 10 tokens, fewer than one context of 64"
    );
}

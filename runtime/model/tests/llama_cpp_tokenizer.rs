//! Differential test: the tokenizer and chat template against llama.cpp's recordings in
//! tests/fixtures/llama_cpp/smollm2_greedy.json (made by scripts/reference/record_llama_cpp.py).

use std::path::PathBuf;

use agentc_model::{ChatMessage, ChatTemplate, GgufFile, Tokenizer};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled model, or `None` (with a visible note) when `models/` has not been set up.
fn bundled_model() -> Option<GgufFile> {
    let path = repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_model::bundled::present(&path) {
        return None;
    }
    Some(GgufFile::open(&path).expect("the bundled model opens"))
}

fn reference_cases() -> Vec<Value> {
    let path = repo_root().join("tests/fixtures/llama_cpp/smollm2_greedy.json");
    let text = std::fs::read_to_string(&path).expect("reference fixture is readable");
    let reference: Value = serde_json::from_str(&text).expect("reference fixture is JSON");
    reference["cases"].as_array().expect("cases array").clone()
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("id array")
        .iter()
        .map(|v| v.as_u64().expect("id") as u32)
        .collect()
}

#[test]
fn tokenizer_matches_llama_cpp_on_every_recorded_prompt() {
    let Some(gguf) = bundled_model() else { return };
    let tokenizer = Tokenizer::from_metadata(&gguf).expect("tokenizer builds");
    let mut failures = Vec::new();
    for case in reference_cases() {
        let text = case["text"].as_str().expect("prompt text");
        let ours = tokenizer.encode(text, true, true).expect("encodes");
        let theirs = ids(&case["prompt_tokens"]);
        if ours != theirs {
            failures.push(format!(
                "{text:?}\n  ours:      {ours:?}\n  llama.cpp: {theirs:?}"
            ));
        }
        let generated = ids(&case["generated_tokens"]);
        let decoded = tokenizer.decode(&generated, false).expect("decodes");
        if decoded != case["generated_text"].as_str().expect("generated text") {
            failures.push(format!(
                "decode of {generated:?}: ours {decoded:?}, llama.cpp {}",
                case["generated_text"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn chat_template_matches_the_recorded_renderings() {
    let Some(gguf) = bundled_model() else { return };
    let tokenizer = Tokenizer::from_metadata(&gguf).expect("tokenizer builds");
    let ids = tokenizer.special_ids();
    let bos = tokenizer
        .decode(&[ids.bos.expect("bos")], true)
        .expect("bos text");
    let eos = tokenizer
        .decode(&[ids.eos.expect("eos")], true)
        .expect("eos text");
    let template = ChatTemplate::from_metadata(&gguf, &bos, &eos)
        .expect("compiles")
        .expect("model has a template");
    let mut checked = 0;
    for case in reference_cases().iter().filter(|c| c["kind"] == "chat") {
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                ChatMessage::new(
                    m["role"].as_str().expect("role"),
                    m["content"].as_str().expect("content"),
                )
            })
            .collect();
        assert_eq!(
            template.render(&messages, true).expect("renders"),
            case["text"].as_str().expect("text")
        );
        checked += 1;
    }
    assert!(checked >= 3, "the fixture has chat cases");
}

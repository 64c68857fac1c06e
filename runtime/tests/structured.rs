//! Structured outputs on the bundled model: sampled generations under JSON Schemas, regexes and
//! choices are always valid; batched sequences with different grammars get exactly what each
//! gets alone; fast-forward appends forced tokens; a budget that ends before the output is
//! complete fails the call.

use std::path::PathBuf;
use std::sync::Arc;

use agentc_runtime::constraint::OutputConstraint;
use agentc_runtime::{
    ChatMessage, Engine, EngineError as Error, FinishReason, GenerateRequest, Prompt,
    SamplingParams, Sequence, SequenceEvent, ServingConfig, ServingEngine, SubmitOptions,
};
use serde_json::{Value as Json, json};

fn engine() -> Arc<Engine> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh to fetch the bundled models",
        path.display()
    );
    Arc::new(Engine::load(&path).expect("loads"))
}

/// The five test schemas: nested objects, arrays, enums, bounded numbers, optional fields.
fn schemas() -> Vec<(&'static str, Json)> {
    vec![
        (
            "Describe a person as JSON.",
            json!({"type": "object", "properties": {
                "name": {"type": "string", "maxLength": 24},
                "age": {"type": "integer", "minimum": 0, "maximum": 120},
                "address": {"type": "object", "properties": {
                    "city": {"type": "string", "maxLength": 20},
                    "zip": {"type": "string", "pattern": "^[0-9]{5}$"}
                }, "required": ["city", "zip"], "additionalProperties": false}
            }, "required": ["name", "age", "address"], "additionalProperties": false}),
        ),
        (
            "List three fruits as JSON.",
            json!({"type": "object", "properties": {
                "fruits": {"type": "array", "items": {"type": "string", "maxLength": 16},
                           "minItems": 1, "maxItems": 4}
            }, "required": ["fruits"], "additionalProperties": false}),
        ),
        (
            "Classify the sentiment of: I love this phone.",
            json!({"type": "object", "properties": {
                "sentiment": {"enum": ["positive", "negative", "neutral"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1}
            }, "required": ["sentiment", "confidence"], "additionalProperties": false}),
        ),
        (
            "Rate a movie as JSON.",
            json!({"type": "object", "properties": {
                "title": {"type": "string", "maxLength": 30},
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "review": {"type": "string", "maxLength": 40}
            }, "required": ["title", "stars"], "additionalProperties": false}),
        ),
        (
            "Plan a trip as JSON.",
            json!({"type": "object", "properties": {
                "steps": {"type": "array", "maxItems": 3, "items": {
                    "type": "object", "properties": {
                        "day": {"type": "integer", "minimum": 1, "maximum": 7},
                        "place": {"type": "string", "maxLength": 16}
                    }, "required": ["day", "place"], "additionalProperties": false
                }},
                "budget": {"type": "number", "minimum": 0, "maximum": 10000, "multipleOf": 0.01}
            }, "required": ["steps"], "additionalProperties": false}),
        ),
    ]
}

/// Checks `value` against the subset of JSON Schema the test schemas use; the error names the
/// JSON pointer.
fn validate(value: &Json, schema: &Json, at: &str) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{at}: {what} (value {value})"));
    if let Some(options) = schema.get("enum").and_then(Json::as_array)
        && !options.contains(value)
    {
        return fail("not in enum");
    }
    let number = value.as_f64();
    match schema.get("type").and_then(Json::as_str) {
        Some("object") => {
            let Some(map) = value.as_object() else {
                return fail("not an object");
            };
            let props = schema["properties"].as_object().expect("test schema");
            for required in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(required.as_str().unwrap()) {
                    return fail(&format!("missing {required}"));
                }
            }
            for (k, v) in map {
                match props.get(k) {
                    Some(s) => validate(v, s, &format!("{at}/{k}"))?,
                    None if schema["additionalProperties"] == json!(false) => {
                        return fail(&format!("extra property {k}"));
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let Some(items) = value.as_array() else {
                return fail("not an array");
            };
            let len = items.len() as u64;
            if schema
                .get("minItems")
                .and_then(Json::as_u64)
                .is_some_and(|m| len < m)
                || schema
                    .get("maxItems")
                    .and_then(Json::as_u64)
                    .is_some_and(|m| len > m)
            {
                return fail("item count out of bounds");
            }
            for (i, item) in items.iter().enumerate() {
                validate(item, &schema["items"], &format!("{at}/{i}"))?;
            }
        }
        Some("string") => {
            let Some(s) = value.as_str() else {
                return fail("not a string");
            };
            let chars = s.chars().count() as u64;
            if schema
                .get("maxLength")
                .and_then(Json::as_u64)
                .is_some_and(|m| chars > m)
            {
                return fail("too long");
            }
            if schema.get("pattern").is_some()
                && !(s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit()))
            {
                return fail("does not match ^[0-9]{5}$");
            }
        }
        Some("integer") if !value.is_i64() && !value.is_u64() => return fail("not an integer"),
        Some("number" | "integer") => {
            let Some(n) = number else {
                return fail("not a number");
            };
            if schema
                .get("minimum")
                .and_then(Json::as_f64)
                .is_some_and(|m| n < m)
                || schema
                    .get("maximum")
                    .and_then(Json::as_f64)
                    .is_some_and(|m| n > m)
            {
                return fail("out of bounds");
            }
            // `multipleOf: 0.01`: at most two decimals (checked on the text, not the float).
            if schema.get("multipleOf").is_some()
                && value
                    .to_string()
                    .split_once('.')
                    .is_some_and(|(_, decimals)| decimals.len() > 2)
            {
                return fail("more than two decimals for multipleOf 0.01");
            }
        }
        _ => {}
    }
    Ok(())
}

fn chat(question: &str) -> Prompt {
    Prompt::Chat(vec![
        ChatMessage::new("system", "You answer with one JSON value and nothing else."),
        ChatMessage::new("user", question),
    ])
}

fn request(prompt: Prompt, constraint: OutputConstraint, seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt,
        max_tokens: 400,
        sampling: SamplingParams {
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            seed,
        },
        stop: Vec::new(),
        constraint: Some(constraint),
        logit_bias: Vec::new(),
        logprobs: None,
    }
}

/// The text and finish reason of a served sequence (or its error).
fn finish(mut sequence: Sequence) -> Result<(String, Vec<u32>, FinishReason), Error> {
    let mut tokens = Vec::new();
    loop {
        match sequence.blocking_next() {
            Some(SequenceEvent::Started { .. }) => {}
            Some(SequenceEvent::Token { token, .. }) => tokens.push(token),
            Some(SequenceEvent::Finished { text, reason, .. }) => {
                return Ok((text, tokens, reason));
            }
            Some(SequenceEvent::Failed(e)) => return Err(e),
            None => panic!("the sequence ended without Finished"),
        }
    }
}

#[test]
fn sampled_outputs_are_always_valid_against_their_schemas() {
    let engine = engine();
    let serving =
        ServingEngine::start(Arc::clone(&engine), ServingConfig::default()).expect("starts");
    let schemas = schemas();
    let mut valid = 0;
    // 200 generations, 40 per schema, submitted 20 at a time so the batches mix grammars; in
    // every other batch the requests also use top-k and top-p, so their masks are computed
    // eagerly on each step instead of lazily.
    for round in 0..10u64 {
        let sequences: Vec<_> = (0..20u64)
            .map(|i| {
                let (question, schema) = &schemas[(i % 5) as usize];
                let mut request = request(
                    chat(question),
                    OutputConstraint::JsonSchema(schema.clone()),
                    round * 100 + i,
                );
                if round % 2 == 1 {
                    request.sampling.top_k = 40;
                    request.sampling.top_p = 0.95;
                }
                (
                    (i % 5) as usize,
                    serving
                        .submit(request, SubmitOptions::default())
                        .expect("submits"),
                )
            })
            .collect();
        for (which, sequence) in sequences {
            let (text, _, reason) =
                finish(sequence).unwrap_or_else(|e| panic!("schema {which}: {e}"));
            assert_eq!(reason, FinishReason::EndOfGeneration, "{text}");
            let value: Json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            validate(&value, &schemas[which].1, "").unwrap_or_else(|e| panic!("{e}: {text}"));
            valid += 1;
        }
    }
    assert_eq!(valid, 200);
    serving.shutdown();
}

#[test]
fn batched_constrained_sequences_match_each_generated_alone() {
    let engine = engine();
    let constraints = [
        OutputConstraint::JsonSchema(schemas()[2].1.clone()),
        OutputConstraint::Regex("[A-Z][a-z]{2,8} [0-9]{1,3}".to_owned()),
        OutputConstraint::Choice(vec!["red".into(), "green".into(), "blue".into()]),
        OutputConstraint::JsonObject,
    ];
    let requests: Vec<_> = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            request(
                chat("Answer briefly: what colour is the sky?"),
                c.clone(),
                i as u64,
            )
        })
        .collect();
    let alone: Vec<_> = requests
        .iter()
        .map(|r| engine.generate(r).expect("generates"))
        .collect();
    let serving =
        ServingEngine::start(Arc::clone(&engine), ServingConfig::default()).expect("starts");
    let sequences: Vec<_> = requests
        .iter()
        .map(|r| {
            serving
                .submit(r.clone(), SubmitOptions::default())
                .expect("submits")
        })
        .collect();
    for (sequence, alone) in sequences.into_iter().zip(&alone) {
        let (text, _, reason) = finish(sequence).expect("generates");
        assert_eq!(text, alone.text);
        assert_eq!(reason, alone.finish_reason);
    }
    // The regex and the choice hold.
    let rx = &alone[1].text;
    let (word, number) = rx.split_once(' ').expect("a space");
    assert!(
        word.chars().next().unwrap().is_ascii_uppercase() && word.len() <= 9,
        "{rx}"
    );
    assert!(number.bytes().all(|b| b.is_ascii_digit()), "{rx}");
    assert!(["red", "green", "blue"].contains(&alone[2].text.as_str()));
    serving.shutdown();
}

#[test]
fn forced_keys_are_fast_forwarded() {
    let engine = engine();
    let schema = json!({"type": "object", "properties": {
        "the_customer_account_identifier": {"type": "integer", "minimum": 0, "maximum": 99},
        "the_requested_delivery_weekday": {"enum": ["monday", "friday"]}
    }, "required": ["the_customer_account_identifier", "the_requested_delivery_weekday"],
       "additionalProperties": false});
    let mut req = request(
        chat("Give an account id and a weekday."),
        OutputConstraint::JsonSchema(schema),
        3,
    );
    req.sampling = SamplingParams::greedy();
    let generation = engine.generate(&req).expect("generates");
    let value: Json = serde_json::from_str(&generation.text).expect("JSON");
    assert!(value["the_customer_account_identifier"].is_u64(), "{value}");
    // Both keys (about 8 tokens each) and the punctuation around them were forced.
    assert!(
        generation.timings.forced_tokens >= 16,
        "{:?}",
        generation.timings
    );
    // Greedy decoding masks lazily: at most one mask per sampled token, none where the model's
    // own choice is allowed.
    assert!(
        generation.timings.masks as usize + generation.timings.forced_tokens
            <= generation.tokens.len(),
        "at most a mask per sampled token: {:?}",
        generation.timings
    );
}

#[test]
fn a_budget_that_ends_before_the_output_is_complete_fails_the_call() {
    let engine = engine();
    let mut req = request(
        chat("Describe a person as JSON."),
        OutputConstraint::JsonSchema(schemas()[0].1.clone()),
        1,
    );
    req.max_tokens = 6;
    let err = engine.generate(&req).unwrap_err().to_string();
    assert!(
        err.starts_with("the output is incomplete: max_tokens ran out after 6 tokens"),
        "{err}"
    );
    let serving =
        ServingEngine::start(Arc::clone(&engine), ServingConfig::default()).expect("starts");
    let err = finish(
        serving
            .submit(req, SubmitOptions::default())
            .expect("submits"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_tokens ran out"), "{err}");
    serving.shutdown();
}

#[test]
fn an_unsupported_schema_fails_at_submission_with_what_is_wrong() {
    let engine = engine();
    let req = request(
        chat("x"),
        OutputConstraint::JsonSchema(json!({"type": "object", "properties": {
            "a": {"type": "strnig"}
        }})),
        1,
    );
    let err = engine.generate(&req).unwrap_err().to_string();
    assert!(err.starts_with("invalid output constraint"), "{err}");
    assert!(err.contains("strnig"), "{err}");
}

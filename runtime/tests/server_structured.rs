//! Structured outputs over HTTP: `response_format`, tool calls in the generic and Hermes
//! formats (streamed or not, round trips with tool turns), logprobs, and the 400s for bad
//! schemas, tools and tool turns.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use agentc_runtime::{Engine, ServingConfig};
use common::{COUNTING_PROMPT, TestServer, sse_data};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_format_constrains_chat_and_bad_schemas_are_400s() {
    let server = TestServer::start(ServingConfig::default())
        .await
        .expect("the bundled model is missing: run scripts/setup.sh");
    let schema = json!({"type": "object", "properties": {
        "colour": {"enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 9}
    }, "required": ["colour", "count"], "additionalProperties": false});
    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            json!({
                "messages": [{"role": "user", "content": "Pick a colour and a count."}],
                "max_tokens": 40,
                "temperature": 0.8,
                "seed": 5,
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "pick", "schema": schema, "strict": true}}
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    let value: Value = serde_json::from_str(content).expect("JSON content");
    assert!(
        ["red", "green", "blue"].contains(&value["colour"].as_str().unwrap()),
        "{value}"
    );
    assert!(
        (1..=9).contains(&value["count"].as_i64().unwrap()),
        "{value}"
    );
    assert_eq!(value.as_object().unwrap().len(), 2, "{value}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let (status, body) = server
        .post_json(
            "/v1/completions",
            json!({"prompt": "A JSON object with a name and an age:", "max_tokens": 120,
                   "temperature": 0, "response_format": {"type": "json_object"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body["choices"][0]["text"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()),
        "{text}"
    );

    for (format, param, message) in [
        (
            json!({"type": "json_schema", "json_schema": {"name": "x",
                   "schema": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}),
            "response_format.json_schema.schema",
            "invalid output constraint: unsupported or invalid JSON schema at `/properties/a`: \
             Invalid type: strnig",
        ),
        (
            json!({"type": "xml"}),
            "response_format.type",
            "unknown type `xml`; use text, json_object or json_schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"schema": {}}}),
            "response_format.json_schema.name",
            "must be a non-empty string",
        ),
    ] {
        let (status, body) = server
            .post_json(
                "/v1/chat/completions",
                json!({"messages": [{"role": "user", "content": "x"}], "response_format": format}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{got}");
    }

    // A budget too small for the schema fails the call instead of closing the object.
    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Pick."}], "max_tokens": 3,
                   "response_format": {"type": "json_schema",
                       "json_schema": {"name": "pick", "schema": schema}}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the output is incomplete: max_tokens ran out"),
        "{body}"
    );
}

const WEATHER_TOOLS: &str = r#"[
    {"type": "function", "function": {"name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"},
            "unit": {"enum": ["celsius", "fahrenheit"]}
        }, "required": ["city", "unit"], "additionalProperties": false}}},
    {"type": "function", "function": {"name": "get_time",
        "description": "The local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}}}
]"#;

/// The tool calls of a chat response, checked against the weather tools' schemas: (name,
/// arguments).
fn checked_calls(body: &Value) -> Vec<(String, Value)> {
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    let calls = choice["message"]["tool_calls"]
        .as_array()
        .expect("tool_calls");
    assert!(!calls.is_empty(), "{body}");
    calls
        .iter()
        .map(|call| {
            assert!(call["id"].as_str().unwrap().starts_with("call_"), "{call}");
            assert_eq!(call["type"], "function");
            let name = call["function"]["name"].as_str().unwrap().to_owned();
            let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
                .expect("arguments are JSON");
            let keys: Vec<&String> = args.as_object().unwrap().keys().collect();
            match name.as_str() {
                "get_weather" => {
                    assert_eq!(keys, ["city", "unit"], "{args}");
                    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()));
                }
                "get_time" => assert_eq!(keys, ["city"], "{args}"),
                other => panic!("a call to an unknown tool {other}"),
            }
            assert!(args["city"].is_string(), "{args}");
            (name, args)
        })
        .collect()
}

/// `request` streamed sends exactly `calls`, as tool-call deltas with no content, and finishes
/// with `tool_calls`.
async fn assert_streams_the_same_calls(
    server: &TestServer,
    request: &Value,
    calls: &[(String, Value)],
) {
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let (status, text) = server
        .post("/v1/chat/completions", &streamed.to_string())
        .await;
    assert_eq!(status, 200);
    let (got, content, finish) = streamed_calls(&text);
    assert_eq!(got, calls);
    assert_eq!(content, "");
    assert_eq!(finish, "tool_calls");
}

/// The tool calls a stream sent, reassembled as (name, arguments), and its finish reason.
fn streamed_calls(text: &str) -> (Vec<(String, Value)>, String, String) {
    let data = sse_data(text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let mut calls = Vec::new();
    let mut content = String::new();
    let mut finish = String::new();
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).expect("chunks are JSON");
        let choice = &chunk["choices"][0];
        if let Some(c) = choice["delta"]["content"].as_str() {
            content.push_str(c);
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(call["index"], calls.len(), "{chunk}");
            let args = serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
                .expect("arguments are JSON");
            calls.push((call["function"]["name"].as_str().unwrap().to_owned(), args));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = f.to_owned();
        }
    }
    (calls, content, finish)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_in_the_generic_format_round_trip_streamed_or_not() {
    let server = TestServer::start(ServingConfig::default())
        .await
        .expect("the bundled model is missing: run scripts/setup.sh");
    let tools: Value = serde_json::from_str(WEATHER_TOOLS).unwrap();
    let ask = json!({"role": "user", "content": "What is the weather in Paris?"});
    // Required: the reply is calls, each valid against its tool.
    let request = json!({"messages": [ask], "tools": tools, "tool_choice": "required",
        "temperature": 0, "max_tokens": 80});
    let (status, body) = server
        .post_json("/v1/chat/completions", request.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);
    let calls = checked_calls(&body);

    // Streamed, the same calls arrive as deltas.
    assert_streams_the_same_calls(&server, &request, &calls).await;

    // A named choice calls that tool, once when parallel calls are off.
    let mut named = request.clone();
    named["tool_choice"] = json!({"type": "function", "function": {"name": "get_time"}});
    named["parallel_tool_calls"] = json!(false);
    let (status, body) = server.post_json("/v1/chat/completions", named).await;
    assert_eq!(status, 200, "{body}");
    let calls_named = checked_calls(&body);
    assert_eq!(calls_named.len(), 1);
    assert_eq!(calls_named[0].0, "get_time");

    // The round trip: the call and its result go back; with tool_choice none the model
    // answers in text.
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    let history = json!([ask,
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "14:05"}]);
    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            json!({"messages": history, "tools": tools, "tool_choice": "none",
                   "temperature": 0, "max_tokens": 30}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
    assert!(
        body["choices"][0]["message"].get("tool_calls").is_none(),
        "{body}"
    );

    // Auto: a reply is either text or calls, and finish_reason says which.
    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            json!({"messages": history, "tools": tools, "temperature": 0.7, "seed": 3,
                   "max_tokens": 80}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    if message.get("tool_calls").is_some() {
        checked_calls(&body);
    } else {
        assert!(message["content"].is_string(), "{body}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_in_the_hermes_format_with_a_qwen_template() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let template = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("model/tests/fixtures/qwen2.5_chat_template.jinja"),
    )
    .expect("the Qwen2.5 template fixture");
    let options = agentc_runtime::EngineOptions {
        chat_template: Some(template),
        ..Default::default()
    };
    let engine = Engine::load_with(&path, &options)
        .expect("the bundled model is missing: run scripts/setup.sh");
    assert!(engine.tool_support().hermes);
    let server = TestServer::start_with(Arc::new(engine), ServingConfig::default()).await;
    let tools: Value = serde_json::from_str(WEATHER_TOOLS).unwrap();
    let request = json!({"messages": [{"role": "user", "content": "Weather and time in Oslo?"}],
        "tools": tools, "tool_choice": "required", "temperature": 0, "max_tokens": 120});
    let (status, body) = server
        .post_json("/v1/chat/completions", request.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let calls = checked_calls(&body);
    assert_streams_the_same_calls(&server, &request, &calls).await;

    // The call and its result render through the template's own tool turns.
    let call = body["choices"][0]["message"]["tool_calls"][0].clone();
    let (status, body) = server
        .post_json(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "Weather in Oslo?"},
                {"role": "assistant", "content": null, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": "-3 C"}],
                "tools": tools, "temperature": 0, "max_tokens": 40}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let message = &body["choices"][0]["message"];
    assert!(
        message["content"].is_string() || message["tool_calls"].is_array(),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_are_reported_on_chat_and_completions() {
    let server = TestServer::start(ServingConfig::default())
        .await
        .expect("the bundled model is missing: run scripts/setup.sh");
    let request = json!({"messages": [{"role": "user", "content": "Name a fruit."}],
        "temperature": 0, "max_tokens": 8, "logprobs": true, "top_logprobs": 3});
    let (status, body) = server
        .post_json("/v1/chat/completions", request.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(
        entries.len(),
        body["usage"]["completion_tokens"].as_u64().unwrap() as usize
            - usize::from(body["choices"][0]["finish_reason"] == "stop")
    );
    let mut bytes = Vec::new();
    for entry in entries {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3, "{entry}");
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], entry["token"], "{entry}");
        assert_eq!(top[0]["logprob"], entry["logprob"], "{entry}");
        let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(
            lps.windows(2).all(|w| w[0] >= w[1]) && lps[0] <= 0.0,
            "{lps:?}"
        );
        bytes.extend(
            entry["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8),
        );
    }
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(String::from_utf8(bytes).unwrap(), content);

    // Streamed, the chunks carry the same entries.
    let mut streamed = request;
    streamed["stream"] = json!(true);
    let (_, text) = server
        .post("/v1/chat/completions", &streamed.to_string())
        .await;
    let data = sse_data(&text);
    let streamed_entries: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .flat_map(|c| {
            c["choices"][0]["logprobs"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(&streamed_entries, entries);

    // Completions: the legacy layout, tokens adding up to the text.
    let (status, body) = server
        .post_json(
            "/v1/completions",
            json!({"prompt": COUNTING_PROMPT, "max_tokens": 6, "temperature": 0, "logprobs": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let lp = &body["choices"][0]["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tokens.concat(),
        body["choices"][0]["text"].as_str().unwrap()
    );
    let mut offset = 0;
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(lp["text_offset"][i], offset);
        offset += token.chars().count();
        assert_eq!(lp["top_logprobs"][i].as_object().unwrap().len(), 2, "{lp}");
        assert_eq!(
            lp["top_logprobs"][i][*token], lp["token_logprobs"][i],
            "{lp}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tools_logprobs_and_tool_turns_get_400s_naming_the_field() {
    let server = TestServer::start(ServingConfig::default())
        .await
        .expect("the bundled model is missing: run scripts/setup.sh");
    let tools: Value = serde_json::from_str(WEATHER_TOOLS).unwrap();
    let user = json!({"role": "user", "content": "x"});
    for (request, param, message) in [
        (
            json!({"messages": [user], "logprobs": true, "top_logprobs": 21}),
            "top_logprobs",
            "must be 0 to 20, got 21",
        ),
        (
            json!({"messages": [user], "top_logprobs": 2}),
            "top_logprobs",
            "needs \"logprobs\": true",
        ),
        (
            json!({"messages": [user, {"role": "tool", "content": "3"}]}),
            "messages[1].tool_call_id",
            "is required in a tool turn",
        ),
        (
            json!({"messages": [user, {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_time", "arguments": "{city: Oslo"}}]}]}),
            "messages[1].tool_calls[0].function.arguments",
            "must be a JSON object, serialized",
        ),
        (
            json!({"messages": [user], "tools": tools,
                   "response_format": {"type": "json_object"}}),
            "response_format",
            "cannot be combined with tools",
        ),
        (
            json!({"messages": [user], "tools": [{"type": "function", "function": {
                "name": "f", "parameters": {"type": "object",
                    "properties": {"x": {"type": "string", "if": {}}}}}}]}),
            "tools[0].function.parameters",
            "at `/properties/x`: Unimplemented keys: [\"if\"]",
        ),
        (
            json!({"messages": [user], "tools": tools,
                   "tool_choice": {"type": "function", "function": {"name": "launch"}}}),
            "tool_choice.function.name",
            "`launch` is not one of the request's tools",
        ),
    ] {
        let (status, body) = server.post_json("/v1/chat/completions", request).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["param"], param, "{body}");
        let got = body["error"]["message"].as_str().unwrap();
        assert!(got.contains(message), "{got}");
    }
    let (status, body) = server
        .post_json("/v1/completions", json!({"prompt": "x", "logprobs": 30}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "logprobs");
}

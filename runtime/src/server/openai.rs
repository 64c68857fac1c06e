//! The OpenAI API's request and response bodies, and the checks that turn a request into a
//! [`GenerateRequest`]. Unknown fields are ignored, as OpenAI does.

use std::hash::{BuildHasher, RandomState};

use agentc_model::ToolSupport;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ChatMessage;
use crate::constraint::{ConstraintGrammar, OutputConstraint};
use crate::engine::{Engine, FinishReason, GenerateRequest, Prompt};
use crate::sampling::{MAX_TOP_LOGPROBS, SamplingParams};
use crate::serving::Usage;

use super::error::ApiError;
pub use super::logprobs::{ChatLogprobs, CompletionLogprobs};
use super::tool_calls::{ToolCallOut, ToolPlan};

/// Caps on what one request may carry: every stop string is searched for after every token, and
/// every list costs work before generation starts.
pub const MAX_STOP_STRINGS: usize = 16;
pub const MAX_STOP_BYTES: usize = 256;
pub const MAX_MESSAGES: usize = 2048;
pub const MAX_TOOLS: usize = 128;
pub const MAX_LOGIT_BIAS: usize = 1024;

/// OpenAI's default `max_tokens` for `/v1/completions`.
pub const DEFAULT_COMPLETION_MAX_TOKENS: usize = 16;
/// OpenAI's default temperature and top_p.
const DEFAULT_TEMPERATURE: f32 = 1.0;
const DEFAULT_TOP_P: f32 = 1.0;

#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: Option<String>,
    /// A string, an array of one string, an array of token ids or an array of one such array.
    pub prompt: Value,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// An extension (vLLM's): keep the k most likely tokens; -1 or 0 keeps all.
    pub top_k: Option<i64>,
    pub seed: Option<u64>,
    /// A string or a list of strings.
    pub stop: Option<Value>,
    /// `{"token id": bias}`, bias in [-100, 100].
    pub logit_bias: Option<Value>,
    pub n: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// `{"type": "text" | "json_object"}` or `{"type": "json_schema", "json_schema": {"name",
    /// "schema", "strict"}}`: the output is decoded under that constraint.
    pub response_format: Option<Value>,
    /// Return each output token's log-probability with this many alternatives (0 to 20).
    pub logprobs: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessageIn>,
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// An extension (vLLM's): keep the k most likely tokens; -1 or 0 keeps all.
    pub top_k: Option<i64>,
    pub seed: Option<u64>,
    /// A string or a list of strings.
    pub stop: Option<Value>,
    /// `{"token id": bias}`, bias in [-100, 100].
    pub logit_bias: Option<Value>,
    pub n: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// `{"type": "text" | "json_object"}` or `{"type": "json_schema", "json_schema": {"name",
    /// "schema", "strict"}}`: the output is decoded under that constraint.
    pub response_format: Option<Value>,
    /// `[{"type": "function", "function": {"name", "description", "parameters"}}]`.
    pub tools: Option<Value>,
    /// `"none"`, `"auto"` (the default with tools), `"required"` or
    /// `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    /// Return each output token's log-probability.
    pub logprobs: Option<bool>,
    /// With `logprobs`, this many most likely alternatives per token (0 to 20).
    pub top_logprobs: Option<u64>,
}

/// The fields both endpoints share (copied out of either request: `#[serde(flatten)]` would lose
/// the field names in error messages).
#[derive(Debug, Default)]
pub struct SamplingFields {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub seed: Option<u64>,
    pub stop: Option<Value>,
    pub logit_bias: Option<Value>,
    pub n: Option<u64>,
    pub include_usage: bool,
}

macro_rules! sampling_fields {
    ($request:expr) => {
        SamplingFields {
            temperature: $request.temperature,
            top_p: $request.top_p,
            top_k: $request.top_k,
            seed: $request.seed,
            stop: $request.stop.clone(),
            logit_bias: $request.logit_bias.clone(),
            n: $request.n,
            include_usage: $request
                .stream_options
                .as_ref()
                .is_some_and(|options| options.include_usage),
        }
    };
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
pub struct ChatMessageIn {
    pub role: String,
    /// A string or an array of `{"type": "text", "text": ...}` parts; may be null in an
    /// assistant turn with `tool_calls`.
    #[serde(default)]
    pub content: Value,
    /// An assistant turn's calls: `[{"id", "type": "function", "function": {"name",
    /// "arguments"}}]`, the arguments a JSON string.
    pub tool_calls: Option<Vec<ToolCallIn>>,
    /// A `tool` turn: the call it answers.
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCallIn {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionCallIn,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCallIn {
    pub name: String,
    pub arguments: String,
}

const ROLES: [&str; 5] = ["system", "user", "assistant", "developer", "tool"];

impl SamplingFields {
    /// `logit_bias` as (token id, bias) pairs, checked against a vocabulary of `vocab_size`.
    fn logit_bias(&self, vocab_size: usize) -> Result<Vec<(u32, f32)>, ApiError> {
        let entries = match &self.logit_bias {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(entries)) if entries.len() > MAX_LOGIT_BIAS => {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("at most {MAX_LOGIT_BIAS} entries, got {}", entries.len()),
                ));
            }
            Some(Value::Object(entries)) => entries,
            Some(_) => {
                return Err(ApiError::invalid(
                    "logit_bias",
                    "must be an object mapping token ids to biases",
                ));
            }
        };
        let mut bias = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let param = || format!("logit_bias[\"{key}\"]");
            let id = key
                .parse::<u32>()
                .ok()
                .filter(|&id| (id as usize) < vocab_size)
                .ok_or_else(|| {
                    ApiError::invalid(
                        param(),
                        format!("keys must be token ids below the vocabulary size {vocab_size}"),
                    )
                })?;
            let b = value
                .as_f64()
                .filter(|b| (-100.0..=100.0).contains(b))
                .ok_or_else(|| ApiError::invalid(param(), "must be a number in [-100, 100]"))?;
            bias.push((id, b as f32));
        }
        Ok(bias)
    }

    /// The sampling parameters and stop strings, checked.
    fn check(&self) -> Result<(SamplingParams, Vec<String>), ApiError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(ApiError::invalid(
                "n",
                format!("only n = 1 is supported, got {n}"),
            ));
        }
        let temperature = self.temperature.unwrap_or(DEFAULT_TEMPERATURE);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(ApiError::invalid(
                "temperature",
                format!("must be >= 0, got {temperature}"),
            ));
        }
        let top_p = self.top_p.unwrap_or(DEFAULT_TOP_P);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                "top_p",
                format!("must be in (0, 1], got {top_p}"),
            ));
        }
        let top_k = match self.top_k {
            None | Some(-1) | Some(0) => 0,
            Some(k) => usize::try_from(k).map_err(|_| {
                ApiError::invalid("top_k", format!("must be -1 (all) or >= 1, got {k}"))
            })?,
        };
        let seed = self
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()));
        let stop = match &self.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ApiError::invalid(format!("stop[{i}]"), "must be a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ApiError::invalid(
                    "stop",
                    "must be a string or an array of strings",
                ));
            }
        };
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid("stop", "stop strings must not be empty"));
        }
        if stop.len() > MAX_STOP_STRINGS {
            return Err(ApiError::invalid(
                "stop",
                format!(
                    "at most {MAX_STOP_STRINGS} stop strings, got {}",
                    stop.len()
                ),
            ));
        }
        if let Some(i) = stop.iter().position(|s| s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::invalid(
                format!("stop[{i}]"),
                format!("at most {MAX_STOP_BYTES} bytes"),
            ));
        }
        let sampling = SamplingParams {
            temperature,
            top_k,
            top_p,
            seed,
        };
        Ok((sampling, stop))
    }
}

/// A checked request, its prompt already tokenized.
#[derive(Debug)]
pub struct Checked {
    pub request: GenerateRequest,
    /// The tools a chat reply may call.
    pub tools: Option<ToolPlan>,
}

impl CompletionRequest {
    pub fn sampling(&self) -> SamplingFields {
        sampling_fields!(self)
    }

    pub fn check(&self, engine: &Engine) -> Result<Checked, ApiError> {
        let prompt = match &self.prompt {
            Value::String(text) => Prompt::Text(text.clone()),
            Value::Array(items) => match items.as_slice() {
                [Value::String(text)] => Prompt::Text(text.clone()),
                [Value::Array(ids)] => Prompt::Tokens(token_ids(ids, "prompt[0]", engine)?),
                ids if ids.iter().all(Value::is_number) && !ids.is_empty() => {
                    Prompt::Tokens(token_ids(ids, "prompt", engine)?)
                }
                _ => return Err(prompt_shape_error()),
            },
            _ => return Err(prompt_shape_error()),
        };
        let (sampling, stop) = self.sampling().check()?;
        let logit_bias = self.sampling().logit_bias(engine.config().vocab_size)?;
        let max_tokens = match self.max_tokens {
            None => Some(DEFAULT_COMPLETION_MAX_TOKENS),
            Some(n) => Some(positive("max_tokens", n)?),
        };
        let mut checked = finish_check(engine, prompt, "prompt", max_tokens, sampling, stop)?;
        checked.request.logit_bias = logit_bias;
        checked.request.constraint = response_format(self.response_format.as_ref())?;
        checked.request.logprobs = self
            .logprobs
            .map(|n| top_logprobs("logprobs", n))
            .transpose()?;
        Ok(checked)
    }
}

/// The constraint `response_format` asks for, checked (an unsupported schema is a 400 that
/// names what llguidance refused).
fn response_format(format: Option<&Value>) -> Result<Option<OutputConstraint>, ApiError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let kind = format.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid(
            "response_format.type",
            "must be \"text\", \"json_object\" or \"json_schema\"",
        )
    })?;
    let constraint = match kind {
        "text" => return Ok(None),
        "json_object" => OutputConstraint::JsonObject,
        "json_schema" => {
            let spec = format.get("json_schema").ok_or_else(|| {
                ApiError::invalid(
                    "response_format.json_schema",
                    "is required with type \"json_schema\": {\"name\", \"schema\", \"strict\"}",
                )
            })?;
            match spec.get("name") {
                Some(Value::String(name)) if !name.is_empty() => {}
                _ => {
                    return Err(ApiError::invalid(
                        "response_format.json_schema.name",
                        "must be a non-empty string",
                    ));
                }
            }
            match spec.get("schema") {
                Some(schema @ Value::Object(_)) => OutputConstraint::JsonSchema(schema.clone()),
                None => OutputConstraint::JsonObject,
                Some(_) => {
                    return Err(ApiError::invalid(
                        "response_format.json_schema.schema",
                        "must be a JSON Schema object",
                    ));
                }
            }
        }
        other => {
            return Err(ApiError::invalid(
                "response_format.type",
                format!("unknown type `{other}`; use text, json_object or json_schema"),
            ));
        }
    };
    constraint.validate().map_err(|e| {
        let param = if kind == "json_schema" {
            "response_format.json_schema.schema"
        } else {
            "response_format"
        };
        ApiError::invalid(param, e.to_string())
    })?;
    Ok(Some(constraint))
}

fn prompt_shape_error() -> ApiError {
    ApiError::invalid(
        "prompt",
        "must be a string, an array of one string, or an array of token ids \
         (one prompt per request)",
    )
}

fn token_ids(ids: &[Value], param: &str, engine: &Engine) -> Result<Vec<u32>, ApiError> {
    let vocab_size = engine.config().vocab_size;
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .filter(|&id| (id as usize) < vocab_size)
                .ok_or_else(|| {
                    ApiError::invalid(
                        format!("{param}[{i}]"),
                        format!(
                            "must be a token id below the vocabulary size {vocab_size}, got {id}"
                        ),
                    )
                })
        })
        .collect()
}

impl ChatRequest {
    pub fn sampling(&self) -> SamplingFields {
        sampling_fields!(self)
    }

    pub fn check(&self, engine: &Engine) -> Result<Checked, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "must not be empty"));
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(ApiError::invalid(
                "messages",
                format!(
                    "at most {MAX_MESSAGES} messages, got {}",
                    self.messages.len()
                ),
            ));
        }
        let support = engine.tool_support();
        let messages = chat_messages(&self.messages, support)?;
        let tools = ToolPlan::from_request(
            self.tools.as_ref(),
            self.tool_choice.as_ref(),
            self.parallel_tool_calls,
            support,
        )?;
        let mut constraint = response_format(self.response_format.as_ref())?;
        let prompt = match &tools {
            Some(plan) => {
                if constraint.is_some() {
                    return Err(ApiError::invalid(
                        "response_format",
                        "cannot be combined with tools; use tool_choice \"none\" or drop \
                         response_format",
                    ));
                }
                constraint = Some(plan.constraint());
                let messages = plan.instruct(messages);
                let tools = plan.template_tools();
                Prompt::Tokens(engine.chat_tokens(&messages, tools.as_deref())?)
            }
            None => Prompt::Chat(messages),
        };
        let (sampling, stop) = self.sampling().check()?;
        let logit_bias = self.sampling().logit_bias(engine.config().vocab_size)?;
        let max_tokens = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => Some(positive("max_completion_tokens", n)?),
            (None, Some(n)) => Some(positive("max_tokens", n)?),
            (None, None) => None,
        };
        let logprobs = match (self.logprobs, self.top_logprobs) {
            (Some(true), top) => Some(top_logprobs("top_logprobs", top.unwrap_or(0))?),
            (_, Some(_)) => {
                return Err(ApiError::invalid(
                    "top_logprobs",
                    "needs \"logprobs\": true",
                ));
            }
            _ => None,
        };
        let mut checked = finish_check(engine, prompt, "messages", max_tokens, sampling, stop)?;
        checked.request.logit_bias = logit_bias;
        checked.request.constraint = constraint;
        checked.request.logprobs = logprobs;
        checked.tools = tools;
        Ok(checked)
    }
}

/// A `top_logprobs` count, checked.
fn top_logprobs(param: &str, n: u64) -> Result<usize, ApiError> {
    usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_TOP_LOGPROBS)
        .ok_or_else(|| {
            ApiError::invalid(param, format!("must be 0 to {MAX_TOP_LOGPROBS}, got {n}"))
        })
}

/// The request's messages as the template sees them. Tool calls and tool results go to a
/// template that renders them as they are; to one that does not, calls become the generic
/// format's JSON in the assistant's text and results become user turns holding
/// `{"tool_response": ...}`.
fn chat_messages(
    messages: &[ChatMessageIn],
    support: ToolSupport,
) -> Result<Vec<ChatMessage>, ApiError> {
    let mut names: Vec<(String, String)> = Vec::new();
    messages
        .iter()
        .enumerate()
        .map(|(i, message)| {
            let role = message.role.as_str();
            if !ROLES.contains(&role) {
                return Err(ApiError::invalid(
                    format!("messages[{i}].role"),
                    format!("unknown role `{role}`; use one of {}", ROLES.join(", ")),
                ));
            }
            let text = match (&message.content, role) {
                (Value::Null, "assistant") if message.tool_calls.is_some() => String::new(),
                (content, _) => message_text(content, i)?,
            };
            let mut out = ChatMessage::new(role, text);
            match (role, &message.tool_calls, &message.tool_call_id) {
                ("assistant", Some(calls), _) => {
                    let mut parsed = Vec::with_capacity(calls.len());
                    for (j, call) in calls.iter().enumerate() {
                        let param = |f: &str| format!("messages[{i}].tool_calls[{j}]{f}");
                        if call.kind.as_deref().is_some_and(|k| k != "function") {
                            return Err(ApiError::invalid(param(".type"), "must be \"function\""));
                        }
                        let arguments: Value = serde_json::from_str(&call.function.arguments)
                            .ok()
                            .filter(Value::is_object)
                            .ok_or_else(|| {
                                ApiError::invalid(
                                    param(".function.arguments"),
                                    "must be a JSON object, serialized",
                                )
                            })?;
                        names.push((call.id.clone(), call.function.name.clone()));
                        parsed.push(json!({"id": call.id, "type": "function", "function": {
                            "name": call.function.name, "arguments": arguments
                        }}));
                    }
                    if support.tool_calls {
                        out.tool_calls = Some(parsed);
                    } else {
                        let calls: Vec<Value> = parsed
                            .iter()
                            .map(|c| {
                                json!({"name": c["function"]["name"],
                                "arguments": c["function"]["arguments"]})
                            })
                            .collect();
                        let call_text = json!({"tool_calls": calls}).to_string();
                        out.content = if out.content.is_empty() {
                            call_text
                        } else {
                            format!("{}\n{call_text}", out.content)
                        };
                    }
                }
                (_, Some(_), _) => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].tool_calls"),
                        "only assistant turns have tool calls",
                    ));
                }
                ("tool", None, Some(id)) => {
                    let name = names
                        .iter()
                        .rev()
                        .find(|(call, _)| call == id)
                        .map(|(_, name)| name.clone());
                    if support.tool_responses {
                        out.tool_call_id = Some(id.clone());
                        out.name = name;
                    } else {
                        out.role = "user".to_owned();
                        out.content = json!({"tool_response": {
                            "tool_call_id": id, "name": name, "content": out.content
                        }})
                        .to_string();
                    }
                }
                ("tool", None, None) => {
                    return Err(ApiError::invalid(
                        format!("messages[{i}].tool_call_id"),
                        "is required in a tool turn",
                    ));
                }
                _ => {}
            }
            Ok(out)
        })
        .collect()
}

fn message_text(content: &Value, index: usize) -> Result<String, ApiError> {
    let param = || format!("messages[{index}].content");
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (p, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(piece))) => text.push_str(piece),
                    _ => {
                        return Err(ApiError::invalid(
                            format!("{}[{p}]", param()),
                            "only {\"type\": \"text\", \"text\": ...} parts are supported",
                        ));
                    }
                }
            }
            Ok(text)
        }
        _ => Err(ApiError::invalid(
            param(),
            "must be a string or an array of text parts",
        )),
    }
}

fn positive(param: &str, n: u64) -> Result<usize, ApiError> {
    match usize::try_from(n) {
        Ok(0) => Err(ApiError::invalid(param, "must be at least 1, got 0")),
        Ok(n) => Ok(n),
        Err(_) => Err(ApiError::invalid(param, format!("{n} is too large"))),
    }
}

/// Tokenizes the prompt and checks it fits with `max_tokens` (`None`: the rest of the context).
fn finish_check(
    engine: &Engine,
    prompt: Prompt,
    prompt_param: &'static str,
    max_tokens: Option<usize>,
    sampling: SamplingParams,
    stop: Vec<String>,
) -> Result<Checked, ApiError> {
    let tokens = engine.prompt_tokens(&prompt)?;
    if tokens.is_empty() {
        return Err(ApiError::invalid(
            prompt_param,
            "the prompt is empty after tokenization",
        ));
    }
    let capacity = engine.context_length();
    let max_tokens = max_tokens.unwrap_or_else(|| capacity.saturating_sub(tokens.len()));
    let needed = tokens.len().saturating_add(max_tokens);
    if needed > capacity || max_tokens == 0 {
        return Err(ApiError::ContextLengthExceeded {
            capacity,
            needed,
            prompt_tokens: tokens.len(),
            max_tokens,
            param: prompt_param,
        });
    }
    Ok(Checked {
        request: GenerateRequest {
            logit_bias: Vec::new(),
            logprobs: None,
            constraint: None,
            prompt: Prompt::Tokens(tokens),
            max_tokens,
            sampling,
            stop,
        },
        tools: None,
    })
}

/// The OpenAI `finish_reason` of a finished sequence.
pub fn finish_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        FinishReason::EndOfGeneration | FinishReason::Stop(_) => "stop",
        FinishReason::Cancelled => "abort",
    }
}

#[derive(Debug, Serialize)]
pub struct UsageOut {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: usize,
}

impl From<Usage> for UsageOut {
    fn from(usage: Usage) -> Self {
        Self {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage.prompt_tokens + usage.completion_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cached_tokens,
            },
        }
    }
}

/// A `/v1/completions` response or stream chunk (`object` tells which; both have this shape).
#[derive(Debug, Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct CompletionChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<CompletionLogprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: UsageOut,
}

#[derive(Debug, Serialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct AssistantMessage {
    pub role: &'static str,
    /// Null when the reply only calls tools.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

#[derive(Debug, Serialize)]
pub struct ChatChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct ChatChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub logprobs: Option<ChatLogprobs>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Default, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A streamed tool call: each is sent whole, in one chunk.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    pub index: usize,
    #[serde(flatten)]
    pub call: ToolCallOut,
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub max_model_len: usize,
}

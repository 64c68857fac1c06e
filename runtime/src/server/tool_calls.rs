//! OpenAI tool calling: `tools` and `tool_choice` checked; the prompt and the output constraint
//! for the chat template's tool-call format; the reply parsed back into `tool_calls`.
//!
//! Two formats:
//! - **Hermes** (Hermes 2 Pro, Qwen2.5, ...: templates that render `tools` and write calls as
//!   `<tool_call>{"name", "arguments"}</tool_call>`): the tools go to the template, and the
//!   reply is constrained to text or those blocks, each call's JSON to the tool's schema.
//! - **Generic** (any other template, the bundled SmolLM2's included): the tools are described
//!   in the system message and the reply is constrained to the JSON object
//!   `{"tool_calls": [{"name", "arguments"}, ...]}` or `{"content": "..."}`.
//!
//! Either way a call's arguments match its tool's `parameters` schema by construction, and a
//! reply that still does not parse is an error, never passed on.

use std::hash::{BuildHasher, RandomState};

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::ChatMessage;
use crate::constraint::{ConstraintGrammar, OutputConstraint};
use agentc_model::ToolSupport;

use super::error::ApiError;
use super::openai::MAX_TOOLS;

const CALL_OPEN: &str = "<tool_call>";
const CALL_CLOSE: &str = "</tool_call>";

/// A checked function tool.
#[derive(Clone, Debug)]
pub struct Tool {
    pub name: String,
    /// The JSON Schema of its arguments (an object schema).
    pub parameters: Json,
    /// `{"type": "function", "function": {"name", "description", "parameters"}}`, as
    /// templates see it.
    pub definition: Json,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model may answer or call tools.
    Auto,
    /// The model must call at least one tool.
    Required,
    /// The model must call this tool.
    Named(String),
}

/// How the chat template writes tool calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Hermes,
    Generic,
}

/// The tools a chat request may call, and how.
#[derive(Clone, Debug)]
pub struct ToolPlan {
    pub tools: Vec<Tool>,
    pub choice: ToolChoice,
    /// Whether one reply may hold several calls (`parallel_tool_calls`, default true).
    pub parallel: bool,
    pub format: Format,
}

/// One call in a reply, as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCallOut {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments object, serialized (OpenAI sends a string).
    pub arguments: String,
}

/// A reply read back: text for the user, calls for the client, or both (Hermes).
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub content: Option<String>,
    pub calls: Vec<ToolCallOut>,
}

impl ToolPlan {
    /// Checks `tools`, `tool_choice` and `parallel_tool_calls`. `None`: the model answers in
    /// plain text (no tools, or `tool_choice: "none"`).
    pub fn from_request(
        tools: Option<&Json>,
        choice: Option<&Json>,
        parallel: Option<bool>,
        support: ToolSupport,
    ) -> Result<Option<Self>, ApiError> {
        let tools = match tools {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) if items.len() > MAX_TOOLS => {
                return Err(ApiError::invalid(
                    "tools",
                    format!("at most {MAX_TOOLS} tools, got {}", items.len()),
                ));
            }
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, t)| check_tool(t, i))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(ApiError::invalid("tools", "must be an array of tools")),
        };
        for (i, tool) in tools.iter().enumerate() {
            if tools[..i].iter().any(|t| t.name == tool.name) {
                return Err(ApiError::invalid(
                    format!("tools[{i}].function.name"),
                    format!("`{}` is defined twice", tool.name),
                ));
            }
        }
        let choice = match choice {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => match s.as_str() {
                "none" => return Ok(None),
                "auto" => Some(ToolChoice::Auto),
                "required" => Some(ToolChoice::Required),
                other => {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!(
                            "unknown choice `{other}`; use none, auto, required or \
                             {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"
                        ),
                    ));
                }
            },
            Some(named @ Json::Object(_)) => {
                let name = named
                    .pointer("/function/name")
                    .and_then(Json::as_str)
                    .filter(|_| named.get("type").and_then(Json::as_str) == Some("function"))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "tool_choice",
                            "a named choice is {\"type\": \"function\", \"function\": \
                             {\"name\": ...}}",
                        )
                    })?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(ApiError::invalid(
                        "tool_choice.function.name",
                        format!("`{name}` is not one of the request's tools"),
                    ));
                }
                Some(ToolChoice::Named(name.to_owned()))
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    "must be a string or a named function",
                ));
            }
        };
        if tools.is_empty() {
            return match choice {
                None => Ok(None),
                Some(_) => Err(ApiError::invalid(
                    "tool_choice",
                    "is only allowed when tools are given",
                )),
            };
        }
        Ok(Some(Self {
            tools,
            choice: choice.unwrap_or(ToolChoice::Auto),
            parallel: parallel.unwrap_or(true),
            format: if support.hermes {
                Format::Hermes
            } else {
                Format::Generic
            },
        }))
    }

    /// The tools the template renders itself (Hermes); `None` for the generic format, whose
    /// tools are in the system message instead.
    pub fn template_tools(&self) -> Option<Vec<Json>> {
        (self.format == Format::Hermes)
            .then(|| self.tools.iter().map(|t| t.definition.clone()).collect())
    }

    /// The messages with the generic format's instructions in the system message.
    pub fn instruct(&self, mut messages: Vec<ChatMessage>) -> Vec<ChatMessage> {
        if self.format == Format::Hermes {
            return messages;
        }
        let listed: Vec<String> = self
            .tools
            .iter()
            .map(|t| {
                let f = &t.definition["function"];
                let mut entry = json!({"name": t.name});
                if let Some(d) = f.get("description") {
                    entry["description"] = d.clone();
                }
                entry["arguments"] = t.parameters.clone();
                entry.to_string()
            })
            .collect();
        let call = "{\"tool_calls\": [{\"name\": <tool name>, \"arguments\": <arguments>}]}";
        let how = match &self.choice {
            ToolChoice::Auto => format!(
                "To call tools, reply with {call}. To answer directly, reply with \
                 {{\"content\": <your answer>}}."
            ),
            ToolChoice::Required => format!("Call one or more tools: reply with {call}."),
            ToolChoice::Named(name) => format!("Call the tool `{name}`: reply with {call}."),
        };
        let text = format!(
            "You can call these tools (each with a JSON Schema of its arguments):\n{}\n\n{how}",
            listed.join("\n")
        );
        match messages.first_mut() {
            Some(first) if first.role == "system" || first.role == "developer" => {
                first.content = format!("{}\n\n{text}", first.content);
            }
            _ => messages.insert(0, ChatMessage::new("system", text)),
        }
        messages
    }

    /// The tools a reply may call.
    fn callable(&self) -> impl Iterator<Item = &Tool> {
        self.tools.iter().filter(move |t| match &self.choice {
            ToolChoice::Named(name) => &t.name == name,
            _ => true,
        })
    }

    /// The JSON Schema of one call: `{"name": <a callable tool>, "arguments": <its schema>}`.
    fn call_schema(&self) -> Json {
        let options: Vec<Json> = self
            .callable()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                    "required": ["name", "arguments"],
                    "additionalProperties": false
                })
            })
            .collect();
        match <[Json; 1]>::try_from(options) {
            Ok([one]) => one,
            Err(options) => json!({"anyOf": options}),
        }
    }

    /// What the reply must match.
    pub fn constraint(&self) -> OutputConstraint {
        match self.format {
            Format::Generic => {
                let mut calls =
                    json!({"type": "array", "items": self.call_schema(), "minItems": 1});
                if !self.parallel {
                    calls["maxItems"] = json!(1);
                }
                let with_calls = json!({
                    "type": "object",
                    "properties": {"tool_calls": calls},
                    "required": ["tool_calls"],
                    "additionalProperties": false
                });
                OutputConstraint::JsonSchema(match self.choice {
                    ToolChoice::Auto => json!({"anyOf": [with_calls, {
                        "type": "object",
                        "properties": {"content": {"type": "string"}},
                        "required": ["content"],
                        "additionalProperties": false
                    }]}),
                    _ => with_calls,
                })
            }
            Format::Hermes => {
                // The JSON as Hermes templates write it: `{"name": "f", "arguments": {...}}`.
                let mut body = self.call_schema();
                body["x-guidance"] = json!({
                    "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "
                });
                let calls = if self.parallel {
                    "call (\"\\n\" call)*"
                } else {
                    "call"
                };
                let start = match self.choice {
                    ToolChoice::Auto => "TEXT | TEXT? calls",
                    _ => "calls",
                };
                OutputConstraint::Lark(format!(
                    "start: {start}\n\
                     calls: {calls}\n\
                     call: \"{CALL_OPEN}\\n\" body \"\\n{CALL_CLOSE}\"\n\
                     body: %json {body}\n\
                     TEXT: /(.|\\n)+/ & ~/(.|\\n)*{open}(.|\\n)*/\n",
                    open = regex_escape(CALL_OPEN),
                ))
            }
        }
    }

    /// Reads a finished reply. `call_ids` seeds the calls' ids.
    pub fn parse(&self, text: &str, call_ids: &str) -> Result<Reply, ApiError> {
        match self.format {
            Format::Generic => {
                let value: Json = serde_json::from_str(text.trim())
                    .map_err(|e| ApiError::MalformedToolCall(format!("{e} in {text:?}")))?;
                if let Some(content) = value.get("content").and_then(Json::as_str) {
                    return Ok(Reply {
                        content: Some(content.to_owned()),
                        calls: Vec::new(),
                    });
                }
                let calls = value
                    .get("tool_calls")
                    .and_then(Json::as_array)
                    .ok_or_else(|| {
                        ApiError::MalformedToolCall(format!(
                            "expected {{\"tool_calls\": [...]}} or {{\"content\": ...}}, got {text:?}"
                        ))
                    })?;
                let calls = calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.call(c, call_ids, i))
                    .collect::<Result<_, _>>()?;
                Ok(Reply {
                    content: None,
                    calls,
                })
            }
            Format::Hermes => {
                let mut parser = HermesParser::default();
                let mut pieces = parser.push(text);
                pieces.extend(parser.finish());
                let mut content = String::new();
                let mut calls = Vec::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => content.push_str(&t),
                        Piece::Call(body) => {
                            calls.push(self.hermes_call(&body, call_ids, calls.len())?);
                        }
                        Piece::Unclosed(rest) => {
                            return Err(ApiError::MalformedToolCall(format!(
                                "{CALL_OPEN} without {CALL_CLOSE}: {rest:?}"
                            )));
                        }
                    }
                }
                let content = content.trim();
                Ok(Reply {
                    content: (!content.is_empty()).then(|| content.to_owned()),
                    calls,
                })
            }
        }
    }

    /// The JSON between `<tool_call>` and `</tool_call>` as an API tool call.
    pub fn hermes_call(
        &self,
        body: &str,
        call_ids: &str,
        index: usize,
    ) -> Result<ToolCallOut, ApiError> {
        let value: Json = serde_json::from_str(body)
            .map_err(|e| ApiError::MalformedToolCall(format!("{e} in {body:?}")))?;
        self.call(&value, call_ids, index)
    }

    /// One `{"name", "arguments"}` object as an API tool call.
    fn call(&self, value: &Json, call_ids: &str, index: usize) -> Result<ToolCallOut, ApiError> {
        let name = value.get("name").and_then(Json::as_str).ok_or_else(|| {
            ApiError::MalformedToolCall(format!("a call without a name: {value}"))
        })?;
        if !self.callable().any(|t| t.name == name) {
            return Err(ApiError::MalformedToolCall(format!(
                "a call to `{name}`, which is not a callable tool"
            )));
        }
        let arguments = value
            .get("arguments")
            .filter(|a| a.is_object())
            .ok_or_else(|| {
                ApiError::MalformedToolCall(format!("`{name}`'s arguments are not an object"))
            })?;
        Ok(ToolCallOut {
            id: call_id(call_ids, index),
            kind: "function",
            function: FunctionCall {
                name: name.to_owned(),
                arguments: arguments.to_string(),
            },
        })
    }
}

/// `call_` and 24 hex digits, different for each response and call.
pub fn call_id(seed: &str, index: usize) -> String {
    let state = RandomState::new();
    format!(
        "call_{:016x}{:08x}",
        state.hash_one((seed, index)),
        state.hash_one(index) as u32
    )
}

/// `text` as a regex that matches it literally (Rust `regex` syntax, in a Lark `/.../`).
fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$#&-~/".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `tools[index]`, checked.
fn check_tool(tool: &Json, index: usize) -> Result<Tool, ApiError> {
    let param = |field: &str| format!("tools[{index}]{field}");
    if tool.get("type").and_then(Json::as_str) != Some("function") {
        return Err(ApiError::invalid(
            param(".type"),
            "only \"function\" tools are supported",
        ));
    }
    let function = tool
        .get("function")
        .and_then(Json::as_object)
        .ok_or_else(|| ApiError::invalid(param(".function"), "must be an object"))?;
    let name = function
        .get("name")
        .and_then(Json::as_str)
        .filter(|n| {
            (1..=64).contains(&n.len())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .ok_or_else(|| {
            ApiError::invalid(
                param(".function.name"),
                "must be 1 to 64 letters, digits, `_` or `-`",
            )
        })?;
    let parameters = match function.get("parameters") {
        None | Some(Json::Null) => json!({"type": "object", "properties": {}}),
        Some(schema @ Json::Object(_)) => schema.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                param(".function.parameters"),
                "must be a JSON Schema object",
            ));
        }
    };
    OutputConstraint::JsonSchema(parameters.clone())
        .validate()
        .map_err(|e| ApiError::invalid(param(".function.parameters"), e.to_string()))?;
    let mut definition = json!({"name": name});
    if let Some(description) = function.get("description") {
        definition["description"] = description.clone();
    }
    definition["parameters"] = parameters.clone();
    Ok(Tool {
        name: name.to_owned(),
        parameters,
        definition: json!({"type": "function", "function": definition}),
    })
}

/// What a Hermes reply is made of, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The text between `<tool_call>` and `</tool_call>`.
    Call(String),
    /// A `<tool_call>` the reply never closed, and what followed it.
    Unclosed(String),
}

/// Splits a streamed Hermes reply into text and calls as it arrives: text is released as soon
/// as it cannot be the start of `<tool_call>`, a call once it is closed.
#[derive(Debug, Default)]
pub struct HermesParser {
    pending: String,
    in_call: bool,
}

impl HermesParser {
    pub fn push(&mut self, text: &str) -> Vec<Piece> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            if self.in_call {
                let Some(end) = self.pending.find(CALL_CLOSE) else {
                    break;
                };
                out.push(Piece::Call(self.pending[..end].trim().to_owned()));
                self.pending.drain(..end + CALL_CLOSE.len());
                self.in_call = false;
            } else if let Some(start) = self.pending.find(CALL_OPEN) {
                if start > 0 {
                    out.push(Piece::Text(self.pending[..start].to_owned()));
                }
                self.pending.drain(..start + CALL_OPEN.len());
                self.in_call = true;
            } else {
                // Keep back a tail that may be the start of `<tool_call>`.
                let keep = (1..CALL_OPEN.len())
                    .rev()
                    .find(|&n| {
                        self.pending.len() >= n
                            && self.pending.is_char_boundary(self.pending.len() - n)
                            && CALL_OPEN.starts_with(&self.pending[self.pending.len() - n..])
                    })
                    .unwrap_or(0);
                let release = self.pending.len() - keep;
                if release > 0 {
                    out.push(Piece::Text(self.pending[..release].to_owned()));
                    self.pending.drain(..release);
                }
                break;
            }
        }
        out
    }

    /// What is left at the end of the reply.
    pub fn finish(&mut self) -> Option<Piece> {
        let rest = std::mem::take(&mut self.pending);
        if self.in_call {
            Some(Piece::Unclosed(rest))
        } else {
            (!rest.is_empty()).then_some(Piece::Text(rest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather_tools() -> Json {
        json!([
            {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time"}}
        ])
    }

    fn plan(choice: Json, hermes: bool) -> ToolPlan {
        let support = ToolSupport {
            hermes,
            ..ToolSupport::default()
        };
        ToolPlan::from_request(Some(&weather_tools()), Some(&choice), None, support)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn tool_choice_none_or_no_tools_means_plain_text() {
        let support = ToolSupport::default();
        assert!(
            ToolPlan::from_request(Some(&weather_tools()), Some(&json!("none")), None, support)
                .unwrap()
                .is_none()
        );
        assert!(
            ToolPlan::from_request(None, None, None, support)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn bad_tools_and_choices_name_the_parameter() {
        let support = ToolSupport::default();
        let err = |tools: Json, choice: Json| {
            let e = ToolPlan::from_request(Some(&tools), Some(&choice), None, support).unwrap_err();
            (e.body()["error"]["param"].clone(), e.to_string())
        };
        let (param, message) = err(
            json!([{"type": "function", "function": {"name": "a b"}}]),
            json!("auto"),
        );
        assert_eq!(param, "tools[0].function.name");
        assert!(message.contains("letters, digits"), "{message}");
        let (param, message) = err(
            json!([{"type": "function", "function": {"name": "f",
                "parameters": {"type": "object", "properties": {"x": {"type": "strnig"}}}}}]),
            json!("auto"),
        );
        assert_eq!(param, "tools[0].function.parameters");
        assert!(message.contains("at `/properties/x`"), "{message}");
        let (param, _) = err(
            weather_tools(),
            json!({"type": "function", "function": {"name": "nope"}}),
        );
        assert_eq!(param, "tool_choice.function.name");
        let (param, _) = err(weather_tools(), json!("sometimes"));
        assert_eq!(param, "tool_choice");
        let (param, _) = err(json!([]), json!("required"));
        assert_eq!(param, "tool_choice");
        let twice = json!([{"type": "function", "function": {"name": "f"}},
            {"type": "function", "function": {"name": "f"}}]);
        let (param, _) = err(twice, json!("auto"));
        assert_eq!(param, "tools[1].function.name");
    }

    #[test]
    fn generic_constraints_are_valid_and_name_only_the_callable_tools() {
        for choice in [json!("auto"), json!("required")] {
            plan(choice, false).constraint().validate().unwrap();
        }
        let named = plan(
            json!({"type": "function", "function": {"name": "get_time"}}),
            false,
        );
        let OutputConstraint::JsonSchema(schema) = named.constraint() else {
            panic!("generic tool calls are a JSON schema");
        };
        assert_eq!(
            schema["properties"]["tool_calls"]["items"]["properties"]["name"],
            json!({"const": "get_time"})
        );
    }

    #[test]
    fn hermes_constraints_compile() {
        for choice in [json!("auto"), json!("required")] {
            plan(choice, true).constraint().validate().unwrap();
        }
    }

    #[test]
    fn generic_replies_parse_into_calls_or_content() {
        let p = plan(json!("auto"), false);
        let reply = p
            .parse(
                r#"{"tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo"}},{"name":"get_time","arguments":{}}]}"#,
                "x",
            )
            .unwrap();
        assert_eq!(reply.content, None);
        let calls: Vec<(&str, &str)> = reply
            .calls
            .iter()
            .map(|c| (c.function.name.as_str(), c.function.arguments.as_str()))
            .collect();
        assert_eq!(
            calls,
            [("get_weather", r#"{"city":"Oslo"}"#), ("get_time", "{}")]
        );
        assert_ne!(reply.calls[0].id, reply.calls[1].id);
        assert!(reply.calls[0].id.starts_with("call_"));
        assert_eq!(
            p.parse(r#"{"content":"It is sunny."}"#, "x").unwrap(),
            Reply {
                content: Some("It is sunny.".to_owned()),
                calls: Vec::new()
            }
        );
        assert!(matches!(
            p.parse(r#"{"tool_calls":[{"name":"rm_rf","arguments":{}}]}"#, "x"),
            Err(ApiError::MalformedToolCall(_))
        ));
        assert!(matches!(
            p.parse(r#"{"tool_calls":[{"name":"get_time","#, "x"),
            Err(ApiError::MalformedToolCall(_))
        ));
    }

    #[test]
    fn hermes_replies_split_text_and_calls_as_they_stream() {
        let mut parser = HermesParser::default();
        let mut pieces = Vec::new();
        for chunk in [
            "Let me check.\n<tool",
            "_call>\n{\"name\": \"get_time\", ",
            "\"arguments\": {}}\n</tool_call>\n<tool_call>\n{}",
            "\n</tool_call>",
        ] {
            pieces.extend(parser.push(chunk));
        }
        pieces.extend(parser.finish());
        assert_eq!(
            pieces,
            [
                Piece::Text("Let me check.\n".to_owned()),
                Piece::Call("{\"name\": \"get_time\", \"arguments\": {}}".to_owned()),
                Piece::Text("\n".to_owned()),
                Piece::Call("{}".to_owned()),
            ]
        );
        let p = plan(json!("auto"), true);
        let reply = p
            .parse(
                "Checking.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>",
                "x",
            )
            .unwrap();
        assert_eq!(reply.content.as_deref(), Some("Checking."));
        assert_eq!(reply.calls[0].function.arguments, r#"{"city":"Oslo"}"#);
        assert!(matches!(
            p.parse("<tool_call>\n{\"name\": \"get_time\"", "x"),
            Err(ApiError::MalformedToolCall(_))
        ));
        let mut text_only = HermesParser::default();
        assert_eq!(text_only.push("a < b"), [Piece::Text("a < b".to_owned())]);
        assert_eq!(text_only.push(" <"), [Piece::Text(" ".to_owned())]);
        assert_eq!(text_only.finish(), Some(Piece::Text("<".to_owned())));
    }
}

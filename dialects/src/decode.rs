//! What a decode op asks of the decoder: how to sample each token and what the output must
//! match. The compiler writes these into `exec.decode` attributes, the OpenAI server builds them
//! from requests, and the engine carries them out.

use serde_json::{Value as Json, json};

/// How to pick each generated token. `temperature <= 0` means greedy (argmax, lowest id on ties).
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`; 1 keeps all.
    pub top_p: f32,
    pub seed: u64,
}

impl SamplingParams {
    #[inline]
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
        }
    }

    #[inline]
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

/// What an output must match.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputConstraint {
    /// Any JSON object (OpenAI's `response_format: {"type": "json_object"}`).
    JsonObject,
    /// A value valid against this JSON Schema.
    JsonSchema(Json),
    /// Text matching this regular expression (Rust `regex` syntax), whole.
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
    /// Text of this llguidance Lark grammar, which may inline JSON Schemas with `%json {...}`
    /// (tool calls in a model's own format are written this way).
    Lark(String),
}

impl OutputConstraint {
    /// The constraint as the plan stores it: `{"json_schema": ...}`, `{"regex": ...}`,
    /// `{"choice": [...]}` or `{"json_object": true}`.
    pub fn to_json(&self) -> Json {
        match self {
            OutputConstraint::JsonObject => json!({"json_object": true}),
            OutputConstraint::JsonSchema(schema) => json!({"json_schema": schema}),
            OutputConstraint::Regex(rx) => json!({"regex": rx}),
            OutputConstraint::Choice(choices) => json!({"choice": choices}),
            OutputConstraint::Lark(grammar) => json!({"lark": grammar}),
        }
    }

    /// Reads [`OutputConstraint::to_json`]'s form back.
    pub fn from_json(value: &Json) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected {{\"json_schema\": ...}}, {{\"regex\": \"...\"}}, {{\"choice\": [...]}} \
                 {{\"lark\": \"...\"}} or {{\"json_object\": true}}, found {value}"
            )
        };
        let map = value.as_object().filter(|m| m.len() == 1).ok_or_else(bad)?;
        let (key, inner) = map.iter().next().ok_or_else(bad)?;
        Ok(match key.as_str() {
            "json_object" => OutputConstraint::JsonObject,
            "json_schema" => OutputConstraint::JsonSchema(inner.clone()),
            "regex" => OutputConstraint::Regex(inner.as_str().ok_or_else(bad)?.to_owned()),
            "lark" => OutputConstraint::Lark(inner.as_str().ok_or_else(bad)?.to_owned()),
            "choice" => OutputConstraint::Choice(
                inner
                    .as_array()
                    .ok_or_else(bad)?
                    .iter()
                    .map(|c| c.as_str().map(str::to_owned).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(bad()),
        })
    }

    /// Whether the output is parsed as JSON.
    pub fn is_json(&self) -> bool {
        matches!(
            self,
            OutputConstraint::JsonObject | OutputConstraint::JsonSchema(_)
        )
    }
}

//! What a workflow declares besides its graph: the SLA, the models, the tools and the vector
//! indexes. The compiler writes these once, as serde values, into both the plan's workflow
//! attributes ([`crate::attr::workflow`]) and `manifest.json`; the runtime reads them back with
//! the same types, so a field cannot be written by one side and missed by the other. Lists keep
//! the workflow's order; each entry carries its name.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Time limit of a tool call when the workflow sets none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Tool output cap when the workflow sets none (1 MiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// Cost of a tool call when the workflow sets none.
pub const DEFAULT_COST: f64 = 1.0;

/// The latency target and optional budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    pub p95_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_1k: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A GGUF language model.
    Llm,
    /// A BERT-style embedding model directory (model.safetensors + tokenizer.json).
    Embedding,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub kind: ModelKind,
    /// As written in the workflow: relative to the workflow file's directory.
    pub path: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[default]
    Cosine,
    Dot,
    L2,
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    pub name: String,
    /// As written in the workflow: relative to the workflow file's directory.
    pub path: String,
    /// The embedding model that embedded the corpus.
    pub model: String,
    #[serde(default)]
    pub metric: Metric,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Http,
    Subprocess,
}

/// What a tool's output is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    Text,
    #[default]
    Json,
}

/// The JSON type of a tool argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ArgType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolArg {
    #[serde(rename = "type")]
    pub ty: ArgType,
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A tool: how to call it, its limits, and what to try when it fails.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    pub name: String,
    pub kind: ToolKind,
    /// `subprocess`: program and arguments; relative paths are relative to the workflow file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// `http`: the URL called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `http`: `GET` or `POST` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The declared arguments.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, ToolArg>,
    #[serde(default)]
    pub output: OutputFormat,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    #[serde(default = "default_cost")]
    pub cost: f64,
    /// Tools tried when this one fails, cheapest healthy first.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// `subprocess`: it may use the network; otherwise it runs in a network namespace of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// `subprocess`: files and directories it may read besides the system's programs and its
    /// command (relative to the workflow file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<String>,
    /// `subprocess`: files and directories it may write besides its working directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub writes: Vec<String>,
    /// `subprocess`: run confined (Landlock, a PID namespace of its own). Only an explicit
    /// `confine: false` in the workflow turns it off, for kernels or containers that lack those.
    #[serde(default = "confined", skip_serializing_if = "is_confined")]
    pub confine: bool,
}

fn confined() -> bool {
    true
}
fn is_confined(confine: &bool) -> bool {
    *confine
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_max_output_bytes() -> u64 {
    DEFAULT_MAX_OUTPUT_BYTES
}
fn default_cost() -> f64 {
    DEFAULT_COST
}

impl ToolSpec {
    /// A subprocess tool with the defaults of a workflow file.
    pub fn subprocess(name: &str, command: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            kind: ToolKind::Subprocess,
            command: command.iter().map(|s| s.to_string()).collect(),
            url: None,
            method: None,
            args: BTreeMap::new(),
            output: OutputFormat::Json,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            cost: DEFAULT_COST,
            fallbacks: Vec::new(),
            network: false,
            reads: Vec::new(),
            writes: Vec::new(),
            confine: true,
        }
    }

    /// An HTTP tool with the defaults of a workflow file.
    pub fn http(name: &str, url: &str) -> Self {
        Self {
            kind: ToolKind::Http,
            command: Vec::new(),
            url: Some(url.to_string()),
            ..Self::subprocess(name, &[])
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Everything a workflow declares besides its graph, in the workflow's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Declarations {
    pub sla: Sla,
    pub models: Vec<ModelSpec>,
    pub tools: Vec<ToolSpec>,
    pub indexes: Vec<IndexSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Declarations {
    pub fn model(&self, name: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn index(&self, name: &str) -> Option<&IndexSpec> {
        self.indexes.iter().find(|i| i.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_round_trips_with_every_field() {
        let mut tool = ToolSpec::subprocess("calc", &["python3", "tools/calc.py"]);
        tool.network = true;
        tool.fallbacks = vec!["calc2".into()];
        tool.args.insert(
            "expr".into(),
            ToolArg {
                ty: ArgType::String,
                required: true,
                description: None,
            },
        );
        let json = serde_json::to_value(&tool).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "calc", "kind": "subprocess", "command": ["python3", "tools/calc.py"],
                "args": {"expr": {"type": "string", "required": true}}, "output": "json",
                "timeout_ms": 10000, "max_output_bytes": 1048576, "cost": 1.0,
                "fallbacks": ["calc2"], "network": true
            })
        );
        assert_eq!(serde_json::from_value::<ToolSpec>(json).unwrap(), tool);
    }

    #[test]
    fn a_misspelled_field_is_refused_by_name() {
        let err = serde_json::from_value::<ToolSpec>(serde_json::json!({
            "name": "t", "kind": "http", "url": "http://x", "timeout": 5
        }))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("unknown field `timeout`"), "{err}");
    }
}

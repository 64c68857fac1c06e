//! The workflow language's syntax tree, as decoded from YAML (see docs/workflow.md).
//!
//! The JSON Schema for editors is generated from these types (`agentc schema`), so the `schemars`
//! attributes describe the YAML a user writes; spans are kept for diagnostics and skipped there.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::condition::Condition;
use super::template::Template;
use crate::diagnostics::{Pos, Span};

/// The declaration enums are the plan contract's own ([`agentc_plan::decl`]).
pub use agentc_plan::decl::{ArgType, Metric, ModelKind, OutputFormat, ToolKind};

/// A workflow file.
#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Workflow {
    /// Workflow name: letters, digits and `_`, starting with a letter.
    pub name: String,
    pub description: Option<String>,
    /// Typed inputs, by name.
    #[schemars(with = "Option<BTreeMap<String, InputDecl>>")]
    pub inputs: Vec<InputDecl>,
    /// Models the nodes use, by name.
    #[schemars(with = "Option<BTreeMap<String, ModelDecl>>")]
    pub models: Vec<ModelDecl>,
    /// Tools the nodes call, by name.
    #[schemars(with = "Option<BTreeMap<String, ToolDecl>>")]
    pub tools: Vec<ToolDecl>,
    /// Vector indexes the `retrieve` nodes query, by name.
    #[schemars(with = "Option<BTreeMap<String, IndexDecl>>")]
    pub indexes: Vec<IndexDecl>,
    pub sla: Sla,
    /// The graph's nodes; edges are the `${...}` references between them.
    pub nodes: Vec<Node>,
    /// Named results: each a template, usually one reference such as `${answer}`.
    #[schemars(with = "BTreeMap<String, TemplateField>")]
    pub outputs: Vec<OutputDecl>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "snake_case")]
pub enum InputType {
    Text,
    Json,
    List,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct InputDecl {
    #[schemars(skip)]
    pub name: String,
    #[schemars(rename = "type")]
    pub ty: InputType,
    /// Largest expected size in tokens; the cost model sizes prompts with it.
    pub max_len: Option<u32>,
    pub description: Option<String>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ModelDecl {
    #[schemars(skip)]
    pub name: String,
    pub kind: ModelKind,
    /// Path to the model file or directory, relative to the workflow file.
    pub path: String,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ToolArg {
    #[schemars(skip)]
    pub name: String,
    #[schemars(rename = "type")]
    pub ty: ArgType,
    /// Defaults to true.
    #[schemars(with = "Option<bool>")]
    pub required: bool,
    pub description: Option<String>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ToolDecl {
    #[schemars(skip)]
    pub name: String,
    pub kind: ToolKind,
    /// `http`: the URL called.
    pub url: Option<String>,
    /// `http`: GET or POST (default POST, arguments as a JSON body).
    pub method: Option<String>,
    /// `subprocess`: program and arguments, never a shell string; arguments arrive as JSON on stdin.
    pub command: Option<Vec<String>>,
    #[schemars(with = "Option<BTreeMap<String, ToolArg>>")]
    pub args: Vec<ToolArg>,
    /// What the tool returns (default json).
    #[schemars(with = "Option<OutputFormat>")]
    pub output: OutputFormat,
    /// Time limit per call in milliseconds (default 10000).
    #[schemars(with = "Option<u64>")]
    pub timeout_ms: u64,
    /// Largest output accepted in bytes (default 1 MiB).
    #[schemars(with = "Option<u64>")]
    pub max_output_bytes: u64,
    /// Relative cost of one call, for routing among fallbacks (default 1).
    #[schemars(with = "Option<f64>")]
    pub cost: f64,
    /// Tools tried, cheapest healthy first, when this one fails.
    #[schemars(with = "Option<Vec<String>>")]
    pub fallbacks: Vec<String>,
    /// A subprocess tool may use the network (default false: it runs in a network namespace
    /// of its own, with no interfaces up).
    #[schemars(with = "Option<bool>")]
    pub network: bool,
    /// A subprocess tool's files and directories it may read, relative to the workflow file
    /// (besides the system's programs and its command; by default it reads nothing else).
    #[schemars(with = "Option<Vec<String>>")]
    pub reads: Vec<String>,
    /// A subprocess tool's files and directories it may write, relative to the workflow file
    /// (besides its own temporary working directory).
    #[schemars(with = "Option<Vec<String>>")]
    pub writes: Vec<String>,
    /// A subprocess tool runs confined (Landlock, a PID namespace of its own; default true).
    /// `false` runs it unconfined, for kernels or containers without those features.
    #[schemars(with = "Option<bool>")]
    pub confine: bool,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct IndexDecl {
    #[schemars(skip)]
    pub name: String,
    /// Path of the index built by `agentc index build`, relative to the workflow file.
    pub path: String,
    /// The embedding model that embedded the corpus; queries use it too.
    pub model: String,
    /// Default cosine.
    #[schemars(with = "Option<Metric>")]
    pub metric: Metric,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Sla {
    /// End-to-end latency target at the 95th percentile, in milliseconds.
    pub p95_ms: f64,
    /// Optional budget in US dollars per 1,000 runs.
    pub usd_per_1k: Option<f64>,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct OutputDecl {
    pub name: String,
    pub value: TemplateField,
    pub span: Span,
}

/// A string with `${...}` references, kept with the span of its YAML scalar.
#[derive(Clone, Debug, Default)]
pub struct TemplateField {
    pub template: Template,
    pub span: Span,
}

impl JsonSchema for TemplateField {
    fn schema_name() -> Cow<'static, str> {
        "Template".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "Text with references: ${inputs.name}, ${node}, ${node.field}; $${ for a literal ${"
        })
    }
}

/// A condition (`${x} == "y"`), kept with its span.
#[derive(Clone, Debug)]
pub struct ConditionField {
    pub condition: Condition,
    pub span: Span,
}

impl JsonSchema for ConditionField {
    fn schema_name() -> Cow<'static, str> {
        "Condition".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "${ref}, not ${ref}, or A op B with op in == != < <= > >= contains"
        })
    }
}

/// A node of the graph.
#[derive(Clone, Debug, JsonSchema)]
pub struct Node {
    /// Unique in the workflow: letters, digits and `_`, starting with a letter.
    pub id: String,
    #[schemars(flatten)]
    pub kind: NodeKind,
    #[schemars(skip)]
    pub span: Span,
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    Llm(LlmNode),
    Embed(EmbedNode),
    Retrieve(RetrieveNode),
    Tool(ToolNode),
    Render(RenderNode),
    Json(JsonNode),
    Map(MapNode),
    Branch(BranchNode),
    Loop(LoopNode),
}

impl NodeKind {
    pub fn name(&self) -> &'static str {
        match self {
            NodeKind::Llm(_) => "llm",
            NodeKind::Embed(_) => "embed",
            NodeKind::Retrieve(_) => "retrieve",
            NodeKind::Tool(_) => "tool",
            NodeKind::Render(_) => "render",
            NodeKind::Json(_) => "json",
            NodeKind::Map(_) => "map",
            NodeKind::Branch(_) => "branch",
            NodeKind::Loop(_) => "loop",
        }
    }
}

#[derive(Clone, Debug, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Message {
    /// system, user or assistant.
    pub role: String,
    pub content: TemplateField,
}

/// An LLM call: `prompt` (raw text) or `messages` (rendered with the model's chat template).
#[derive(Clone, Debug, JsonSchema)]
pub struct LlmNode {
    pub model: String,
    pub prompt: Option<TemplateField>,
    pub messages: Option<Vec<Message>>,
    /// Default 256.
    #[schemars(with = "Option<u32>")]
    pub max_tokens: u32,
    /// Default 0 (greedy).
    #[schemars(with = "Option<f64>")]
    pub temperature: f64,
    /// Default 1.
    #[schemars(with = "Option<f64>")]
    pub top_p: f64,
    /// Default 0 (off).
    #[schemars(with = "Option<u32>")]
    pub top_k: u32,
    /// Default 0.
    #[schemars(with = "Option<u64>")]
    pub seed: u64,
    /// Strings that end generation.
    #[schemars(with = "Option<Vec<String>>")]
    pub stop: Vec<String>,
    /// `json` parses the completion as JSON (default text).
    #[schemars(with = "Option<OutputFormat>")]
    pub output: OutputFormat,
    /// What decoding is constrained to: `schema`, `regex` or `choice` (one of them).
    #[schemars(flatten, with = "LlmConstraintKeys")]
    pub constraint: Option<LlmConstraint>,
}

/// The keys that constrain an llm node's output (for the workflow file's JSON Schema).
#[derive(JsonSchema)]
#[allow(dead_code)]
struct LlmConstraintKeys {
    /// A JSON Schema the output must match (implies `output: json`): inline, or the path of a
    /// `.json`/`.yaml` file relative to the workflow. With `output: json` and no schema, one is
    /// inferred from the fields later nodes read.
    schema: Option<serde_json::Value>,
    /// A regular expression the whole text output must match.
    regex: Option<String>,
    /// The text output is exactly one of these strings.
    choice: Option<Vec<String>>,
}

/// An llm node's output constraint.
#[derive(Clone, Debug, PartialEq)]
pub enum LlmConstraint {
    /// `inferred`: built by the compiler from the fields later nodes read.
    Schema {
        schema: serde_json::Value,
        inferred: bool,
        at: Pos,
    },
    Regex(String),
    Choice(Vec<String>),
}

#[derive(Clone, Debug, JsonSchema)]
pub struct EmbedNode {
    pub model: String,
    pub input: TemplateField,
}

#[derive(Clone, Debug, JsonSchema)]
pub struct RetrieveNode {
    pub index: String,
    /// Text to embed with the index's model, or one `${ref}` to a vec.
    pub query: TemplateField,
    /// Default 4.
    #[schemars(with = "Option<u32>")]
    pub k: u32,
}

/// A tool argument: a template, or a literal number, boolean, list or mapping.
#[derive(Clone, Debug)]
pub enum ArgValue {
    Template(TemplateField),
    Literal(serde_json::Value, Span),
}

impl JsonSchema for ArgValue {
    fn schema_name() -> Cow<'static, str> {
        "ArgValue".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"description": "A template string, or a literal value"})
    }
}

#[derive(Clone, Debug, JsonSchema)]
pub struct ToolNode {
    pub tool: String,
    #[schemars(with = "Option<BTreeMap<String, ArgValue>>")]
    pub args: Vec<(String, ArgValue)>,
}

#[derive(Clone, Debug, JsonSchema)]
pub struct RenderNode {
    pub template: TemplateField,
}

/// Extract a field (`from` + `path`) or build an object (`fields`).
#[derive(Clone, Debug, JsonSchema)]
pub struct JsonNode {
    pub from: Option<TemplateField>,
    /// Dot-separated field path into `from`, e.g. `answer.0.text`.
    pub path: Option<String>,
    #[schemars(with = "Option<BTreeMap<String, TemplateField>>")]
    pub fields: Option<Vec<(String, TemplateField)>>,
}

/// Runs `nodes` once per element of `over`, the element bound to `as`.
#[derive(Clone, Debug, JsonSchema)]
pub struct MapNode {
    pub over: TemplateField,
    /// Name of the element in the body (default `item`).
    #[schemars(rename = "as")]
    #[schemars(with = "Option<String>")]
    pub item: String,
    #[schemars(with = "Option<Vec<Node>>")]
    pub nodes: Vec<Node>,
    pub output: TemplateField,
    /// Most elements in flight at once (default 0: no limit).
    #[schemars(with = "Option<u32>")]
    pub max_concurrency: u32,
}

#[derive(Clone, Debug, JsonSchema)]
pub struct BranchCase {
    pub when: ConditionField,
    #[schemars(with = "Option<Vec<Node>>")]
    pub nodes: Vec<Node>,
    pub output: TemplateField,
}

#[derive(Clone, Debug, JsonSchema)]
pub struct BranchArm {
    #[schemars(with = "Option<Vec<Node>>")]
    pub nodes: Vec<Node>,
    pub output: TemplateField,
}

/// The first case whose `when` holds runs; else `else`.
#[derive(Clone, Debug, JsonSchema)]
pub struct BranchNode {
    pub cases: Vec<BranchCase>,
    #[schemars(rename = "else")]
    pub otherwise: BranchArm,
}

/// Runs `nodes` up to `max_iters` times, carrying `carry` values from one iteration to the next.
#[derive(Clone, Debug, JsonSchema)]
pub struct LoopNode {
    pub max_iters: u32,
    /// Carried values and their initial templates.
    #[schemars(with = "Option<BTreeMap<String, TemplateField>>")]
    pub carry: Vec<(String, TemplateField)>,
    #[schemars(with = "Option<Vec<Node>>")]
    pub nodes: Vec<Node>,
    /// The carried values' next templates, evaluated after each iteration.
    #[schemars(with = "Option<BTreeMap<String, TemplateField>>")]
    pub next: Vec<(String, TemplateField)>,
    /// Stops after an iteration where this holds.
    pub until: Option<ConditionField>,
    pub output: TemplateField,
}

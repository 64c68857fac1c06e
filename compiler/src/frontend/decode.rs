//! Decodes the spanned YAML tree into the syntax tree, collecting every error.

pub mod nodes;

use std::collections::HashMap;

use super::ast::*;
use super::condition;
use super::source_map::SourceMap;
use super::template::{Template, TemplateError};
use super::yaml::{YKind, YNode};
use crate::diagnostics::{Diagnostic, Pos, Span, did_you_mean, name_hint};

/// Keys accepted at each level; the schema test checks the JSON Schema lists the same ones.
pub const WORKFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "inputs",
    "models",
    "tools",
    "indexes",
    "sla",
    "nodes",
    "outputs",
];
pub const INPUT_KEYS: &[&str] = &["type", "max_len", "description"];
pub const MODEL_KEYS: &[&str] = &["kind", "path"];
pub const TOOL_KEYS: &[&str] = &[
    "kind",
    "url",
    "method",
    "command",
    "args",
    "output",
    "timeout_ms",
    "max_output_bytes",
    "cost",
    "fallbacks",
    "network",
    "reads",
    "writes",
    "confine",
];
pub const TOOL_ARG_KEYS: &[&str] = &["type", "required", "description"];
pub const INDEX_KEYS: &[&str] = &["path", "model", "metric"];
pub const SLA_KEYS: &[&str] = &["p95_ms", "usd_per_1k"];

/// Largest `max_tokens` of one call.
pub const MAX_TOKENS_LIMIT: u64 = 32_768;
/// Largest `max_iters` of a loop: bounded loops only.
pub const MAX_LOOP_ITERS: u64 = 100;
/// Largest `k` of a retrieve node.
pub const MAX_K: u64 = 1_000;
/// Stop collecting after this many errors; the rest are usually consequences.
pub const MAX_DIAGNOSTICS: usize = 200;

pub struct Decoder<'s> {
    pub diags: Vec<Diagnostic>,
    pub src: &'s SourceMap<'s>,
    /// Ids of nodes that failed to decode: references to them are not reported again.
    pub broken_ids: std::collections::HashSet<String>,
    /// The workflow file's folder: `schema:` file paths are relative to it.
    pub base_dir: std::path::PathBuf,
}

/// A mapping being decoded: tracks which keys were read so unknown ones can be reported.
pub struct Fields<'y> {
    entries: Vec<(&'y str, &'y YNode, &'y YNode)>,
    used: Vec<bool>,
    pub pos: Pos,
    pub span: Span,
}

impl<'y> Fields<'y> {
    pub fn get(&mut self, key: &str) -> Option<&'y YNode> {
        let i = self.entries.iter().position(|(k, _, _)| *k == key)?;
        self.used[i] = true;
        Some(self.entries[i].2)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| *k == key)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&'y str, &'y YNode, &'y YNode)> + '_ {
        self.entries.iter().copied()
    }

    /// Reports every key that was not read, with the closest allowed key as a hint.
    pub fn finish(self, d: &mut Decoder, what: &str, allowed: &[&str]) {
        for (i, (key, key_node, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let diag =
                    Diagnostic::new(key_node.pos(), format!("unknown key `{key}` in {what}"));
                d.push(diag.with_hint(name_hint(key, allowed, did_you_mean, "allowed keys: ")));
            }
        }
    }
}

impl<'s> Decoder<'s> {
    pub fn push(&mut self, d: Diagnostic) {
        if self.diags.len() < MAX_DIAGNOSTICS {
            self.diags.push(d);
        }
    }

    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(Diagnostic::new(pos, message));
    }

    pub fn err_hint(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Diagnostic::new(pos, message).with_hint(hint));
    }

    pub fn map<'y>(&mut self, node: &'y YNode, what: &str) -> Option<Fields<'y>> {
        let YKind::Map(entries) = &node.kind else {
            self.err(
                node.pos(),
                format!("{what} must be a mapping, found {}", node.describe()),
            );
            return None;
        };
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let YKind::Scalar { value: key, .. } = &k.kind else {
                self.err(
                    k.pos(),
                    format!("keys in {what} must be strings, found {}", k.describe()),
                );
                continue;
            };
            if let Some(first) = seen.get(key.as_str()) {
                self.err(
                    k.pos(),
                    format!(
                        "duplicate key `{key}` in {what} (first at {}:{})",
                        first.line, first.col
                    ),
                );
                continue;
            }
            seen.insert(key, k.pos());
            out.push((key.as_str(), k, v));
        }
        let used = vec![false; out.len()];
        Some(Fields {
            entries: out,
            used,
            pos: node.pos(),
            span: node.span,
        })
    }

    pub fn list<'y>(&mut self, node: &'y YNode, what: &str) -> Option<&'y [YNode]> {
        match &node.kind {
            YKind::Seq(items) => Some(items),
            _ => {
                self.err(
                    node.pos(),
                    format!("{what} must be a list, found {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn string(&mut self, node: &YNode, what: &str) -> Option<String> {
        match &node.kind {
            YKind::Scalar { value, .. } if !node.is_null() => Some(value.clone()),
            _ => {
                let found = if node.is_null() {
                    "nothing"
                } else {
                    node.describe()
                };
                self.err(
                    node.pos(),
                    format!("{what} must be a string, found {found}"),
                );
                None
            }
        }
    }

    pub fn required<'y>(&mut self, f: &mut Fields<'y>, key: &str, what: &str) -> Option<&'y YNode> {
        let v = f.get(key);
        if v.is_none() {
            self.err(f.pos, format!("{what} is missing `{key}`"));
        }
        v
    }

    pub fn ident(&mut self, node: &YNode, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if is_identifier(&s) {
            Some(s)
        } else {
            self.err_hint(
                node.pos(),
                format!("{what} `{s}` is not a valid name"),
                "use letters, digits and `_`, starting with a letter",
            );
            None
        }
    }

    pub fn uint(&mut self, node: &YNode, what: &str, min: u64, max: u64) -> Option<u64> {
        let value = match &node.kind {
            YKind::Scalar { value, plain: true } => value.replace('_', "").parse::<u64>().ok(),
            _ => None,
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(v) => {
                self.err(
                    node.pos(),
                    format!("{what} must be between {min} and {max}, found {v}"),
                );
                None
            }
            None => {
                self.err(
                    node.pos(),
                    format!("{what} must be a whole number, found {}", show(node)),
                );
                None
            }
        }
    }

    /// A float in `[min, max]`; `min_exclusive` makes the lower bound strict.
    pub fn float(
        &mut self,
        node: &YNode,
        what: &str,
        min: f64,
        max: f64,
        min_exclusive: bool,
    ) -> Option<f64> {
        let value = match &node.kind {
            YKind::Scalar { value, plain: true } => {
                value.parse::<f64>().ok().filter(|v| v.is_finite())
            }
            _ => None,
        };
        match value {
            Some(v) if (v > min || (!min_exclusive && v == min)) && v <= max => Some(v),
            Some(v) => {
                let low = if min_exclusive {
                    format!("greater than {min}")
                } else {
                    format!("at least {min}")
                };
                let range = if max.is_finite() {
                    format!("{low} and at most {max}")
                } else {
                    low
                };
                self.err(node.pos(), format!("{what} must be {range}, found {v}"));
                None
            }
            None => {
                self.err(
                    node.pos(),
                    format!("{what} must be a number, found {}", show(node)),
                );
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &YNode, what: &str) -> Option<bool> {
        match &node.kind {
            YKind::Scalar { value, plain: true } if value == "true" => Some(true),
            YKind::Scalar { value, plain: true } if value == "false" => Some(false),
            _ => {
                self.err(
                    node.pos(),
                    format!("{what} must be true or false, found {}", show(node)),
                );
                None
            }
        }
    }

    pub fn choice(
        &mut self,
        node: &YNode,
        what: &str,
        allowed: &[&'static str],
    ) -> Option<&'static str> {
        let s = self.string(node, what)?;
        if let Some(found) = allowed.iter().find(|a| **a == s) {
            return Some(found);
        }
        let hint = name_hint(&s, allowed, did_you_mean, "one of: ");
        self.err_hint(
            node.pos(),
            format!("{what} `{s}` is not one of {}", allowed.join(", ")),
            hint,
        );
        None
    }

    pub fn template(&mut self, node: &YNode, what: &str) -> Option<TemplateField> {
        let text = self.string(node, what)?;
        match Template::parse(&text) {
            Ok(template) => Some(TemplateField {
                template,
                span: node.span,
            }),
            Err(e) => {
                self.template_error(node.span, &text, &e);
                None
            }
        }
    }

    pub fn condition(&mut self, node: &YNode, what: &str) -> Option<ConditionField> {
        let text = self.string(node, what)?;
        match condition::parse(&text) {
            Ok(condition) => Some(ConditionField {
                condition,
                span: node.span,
            }),
            Err(e) => {
                self.template_error(node.span, &text, &e);
                None
            }
        }
    }

    fn template_error(&mut self, span: Span, text: &str, e: &TemplateError) {
        let pos = self.src.locate_in_scalar(span, text, e.offset);
        self.err_hint(pos, e.message.clone(), e.hint.clone());
    }

    /// A mapping of names to items decoded by `item`, keeping order and checking names.
    pub fn named<'y, T>(
        &mut self,
        node: &'y YNode,
        what: &str,
        mut item: impl FnMut(&mut Self, String, &'y YNode, &'y YNode) -> Option<T>,
    ) -> Vec<T> {
        let mut out = Vec::new();
        if node.is_null() {
            return out;
        }
        let Some(fields) = self.map(node, what) else {
            return out;
        };
        for (name, key, value) in fields.entries() {
            if !is_identifier(name) {
                self.err_hint(
                    key.pos(),
                    format!("`{name}` in {what} is not a valid name"),
                    "use letters, digits and `_`, starting with a letter",
                );
                continue;
            }
            if let Some(v) = item(self, name.to_string(), key, value) {
                out.push(v);
            }
        }
        out
    }
}

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn show(node: &YNode) -> String {
    match &node.kind {
        YKind::Scalar { value, .. } if node.is_null() && value.is_empty() => "nothing".into(),
        YKind::Scalar { value, .. } => {
            let short: String = value.chars().take(40).collect();
            format!("`{short}`")
        }
        _ => node.describe().into(),
    }
}

/// Decodes a whole workflow; `None` when the root is unusable (errors are in `d`).
pub fn workflow(d: &mut Decoder, root: &YNode) -> Option<Workflow> {
    let mut f = d.map(root, "the workflow")?;
    let name = d
        .required(&mut f, "name", "the workflow")
        .and_then(|n| d.ident(n, "workflow name"));
    let description = f
        .get("description")
        .and_then(|n| d.string(n, "description"));
    let inputs = f
        .get("inputs")
        .map(|n| d.named(n, "inputs", input))
        .unwrap_or_default();
    let models = f
        .get("models")
        .map(|n| d.named(n, "models", model))
        .unwrap_or_default();
    let tools = f
        .get("tools")
        .map(|n| d.named(n, "tools", tool))
        .unwrap_or_default();
    let indexes = f
        .get("indexes")
        .map(|n| d.named(n, "indexes", index))
        .unwrap_or_default();
    let sla = match f.get("sla") {
        Some(n) => sla(d, n),
        None => {
            d.err_hint(
                f.pos,
                "the workflow has no `sla`",
                "add `sla: {p95_ms: 5000}` with the latency the workflow must meet",
            );
            None
        }
    };
    let nodes = match d.required(&mut f, "nodes", "the workflow") {
        Some(n) => nodes::node_list(d, n, "nodes", true),
        None => Vec::new(),
    };
    let outputs = match d.required(&mut f, "outputs", "the workflow") {
        Some(n) => d.named(n, "outputs", |d, name, key, value| {
            let value = d.template(value, &format!("output `{name}`"))?;
            Some(OutputDecl {
                name,
                value,
                span: key.span,
            })
        }),
        None => Vec::new(),
    };
    f.finish(d, "the workflow", WORKFLOW_KEYS);
    // Errors in `name` or `sla` are reported; decoding goes on with placeholders so the rest of
    // the file is checked too (the parse fails on the reported errors).
    Some(Workflow {
        name: name.unwrap_or_default(),
        description,
        inputs,
        models,
        tools,
        indexes,
        sla: sla.unwrap_or(Sla {
            p95_ms: f64::NAN,
            usd_per_1k: None,
            span: root.span,
        }),
        nodes,
        outputs,
        span: root.span,
    })
}

fn input(d: &mut Decoder, name: String, key: &YNode, value: &YNode) -> Option<InputDecl> {
    let what = format!("input `{name}`");
    let mut f = d.map(value, &what)?;
    let ty = d
        .required(&mut f, "type", &what)
        .and_then(|n| d.choice(n, &format!("type of {what}"), &["text", "json", "list"]));
    let max_len = f
        .get("max_len")
        .and_then(|n| d.uint(n, &format!("max_len of {what}"), 1, 1 << 20));
    let description = f
        .get("description")
        .and_then(|n| d.string(n, "description"));
    f.finish(d, &what, INPUT_KEYS);
    Some(InputDecl {
        name,
        ty: match ty? {
            "text" => InputType::Text,
            "json" => InputType::Json,
            _ => InputType::List,
        },
        max_len: max_len.map(|v| v as u32),
        description,
        span: key.span,
    })
}

fn model(d: &mut Decoder, name: String, key: &YNode, value: &YNode) -> Option<ModelDecl> {
    let what = format!("model `{name}`");
    let mut f = d.map(value, &what)?;
    let kind = d
        .required(&mut f, "kind", &what)
        .and_then(|n| d.choice(n, &format!("kind of {what}"), &["llm", "embedding"]));
    let path = d
        .required(&mut f, "path", &what)
        .and_then(|n| d.string(n, &format!("path of {what}")));
    f.finish(d, &what, MODEL_KEYS);
    Some(ModelDecl {
        name,
        kind: if kind? == "llm" {
            ModelKind::Llm
        } else {
            ModelKind::Embedding
        },
        path: path?,
        span: key.span,
    })
}

fn tool(d: &mut Decoder, name: String, key: &YNode, value: &YNode) -> Option<ToolDecl> {
    let what = format!("tool `{name}`");
    let mut f = d.map(value, &what)?;
    let kind = d
        .required(&mut f, "kind", &what)
        .and_then(|n| d.choice(n, &format!("kind of {what}"), &["http", "subprocess"]));
    let url = f
        .get("url")
        .and_then(|n| d.string(n, &format!("url of {what}")));
    let method = f
        .get("method")
        .and_then(|n| d.choice(n, &format!("method of {what}"), &["GET", "POST"]))
        .map(str::to_string);
    let command = f.get("command").and_then(|n| {
        let items = d.list(n, &format!("command of {what}"))?;
        let parts: Vec<String> = items
            .iter()
            .filter_map(|i| d.string(i, "a command part"))
            .collect();
        (parts.len() == items.len()).then_some(parts)
    });
    let args = f
        .get("args")
        .map(|n| d.named(n, &format!("args of {what}"), tool_arg))
        .unwrap_or_default();
    let output = f
        .get("output")
        .and_then(|n| d.choice(n, "output", &["json", "text"]));
    let timeout_ms = f
        .get("timeout_ms")
        .and_then(|n| d.uint(n, &format!("timeout_ms of {what}"), 1, 3_600_000));
    let max_output_bytes = f
        .get("max_output_bytes")
        .and_then(|n| d.uint(n, &format!("max_output_bytes of {what}"), 1, 1 << 30));
    let cost = f
        .get("cost")
        .and_then(|n| d.float(n, &format!("cost of {what}"), 0.0, f64::INFINITY, false));
    let fallbacks = f
        .get("fallbacks")
        .and_then(|n| d.list(n, &format!("fallbacks of {what}")))
        .map(|items| {
            items
                .iter()
                .filter_map(|i| d.string(i, "a fallback"))
                .collect()
        })
        .unwrap_or_default();
    let network = f
        .get("network")
        .and_then(|n| d.boolean(n, &format!("network of {what}")));
    let mut paths = |key: &str| -> Vec<String> {
        f.get(key)
            .and_then(|n| d.list(n, &format!("{key} of {what}")))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| d.string(i, &format!("a path in {key} of {what}")))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (reads, writes) = (paths("reads"), paths("writes"));
    let confine = f
        .get("confine")
        .and_then(|n| d.boolean(n, &format!("confine of {what}")));
    let kind = match kind? {
        "http" => {
            for key in ["network", "reads", "writes", "confine"] {
                if f.has(key) {
                    d.err(
                        f.pos,
                        format!("{what} is an http tool; `{key}` is for subprocess tools"),
                    );
                }
            }
            if url.is_none() && !f.has("url") {
                d.err(
                    f.pos,
                    format!("{what} is missing `url` (http tools need one)"),
                );
            }
            if command.is_some() {
                d.err(
                    f.pos,
                    format!("{what} is an http tool; `command` is for subprocess tools"),
                );
            }
            ToolKind::Http
        }
        _ => {
            if command.is_none() && !f.has("command") {
                d.err_hint(
                    f.pos,
                    format!("{what} is missing `command` (subprocess tools need one)"),
                    "write the program and its arguments as a list, e.g. `command: [python3, tools/calc.py]`",
                );
            }
            if matches!(&command, Some(c) if c.is_empty()) {
                d.err(f.pos, format!("command of {what} is empty"));
            }
            if url.is_some() {
                d.err(
                    f.pos,
                    format!("{what} is a subprocess tool; `url` is for http tools"),
                );
            }
            ToolKind::Subprocess
        }
    };
    f.finish(d, &what, TOOL_KEYS);
    Some(ToolDecl {
        name,
        kind,
        url,
        method,
        command,
        args,
        output: if output == Some("text") {
            OutputFormat::Text
        } else {
            OutputFormat::Json
        },
        timeout_ms: timeout_ms.unwrap_or(10_000),
        max_output_bytes: max_output_bytes.unwrap_or(1 << 20),
        cost: cost.unwrap_or(1.0),
        fallbacks,
        network: network.unwrap_or(false),
        reads,
        writes,
        confine: confine.unwrap_or(true),
        span: key.span,
    })
}

fn tool_arg(d: &mut Decoder, name: String, key: &YNode, value: &YNode) -> Option<ToolArg> {
    let what = format!("argument `{name}`");
    let mut f = d.map(value, &what)?;
    let ty = d.required(&mut f, "type", &what).and_then(|n| {
        d.choice(
            n,
            &format!("type of {what}"),
            &["string", "number", "integer", "boolean", "object", "array"],
        )
    });
    let required = f
        .get("required")
        .and_then(|n| d.boolean(n, "required"))
        .unwrap_or(true);
    let description = f
        .get("description")
        .and_then(|n| d.string(n, "description"));
    f.finish(d, &what, TOOL_ARG_KEYS);
    Some(ToolArg {
        name,
        ty: match ty? {
            "string" => ArgType::String,
            "number" => ArgType::Number,
            "integer" => ArgType::Integer,
            "boolean" => ArgType::Boolean,
            "object" => ArgType::Object,
            _ => ArgType::Array,
        },
        required,
        description,
        span: key.span,
    })
}

fn index(d: &mut Decoder, name: String, key: &YNode, value: &YNode) -> Option<IndexDecl> {
    let what = format!("index `{name}`");
    let mut f = d.map(value, &what)?;
    let path = d
        .required(&mut f, "path", &what)
        .and_then(|n| d.string(n, &format!("path of {what}")));
    let model = d
        .required(&mut f, "model", &what)
        .and_then(|n| d.string(n, &format!("model of {what}")));
    let metric = f
        .get("metric")
        .and_then(|n| d.choice(n, "metric", &["cosine", "dot", "l2"]));
    f.finish(d, &what, INDEX_KEYS);
    Some(IndexDecl {
        name,
        path: path?,
        model: model?,
        metric: match metric {
            Some("dot") => Metric::Dot,
            Some("l2") => Metric::L2,
            _ => Metric::Cosine,
        },
        span: key.span,
    })
}

fn sla(d: &mut Decoder, node: &YNode) -> Option<Sla> {
    let mut f = d.map(node, "sla")?;
    let p95 = match f.get("p95_ms") {
        Some(n) => d.float(n, "sla.p95_ms", 0.0, f64::INFINITY, true),
        None => {
            d.err_hint(
                f.pos,
                "sla is missing `p95_ms`",
                "add the latency target, e.g. `p95_ms: 5000`",
            );
            None
        }
    };
    let usd = f
        .get("usd_per_1k")
        .and_then(|n| d.float(n, "sla.usd_per_1k", 0.0, f64::INFINITY, true));
    f.finish(d, "sla", SLA_KEYS);
    Some(Sla {
        p95_ms: p95?,
        usd_per_1k: usd,
        span: node.span,
    })
}

//! Attribute helpers for the emitter, and the workflow-level attributes of the main function
//! (SLA, models, tools, indexes) that later stages and the runtime read.

use melior::Context;
use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DenseI32ArrayAttribute, DictionaryAttribute,
    FlatSymbolRefAttribute, FloatAttribute, IntegerAttribute, StringAttribute,
};
use melior::ir::r#type::IntegerType;
use melior::ir::{Attribute, Identifier, Type};

use crate::frontend::ast::*;
use crate::graph::WorkflowGraph;

#[derive(Clone, Copy)]
pub struct Attrs<'c> {
    pub context: &'c Context,
}

impl<'c> Attrs<'c> {
    pub fn named(&self, name: &str, value: Attribute<'c>) -> (Identifier<'c>, Attribute<'c>) {
        (Identifier::new(self.context, name), value)
    }

    pub fn str(&self, s: &str) -> Attribute<'c> {
        StringAttribute::new(self.context, s).into()
    }

    pub fn int(&self, v: i64) -> Attribute<'c> {
        IntegerAttribute::new(IntegerType::new(self.context, 64).into(), v).into()
    }

    pub fn float(&self, v: f64) -> Attribute<'c> {
        FloatAttribute::new(self.context, Type::float64(self.context), v).into()
    }

    pub fn bool(&self, v: bool) -> Attribute<'c> {
        BoolAttribute::new(self.context, v).into()
    }

    pub fn array(&self, items: &[Attribute<'c>]) -> Attribute<'c> {
        ArrayAttribute::new(self.context, items).into()
    }

    pub fn dict(&self, entries: &[(&str, Attribute<'c>)]) -> Attribute<'c> {
        let named: Vec<_> = entries.iter().map(|(k, v)| self.named(k, *v)).collect();
        DictionaryAttribute::new(self.context, &named).into()
    }

    pub fn sym(&self, name: &str) -> Attribute<'c> {
        FlatSymbolRefAttribute::new(self.context, name).into()
    }

    pub fn segments(&self, sizes: &[i32]) -> Attribute<'c> {
        DenseI32ArrayAttribute::new(self.context, sizes).into()
    }

    /// The placement attributes of an `exec` op that no device has been chosen for yet.
    pub fn unplaced(&self) -> [(Identifier<'c>, Attribute<'c>); 3] {
        [
            self.named("device", self.str("")),
            self.named("predicted_ms", self.float(0.0)),
            self.named("usd", self.float(0.0)),
        ]
    }

    /// A JSON literal as an attribute: numbers, booleans and strings as themselves, null as
    /// `unit`, lists and objects as arrays and dictionaries.
    pub fn json(&self, v: &serde_json::Value) -> Attribute<'c> {
        use serde_json::Value as J;
        match v {
            J::Null => Attribute::unit(self.context),
            J::Bool(b) => self.bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => self.int(i),
                None => self.float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => self.str(s),
            J::Array(items) => self.array(&items.iter().map(|i| self.json(i)).collect::<Vec<_>>()),
            J::Object(map) => {
                let entries: Vec<(&str, Attribute)> = map
                    .iter()
                    .map(|(k, v)| (k.as_str(), self.json(v)))
                    .collect();
                self.dict(&entries)
            }
        }
    }

    /// `agent.sla`, `agent.models`, `agent.tools`, `agent.indexes` (and `agent.description`).
    pub fn workflow_attrs(&self, g: &WorkflowGraph) -> Vec<(Identifier<'c>, Attribute<'c>)> {
        let mut sla = vec![("p95_ms", self.float(g.sla.p95_ms))];
        if let Some(usd) = g.sla.usd_per_1k {
            sla.push(("usd_per_1k", self.float(usd)));
        }
        let models: Vec<(&str, Attribute)> = g
            .models
            .iter()
            .map(|m| {
                let kind = if m.kind == ModelKind::Llm {
                    "llm"
                } else {
                    "embedding"
                };
                (
                    m.name.as_str(),
                    self.dict(&[("kind", self.str(kind)), ("path", self.str(&m.path))]),
                )
            })
            .collect();
        let tools: Vec<(&str, Attribute)> = g
            .tools
            .iter()
            .map(|t| (t.name.as_str(), self.tool(t)))
            .collect();
        let indexes: Vec<(&str, Attribute)> = g
            .indexes
            .iter()
            .map(|i| {
                let metric = match i.metric {
                    Metric::Cosine => "cosine",
                    Metric::Dot => "dot",
                    Metric::L2 => "l2",
                };
                (
                    i.name.as_str(),
                    self.dict(&[
                        ("path", self.str(&i.path)),
                        ("model", self.str(&i.model)),
                        ("metric", self.str(metric)),
                    ]),
                )
            })
            .collect();
        let mut out = vec![
            self.named("agent.sla", self.dict(&sla)),
            self.named("agent.models", self.dict(&models)),
            self.named("agent.tools", self.dict(&tools)),
            self.named("agent.indexes", self.dict(&indexes)),
        ];
        if let Some(desc) = &g.description {
            out.push(self.named("agent.description", self.str(desc)));
        }
        out
    }

    fn tool(&self, t: &ToolDecl) -> Attribute<'c> {
        let mut e: Vec<(&str, Attribute)> = vec![
            (
                "kind",
                self.str(if t.kind == ToolKind::Http {
                    "http"
                } else {
                    "subprocess"
                }),
            ),
            (
                "output",
                self.str(if t.output == OutputFormat::Json {
                    "json"
                } else {
                    "text"
                }),
            ),
            ("timeout_ms", self.int(t.timeout_ms as i64)),
            ("max_output_bytes", self.int(t.max_output_bytes as i64)),
            ("cost", self.float(t.cost)),
            (
                "fallbacks",
                self.array(&t.fallbacks.iter().map(|f| self.str(f)).collect::<Vec<_>>()),
            ),
        ];
        if let Some(url) = &t.url {
            e.push(("url", self.str(url)));
        }
        if let Some(m) = &t.method {
            e.push(("method", self.str(m)));
        }
        if let Some(c) = &t.command {
            e.push((
                "command",
                self.array(&c.iter().map(|p| self.str(p)).collect::<Vec<_>>()),
            ));
        }
        let args: Vec<(&str, Attribute)> = t
            .args
            .iter()
            .map(|a| {
                let ty = match a.ty {
                    ArgType::String => "string",
                    ArgType::Number => "number",
                    ArgType::Integer => "integer",
                    ArgType::Boolean => "boolean",
                    ArgType::Object => "object",
                    ArgType::Array => "array",
                };
                (
                    a.name.as_str(),
                    self.dict(&[("type", self.str(ty)), ("required", self.bool(a.required))]),
                )
            })
            .collect();
        e.push(("args", self.dict(&args)));
        self.dict(&e)
    }
}

//! Attribute helpers for the emitter, and the workflow-level attributes of the main function
//! (SLA, models, tools, indexes) that later stages and the runtime read.

use agentc_plan::attr;
use melior::Context;
use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DenseI32ArrayAttribute, DictionaryAttribute,
    FlatSymbolRefAttribute, FloatAttribute, IntegerAttribute, StringAttribute,
};
use melior::ir::r#type::IntegerType;
use melior::ir::{Attribute, Identifier, Type};

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
            self.named(attr::DEVICE, self.str("")),
            self.named(attr::PREDICTED_MS, self.float(0.0)),
            self.named(attr::USD, self.float(0.0)),
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

    /// The workflow attributes of the main function ([`attr::workflow`]): the declarations
    /// as [`crate::manifest::declarations`] gives them, the same values the manifest holds.
    pub fn workflow_attrs(
        &self,
        g: &WorkflowGraph,
    ) -> crate::Result<Vec<(Identifier<'c>, Attribute<'c>)>> {
        let d = crate::manifest::declarations(g);
        let json = |what: &str, v: serde_json::Result<serde_json::Value>| {
            v.map(|v| self.json(&v)).map_err(|e| {
                crate::Error::Internal(format!("cannot write the workflow's {what}: {e}"))
            })
        };
        let mut out = vec![
            self.named(
                attr::workflow::SLA,
                json("SLA", serde_json::to_value(&d.sla))?,
            ),
            self.named(
                attr::workflow::MODELS,
                json("models", serde_json::to_value(&d.models))?,
            ),
            self.named(
                attr::workflow::TOOLS,
                json("tools", serde_json::to_value(&d.tools))?,
            ),
            self.named(
                attr::workflow::INDEXES,
                json("indexes", serde_json::to_value(&d.indexes))?,
            ),
        ];
        if let Some(desc) = &d.description {
            out.push(self.named(attr::workflow::DESCRIPTION, self.str(desc)));
        }
        Ok(out)
    }
}

//! Building a runner: the executors a plan needs (LLM engines handed in, embedding models and
//! indexes loaded, tools checked), and checking a run's inputs.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::WorkflowRunner;
use crate::embed::EmbeddingModel;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::plan::Program;
use crate::serving::ServingEngine;
use crate::tools::{BreakerConfig, ToolRouter, ToolRunner};
use crate::value::Value;
use agentc_plan::decl::ModelKind;

impl WorkflowRunner {
    /// A runner over `program`, with a serving engine for each of its LLM models; loads its
    /// embedding models and indexes and checks its tools.
    pub fn new(program: Program, llms: HashMap<String, ServingEngine>) -> Result<Self> {
        let mut embedders: HashMap<String, Arc<EmbeddingModel>> = HashMap::new();
        // One model per directory, shared by every name that points at it.
        let mut by_path: HashMap<std::path::PathBuf, Arc<EmbeddingModel>> = HashMap::new();
        for model in program.models() {
            let (name, path) = (&model.name, program.model_path(model));
            match model.kind {
                ModelKind::Llm if !llms.contains_key(name) => {
                    return Err(Error::InvalidRequest(format!(
                        "no engine was loaded for the workflow's model `{name}` ({})",
                        path.display()
                    )));
                }
                ModelKind::Llm => {}
                ModelKind::Embedding => {
                    let embedder = match by_path.get(&path) {
                        Some(e) => Arc::clone(e),
                        None => {
                            let e = Arc::new(EmbeddingModel::load(&path)?);
                            by_path.insert(path.clone(), Arc::clone(&e));
                            e
                        }
                    };
                    embedders.insert(name.clone(), embedder);
                }
            }
        }
        let mut indexes = HashMap::new();
        for spec in program.indexes() {
            let embedder = embedders.get(&spec.model).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "index `{}` names the embedding model `{}`, which the plan does not declare",
                    spec.name, spec.model
                ))
            })?;
            let index = Index::open(spec, &program.base_dir, embedder.name())?;
            indexes.insert(spec.name.clone(), Arc::new(index));
        }
        let specs = program.tools().to_vec();
        let tools = ToolRouter::new(
            specs,
            ToolRunner::new(&program.base_dir)?,
            BreakerConfig::default(),
        )?;
        Ok(Self {
            program: Arc::new(program),
            llms,
            embedders,
            indexes,
            tools,
            remote: None,
        })
    }

    /// Checks `inputs` against the workflow's declared inputs and converts them to values.
    pub fn input_values(
        &self,
        inputs: &serde_json::Map<String, Json>,
    ) -> Result<HashMap<String, Value>> {
        let mut values = HashMap::new();
        for decl in &self.program.inputs {
            let given = inputs.get(&decl.name).ok_or_else(|| {
                Error::Inputs(format!(
                    "missing input `{}` ({}); the workflow takes: {}",
                    decl.name,
                    decl.ty,
                    self.input_names()
                ))
            })?;
            let value = match (decl.ty.as_str(), given) {
                ("text", Json::String(s)) => {
                    self.check_max_len(decl, s)?;
                    Value::Text(s.clone())
                }
                ("text", other) => {
                    return Err(Error::Inputs(format!(
                        "input `{}` is text: give a JSON string, not {}",
                        decl.name,
                        json_kind(other)
                    )));
                }
                ("list", Json::Array(items)) => Value::List(
                    items
                        .iter()
                        .map(|i| match i {
                            Json::String(s) => Value::Text(s.clone()),
                            other => Value::Json(other.clone()),
                        })
                        .collect(),
                ),
                ("list", _) => {
                    return Err(Error::Inputs(format!(
                        "input `{}` is a list: give a JSON array",
                        decl.name
                    )));
                }
                (_, json) => Value::Json(json.clone()),
            };
            values.insert(decl.name.clone(), value);
        }
        if let Some(unknown) = inputs
            .keys()
            .find(|k| !self.program.inputs.iter().any(|d| &d.name == *k))
        {
            return Err(Error::Inputs(format!(
                "unknown input `{unknown}`; the workflow takes: {}",
                self.input_names()
            )));
        }
        Ok(values)
    }

    /// A text input may not be longer than its declared `max_len`, counted in tokens of the
    /// workflow's LLM (the first by name); a workflow without one counts no tokens.
    fn check_max_len(&self, decl: &crate::plan::InputDecl, text: &str) -> Result<()> {
        if decl.max_len == 0 {
            return Ok(());
        }
        let Some(engine) = self
            .llms
            .iter()
            .min_by_key(|(name, _)| *name)
            .map(|(_, e)| e)
        else {
            return Ok(());
        };
        let tokens = engine
            .engine()
            .tokenizer()
            .encode(text, false, false)?
            .len();
        if tokens > decl.max_len {
            return Err(Error::Inputs(format!(
                "input `{}` is {tokens} tokens long; the workflow declares max_len {}",
                decl.name, decl.max_len
            )));
        }
        Ok(())
    }

    fn input_names(&self) -> String {
        let names: Vec<&str> = self
            .program
            .inputs
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        if names.is_empty() {
            "no inputs".to_owned()
        } else {
            names.join(", ")
        }
    }
}

/// What kind of JSON value `v` is, for messages.
fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

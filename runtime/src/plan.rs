//! Loading a compiled plan (`plan.mlir` + `manifest.json`, written by `agentc build -o DIR`)
//! into a [`Program`] the workflow executor runs.
//!
//! The MLIR is parsed and verified against the `exec` dialect through the `dialects` crate, then
//! copied into plain Rust structures: a melior `Context` is neither `Send` nor cheap, and the
//! executor only needs each op's kind, attributes and operand wiring. Body functions of
//! map/branch/loop keep their calling convention (docs/architecture.md): a body takes its own
//! variables followed by the compound op's operands (a map's `over` excluded).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use agentc_dialects::exec;
use agentc_dialects::ir::{attribute_to_json, block_ops, module_ops, op_name, string_value};
use melior::ir::attribute::{FlatSymbolRefAttribute, StringAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{RegionLike, ValueLike};
use serde_json::Value as Json;

use crate::constraint::OutputConstraint;
use crate::error::{Error, Result};
use crate::sampling::SamplingParams;
use crate::value::Condition;

/// Index of an SSA value in its function: the arguments first, then op results in order.
pub type ValueId = usize;

/// A compiled, placed workflow ready to run.
#[derive(Debug)]
pub struct Program {
    pub name: String,
    /// The directory workflow-relative paths (models, indexes, tool commands) resolve against.
    pub base_dir: PathBuf,
    pub sla_p95_ms: f64,
    /// Declarations from the workflow, as JSON objects keyed by name.
    pub models: HashMap<String, ModelDecl>,
    pub tools: serde_json::Map<String, Json>,
    pub indexes: HashMap<String, IndexDecl>,
    pub inputs: Vec<InputDecl>,
    pub main: Function,
    pub bodies: HashMap<String, Function>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDecl {
    pub kind: String,
    /// Resolved against the base directory.
    pub path: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexDecl {
    pub path: PathBuf,
    pub model: String,
    /// `cosine` (the default), `dot` or `l2`.
    pub metric: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDecl {
    pub name: String,
    /// `text`, `json` or `list`.
    pub ty: String,
    pub max_len: usize,
}

#[derive(Debug)]
pub struct Function {
    pub name: String,
    pub n_args: usize,
    pub ops: Vec<Op>,
    pub returns: Vec<ValueId>,
    /// Per op: the longest predicted time (ms) of the ops that still depend on it in this
    /// function, for deadlines from the critical path.
    pub tail_ms: Vec<f64>,
}

#[derive(Debug)]
pub struct Op {
    pub kind: OpKind,
    pub operands: Vec<ValueId>,
    pub result: Option<ValueId>,
    /// The workflow node the op came from.
    pub node: String,
    pub device: String,
    pub predicted_ms: f64,
}

#[derive(Debug)]
pub enum OpKind {
    Input(InputDecl),
    Render {
        template: String,
        /// With a chat model: (role, content template) pairs rendered by its chat template.
        messages: Vec<(String, String)>,
        model: String,
    },
    Tokenize {
        model: String,
    },
    Prefill {
        model: String,
        /// The shared prefix (an `exec.kv_prefix` name) whose KV the plan expects reused.
        prefix: String,
        /// Its estimated length in tokens (0 without a prefix).
        prefix_tokens: usize,
    },
    Decode {
        model: String,
        max_tokens: usize,
        sampling: SamplingParams,
        stop: Vec<String>,
        /// The output's constraint (the node's JSON Schema, inferred or declared, its regex
        /// or its choices). An `output: json` decode without one is constrained to a JSON
        /// object, or an array when the value feeds a map.
        constraint: Option<OutputConstraint>,
    },
    Detokenize {
        json: bool,
    },
    Embed {
        model: String,
    },
    Knn {
        index: String,
        k: usize,
    },
    Tool {
        tool: String,
        /// Argument name -> a template (string) or a literal.
        args: serde_json::Map<String, Json>,
    },
    JsonExtract {
        template: String,
        path: String,
    },
    JsonObject {
        fields: Vec<(String, String)>,
    },
    Transfer,
    Map {
        body: String,
        max_concurrency: usize,
    },
    Branch {
        conditions: Vec<Condition>,
        cases: Vec<String>,
        default: String,
    },
    Loop {
        body: String,
        max_iters: usize,
        carry_operands: Vec<usize>,
        until: Option<Condition>,
    },
    Output {
        name: String,
    },
}

impl Program {
    /// Loads `DIR/plan.mlir` and `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| Error::Plan {
                path: path.clone(),
                message: format!("cannot read it: {e}"),
            })
        };
        let manifest_text = read("manifest.json")?;
        let manifest: Json = serde_json::from_str(&manifest_text).map_err(|e| Error::Plan {
            path: dir.join("manifest.json"),
            message: format!("not valid JSON: {e}"),
        })?;
        let source = manifest
            .get("source")
            .and_then(Json::as_str)
            .ok_or_else(|| Error::Plan {
                path: dir.join("manifest.json"),
                message: "missing `source` (the workflow file)".to_owned(),
            })?;
        let base_dir = Path::new(source)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Self::parse(&read("plan.mlir")?, &dir.join("plan.mlir"), base_dir)
    }

    /// Parses and verifies plan MLIR; `base_dir` resolves the workflow's relative paths.
    pub fn parse(source: &str, path: &Path, base_dir: PathBuf) -> Result<Self> {
        let plan_error = |message: String| Error::Plan {
            path: path.to_path_buf(),
            message,
        };
        let context = agentc_dialects::new_context().map_err(|e| plan_error(e.to_string()))?;
        let module = agentc_dialects::parse_module(&context, source)
            .map_err(|e| plan_error(e.to_string()))?;
        agentc_dialects::verify(&context, &module).map_err(|e| plan_error(e.to_string()))?;

        let mut main = None;
        let mut bodies = HashMap::new();
        let mut attrs = None;
        for func in module_ops(&module) {
            if op_name(&func) != "func.func" {
                continue;
            }
            let name = func
                .attribute("sym_name")
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .map(|s| string_value(&s))
                .unwrap_or_default();
            let function = lower_function(func, &name).map_err(plan_error)?;
            if func.attribute("sym_visibility").is_ok() {
                bodies.insert(name, function);
            } else {
                attrs = Some(workflow_attributes(func));
                main = Some(function);
            }
        }
        let main = main.ok_or_else(|| plan_error("no public workflow function".to_owned()))?;
        let attrs = attrs.unwrap_or_default();
        let resolve = |p: &str| base_dir.join(p);
        let models = object(&attrs, "agent.models")
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    ModelDecl {
                        kind: str_field(m, "kind"),
                        path: resolve(&str_field(m, "path")),
                    },
                )
            })
            .collect();
        let indexes = object(&attrs, "agent.indexes")
            .iter()
            .map(|(name, i)| {
                (
                    name.clone(),
                    IndexDecl {
                        path: resolve(&str_field(i, "path")),
                        model: str_field(i, "model"),
                        metric: match str_field(i, "metric") {
                            m if m.is_empty() => "cosine".to_owned(),
                            m => m,
                        },
                    },
                )
            })
            .collect();
        let sla_p95_ms = attrs
            .get("agent.sla")
            .and_then(|s| s.get("p95_ms"))
            .and_then(Json::as_f64)
            .ok_or_else(|| {
                plan_error("the workflow function has no agent.sla p95_ms".to_owned())
            })?;
        let inputs = main
            .ops
            .iter()
            .filter_map(|op| match &op.kind {
                OpKind::Input(decl) => Some(decl.clone()),
                _ => None,
            })
            .collect();
        Ok(Self {
            name: main.name.clone(),
            base_dir,
            sla_p95_ms,
            models,
            tools: object(&attrs, "agent.tools"),
            indexes,
            inputs,
            main,
            bodies,
        })
    }

    /// The devices the plan places ops on (`node/type#index`), sorted.
    pub fn devices(&self) -> Vec<String> {
        let mut devices: Vec<String> = std::iter::once(&self.main)
            .chain(self.bodies.values())
            .flat_map(|f| f.ops.iter().map(|op| op.device.clone()))
            .filter(|d| !d.is_empty())
            .collect();
        devices.sort();
        devices.dedup();
        devices
    }

    pub fn function(&self, name: &str) -> Result<&Function> {
        self.bodies.get(name).ok_or_else(|| Error::Plan {
            path: PathBuf::from(&self.name),
            message: format!("the plan has no body function @{name}"),
        })
    }
}

fn workflow_attributes(func: OperationRef<'_, '_>) -> serde_json::Map<String, Json> {
    ["agent.models", "agent.tools", "agent.indexes", "agent.sla"]
        .iter()
        .filter_map(|name| {
            func.attribute(name)
                .ok()
                .map(|a| ((*name).to_owned(), attribute_to_json(a)))
        })
        .collect()
}

fn object(attrs: &serde_json::Map<String, Json>, name: &str) -> serde_json::Map<String, Json> {
    attrs
        .get(name)
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default()
}

fn str_field(value: &Json, name: &str) -> String {
    value
        .get(name)
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Copies one function's ops, numbering its values.
fn lower_function(func: OperationRef<'_, '_>, name: &str) -> std::result::Result<Function, String> {
    let block = func
        .region(0)
        .ok()
        .and_then(|r| r.first_block())
        .ok_or_else(|| format!("@{name} has no body"))?;
    let mut ids: HashMap<usize, ValueId> = HashMap::new();
    let n_args = block.argument_count();
    for i in 0..n_args {
        let arg = block.argument(i).map_err(|e| e.to_string())?;
        ids.insert(arg.to_raw().ptr as usize, i);
    }
    let mut next = n_args;
    let mut ops = Vec::new();
    let mut returns = Vec::new();
    for op in block_ops(block) {
        let operands = (0..op.operand_count())
            .map(|i| {
                let v = op.operand(i).map_err(|e| e.to_string())?;
                ids.get(&(v.to_raw().ptr as usize)).copied().ok_or_else(|| {
                    format!(
                        "@{name}: an operand of {} is not defined before it",
                        op_name(&op)
                    )
                })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let op_kind = op_name(&op);
        if op_kind == "func.return" {
            returns = operands;
            continue;
        }
        let result = if op.result_count() > 0 {
            let r = op.result(0).map_err(|e| e.to_string())?;
            ids.insert(r.to_raw().ptr as usize, next);
            next += 1;
            Some(next - 1)
        } else {
            None
        };
        let Some(kind) = lower_op(&op, &op_kind).map_err(|e| format!("@{name}: {op_kind}: {e}"))?
        else {
            continue;
        };
        ops.push(Op {
            kind,
            operands,
            result,
            node: attr_str(&op, "node"),
            device: attr_str(&op, "device"),
            predicted_ms: attr_json(&op, "predicted_ms").as_f64().unwrap_or(0.0),
        });
    }
    constrain_json_outputs(&mut ops);
    let tail_ms = tails(&ops);
    Ok(Function {
        name: name.to_owned(),
        n_args,
        ops,
        returns,
        tail_ms,
    })
}

/// Marks each decode whose text is parsed as JSON (`output: json`) so that decoding is
/// constrained to JSON: an array when the value is what a map iterates, else an object (the
/// value's fields are what workflows read).
fn constrain_json_outputs(ops: &mut [Op]) {
    let producer: HashMap<ValueId, usize> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| op.result.map(|r| (r, i)))
        .collect();
    let mut shapes = Vec::new();
    for op in ops.iter() {
        let OpKind::Detokenize { json: true } = op.kind else {
            continue;
        };
        let (Some(result), Some(&decode)) =
            (op.result, op.operands.first().and_then(|v| producer.get(v)))
        else {
            continue;
        };
        let mapped = ops
            .iter()
            .any(|u| matches!(u.kind, OpKind::Map { .. }) && u.operands.first() == Some(&result));
        shapes.push((
            decode,
            if mapped {
                OutputConstraint::JsonSchema(serde_json::json!({"type": "array"}))
            } else {
                OutputConstraint::JsonObject
            },
        ));
    }
    for (decode, shape) in shapes {
        if let OpKind::Decode { constraint, .. } = &mut ops[decode].kind
            && constraint.is_none()
        {
            *constraint = Some(shape);
        }
    }
}

/// A decode's `constraint` attribute: the JSON text of [`OutputConstraint::to_json`], or empty
/// for none.
fn constraint_attr(
    op: &OperationRef<'_, '_>,
) -> std::result::Result<Option<OutputConstraint>, String> {
    let text = attr_str(op, "constraint");
    if text.is_empty() {
        return Ok(None);
    }
    let value: Json = serde_json::from_str(&text)
        .map_err(|e| format!("decode `constraint` attribute is not JSON: {e}"))?;
    OutputConstraint::from_json(&value)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// For each op, the longest predicted time of any chain of ops that consume its result.
fn tails(ops: &[Op]) -> Vec<f64> {
    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(r) = op.result {
            producer.insert(r, i);
        }
    }
    let mut tail = vec![0.0f64; ops.len()];
    for (i, op) in ops.iter().enumerate().rev() {
        let through = tail[i] + op.predicted_ms;
        for v in &op.operands {
            if let Some(&p) = producer.get(v) {
                tail[p] = tail[p].max(through);
            }
        }
    }
    tail
}

fn attr_json(op: &OperationRef<'_, '_>, name: &str) -> Json {
    op.attribute(name)
        .map(attribute_to_json)
        .unwrap_or(Json::Null)
}

fn attr_str(op: &OperationRef<'_, '_>, name: &str) -> String {
    attr_json(op, name).as_str().unwrap_or_default().to_owned()
}

fn attr_usize(op: &OperationRef<'_, '_>, name: &str) -> usize {
    attr_json(op, name)
        .as_i64()
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or(0)
}

fn symbol(op: &OperationRef<'_, '_>, name: &str) -> std::result::Result<String, String> {
    op.attribute(name)
        .ok()
        .and_then(|a| FlatSymbolRefAttribute::try_from(a).ok())
        .map(|s| s.value().to_owned())
        .ok_or_else(|| format!("missing symbol attribute `{name}`"))
}

fn strings(value: &Json) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The op's kind with its attributes, or `None` for ops the executor skips (`exec.kv_prefix`
/// outside functions never reaches here).
fn lower_op(op: &OperationRef<'_, '_>, name: &str) -> std::result::Result<Option<OpKind>, String> {
    let s = |n: &str| attr_str(op, n);
    Ok(Some(match name {
        exec::INPUT => OpKind::Input(InputDecl {
            name: s("name"),
            ty: op
                .result(0)
                .map(|r| r.r#type().to_string())
                .unwrap_or_default()
                .trim_start_matches("!exec.")
                .to_owned(),
            max_len: attr_usize(op, "max_len"),
        }),
        exec::RENDER => OpKind::Render {
            template: s("template"),
            messages: attr_json(op, "messages")
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|m| (str_field(m, "role"), str_field(m, "content")))
                        .collect()
                })
                .unwrap_or_default(),
            model: s("model"),
        },
        exec::TOKENIZE => OpKind::Tokenize { model: s("model") },
        exec::PREFILL => OpKind::Prefill {
            model: s("model"),
            prefix: s("prefix"),
            prefix_tokens: attr_usize(op, "prefix_tokens"),
        },
        exec::DECODE => OpKind::Decode {
            model: s("model"),
            max_tokens: attr_usize(op, "max_tokens"),
            sampling: SamplingParams {
                temperature: attr_json(op, "temperature").as_f64().unwrap_or(0.0) as f32,
                top_k: attr_usize(op, "top_k"),
                top_p: attr_json(op, "top_p").as_f64().unwrap_or(1.0) as f32,
                seed: attr_json(op, "seed").as_u64().unwrap_or(0),
            },
            stop: strings(&attr_json(op, "stop")),
            constraint: constraint_attr(op)?,
        },
        exec::DETOKENIZE => OpKind::Detokenize {
            json: s("output") == "json",
        },
        exec::EMBED => OpKind::Embed { model: s("model") },
        exec::KNN => OpKind::Knn {
            index: s("index"),
            k: attr_usize(op, "k"),
        },
        exec::TOOL => OpKind::Tool {
            tool: s("tool"),
            args: attr_json(op, "args")
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
        exec::JSON => match s("mode").as_str() {
            "extract" => OpKind::JsonExtract {
                template: s("template"),
                path: s("path"),
            },
            _ => OpKind::JsonObject {
                fields: attr_json(op, "fields")
                    .as_object()
                    .map(|f| {
                        f.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        },
        exec::TRANSFER => OpKind::Transfer,
        exec::MAP => OpKind::Map {
            body: symbol(op, "body")?,
            max_concurrency: attr_usize(op, "max_concurrency"),
        },
        exec::BRANCH => OpKind::Branch {
            conditions: strings(&attr_json(op, "conditions"))
                .iter()
                .map(|c| Condition::parse(c))
                .collect::<std::result::Result<_, _>>()?,
            cases: attr_json(op, "cases")
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            default: symbol(op, "default")?,
        },
        exec::LOOP => OpKind::Loop {
            body: symbol(op, "body")?,
            max_iters: attr_usize(op, "max_iters"),
            carry_operands: attr_json(op, "carry_operands")
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.as_u64().map(|i| i as usize))
                        .collect()
                })
                .unwrap_or_default(),
            until: match s("until").as_str() {
                "" => None,
                until => Some(Condition::parse(until)?),
            },
        },
        exec::OUTPUT => OpKind::Output { name: s("name") },
        exec::KV_PREFIX => return Ok(None),
        other => return Err(format!("the runtime does not know the op `{other}`")),
    }))
}

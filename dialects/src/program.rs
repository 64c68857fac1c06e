//! Reading a compiled plan into a [`Program`] the workflow executor runs.
//!
//! The MLIR is parsed and verified against the `exec` dialect, then copied into plain Rust
//! structures: a melior `Context` is neither `Send` nor cheap, and the executor only needs each
//! op's kind, attributes and operand wiring. Body functions of map/branch/loop keep their calling
//! convention (docs/architecture.md): a body takes its own variables followed by the compound
//! op's operands (a map's `over` excluded). A missing or mistyped attribute is an error that
//! names the function, the op, its node and the attribute.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use melior::ir::attribute::{FlatSymbolRefAttribute, StringAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{RegionLike, ValueLike};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::attr;
use crate::condition::{PlanCondition, parse_plan_condition};
use crate::decl::{Declarations, IndexSpec, ModelSpec, Sla, ToolSpec};
use crate::decode::{OutputConstraint, SamplingParams};
use crate::exec;
use crate::ir::{attribute_to_json, block_ops, module_ops, op_name, string_value};
use crate::manifest::{PLAN_FILE, Plan, PlanFileError};

/// Index of an SSA value in its function: the arguments first, then op results in order.
pub type ValueId = usize;

/// A compiled, placed workflow ready to run.
#[derive(Debug)]
pub struct Program {
    pub name: String,
    /// The directory workflow-relative paths (models, indexes, tool commands) resolve against.
    pub base_dir: PathBuf,
    /// The SLA, models, tools and indexes, as the workflow declared them.
    pub declarations: Declarations,
    pub inputs: Vec<InputDecl>,
    pub main: Function,
    pub bodies: HashMap<String, Function>,
}

/// A plan that cannot be loaded: the file (or plan) and what is wrong.
pub type PlanError = PlanFileError;

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
        conditions: Vec<PlanCondition>,
        cases: Vec<String>,
        default: String,
    },
    Loop {
        body: String,
        max_iters: usize,
        carry_operands: Vec<usize>,
        until: Option<PlanCondition>,
    },
    Output {
        name: String,
    },
}

impl Program {
    /// Loads a plan directory (`DIR/plan.mlir` and `DIR/manifest.json`).
    pub fn load(dir: &Path) -> Result<Self, PlanError> {
        let plan = Plan::read_dir(dir)?;
        Self::parse(&plan.mlir, &dir.join(PLAN_FILE), plan.manifest.base_dir())
    }

    /// Loads a plan compiled in this process.
    pub fn from_plan(plan: &Plan) -> Result<Self, PlanError> {
        let name = format!("(compiled from {})", plan.manifest.source.display());
        Self::parse(&plan.mlir, Path::new(&name), plan.manifest.base_dir())
    }

    /// Parses and verifies plan MLIR; `path` names it in errors and `base_dir` resolves the
    /// workflow's relative paths.
    pub fn parse(source: &str, path: &Path, base_dir: PathBuf) -> Result<Self, PlanError> {
        let plan_error = |message: String| PlanError {
            path: path.to_path_buf(),
            message,
        };
        let context = crate::new_context().map_err(|e| plan_error(e.to_string()))?;
        let module =
            crate::parse_module(&context, source).map_err(|e| plan_error(e.to_string()))?;

        let mut main = None;
        let mut bodies = HashMap::new();
        let mut declarations = None;
        for func in module_ops(&module) {
            if op_name(&func) != "func.func" {
                continue;
            }
            let name = func
                .attribute(attr::func::SYM_NAME)
                .ok()
                .and_then(|a| StringAttribute::try_from(a).ok())
                .map(|s| string_value(&s))
                .unwrap_or_default();
            let function = lower_function(func, &name).map_err(plan_error)?;
            if func.attribute(attr::func::SYM_VISIBILITY).is_ok() {
                bodies.insert(name, function);
            } else {
                declarations = Some(
                    workflow_declarations(&func)
                        .map_err(|e| plan_error(format!("@{name}: {e}")))?,
                );
                main = Some(function);
            }
        }
        let (Some(main), Some(declarations)) = (main, declarations) else {
            return Err(plan_error("no public workflow function".to_owned()));
        };
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
            declarations,
            inputs,
            main,
            bodies,
        })
    }

    pub fn sla_p95_ms(&self) -> f64 {
        self.declarations.sla.p95_ms
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.declarations.models
    }

    pub fn tools(&self) -> &[ToolSpec] {
        &self.declarations.tools
    }

    pub fn indexes(&self) -> &[IndexSpec] {
        &self.declarations.indexes
    }

    /// A model's file, resolved against the base directory.
    pub fn model_path(&self, model: &ModelSpec) -> PathBuf {
        self.base_dir.join(&model.path)
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

    pub fn function(&self, name: &str) -> Result<&Function, PlanError> {
        self.bodies.get(name).ok_or_else(|| PlanError {
            path: PathBuf::from(&self.name),
            message: format!("the plan has no body function @{name}"),
        })
    }
}

/// The workflow attributes of the main function ([`attr::workflow`]) as the declarations the
/// compiler wrote.
pub fn workflow_declarations(func: &OperationRef<'_, '_>) -> Result<Declarations, String> {
    fn read<T: DeserializeOwned>(func: &OperationRef<'_, '_>, name: &str) -> Result<T, String> {
        let value = func
            .attribute(name)
            .map(attribute_to_json)
            .map_err(|_| format!("missing the workflow attribute `{name}`"))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            format!(
                "workflow attribute `{name}` at `{}`: {}",
                e.path(),
                e.inner()
            )
        })
    }
    Ok(Declarations {
        sla: read::<Sla>(func, attr::workflow::SLA)?,
        models: read(func, attr::workflow::MODELS)?,
        tools: read(func, attr::workflow::TOOLS)?,
        indexes: read(func, attr::workflow::INDEXES)?,
        description: func
            .attribute(attr::workflow::DESCRIPTION)
            .ok()
            .and_then(|a| attribute_to_json(a).as_str().map(str::to_owned)),
    })
}

/// Copies one function's ops, numbering its values.
fn lower_function(func: OperationRef<'_, '_>, name: &str) -> Result<Function, String> {
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
            .collect::<Result<Vec<_>, _>>()?;
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
        let attrs = OpAttrs { op: &op };
        let where_ = || {
            let node = attrs.optional_string(attr::NODE).unwrap_or_default();
            if node.is_empty() {
                format!("@{name}: {op_kind}")
            } else {
                format!("@{name}: {op_kind} (node `{node}`)")
            }
        };
        let Some(kind) = lower_op(&op, &op_kind).map_err(|e| format!("{}: {e}", where_()))? else {
            continue;
        };
        let placed = || -> Result<(String, String, f64), String> {
            Ok((
                attrs.optional_string(attr::NODE)?,
                attrs.optional_string(attr::DEVICE)?,
                if op.attribute(attr::PREDICTED_MS).is_ok() {
                    attrs.number(attr::PREDICTED_MS)?
                } else {
                    0.0
                },
            ))
        };
        let (node, device, predicted_ms) = placed().map_err(|e| format!("{}: {e}", where_()))?;
        ops.push(Op {
            kind,
            operands,
            result,
            node,
            device,
            predicted_ms,
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

/// Typed reads of an op's attributes; each error names the attribute.
struct OpAttrs<'o, 'c, 'a> {
    op: &'o OperationRef<'c, 'a>,
}

impl OpAttrs<'_, '_, '_> {
    fn json(&self, name: &str) -> Result<Json, String> {
        self.op
            .attribute(name)
            .map(attribute_to_json)
            .map_err(|_| format!("missing attribute `{name}`"))
    }

    fn string(&self, name: &str) -> Result<String, String> {
        match self.json(name)? {
            Json::String(s) => Ok(s),
            other => Err(format!(
                "attribute `{name}` must be a string, found {other}"
            )),
        }
    }

    /// A string attribute, empty when absent.
    fn optional_string(&self, name: &str) -> Result<String, String> {
        if self.op.attribute(name).is_err() {
            return Ok(String::new());
        }
        self.string(name)
    }

    fn count(&self, name: &str) -> Result<usize, String> {
        let value = self.json(name)?;
        value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                format!("attribute `{name}` must be a non-negative integer, found {value}")
            })
    }

    fn number(&self, name: &str) -> Result<f64, String> {
        let value = self.json(name)?;
        value
            .as_f64()
            .ok_or_else(|| format!("attribute `{name}` must be a number, found {value}"))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        let value = self.json(name)?;
        let bad = || format!("attribute `{name}` must be an array of strings, found {value}");
        value
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|s| s.as_str().map(str::to_owned).ok_or_else(bad))
            .collect()
    }

    fn object(&self, name: &str) -> Result<serde_json::Map<String, Json>, String> {
        match self.json(name)? {
            Json::Object(map) => Ok(map),
            other => Err(format!(
                "attribute `{name}` must be a dictionary, found {other}"
            )),
        }
    }

    fn symbol(&self, name: &str) -> Result<String, String> {
        self.op
            .attribute(name)
            .ok()
            .and_then(|a| FlatSymbolRefAttribute::try_from(a).ok())
            .map(|s| s.value().to_owned())
            .ok_or_else(|| format!("missing symbol attribute `{name}`"))
    }

    /// A condition attribute in the plan form.
    fn condition(&self, name: &str) -> Result<PlanCondition, String> {
        plan_condition(name, &self.string(name)?)
    }

    /// A decode's `constraint`: the JSON text of [`OutputConstraint::to_json`], or empty for
    /// none.
    fn constraint(&self) -> Result<Option<OutputConstraint>, String> {
        let text = self.string(attr::CONSTRAINT)?;
        if text.is_empty() {
            return Ok(None);
        }
        let value: Json = serde_json::from_str(&text)
            .map_err(|e| format!("attribute `{}` is not JSON: {e}", attr::CONSTRAINT))?;
        OutputConstraint::from_json(&value)
            .map(Some)
            .map_err(|e| format!("attribute `{}`: {e}", attr::CONSTRAINT))
    }
}

/// The op's kind with its attributes, or `None` for ops the executor skips (`exec.kv_prefix`
/// outside functions never reaches here).
fn lower_op(op: &OperationRef<'_, '_>, name: &str) -> Result<Option<OpKind>, String> {
    let a = OpAttrs { op };
    Ok(Some(match name {
        exec::INPUT => OpKind::Input(InputDecl {
            name: a.string(attr::NAME)?,
            ty: op
                .result(0)
                .map(|r| r.r#type().to_string())
                .unwrap_or_default()
                .trim_start_matches("!exec.")
                .to_owned(),
            max_len: a.count(attr::MAX_LEN)?,
        }),
        exec::RENDER => OpKind::Render {
            template: a.string(attr::TEMPLATE)?,
            messages: messages(&a.json(attr::MESSAGES)?)?,
            model: a.string(attr::MODEL)?,
        },
        exec::TOKENIZE => OpKind::Tokenize {
            model: a.string(attr::MODEL)?,
        },
        exec::PREFILL => OpKind::Prefill {
            model: a.string(attr::MODEL)?,
            prefix: a.string(attr::PREFIX)?,
            prefix_tokens: a.count(attr::PREFIX_TOKENS)?,
        },
        exec::DECODE => OpKind::Decode {
            model: a.string(attr::MODEL)?,
            max_tokens: a.count(attr::MAX_TOKENS)?,
            sampling: SamplingParams {
                temperature: a.number(attr::TEMPERATURE)? as f32,
                top_k: a.count(attr::TOP_K)?,
                top_p: a.number(attr::TOP_P)? as f32,
                seed: a.count(attr::SEED)? as u64,
            },
            stop: a.strings(attr::STOP)?,
            constraint: a.constraint()?,
        },
        exec::DETOKENIZE => OpKind::Detokenize {
            json: a.string(attr::OUTPUT)? == attr::output_format::JSON,
        },
        exec::EMBED => OpKind::Embed {
            model: a.string(attr::MODEL)?,
        },
        exec::KNN => OpKind::Knn {
            index: a.string(attr::INDEX)?,
            k: a.count(attr::K)?,
        },
        exec::TOOL => OpKind::Tool {
            tool: a.string(attr::TOOL)?,
            args: a.object(attr::ARGS)?,
        },
        exec::JSON => match a.string(attr::MODE)?.as_str() {
            attr::json_mode::EXTRACT => OpKind::JsonExtract {
                template: a.string(attr::TEMPLATE)?,
                path: a.string(attr::PATH)?,
            },
            attr::json_mode::OBJECT => OpKind::JsonObject {
                fields: a
                    .object(attr::FIELDS)?
                    .into_iter()
                    .map(|(k, v)| match v {
                        Json::String(t) => Ok((k, t)),
                        other => Err(format!(
                            "attribute `{}`: field `{k}` must be a template string, found {other}",
                            attr::FIELDS
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            },
            other => {
                return Err(format!(
                    "attribute `{}` must be `{}` or `{}`, found `{other}`",
                    attr::MODE,
                    attr::json_mode::EXTRACT,
                    attr::json_mode::OBJECT
                ));
            }
        },
        exec::TRANSFER => OpKind::Transfer,
        exec::MAP => OpKind::Map {
            body: a.symbol(attr::BODY)?,
            max_concurrency: a.count(attr::MAX_CONCURRENCY)?,
        },
        exec::BRANCH => {
            let conditions = a.strings(attr::CONDITIONS)?;
            OpKind::Branch {
                conditions: conditions
                    .iter()
                    .map(|text| plan_condition(attr::CONDITIONS, text))
                    .collect::<Result<_, _>>()?,
                cases: symbols(&a.json(attr::CASES)?)
                    .ok_or_else(|| format!("attribute `{}` must be symbols", attr::CASES))?,
                default: a.symbol(attr::DEFAULT)?,
            }
        }
        exec::LOOP => OpKind::Loop {
            body: a.symbol(attr::BODY)?,
            max_iters: a.count(attr::MAX_ITERS)?,
            carry_operands: {
                let value = a.json(attr::CARRY_OPERANDS)?;
                value
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|i| i.as_u64().map(|i| i as usize))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| {
                        format!(
                            "attribute `{}` must be operand indexes, found {value}",
                            attr::CARRY_OPERANDS
                        )
                    })?
            },
            until: match a.string(attr::UNTIL)?.as_str() {
                "" => None,
                _ => Some(a.condition(attr::UNTIL)?),
            },
        },
        exec::OUTPUT => OpKind::Output {
            name: a.string(attr::NAME)?,
        },
        exec::KV_PREFIX => return Ok(None),
        other => return Err(format!("the runtime does not know the op `{other}`")),
    }))
}

/// The condition `text` of attribute `name`, in the plan form.
fn plan_condition(name: &str, text: &str) -> Result<PlanCondition, String> {
    parse_plan_condition(text).map_err(|e| format!("attribute `{name}` `{text}`: {e}"))
}

/// A render's `messages`: (role, content template) pairs.
fn messages(value: &Json) -> Result<Vec<(String, String)>, String> {
    let bad = || {
        format!(
            "attribute `{}` must be role/content dictionaries, found {value}",
            attr::MESSAGES
        )
    };
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|m| {
            let field = |f: &str| m.get(f).and_then(Json::as_str).map(str::to_owned);
            Some((field("role")?, field("content")?))
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)
}

/// Symbol names (`attribute_to_json` writes a symbol reference as its name).
fn symbols(value: &Json) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACED: &str = r#"device = "cpu0", predicted_ms = 2.5 : f64, usd = 0.0 : f64"#;

    /// A one-call plan; `decode` is the decode op's extra attributes.
    fn plan(tools: &str, decode: &str) -> String {
        format!(
            r#"module {{
  func.func @wf() attributes {{agent.sla = {{p95_ms = 1.0e+03 : f64}}, agent.models = [{{kind = "llm", name = "chat", path = "m.gguf"}}], agent.tools = {tools}, agent.indexes = []}} {{
    %0 = "exec.input"() {{node = "inputs.q", name = "q", max_len = 8 : i64, {PLACED}}} : () -> !exec.text
    %1 = "exec.tokenize"(%0) {{node = "a", model = "chat", est_tokens = 8 : i64, {PLACED}}} : (!exec.text) -> !exec.tokens
    %2 = "exec.prefill"(%1) {{node = "a", model = "chat", est_tokens = 8 : i64, prefix = "", prefix_tokens = 0 : i64, batch = "", {PLACED}}} : (!exec.tokens) -> !exec.kv
    %3 = "exec.decode"(%2) {{node = "a", model = "chat", est_tokens = 4 : i64, temperature = 0.0 : f64, top_p = 1.0 : f64, top_k = 0 : i64, seed = 7 : i64, stop = ["\n"], batch = "", {decode}, {PLACED}}} : (!exec.kv) -> !exec.tokens
    %4 = "exec.detokenize"(%3) {{node = "a", model = "chat", output = "json", {PLACED}}} : (!exec.tokens) -> !exec.json
    "exec.output"(%4) {{name = "answer"}} : (!exec.json) -> ()
    return
  }}
}}"#
        )
    }

    fn load(source: &str) -> Result<Program, PlanError> {
        Program::parse(source, Path::new("p.mlir"), PathBuf::from("/w"))
    }

    #[test]
    fn a_plan_reads_into_typed_ops_and_declarations() {
        let tools = r#"[{name = "calc", kind = "subprocess", command = ["python3", "c.py"], timeout_ms = 500 : i64, network = true}]"#;
        let program = load(&plan(tools, r#"max_tokens = 16 : i64, constraint = """#)).unwrap();
        assert_eq!(program.name, "wf");
        assert_eq!(program.sla_p95_ms(), 1000.0);
        assert_eq!(
            program.model_path(&program.models()[0]),
            Path::new("/w/m.gguf")
        );
        let tool = &program.tools()[0];
        assert_eq!((tool.name.as_str(), tool.timeout_ms), ("calc", 500));
        assert!(tool.network);
        assert_eq!(program.devices(), ["cpu0"]);
        let OpKind::Decode {
            max_tokens,
            sampling,
            stop,
            constraint,
            ..
        } = &program.main.ops[3].kind
        else {
            panic!("op 3 is {:?}", program.main.ops[3].kind);
        };
        assert_eq!((*max_tokens, sampling.seed), (16, 7));
        assert_eq!(stop, &["\n"]);
        // `output: json` without a declared schema decodes a JSON object.
        assert_eq!(constraint, &Some(OutputConstraint::JsonObject));
        assert_eq!(program.main.ops[3].predicted_ms, 2.5);
    }

    #[test]
    fn a_bad_attribute_is_an_error_naming_the_op_node_and_attribute() {
        let err = load(&plan("[]", r#"max_tokens = -1 : i64, constraint = """#)).unwrap_err();
        assert_eq!(
            err.message,
            "@wf: exec.decode (node `a`): attribute `max_tokens` must be a non-negative integer, found -1"
        );
        let err = load(&plan(
            "[]",
            r#"max_tokens = 4 : i64, constraint = "{\22grammar\22: 1}""#,
        ))
        .unwrap_err();
        assert!(
            err.message.starts_with(
                "@wf: exec.decode (node `a`): attribute `constraint`: expected {\"json_schema\""
            ),
            "{}",
            err.message
        );
        let tools = r#"[{name = "calc", kind = "subprocess", timeout = 5 : i64}]"#;
        let err = load(&plan(tools, r#"max_tokens = 4 : i64, constraint = """#)).unwrap_err();
        assert_eq!(
            err.message,
            "@wf: workflow attribute `agent.tools` at `[0].timeout`: unknown field `timeout`, expected one of `name`, `kind`, `command`, `url`, `method`, `args`, `output`, `timeout_ms`, `max_output_bytes`, `cost`, `fallbacks`, `network`, `reads`, `writes`, `confine`"
        );
    }
}

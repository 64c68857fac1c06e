//! Emits the `agent` dialect: one `func.func` per workflow, one op per node, map/branch/loop
//! bodies as private functions named by symbol attributes (see dialects/agent.irdl.mlir).
//!
//! Templated ops take their referenced values as operands in per-type groups; each template's
//! `${...}` is rewritten to `${N}` / `${N.field}`, N the operand's index in the op.

pub(crate) mod attrs;
mod captures;

use agentc_plan::attr;
use agentc_plan::decode::OutputConstraint;
use std::collections::{HashMap, HashSet};

use agentc_plan::{ValueType, agent};
use melior::Context;
use melior::dialect::func;
use melior::ir::attribute::{StringAttribute, TypeAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationBuilder;
use melior::ir::r#type::FunctionType;
use melior::ir::{Attribute, Block, Identifier, Location, Module, Region, RegionLike, Type, Value};

use crate::frontend::ast::*;
use crate::frontend::template::{Reference, Template, render_with};
use crate::graph::*;
use crate::{Error, Result};
use attrs::Attrs;

/// Emits and verifies the `agent` module of a workflow; returns it printed.
pub fn agent_mlir(graph: &WorkflowGraph, file: &str) -> Result<String> {
    let context = agentc_plan::new_context()?;
    let module = emit_agent(&context, graph, file)?;
    Ok(module.as_operation().to_string())
}

/// Emits the `agent` module of a workflow into `context` and verifies it.
pub fn emit_agent<'c>(
    context: &'c Context,
    graph: &WorkflowGraph,
    file: &str,
) -> Result<Module<'c>> {
    emit_agent_batched(context, graph, file, 1)
}

/// Emits one consolidated graph for `queries` runs of the workflow: the workflow function holds
/// every query's ops, node ids and input/output names prefixed `q<i>.`; bodies are shared.
pub fn emit_agent_batched<'c>(
    context: &'c Context,
    graph: &WorkflowGraph,
    file: &str,
    queries: usize,
) -> Result<Module<'c>> {
    let module = Module::new(Location::new(context, file, 1, 1));
    let mut ctx = LowerCtx {
        context,
        module: &module,
        graph,
        file,
        a: Attrs { context },
        prefix: String::new(),
        emitted: HashSet::new(),
    };
    ctx.emit_main(queries.max(1))?;
    agentc_plan::verify(context, &module)?;
    Ok(module)
}

/// What an operand of a compound op stands for, so its body can bind the matching argument.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum OperandKey {
    Target(Target),
    CarryInit(usize),
}

struct LowerCtx<'c, 'm> {
    context: &'c Context,
    module: &'m Module<'c>,
    graph: &'m WorkflowGraph,
    file: &'m str,
    a: Attrs<'c>,
    /// Prefix of node ids and input/output names: `q<i>.` in a batched graph, else empty.
    prefix: String,
    /// Body functions already emitted (queries of a batched graph share them).
    emitted: HashSet<String>,
}

type Env<'c, 'b> = HashMap<Target, Value<'c, 'b>>;

/// Operands of a templated op, the rewritten index of each target, and the group sizes.
struct TemplateOperands<'c, 'b> {
    values: Vec<Value<'c, 'b>>,
    segments: Vec<i32>,
    index: HashMap<Target, usize>,
}

/// What a templated op is: its name, node id, location, the scope its templates are read in,
/// the templates and its result type.
struct OpSpec<'t> {
    name: &'static str,
    node: &'t str,
    loc: Option<NodeIx>,
    scope: ScopeId,
    templates: &'t [&'t Template],
    ty: ValueType,
}

impl<'c, 'm> LowerCtx<'c, 'm> {
    fn ty(&self, t: ValueType) -> Result<Type<'c>> {
        Type::parse(self.context, &t.mlir())
            .ok_or_else(|| Error::Internal(format!("type {} does not parse", t.mlir())))
    }

    fn loc(&self, node: Option<NodeIx>) -> Location<'c> {
        match node {
            Some(n) => {
                let p = self.graph.nodes[n].span.start;
                Location::new(self.context, self.file, p.line, p.col)
            }
            None => Location::new(self.context, self.file, 1, 1),
        }
    }

    fn emit_main(&mut self, queries: usize) -> Result<()> {
        let g = self.graph;
        let block = Block::new(&[]);
        for q in 0..queries {
            self.prefix = if queries > 1 {
                format!("q{q}.")
            } else {
                String::new()
            };
            let mut env: Env = HashMap::new();
            for (i, input) in g.inputs.iter().enumerate() {
                let ty = g.target_type(Target::Input(i));
                let op = OperationBuilder::new(agent::INPUT, self.loc(None))
                    .add_attributes(&[
                        self.a.named(
                            attr::NODE,
                            self.a.str(&format!("{}inputs.{}", self.prefix, input.name)),
                        ),
                        self.a.named(
                            attr::NAME,
                            self.a.str(&format!("{}{}", self.prefix, input.name)),
                        ),
                        self.a
                            .named(attr::MAX_LEN, self.a.int(input.max_len.unwrap_or(0) as i64)),
                    ])
                    .add_results(&[self.ty(ty)?])
                    .build()?;
                let op = block.append_operation(op);
                env.insert(Target::Input(i), op.result(0)?.into());
            }
            self.emit_scope(ROOT_SCOPE, &block, &mut env)?;
            for out in &g.outputs {
                let value = self.materialize(
                    ROOT_SCOPE,
                    &out.value,
                    &format!("outputs.{}", out.name),
                    None,
                    &block,
                    &env,
                )?;
                let op = OperationBuilder::new(agent::OUTPUT, self.loc(None))
                    .add_attributes(&[self.a.named(
                        attr::NAME,
                        self.a.str(&format!("{}{}", self.prefix, out.name)),
                    )])
                    .add_operands(&[value])
                    .build()?;
                block.append_operation(op);
            }
        }
        self.prefix.clear();
        block.append_operation(func::r#return(&[], self.loc(None)));
        let region = Region::new();
        region.append_block(block);
        let f = func::func(
            self.context,
            StringAttribute::new(self.context, &g.name),
            TypeAttribute::new(FunctionType::new(self.context, &[], &[]).into()),
            region,
            &self.a.workflow_attrs(g)?,
            self.loc(None),
        );
        self.module.body().append_operation(f);
        Ok(())
    }

    fn emit_scope<'b>(
        &mut self,
        scope: ScopeId,
        block: &'b Block<'c>,
        env: &mut Env<'c, 'b>,
    ) -> Result<()> {
        for &ix in &self.graph.scopes[scope].order {
            let value = self.emit_node(ix, block, env)?;
            env.insert(Target::Node(ix), value);
        }
        Ok(())
    }

    /// Operands for the references of `templates` (in first-use order, grouped by type) and the
    /// operand index of each target.
    fn template_operands<'b>(
        &self,
        scope: ScopeId,
        templates: &[&Template],
        env: &Env<'c, 'b>,
    ) -> Result<TemplateOperands<'c, 'b>> {
        let mut targets: Vec<Target> = Vec::new();
        for t in templates {
            for r in t.refs() {
                let target = self.lookup(scope, r)?;
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        let keyed: Vec<(OperandKey, ValueType)> = targets
            .iter()
            .map(|&t| (OperandKey::Target(t), self.graph.target_type(t)))
            .collect();
        let (order, segments) = group_by_type(&keyed);
        let mut index = HashMap::new();
        let mut values = Vec::new();
        for (i, &k) in order.iter().enumerate() {
            let OperandKey::Target(t) = keyed[k].0 else {
                continue;
            };
            index.insert(t, i);
            values.push(self.value(env, t)?);
        }
        Ok(TemplateOperands {
            values,
            segments,
            index,
        })
    }

    fn lookup(&self, scope: ScopeId, r: &Reference) -> Result<Target> {
        self.graph.lookup(scope, &r.root).ok_or_else(|| {
            Error::Internal(format!(
                "unresolved reference `{}` after validation",
                r.display()
            ))
        })
    }

    fn value<'b>(&self, env: &Env<'c, 'b>, t: Target) -> Result<Value<'c, 'b>> {
        env.get(&t)
            .copied()
            .ok_or_else(|| Error::Internal(format!("no value for {t:?} in scope")))
    }

    fn rewrite(&self, scope: ScopeId, t: &Template, index: &HashMap<Target, usize>) -> String {
        render_with(t, |r| {
            let i = self
                .graph
                .lookup(scope, &r.root)
                .and_then(|t| index.get(&t))
                .copied()
                .unwrap_or(usize::MAX);
            let mut s = format!("${{{i}");
            for p in &r.path {
                s.push('.');
                s.push_str(p);
            }
            s.push('}');
            s
        })
    }

    /// Builds a templated op: operands for every reference of its templates, attributes from
    /// `attrs` (given the function that rewrites a template to operand indices), one result.
    fn templated<'b>(
        &self,
        spec: OpSpec<'_>,
        attrs: impl FnOnce(&dyn Fn(&Template) -> String) -> Vec<(Identifier<'c>, Attribute<'c>)>,
        block: &'b Block<'c>,
        env: &Env<'c, 'b>,
    ) -> Result<Value<'c, 'b>> {
        let ops = self.template_operands(spec.scope, spec.templates, env)?;
        let rewrite = |t: &Template| self.rewrite(spec.scope, t, &ops.index);
        let mut all = vec![
            self.a.named(
                attr::NODE,
                self.a.str(&format!("{}{}", self.prefix, spec.node)),
            ),
            self.a
                .named("operandSegmentSizes", self.a.segments(&ops.segments)),
        ];
        all.extend(attrs(&rewrite));
        let op = OperationBuilder::new(spec.name, self.loc(spec.loc))
            .add_operands(&ops.values)
            .add_attributes(&all)
            .add_results(&[self.ty(spec.ty)?])
            .build()?;
        Ok(block.append_operation(op).result(0)?.into())
    }

    /// A value for a template: the referenced value itself, a json extraction of a field, or a
    /// rendered text.
    fn materialize<'b>(
        &self,
        scope: ScopeId,
        t: &TemplateField,
        node: &str,
        loc: Option<NodeIx>,
        block: &'b Block<'c>,
        env: &Env<'c, 'b>,
    ) -> Result<Value<'c, 'b>> {
        if let Some(r) = t.template.sole_ref() {
            let target = self.lookup(scope, r)?;
            if r.path.is_empty() {
                return self.value(env, target);
            }
            let path = r.path.join(".");
            return self.templated(
                OpSpec {
                    name: agent::JSON,
                    node,
                    loc,
                    scope,
                    templates: &[&t.template],
                    ty: ValueType::Json,
                },
                |_| {
                    vec![
                        self.a.named(attr::MODE, self.a.str("extract")),
                        self.a.named(attr::TEMPLATE, self.a.str("${0}")),
                        self.a.named(attr::PATH, self.a.str(&path)),
                        self.a.named(attr::FIELDS, self.a.dict(&[])),
                    ]
                },
                block,
                env,
            );
        }
        self.templated(
            OpSpec {
                name: agent::RENDER,
                node,
                loc,
                scope,
                templates: &[&t.template],
                ty: ValueType::Text,
            },
            |rw| vec![self.a.named(attr::TEMPLATE, self.a.str(&rw(&t.template)))],
            block,
            env,
        )
    }

    fn emit_node<'b>(
        &mut self,
        ix: NodeIx,
        block: &'b Block<'c>,
        env: &mut Env<'c, 'b>,
    ) -> Result<Value<'c, 'b>> {
        let g = self.graph;
        let n = &g.nodes[ix];
        let (s, id, ty, at) = (n.scope, n.id.as_str(), n.ty, Some(ix));
        let a = &self.a;
        match &n.op {
            Op::Llm(l) => {
                let (mode, msgs): (&str, Vec<(&str, &Template)>) = match (&l.prompt, &l.messages) {
                    (Some(p), _) => (
                        attr::llm_mode::PROMPT,
                        vec![(attr::llm_mode::PROMPT, &p.template)],
                    ),
                    (None, Some(m)) => (
                        attr::llm_mode::CHAT,
                        m.iter()
                            .map(|m| (m.role.as_str(), &m.content.template))
                            .collect(),
                    ),
                    (None, None) => {
                        return Err(Error::Internal(format!("llm node `{id}` has no prompt")));
                    }
                };
                let templates: Vec<&Template> = msgs.iter().map(|(_, t)| *t).collect();
                self.templated(
                    OpSpec {
                        name: agent::LLM,
                        node: id,
                        loc: at,
                        scope: s,
                        templates: &templates,
                        ty,
                    },
                    |rw| {
                        let messages: Vec<Attribute> = msgs
                            .iter()
                            .map(|(role, t)| {
                                a.dict(&[
                                    (attr::message::ROLE, a.str(role)),
                                    (attr::message::CONTENT, a.str(&rw(t))),
                                ])
                            })
                            .collect();
                        vec![
                            a.named(attr::MODEL, a.str(&l.model)),
                            a.named(attr::MODE, a.str(mode)),
                            a.named(attr::MESSAGES, a.array(&messages)),
                            a.named(attr::MAX_TOKENS, a.int(l.max_tokens as i64)),
                            a.named(attr::TEMPERATURE, a.float(l.temperature)),
                            a.named(attr::TOP_P, a.float(l.top_p)),
                            a.named(attr::TOP_K, a.int(l.top_k as i64)),
                            a.named(attr::SEED, a.int(l.seed as i64)),
                            a.named(
                                attr::STOP,
                                a.array(&l.stop.iter().map(|s| a.str(s)).collect::<Vec<_>>()),
                            ),
                            a.named(
                                attr::OUTPUT,
                                a.str(if l.output == OutputFormat::Json {
                                    "json"
                                } else {
                                    "text"
                                }),
                            ),
                            a.named(attr::CONSTRAINT, a.str(&constraint_attr(&l.constraint))),
                        ]
                    },
                    block,
                    env,
                )
            }
            Op::Embed(e) => self.templated(
                OpSpec {
                    name: agent::EMBED,
                    node: id,
                    loc: at,
                    scope: s,
                    templates: &[&e.input.template],
                    ty,
                },
                |rw| {
                    vec![
                        a.named(attr::MODEL, a.str(&e.model)),
                        a.named(attr::TEMPLATE, a.str(&rw(&e.input.template))),
                    ]
                },
                block,
                env,
            ),
            Op::Retrieve(r) => self.templated(
                OpSpec {
                    name: agent::RETRIEVE,
                    node: id,
                    loc: at,
                    scope: s,
                    templates: &[&r.query.template],
                    ty,
                },
                |rw| {
                    vec![
                        a.named(attr::INDEX, a.str(&r.index)),
                        a.named(attr::K, a.int(r.k as i64)),
                        a.named(attr::TEMPLATE, a.str(&rw(&r.query.template))),
                    ]
                },
                block,
                env,
            ),
            Op::Tool(t) => {
                let templates: Vec<&Template> = t
                    .args
                    .iter()
                    .filter_map(|(_, v)| match v {
                        ArgValue::Template(t) => Some(&t.template),
                        ArgValue::Literal(..) => None,
                    })
                    .collect();
                self.templated(
                    OpSpec {
                        name: agent::TOOL,
                        node: id,
                        loc: at,
                        scope: s,
                        templates: &templates,
                        ty,
                    },
                    |rw| {
                        let args: Vec<(&str, Attribute)> = t
                            .args
                            .iter()
                            .map(|(name, v)| {
                                (
                                    name.as_str(),
                                    match v {
                                        ArgValue::Template(t) => a.str(&rw(&t.template)),
                                        ArgValue::Literal(v, _) => a.json(v),
                                    },
                                )
                            })
                            .collect();
                        vec![
                            a.named(attr::TOOL, a.str(&t.tool)),
                            a.named(attr::ARGS, a.dict(&args)),
                        ]
                    },
                    block,
                    env,
                )
            }
            Op::Render(r) => self.templated(
                OpSpec {
                    name: agent::RENDER,
                    node: id,
                    loc: at,
                    scope: s,
                    templates: &[&r.template.template],
                    ty,
                },
                |rw| vec![a.named(attr::TEMPLATE, a.str(&rw(&r.template.template)))],
                block,
                env,
            ),
            Op::Json(j) => {
                let mut templates: Vec<&Template> = j.from.iter().map(|f| &f.template).collect();
                templates.extend(j.fields.iter().flatten().map(|(_, t)| &t.template));
                self.templated(
                    OpSpec {
                        name: agent::JSON,
                        node: id,
                        loc: at,
                        scope: s,
                        templates: &templates,
                        ty,
                    },
                    |rw| match (&j.from, &j.fields) {
                        (Some(f), _) => vec![
                            a.named(attr::MODE, a.str("extract")),
                            a.named(attr::TEMPLATE, a.str(&rw(&f.template))),
                            a.named(attr::PATH, a.str(j.path.as_deref().unwrap_or(""))),
                            a.named(attr::FIELDS, a.dict(&[])),
                        ],
                        (None, fields) => {
                            let fields: Vec<(&str, Attribute)> = fields
                                .iter()
                                .flatten()
                                .map(|(k, t)| (k.as_str(), a.str(&rw(&t.template))))
                                .collect();
                            vec![
                                a.named(attr::MODE, a.str("object")),
                                a.named(attr::TEMPLATE, a.str("")),
                                a.named(attr::PATH, a.str("")),
                                a.named(attr::FIELDS, a.dict(&fields)),
                            ]
                        }
                    },
                    block,
                    env,
                )
            }
            Op::Map { .. } | Op::Branch { .. } | Op::Loop { .. } => {
                self.emit_compound(ix, block, env)
            }
        }
    }
}

/// Orders operands by type group (stable within a group); returns the order (indices into
/// `operands`) and the size of each of the five groups.
fn group_by_type(operands: &[(OperandKey, ValueType)]) -> (Vec<usize>, Vec<i32>) {
    let mut order = Vec::with_capacity(operands.len());
    let mut segments = Vec::with_capacity(ValueType::ALL.len());
    for t in ValueType::ALL {
        let before = order.len();
        order.extend(
            operands
                .iter()
                .enumerate()
                .filter(|(_, (_, ty))| *ty == t)
                .map(|(i, _)| i),
        );
        segments.push((order.len() - before) as i32);
    }
    (order, segments)
}

/// An llm node's output constraint as the `constraint` attribute of `agent.llm` and
/// `exec.decode`: the JSON text of [`OutputConstraint::to_json`], or empty.
fn constraint_attr(constraint: &Option<LlmConstraint>) -> String {
    let constraint = match constraint {
        None => return String::new(),
        Some(LlmConstraint::Schema { schema, .. }) => OutputConstraint::JsonSchema(schema.clone()),
        Some(LlmConstraint::Regex(rx)) => OutputConstraint::Regex(rx.clone()),
        Some(LlmConstraint::Choice(c)) => OutputConstraint::Choice(c.clone()),
    };
    constraint.to_json().to_string()
}

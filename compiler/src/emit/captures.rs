//! Compound nodes (map, branch, loop): their bodies become private functions that take, as
//! arguments, the body's own variables followed by every operand of the compound op; operands
//! are the values the bodies read from outside (captures), plus what the op itself consumes.

use agentc_plan::attr;
use std::collections::HashMap;

use agentc_plan::{ValueType, agent};
use melior::dialect::func;
use melior::ir::attribute::{StringAttribute, TypeAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::OperationBuilder;
use melior::ir::r#type::FunctionType;
use melior::ir::{Attribute, Block, Region, RegionLike, Value, ValueLike};

use super::{Env, LowerCtx, OperandKey, group_by_type};

/// A body function to emit: its symbol, scope, arguments (the body's variables, then the
/// compound op's operands) and results (`results`, then the values `extra` references read).
struct BodySpec<'s> {
    name: &'s str,
    scope: ScopeId,
    vars: &'s [(Target, ValueType)],
    operands: &'s [(OperandKey, ValueType)],
    results: &'s [&'s TemplateField],
    extra: &'s [&'s Reference],
    owner: Option<NodeIx>,
}
use crate::frontend::ast::TemplateField;
use crate::frontend::template::Reference;
use crate::frontend::uses as resolve_uses;
use crate::graph::*;
use crate::{Error, Result};

impl<'c, 'm> LowerCtx<'c, 'm> {
    /// Targets read inside the bodies of `ix` but defined outside them, in first-use order.
    fn captures(&self, ix: NodeIx) -> Vec<Target> {
        let g = self.graph;
        let bodies = g.nodes[ix].op.bodies();
        let inside_scope = |s: ScopeId| bodies.iter().any(|&b| g.scope_within(s, b));
        let mut out = Vec::new();
        let visit = |scope: ScopeId, r: &Reference, out: &mut Vec<Target>| {
            if !inside_scope(scope) {
                return;
            }
            let Some(t) = g.lookup(scope, &r.root) else {
                return;
            };
            let inside = match t {
                Target::Input(_) => false,
                Target::Node(n) => inside_scope(g.nodes[n].scope),
                Target::Var { scope, .. } => inside_scope(scope),
            };
            if !inside && !out.contains(&t) {
                out.push(t);
            }
        };
        // The compound's own body expressions, then every node nested in its bodies.
        let mut nodes = vec![ix];
        let mut i = 0;
        while i < nodes.len() {
            let n = nodes[i];
            for s in g.nodes[n].op.bodies() {
                nodes.extend(g.scopes[s].nodes.iter().copied());
            }
            i += 1;
        }
        for n in nodes {
            for u in resolve_uses(g, n) {
                visit(u.scope, u.reference, &mut out);
            }
        }
        out
    }

    pub(super) fn emit_compound<'b>(
        &mut self,
        ix: NodeIx,
        block: &'b Block<'c>,
        env: &mut Env<'c, 'b>,
    ) -> Result<Value<'c, 'b>> {
        let g = self.graph;
        let node = &g.nodes[ix];
        let (scope, id) = (node.scope, node.id.clone());
        let a = self.a;
        // Logical operands: (key, type, value); grouped by type below.
        let mut logical: Vec<(OperandKey, ValueType, Value<'c, 'b>)> = Vec::new();
        let mut fixed: Vec<Value<'c, 'b>> = Vec::new();
        let push_target =
            |t: Target, logical: &mut Vec<(OperandKey, ValueType, Value<'c, 'b>)>| -> Result<()> {
                if !logical.iter().any(|(k, _, _)| *k == OperandKey::Target(t)) {
                    logical.push((OperandKey::Target(t), g.target_type(t), self.value(env, t)?));
                }
                Ok(())
            };
        match &node.op {
            Op::Map { over, .. } => fixed.push(self.materialize(
                scope,
                over,
                &format!("{id}.over"),
                Some(ix),
                block,
                env,
            )?),
            Op::Branch { cases, .. } => {
                for (when, _, _) in cases {
                    for r in when.condition.refs() {
                        push_target(self.lookup(scope, r)?, &mut logical)?;
                    }
                }
            }
            Op::Loop { carry, .. } => {
                for (i, (name, init)) in carry.iter().enumerate() {
                    let v = self.materialize(
                        scope,
                        init,
                        &format!("{id}.carry.{name}"),
                        Some(ix),
                        block,
                        env,
                    )?;
                    let ty = g
                        .template_type(scope, &init.template)
                        .unwrap_or(ValueType::Text);
                    logical.push((OperandKey::CarryInit(i), ty, v));
                }
            }
            _ => return Err(Error::Internal(format!("`{id}` is not a compound node"))),
        }
        for t in self.captures(ix) {
            push_target(t, &mut logical)?;
        }
        let keyed: Vec<(OperandKey, ValueType)> =
            logical.iter().map(|(k, t, _)| (*k, *t)).collect();
        let (order, mut segments) = group_by_type(&keyed);
        let operands: Vec<(OperandKey, ValueType)> = order.iter().map(|&i| keyed[i]).collect();
        let mut values: Vec<Value<'c, 'b>> = fixed.clone();
        values.extend(order.iter().map(|&i| logical[i].2));
        if !fixed.is_empty() {
            segments.insert(0, 1);
        }
        let operand_index: HashMap<OperandKey, usize> = operands
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (*k, i))
            .collect();
        let fname = |suffix: &str| format!("{}__{}_{}", g.name, id, suffix);

        let (name, attrs): (&str, Vec<_>) = match &node.op {
            Op::Map {
                item,
                body,
                output,
                max_concurrency,
                ..
            } => {
                let f = fname("body");
                let item_ty = g.scopes[*body].vars[0].1;
                let vars = [(
                    Target::Var {
                        scope: *body,
                        index: 0,
                    },
                    item_ty,
                )];
                self.emit_body(BodySpec {
                    name: &f,
                    scope: *body,
                    vars: &vars,
                    operands: &operands,
                    results: &[output],
                    extra: &[],
                    owner: None,
                })?;
                (
                    agent::MAP,
                    vec![
                        a.named(attr::BODY, a.sym(&f)),
                        a.named(attr::ITEM, a.str(item)),
                        a.named(attr::MAX_CONCURRENCY, a.int(*max_concurrency as i64)),
                    ],
                )
            }
            Op::Branch { cases, otherwise } => {
                let mut conditions = Vec::new();
                let mut syms = Vec::new();
                for (i, (when, body, output)) in cases.iter().enumerate() {
                    let f = fname(&format!("case{i}"));
                    self.emit_body(BodySpec {
                        name: &f,
                        scope: *body,
                        vars: &[],
                        operands: &operands,
                        results: &[output],
                        extra: &[],
                        owner: None,
                    })?;
                    syms.push(a.sym(&f));
                    conditions.push(
                        a.str(
                            &when
                                .condition
                                .render_with(|r| operand_ref(g, scope, r, &operand_index)),
                        ),
                    );
                }
                let f = fname("else");
                self.emit_body(BodySpec {
                    name: &f,
                    scope: otherwise.0,
                    vars: &[],
                    operands: &operands,
                    results: &[&otherwise.1],
                    extra: &[],
                    owner: None,
                })?;
                (
                    agent::BRANCH,
                    vec![
                        a.named(attr::CONDITIONS, a.array(&conditions)),
                        a.named(attr::CASES, a.array(&syms)),
                        a.named(attr::DEFAULT, a.sym(&f)),
                    ],
                )
            }
            Op::Loop {
                max_iters,
                carry,
                body,
                next,
                until,
                output,
            } => {
                let f = fname("body");
                let vars: Vec<(Target, ValueType)> = g.scopes[*body]
                    .vars
                    .iter()
                    .enumerate()
                    .map(|(i, (_, t))| {
                        (
                            Target::Var {
                                scope: *body,
                                index: i,
                            },
                            *t,
                        )
                    })
                    .collect();
                let nexts: Vec<&TemplateField> = carry
                    .iter()
                    .filter_map(|(c, _)| next.iter().find(|(n, _)| n == c).map(|(_, t)| t))
                    .collect();
                let mut results = nexts;
                results.push(output);
                let until_refs: Vec<&Reference> =
                    until.iter().flat_map(|u| u.condition.refs()).collect();
                self.emit_body(BodySpec {
                    name: &f,
                    scope: *body,
                    vars: &vars,
                    operands: &operands,
                    results: &results,
                    extra: &until_refs,
                    owner: Some(ix),
                })?;
                let mut until_index = HashMap::new();
                for (i, r) in until_refs.iter().enumerate() {
                    if let Some(t) = g.lookup(*body, &r.root) {
                        until_index.entry(t).or_insert(i);
                    }
                }
                let until_text = until.as_ref().map_or(String::new(), |u| {
                    u.condition.render_with(|r| {
                        let i = g
                            .lookup(*body, &r.root)
                            .and_then(|t| until_index.get(&t))
                            .copied()
                            .unwrap_or(usize::MAX);
                        with_path(i, r)
                    })
                });
                let carry_names: Vec<Attribute> = carry.iter().map(|(n, _)| a.str(n)).collect();
                let carry_ops: Vec<Attribute> = (0..carry.len())
                    .map(|i| a.int(operand_index[&OperandKey::CarryInit(i)] as i64))
                    .collect();
                (
                    agent::LOOP,
                    vec![
                        a.named(attr::BODY, a.sym(&f)),
                        a.named(attr::MAX_ITERS, a.int(*max_iters as i64)),
                        a.named(attr::CARRY, a.array(&carry_names)),
                        a.named(attr::CARRY_OPERANDS, a.array(&carry_ops)),
                        a.named(attr::UNTIL, a.str(&until_text)),
                    ],
                )
            }
            _ => unreachable_compound(&id)?,
        };
        let mut all = vec![
            a.named(attr::NODE, a.str(&format!("{}{id}", self.prefix))),
            a.named("operandSegmentSizes", a.segments(&segments)),
        ];
        all.extend(attrs);
        let op = OperationBuilder::new(name, self.loc(Some(ix)))
            .add_operands(&values)
            .add_attributes(&all)
            .add_results(&[self.ty(node.ty)?])
            .build()?;
        Ok(block.append_operation(op).result(0)?.into())
    }

    /// Emits a body function (see [`BodySpec`]).
    fn emit_body(&mut self, spec: BodySpec<'_>) -> Result<()> {
        if !self.emitted.insert(spec.name.to_string()) {
            // A batched graph's queries share one body function.
            return Ok(());
        }
        // Bodies are shared code: their node ids carry no query prefix.
        let saved_prefix = std::mem::take(&mut self.prefix);
        let result = self.emit_body_func(spec);
        self.prefix = saved_prefix;
        result
    }

    fn emit_body_func(&mut self, spec: BodySpec<'_>) -> Result<()> {
        let BodySpec {
            name,
            scope,
            vars,
            operands,
            results,
            extra,
            owner,
        } = spec;
        let g = self.graph;
        let mut arg_types = Vec::new();
        for t in vars
            .iter()
            .map(|(_, t)| *t)
            .chain(operands.iter().map(|(_, t)| *t))
        {
            arg_types.push((self.ty(t)?, self.loc(owner)));
        }
        let block = Block::new(&arg_types);
        let mut env: Env = HashMap::new();
        for (i, (t, _)) in vars.iter().enumerate() {
            env.insert(*t, block.argument(i)?.into());
        }
        for (i, (k, _)) in operands.iter().enumerate() {
            if let OperandKey::Target(t) = k {
                env.insert(*t, block.argument(vars.len() + i)?.into());
            }
        }
        self.emit_scope(scope, &block, &mut env)?;
        let owner_id = g.scopes[scope]
            .owner
            .map(|o| g.nodes[o].id.clone())
            .unwrap_or_default();
        let mut out = Vec::new();
        let mut out_types = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let v = self.materialize(
                scope,
                r,
                &format!("{owner_id}.result{i}"),
                owner,
                &block,
                &env,
            )?;
            out_types.push(v.r#type());
            out.push(v);
        }
        let mut seen = Vec::new();
        for r in extra {
            let t = self.lookup(scope, r)?;
            if !seen.contains(&t) {
                seen.push(t);
                let v = self.value(&env, t)?;
                out_types.push(v.r#type());
                out.push(v);
            }
        }
        block.append_operation(func::r#return(&out, self.loc(owner)));
        let region = Region::new();
        region.append_block(block);
        let in_types: Vec<_> = arg_types.iter().map(|(t, _)| *t).collect();
        let f = func::func(
            self.context,
            StringAttribute::new(self.context, name),
            TypeAttribute::new(FunctionType::new(self.context, &in_types, &out_types).into()),
            region,
            &[self
                .a
                .named(attr::func::SYM_VISIBILITY, self.a.str("private"))],
            self.loc(owner),
        );
        self.module.body().append_operation(f);
        Ok(())
    }
}

/// Operand `i` with `r`'s field path, as a plan condition writes it (`${i.path}`).
fn with_path(i: usize, r: &Reference) -> String {
    agentc_plan::condition::OperandRef {
        index: i,
        path: r.path.join("."),
    }
    .to_string()
}

fn operand_ref(
    g: &WorkflowGraph,
    scope: ScopeId,
    r: &Reference,
    index: &HashMap<OperandKey, usize>,
) -> String {
    let i = g
        .lookup(scope, &r.root)
        .and_then(|t| index.get(&OperandKey::Target(t)))
        .copied()
        .unwrap_or(usize::MAX);
    with_path(i, r)
}

fn unreachable_compound<T>(id: &str) -> Result<T> {
    Err(Error::Internal(format!("`{id}` is not a compound node")))
}

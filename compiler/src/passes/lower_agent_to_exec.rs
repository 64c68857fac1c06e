//! `lower-agent-to-exec`: rewrites the `agent` dialect into granular `exec` operators.
//!
//! Expects: a verified `agent` module (one public workflow function, private bodies).
//! Guarantees: a verified `exec` module with the same functions; every op unplaced (`device` "")
//! and annotated with token estimates: `llm` -> render, tokenize, prefill, decode, detokenize;
//! `embed` -> (render) embed; `retrieve` -> (render, embed) knn; the rest one op each.
//!
//! Token estimates: static template text is counted with the model's tokenizer (through
//! [`TokenCounter`]); values add their estimated sizes: an input its `max_len`, a generation its
//! `max_tokens`, retrieved passages `k` x [`DOC_TOKENS`], and so on. Bodies are converted when
//! their compound op is, so their arguments carry the caller's sizes.

use agentc_plan::attr;
use agentc_plan::program::workflow_declarations;
use std::collections::HashMap;

use agentc_plan::exec;
use melior::dialect::func;
use melior::ir::attribute::{
    DictionaryAttribute, FlatSymbolRefAttribute, StringAttribute, TypeAttribute,
};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationBuilder, OperationLike, OperationRef};
use melior::ir::r#type::FunctionType;
use melior::ir::{
    Attribute, Block, Identifier, Location, Module, Region, RegionLike, Type, Value, ValueLike,
};

use super::ir::*;
use super::{Pass, PassContext};
use crate::emit::attrs::Attrs;
use crate::{Error, Result};

/// Tokens assumed for an input without `max_len`.
pub const DEFAULT_INPUT_TOKENS: u64 = 256;
/// Tokens per retrieved passage.
pub const DOC_TOKENS: u64 = 128;
/// Tokens of a tool's output.
pub const TOOL_TOKENS: u64 = 64;
/// Elements assumed in a list whose length is unknown at compile time.
pub const DEFAULT_LIST_ITEMS: u64 = 8;
/// Chat-template tokens around each message (role markers, separators).
pub const CHAT_TOKENS_PER_MESSAGE: u64 = 4;
/// Tokens a loop's carried text grows by per iteration.
pub const LOOP_CARRY_GROWTH: u64 = 64;

pub struct LowerAgentToExec;

impl Pass for LowerAgentToExec {
    fn name(&self) -> &'static str {
        "lower-agent-to-exec"
    }

    fn run<'c>(&self, cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let lowered = {
            let mut lowering = Lowering::new(cx, module)?;
            lowering.run()?;
            lowering.dst
        };
        *module = lowered;
        Ok(true)
    }
}

type Sizes = HashMap<usize, u64>;
type Values<'c, 'b> = HashMap<usize, Value<'c, 'b>>;

struct Lowering<'c, 'm, 'x> {
    cx: &'x PassContext<'c, 'x>,
    a: Attrs<'c>,
    funcs: HashMap<String, OperationRef<'c, 'm>>,
    public: String,
    dst: Module<'c>,
    done: HashMap<String, Vec<u64>>,
    /// Index name -> its embedding model.
    index_models: HashMap<String, String>,
}

/// A template's static text (placeholders removed, escapes undone) and its operand uses.
pub fn template_parts(template: &str) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut uses = Vec::new();
    for piece in template_pieces(template) {
        match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Operand { index, .. } => uses.push(index),
        }
    }
    (text, uses)
}

impl<'c, 'm, 'x> Lowering<'c, 'm, 'x> {
    fn new(cx: &'x PassContext<'c, 'x>, src: &'m Module<'c>) -> Result<Self> {
        let mut funcs = HashMap::new();
        let mut public = None;
        let mut index_models = HashMap::new();
        for f in module_ops(src) {
            if op_name(&f) != "func.func" {
                continue;
            }
            let name = str_attr(&f, attr::func::SYM_NAME)?;
            if !f.has_attribute(attr::func::SYM_VISIBILITY) {
                public = Some(name.clone());
                let declarations = workflow_declarations(&f)
                    .map_err(|e| Error::Internal(format!("@{name}: {e}")))?;
                index_models = declarations
                    .indexes
                    .into_iter()
                    .map(|i| (i.name, i.model))
                    .collect();
            }
            funcs.insert(name, f);
        }
        let public =
            public.ok_or_else(|| Error::Internal("no public workflow function to lower".into()))?;
        Ok(Lowering {
            cx,
            a: Attrs {
                context: cx.context,
            },
            funcs,
            public,
            dst: Module::new(Location::unknown(cx.context)),
            done: HashMap::new(),
            index_models,
        })
    }

    fn run(&mut self) -> Result<()> {
        let public = self.public.clone();
        self.convert_func(&public, &[])?;
        Ok(())
    }

    fn ty(&self, t: Type<'c>) -> Result<Type<'c>> {
        let text = t.to_string().replace("!agent.", "!exec.");
        Type::parse(self.cx.context, &text)
            .ok_or_else(|| Error::Internal(format!("type {text} does not parse")))
    }

    /// Converts a function (once), returning the estimated sizes of its results.
    fn convert_func(&mut self, name: &str, arg_sizes: &[u64]) -> Result<Vec<u64>> {
        if let Some(sizes) = self.done.get(name) {
            return Ok(sizes.clone());
        }
        let f = *self
            .funcs
            .get(name)
            .ok_or_else(|| Error::Internal(format!("no function @{name}")))?;
        let body = func_block(f)?;
        let mut arg_types = Vec::new();
        for i in 0..body.argument_count() {
            let arg = body.argument(i)?;
            arg_types.push((self.ty(arg.r#type())?, arg.location()));
        }
        let block = Block::new(&arg_types);
        let mut values: Values = HashMap::new();
        let mut sizes: Sizes = HashMap::new();
        for i in 0..body.argument_count() {
            let new: Value = block.argument(i)?.into();
            values.insert(value_key(body.argument(i)?.into()), new);
            sizes.insert(
                value_key(new),
                arg_sizes.get(i).copied().unwrap_or(DEFAULT_INPUT_TOKENS),
            );
        }
        let mut result_sizes = Vec::new();
        let mut result_types = Vec::new();
        for op in block_ops(body) {
            if op_name(&op) == "func.return" {
                let mut operands = Vec::new();
                for v in op.operands() {
                    let new = self.map(&values, v)?;
                    result_sizes.push(sizes.get(&value_key(new)).copied().unwrap_or(0));
                    result_types.push(new.r#type());
                    operands.push(new);
                }
                block.append_operation(func::r#return(&operands, op.location()));
            } else {
                self.convert_op(op, &block, &mut values, &mut sizes)?;
            }
        }
        let region = Region::new();
        region.append_block(block);
        let inputs: Vec<Type> = arg_types.iter().map(|(t, _)| *t).collect();
        let fty = FunctionType::new(self.cx.context, &inputs, &result_types);
        let mut attrs = Vec::new();
        for (id, attr) in f.attributes() {
            let key = id.as_string_ref().as_str().unwrap_or("").to_string();
            if key != "sym_name" && key != "function_type" {
                attrs.push((id, attr));
            }
        }
        let new = func::func(
            self.cx.context,
            StringAttribute::new(self.cx.context, name),
            TypeAttribute::new(fty.into()),
            region,
            &attrs,
            f.location(),
        );
        self.dst.body().append_operation(new);
        self.done.insert(name.to_string(), result_sizes.clone());
        Ok(result_sizes)
    }

    fn map<'b>(&self, values: &Values<'c, 'b>, v: Value<'c, '_>) -> Result<Value<'c, 'b>> {
        values
            .get(&value_key(v))
            .copied()
            .ok_or_else(|| Error::Internal("operand defined after its use".into()))
    }

    /// Estimated tokens of a template rendered over `operands`.
    fn template_tokens(
        &self,
        model: &str,
        template: &str,
        operands: &[Value<'c, '_>],
        sizes: &Sizes,
    ) -> u64 {
        let (text, uses) = template_parts(template);
        let mut n = self.cx.tokens.count(model, &text) as u64;
        for u in uses {
            n += operands
                .get(u)
                .and_then(|v| sizes.get(&value_key(*v)))
                .copied()
                .unwrap_or(0);
        }
        n
    }

    /// Builds an op with `operands`, the given attributes plus unplaced placement, one result.
    fn build<'b>(
        &self,
        name: &str,
        loc: Location<'c>,
        operands: &[Value<'c, 'b>],
        attrs: &[(Identifier<'c>, Attribute<'c>)],
        result: Type<'c>,
        block: &'b Block<'c>,
    ) -> Result<Value<'c, 'b>> {
        let op = OperationBuilder::new(name, loc)
            .add_operands(operands)
            .add_attributes(attrs)
            .add_attributes(&self.a.unplaced())
            .add_results(&[result])
            .build()?;
        Ok(block.append_operation(op).result(0)?.into())
    }

    fn exec_type(&self, name: &str) -> Result<Type<'c>> {
        Type::parse(self.cx.context, &format!("!exec.{name}"))
            .ok_or_else(|| Error::Internal(format!("!exec.{name} does not parse")))
    }

    /// The attributes of `op` named in `keep`.
    fn copy(
        &self,
        op: &OperationRef<'c, '_>,
        keep: &[&str],
    ) -> Vec<(Identifier<'c>, Attribute<'c>)> {
        op.attributes()
            .filter(|(id, _)| keep.contains(&id.as_string_ref().as_str().unwrap_or("")))
            .collect()
    }

    fn convert_op<'b>(
        &mut self,
        op: OperationRef<'c, '_>,
        block: &'b Block<'c>,
        values: &mut Values<'c, 'b>,
        sizes: &mut Sizes,
    ) -> Result<()> {
        let name = op_name(&op);
        let loc = op.location();
        let operands: Vec<Value<'c, 'b>> = op
            .operands()
            .map(|v| self.map(values, v))
            .collect::<Result<_>>()?;
        let a = self.a;
        let segs = "operandSegmentSizes";
        let (result, size): (Option<Value<'c, 'b>>, u64) = match name.as_str() {
            "agent.input" => {
                let max_len = int_attr(&op, attr::MAX_LEN)?;
                let ty = self.ty(op.result(0)?.r#type())?;
                let v = self.build(
                    exec::INPUT,
                    loc,
                    &[],
                    &self.copy(&op, &["node", "name", "max_len"]),
                    ty,
                    block,
                )?;
                (
                    Some(v),
                    if max_len > 0 {
                        max_len as u64
                    } else {
                        DEFAULT_INPUT_TOKENS
                    },
                )
            }
            "agent.render" => {
                let template = str_attr(&op, attr::TEMPLATE)?;
                let est = self.template_tokens("", &template, &operands, sizes);
                let mut attrs = self.copy(&op, &["node", "template", segs]);
                attrs.extend([
                    a.named(attr::MESSAGES, a.array(&[])),
                    a.named(attr::MODEL, a.str("")),
                    a.named(attr::EST_TOKENS, a.int(est as i64)),
                ]);
                (
                    Some(self.build(
                        exec::RENDER,
                        loc,
                        &operands,
                        &attrs,
                        self.exec_type("text")?,
                        block,
                    )?),
                    est,
                )
            }
            "agent.llm" => self.lower_llm(&op, &operands, block, sizes)?,
            "agent.embed" => {
                let model = str_attr(&op, attr::MODEL)?;
                let template = str_attr(&op, attr::TEMPLATE)?;
                let v = self.embed(&op, &model, &template, &operands, block, sizes)?;
                (Some(v), 0)
            }
            "agent.retrieve" => {
                let template = str_attr(&op, attr::TEMPLATE)?;
                let node = str_attr(&op, attr::NODE)?;
                let index = str_attr(&op, attr::INDEX)?;
                let k = int_attr(&op, attr::K)?;
                let vec_ty = self.exec_type("vec")?;
                let query = if template == "${0}"
                    && operands.len() == 1
                    && operands[0].r#type() == vec_ty
                {
                    operands[0]
                } else {
                    let model = self.index_models.get(&index).cloned().unwrap_or_default();
                    self.embed(&op, &model, &template, &operands, block, sizes)?
                };
                let attrs = [
                    a.named(attr::NODE, a.str(&node)),
                    a.named(attr::INDEX, a.str(&index)),
                    a.named(attr::K, a.int(k)),
                ];
                (
                    Some(self.build(
                        exec::KNN,
                        loc,
                        &[query],
                        &attrs,
                        self.exec_type("docs")?,
                        block,
                    )?),
                    k as u64 * DOC_TOKENS,
                )
            }
            "agent.tool" => {
                let ty = self.ty(op.result(0)?.r#type())?;
                (
                    Some(self.build(
                        exec::TOOL,
                        loc,
                        &operands,
                        &self.copy(&op, &["node", "tool", "args", segs]),
                        ty,
                        block,
                    )?),
                    TOOL_TOKENS,
                )
            }
            "agent.json_op" => {
                let template = str_attr(&op, attr::TEMPLATE)?;
                let est = self.template_tokens("", &template, &operands, sizes).max(1);
                let ty = self.ty(op.result(0)?.r#type())?;
                (
                    Some(self.build(
                        exec::JSON,
                        loc,
                        &operands,
                        &self.copy(&op, &["node", "mode", "template", "path", "fields", segs]),
                        ty,
                        block,
                    )?),
                    est,
                )
            }
            "agent.map" | "agent.branch" | "agent.loop" => {
                self.lower_compound(&op, &name, &operands, block, sizes)?
            }
            "agent.output" => {
                let out = OperationBuilder::new(exec::OUTPUT, loc)
                    .add_operands(&operands)
                    .add_attributes(&self.copy(&op, &["name"]))
                    .build()?;
                block.append_operation(out);
                (None, 0)
            }
            other => {
                return Err(Error::Internal(format!(
                    "lower-agent-to-exec: unexpected op {other}"
                )));
            }
        };
        if let Some(v) = result {
            values.insert(value_key(op.result(0)?.into()), v);
            sizes.insert(value_key(v), size);
        }
        Ok(())
    }

    /// An `exec.embed` of `template` rendered over `operands` with `model`.
    fn embed<'b>(
        &self,
        op: &OperationRef<'c, '_>,
        model: &str,
        template: &str,
        operands: &[Value<'c, 'b>],
        block: &'b Block<'c>,
        sizes: &mut Sizes,
    ) -> Result<Value<'c, 'b>> {
        let a = self.a;
        let (text, est) = self.text_operand(op, model, template, operands, block, sizes)?;
        let attrs = [
            a.named(attr::NODE, a.str(&str_attr(op, attr::NODE)?)),
            a.named(attr::MODEL, a.str(model)),
            a.named(attr::EST_TOKENS, a.int(est as i64)),
            a.named(attr::BATCH, a.str("")),
        ];
        self.build(
            exec::EMBED,
            op.location(),
            &[text],
            &attrs,
            self.exec_type("vec")?,
            block,
        )
    }

    /// The text an embed reads: the operand itself for a plain `${0}` over text, else a render.
    fn text_operand<'b>(
        &self,
        op: &OperationRef<'c, '_>,
        model: &str,
        template: &str,
        operands: &[Value<'c, 'b>],
        block: &'b Block<'c>,
        sizes: &mut Sizes,
    ) -> Result<(Value<'c, 'b>, u64)> {
        let est = self.template_tokens(model, template, operands, sizes);
        let text_ty = self.exec_type("text")?;
        if template == "${0}" && operands.len() == 1 && operands[0].r#type() == text_ty {
            return Ok((operands[0], est));
        }
        let a = self.a;
        let mut attrs = self.copy(op, &["node", "template", "operandSegmentSizes"]);
        attrs.extend([
            a.named(attr::MESSAGES, a.array(&[])),
            a.named(attr::MODEL, a.str(model)),
            a.named(attr::EST_TOKENS, a.int(est as i64)),
        ]);
        let v = self.build(
            exec::RENDER,
            op.location(),
            operands,
            &attrs,
            text_ty,
            block,
        )?;
        sizes.insert(value_key(v), est);
        Ok((v, est))
    }

    fn lower_llm<'b>(
        &self,
        op: &OperationRef<'c, '_>,
        operands: &[Value<'c, 'b>],
        block: &'b Block<'c>,
        sizes: &mut Sizes,
    ) -> Result<(Option<Value<'c, 'b>>, u64)> {
        let a = self.a;
        let loc = op.location();
        let model = str_attr(op, attr::MODEL)?;
        let node = str_attr(op, attr::NODE)?;
        let mode = str_attr(op, attr::MODE)?;
        let messages = array_attr(op, attr::MESSAGES)?;
        let mut prompt_tokens = 0;
        let mut first_template = String::new();
        for i in 0..messages.len() {
            let content = DictionaryAttribute::try_from(messages.element(i)?)
                .ok()
                .and_then(|d| d.element_by_name(attr::message::CONTENT))
                .and_then(|c| StringAttribute::try_from(c).ok())
                .map(|s| string_value(&s))
                .unwrap_or_default();
            prompt_tokens += self.template_tokens(&model, &content, operands, sizes);
            if mode == attr::llm_mode::CHAT {
                prompt_tokens += CHAT_TOKENS_PER_MESSAGE;
            } else if i == 0 {
                first_template = content;
            }
        }
        let (template, msgs) = if mode == attr::llm_mode::CHAT {
            (String::new(), Attribute::from(messages))
        } else {
            (first_template, a.array(&[]))
        };
        let est = |n: u64| a.named(attr::EST_TOKENS, a.int(n as i64));
        let node_a = a.named(attr::NODE, a.str(&node));
        let model_a = a.named(attr::MODEL, a.str(&model));
        let mut attrs = vec![
            node_a,
            a.named(attr::TEMPLATE, a.str(&template)),
            a.named(attr::MESSAGES, msgs),
            model_a,
            est(prompt_tokens),
        ];
        attrs.extend(self.copy(op, &["operandSegmentSizes"]));
        let text = self.build(
            exec::RENDER,
            loc,
            operands,
            &attrs,
            self.exec_type("text")?,
            block,
        )?;
        let tokens = self.build(
            exec::TOKENIZE,
            loc,
            &[text],
            &[node_a, model_a, est(prompt_tokens)],
            self.exec_type("tokens")?,
            block,
        )?;
        let none = a.named(attr::BATCH, a.str(""));
        let prefill_attrs = [
            node_a,
            model_a,
            est(prompt_tokens),
            a.named(attr::PREFIX, a.str("")),
            a.named(attr::PREFIX_TOKENS, a.int(0)),
            none,
        ];
        let kv = self.build(
            exec::PREFILL,
            loc,
            &[tokens],
            &prefill_attrs,
            self.exec_type("kv")?,
            block,
        )?;
        let max_tokens = int_attr(op, attr::MAX_TOKENS)?;
        let mut decode_attrs = vec![node_a, model_a, est(max_tokens as u64), none];
        decode_attrs.extend(self.copy(
            op,
            &[
                "max_tokens",
                "temperature",
                "top_p",
                "top_k",
                "seed",
                "stop",
                "constraint",
            ],
        ));
        let out = self.build(
            exec::DECODE,
            loc,
            &[kv],
            &decode_attrs,
            self.exec_type("tokens")?,
            block,
        )?;
        let ty = self.ty(op.result(0)?.r#type())?;
        let v = self.build(
            exec::DETOKENIZE,
            loc,
            &[out],
            &[
                node_a,
                model_a,
                a.named(attr::OUTPUT, a.str(&str_attr(op, attr::OUTPUT)?)),
            ],
            ty,
            block,
        )?;
        Ok((Some(v), max_tokens as u64))
    }

    fn lower_compound<'b>(
        &mut self,
        op: &OperationRef<'c, '_>,
        name: &str,
        operands: &[Value<'c, 'b>],
        block: &'b Block<'c>,
        sizes: &Sizes,
    ) -> Result<(Option<Value<'c, 'b>>, u64)> {
        let size_of = |v: &Value<'c, 'b>| {
            sizes
                .get(&value_key(*v))
                .copied()
                .unwrap_or(DEFAULT_INPUT_TOKENS)
        };
        let operand_sizes: Vec<u64> = operands.iter().map(size_of).collect();
        let sym = |attr: Attribute<'c>| {
            FlatSymbolRefAttribute::try_from(attr).map(|s| s.value().to_string())
        };
        let (new_name, keep, size): (&str, &[&str], u64) = match name {
            "agent.map" => {
                let body = sym(attr(op, attr::BODY)?)
                    .map_err(|_| Error::Internal("map body is not a symbol".into()))?;
                let item =
                    (operand_sizes.first().copied().unwrap_or(0) / DEFAULT_LIST_ITEMS).max(1);
                let mut args = vec![item];
                args.extend(&operand_sizes[1.min(operand_sizes.len())..]);
                let out = self.convert_func(&body, &args)?;
                (
                    exec::MAP,
                    &[
                        "node",
                        "body",
                        "item",
                        "max_concurrency",
                        "operandSegmentSizes",
                    ],
                    DEFAULT_LIST_ITEMS * out.first().copied().unwrap_or(0),
                )
            }
            "agent.branch" => {
                let mut bodies: Vec<String> = strings_of_syms(array_attr(op, attr::CASES)?);
                bodies.push(
                    sym(attr(op, attr::DEFAULT)?)
                        .map_err(|_| Error::Internal("branch default is not a symbol".into()))?,
                );
                let mut size = 0;
                for b in bodies {
                    let out = self.convert_func(&b, &operand_sizes)?;
                    size = size.max(out.first().copied().unwrap_or(0));
                }
                (
                    exec::BRANCH,
                    &[
                        "node",
                        "conditions",
                        "cases",
                        "default",
                        "operandSegmentSizes",
                    ],
                    size,
                )
            }
            _ => {
                let body = sym(attr(op, attr::BODY)?)
                    .map_err(|_| Error::Internal("loop body is not a symbol".into()))?;
                let iters = int_attr(op, attr::MAX_ITERS)?.max(1) as u64;
                let carry_ops = array_attr(op, attr::CARRY_OPERANDS)?;
                let mut args = Vec::new();
                for i in 0..carry_ops.len() {
                    let index =
                        melior::ir::attribute::IntegerAttribute::try_from(carry_ops.element(i)?)
                            .map(|i| i.value() as usize)
                            .unwrap_or(0);
                    args.push(
                        operand_sizes.get(index).copied().unwrap_or(0)
                            + LOOP_CARRY_GROWTH * (iters - 1),
                    );
                }
                let carried = args.len();
                args.extend(&operand_sizes);
                let out = self.convert_func(&body, &args)?;
                (
                    exec::LOOP,
                    &[
                        "node",
                        "body",
                        "max_iters",
                        "carry",
                        "carry_operands",
                        "until",
                        "operandSegmentSizes",
                    ],
                    out.get(carried).copied().unwrap_or(0),
                )
            }
        };
        let ty = self.ty(op.result(0)?.r#type())?;
        let v = self.build(
            new_name,
            op.location(),
            operands,
            &self.copy(op, keep),
            ty,
            block,
        )?;
        Ok((Some(v), size))
    }
}

fn strings_of_syms(array: melior::ir::attribute::ArrayAttribute<'_>) -> Vec<String> {
    (0..array.len())
        .filter_map(|i| array.element(i).ok())
        .filter_map(|a| FlatSymbolRefAttribute::try_from(a).ok())
        .map(|s| s.value().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::template_parts;

    #[test]
    fn template_parts_splits_static_text_and_uses() {
        assert_eq!(
            template_parts("Q: ${0}\nA: ${1.x} $${lit} $5"),
            ("Q: \nA:  ${lit} $5".to_string(), vec![0, 1])
        );
    }
}

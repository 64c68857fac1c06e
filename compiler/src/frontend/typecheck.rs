//! Types every node in dependency order and checks each use of a value against what the
//! consumer needs, plus the declarations nodes name (models, tools, indexes).

use agentc_plan::ValueType;

use super::ast::*;
use super::decode::Decoder;
use super::template::Template;
use crate::diagnostics::{Diagnostic, Pos, Span, did_you_mean, name_hint};
use crate::graph::*;

pub fn check(d: &mut Decoder, g: &mut WorkflowGraph) {
    check_declarations(d, g);
    check_var_names(d, g);
    type_scope(d, g, ROOT_SCOPE);
    for out in g.outputs.clone() {
        check_template(d, g, ROOT_SCOPE, &out.value, "an output", &[]);
    }
}

fn check_declarations(d: &mut Decoder, g: &WorkflowGraph) {
    for index in &g.indexes {
        match g.models.iter().find(|m| m.name == index.model) {
            Some(m) if m.kind == ModelKind::Embedding => {}
            Some(_) => d.err(
                index.span.start,
                format!(
                    "index `{}` uses model `{}`, which is not an embedding model",
                    index.name, index.model
                ),
            ),
            None => undeclared(
                d,
                index.span.start,
                "model",
                &index.model,
                g.models.iter().map(|m| m.name.as_str()),
            ),
        }
    }
    for tool in &g.tools {
        for fb in &tool.fallbacks {
            if fb == &tool.name {
                d.err(
                    tool.span.start,
                    format!("tool `{}` lists itself as a fallback", tool.name),
                );
            } else if !g.tools.iter().any(|t| &t.name == fb) {
                undeclared(
                    d,
                    tool.span.start,
                    "tool",
                    fb,
                    g.tools.iter().map(|t| t.name.as_str()),
                );
            }
        }
    }
}

fn check_var_names(d: &mut Decoder, g: &WorkflowGraph) {
    for scope in &g.scopes {
        let Some(owner) = scope.owner else { continue };
        for (var, _) in &scope.vars {
            if let Some(n) = g.nodes.iter().find(|n| &n.id == var) {
                d.err_hint(
                    g.nodes[owner].span.start,
                    format!(
                        "variable `{var}` of `{}` has the same name as node `{var}` ({}:{})",
                        g.nodes[owner].id, n.span.start.line, n.span.start.col
                    ),
                    "rename one of them so `${...}` references are unambiguous",
                );
            }
        }
    }
}

fn undeclared<'a>(
    d: &mut Decoder,
    pos: Pos,
    what: &str,
    name: &str,
    declared: impl Iterator<Item = &'a str>,
) {
    let declared: Vec<&str> = declared.collect();
    let hint = if declared.is_empty() {
        format!("declare it under `{what}s:`")
    } else {
        name_hint(
            name,
            &declared,
            did_you_mean,
            &format!("declared {what}s: "),
        )
    };
    d.push(Diagnostic::new(pos, format!("undeclared {what} `{name}`")).with_hint(hint));
}

/// Checks each reference of `t` (evaluated in `scope`): no `vec` values rendered into text, field
/// access only on json. `allow_sole` lists types accepted when `t` is exactly one reference.
fn check_template(
    d: &mut Decoder,
    g: &WorkflowGraph,
    scope: ScopeId,
    t: &TemplateField,
    what: &str,
    allow_sole: &[ValueType],
) {
    let sole = t.template.sole_ref().is_some();
    for r in t.template.refs() {
        let Some(target) = g.lookup(scope, &r.root) else {
            continue;
        };
        let base = g.target_type(target);
        let pos = |d: &Decoder| d.src.locate_in_scalar(t.span, &t.template.source, r.offset);
        if !r.path.is_empty() && base != ValueType::Json {
            let at = pos(d);
            d.err_hint(
                at,
                format!("`${{{}}}` reads field `{}` of `{}`, which is {base}; only json values have fields", r.display(), r.path.join("."), r.root_display()),
                if base == ValueType::Text { "give the llm node `output: json`, or drop the field" } else { "drop the field" },
            );
            continue;
        }
        let ty = if r.path.is_empty() {
            base
        } else {
            ValueType::Json
        };
        if ty == ValueType::Vec && !(sole && allow_sole.contains(&ValueType::Vec)) {
            let at = pos(d);
            d.err_hint(
                at,
                format!("type mismatch: `${{{}}}` is a vec (an embedding) and cannot be rendered into {what}", r.display()),
                "use a vec only as the `query` of a retrieve node",
            );
        }
    }
}

/// Type of a sole-reference template that must be one of `allowed` (e.g. a map's `over`).
fn expect_sole(
    d: &mut Decoder,
    g: &WorkflowGraph,
    scope: ScopeId,
    t: &TemplateField,
    what: &str,
    allowed: &[ValueType],
) -> Option<ValueType> {
    let names: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
    let Some(r) = t.template.sole_ref() else {
        d.err_hint(
            t.span.start,
            format!("{what} must be a single reference such as `${{node}}`, found text"),
            format!("it needs a {} value", names.join(" or ")),
        );
        return None;
    };
    let ty = g.ref_type(scope, r)?;
    if allowed.contains(&ty) {
        Some(ty)
    } else {
        let pos = d.src.locate_in_scalar(t.span, &t.template.source, r.offset);
        let hint = if ty == ValueType::Text {
            "have the producing llm use `output: json` and return a JSON array".to_string()
        } else {
            format!("it needs a {} value", names.join(" or "))
        };
        d.err_hint(
            pos,
            format!(
                "type mismatch: {what} needs {}, but `${{{}}}` is {ty}",
                names.join(" or "),
                r.display()
            ),
            hint,
        );
        None
    }
}

fn model_of_kind(
    d: &mut Decoder,
    g: &WorkflowGraph,
    name: &str,
    kind: ModelKind,
    pos: Pos,
    node: &str,
) {
    match g.models.iter().find(|m| m.name == name) {
        Some(m) if m.kind == kind => {}
        Some(m) => {
            let (want, have) = match kind {
                ModelKind::Llm => ("an llm", "an embedding"),
                ModelKind::Embedding => ("an embedding", "an llm"),
            };
            d.err_hint(
                pos,
                format!(
                    "node `{node}` needs {want} model, but `{}` is {have} model",
                    m.name
                ),
                format!(
                    "declare {want} model under `models:` with `kind: {}`",
                    if kind == ModelKind::Llm {
                        "llm"
                    } else {
                        "embedding"
                    }
                ),
            );
        }
        None => undeclared(
            d,
            pos,
            "model",
            name,
            g.models.iter().map(|m| m.name.as_str()),
        ),
    }
}

fn type_scope(d: &mut Decoder, g: &mut WorkflowGraph, scope: ScopeId) {
    for ix in g.scopes[scope].order.clone() {
        let ty = type_node(d, g, ix);
        g.nodes[ix].ty = ty;
    }
}

fn type_node(d: &mut Decoder, g: &mut WorkflowGraph, ix: NodeIx) -> ValueType {
    let node = g.nodes[ix].clone();
    let s = node.scope;
    let pos = node.span.start;
    let id = node.id.as_str();
    match &node.op {
        Op::Llm(n) => {
            model_of_kind(d, g, &n.model, ModelKind::Llm, pos, id);
            for t in n
                .prompt
                .iter()
                .chain(n.messages.iter().flatten().map(|m| &m.content))
            {
                check_template(d, g, s, t, "a prompt", &[]);
            }
            if n.output == OutputFormat::Json {
                ValueType::Json
            } else {
                ValueType::Text
            }
        }
        Op::Embed(n) => {
            model_of_kind(d, g, &n.model, ModelKind::Embedding, pos, id);
            check_template(d, g, s, &n.input, "an embedding input", &[]);
            ValueType::Vec
        }
        Op::Retrieve(n) => {
            if !g.indexes.iter().any(|i| i.name == n.index) {
                undeclared(
                    d,
                    pos,
                    "index",
                    &n.index,
                    g.indexes.iter().map(|i| i.name.as_str()),
                );
            }
            check_template(d, g, s, &n.query, "a query", &[ValueType::Vec]);
            ValueType::Docs
        }
        Op::Tool(n) => type_tool(d, g, s, n, pos),
        Op::Render(n) => {
            check_template(d, g, s, &n.template, "a template", &[]);
            ValueType::Text
        }
        Op::Json(n) => {
            if let Some(f) = &n.from {
                check_template(d, g, s, f, "json input", &[]);
            }
            for (_, t) in n.fields.iter().flatten() {
                check_template(d, g, s, t, "a json field", &[]);
            }
            ValueType::Json
        }
        Op::Map {
            over, body, output, ..
        } => {
            let over_ty = expect_sole(
                d,
                g,
                s,
                over,
                "the `over` of a map",
                &[ValueType::List, ValueType::Docs, ValueType::Json],
            );
            let item_ty = if over_ty == Some(ValueType::Json) {
                ValueType::Json
            } else {
                ValueType::Text
            };
            g.scopes[*body].vars[0].1 = item_ty;
            type_scope(d, g, *body);
            check_template(d, g, *body, output, "a map output", &[]);
            ValueType::List
        }
        Op::Branch { cases, otherwise } => {
            let mut arms: Vec<(ValueType, Span)> = Vec::new();
            for (when, body, output) in cases {
                for r in when.condition.refs() {
                    if g.ref_type(s, r) == Some(ValueType::Vec) {
                        d.err(
                            when.span.start,
                            format!(
                                "type mismatch: condition compares `${{{}}}`, a vec",
                                r.display()
                            ),
                        );
                    }
                }
                type_scope(d, g, *body);
                check_template(d, g, *body, output, "a branch output", &[]);
                if let Some(t) = g.template_type(*body, &output.template) {
                    arms.push((t, output.span));
                }
            }
            type_scope(d, g, otherwise.0);
            check_template(d, g, otherwise.0, &otherwise.1, "a branch output", &[]);
            if let Some(t) = g.template_type(otherwise.0, &otherwise.1.template) {
                arms.push((t, otherwise.1.span));
            }
            let first = arms.first().map(|a| a.0).unwrap_or(ValueType::Text);
            for (t, span) in &arms[1.min(arms.len())..] {
                if *t != first {
                    d.err_hint(
                        span.start,
                        format!("type mismatch: branch `{id}` gives {first} in its first case but {t} here"),
                        "every case and `else` must produce the same type",
                    );
                }
            }
            first
        }
        Op::Loop {
            carry,
            body,
            next,
            until,
            output,
            ..
        } => {
            for (i, (_, init)) in carry.iter().enumerate() {
                check_template(d, g, s, init, "a carried value", &[]);
                let t = g
                    .template_type(s, &init.template)
                    .unwrap_or(ValueType::Text);
                g.scopes[*body].vars[i].1 = t;
            }
            type_scope(d, g, *body);
            for (name, t) in next {
                check_template(d, g, *body, t, "a carried value", &[]);
                let Some(i) = carry.iter().position(|(c, _)| c == name) else {
                    continue;
                };
                let want = g.scopes[*body].vars[i].1;
                if let Some(have) = g.template_type(*body, &t.template)
                    && have != want
                {
                    d.err(
                        t.span.start,
                        format!(
                            "type mismatch: carry `{name}` starts as {want} but `next` gives {have}"
                        ),
                    );
                }
            }
            if let Some(u) = until {
                for r in u.condition.refs() {
                    if g.ref_type(*body, r) == Some(ValueType::Vec) {
                        d.err(
                            u.span.start,
                            format!(
                                "type mismatch: condition compares `${{{}}}`, a vec",
                                r.display()
                            ),
                        );
                    }
                }
            }
            check_template(d, g, *body, output, "a loop output", &[]);
            g.template_type(*body, &output.template)
                .unwrap_or(ValueType::Text)
        }
    }
}

fn type_tool(d: &mut Decoder, g: &WorkflowGraph, s: ScopeId, n: &ToolNode, pos: Pos) -> ValueType {
    let Some(tool) = g.tools.iter().find(|t| t.name == n.tool) else {
        undeclared(
            d,
            pos,
            "tool",
            &n.tool,
            g.tools.iter().map(|t| t.name.as_str()),
        );
        return ValueType::Json;
    };
    for (name, value) in &n.args {
        let Some(arg) = tool.args.iter().find(|a| &a.name == name) else {
            let span = match value {
                ArgValue::Template(t) => t.span,
                ArgValue::Literal(_, span) => *span,
            };
            let diag = Diagnostic::new(
                span.start,
                format!("tool `{}` has no argument `{name}`", tool.name),
            );
            let args: Vec<&str> = tool.args.iter().map(|a| a.name.as_str()).collect();
            d.push(diag.with_hint(name_hint(name, &args, did_you_mean, "its arguments: ")));
            continue;
        };
        match value {
            ArgValue::Template(t) => {
                check_template(d, g, s, t, "a tool argument", &[]);
                let ty = g.template_type(s, &t.template).unwrap_or(ValueType::Text);
                let ok = match arg.ty {
                    ArgType::String => true,
                    ArgType::Number | ArgType::Integer | ArgType::Boolean => {
                        matches!(ty, ValueType::Json | ValueType::Text) && is_sole(&t.template)
                    }
                    ArgType::Object => ty == ValueType::Json,
                    ArgType::Array => {
                        matches!(ty, ValueType::Json | ValueType::List | ValueType::Docs)
                    }
                };
                if !ok {
                    d.err(t.span.start, format!("type mismatch: argument `{name}` of tool `{}` is {}, but the value is {}", tool.name, arg_type_name(arg.ty), if is_sole(&t.template) { ty.name() } else { "text with references" }));
                }
            }
            ArgValue::Literal(v, span) => {
                let ok = match arg.ty {
                    ArgType::String => v.is_string(),
                    ArgType::Number => v.is_number(),
                    ArgType::Integer => v.is_i64() || v.is_u64(),
                    ArgType::Boolean => v.is_boolean(),
                    ArgType::Object => v.is_object(),
                    ArgType::Array => v.is_array(),
                };
                if !ok {
                    d.err(span.start, format!("type mismatch: argument `{name}` of tool `{}` is {}, but the value is {v}", tool.name, arg_type_name(arg.ty)));
                }
            }
        }
    }
    for arg in tool.args.iter().filter(|a| a.required) {
        if !n.args.iter().any(|(name, _)| name == &arg.name) {
            d.err(
                pos,
                format!(
                    "call of tool `{}` is missing required argument `{}`",
                    tool.name, arg.name
                ),
            );
        }
    }
    if tool.output == OutputFormat::Text {
        ValueType::Text
    } else {
        ValueType::Json
    }
}

fn is_sole(t: &Template) -> bool {
    t.sole_ref().is_some()
}

fn arg_type_name(t: ArgType) -> &'static str {
    match t {
        ArgType::String => "a string",
        ArgType::Number => "a number",
        ArgType::Integer => "an integer",
        ArgType::Boolean => "a boolean",
        ArgType::Object => "an object",
        ArgType::Array => "an array",
    }
}

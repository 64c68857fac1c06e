//! Decoding of `nodes:` lists, one function per node kind.

use super::{Decoder, Fields, MAX_K, MAX_LOOP_ITERS, MAX_TOKENS_LIMIT};
use crate::frontend::ast::*;
use crate::frontend::yaml::{YKind, YNode};

pub const NODE_KINDS: &[&str] = &[
    "llm", "embed", "retrieve", "tool", "render", "json", "map", "branch", "loop",
];
pub const LLM_KEYS: &[&str] = &[
    "id",
    "kind",
    "model",
    "prompt",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "stop",
    "output",
    "schema",
    "regex",
    "choice",
];
pub const EMBED_KEYS: &[&str] = &["id", "kind", "model", "input"];
pub const RETRIEVE_KEYS: &[&str] = &["id", "kind", "index", "query", "k"];
pub const TOOL_NODE_KEYS: &[&str] = &["id", "kind", "tool", "args"];
pub const RENDER_KEYS: &[&str] = &["id", "kind", "template"];
pub const JSON_KEYS: &[&str] = &["id", "kind", "from", "path", "fields"];
pub const MAP_KEYS: &[&str] = &[
    "id",
    "kind",
    "over",
    "as",
    "nodes",
    "output",
    "max_concurrency",
];
pub const BRANCH_KEYS: &[&str] = &["id", "kind", "cases", "else"];
pub const CASE_KEYS: &[&str] = &["when", "nodes", "output"];
pub const ARM_KEYS: &[&str] = &["nodes", "output"];
pub const LOOP_KEYS: &[&str] = &[
    "id",
    "kind",
    "max_iters",
    "carry",
    "nodes",
    "next",
    "until",
    "output",
];
pub const MESSAGE_KEYS: &[&str] = &["role", "content"];

/// Decodes a node list; only the top-level list (`top`) must be non-empty: a body may just pass
/// a value through its `output`.
pub fn node_list(d: &mut Decoder, node: &YNode, what: &str, top: bool) -> Vec<Node> {
    if !top && node.is_null() {
        return Vec::new();
    }
    let Some(items) = d.list(node, what) else {
        return Vec::new();
    };
    if top && items.is_empty() {
        d.err(
            node.pos(),
            format!("{what} is empty; a workflow needs at least one node"),
        );
    }
    items
        .iter()
        .filter_map(|item| decode_node(d, item))
        .collect()
}

fn decode_node(d: &mut Decoder, node: &YNode) -> Option<Node> {
    let mut f = d.map(node, "a node")?;
    let id = match f.get("id") {
        Some(n) => d.ident(n, "node id"),
        None => {
            d.err(f.pos, "node is missing `id`");
            None
        }
    };
    let label = format!("node `{}`", id.as_deref().unwrap_or("?"));
    let kind = match f.get("kind") {
        Some(n) => d.choice(n, &format!("kind of {label}"), NODE_KINDS),
        None => {
            d.err_hint(
                f.pos,
                format!("{label} is missing `kind`"),
                format!("one of: {}", NODE_KINDS.join(", ")),
            );
            None
        }
    };
    let Some(kind) = kind else {
        if let Some(id) = &id {
            d.broken_ids.insert(id.clone());
        }
        return None;
    };
    let (kind, keys) = match kind {
        "llm" => (llm(d, &mut f, &label).map(NodeKind::Llm), LLM_KEYS),
        "embed" => (embed(d, &mut f, &label).map(NodeKind::Embed), EMBED_KEYS),
        "retrieve" => (
            retrieve(d, &mut f, &label).map(NodeKind::Retrieve),
            RETRIEVE_KEYS,
        ),
        "tool" => (
            tool_call(d, &mut f, &label).map(NodeKind::Tool),
            TOOL_NODE_KEYS,
        ),
        "render" => (
            d.required(&mut f, "template", &label)
                .and_then(|n| d.template(n, &format!("template of {label}")))
                .map(|template| NodeKind::Render(RenderNode { template })),
            RENDER_KEYS,
        ),
        "json" => (json(d, &mut f, &label).map(NodeKind::Json), JSON_KEYS),
        "map" => (map(d, &mut f, &label).map(NodeKind::Map), MAP_KEYS),
        "branch" => (branch(d, &mut f, &label).map(NodeKind::Branch), BRANCH_KEYS),
        _ => (looped(d, &mut f, &label).map(NodeKind::Loop), LOOP_KEYS),
    };
    f.finish(d, &label, keys);
    if kind.is_none()
        && let Some(id) = &id
    {
        d.broken_ids.insert(id.clone());
    }
    Some(Node {
        id: id?,
        kind: kind?,
        span: node.span,
    })
}

fn name_ref(d: &mut Decoder, f: &mut Fields, key: &str, label: &str) -> Option<String> {
    d.required(f, key, label)
        .and_then(|n| d.string(n, &format!("{key} of {label}")))
}

fn llm(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<LlmNode> {
    let model = name_ref(d, f, "model", label);
    let prompt = f
        .get("prompt")
        .and_then(|n| d.template(n, &format!("prompt of {label}")));
    let messages = f.get("messages").and_then(|n| {
        let items = d.list(n, &format!("messages of {label}"))?;
        if items.is_empty() {
            d.err(n.pos(), format!("messages of {label} is empty"));
        }
        let msgs: Vec<Message> = items.iter().filter_map(|m| message(d, m)).collect();
        (msgs.len() == items.len()).then_some(msgs)
    });
    match (f.has("prompt"), f.has("messages")) {
        (true, true) => d.err_hint(
            f.pos,
            format!("{label} has both `prompt` and `messages`"),
            "keep one: `prompt` for raw text, `messages` for a chat",
        ),
        (false, false) => d.err_hint(
            f.pos,
            format!("{label} has neither `prompt` nor `messages`"),
            "add `prompt: ...` or a `messages:` list",
        ),
        _ => {}
    }
    let max_tokens = f
        .get("max_tokens")
        .and_then(|n| d.uint(n, &format!("max_tokens of {label}"), 1, MAX_TOKENS_LIMIT));
    let temperature = f
        .get("temperature")
        .and_then(|n| d.float(n, &format!("temperature of {label}"), 0.0, 2.0, false));
    let top_p = f
        .get("top_p")
        .and_then(|n| d.float(n, &format!("top_p of {label}"), 0.0, 1.0, true));
    let top_k = f
        .get("top_k")
        .and_then(|n| d.uint(n, &format!("top_k of {label}"), 0, 1 << 20));
    let seed = f
        .get("seed")
        .and_then(|n| d.uint(n, &format!("seed of {label}"), 0, u64::MAX));
    let stop = f.get("stop").map(|n| match &n.kind {
        YKind::Scalar { .. } => d.string(n, "stop").into_iter().collect(),
        _ => d
            .list(n, &format!("stop of {label}"))
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| d.string(i, "a stop string"))
                    .collect()
            })
            .unwrap_or_default(),
    });
    let output_node = f.get("output");
    let output =
        output_node.and_then(|n| d.choice(n, &format!("output of {label}"), &["text", "json"]));
    let constraint = llm_constraint(d, f, label, output, output_node.map(|n| n.span.start));
    if prompt.is_none() && messages.is_none() {
        return None;
    }
    Some(LlmNode {
        model: model?,
        prompt,
        messages,
        max_tokens: max_tokens.unwrap_or(256) as u32,
        temperature: temperature.unwrap_or(0.0),
        top_p: top_p.unwrap_or(1.0),
        top_k: top_k.unwrap_or(0) as u32,
        seed: seed.unwrap_or(0),
        stop: stop.unwrap_or_default(),
        output: if output == Some("json")
            || matches!(constraint, Some(LlmConstraint::Schema { .. }))
        {
            OutputFormat::Json
        } else {
            OutputFormat::Text
        },
        constraint,
    })
}

/// `schema:` (inline, or a `.json`/`.yaml` file relative to the workflow), `regex:` or
/// `choice:` of an llm node; at most one of them.
fn llm_constraint(
    d: &mut Decoder,
    f: &mut Fields,
    label: &str,
    output: Option<&str>,
    output_at: Option<crate::diagnostics::Pos>,
) -> Option<LlmConstraint> {
    let keys: Vec<&str> = ["schema", "regex", "choice"]
        .into_iter()
        .filter(|k| f.has(k))
        .collect();
    if keys.len() > 1 {
        for k in &keys {
            f.get(k);
        }
        d.err_hint(
            f.pos,
            format!("{label} has both `{}` and `{}`", keys[0], keys[1]),
            "an llm node's output takes one constraint: `schema`, `regex` or `choice`",
        );
        return None;
    }
    if let Some(n) = f.get("schema") {
        if output == Some("text") {
            d.err_hint(
                output_at.unwrap_or(n.span.start),
                format!("{label} has a `schema` but `output: text`"),
                "a schema describes JSON output: write `output: json` or drop `output`",
            );
            return None;
        }
        let schema = match &n.kind {
            YKind::Scalar { value, .. } => schema_file(d, n, value, label)?,
            YKind::Map(_) => to_json(n),
            YKind::Seq(_) => {
                d.err(
                    n.span.start,
                    format!("schema of {label} must be a mapping (a JSON Schema) or a file path"),
                );
                return None;
            }
        };
        return Some(LlmConstraint::Schema {
            schema,
            inferred: false,
            at: n.span.start,
        });
    }
    let text_only = |d: &mut Decoder, key: &str, at| {
        if output == Some("json") {
            d.err_hint(
                output_at.unwrap_or(at),
                format!("{label} has `{key}` and `output: json`"),
                format!("`{key}` constrains text output; use `schema` for JSON"),
            );
            false
        } else {
            true
        }
    };
    if let Some(n) = f.get("regex") {
        let rx = d.string(n, &format!("regex of {label}"))?;
        if !text_only(d, "regex", n.span.start) {
            return None;
        }
        return Some(LlmConstraint::Regex(rx));
    }
    if let Some(n) = f.get("choice") {
        let items = d.list(n, &format!("choice of {label}"))?;
        let choices: Vec<String> = items
            .iter()
            .filter_map(|i| d.string(i, "a choice"))
            .collect();
        if !text_only(d, "choice", n.span.start) {
            return None;
        }
        if choices.is_empty() || choices.iter().any(String::is_empty) {
            d.err(
                n.span.start,
                format!("choice of {label} needs at least one choice, and no empty one"),
            );
            return None;
        }
        return Some(LlmConstraint::Choice(choices));
    }
    None
}

/// A schema file named by `schema: path` (JSON, or YAML unless it ends in `.json`), relative to
/// the workflow's folder.
fn schema_file(d: &mut Decoder, n: &YNode, path: &str, label: &str) -> Option<serde_json::Value> {
    let full = d.base_dir.join(path);
    let text = match std::fs::read_to_string(&full) {
        Ok(text) => text,
        Err(e) => {
            d.err_hint(
                n.span.start,
                format!("schema of {label}: cannot read {}: {e}", full.display()),
                "`schema` takes an inline JSON Schema or a path relative to the workflow file",
            );
            return None;
        }
    };
    let parsed = if path.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        crate::frontend::yaml::parse(&text)
            .map(|root| to_json(&root))
            .map_err(|e| e.message.clone())
    };
    match parsed {
        Ok(v @ serde_json::Value::Object(_)) => Some(v),
        Ok(_) => {
            d.err(
                n.span.start,
                format!(
                    "schema of {label}: {} is not a JSON Schema object",
                    full.display()
                ),
            );
            None
        }
        Err(e) => {
            d.err(
                n.span.start,
                format!("schema of {label}: {} does not parse: {e}", full.display()),
            );
            None
        }
    }
}

fn message(d: &mut Decoder, node: &YNode) -> Option<Message> {
    let mut f = d.map(node, "a message")?;
    let role = d
        .required(&mut f, "role", "a message")
        .and_then(|n| d.choice(n, "role", &["system", "user", "assistant"]));
    let content = d
        .required(&mut f, "content", "a message")
        .and_then(|n| d.template(n, "message content"));
    f.finish(d, "a message", MESSAGE_KEYS);
    Some(Message {
        role: role?.to_string(),
        content: content?,
    })
}

fn embed(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<EmbedNode> {
    let model = name_ref(d, f, "model", label);
    let input = d
        .required(f, "input", label)
        .and_then(|n| d.template(n, &format!("input of {label}")));
    Some(EmbedNode {
        model: model?,
        input: input?,
    })
}

fn retrieve(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<RetrieveNode> {
    let index = name_ref(d, f, "index", label);
    let query = d
        .required(f, "query", label)
        .and_then(|n| d.template(n, &format!("query of {label}")));
    let k = f
        .get("k")
        .and_then(|n| d.uint(n, &format!("k of {label}"), 1, MAX_K));
    Some(RetrieveNode {
        index: index?,
        query: query?,
        k: k.unwrap_or(4) as u32,
    })
}

fn tool_call(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<ToolNode> {
    let tool = name_ref(d, f, "tool", label);
    let args = f
        .get("args")
        .map(|n| {
            d.named(n, &format!("args of {label}"), |d, name, _key, value| {
                let arg = match &value.kind {
                    YKind::Scalar { plain: false, .. } => {
                        ArgValue::Template(d.template(value, &format!("argument `{name}`"))?)
                    }
                    YKind::Scalar {
                        value: text,
                        plain: true,
                    } => match literal(text) {
                        Some(v) => ArgValue::Literal(v, value.span),
                        None => {
                            ArgValue::Template(d.template(value, &format!("argument `{name}`"))?)
                        }
                    },
                    _ => ArgValue::Literal(to_json(value), value.span),
                };
                Some((name, arg))
            })
        })
        .unwrap_or_default();
    Some(ToolNode { tool: tool?, args })
}

/// A plain scalar that YAML would read as a number, boolean or null.
fn literal(text: &str) -> Option<serde_json::Value> {
    match text {
        "true" => Some(true.into()),
        "false" => Some(false.into()),
        "null" | "~" => Some(serde_json::Value::Null),
        _ => {
            if let Ok(i) = text.parse::<i64>() {
                Some(i.into())
            } else {
                text.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Into::into)
            }
        }
    }
}

/// A YAML subtree as JSON (for literal tool arguments); iterative over a bounded tree.
fn to_json(node: &YNode) -> serde_json::Value {
    match &node.kind {
        YKind::Scalar { value, plain } => {
            if *plain {
                literal(value).unwrap_or_else(|| value.clone().into())
            } else {
                value.clone().into()
            }
        }
        YKind::Seq(items) => items.iter().map(to_json).collect(),
        YKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| {
                let key = match &k.kind {
                    YKind::Scalar { value, .. } => value.clone(),
                    _ => String::new(),
                };
                (key, to_json(v))
            })
            .collect(),
    }
}

fn json(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<JsonNode> {
    let from = f
        .get("from")
        .and_then(|n| d.template(n, &format!("from of {label}")));
    let path = f.get("path").and_then(|n| {
        let p = d.string(n, &format!("path of {label}"))?;
        if p.split('.')
            .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            Some(p)
        } else {
            d.err_hint(
                n.pos(),
                format!("path `{p}` of {label} is malformed"),
                "write fields separated by dots, e.g. `answer.items.0`",
            );
            None
        }
    });
    let fields = f.get("fields").map(|n| {
        d.named(n, &format!("fields of {label}"), |d, name, _k, v| {
            Some((name.clone(), d.template(v, &format!("field `{name}`"))?))
        })
    });
    match (f.has("from"), f.has("fields")) {
        (true, true) => d.err_hint(
            f.pos,
            format!("{label} has both `from` and `fields`"),
            "`from` (+ `path`) extracts a value; `fields` builds an object",
        ),
        (false, false) => d.err_hint(
            f.pos,
            format!("{label} has neither `from` nor `fields`"),
            "`from` (+ `path`) extracts a value; `fields` builds an object",
        ),
        (false, true) if f.has("path") => d.err(f.pos, format!("{label}: `path` goes with `from`")),
        _ => {}
    }
    Some(JsonNode { from, path, fields })
}

fn body(d: &mut Decoder, f: &mut Fields, label: &str) -> (Vec<Node>, Option<TemplateField>) {
    let nodes = f
        .get("nodes")
        .map(|n| node_list(d, n, &format!("nodes of {label}"), false))
        .unwrap_or_default();
    let output = d
        .required(f, "output", label)
        .and_then(|n| d.template(n, &format!("output of {label}")));
    (nodes, output)
}

fn map(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<MapNode> {
    let over = d
        .required(f, "over", label)
        .and_then(|n| d.template(n, &format!("over of {label}")));
    let item = match f.get("as") {
        Some(n) => d.ident(n, &format!("`as` of {label}")),
        None => Some("item".to_string()),
    };
    let max_concurrency = f
        .get("max_concurrency")
        .and_then(|n| d.uint(n, "max_concurrency", 0, 1 << 16));
    let (nodes, output) = body(d, f, label);
    Some(MapNode {
        over: over?,
        item: item?,
        nodes,
        output: output?,
        max_concurrency: max_concurrency.unwrap_or(0) as u32,
    })
}

fn branch(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<BranchNode> {
    let cases = d.required(f, "cases", label).and_then(|n| {
        let items = d.list(n, &format!("cases of {label}"))?;
        if items.is_empty() {
            d.err(n.pos(), format!("cases of {label} is empty"));
        }
        let cases: Vec<BranchCase> = items
            .iter()
            .filter_map(|item| {
                let mut cf = d.map(item, "a case")?;
                let when = d
                    .required(&mut cf, "when", "a case")
                    .and_then(|n| d.condition(n, "when"));
                let (nodes, output) = body(d, &mut cf, "a case");
                cf.finish(d, "a case", CASE_KEYS);
                Some(BranchCase {
                    when: when?,
                    nodes,
                    output: output?,
                })
            })
            .collect();
        (cases.len() == items.len()).then_some(cases)
    });
    let otherwise = match f.get("else") {
        Some(n) => d.map(n, &format!("else of {label}")).and_then(|mut af| {
            let (nodes, output) = body(d, &mut af, &format!("else of {label}"));
            af.finish(d, &format!("else of {label}"), ARM_KEYS);
            Some(BranchArm {
                nodes,
                output: output?,
            })
        }),
        None => {
            d.err_hint(
                f.pos,
                format!("{label} has no `else`"),
                "add `else:` with the nodes and output used when no case holds",
            );
            None
        }
    };
    Some(BranchNode {
        cases: cases?,
        otherwise: otherwise?,
    })
}

fn looped(d: &mut Decoder, f: &mut Fields, label: &str) -> Option<LoopNode> {
    let max_iters = match f.get("max_iters") {
        Some(n) => d.uint(n, &format!("max_iters of {label}"), 1, MAX_LOOP_ITERS),
        None => {
            d.err_hint(
                f.pos,
                format!("{label} is an unbounded loop: `max_iters` is missing"),
                format!(
                    "add `max_iters: N` (at most {MAX_LOOP_ITERS}); `until` alone may never hold"
                ),
            );
            None
        }
    };
    let templates = |d: &mut Decoder, key: &str, f: &mut Fields| -> Vec<(String, TemplateField)> {
        f.get(key)
            .map(|n| {
                d.named(n, &format!("{key} of {label}"), |d, name, _k, v| {
                    Some((name.clone(), d.template(v, &format!("{key} `{name}`"))?))
                })
            })
            .unwrap_or_default()
    };
    let carry = templates(d, "carry", f);
    let next = templates(d, "next", f);
    for (name, t) in &next {
        if !carry.iter().any(|(c, _)| c == name) {
            let pos = t.span.start;
            d.err_hint(
                pos,
                format!("next `{name}` of {label} has no matching `carry`"),
                "declare it under `carry:` with its initial value",
            );
        }
    }
    for (name, t) in &carry {
        if !next.iter().any(|(c, _)| c == name) {
            let pos = t.span.start;
            d.err_hint(
                pos,
                format!("carry `{name}` of {label} is never updated"),
                format!("add `{name}: ...` under `next:`"),
            );
        }
    }
    let until = f
        .get("until")
        .and_then(|n| d.condition(n, &format!("until of {label}")));
    let (nodes, output) = body(d, f, label);
    Some(LoopNode {
        max_iters: max_iters? as u32,
        carry,
        nodes,
        next,
        until,
        output: output?,
    })
}

//! Output constraints of llm nodes: a JSON Schema inferred for `output: json` nodes without
//! one, from how later nodes use the value; checks of field references against declared
//! schemas; and validation of every schema and regex as the runtime's decoder compiles them.
//!
//! Inference: every `${node.field}` read becomes a required property (a string unless a
//! comparison with a number or boolean says otherwise), nested fields become nested objects
//! and numeric path steps arrays; a field compared with string literals (`${think.action} ==
//! "calculate"`) becomes an enum of those literals. Properties are ordered as the node's own
//! prompt first mentions them (`"thought"` before `"action"` when the prompt's example shows
//! that order), so the model writes them in the order it was shown.

use std::collections::{BTreeSet, HashMap, HashSet};

use llguidance::api::{GrammarInit, ParserLimits, TopLevelGrammar};
use serde_json::{Map, Value as Json, json};

use super::ast::*;
use super::condition::{CompareOp, Condition, Operand};
use super::decode::Decoder;
use super::resolve::uses;
use super::template::Reference;
use crate::diagnostics::{Diagnostic, Pos, closest};
use crate::graph::*;

/// One read of a field path of an llm node's output.
struct FieldUse {
    path: Vec<String>,
    pos: Pos,
}

/// What later nodes tell about one leaf of the output.
#[derive(Default)]
struct Leaf {
    strings: BTreeSet<String>,
    numeric: bool,
    boolean: bool,
}

/// The inferred shape of a value.
enum Shape {
    Leaf,
    Object(Vec<(String, Shape)>),
    Array(Box<Shape>),
}

pub fn infer_and_check(d: &mut Decoder, g: &mut WorkflowGraph) {
    let json_llm = |g: &WorkflowGraph, ix: NodeIx| matches!(&g.nodes[ix].op, Op::Llm(l) if l.output == OutputFormat::Json);
    let mut reads: HashMap<NodeIx, Vec<FieldUse>> = HashMap::new();
    let mut compared: HashMap<(NodeIx, Vec<String>), Leaf> = HashMap::new();
    let mut mapped: HashSet<NodeIx> = HashSet::new();
    for ix in 0..g.nodes.len() {
        for u in uses(g, ix) {
            let Some(Target::Node(dep)) = g.lookup(u.scope, &u.reference.root) else {
                continue;
            };
            if !json_llm(g, dep) {
                continue;
            }
            let pos = if u.text.is_empty() {
                u.span.start
            } else {
                d.src.locate_in_scalar(u.span, u.text, u.reference.offset)
            };
            reads.entry(dep).or_default().push(FieldUse {
                path: u.reference.path.clone(),
                pos,
            });
        }
        for (scope, condition) in conditions(&g.nodes[ix]) {
            let Some((r, leaf)) = compared_leaf(condition) else {
                continue;
            };
            if let Some(Target::Node(dep)) = g.lookup(scope, &r.root)
                && json_llm(g, dep)
            {
                let entry = compared.entry((dep, r.path.clone())).or_default();
                entry.strings.extend(leaf.strings);
                entry.numeric |= leaf.numeric;
                entry.boolean |= leaf.boolean;
            }
        }
        if let Op::Map { over, .. } = &g.nodes[ix].op
            && let Some(r) = over.template.sole_ref()
            && r.path.is_empty()
            && let Some(Target::Node(dep)) = g.lookup(g.nodes[ix].scope, &r.root)
        {
            mapped.insert(dep);
        }
    }
    for out in &g.outputs {
        for r in out.value.template.refs() {
            if let Some(Target::Node(dep)) = g.lookup(ROOT_SCOPE, &r.root)
                && json_llm(g, dep)
            {
                let pos =
                    d.src
                        .locate_in_scalar(out.value.span, &out.value.template.source, r.offset);
                reads.entry(dep).or_default().push(FieldUse {
                    path: r.path.clone(),
                    pos,
                });
            }
        }
    }

    for ix in 0..g.nodes.len() {
        let Op::Llm(llm) = &g.nodes[ix].op else {
            continue;
        };
        let node_reads = reads.remove(&ix).unwrap_or_default();
        match &llm.constraint {
            Some(LlmConstraint::Schema {
                schema,
                inferred: false,
                ..
            }) => check_reads(d, &g.nodes[ix].id, schema, &node_reads),
            None if llm.output == OutputFormat::Json => {
                let prompt = prompt_text(llm);
                let mut paths: Vec<&[String]> = node_reads
                    .iter()
                    .map(|u| u.path.as_slice())
                    .filter(|p| !p.is_empty())
                    .collect();
                paths.sort_by_key(|p| mention(&prompt, &p[0]));
                if paths.is_empty() {
                    continue;
                }
                let mut shape = Shape::Object(Vec::new());
                for path in paths {
                    insert(&mut shape, path);
                }
                let mut schema = to_schema(&shape, &mut Vec::new(), ix, &compared);
                if mapped.contains(&ix) {
                    schema = json!({"type": "array", "items": schema});
                }
                let at = g.nodes[ix].span.start;
                if let Op::Llm(llm) = &mut g.nodes[ix].op {
                    llm.constraint = Some(LlmConstraint::Schema {
                        schema,
                        inferred: true,
                        at,
                    });
                }
            }
            _ => {}
        }
    }

    for node in &g.nodes {
        let Op::Llm(llm) = &node.op else { continue };
        let (grammar, what, at) = match &llm.constraint {
            Some(LlmConstraint::Schema { schema, at, .. }) => (
                TopLevelGrammar::from_json_schema(schema.clone()),
                "schema",
                *at,
            ),
            Some(LlmConstraint::Regex(rx)) => {
                (TopLevelGrammar::from_regex(rx), "regex", node.span.start)
            }
            _ => continue,
        };
        if let Some(e) = GrammarInit::Serialized(grammar)
            .validate(None, ParserLimits::default())
            .into_error()
        {
            d.push(
                Diagnostic::new(
                    at,
                    format!(
                        "{what} of `{}` is not supported: {}",
                        node.id,
                        e.lines().next().unwrap_or(&e)
                    ),
                )
                .with_hint(
                    "supported: JSON Schema draft 2020-12 types, properties, required, items, \
                     enum, const, anyOf, $ref, bounds and string patterns",
                ),
            );
        }
    }
}

/// The conditions a node evaluates, with the scope each is evaluated in.
fn conditions(node: &FlatNode) -> Vec<(ScopeId, &Condition)> {
    match &node.op {
        Op::Branch { cases, .. } => cases
            .iter()
            .map(|(when, _, _)| (node.scope, &when.condition))
            .collect(),
        Op::Loop {
            until: Some(u),
            body,
            ..
        } => vec![(*body, &u.condition)],
        _ => Vec::new(),
    }
}

/// `${ref} == literal` (either way round, or `!=`, or an ordering): the reference and what the
/// literal says of its type.
fn compared_leaf(c: &Condition) -> Option<(&Reference, Leaf)> {
    let (op, right) = c.compare.as_ref()?;
    let (r, literal) = match (&c.left, right) {
        (Operand::Ref(r), lit) | (lit, Operand::Ref(r)) if !matches!(lit, Operand::Ref(_)) => {
            (r, lit)
        }
        _ => return None,
    };
    let mut leaf = Leaf::default();
    match literal {
        Operand::Str(s) if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
            leaf.strings.insert(s.clone());
        }
        Operand::Num(_) => leaf.numeric = true,
        Operand::Bool(_) => leaf.boolean = true,
        _ => return None,
    }
    Some((r, leaf))
}

/// The node's prompt and message texts, where its example output shows the field order.
fn prompt_text(llm: &LlmNode) -> String {
    let mut text = String::new();
    for t in llm
        .prompt
        .iter()
        .chain(llm.messages.iter().flatten().map(|m| &m.content))
    {
        text.push_str(&t.template.source);
        text.push('\n');
    }
    text
}

/// Where the prompt first mentions `"field"` (fields it never mentions sort last).
fn mention(prompt: &str, field: &str) -> usize {
    prompt.find(&format!("\"{field}\"")).unwrap_or(usize::MAX)
}

fn is_index(step: &str) -> bool {
    !step.is_empty() && step.bytes().all(|b| b.is_ascii_digit())
}

fn insert(shape: &mut Shape, path: &[String]) {
    let Some((step, rest)) = path.split_first() else {
        return;
    };
    let fresh = |rest: &[String]| match rest.first() {
        None => Shape::Leaf,
        Some(next) if is_index(next) => Shape::Array(Box::new(Shape::Leaf)),
        Some(_) => Shape::Object(Vec::new()),
    };
    match shape {
        Shape::Array(item) if is_index(step) => {
            if matches!(**item, Shape::Leaf) && !rest.is_empty() {
                **item = fresh(rest);
            }
            insert(item, rest);
        }
        Shape::Object(fields) if !is_index(step) => {
            let at = match fields.iter().position(|(k, _)| k == step) {
                Some(at) => at,
                None => {
                    fields.push((step.clone(), fresh(rest)));
                    fields.len() - 1
                }
            };
            let child = &mut fields[at].1;
            if matches!(child, Shape::Leaf) && !rest.is_empty() {
                *child = fresh(rest);
            }
            insert(child, rest);
        }
        Shape::Leaf => {
            *shape = if is_index(step) {
                Shape::Array(Box::new(Shape::Leaf))
            } else {
                Shape::Object(Vec::new())
            };
            insert(shape, path);
        }
        // A path that reads the same value as both an array and an object: leave it open.
        _ => {}
    }
}

fn to_schema(
    shape: &Shape,
    path: &mut Vec<String>,
    node: NodeIx,
    compared: &HashMap<(NodeIx, Vec<String>), Leaf>,
) -> Json {
    match shape {
        Shape::Leaf => match compared.get(&(node, path.clone())) {
            Some(leaf) if !leaf.strings.is_empty() && !leaf.numeric && !leaf.boolean => {
                json!({"enum": leaf.strings.iter().collect::<Vec<_>>()})
            }
            Some(leaf) if leaf.numeric => json!({"type": "number"}),
            Some(leaf) if leaf.boolean => json!({"type": "boolean"}),
            _ => json!({"type": "string"}),
        },
        Shape::Array(item) => {
            path.push("0".to_owned());
            let items = to_schema(item, path, node, compared);
            path.pop();
            json!({"type": "array", "items": items, "minItems": 1})
        }
        Shape::Object(fields) => {
            let mut properties = Map::new();
            for (name, child) in fields {
                path.push(name.clone());
                properties.insert(name.clone(), to_schema(child, path, node, compared));
                path.pop();
            }
            let required: Vec<&String> = fields.iter().map(|(k, _)| k).collect();
            json!({
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false
            })
        }
    }
}

/// Each `${node.field}` read must name a property the node's declared schema has.
fn check_reads(d: &mut Decoder, id: &str, schema: &Json, reads: &[FieldUse]) {
    for read in reads {
        let mut at = schema;
        for (depth, step) in read.path.iter().enumerate() {
            let Some(properties) = at.get("properties").and_then(Json::as_object) else {
                break;
            };
            if is_index(step) {
                break;
            }
            match properties.get(step) {
                Some(next) => {
                    at = match next.get("items") {
                        Some(items) if read.path.get(depth + 1).is_some_and(|s| is_index(s)) => {
                            items
                        }
                        _ => next,
                    };
                }
                None => {
                    let shown = format!("{id}.{}", read.path[..=depth].join("."));
                    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                    let hint = match closest(step, names.iter().copied()) {
                        Some(c) => format!("did you mean `{c}`? declared: {}", names.join(", ")),
                        None => format!("declared: {}", names.join(", ")),
                    };
                    d.push(
                        Diagnostic::new(
                            read.pos,
                            format!(
                                "`${{{shown}}}` reads field `{step}`, which the schema of `{id}` does not declare"
                            ),
                        )
                        .with_hint(hint),
                    );
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::parse;

    const REACT: &str = include_str!("../../../examples/react_calculator.yaml");

    fn llm_constraint(src: &str, id: &str) -> Option<LlmConstraint> {
        let g = parse("wf.yaml", src.as_bytes()).unwrap_or_else(|d| panic!("{d}"));
        match &g.nodes[g.by_id[id]].op {
            Op::Llm(l) => l.constraint.clone(),
            _ => panic!("{id} is not an llm node"),
        }
    }

    fn errors(src: &str) -> Vec<String> {
        match parse("wf.yaml", src.as_bytes()) {
            Ok(_) => vec![],
            Err(d) => d
                .items
                .iter()
                .map(|i| format!("{}:{}: {}", i.pos.line, i.pos.col, i.message))
                .collect(),
        }
    }

    #[test]
    fn react_calculator_gets_the_fields_it_reads_in_prompt_order_with_an_action_enum() {
        let Some(LlmConstraint::Schema {
            schema, inferred, ..
        }) = llm_constraint(REACT, "think")
        else {
            panic!("no schema inferred");
        };
        assert!(inferred);
        assert_eq!(
            serde_json::to_string(&schema).unwrap(),
            r#"{"type":"object","properties":{"thought":{"type":"string"},"action":{"enum":["calculate","finish"]},"input":{"type":"string"}},"required":["thought","action","input"],"additionalProperties":false}"#
        );
    }

    const WF: &str = r#"name: wf
models:
  chat: {kind: llm, path: m.gguf}
nodes:
  - id: ask
    kind: llm
    model: chat
    prompt: "Q"
    output: json
SCHEMA
  - id: use
    kind: render
    template: "${ask.answer.text} ${ask.items.0} ${ask.score}"
  - id: gate
    kind: branch
    cases:
      - when: ${ask.score} > 3
        output: yes
    else:
      output: no
outputs:
  out: ${use}
sla: {p95_ms: 1000}
"#;

    #[test]
    fn nested_fields_indexes_and_numeric_comparisons_shape_the_schema() {
        let src = WF.replace("SCHEMA\n", "");
        let Some(LlmConstraint::Schema { schema, .. }) = llm_constraint(&src, "ask") else {
            panic!("no schema inferred");
        };
        assert_eq!(
            schema,
            json!({"type": "object", "properties": {
                "answer": {"type": "object", "properties": {"text": {"type": "string"}},
                           "required": ["text"], "additionalProperties": false},
                "items": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "score": {"type": "number"}
            }, "required": ["answer", "items", "score"], "additionalProperties": false})
        );
    }

    #[test]
    fn a_declared_schema_is_kept_and_reads_of_undeclared_fields_are_errors() {
        let declared = "    schema:\n      type: object\n      properties:\n        answer: {type: object}\n        items: {type: array}\n        scroe: {type: number}\n";
        let src = WF.replace("SCHEMA\n", declared);
        assert_eq!(
            errors(&src),
            vec![
                "18:50: `${ask.score}` reads field `score`, which the schema of `ask` does not declare",
                "22:15: `${ask.score}` reads field `score`, which the schema of `ask` does not declare",
            ]
        );
        let fixed = src.replace("scroe", "score");
        let Some(LlmConstraint::Schema {
            schema, inferred, ..
        }) = llm_constraint(&fixed, "ask")
        else {
            panic!("schema lost");
        };
        assert!(!inferred);
        assert_eq!(schema["properties"]["score"], json!({"type": "number"}));
    }

    #[test]
    fn unsupported_schemas_and_conflicting_keys_are_reported_where_they_are() {
        let bad = WF.replace("SCHEMA\n", "    schema: {type: object, properties: {answer: {type: strnig}, items: {type: array}, score: {}}}\n");
        let errs = errors(&bad);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("10:13: schema of `ask` is not supported: "),
            "{errs:?}"
        );
        assert!(errs[0].contains("strnig"), "{errs:?}");
        let both = WF.replace(
            "    output: json\nSCHEMA\n",
            "    regex: \"[a-z]+\"\n    choice: [a, b]\n",
        );
        assert_eq!(
            errors(&both)[0],
            "5:5: node `ask` has both `regex` and `choice`"
        );
        let text_schema = WF.replace(
            "    output: json\nSCHEMA\n",
            "    output: text\n    schema: {type: object}\n",
        );
        assert_eq!(
            errors(&text_schema)[0],
            "9:13: node `ask` has a `schema` but `output: text`"
        );
    }

    #[test]
    fn regex_and_choice_constrain_text_and_a_schema_file_is_read_relative_to_the_workflow() {
        let src = WF
            .replace("    output: json\nSCHEMA\n", "    choice: [yes, no]\n")
            .replace("${ask.answer.text} ${ask.items.0} ${ask.score}", "${ask}")
            .replace("${ask.score} > 3", "${ask} == \"yes\"");
        assert_eq!(
            llm_constraint(&src, "ask"),
            Some(LlmConstraint::Choice(vec!["yes".into(), "no".into()]))
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ask.json"),
            r#"{"type": "object", "properties": {"answer": {"type": "object"}, "items": {"type": "array"}, "score": {"type": "integer"}}}"#,
        )
        .unwrap();
        let with_file = WF.replace("SCHEMA\n", "    schema: ask.json\n");
        let path = dir.path().join("wf.yaml");
        let g =
            parse(path.to_str().unwrap(), with_file.as_bytes()).unwrap_or_else(|d| panic!("{d}"));
        let Op::Llm(l) = &g.nodes[g.by_id["ask"]].op else {
            panic!()
        };
        let Some(LlmConstraint::Schema { schema, .. }) = &l.constraint else {
            panic!("no schema")
        };
        assert_eq!(schema["properties"]["score"], json!({"type": "integer"}));
        let missing = WF.replace("SCHEMA\n", "    schema: nowhere.json\n");
        let errs = errors(&missing);
        assert!(
            errs[0].starts_with("10:13: schema of node `ask`: cannot read nowhere.json"),
            "{errs:?}"
        );
    }
}

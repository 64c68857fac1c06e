//! Values that flow between a plan's ops, and the two small languages ops carry: templates
//! (`${N}` / `${N.path}` name the op's N-th operand, `$${` is a literal `${`) and conditions
//! (`$N.path == "x"`, `not $N`, ...), exactly as docs/workflow.md defines them for workflows.

use std::sync::Arc;

use agentc_plan::ir::{Piece, template_pieces};
use serde_json::Value as Json;

/// One retrieved passage.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Doc {
    pub id: String,
    pub text: String,
    pub score: f32,
    /// Where the passage came from (a file path and offset, or the JSONL id).
    pub source: String,
}

/// A value of one of the workflow types (`text`, `json`, `vec`, `docs`, `list`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Text(String),
    Json(Json),
    Vec(Arc<Vec<f32>>),
    Docs(Vec<Doc>),
    List(Vec<Value>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Text(_) => "text",
            Value::Json(_) => "json",
            Value::Vec(_) => "vec",
            Value::Docs(_) => "docs",
            Value::List(_) => "list",
        }
    }

    /// The value as JSON (workflow outputs, tool arguments).
    pub fn to_json(&self) -> Json {
        match self {
            Value::Text(s) => Json::String(s.clone()),
            Value::Json(j) => j.clone(),
            Value::Vec(v) => Json::from(v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()),
            Value::Docs(docs) => serde_json::to_value(docs).unwrap_or(Json::Null),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
        }
    }

    /// The value as template text: text as it is, a JSON string without quotes, other JSON
    /// compactly, docs and lists one item per line.
    pub fn render(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Json(j) => render_json(j),
            Value::Vec(_) => self.to_json().to_string(),
            Value::Docs(docs) => docs
                .iter()
                .map(|d| d.text.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            Value::List(items) => items
                .iter()
                .map(Value::render)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// The elements a `map` iterates: a list's items, each doc as a one-doc `docs`, a JSON
    /// array's elements.
    pub fn elements(&self) -> Option<Vec<Value>> {
        match self {
            Value::List(items) => Some(items.clone()),
            Value::Docs(docs) => Some(docs.iter().map(|d| Value::Docs(vec![d.clone()])).collect()),
            Value::Json(Json::Array(items)) => {
                Some(items.iter().cloned().map(Value::Json).collect())
            }
            _ => None,
        }
    }

    /// `self.path` (dot-separated object keys or array indexes); an empty path is the value.
    pub fn field(&self, path: &str) -> Result<Value, String> {
        if path.is_empty() {
            return Ok(self.clone());
        }
        let Value::Json(json) = self else {
            return Err(format!(
                "`.{path}` reads a field, but the value is {}, not json",
                self.type_name()
            ));
        };
        let mut at = json;
        for key in path.split('.') {
            let next = match at {
                Json::Object(map) => map.get(key),
                Json::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            at = next.ok_or_else(|| {
                format!(
                    "the json value has no field `{path}` (at `{key}`): {}",
                    snippet(&json.to_string())
                )
            })?;
        }
        Ok(Value::Json(at.clone()))
    }

    /// Truthiness in conditions: non-empty, non-zero, not `false`, not null.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Text(s) => !s.trim().is_empty(),
            Value::Json(j) => match j {
                Json::Null => false,
                Json::Bool(b) => *b,
                Json::Number(n) => n.as_f64() != Some(0.0),
                Json::String(s) => !s.trim().is_empty() && s.trim() != "false",
                Json::Array(a) => !a.is_empty(),
                Json::Object(o) => !o.is_empty(),
            },
            Value::Vec(v) => !v.is_empty(),
            Value::Docs(d) => !d.is_empty(),
            Value::List(l) => !l.is_empty(),
        }
    }
}

fn render_json(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// At most 200 characters of `text`, for error messages.
pub fn snippet(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Renders a template against an op's operands.
pub fn render_template(template: &str, operands: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for piece in template_pieces(template) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Operand { index, path } => {
                out.push_str(&operand(operands, index, path)?.render())
            }
        }
    }
    Ok(out)
}

/// A template's value: exactly one reference passes the value through with its type, anything
/// else renders to text.
pub fn template_value(template: &str, operands: &[Value]) -> Result<Value, String> {
    match template_pieces(template).as_slice() {
        [Piece::Operand { index, path }] => operand(operands, *index, path),
        _ => render_template(template, operands).map(Value::Text),
    }
}

fn operand(operands: &[Value], index: usize, path: &str) -> Result<Value, String> {
    operands
        .get(index)
        .ok_or_else(|| {
            format!(
                "the template reads operand {index}, but the op has {}",
                operands.len()
            )
        })?
        .field(path)
}

pub use agentc_plan::condition::PlanCondition as Condition;
use agentc_plan::condition::{CompareOp, Operand};

/// Whether `condition` holds for the op's `operands`.
pub fn evaluate(condition: &Condition, operands: &[Value]) -> Result<bool, String> {
    let left = term(&condition.left, operands)?;
    let holds = match &condition.compare {
        None => left.is_truthy(),
        Some((op, right)) => compare(&left, *op, &term(right, operands)?),
    };
    Ok(holds != condition.negated)
}

fn term(
    term: &Operand<agentc_plan::condition::OperandRef>,
    operands: &[Value],
) -> Result<Value, String> {
    Ok(match term {
        Operand::Ref(r) => operand(operands, r.index, &r.path)?,
        Operand::Str(s) => Value::Text(s.clone()),
        Operand::Num(n) => {
            Value::Json(serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number))
        }
        Operand::Bool(b) => Value::Json(Json::Bool(*b)),
    })
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Json(Json::Number(n)) => n.as_f64(),
        Value::Json(Json::String(s)) | Value::Text(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare(left: &Value, op: CompareOp, right: &Value) -> bool {
    if op == CompareOp::Contains {
        return match left {
            Value::Json(Json::Array(items)) => items
                .iter()
                .any(|i| compare(&Value::Json(i.clone()), CompareOp::Eq, right)),
            Value::List(items) => items.iter().any(|i| i.render() == right.render()),
            _ => left.render().contains(&right.render()),
        };
    }
    let ordering = match (number(left), number(right)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(left.render().trim().cmp(right.render().trim())),
    };
    let Some(ordering) = ordering else {
        return op == CompareOp::Ne;
    };
    use std::cmp::Ordering::*;
    match op {
        CompareOp::Eq => ordering == Equal,
        CompareOp::Ne => ordering != Equal,
        CompareOp::Lt => ordering == Less,
        CompareOp::Le => ordering != Greater,
        CompareOp::Gt => ordering == Greater,
        CompareOp::Ge => ordering != Less,
        CompareOp::Contains => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops() -> Vec<Value> {
        vec![
            Value::Text("question?".into()),
            Value::Json(json!({"action": "calculate", "input": "2+3", "n": 3, "items": [1, 2]})),
            Value::List(vec![Value::Text("a".into()), Value::Json(json!({"k": 1}))]),
            Value::Docs(vec![
                Doc {
                    id: "1".into(),
                    text: "first".into(),
                    score: 0.9,
                    source: "a.md".into(),
                },
                Doc {
                    id: "2".into(),
                    text: "second".into(),
                    score: 0.5,
                    source: "b.md".into(),
                },
            ]),
        ]
    }

    #[test]
    fn templates_render_each_type() {
        assert_eq!(
            render_template(
                "Q: ${0}\nA: ${1.action} ${1.input} ${1.items.1} $${x}\n${2}\n${3}",
                &ops()
            )
            .unwrap(),
            "Q: question?\nA: calculate 2+3 2 ${x}\na\n{\"k\":1}\nfirst\nsecond"
        );
        assert_eq!(
            template_value("${1.n}", &ops()).unwrap(),
            Value::Json(json!(3))
        );
        assert_eq!(
            template_value(" ${1.n}", &ops()).unwrap(),
            Value::Text(" 3".into())
        );
        assert_eq!(
            render_template("${1.missing}", &ops()).unwrap_err(),
            "the json value has no field `missing` (at `missing`): {\"action\":\"calculate\",\"input\":\"2+3\",\"n\":3,\"items\":[1,2]}"
        );
        assert_eq!(
            render_template("${0.x}", &ops()).unwrap_err(),
            "`.x` reads a field, but the value is text, not json"
        );
        assert_eq!(
            render_template("${7}", &ops()).unwrap_err(),
            "the template reads operand 7, but the op has 4"
        );
    }

    #[test]
    fn conditions_compare_like_the_docs_say() {
        let cases = [
            ("${1.action} == \"calculate\"", true),
            ("${1.action} != \"calculate\"", false),
            ("not ${1.action} == \"finish\"", true),
            ("${1.n} > 2", true),
            ("${1.n} <= 2.5", false),
            ("${1.input} contains \"+\"", true),
            ("${1.items} contains 2", true),
            ("${0}", true),
            ("not ${2}", false),
            ("${1.action} == \"say \\\"hi\\\"\\n\"", false),
        ];
        for (source, expected) in cases {
            let c = agentc_plan::condition::parse_plan_condition(source).unwrap();
            assert_eq!(evaluate(&c, &ops()).unwrap(), expected, "{source}");
        }
    }

    #[test]
    fn map_elements() {
        assert_eq!(ops()[3].elements().unwrap().len(), 2);
        assert_eq!(
            ops()[1].field("items").unwrap().elements().unwrap()[1],
            Value::Json(json!(2))
        );
        assert!(ops()[0].elements().is_none());
    }
}

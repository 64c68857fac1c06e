//! Conditions of `branch` cases and `loop` exits in a workflow file: the shared condition
//! language of the plan contract ([`agentc_plan::condition`]) with references that name nodes
//! and inputs (`${step.action} == "finish"`).

use agentc_plan::condition::{self, ConditionError, Strings};

use super::template::{Reference, TemplateError, parse_reference};

pub use agentc_plan::condition::{CompareOp, Operand as PlanOperand};

/// A condition over workflow references.
pub type Condition = condition::Condition<Reference>;
/// One side of a comparison.
pub type Operand = PlanOperand<Reference>;

const HINT: &str = "write `${node}`, `not ${node}` or `${node.field} == \"value\"` (ops: == != < <= > >= contains)";

/// Parses a `when`/`until` condition of a workflow file.
pub fn parse(source: &str) -> Result<Condition, TemplateError> {
    // A reference's own error (its hint included) is kept as is; the parser's errors get the
    // condition hint.
    let mut reference_error = None;
    condition::Condition::parse(source, Strings::Raw, |body, offset| {
        parse_reference(body, offset).map_err(|e| {
            let message = e.message.clone();
            reference_error = Some(e);
            ConditionError { offset, message }
        })
    })
    .map_err(|e| {
        reference_error.take().unwrap_or(TemplateError {
            offset: e.offset,
            message: e.message,
            hint: HINT.into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_node_references() {
        let c = parse(r#"${step.action} == "finish""#).unwrap();
        assert_eq!(
            c.refs().map(Reference::display).collect::<Vec<_>>(),
            ["step.action"]
        );
        assert_eq!(
            c.compare.unwrap(),
            (CompareOp::Eq, Operand::Str("finish".into()))
        );
    }

    #[test]
    fn rejects_with_exact_messages_and_hints() {
        let e = parse("${x} == finish").unwrap_err();
        assert_eq!(
            e.message,
            "`finish` is not a value; quote strings and write references as `${...}`"
        );
        assert_eq!(e.hint, HINT);
        let e = parse("${} == 'a'").unwrap_err();
        assert_eq!(e.message, "empty placeholder `${}`");
        assert!(e.hint.starts_with("a reference looks like"), "{}", e.hint);
    }
}

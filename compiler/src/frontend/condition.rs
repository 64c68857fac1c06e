//! Conditions of `branch` cases and `loop` exits: `${ref}` (truthy), `not ${ref}`, or a
//! comparison `A op B` with op one of `==`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, where each side
//! is a reference, a quoted string, a number, `true` or `false`.

use serde::Serialize;

use super::template::{Reference, TemplateError, parse_reference};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Operand {
    Ref(Reference),
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
}

impl CompareOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Contains => "contains",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Condition {
    pub negated: bool,
    pub left: Operand,
    pub compare: Option<(CompareOp, Operand)>,
}

const HINT: &str = "write `${node}`, `not ${node}` or `${node.field} == \"value\"` (ops: == != < <= > >= contains)";

impl Condition {
    pub fn parse(source: &str) -> Result<Condition, TemplateError> {
        let tokens = tokenize(source)?;
        let mut it = tokens.into_iter().peekable();
        let negated = matches!(it.peek(), Some((Token::Word(w), _)) if w == "not");
        if negated {
            it.next();
        }
        let left = match it.next() {
            Some((token, offset)) => operand(token, offset)?,
            None => return Err(error(0, "empty condition".into())),
        };
        let compare = match it.next() {
            None => None,
            Some((Token::Op(op), offset)) | Some((Token::Word(op), offset)) => {
                let op = match op.as_str() {
                    "==" => CompareOp::Eq,
                    "!=" => CompareOp::Ne,
                    "<" => CompareOp::Lt,
                    "<=" => CompareOp::Le,
                    ">" => CompareOp::Gt,
                    ">=" => CompareOp::Ge,
                    "contains" => CompareOp::Contains,
                    other => return Err(error(offset, format!("unknown operator `{other}`"))),
                };
                let right = match it.next() {
                    Some((token, offset)) => operand(token, offset)?,
                    None => {
                        return Err(error(
                            offset,
                            format!("`{}` needs a right-hand side", op.symbol()),
                        ));
                    }
                };
                Some((op, right))
            }
            Some((_, offset)) => return Err(error(offset, "expected an operator".into())),
        };
        if let Some((_, offset)) = it.next() {
            return Err(error(offset, "unexpected text after the condition".into()));
        }
        Ok(Condition {
            negated,
            left,
            compare,
        })
    }

    pub fn refs(&self) -> impl Iterator<Item = &Reference> {
        let right = self.compare.as_ref().map(|(_, r)| r);
        [Some(&self.left), right]
            .into_iter()
            .flatten()
            .filter_map(|o| match o {
                Operand::Ref(r) => Some(r),
                _ => None,
            })
    }

    /// Canonical text with each reference written by `f` (used for IR attributes).
    pub fn render_with(&self, mut f: impl FnMut(&Reference) -> String) -> String {
        let mut show = |o: &Operand| match o {
            Operand::Ref(r) => f(r),
            Operand::Str(s) => format!("{s:?}"),
            Operand::Num(n) => format!("{n}"),
            Operand::Bool(b) => format!("{b}"),
        };
        let mut out = String::new();
        if self.negated {
            out.push_str("not ");
        }
        out.push_str(&show(&self.left));
        if let Some((op, right)) = &self.compare {
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            out.push_str(&show(right));
        }
        out
    }
}

fn error(offset: usize, message: String) -> TemplateError {
    TemplateError {
        offset,
        message,
        hint: HINT.into(),
    }
}

enum Token {
    Ref(String),
    Str(String),
    Op(String),
    Word(String),
}

fn operand(token: Token, offset: usize) -> Result<Operand, TemplateError> {
    match token {
        Token::Ref(body) => Ok(Operand::Ref(parse_reference(&body, offset)?)),
        Token::Str(s) => Ok(Operand::Str(s)),
        Token::Word(w) if w == "true" => Ok(Operand::Bool(true)),
        Token::Word(w) if w == "false" => Ok(Operand::Bool(false)),
        Token::Word(w) => w.parse::<f64>().map(Operand::Num).map_err(|_| {
            error(
                offset,
                format!("`{w}` is not a value; quote strings and write references as `${{...}}`"),
            )
        }),
        Token::Op(op) => Err(error(offset, format!("expected a value, found `{op}`"))),
    }
}

fn tokenize(source: &str) -> Result<Vec<(Token, usize)>, TemplateError> {
    let mut tokens = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if source[i..].starts_with("${") {
            let close = source[i..]
                .find('}')
                .ok_or_else(|| error(i, "unclosed placeholder `${`".into()))?;
            tokens.push((Token::Ref(source[i + 2..i + close].to_string()), i));
            i += close + 1;
        } else if c == b'"' || c == b'\'' {
            let close = source[i + 1..]
                .find(c as char)
                .ok_or_else(|| error(i, "unclosed string".into()))?;
            tokens.push((Token::Str(source[i + 1..i + 1 + close].to_string()), i));
            i += close + 2;
        } else if b"=!<>".contains(&c) {
            let len = if bytes.get(i + 1) == Some(&b'=') {
                2
            } else {
                1
            };
            tokens.push((Token::Op(source[i..i + len].to_string()), i));
            i += len;
        } else {
            let end = source[i..]
                .find(|ch: char| ch.is_ascii_whitespace() || "=!<>\"'".contains(ch))
                .map_or(source.len(), |e| i + e);
            tokens.push((Token::Word(source[i..end].to_string()), i));
            i = end;
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let c = Condition::parse(r#"${step.action} == "finish""#).unwrap();
        assert_eq!(
            c.render_with(|r| format!(
                "$0{}",
                r.path.iter().map(|p| format!(".{p}")).collect::<String>()
            )),
            r#"$0.action == "finish""#
        );
        let c = Condition::parse("not ${done}").unwrap();
        assert!(c.negated && c.compare.is_none());
        let c = Condition::parse("${score.value} >= 3.5").unwrap();
        assert_eq!(c.compare.unwrap(), (CompareOp::Ge, Operand::Num(3.5)));
        let c = Condition::parse("${x} contains 'yes'").unwrap();
        assert_eq!(c.compare.unwrap().1, Operand::Str("yes".into()));
    }

    #[test]
    fn rejects_with_exact_messages() {
        let e = |s: &str| Condition::parse(s).unwrap_err().message;
        assert_eq!(e(""), "empty condition");
        assert_eq!(e("${x} =="), "`==` needs a right-hand side");
        assert_eq!(e("${x} ~ 3"), "unknown operator `~`");
        assert_eq!(
            e("${x} == finish"),
            "`finish` is not a value; quote strings and write references as `${...}`"
        );
        assert_eq!(e("${x} == 'a' 'b'"), "unexpected text after the condition");
        assert_eq!(e("${x} matches 'a'"), "unknown operator `matches`");
    }
}

//! The condition language of `branch` cases and `loop` exits, parsed by one parser for both of
//! its forms:
//!
//! - in a workflow file, references name nodes (`${step.action} == "finish"`) and strings are
//!   quoted with `"` or `'`, taken as written ([`Strings::Raw`]);
//! - in a plan, references name the op's operands (`${0.action} == "finish"`, the `exec`
//!   template convention) and strings are `"`-quoted in Rust's escaped form
//!   ([`Strings::Escaped`]), as [`Condition::render_with`] writes them.
//!
//! A condition is `A` (truthy), `not A`, or `A op B` with op one of `==`, `!=`, `<`, `<=`, `>`,
//! `>=`, `contains`, where each side is a reference, a string, a number, `true` or `false`.

use std::fmt;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Operand<R> {
    Ref(R),
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

    fn from_symbol(symbol: &str) -> Option<Self> {
        Some(match symbol {
            "==" => CompareOp::Eq,
            "!=" => CompareOp::Ne,
            "<" => CompareOp::Lt,
            "<=" => CompareOp::Le,
            ">" => CompareOp::Gt,
            ">=" => CompareOp::Ge,
            "contains" => CompareOp::Contains,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Condition<R> {
    pub negated: bool,
    pub left: Operand<R>,
    pub compare: Option<(CompareOp, Operand<R>)>,
}

/// A parse error at a byte offset of the condition's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

/// How strings are quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strings {
    /// `"..."` or `'...'`, taken as written (workflow files).
    Raw,
    /// `"..."` with Rust's escapes (`\"`, `\\`, `\n`, `\t`, `\r`, `\0`, `\'`, `\u{..}`): plans.
    Escaped,
}

fn error(offset: usize, message: String) -> ConditionError {
    ConditionError { offset, message }
}

impl<R> Condition<R> {
    /// Parses `source`; `reference` turns the body of each `${...}` (and its offset) into a
    /// reference.
    pub fn parse(
        source: &str,
        strings: Strings,
        mut reference: impl FnMut(&str, usize) -> Result<R, ConditionError>,
    ) -> Result<Self, ConditionError> {
        let tokens = tokenize(source, strings)?;
        let mut it = tokens.into_iter().peekable();
        let negated = matches!(it.peek(), Some((Token::Word(w), _)) if w == "not");
        if negated {
            it.next();
        }
        let mut operand = |token: Option<(Token, usize)>, missing: &dyn Fn() -> ConditionError| {
            let (token, offset) = token.ok_or_else(missing)?;
            match token {
                Token::Ref(body) => reference(&body, offset).map(Operand::Ref),
                Token::Str(s) => Ok(Operand::Str(s)),
                Token::Word(w) if w == "true" => Ok(Operand::Bool(true)),
                Token::Word(w) if w == "false" => Ok(Operand::Bool(false)),
                Token::Word(w) => w.parse::<f64>().map(Operand::Num).map_err(|_| {
                    error(
                        offset,
                        format!(
                            "`{w}` is not a value; quote strings and write references as `${{...}}`"
                        ),
                    )
                }),
                Token::Op(op) => Err(error(offset, format!("expected a value, found `{op}`"))),
            }
        };
        let left = operand(it.next(), &|| error(0, "empty condition".into()))?;
        let compare = match it.next() {
            None => None,
            Some((Token::Op(symbol), offset)) | Some((Token::Word(symbol), offset)) => {
                let op = CompareOp::from_symbol(&symbol)
                    .ok_or_else(|| error(offset, format!("unknown operator `{symbol}`")))?;
                let right = operand(it.next(), &|| {
                    error(offset, format!("`{}` needs a right-hand side", op.symbol()))
                })?;
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

    /// The references, left to right.
    pub fn refs(&self) -> impl Iterator<Item = &R> {
        let right = self.compare.as_ref().map(|(_, r)| r);
        [Some(&self.left), right]
            .into_iter()
            .flatten()
            .filter_map(|o| match o {
                Operand::Ref(r) => Some(r),
                _ => None,
            })
    }

    /// The plan form ([`Strings::Escaped`]) with each reference written by `f`.
    pub fn render_with(&self, mut f: impl FnMut(&R) -> String) -> String {
        let mut show = |o: &Operand<R>| match o {
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

/// A reference to an operand of the op a plan condition belongs to: `${N}` or `${N.path}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperandRef {
    pub index: usize,
    /// Dot-separated fields (or list indexes), empty for the whole value.
    pub path: String,
}

impl fmt::Display for OperandRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "${{{}}}", self.index)
        } else {
            write!(f, "${{{}.{}}}", self.index, self.path)
        }
    }
}

/// A condition as a plan stores it.
pub type PlanCondition = Condition<OperandRef>;

/// Parses a plan condition (as [`Condition::render_with`] wrote it with [`OperandRef`]s).
pub fn parse_plan_condition(source: &str) -> Result<PlanCondition, ConditionError> {
    Condition::parse(source, Strings::Escaped, |body, offset| {
        let (index, path) = body.split_once('.').unwrap_or((body, ""));
        let index = index
            .parse()
            .map_err(|_| error(offset, format!("`${{{body}}}` is not an operand reference")))?;
        Ok(OperandRef {
            index,
            path: path.to_owned(),
        })
    })
}

enum Token {
    Ref(String),
    Str(String),
    Op(String),
    Word(String),
}

fn tokenize(source: &str, strings: Strings) -> Result<Vec<(Token, usize)>, ConditionError> {
    let mut tokens = Vec::new();
    let bytes = source.as_bytes();
    let quotes: &[u8] = match strings {
        Strings::Raw => b"\"'",
        Strings::Escaped => b"\"",
    };
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
        } else if quotes.contains(&c) {
            let (text, len) = match strings {
                Strings::Raw => {
                    let close = source[i + 1..]
                        .find(c as char)
                        .ok_or_else(|| error(i, "unclosed string".into()))?;
                    (source[i + 1..i + 1 + close].to_string(), close + 2)
                }
                Strings::Escaped => unescape(&source[i + 1..]).map_err(|m| error(i, m))?,
            };
            tokens.push((Token::Str(text), i));
            i += len;
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
            let end = end.max(i + source[i..].chars().next().map_or(1, char::len_utf8));
            tokens.push((Token::Word(source[i..end].to_string()), i));
            i = end;
        }
    }
    Ok(tokens)
}

/// A string in Rust's escaped form after its opening quote: the text and the bytes it took,
/// both quotes included.
fn unescape(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 2)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(c @ ('"' | '\\' | '\'')) => out.push(c),
                Some('u') => {
                    let hex = s[i + 2..]
                        .strip_prefix('{')
                        .and_then(|r| r.split_once('}'))
                        .map(|(hex, _)| hex)
                        .ok_or("a \\u escape needs {hex}")?;
                    let c = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("`\\u{{{hex}}}` is not a character"))?;
                    out.push(c);
                    for _ in 0..hex.len() + 2 {
                        chars.next();
                    }
                }
                other => return Err(format!("unknown escape `\\{}`", other.unwrap_or(' '))),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(source: &str) -> Result<Condition<String>, ConditionError> {
        Condition::parse(source, Strings::Raw, |body, _| Ok(body.to_owned()))
    }

    #[test]
    fn workflow_form_parses_and_renders_to_the_plan_form() {
        let c = raw(r#"${step.action} == "finish""#).unwrap();
        assert_eq!(c.refs().collect::<Vec<_>>(), ["step.action"]);
        let plan = c.render_with(|_| {
            OperandRef {
                index: 0,
                path: "action".into(),
            }
            .to_string()
        });
        assert_eq!(plan, r#"${0.action} == "finish""#);
        assert_eq!(
            parse_plan_condition(&plan).unwrap(),
            Condition {
                negated: false,
                left: Operand::Ref(OperandRef {
                    index: 0,
                    path: "action".into()
                }),
                compare: Some((CompareOp::Eq, Operand::Str("finish".into()))),
            }
        );
        let c = raw("not ${done}").unwrap();
        assert!(c.negated && c.compare.is_none());
        assert_eq!(
            raw("${score.value} >= 3.5").unwrap().compare.unwrap(),
            (CompareOp::Ge, Operand::Num(3.5))
        );
        assert_eq!(
            raw("${x} contains 'yes'").unwrap().compare.unwrap().1,
            Operand::Str("yes".into())
        );
    }

    #[test]
    fn a_string_with_quotes_and_newlines_survives_the_round_trip() {
        let c = raw(r#"${x} == 'say "hi" \n'"#).unwrap();
        let plan = c.render_with(|_| "${1}".to_owned());
        assert_eq!(plan, r#"${1} == "say \"hi\" \\n""#);
        let back = parse_plan_condition(&plan).unwrap();
        assert_eq!(
            back.compare.unwrap().1,
            Operand::Str(r#"say "hi" \n"#.into())
        );
        let c = parse_plan_condition(r#"${0} == "tab\there \u{e9}""#).unwrap();
        assert_eq!(c.compare.unwrap().1, Operand::Str("tab\there é".into()));
    }

    #[test]
    fn rejects_with_exact_messages_and_offsets() {
        let e = |s: &str| raw(s).unwrap_err();
        assert_eq!(e(""), error(0, "empty condition".into()));
        assert_eq!(
            e("${x} =="),
            error(5, "`==` needs a right-hand side".into())
        );
        assert_eq!(e("${x} ~ 3"), error(5, "unknown operator `~`".into()));
        assert_eq!(
            e("${x} == finish").message,
            "`finish` is not a value; quote strings and write references as `${...}`"
        );
        assert_eq!(
            e("${x} == 'a' 'b'"),
            error(12, "unexpected text after the condition".into())
        );
        assert_eq!(e("${x} matches 'a'").message, "unknown operator `matches`");
        assert_eq!(e("${x} == 'a").message, "unclosed string");
        let p = |s: &str| parse_plan_condition(s).unwrap_err();
        assert_eq!(p("${1} == \"x"), error(8, "unterminated string".into()));
        assert_eq!(
            p("${a} == 1"),
            error(0, "`${a}` is not an operand reference".into())
        );
        assert_eq!(p(r#"${0} == "\q""#).message, "unknown escape `\\q`");
    }
}

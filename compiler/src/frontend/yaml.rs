//! A bounded YAML reader that keeps every node's position.
//!
//! Workflow files come from users and may be hostile, so the reader bounds what a file can cost:
//! its size, nesting depth, scalar length and the number of nodes aliases add (an alias bomb is
//! refused, not expanded). It never recurses, so deep nesting cannot overflow the stack.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as YSpan};

use crate::diagnostics::{Diagnostic, Pos, Span};

/// Largest workflow file accepted.
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024;
/// Longest single scalar (a prompt template, say).
pub const MAX_SCALAR_BYTES: usize = 256 * 1024;
/// Deepest nesting of mappings and lists.
pub const MAX_DEPTH: usize = 64;
/// Most nodes that aliases may add by expansion: past this, a document is an alias bomb. Without
/// aliases the file-size limit bounds the node count.
pub const MAX_ALIAS_NODES: usize = 100_000;

#[derive(Clone, Debug, PartialEq)]
pub struct YNode {
    pub kind: YKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum YKind {
    /// A scalar; `plain` is false for quoted and block scalars, which are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<YNode>),
    Map(Vec<(YNode, YNode)>),
}

impl YNode {
    pub fn pos(&self) -> Pos {
        self.span.start
    }

    pub fn describe(&self) -> &'static str {
        match &self.kind {
            YKind::Scalar { .. } => "a scalar",
            YKind::Seq(_) => "a list",
            YKind::Map(_) => "a mapping",
        }
    }

    /// Plain `~`, `null` or an empty plain scalar: YAML's null.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, YKind::Scalar { value, plain: true } if value.is_empty() || value == "~" || value == "null" || value == "Null" || value == "NULL")
    }

    fn count(&self) -> usize {
        let mut n = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            n += 1;
            match &node.kind {
                YKind::Scalar { .. } => {}
                YKind::Seq(items) => stack.extend(items.iter()),
                YKind::Map(entries) => {
                    for (k, v) in entries {
                        stack.push(k);
                        stack.push(v);
                    }
                }
            }
        }
        n
    }
}

fn to_span(span: &YSpan) -> Span {
    Span {
        start: Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        },
        end: Pos {
            line: span.end.line(),
            col: span.end.col() + 1,
        },
        start_char: span.start.index(),
        end_char: span.end.index(),
    }
}

enum Frame {
    Seq {
        items: Vec<YNode>,
        span: Span,
        anchor: usize,
    },
    Map {
        entries: Vec<(YNode, YNode)>,
        pending_key: Option<YNode>,
        span: Span,
        anchor: usize,
    },
}

/// Parses `source` into one document tree, or the first error that stops parsing.
pub fn parse(source: &str) -> Result<YNode, Diagnostic> {
    let mut parser = Parser::new_from_str(source);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (YNode, usize)> = HashMap::new();
    let mut documents = 0usize;
    let mut root: Option<YNode> = None;
    let mut alias_nodes = 0usize;

    while let Some(event) = parser.next_event() {
        let (event, yspan) = event.map_err(|e| scan_error(source, &e))?;
        let span = to_span(&yspan);
        let completed: Option<(YNode, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::new(
                        span.start,
                        "a workflow file holds one YAML document; found a second one",
                    )
                    .with_hint("remove the `---` line, or split the file"));
                }
                None
            }
            Event::Scalar(value, style, anchor, _tag) => {
                if value.len() > MAX_SCALAR_BYTES {
                    return Err(Diagnostic::new(
                        span.start,
                        format!(
                            "scalar of {} bytes is larger than the {} KiB limit",
                            value.len(),
                            MAX_SCALAR_BYTES / 1024
                        ),
                    )
                    .with_hint("keep large data in inputs or files, not in the workflow"));
                }
                let plain = matches!(style, ScalarStyle::Plain);
                Some((
                    YNode {
                        kind: YKind::Scalar {
                            value: Cow::into_owned(value),
                            plain,
                        },
                        span,
                    },
                    anchor,
                ))
            }
            Event::Alias(id) => {
                let (node, size) = anchors.get(&id).cloned().ok_or_else(|| {
                    Diagnostic::new(span.start, "alias refers to an unknown anchor")
                })?;
                alias_nodes += size;
                if alias_nodes > MAX_ALIAS_NODES {
                    return Err(alias_bomb(span.start));
                }
                Some((YNode { span, ..node }, 0))
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Diagnostic::new(
                        span.start,
                        format!("nesting is deeper than {MAX_DEPTH} levels"),
                    )
                    .with_hint("flatten the structure; workflows never need this depth"));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        span,
                        anchor,
                    }
                } else {
                    Frame::Map {
                        entries: Vec::new(),
                        pending_key: None,
                        span,
                        anchor,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    span: start,
                    anchor,
                }) => Some((
                    YNode {
                        kind: YKind::Seq(items),
                        span: join(start, span),
                    },
                    anchor,
                )),
                Some(Frame::Map {
                    entries,
                    span: start,
                    anchor,
                    ..
                }) => Some((
                    YNode {
                        kind: YKind::Map(entries),
                        span: join(start, span),
                    },
                    anchor,
                )),
                None => None,
            },
        };
        let Some((node, anchor)) = completed else {
            continue;
        };
        if anchor != 0 {
            let size = node.count();
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    root.ok_or_else(|| {
        Diagnostic::new(Pos { line: 1, col: 1 }, "the file holds no YAML document")
            .with_hint("a workflow needs at least `name`, `sla`, `nodes` and `outputs`")
    })
}

fn join(start: Span, end: Span) -> Span {
    Span {
        start: start.start,
        end: end.end,
        start_char: start.start_char,
        end_char: end.end_char,
    }
}

fn alias_bomb(pos: Pos) -> Diagnostic {
    Diagnostic::new(
        pos,
        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
    )
    .with_hint("this looks like an alias bomb; write the values out instead of nesting aliases")
}

fn scan_error(source: &str, e: &saphyr_parser::ScanError) -> Diagnostic {
    let marker = e.marker();
    let pos = Pos {
        line: marker.line().max(1),
        col: marker.col() + 1,
    };
    let line_text = source.lines().nth(pos.line.saturating_sub(1)).unwrap_or("");
    let d = Diagnostic::new(pos, format!("invalid YAML: {}", e.info()));
    if line_text.contains('\t') {
        d.with_hint("indent with spaces: YAML does not allow tabs for indentation")
    } else {
        d
    }
}

/// Checks raw bytes before parsing: size, encoding, NUL bytes. Returns the text without a BOM.
pub fn check_bytes(bytes: &[u8]) -> Result<&str, Diagnostic> {
    let first = Pos { line: 1, col: 1 };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::new(
            first,
            format!(
                "file is {} bytes; workflow files are limited to {} MiB",
                bytes.len(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        ));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // Valid up to here, so this conversion cannot fail; fall back to the start anyway.
            let pos = std::str::from_utf8(good).map(end_pos).unwrap_or(first);
            return Err(Diagnostic::new(
                pos,
                format!(
                    "invalid UTF-8 (byte 0x{:02x} at offset {})",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
            )
            .with_hint("save the file as UTF-8"));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(offset) = text.find('\0') {
        return Err(Diagnostic::new(
            end_pos(&text[..offset]),
            "NUL byte in the file; workflow files are text",
        ));
    }
    if text.trim().is_empty() {
        return Err(Diagnostic::new(first, "the file is empty")
            .with_hint("a workflow needs at least `name`, `sla`, `nodes` and `outputs`"));
    }
    Ok(text)
}

/// The position just after `text`, which starts at line 1, column 1.
fn end_pos(text: &str) -> Pos {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Pos { line, col }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        let d = parse(src).unwrap_err();
        format!("{}:{}: {}", d.pos.line, d.pos.col, d.message)
    }

    #[test]
    fn keeps_positions() {
        let root = parse("a: 1\nb:\n  - x\n").unwrap();
        let YKind::Map(entries) = root.kind else {
            panic!("not a map")
        };
        assert_eq!(entries[1].0.pos(), Pos { line: 2, col: 1 });
        let YKind::Seq(items) = &entries[1].1.kind else {
            panic!("not a seq")
        };
        assert_eq!(items[0].pos(), Pos { line: 3, col: 5 });
    }

    #[test]
    fn refuses_alias_bombs() {
        let mut src = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for name in "bcdefghij".chars() {
            src.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = name;
        }
        assert!(
            err(&src).contains("aliases expand to more than 100000 nodes"),
            "{}",
            err(&src)
        );
    }

    #[test]
    fn refuses_deep_nesting() {
        let block: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(err(&block), "65:65: nesting is deeper than 64 levels");
        // The scanner bounds flow nesting itself, before any event reaches us.
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(err(&flow), "1:256: invalid YAML: recursion limit exceeded");
    }

    #[test]
    fn refuses_huge_scalars() {
        let src = format!("a: {}\n", "x".repeat(MAX_SCALAR_BYTES + 1));
        assert_eq!(
            err(&src),
            "1:4: scalar of 262145 bytes is larger than the 256 KiB limit"
        );
    }

    #[test]
    fn refuses_second_document() {
        assert_eq!(
            err("a: 1\n---\nb: 2\n"),
            "2:1: a workflow file holds one YAML document; found a second one"
        );
    }

    #[test]
    fn reports_tabs_with_a_hint() {
        let d = parse("a:\n\tb: 1\n").unwrap_err();
        assert_eq!(d.pos.line, 2);
        assert!(d.message.starts_with("invalid YAML: "), "{}", d.message);
        assert_eq!(
            d.hint.as_deref(),
            Some("indent with spaces: YAML does not allow tabs for indentation")
        );
    }

    #[test]
    fn byte_checks() {
        let e = check_bytes(b"name: x\nb: \xff\n").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (
                Pos { line: 2, col: 4 },
                "invalid UTF-8 (byte 0xff at offset 11)"
            )
        );
        let e = check_bytes(b"name: x\0").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (
                Pos { line: 1, col: 8 },
                "NUL byte in the file; workflow files are text"
            )
        );
        assert_eq!(
            check_bytes(b"  \n").unwrap_err().message,
            "the file is empty"
        );
        assert_eq!(check_bytes(b"\xef\xbb\xbfa: 1").unwrap(), "a: 1");
    }
}

//! Constrained decoding for `output: json`: a byte-level recogniser of JSON prefixes, so the
//! sampler only picks tokens that keep the text a prefix of one JSON object or array, and the
//! generation ends as soon as that value is complete.
//!
//! Small models asked for JSON often wrap it in prose or stop half-way; constraining the
//! sampler (as llama.cpp's grammars and vLLM's guided decoding do) makes the output parseable
//! by construction while leaving the model's choice among valid tokens unchanged.

use agentc_model::Tokenizer;

use crate::sampling::Sampler;

/// Which top-level JSON values are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonShape {
    /// An object or an array.
    Any,
    Array,
    Object,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the top-level value (whitespace allowed).
    Start,
    /// A value must come next (after `:` or `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ArrayFirst,
    /// Just after `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    /// After a key: `:`.
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    AfterValue,
    /// Inside a string; `key` says whether it is an object key.
    Str {
        key: bool,
    },
    /// After a backslash in a string.
    Escape {
        key: bool,
    },
    /// Inside `\uXXXX`, with this many hex digits still to come.
    Unicode {
        key: bool,
        left: u8,
    },
    Number(NumberPart),
    /// Inside `true`, `false` or `null`: the rest of the word.
    Literal {
        rest: &'static [u8],
    },
    /// The top-level value is complete.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NumberPart {
    /// After `-`.
    Sign,
    /// After a leading `0`.
    Zero,
    Int,
    /// After `.`.
    Dot,
    Frac,
    /// After `e`/`E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    ExpDigits,
}

impl NumberPart {
    /// A number may end here.
    fn complete(self) -> bool {
        matches!(
            self,
            NumberPart::Zero | NumberPart::Int | NumberPart::Frac | NumberPart::ExpDigits
        )
    }
}

/// Nesting deeper than this is refused (a runaway model would otherwise open brackets forever).
const MAX_DEPTH: usize = 64;

/// The recogniser's state after some bytes: clone it to try a token, keep the clone if the
/// token fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPrefix {
    shape: JsonShape,
    state: State,
    stack: Vec<Container>,
}

impl JsonPrefix {
    pub fn new(shape: JsonShape) -> Self {
        Self {
            shape,
            state: State::Start,
            stack: Vec::new(),
        }
    }

    /// The top-level value is complete: nothing but the end may follow.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds `bytes`; false (and an unspecified state) when they leave the JSON language.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.push(b))
    }

    /// True if `bytes` would keep the text a valid prefix (without changing `self`).
    pub fn accepts(&self, bytes: &[u8]) -> bool {
        !bytes.is_empty() && self.clone().push_bytes(bytes)
    }

    fn push(&mut self, b: u8) -> bool {
        match self.state {
            State::Str { key } => self.string_byte(b, key),
            State::Escape { key } => {
                self.state = match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => State::Str { key },
                    b'u' => State::Unicode { key, left: 4 },
                    _ => return false,
                };
                true
            }
            State::Unicode { key, left } => {
                if !b.is_ascii_hexdigit() {
                    return false;
                }
                self.state = if left == 1 {
                    State::Str { key }
                } else {
                    State::Unicode {
                        key,
                        left: left - 1,
                    }
                };
                true
            }
            State::Literal { rest } => {
                if rest.first() != Some(&b) {
                    return false;
                }
                self.state = if rest.len() == 1 {
                    self.value_done()
                } else {
                    State::Literal { rest: &rest[1..] }
                };
                true
            }
            State::Number(part) => self.number_byte(b, part),
            _ if is_space(b) => true,
            State::Start => match (b, self.shape) {
                (b'{', JsonShape::Any | JsonShape::Object) => self.open(Container::Object),
                (b'[', JsonShape::Any | JsonShape::Array) => self.open(Container::Array),
                _ => false,
            },
            State::Value => self.value_start(b),
            State::ArrayFirst => {
                if b == b']' {
                    self.close(Container::Array)
                } else {
                    self.value_start(b)
                }
            }
            State::ObjectFirst => match b {
                b'}' => self.close(Container::Object),
                b'"' => {
                    self.state = State::Str { key: true };
                    true
                }
                _ => false,
            },
            State::Key => {
                if b != b'"' {
                    return false;
                }
                self.state = State::Str { key: true };
                true
            }
            State::Colon => {
                if b != b':' {
                    return false;
                }
                self.state = State::Value;
                true
            }
            State::AfterValue => match (b, self.stack.last()) {
                (b',', Some(Container::Object)) => {
                    self.state = State::Key;
                    true
                }
                (b',', Some(Container::Array)) => {
                    self.state = State::Value;
                    true
                }
                (b'}', Some(Container::Object)) => self.close(Container::Object),
                (b']', Some(Container::Array)) => self.close(Container::Array),
                _ => false,
            },
            State::Done => false,
        }
    }

    fn string_byte(&mut self, b: u8, key: bool) -> bool {
        match b {
            b'"' => {
                self.state = if key { State::Colon } else { self.value_done() };
                true
            }
            b'\\' => {
                self.state = State::Escape { key };
                true
            }
            // Control characters must be escaped; bytes of multi-byte UTF-8 pass through.
            0..=0x1f => false,
            _ => true,
        }
    }

    fn number_byte(&mut self, b: u8, part: NumberPart) -> bool {
        use NumberPart::*;
        let next = match (part, b) {
            (Sign, b'0') => Some(Zero),
            (Sign, b'1'..=b'9') => Some(Int),
            (Int, b'0'..=b'9') => Some(Int),
            (Zero | Int, b'.') => Some(Dot),
            (Dot | Frac, b'0'..=b'9') => Some(Frac),
            (Zero | Int | Frac, b'e' | b'E') => Some(Exp),
            (Exp, b'+' | b'-') => Some(ExpSign),
            (Exp | ExpSign | ExpDigits, b'0'..=b'9') => Some(ExpDigits),
            _ => None,
        };
        match next {
            Some(next) => {
                self.state = State::Number(next);
                true
            }
            // The number ends here; the byte belongs to what follows it.
            None if part.complete() => {
                self.state = self.value_done();
                self.push(b)
            }
            None => false,
        }
    }

    fn value_start(&mut self, b: u8) -> bool {
        self.state = match b {
            b'{' => return self.open(Container::Object),
            b'[' => return self.open(Container::Array),
            b'"' => State::Str { key: false },
            b'-' => State::Number(NumberPart::Sign),
            b'0' => State::Number(NumberPart::Zero),
            b'1'..=b'9' => State::Number(NumberPart::Int),
            b't' => State::Literal { rest: b"rue" },
            b'f' => State::Literal { rest: b"alse" },
            b'n' => State::Literal { rest: b"ull" },
            _ => return false,
        };
        true
    }

    fn open(&mut self, container: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(container);
        self.state = match container {
            Container::Object => State::ObjectFirst,
            Container::Array => State::ArrayFirst,
        };
        true
    }

    fn close(&mut self, container: Container) -> bool {
        if self.stack.pop() != Some(container) {
            return false;
        }
        self.state = self.value_done();
        true
    }

    /// The state after a complete value.
    fn value_done(&self) -> State {
        if self.stack.is_empty() {
            State::Done
        } else {
            State::AfterValue
        }
    }
}

impl JsonPrefix {
    /// The shortest text that makes what was pushed a complete JSON value (an object key cut
    /// after its comma gets an empty name): for output that `max_tokens` cut short.
    pub fn completion(&self) -> String {
        let mut out = String::new();
        match self.state {
            State::Start | State::Done => return out,
            State::Str { key } => {
                out.push('"');
                if key {
                    out.push_str(":null");
                }
            }
            State::Escape { key } => {
                out.push_str("\\\"");
                if key {
                    out.push_str(":null");
                }
            }
            State::Unicode { key, left } => {
                out.push_str(&"0".repeat(usize::from(left)));
                out.push('"');
                if key {
                    out.push_str(":null");
                }
            }
            State::Number(part) => {
                if !part.complete() {
                    out.push('0');
                }
            }
            State::Literal { rest } => out.push_str(&String::from_utf8_lossy(rest)),
            State::Value => out.push_str("null"),
            State::Key => out.push_str("\"\":null"),
            State::Colon => out.push_str(":null"),
            State::ArrayFirst | State::ObjectFirst | State::AfterValue => {}
        }
        for container in self.stack.iter().rev() {
            out.push(match container {
                Container::Object => '}',
                Container::Array => ']',
            });
        }
        out
    }
}

/// `text` (a model's output) closed into a complete JSON object or array, if it is a prefix of
/// one after leading whitespace.
pub fn complete_json_prefix(text: &str) -> Option<String> {
    let mut prefix = JsonPrefix::new(JsonShape::Any);
    let trimmed = text.trim_start();
    if !prefix.push_bytes(trimmed.as_bytes()) {
        return None;
    }
    Some(format!("{trimmed}{}", prefix.completion()))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Candidates (by logit) checked before falling back to a scan of the whole vocabulary.
const TOP_CANDIDATES: usize = 256;

/// Picks tokens that keep the generated text inside the JSON language.
#[derive(Clone, Debug)]
pub struct JsonConstraint {
    prefix: JsonPrefix,
    scratch: Vec<u8>,
}

impl JsonConstraint {
    pub fn new(shape: JsonShape) -> Self {
        Self {
            prefix: JsonPrefix::new(shape),
            scratch: Vec::new(),
        }
    }

    /// The JSON value is complete: the generation should end.
    pub fn is_complete(&self) -> bool {
        self.prefix.is_complete()
    }

    /// Chooses the next token with `sampler` among those that keep the text a JSON prefix and
    /// advances past it; `None` when no token does (or the value is already complete).
    pub fn choose(
        &mut self,
        logits: &[f32],
        sampler: &mut Sampler,
        tokenizer: &Tokenizer,
    ) -> Option<u32> {
        if self.prefix.is_complete() {
            return None;
        }
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let top = TOP_CANDIDATES.min(order.len());
        if top < order.len() {
            order.select_nth_unstable_by(top, |&a, &b| {
                logits[b as usize].total_cmp(&logits[a as usize])
            });
        }
        let mut valid: Vec<u32> = order[..top]
            .iter()
            .copied()
            .filter(|&t| self.fits(t, tokenizer))
            .collect();
        if valid.is_empty() {
            valid = order[top..]
                .iter()
                .copied()
                .filter(|&t| self.fits(t, tokenizer))
                .collect();
        }
        if valid.is_empty() {
            return None;
        }
        let mut masked = vec![f32::NEG_INFINITY; logits.len()];
        for &t in &valid {
            masked[t as usize] = logits[t as usize];
        }
        let token = sampler.sample(&masked);
        self.scratch.clear();
        tokenizer
            .append_token_bytes(token, false, &mut self.scratch)
            .ok()?;
        self.prefix.push_bytes(&self.scratch).then_some(token)
    }

    fn fits(&mut self, token: u32, tokenizer: &Tokenizer) -> bool {
        self.scratch.clear();
        tokenizer
            .append_token_bytes(token, false, &mut self.scratch)
            .is_ok()
            && self.prefix.accepts(&self.scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(shape: JsonShape, text: &str) -> Option<bool> {
        let mut p = JsonPrefix::new(shape);
        p.push_bytes(text.as_bytes()).then(|| p.is_complete())
    }

    #[test]
    fn recognises_valid_json_and_its_prefixes() {
        let docs = [
            r#"{"a": [1, -2.5e+3, 0.25, true, false, null], "b": {"c": "x\"y\\u00e9\n"}}"#,
            r#"["Plan ahead", "Set a budget", "Ask for help"]"#,
            "[]",
            "{}",
            "  [ {\"k\" : [ [ ] ] } ]",
            "[\"caf\u{e9} \u{1F600}\"]",
        ];
        for doc in docs {
            assert!(
                serde_json::from_str::<serde_json::Value>(doc).is_ok(),
                "{doc}"
            );
            assert_eq!(complete(JsonShape::Any, doc), Some(true), "{doc}");
            // Every proper prefix is accepted and incomplete.
            for cut in 1..doc.len() {
                let mut p = JsonPrefix::new(JsonShape::Any);
                assert!(p.push_bytes(&doc.as_bytes()[..cut]), "{doc} at {cut}");
                assert!(!p.is_complete() || doc.as_bytes()[cut..].iter().all(|&b| is_space(b)));
            }
        }
    }

    #[test]
    fn rejects_what_is_not_json() {
        let bad = [
            "Sure! [1]",
            "[1,]x",
            "[01]",
            "{\"a\" 1}",
            "{a: 1}",
            "[1 2]",
            "[\"tab\there\"]",
            "[tru]",
            "[\"a\"]]",
            "{\"a\": 1]",
            "[1.]",
            "[-]",
            "[1e]",
            "[\"\\x\"]",
            "[] []",
        ];
        for doc in bad {
            let mut p = JsonPrefix::new(JsonShape::Any);
            let ok = p.push_bytes(doc.as_bytes()) && p.is_complete();
            assert!(!ok, "{doc} was accepted");
        }
    }

    #[test]
    fn shape_restricts_the_top_level_value() {
        assert_eq!(complete(JsonShape::Array, "[1]"), Some(true));
        assert_eq!(complete(JsonShape::Array, "{}"), None);
        assert_eq!(complete(JsonShape::Object, "{}"), Some(true));
        assert_eq!(complete(JsonShape::Object, "[1]"), None);
        assert_eq!(complete(JsonShape::Any, "\"x\""), None);
        assert!(!JsonPrefix::new(JsonShape::Any).accepts(b""));
    }

    #[test]
    fn cut_output_is_completed() {
        let cases = [
            (
                "[\"Plan ahead\", \"Set a bud",
                "[\"Plan ahead\", \"Set a bud\"]",
            ),
            ("{\"a\": [1, 2.", "{\"a\": [1, 2.0]}"),
            ("{\"a\": tr", "{\"a\": true}"),
            ("{\"a\": 1, ", "{\"a\": 1, \"\":null}"),
            ("{\"ke", "{\"ke\":null}"),
            ("[{\"a\": \"x\\", "[{\"a\": \"x\\\\\"}]"),
            ("[\"\\u00", "[\"\\u0000\"]"),
            ("  {\"a\":", "{\"a\":null}"),
            ("[1, ", "[1, null]"),
        ];
        for (cut, expected) in cases {
            let done = complete_json_prefix(cut).expect(cut);
            assert_eq!(done, expected, "{cut}");
            assert!(
                serde_json::from_str::<serde_json::Value>(&done).is_ok(),
                "{done}"
            );
        }
        assert_eq!(complete_json_prefix("Sure: [1"), None);
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "[".repeat(MAX_DEPTH);
        let mut p = JsonPrefix::new(JsonShape::Any);
        assert!(p.push_bytes(deep.as_bytes()));
        assert!(!p.accepts(b"["));
        assert!(p.accepts(b"]"));
    }
}

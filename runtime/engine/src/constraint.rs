//! Structured outputs: decoding constrained to a JSON Schema, a regular expression or a fixed
//! list of choices, with llguidance (the library vLLM, SGLang and llama.cpp use).
//!
//! Per model, a token trie is built once from the GGUF vocabulary (each token's raw bytes;
//! control tokens marked special so no constraint can produce them) and wrapped in a
//! [`Grammars`] factory. Per sequence, a [`Guide`] holds llguidance's matcher: it computes the
//! mask of allowed tokens (while the forward pass runs), masks the logits, commits the sampled
//! token, and reports the tokens the grammar forces next (fast-forward: a long fixed key is
//! appended in one forward step instead of one step per token).

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentc_model::Tokenizer;
use agentc_model::tokenizer::TokenType;
use llguidance::api::{GrammarInit, ParserLimits, TopLevelGrammar};
use llguidance::toktrie::{
    InferenceCapabilities, SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv,
};
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};

pub use agentc_plan::decode::OutputConstraint;

/// Compiling an [`OutputConstraint`] with llguidance.
pub trait ConstraintGrammar {
    /// Checks the constraint without a tokenizer: an unsupported schema feature, a bad regex or
    /// an empty choice list is an [`Error::InvalidConstraint`] that names it.
    fn validate(&self) -> Result<()>;
    /// The llguidance grammar.
    fn grammar(&self) -> TopLevelGrammar;
    /// A choice list must have choices, none of them empty.
    fn check_choices(&self) -> Result<()>;
}

impl ConstraintGrammar for OutputConstraint {
    /// JSON is written compactly (`,` and `:` without spaces) unless the schema says otherwise
    /// in `x-guidance`: fewer tokens, and longer forced runs.
    fn grammar(&self) -> TopLevelGrammar {
        match self {
            OutputConstraint::JsonObject => TopLevelGrammar::from_json_schema(compact(json!({
                "type": "object"
            }))),
            OutputConstraint::JsonSchema(schema) => {
                TopLevelGrammar::from_json_schema(compact(schema.clone()))
            }
            OutputConstraint::Regex(rx) => TopLevelGrammar::from_regex(rx),
            OutputConstraint::Choice(choices) => {
                let alternatives: Vec<String> = choices
                    .iter()
                    .map(|c| serde_json::to_string(c).unwrap_or_default())
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}", alternatives.join(" | ")))
            }
            OutputConstraint::Lark(grammar) => TopLevelGrammar::from_lark(grammar.clone()),
        }
    }

    fn validate(&self) -> Result<()> {
        self.check_choices()?;
        match GrammarInit::Serialized(self.grammar()).validate(None, ParserLimits::default()) {
            llguidance::earley::ValidationResult::Error(e) => {
                Err(Error::InvalidConstraint(describe(self, &e)))
            }
            _ => Ok(()),
        }
    }

    /// A choice list must have choices, none of them empty (the grammar compiler would accept
    /// an empty alternative).
    fn check_choices(&self) -> Result<()> {
        if let OutputConstraint::Choice(choices) = self
            && (choices.is_empty() || choices.iter().any(String::is_empty))
        {
            return Err(Error::InvalidConstraint(
                "`choice` needs at least one choice, and no empty one".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Adds llguidance's compact-separator setting to a schema that does not choose its own.
fn compact(mut schema: Json) -> Json {
    if let Some(map) = schema.as_object_mut()
        && !map.contains_key("x-guidance")
    {
        map.insert(
            "x-guidance".to_owned(),
            json!({"whitespace_flexible": false, "item_separator": ",", "key_separator": ":"}),
        );
    }
    schema
}

/// llguidance's message, prefixed by what was being compiled and, for a JSON Schema, the JSON
/// pointer of the subschema that fails.
fn describe(constraint: &OutputConstraint, message: &str) -> String {
    let message = message.lines().next().unwrap_or(message);
    let what = match constraint {
        OutputConstraint::JsonObject => "JSON schema",
        OutputConstraint::JsonSchema(schema) => {
            return match failing_subschema(schema, message) {
                Some(pointer) => {
                    format!("unsupported or invalid JSON schema at `{pointer}`: {message}")
                }
                None => format!("unsupported or invalid JSON schema: {message}"),
            };
        }
        OutputConstraint::Regex(_) => "regex",
        OutputConstraint::Choice(_) => "choice list",
        OutputConstraint::Lark(_) => "grammar",
    };
    format!("unsupported or invalid {what}: {message}")
}

/// Keywords whose value is one subschema, and those whose value maps names or indexes to
/// subschemas.
const SUBSCHEMA: [&str; 9] = [
    "items",
    "additionalProperties",
    "additionalItems",
    "contains",
    "propertyNames",
    "not",
    "if",
    "then",
    "else",
];
const SUBSCHEMAS: [&str; 8] = [
    "properties",
    "patternProperties",
    "$defs",
    "definitions",
    "prefixItems",
    "anyOf",
    "oneOf",
    "allOf",
];
/// Past this many subschemas the search gives up (it runs only on the error path).
const MAX_SUBSCHEMAS: usize = 256;

/// The JSON pointer of the deepest subschema of `schema` that fails to compile on its own with
/// `message` (the whole schema's error); `None` when only the whole schema fails that way (a
/// `$ref` that resolves elsewhere, a conflict between siblings).
fn failing_subschema(schema: &Json, message: &str) -> Option<String> {
    let mut found = Vec::new();
    collect_subschemas(schema, String::new(), &mut found);
    // Deepest first: a pointer is never shorter than a parent's.
    found.sort_by_key(|(pointer, _)| std::cmp::Reverse(pointer.matches('/').count()));
    found.into_iter().find_map(|(pointer, sub)| {
        let grammar = TopLevelGrammar::from_json_schema(sub.clone());
        match GrammarInit::Serialized(grammar).validate(None, ParserLimits::default()) {
            llguidance::earley::ValidationResult::Error(e) if e.lines().next() == Some(message) => {
                Some(pointer)
            }
            _ => None,
        }
    })
}

fn collect_subschemas<'a>(schema: &'a Json, pointer: String, out: &mut Vec<(String, &'a Json)>) {
    let Some(map) = schema.as_object() else {
        return;
    };
    if out.len() >= MAX_SUBSCHEMAS {
        return;
    }
    for (key, value) in map {
        let here = format!("{pointer}/{}", escape_pointer(key));
        if SUBSCHEMA.contains(&key.as_str()) && value.is_object() {
            collect_subschemas(value, here.clone(), out);
            out.push((here, value));
        } else if SUBSCHEMAS.contains(&key.as_str()) {
            let children: Vec<(String, &Json)> = match value {
                Json::Object(m) => m.iter().map(|(k, v)| (escape_pointer(k), v)).collect(),
                Json::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v))
                    .collect(),
                _ => Vec::new(),
            };
            for (name, child) in children.into_iter().filter(|(_, c)| c.is_object()) {
                let child_pointer = format!("{here}/{name}");
                collect_subschemas(child, child_pointer.clone(), out);
                out.push((child_pointer, child));
            }
        } else if key == "items"
            && let Json::Array(items) = value
        {
            for (i, child) in items.iter().enumerate().filter(|(_, c)| c.is_object()) {
                let child_pointer = format!("{here}/{i}");
                collect_subschemas(child, child_pointer.clone(), out);
                out.push((child_pointer, child));
            }
        }
    }
}

/// RFC 6901: `~` is written `~0` and `/` is written `~1`.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The model's vocabulary as llguidance sees it.
struct VocabEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => self
                .tokenizer
                .encode(text, false, false)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}

/// The bytes a token stands for in the trie: what it decodes to for ordinary tokens, and
/// `0xFF` + its name for control tokens (llguidance's marker for special tokens).
fn trie_bytes(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    match tokenizer.token_type(id) {
        Some(TokenType::Normal | TokenType::Byte) => {
            let _ = tokenizer.append_token_bytes(id, false, &mut bytes);
        }
        Some(TokenType::UserDefined) => {
            let text = tokenizer.token_text(id).unwrap_or_default();
            if text.starts_with('<') && text.ends_with('>') {
                bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
            }
            bytes.extend_from_slice(text.as_bytes());
        }
        Some(TokenType::Control | TokenType::Unknown) => {
            bytes.push(TokTrie::SPECIAL_TOKEN_MARKER);
            bytes.extend_from_slice(tokenizer.token_text(id).unwrap_or_default().as_bytes());
        }
        Some(TokenType::Unused) | None => {}
    }
    bytes
}

/// Compiles constraints into matchers for one model's vocabulary.
pub struct Grammars {
    factory: ParserFactory,
    vocab_size: usize,
}

impl std::fmt::Debug for Grammars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grammars")
            .field("vocab_size", &self.vocab_size)
            .finish_non_exhaustive()
    }
}

impl Grammars {
    /// Builds the token trie of `tokenizer`'s vocabulary; its end-of-generation tokens are the
    /// ones a finished output may end with.
    pub fn new(tokenizer: Arc<Tokenizer>) -> Result<Self> {
        let vocab_size = tokenizer.vocab_size();
        let words: Vec<Vec<u8>> = (0..vocab_size as u32)
            .map(|id| trie_bytes(&tokenizer, id))
            .collect();
        let mut eos: Vec<u32> = tokenizer.end_of_generation_ids().collect();
        eos.sort_unstable();
        let first_eos = eos
            .first()
            .copied()
            .or(tokenizer.special_ids().eos)
            .ok_or_else(|| {
                Error::InvalidConstraint(
                    "the model's vocabulary has no end-of-generation token".to_owned(),
                )
            })?;
        let info = TokRxInfo {
            tok_bos: tokenizer.special_ids().bos,
            tok_pad: tokenizer.special_ids().pad,
            tok_unk: tokenizer.special_ids().unknown,
            ..TokRxInfo::new(vocab_size as u32, first_eos)
        };
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos);
        let env: TokEnv = Arc::new(VocabEnv { trie, tokenizer });
        let mut factory = ParserFactory::new(
            &env,
            InferenceCapabilities {
                ff_tokens: true,
                ..InferenceCapabilities::default()
            },
            &llguidance::earley::SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| Error::InvalidConstraint(e.to_string()))?;
        factory.quiet();
        Ok(Self {
            factory,
            vocab_size,
        })
    }

    /// A matcher for one sequence.
    pub fn guide(&self, constraint: &OutputConstraint, fast_forward: bool) -> Result<Guide> {
        // Compiling the parser validates the grammar too: no separate `validate` pass.
        constraint.check_choices()?;
        let parser = self
            .factory
            .create_parser(constraint.grammar())
            .map_err(|e| Error::InvalidConstraint(describe(constraint, &e.to_string())))?;
        Ok(Guide {
            matcher: Matcher::new(Ok(parser)),
            mask: None,
            fast_forward,
            lazy: false,
            mask_time: Duration::ZERO,
            masks: 0,
        })
    }
}

/// One sequence's constraint state.
pub struct Guide {
    matcher: Matcher,
    /// The allowed tokens for the next sample, computed ahead.
    mask: Option<SimpleVob>,
    fast_forward: bool,
    /// Check the unmasked sample first and compute the mask only if it is refused (see
    /// [`Guide::set_lazy`]).
    lazy: bool,
    mask_time: Duration,
    masks: u32,
}

impl std::fmt::Debug for Guide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guide")
            .field("stopped", &self.matcher.is_stopped())
            .field("masks", &self.masks)
            .finish_non_exhaustive()
    }
}

/// What committing a token did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Committed {
    /// The output is complete: nothing may follow.
    pub complete: bool,
    /// Tokens the grammar forces next (fast-forward), already committed.
    pub forced: Vec<u32>,
}

impl Guide {
    /// Lazy masking: the token is first sampled from the unmasked logits and kept if the
    /// grammar allows it (a check of one token, a few microseconds); only a refused sample
    /// computes the mask and is drawn again from the masked logits. For greedy decoding and
    /// for plain temperature sampling (no top-k, no top-p) the result has exactly the masked
    /// distribution: a token t the grammar allows is drawn with p(t) + (1 - p(A)) p(t) / p(A)
    /// = p(t) / p(A). Top-k and top-p truncate differently before and after a mask, so those
    /// requests, and requests that report log-probabilities (of the masked distribution),
    /// stay eager: their masks are computed during the forward pass.
    pub fn set_lazy(&mut self, lazy: bool) {
        self.lazy = lazy;
    }

    pub fn is_lazy(&self) -> bool {
        self.lazy
    }

    /// Whether the grammar allows `token` next (an end-of-generation token: whether the output
    /// is complete).
    pub fn allows(&mut self, token: u32) -> bool {
        if let Some(mask) = &self.mask {
            return mask.is_allowed(token);
        }
        self.matcher.validate_tokens(&[token]).is_ok_and(|n| n == 1)
    }

    /// Computes the mask for the next token ahead, unless the guide is lazy. Meant to run
    /// while the forward pass computes the logits it applies to.
    pub fn prepare(&mut self) {
        if !self.lazy {
            self.compute_mask();
        }
    }

    /// Computes the mask for the next token (once; later calls reuse it).
    fn compute_mask(&mut self) {
        if self.mask.is_none() && !self.matcher.is_stopped() {
            let started = Instant::now();
            self.mask = self.matcher.compute_mask().ok();
            self.mask_time += started.elapsed();
            self.masks += 1;
        }
    }

    /// Sets every token the constraint does not allow to -inf. Fails when no token is allowed
    /// or the matcher is in error.
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<()> {
        self.compute_mask();
        let mask = self.mask.as_ref().ok_or_else(|| self.failure())?;
        if mask.is_zero() {
            return Err(Error::InvalidConstraint(
                "no token of the vocabulary can continue the constrained output".to_owned(),
            ));
        }
        let words = mask.as_slice();
        for (chunk, &word) in logits.chunks_mut(32).zip(words) {
            if word == u32::MAX {
                continue;
            }
            for (bit, l) in chunk.iter_mut().enumerate() {
                if word & (1 << bit) == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        let covered = words.len() * 32;
        if logits.len() > covered {
            logits[covered..].fill(f32::NEG_INFINITY);
        }
        Ok(())
    }

    /// Commits the sampled `token` (an end-of-generation token ends the output) and, with
    /// fast-forward on, the tokens the grammar then forces, at most `room` of them (what is left
    /// of `max_tokens`).
    pub fn commit(
        &mut self,
        token: u32,
        end_of_generation: bool,
        room: usize,
    ) -> Result<Committed> {
        self.mask = None;
        if end_of_generation {
            return Ok(Committed {
                complete: true,
                forced: Vec::new(),
            });
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| Error::InvalidConstraint(format!("token {token} rejected: {e}")))?;
        if self.matcher.is_stopped() {
            return Ok(Committed {
                complete: true,
                forced: Vec::new(),
            });
        }
        let mut forced = if self.fast_forward {
            self.matcher.consume_ff_tokens()
        } else {
            Vec::new()
        };
        forced.truncate(room);
        Ok(Committed {
            complete: self.matcher.is_stopped(),
            forced,
        })
    }

    /// Whether the output so far is a complete match (it may end here).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_stopped() || self.matcher.is_accepting().unwrap_or(false)
    }

    /// Time spent computing masks, and how many were computed.
    pub fn mask_stats(&self) -> (Duration, u32) {
        (self.mask_time, self.masks)
    }

    fn failure(&self) -> Error {
        Error::InvalidConstraint(
            self.matcher
                .get_error()
                .unwrap_or_else(|| "the constrained output has ended".to_owned()),
        )
    }
}

/// Commits `token` to `guide`, if there is one (see [`Guide::commit`]).
pub(crate) fn commit(
    guide: Option<&mut Guide>,
    token: u32,
    end_of_generation: bool,
    room: usize,
) -> Result<Committed> {
    guide.map_or(Ok(Committed::default()), |g| {
        g.commit(token, end_of_generation, room)
    })
}

/// Fails a generation that ends (by `max_tokens`, or a stop string when `by_stop`) while its
/// constrained output is still incomplete: an unfinished object is never passed on.
pub(crate) fn ensure_complete(
    guide: Option<&mut Guide>,
    by_stop: bool,
    tokens: usize,
) -> Result<()> {
    if guide.is_none_or(|g| g.is_accepting()) {
        return Ok(());
    }
    Err(Error::IncompleteOutput {
        reason: if by_stop {
            "a stop string ended it"
        } else {
            "max_tokens ran out"
        },
        tokens,
    })
}

/// Computes the masks of `guides` on a helper thread while `forward` runs on this one (lazy
/// guides compute theirs only if their sample is refused, so they need no helper).
pub(crate) fn prepare_during<R: Send>(
    guides: &mut [&mut Guide],
    forward: impl FnOnce() -> R + Send,
) -> R {
    if guides.iter().all(|g| g.is_lazy()) {
        return forward();
    }
    std::thread::scope(|s| {
        let helper = s.spawn(|| {
            for g in guides.iter_mut() {
                g.prepare();
            }
        });
        let out = forward();
        let _ = helper.join();
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints_round_trip_through_the_plan_form() {
        let all = [
            OutputConstraint::JsonObject,
            OutputConstraint::JsonSchema(json!({"type": "object", "required": ["a"]})),
            OutputConstraint::Regex("[0-9]+".to_owned()),
            OutputConstraint::Choice(vec!["yes".to_owned(), "no".to_owned()]),
        ];
        for c in all {
            assert_eq!(OutputConstraint::from_json(&c.to_json()).unwrap(), c);
        }
        assert!(OutputConstraint::from_json(&json!({"grammar": "x"})).is_err());
        assert!(OutputConstraint::from_json(&json!({"regex": 1})).is_err());
    }

    #[test]
    fn invalid_constraints_are_refused_with_what_is_wrong() {
        let err = OutputConstraint::JsonSchema(json!({"type": "object", "properties": {
            "a": {"type": "strnig"}
        }}))
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid output constraint: unsupported or invalid JSON schema at `/properties/a`: \
             Invalid type: strnig"
        );
        let err = OutputConstraint::JsonSchema(json!({"type": "object", "properties": {
            "list": {"type": "array", "items": {"anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"a/b": {"type": "string", "if": {}}}}
            ]}}
        }}))
        .validate()
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid output constraint: unsupported or invalid JSON schema at \
             `/properties/list/items/anyOf/1/properties/a~1b`: Unimplemented keys: [\"if\"]"
        );
        let err = OutputConstraint::Regex("(unclosed".to_owned())
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid regex"), "{err}");
        let err = OutputConstraint::Choice(vec![])
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one choice"), "{err}");
        OutputConstraint::JsonSchema(json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 9},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}}
        }, "required": ["n"]}))
        .validate()
        .unwrap();
    }
}

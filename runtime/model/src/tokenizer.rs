//! Byte-level BPE tokenizer (llama.cpp's "gpt2" tokenizer model) built from `tokenizer.ggml.*`
//! metadata, reproducing llama.cpp's `llama_tokenize` and `llama_token_to_piece`.

mod byte_map;
mod pre_tokenizer;

use std::collections::{HashMap, HashSet};

pub use byte_map::ByteMap;
pub use pre_tokenizer::PreTokenizer;

use crate::error::{Error, Result};
use crate::gguf::{MetadataLookup, MetadataValue};

/// What a vocabulary entry is (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Normal,
    Unknown,
    /// Markers such as `<|im_start|>`: matched in text only when special parsing is on, and not
    /// rendered when decoding ordinary output.
    Control,
    /// Added tokens that are always matched whole and rendered as their text.
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_id(id: i64) -> Option<Self> {
        Some(match id {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => return None,
        })
    }
}

/// Texts that llama.cpp treats as end-of-generation when they are tokens of the vocabulary.
const END_OF_GENERATION_TEXTS: [&str; 8] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "<|end_of_text|>",
];

/// The ids of a vocabulary's marker tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokenIds {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unknown: Option<u32>,
}

/// A byte-level BPE tokenizer.
#[derive(Debug)]
pub struct Tokenizer {
    tokens: Vec<String>,
    token_types: Vec<TokenType>,
    token_ids: HashMap<String, u32>,
    /// (left id, right id) -> (merge rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Tokens matched whole in input text, longest first (llama.cpp's `cache_special_tokens`).
    special_tokens: Vec<u32>,
    end_of_generation: HashSet<u32>,
    special_ids: SpecialTokenIds,
    add_bos: bool,
    add_eos: bool,
    /// Llama-3-style vocabularies take a whole word as one token when it is in the vocabulary,
    /// before trying merges.
    ignore_merges: bool,
    pre_tokenizer: PreTokenizer,
    byte_map: ByteMap,
}

/// A piece of input text during special-token matching.
enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

impl Tokenizer {
    /// Builds the tokenizer described by `tokenizer.ggml.*` metadata.
    pub fn from_metadata(metadata: &impl MetadataLookup) -> Result<Self> {
        let model = metadata.require_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer model {model:?} (tokenizer.ggml.model) is not supported; agentc reads byte-level BPE (\"gpt2\")"
            )));
        }
        let tokens = string_array(metadata, "tokenizer.ggml.tokens")?;
        let token_types = match metadata.get_array("tokenizer.ggml.token_type")? {
            None => vec![TokenType::Normal; tokens.len()],
            Some(types) => token_types(types, tokens.len())?,
        };
        let token_ids: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(id, text)| (text.clone(), id as u32))
            .collect();
        let merges = parse_merges(
            &string_array(metadata, "tokenizer.ggml.merges")?,
            &token_ids,
        );

        let id_key = |key: &str| -> Result<Option<u32>> {
            match metadata.get_u64(key)? {
                Some(id) if (id as usize) < tokens.len() => Ok(Some(id as u32)),
                Some(id) => Err(Error::InvalidValue {
                    key: key.to_owned(),
                    why: format!(
                        "token id {id} is outside the vocabulary of {} tokens",
                        tokens.len()
                    ),
                }),
                None => Ok(None),
            }
        };
        let special_ids = SpecialTokenIds {
            bos: id_key("tokenizer.ggml.bos_token_id")?,
            eos: id_key("tokenizer.ggml.eos_token_id")?,
            pad: id_key("tokenizer.ggml.padding_token_id")?,
            unknown: id_key("tokenizer.ggml.unknown_token_id")?,
        };
        let mut end_of_generation: HashSet<u32> = [
            special_ids.eos,
            id_key("tokenizer.ggml.eot_token_id")?,
            id_key("tokenizer.ggml.eom_token_id")?,
        ]
        .into_iter()
        .flatten()
        .collect();
        for text in END_OF_GENERATION_TEXTS {
            if let Some(&id) = token_ids.get(text)
                && token_types[id as usize] == TokenType::Control
            {
                end_of_generation.insert(id);
            }
        }

        let mut special_tokens: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&id| {
                matches!(
                    token_types[id as usize],
                    TokenType::Control | TokenType::UserDefined | TokenType::Unknown
                ) && !tokens[id as usize].is_empty()
            })
            .collect();
        special_tokens.sort_by_key(|&id| std::cmp::Reverse(tokens[id as usize].len()));

        let pre_name = metadata.get_str("tokenizer.ggml.pre")?;
        Ok(Self {
            ignore_merges: matches!(pre_name, Some("llama3" | "llama-v3" | "llama-bpe")),
            pre_tokenizer: PreTokenizer::for_name(pre_name)?,
            add_bos: metadata
                .get_bool("tokenizer.ggml.add_bos_token")?
                .unwrap_or(true),
            add_eos: metadata
                .get_bool("tokenizer.ggml.add_eos_token")?
                .unwrap_or(false),
            tokens,
            token_types,
            token_ids,
            merges,
            special_tokens,
            end_of_generation,
            special_ids,
            byte_map: ByteMap::new(),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn special_ids(&self) -> &SpecialTokenIds {
        &self.special_ids
    }

    /// Whether generating `id` ends a turn (EOS, EOT and markers such as `<|im_end|>`).
    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation.contains(&id)
    }

    pub fn end_of_generation_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.end_of_generation.iter().copied()
    }

    /// Whether `encode(_, add_special = true, _)` starts with BOS (`tokenizer.ggml.add_bos_token`).
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }

    /// The text of a token as stored in the vocabulary (byte-level characters for normal tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// What kind of vocabulary entry `id` is (`None` outside the vocabulary).
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.token_types.get(id as usize).copied()
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_ids.get(text).copied()
    }

    /// Tokenizes `text` like `llama_tokenize(text, add_special, parse_special)`: with
    /// `add_special`, BOS/EOS are added as the model's metadata asks; with `parse_special`,
    /// control tokens written in the text (`<|im_start|>`) become their ids. User-defined tokens
    /// are always matched.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        if add_special
            && self.add_bos
            && let Some(bos) = self.special_ids.bos
        {
            ids.push(bos);
        }
        for fragment in self.split_special(text, parse_special) {
            match fragment {
                Fragment::Token(id) => ids.push(id),
                Fragment::Text(raw) => {
                    for word in self.pre_tokenizer.split(raw)? {
                        self.encode_word(word, &mut ids)?;
                    }
                }
            }
        }
        if add_special
            && self.add_eos
            && let Some(eos) = self.special_ids.eos
        {
            ids.push(eos);
        }
        Ok(ids)
    }

    /// Tokenizes consecutive pieces of one text, each with its own `parse_special`; BOS/EOS are
    /// added around the whole as [`Tokenizer::encode`] adds them. Chat prompts use it so that
    /// the template's control tokens are parsed and message text never is.
    pub fn encode_pieces(&self, pieces: &[(&str, bool)], add_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        if add_special
            && self.add_bos
            && let Some(bos) = self.special_ids.bos
        {
            ids.push(bos);
        }
        for &(text, parse_special) in pieces {
            ids.extend(self.encode(text, false, parse_special)?);
        }
        if add_special
            && self.add_eos
            && let Some(eos) = self.special_ids.eos
        {
            ids.push(eos);
        }
        Ok(ids)
    }

    /// The first control token whose text appears in `text` (`<|im_end|>` in a user's message).
    pub fn control_text_in<'a>(&'a self, text: &str) -> Option<&'a str> {
        self.special_tokens
            .iter()
            .filter(|&&id| self.token_types[id as usize] != TokenType::UserDefined)
            .map(|&id| self.tokens[id as usize].as_str())
            .find(|special| !special.is_empty() && text.contains(special))
    }

    /// Appends the bytes token `id` stands for, as `llama_token_to_piece(id, special)`: control
    /// tokens are rendered only when `render_special` is set.
    pub fn append_token_bytes(
        &self,
        id: u32,
        render_special: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let text = self.tokens.get(id as usize).ok_or_else(|| {
            Error::Tokenizer(format!(
                "token id {id} is outside the vocabulary of {} tokens",
                self.tokens.len()
            ))
        })?;
        match self.token_types[id as usize] {
            TokenType::Normal | TokenType::Byte => self.byte_map.decode_into(text, out),
            TokenType::UserDefined => out.extend_from_slice(text.as_bytes()),
            TokenType::Control | TokenType::Unknown if render_special => {
                out.extend_from_slice(text.as_bytes())
            }
            TokenType::Control | TokenType::Unknown | TokenType::Unused => {}
        }
        Ok(())
    }

    /// The text of `ids`; bytes that are not valid UTF-8 (a character cut between tokens) become
    /// U+FFFD, as in llama-cpp-python's `detokenize(...).decode(errors="replace")`.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            self.append_token_bytes(id, render_special, &mut bytes)?;
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Splits `text` at special tokens the way llama.cpp's `tokenizer_st_partition` does: each
    /// special token, longest first, is cut out of the text fragments that remain.
    fn split_special<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Fragment<'t>> {
        let mut fragments = vec![Fragment::Text(text)];
        for &id in &self.special_tokens {
            if !parse_special && self.token_types[id as usize] != TokenType::UserDefined {
                continue;
            }
            let special = self.tokens[id as usize].as_str();
            if !text.contains(special) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = rest.find(special) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + special.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// BPE over one pre-tokenized word: start from its byte-level characters and apply the
    /// lowest-ranked merge (leftmost on ties) until none applies.
    fn encode_word(&self, word: &str, out: &mut Vec<u32>) -> Result<()> {
        let mapped = self.byte_map.encode(word.as_bytes());
        if self.ignore_merges
            && let Some(&id) = self.token_ids.get(&mapped)
        {
            out.push(id);
            return Ok(());
        }
        let mut symbols: Vec<Option<u32>> = Vec::with_capacity(mapped.len());
        let mut char_buf = [0u8; 4];
        for c in mapped.chars() {
            symbols.push(
                self.token_ids
                    .get(c.encode_utf8(&mut char_buf) as &str)
                    .copied(),
            );
        }
        loop {
            let best = symbols
                .windows(2)
                .enumerate()
                .filter_map(|(i, pair)| match (pair[0], pair[1]) {
                    (Some(left), Some(right)) => self
                        .merges
                        .get(&(left, right))
                        .map(|&(rank, merged)| (rank, i, merged)),
                    _ => None,
                })
                .min_by_key(|&(rank, i, _)| (rank, i));
            let Some((_, at, merged)) = best else { break };
            symbols[at] = Some(merged);
            symbols.remove(at + 1);
        }
        for symbol in symbols {
            match symbol.or(self.special_ids.unknown) {
                Some(id) => out.push(id),
                None => {
                    return Err(Error::Tokenizer(format!(
                        "{word:?} has a byte that is not in the vocabulary and the vocabulary has no unknown token"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn string_array(metadata: &impl MetadataLookup, key: &str) -> Result<Vec<String>> {
    metadata
        .require_array(key)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Error::InvalidValue {
                    key: key.to_owned(),
                    why: format!("item {i} is {}, expected a string", v.type_name()),
                })
        })
        .collect()
}

fn token_types(types: &[MetadataValue], token_count: usize) -> Result<Vec<TokenType>> {
    const KEY: &str = "tokenizer.ggml.token_type";
    if types.len() != token_count {
        return Err(Error::InvalidValue {
            key: KEY.to_owned(),
            why: format!("{} types for {token_count} tokens", types.len()),
        });
    }
    types
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let raw = v.as_f64().map(|f| f as i64);
            raw.and_then(TokenType::from_id)
                .ok_or_else(|| Error::InvalidValue {
                    key: KEY.to_owned(),
                    why: format!("item {i} is {v:?}, expected a token type 1..=6"),
                })
        })
        .collect()
}

/// Parses "left right" merge rules into id pairs. Rules whose parts are not tokens cannot fire
/// in a byte-level vocabulary and are skipped.
fn parse_merges(
    rules: &[String],
    token_ids: &HashMap<String, u32>,
) -> HashMap<(u32, u32), (u32, u32)> {
    let mut merges = HashMap::with_capacity(rules.len());
    for (rank, rule) in rules.iter().enumerate() {
        // Search after the first character so that a left part that is a space splits right.
        let first_len = rule.chars().next().map_or(0, char::len_utf8);
        let Some(split) = rule[first_len..].find(' ').map(|i| i + first_len) else {
            continue;
        };
        let (left, right) = (&rule[..split], &rule[split + 1..]);
        let merged = format!("{left}{right}");
        if let (Some(&l), Some(&r), Some(&m)) = (
            token_ids.get(left),
            token_ids.get(right),
            token_ids.get(&merged),
        ) {
            merges.entry((l, r)).or_insert((rank as u32, m));
        }
    }
    merges
}

#[cfg(test)]
mod tests;

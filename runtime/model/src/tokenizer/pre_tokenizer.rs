//! Splitting text into words before BPE, as llama.cpp does for each `tokenizer.ggml.pre` value.
//!
//! llama.cpp applies a list of regexes in turn; each one splits every piece left by the previous
//! one into its matches and the text between them, and both are kept (`unicode_regex_split`).

use fancy_regex::Regex;

use crate::error::{Error, Result};

/// GPT-2's split: contractions, letters, digits, other symbols, each with an optional leading
/// space, and runs of whitespace (the last whitespace character before a word stays with it).
const GPT2_SPLIT: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const SINGLE_DIGIT: &str = r"\p{N}";
const LLAMA3_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's split when a BPE model names no pre-tokenizer (LLAMA_VOCAB_PRE_TYPE_DEFAULT).
const DEFAULT_SPLITS: [&str; 4] = [
    r"[\p{P}\$\+<=>\^~\|]+",
    GPT2_SPLIT,
    r"\p{N}+",
    "[0-9][0-9][0-9]",
];

/// The regexes of one pre-tokenizer, applied in order.
#[derive(Debug)]
pub struct PreTokenizer {
    name: String,
    splits: Vec<Regex>,
}

impl PreTokenizer {
    /// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre = name` (`None`: the key is
    /// absent). The names mirror `llama_vocab::impl::load`.
    pub fn for_name(name: Option<&str>) -> Result<Self> {
        let patterns: Vec<&str> = match name {
            None | Some("default") => DEFAULT_SPLITS.to_vec(),
            Some("gpt2" | "gpt-2" | "mpt" | "olmo" | "jais" | "trillion") => vec![GPT2_SPLIT],
            Some(
                "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
                | "minerva-7b",
            ) => {
                vec![SINGLE_DIGIT, GPT2_SPLIT]
            }
            Some("llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral") => vec![LLAMA3_SPLIT],
            Some("qwen2" | "deepseek-r1-qwen" | "megrez") => vec![QWEN2_SPLIT],
            Some(other) => {
                return Err(Error::Tokenizer(format!(
                    "pre-tokenizer {other:?} (tokenizer.ggml.pre) is not supported; supported: gpt2, smollm, starcoder, llama-bpe, qwen2"
                )));
            }
        };
        let splits = patterns
            .into_iter()
            .map(|p| {
                Regex::new(p).map_err(|e| Error::Tokenizer(format!("bad split regex {p:?}: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            name: name.unwrap_or("default").to_owned(),
            splits,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Splits `text` into words; concatenated, the words are `text` again.
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut pieces = vec![text];
        for regex in &self.splits {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let mut last_end = 0;
                for found in regex.find_iter(piece) {
                    let found =
                        found.map_err(|e| Error::Tokenizer(format!("splitting {piece:?}: {e}")))?;
                    if found.start() > last_end {
                        next.push(&piece[last_end..found.start()]);
                    }
                    if found.end() > found.start() {
                        next.push(found.as_str());
                    }
                    last_end = found.end();
                }
                if last_end < piece.len() {
                    next.push(&piece[last_end..]);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(name: &str, text: &str) -> Vec<String> {
        let pre = PreTokenizer::for_name(Some(name)).unwrap();
        pre.split(text)
            .unwrap()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn gpt2_keeps_one_space_with_the_next_word() {
        assert_eq!(split("gpt2", "Hello   world"), ["Hello", "  ", " world"]);
        assert_eq!(split("gpt2", "it's 42!"), ["it", "'s", " 42", "!"]);
        assert_eq!(split("gpt2", "end  "), ["end", "  "]);
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(
            split("smollm", "x 2024y"),
            ["x", " ", "2", "0", "2", "4", "y"]
        );
    }

    #[test]
    fn every_named_pre_tokenizer_compiles_and_round_trips() {
        let text = "Hello,  world! It's 2024...\n\t ünïcode 🦀 12345";
        for name in [
            None,
            Some("gpt2"),
            Some("smollm"),
            Some("llama-bpe"),
            Some("qwen2"),
            Some("starcoder"),
        ] {
            let pre = PreTokenizer::for_name(name).unwrap();
            assert_eq!(pre.split(text).unwrap().concat(), text, "{name:?}");
        }
        // llama-3 keeps up to three digits together; qwen2 splits every digit.
        assert_eq!(split("llama-bpe", "12345"), ["123", "45"]);
        assert_eq!(split("qwen2", "123"), ["1", "2", "3"]);
    }

    #[test]
    fn unknown_pre_tokenizer_is_named() {
        let err = PreTokenizer::for_name(Some("mystery")).unwrap_err();
        assert!(err.to_string().contains("\"mystery\""), "{err}");
    }
}

//! Reading a corpus into passages: a folder of `.txt`/`.md` files cut into overlapping windows
//! of word-piece tokens, or a JSONL file of `{"id": ..., "text": ...}` lines.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Passage;
use crate::embed::EmbeddingModel;
use crate::error::{Error, Result};

/// Tokens per passage by default: below all-MiniLM-L6-v2's 128-token limit with room for
/// `[CLS]` and `[SEP]`.
pub const DEFAULT_CHUNK_TOKENS: usize = 100;
/// Overlap between consecutive passages, as a fraction of the passage length (1/5).
pub const OVERLAP_DIVISOR: usize = 5;
/// Shortest passage length accepted.
pub const MIN_CHUNK_TOKENS: usize = 8;
/// Tokens the model adds around every text (`[CLS]`, `[SEP]`).
const SPECIAL_TOKENS: usize = 2;
/// Extensions of the files read from a corpus folder.
const TEXT_EXTENSIONS: [&str; 2] = ["txt", "md"];

/// Passage length and overlap, in word-piece tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    pub tokens: usize,
    pub overlap: usize,
}

impl Chunking {
    /// `tokens` per passage with the default overlap of a fifth.
    pub fn with_tokens(tokens: usize) -> Self {
        Self {
            tokens,
            overlap: tokens / OVERLAP_DIVISOR,
        }
    }

    fn validate(self, model: &EmbeddingModel) -> Result<()> {
        let limit = model.max_tokens().saturating_sub(SPECIAL_TOKENS);
        if self.tokens < MIN_CHUNK_TOKENS || self.tokens > limit {
            return Err(Error::IndexInput(format!(
                "passages of {} tokens are not possible: model {} embeds {MIN_CHUNK_TOKENS} to {limit} tokens per passage",
                self.tokens,
                model.name()
            )));
        }
        if self.overlap >= self.tokens {
            return Err(Error::IndexInput(format!(
                "an overlap of {} tokens needs passages longer than {} tokens",
                self.overlap, self.tokens
            )));
        }
        Ok(())
    }
}

impl Default for Chunking {
    fn default() -> Self {
        Self::with_tokens(DEFAULT_CHUNK_TOKENS)
    }
}

/// Reads `src` (a folder or a `.jsonl` file) into passages of at most `chunking.tokens` tokens.
pub fn read_corpus(src: &Path, chunking: Chunking, model: &EmbeddingModel) -> Result<Vec<Passage>> {
    chunking.validate(model)?;
    if !src.exists() {
        Err(source_error(src, "no such file or folder"))
    } else if src.is_dir() {
        read_folder(src, chunking, model)
    } else if src.extension().is_some_and(|e| e == "jsonl") {
        read_jsonl(src, chunking, model)
    } else {
        Err(source_error(src, "is neither a folder nor a .jsonl file"))
    }
}

fn source_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::IndexSource {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_folder(src: &Path, chunking: Chunking, model: &EmbeddingModel) -> Result<Vec<Passage>> {
    let mut files = Vec::new();
    collect_text_files(src, &mut files)?;
    files.sort();
    let mut passages = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).map_err(|e| source_error(path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| source_error(path, "is not UTF-8 text"))?;
        let rel = path.strip_prefix(src).unwrap_or(path);
        let rel = rel.to_string_lossy().replace('\\', "/");
        let offsets = model.token_offsets(&text)?;
        for (n, (start, end)) in chunk_spans(&offsets, chunking).into_iter().enumerate() {
            passages.push(Passage {
                id: format!("{rel}#{n}"),
                text: text[start..end].to_string(),
                source: rel.clone(),
                offset: start,
            });
        }
    }
    if passages.is_empty() {
        return Err(source_error(src, "holds no .txt or .md file with text"));
    }
    Ok(passages)
}

/// Files with a text extension under `dir`, recursively; hidden entries are skipped.
fn collect_text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| source_error(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| source_error(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_text_files(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| TEXT_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(path);
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct JsonlLine {
    id: serde_json::Value,
    text: String,
}

fn read_jsonl(src: &Path, chunking: Chunking, model: &EmbeddingModel) -> Result<Vec<Passage>> {
    let bytes = std::fs::read(src).map_err(|e| source_error(src, e))?;
    let text = String::from_utf8(bytes).map_err(|_| source_error(src, "is not UTF-8 text"))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let line_error = |line: usize, reason: String| Error::IndexSourceLine {
        path: src.to_path_buf(),
        line,
        reason,
    };
    let mut seen = HashSet::new();
    let mut passages = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let entry: JsonlLine = serde_json::from_str(line).map_err(|e| {
            line_error(
                line_no,
                format!("expected {{\"id\": ..., \"text\": ...}}: {e}"),
            )
        })?;
        let id = match entry.id {
            serde_json::Value::String(s) if !s.is_empty() => s,
            serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
            other => {
                return Err(line_error(
                    line_no,
                    format!("id must be a non-empty string or an integer, not {other}"),
                ));
            }
        };
        if entry.text.trim().is_empty() {
            return Err(line_error(line_no, format!("passage {id} has no text")));
        }
        if !seen.insert(id.clone()) {
            return Err(line_error(line_no, format!("id {id} is used twice")));
        }
        let offsets = model.token_offsets(&entry.text)?;
        let spans = chunk_spans(&offsets, chunking);
        let many = spans.len() > 1;
        for (n, (start, end)) in spans.into_iter().enumerate() {
            passages.push(Passage {
                id: if many {
                    format!("{id}#{n}")
                } else {
                    id.clone()
                },
                text: entry.text[start..end].to_string(),
                source: format!("{name}:{line_no}"),
                offset: start,
            });
        }
    }
    if passages.is_empty() {
        return Err(source_error(src, "holds no passages"));
    }
    Ok(passages)
}

/// Whether token `i` starts where token `i - 1` ends (a word piece or punctuation glued to the
/// previous token): cutting between them would split a word.
fn glued(offsets: &[(usize, usize)], i: usize) -> bool {
    i > 0 && i < offsets.len() && offsets[i].0 == offsets[i - 1].1
}

/// Byte spans of overlapping windows of at most `chunking.tokens` tokens, cut between words
/// where a boundary lies within the last quarter of a window.
pub fn chunk_spans(offsets: &[(usize, usize)], chunking: Chunking) -> Vec<(usize, usize)> {
    let n = offsets.len();
    let slack = chunking.tokens / 4;
    let mut spans = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = (start + chunking.tokens).min(n);
        let mut back = end;
        while back > start + 1 && end - back < slack && glued(offsets, back) {
            back -= 1;
        }
        if !glued(offsets, back) {
            end = back;
        }
        spans.push((offsets[start].0, offsets[end - 1].1));
        if end == n {
            break;
        }
        let mut next = end.saturating_sub(chunking.overlap).max(start + 1);
        while next < end && glued(offsets, next) {
            next += 1;
        }
        start = next;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offsets of whitespace-separated words, with a trailing `.` split off as its own token.
    fn word_offsets(text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for word in text.split(' ') {
            if let Some(stem) = word.strip_suffix('.') {
                out.push((pos, pos + stem.len()));
                out.push((pos + stem.len(), pos + word.len()));
            } else {
                out.push((pos, pos + word.len()));
            }
            pos += word.len() + 1;
        }
        out
    }

    #[test]
    fn windows_overlap_and_cover_the_text() {
        let text = "a b c d e f g h i j";
        let spans = chunk_spans(
            &word_offsets(text),
            Chunking {
                tokens: 4,
                overlap: 1,
            },
        );
        let pieces: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(pieces, ["a b c d", "d e f g", "g h i j"]);
    }

    #[test]
    fn windows_do_not_cut_a_word_from_its_punctuation() {
        let text = "one two three four. five six seven eight nine.";
        let spans = chunk_spans(
            &word_offsets(text),
            Chunking {
                tokens: 4,
                overlap: 0,
            },
        );
        let pieces: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(
            pieces,
            ["one two three", "four. five six", "seven eight nine."]
        );
    }

    #[test]
    fn empty_text_gives_no_window() {
        assert!(chunk_spans(&[], Chunking::default()).is_empty());
    }
}

//! Maps offsets inside YAML scalars back to file positions.

use crate::diagnostics::{Pos, Span};

pub struct SourceMap<'s> {
    text: &'s str,
    /// Byte offset of each line's start.
    line_starts: Vec<usize>,
}

impl<'s> SourceMap<'s> {
    pub fn new(text: &'s str) -> SourceMap<'s> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    pub fn text(&self) -> &'s str {
        self.text
    }

    fn pos_of_byte(&self, byte: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= byte).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .text
            .get(start..byte)
            .map_or(1, |s| s.chars().count() + 1);
        Pos { line, col }
    }

    /// Byte offset of a 1-based line and column: a scan of that one line only.
    fn byte_of_pos(&self, pos: Pos) -> usize {
        let Some(&start) = pos
            .line
            .checked_sub(1)
            .and_then(|l| self.line_starts.get(l))
        else {
            return self.text.len();
        };
        let line = &self.text[start..];
        start
            + line
                .char_indices()
                .nth(pos.col.saturating_sub(1))
                .map_or(line.len(), |(b, _)| b)
    }

    /// Position of byte `offset` of a scalar's decoded text `cooked`, found by searching the raw
    /// source of the scalar for the same snippet (escapes and folding make offsets differ).
    pub fn locate_in_scalar(&self, span: Span, cooked: &str, offset: usize) -> Pos {
        let snippet: &str = cooked
            .get(offset..)
            .map(|rest| {
                let end = rest.find('}').map_or(rest.len().min(2), |e| e + 1);
                &rest[..end]
            })
            .unwrap_or("");
        if snippet.is_empty() {
            return span.start;
        }
        let nth = cooked
            .get(..offset)
            .map_or(0, |before| before.matches(snippet).count());
        let start = self.byte_of_pos(span.start);
        let end = if span.end > span.start {
            self.byte_of_pos(span.end)
        } else {
            self.text.len()
        };
        let raw = self.text.get(start..end.max(start)).unwrap_or("");
        match raw.match_indices(snippet).nth(nth) {
            Some((i, _)) => self.pos_of_byte(start + i),
            None => span.start,
        }
    }
}

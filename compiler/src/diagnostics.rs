//! User-facing diagnostics: what is wrong, where (file:line:col) and what to do about it.

use std::fmt;

/// A position in a source file; `line` and `col` are 1-based, `col` counts characters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A range in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
    /// Character offsets of start and end, for slicing the source.
    pub start_char: usize,
    pub end_char: usize,
}

impl Span {
    pub fn at(line: usize, col: usize) -> Span {
        let pos = Pos { line, col };
        Span {
            start: pos,
            end: pos,
            start_char: 0,
            end_char: 0,
        }
    }
}

/// One problem found in a workflow file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            pos,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one file, sorted by position, with the file's name and text so each can
/// be shown with its source line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics {
    pub file: String,
    pub items: Vec<Diagnostic>,
    source_lines: Vec<String>,
}

/// Longest source line echoed under a diagnostic; longer lines are cut so a hostile file cannot
/// make the report itself huge.
const MAX_ECHO_CHARS: usize = 160;

impl Diagnostics {
    pub fn new(file: &str, source: &str, mut items: Vec<Diagnostic>) -> Diagnostics {
        items.sort_by_key(|d| d.pos);
        items.dedup();
        let wanted: std::collections::BTreeSet<usize> = items.iter().map(|d| d.pos.line).collect();
        let source_lines = source
            .lines()
            .enumerate()
            .map(|(i, line)| {
                if wanted.contains(&(i + 1)) {
                    line.chars().take(MAX_ECHO_CHARS).collect()
                } else {
                    String::new()
                }
            })
            .collect();
        Diagnostics {
            file: file.to_string(),
            items,
            source_lines,
        }
    }

    /// One line per diagnostic, `file:line:col: message`, as tests and editors match them.
    pub fn summary_lines(&self) -> Vec<String> {
        self.items
            .iter()
            .map(|d| format!("{}:{}:{}: {}", self.file, d.pos.line, d.pos.col, d.message))
            .collect()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "error: {}", d.message)?;
            writeln!(f, "  --> {}:{}:{}", self.file, d.pos.line, d.pos.col)?;
            let line = d
                .pos
                .line
                .checked_sub(1)
                .and_then(|i| self.source_lines.get(i));
            if let Some(line) = line.filter(|l| !l.is_empty()) {
                let gutter = d.pos.line.to_string();
                let pad = " ".repeat(gutter.len());
                writeln!(f, "{pad} |")?;
                writeln!(f, "{gutter} | {line}")?;
                let caret_col = d.pos.col.saturating_sub(1).min(line.chars().count());
                let lead: String = line
                    .chars()
                    .take(caret_col)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, "{pad} | {lead}^")?;
            }
            if let Some(hint) = &d.hint {
                writeln!(f, "  = hint: {hint}")?;
            }
        }
        let n = self.items.len();
        write!(
            f,
            "{} error{} in {}",
            n,
            if n == 1 { "" } else { "s" },
            self.file
        )
    }
}

/// A hint for `name`, which is none of `candidates`: `suggest(closest)` for a likely typo, else
/// `listing` followed by every candidate.
pub fn name_hint(
    name: &str,
    candidates: &[&str],
    suggest: impl FnOnce(&str) -> String,
    listing: &str,
) -> String {
    match closest(name, candidates.iter().copied()) {
        Some(c) => suggest(c),
        None => format!("{listing}{}", candidates.join(", ")),
    }
}

/// The usual suggestion for [`name_hint`]: "did you mean `x`?".
pub fn did_you_mean(c: &str) -> String {
    format!("did you mean `{c}`?")
}

/// The closest of `candidates` to `name`, if one is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Close by edit distance (at most a third of the name, at least one edit) or by
    // Jaro-Winkler (good for transpositions and shared prefixes); the best score wins.
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let edits = strsim::levenshtein(name, candidate);
        let near = edits <= (name.chars().count() / 3).max(1);
        let score = strsim::jaro_winkler(name, candidate);
        if (near || score >= 0.8) && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_location_source_caret_and_hint() {
        let d = Diagnostic::new(Pos { line: 2, col: 7 }, "unknown node `anser`")
            .with_hint("did you mean `answer`?");
        let text = Diagnostics::new("wf.yaml", "name: x\nfoo: ${anser}\n", vec![d]).to_string();
        assert_eq!(
            text,
            "error: unknown node `anser`\n  --> wf.yaml:2:7\n  |\n2 | foo: ${anser}\n  |       ^\n  = hint: did you mean `answer`?\n1 error in wf.yaml"
        );
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("anser", ["answer", "question"]), Some("answer"));
        assert_eq!(closest("zzz", ["answer", "question"]), None);
    }
}

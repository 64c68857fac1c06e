//! `agentc perplexity`: the perplexity of a model over a text, computed as llama.cpp's
//! `llama-perplexity` does (see `Engine::perplexity`), so the two can be compared on one file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use agentc_runtime::{Engine, EngineOptions};
use clap::Args;

use super::EXIT_INVALID;

#[derive(Args, Debug)]
pub struct PerplexityArgs {
    /// GGUF model file.
    #[arg(
        long,
        env = "AGENTC_MODEL",
        default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )]
    pub model: PathBuf,
    /// The text: a plain text file, or a `.jsonl` file whose lines are JSON strings (or objects
    /// holding the text in `--field`), joined with blank lines.
    #[arg(long)]
    pub file: PathBuf,
    /// With a `.jsonl` file of objects: the field that holds each text.
    #[arg(long)]
    pub field: Option<String>,
    /// Tokens per chunk (llama-perplexity's `-c`).
    #[arg(long, default_value_t = 2048)]
    pub context: usize,
    /// Score at most this many chunks (llama-perplexity's `--chunks`).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Threads for the forward pass.
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
}

/// The text of `path`: the file itself, or its JSONL lines' texts joined with blank lines.
fn read_text(path: &Path, field: Option<&str>) -> Result<String, String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if path.extension().is_none_or(|e| e != "jsonl") {
        return Ok(raw);
    }
    let mut texts = Vec::new();
    for (i, line) in raw
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = || format!("{}:{}", path.display(), i + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}: not JSON: {e}", at()))?;
        let text = match (&value, field) {
            (serde_json::Value::String(s), None) => s.clone(),
            (serde_json::Value::Object(o), Some(f)) => match o.get(f) {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => return Err(format!("{}: no string field `{f}`", at())),
            },
            (serde_json::Value::Object(_), None) => {
                return Err(format!(
                    "{}: an object; say which field holds the text with --field",
                    at()
                ));
            }
            _ => return Err(format!("{}: expected a JSON string or object", at())),
        };
        texts.push(text);
    }
    Ok(texts.join("\n\n"))
}

pub fn perplexity(args: PerplexityArgs) -> anyhow::Result<ExitCode> {
    if args.threads == 0 {
        eprintln!("error: --threads must be at least 1");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let text = match read_text(&args.file, args.field.as_deref()) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let options = EngineOptions {
        threads: args.threads,
        ..EngineOptions::default()
    };
    let engine = match Engine::load_with(&args.model, &options) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot load {}: {e}", args.model.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if args.context > engine.context_length() {
        eprintln!(
            "error: --context {} is longer than the model's context of {} tokens",
            args.context,
            engine.context_length()
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    // As llama-perplexity: BOS when the model adds one, special-token text kept as text.
    let tokens = engine.tokenizer().encode(&text, true, false)?;
    let chunks = tokens.len() / args.context;
    eprintln!(
        "{} tokens; {} chunks of {}",
        tokens.len(),
        args.chunks.map_or(chunks, |c| c.min(chunks)),
        args.context
    );
    let started = Instant::now();
    let result = engine.perplexity(&tokens, args.context, args.chunks, |i, running| {
        eprint!("[{}]{running:.4},", i + 1);
    });
    eprintln!();
    match result {
        Ok(p) => {
            println!(
                "PPL = {:.4} ({} predictions scored, context {}, {:.1} s)",
                p.value,
                p.tokens_scored,
                p.context,
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_texts_are_joined_and_bad_lines_named() {
        let dir = tempfile::tempdir().unwrap();
        let strings = dir.path().join("a.jsonl");
        std::fs::write(&strings, "\"one\"\n\n\"two\\nlines\"\n").unwrap();
        assert_eq!(read_text(&strings, None).unwrap(), "one\n\ntwo\nlines");

        let objects = dir.path().join("b.jsonl");
        std::fs::write(&objects, "{\"text\": \"x\"}\n{\"body\": \"y\"}\n").unwrap();
        let err = read_text(&objects, Some("text")).unwrap_err();
        assert_eq!(
            err,
            format!("{}:2: no string field `text`", objects.display())
        );
        let err = read_text(&objects, None).unwrap_err();
        assert!(err.ends_with(":1: an object; say which field holds the text with --field"));

        let plain = dir.path().join("c.txt");
        std::fs::write(&plain, "{\"not\": \"parsed\"}").unwrap();
        assert_eq!(read_text(&plain, None).unwrap(), "{\"not\": \"parsed\"}");
    }
}

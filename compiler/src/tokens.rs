//! Counting tokens of static prompt text for the cost model.

/// Counts the tokens `model` would produce for `text`.
pub trait TokenCounter {
    fn count(&self, model: &str, text: &str) -> usize;
}

/// An estimate for when the model's tokenizer is not available: English BPE vocabularies average
/// about four characters per token, and every piece of text is at least one token.
pub struct CharEstimate;

/// Characters per token assumed by [`CharEstimate`].
pub const CHARS_PER_TOKEN: usize = 4;

impl TokenCounter for CharEstimate {
    fn count(&self, _model: &str, text: &str) -> usize {
        let chars = text.chars().count();
        if chars == 0 {
            0
        } else {
            chars.div_ceil(CHARS_PER_TOKEN)
        }
    }
}

/// Counts with each LLM's own tokenizer, read from its GGUF file; models whose file cannot be
/// read (and embedding models) fall back to [`CharEstimate`], and are listed in `estimated`.
pub struct ModelTokens {
    tokenizers: std::collections::HashMap<String, agentc_model::Tokenizer>,
    /// Models counted by estimate, with the reason.
    pub estimated: Vec<(String, String)>,
}

impl ModelTokens {
    /// Loads the tokenizers of `graph`'s LLMs; model paths are relative to `workflow_dir`.
    pub fn for_workflow(
        graph: &crate::graph::WorkflowGraph,
        workflow_dir: &std::path::Path,
    ) -> ModelTokens {
        use crate::frontend::ast::ModelKind;
        let mut tokenizers = std::collections::HashMap::new();
        let mut estimated = Vec::new();
        for m in &graph.models {
            if m.kind != ModelKind::Llm {
                continue;
            }
            let path = workflow_dir.join(&m.path);
            let loaded = agentc_model::GgufFile::open(&path)
                .and_then(|f| agentc_model::Tokenizer::from_metadata(&f));
            match loaded {
                Ok(t) => {
                    tokenizers.insert(m.name.clone(), t);
                }
                Err(e) => estimated.push((m.name.clone(), e.to_string())),
            }
        }
        ModelTokens {
            tokenizers,
            estimated,
        }
    }
}

impl TokenCounter for ModelTokens {
    fn count(&self, model: &str, text: &str) -> usize {
        match self
            .tokenizers
            .get(model)
            .map(|t| t.encode(text, false, true))
        {
            Some(Ok(ids)) => ids.len(),
            _ => CharEstimate.count(model, text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_estimate_rounds_up() {
        assert_eq!(CharEstimate.count("m", ""), 0);
        assert_eq!(CharEstimate.count("m", "abc"), 1);
        assert_eq!(CharEstimate.count("m", "abcdefghi"), 3);
    }

    #[test]
    fn model_tokens_use_the_gguf_tokenizer_or_say_why_not() {
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let src = "name: t\nmodels:\n  chat: {kind: llm, path: models/SmolLM2-135M-Instruct.Q4_1.gguf}\n  gone: {kind: llm, path: models/missing.gguf}\nsla: {p95_ms: 1}\nnodes:\n  - {id: a, kind: llm, model: chat, prompt: x}\n  - {id: b, kind: llm, model: gone, prompt: y}\noutputs: {o: \"${a}${b}\"}\n";
        let g = crate::frontend::parse("t.yaml", src.as_bytes()).unwrap();
        let tokens = ModelTokens::for_workflow(&g, root);
        assert_eq!(tokens.estimated.len(), 1);
        assert_eq!(tokens.estimated[0].0, "gone");
        if root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf").exists() {
            // SmolLM2's BPE: "Hello" and " world" are one token each; `<|im_start|>` is special.
            assert_eq!(tokens.count("chat", "Hello world"), 2);
            assert_eq!(tokens.count("chat", "<|im_start|>user"), 2);
        } else {
            eprintln!("skipped: models/ not set up (scripts/setup.sh)");
        }
        assert_eq!(tokens.count("gone", "abcdefgh"), 2);
    }
}

//! [`Engine::perplexity`]: scoring a text as llama.cpp's `llama-perplexity` does.

use super::Engine;
use crate::error::{Error, Result};
use crate::model::ChunkLogits;

impl Engine {
    /// The perplexity of `tokens` computed the way llama.cpp's `llama-perplexity` does, so the
    /// two are comparable: the tokens are cut into `context`-sized chunks (the remainder is
    /// dropped; at most `max_chunks`), each evaluated from a fresh sequence with its first token
    /// replaced by BOS when the model adds one, and only the predictions of the chunk's second
    /// half are scored (positions `context/2 .. context-1`, each predicting the next token).
    /// `on_chunk(i, running)` is called after chunk `i` with the perplexity so far.
    pub fn perplexity(
        &self,
        tokens: &[u32],
        context: usize,
        max_chunks: Option<usize>,
        mut on_chunk: impl FnMut(usize, f64),
    ) -> Result<Perplexity> {
        if context < 4 {
            return Err(Error::InvalidRequest(format!(
                "a perplexity context of {context} tokens is too short (at least 4)"
            )));
        }
        let available = tokens.len() / context;
        let chunks = max_chunks.map_or(available, |m| m.min(available));
        if chunks == 0 {
            return Err(Error::InvalidRequest(format!(
                "the text has {} tokens, fewer than one context of {context}",
                tokens.len()
            )));
        }
        let bos = self
            .tokenizer
            .adds_bos()
            .then_some(self.tokenizer.special_ids().bos)
            .flatten();
        let first = context / 2;
        let (mut nll, mut scored) = (0.0f64, 0usize);
        let mut running = Vec::with_capacity(chunks);
        for (i, chunk) in tokens.chunks_exact(context).take(chunks).enumerate() {
            let mut chunk = chunk.to_vec();
            if let Some(bos) = bos {
                chunk[0] = bos;
            }
            let mut sequence = self.solo_sequence(context)?;
            let mut at = 0;
            while at < context {
                let end = (at + PERPLEXITY_PIECE).min(context);
                let mode = if end > first {
                    ChunkLogits::All
                } else {
                    ChunkLogits::None
                };
                let logits =
                    self.run(|| sequence.forward_logits(&self.model, &chunk[at..end], mode))?;
                for j in at.max(first)..end.min(context - 1) {
                    let row = logits.row(j - at).ok_or_else(|| {
                        Error::InvalidRequest(format!("no logits for position {j}"))
                    })?;
                    nll += negative_log_likelihood(row, chunk[j + 1] as usize);
                    scored += 1;
                }
                at = end;
            }
            let value = (nll / scored as f64).exp();
            running.push(value);
            on_chunk(i, value);
        }
        Ok(Perplexity {
            context,
            tokens_scored: scored,
            value: (nll / scored as f64).exp(),
            running,
        })
    }
}

/// Tokens per forward pass of a perplexity chunk (bounds the logits held at once: 512 rows of
/// a 49k vocabulary are 100 MB).
const PERPLEXITY_PIECE: usize = 512;

/// The result of [`Engine::perplexity`].
#[derive(Debug, Clone, PartialEq)]
pub struct Perplexity {
    /// Tokens per chunk.
    pub context: usize,
    /// Predictions scored (`context - 1 - context/2` per chunk).
    pub tokens_scored: usize,
    /// `exp(mean negative log-likelihood)` over every scored prediction.
    pub value: f64,
    /// The perplexity after each chunk, as llama-perplexity prints it (`[1]12.3,[2]11.9,...`).
    pub running: Vec<f64>,
}

/// `-log softmax(logits)[target]`, in f64.
fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    sum.ln() - f64::from(logits[target] - max)
}

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

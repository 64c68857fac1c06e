//! Log-probabilities in the API's two layouts: chat's per-token entries and completions'
//! legacy parallel arrays.

use serde::Serialize;

use crate::engine::Engine;
use crate::sampling::TokenLogprob;

/// `/v1/completions` log-probabilities (the legacy layout: parallel arrays).
#[derive(Debug, Default, Serialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    pub top_logprobs: Vec<TopLogprobMap>,
    /// Each token's offset in the choice's text, in characters.
    pub text_offset: Vec<usize>,
}

impl CompletionLogprobs {
    /// `logprobs` in this layout; `offset` is where the first token's text starts, and
    /// advances past the tokens.
    pub fn new(engine: &Engine, logprobs: &[TokenLogprob], offset: &mut usize) -> Self {
        let mut out = Self::default();
        for lp in logprobs {
            let text = String::from_utf8_lossy(&token_bytes(engine, lp.token)).into_owned();
            out.text_offset.push(*offset);
            *offset += text.chars().count();
            out.tokens.push(text);
            out.token_logprobs.push(lp.logprob);
            out.top_logprobs.push(TopLogprobMap(
                lp.top
                    .iter()
                    .map(|&(id, l)| {
                        let t = String::from_utf8_lossy(&token_bytes(engine, id)).into_owned();
                        (t, l)
                    })
                    .collect(),
            ));
        }
        out
    }
}

/// `{"token text": logprob}`, most likely first (serialized as a map, keeping `f32`
/// precision as `token_logprobs` does).
#[derive(Debug, Default)]
pub struct TopLogprobMap(Vec<(String, f32)>);

impl Serialize for TopLogprobMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (token, logprob) in &self.0 {
            map.serialize_entry(token, logprob)?;
        }
        map.end()
    }
}

/// Chat log-probabilities: one entry per output token.
#[derive(Debug, Serialize)]
pub struct ChatLogprobs {
    pub content: Vec<ChatTokenLogprob>,
    pub refusal: Option<()>,
}

#[derive(Debug, Serialize)]
pub struct ChatTokenLogprob {
    pub token: String,
    pub logprob: f32,
    /// The token's UTF-8 bytes (a token may hold part of a character).
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

impl ChatLogprobs {
    pub fn new(engine: &Engine, logprobs: &[TokenLogprob]) -> Self {
        let top = |id: u32, logprob: f32| {
            let bytes = token_bytes(engine, id);
            TopLogprob {
                token: String::from_utf8_lossy(&bytes).into_owned(),
                logprob,
                bytes,
            }
        };
        Self {
            content: logprobs
                .iter()
                .map(|lp| {
                    let TopLogprob {
                        token,
                        logprob,
                        bytes,
                    } = top(lp.token, lp.logprob);
                    ChatTokenLogprob {
                        token,
                        logprob,
                        bytes,
                        top_logprobs: lp.top.iter().map(|&(id, l)| top(id, l)).collect(),
                    }
                })
                .collect(),
            refusal: None,
        }
    }
}

/// A token's bytes as text shows it (a control token as its name, `<|im_end|>`).
fn token_bytes(engine: &Engine, id: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    // Ids come from the engine's own vocabulary, so this cannot fail; if it did, the token
    // would show as empty rather than fail the response.
    let _ = engine.tokenizer().append_token_bytes(id, true, &mut bytes);
    bytes
}

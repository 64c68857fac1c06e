//! The single-sequence generation API: load a GGUF model, then generate from text, a chat or
//! token ids with greedy or sampled decoding, max tokens, stop strings and end-of-generation.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use agentc_model::{ChatMessage, ChatTemplate, GgufFile, LlamaConfig, Tokenizer};

use crate::error::{Error, Result};
use crate::json_constraint::{JsonConstraint, JsonShape};
use crate::kv::{BlockId, KvStore};
use crate::model::{LlamaModel, SeqChunk};
use crate::ops::{Matmul, MatmulBackend};
use crate::sampling::{Sampler, SamplingParams};
use crate::text_stream::TextStream;

/// llama.cpp's benchmark setting on the 2-core development machine; callers size it to theirs.
pub const DEFAULT_THREADS: usize = 2;

/// How to load a model.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Threads for the forward pass.
    pub threads: usize,
    /// Most positions (prompt plus generated) one sequence may use; `None` means the model's
    /// trained context length.
    pub context_length: Option<usize>,
    /// Which code runs the matmuls (the fast kernels by default).
    pub matmul: MatmulBackend,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: DEFAULT_THREADS,
            context_length: None,
            matmul: MatmulBackend::default(),
        }
    }
}

/// What to generate from.
#[derive(Clone, Debug, PartialEq)]
pub enum Prompt {
    /// Text tokenized as llama.cpp does with special parsing on (`<|im_start|>` is one token);
    /// BOS is added if the model asks for it.
    Text(String),
    /// Messages rendered with the model's chat template, ending with the assistant's turn.
    Chat(Vec<ChatMessage>),
    /// Token ids used as they are.
    Tokens(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation ends when the text contains one of these; the text is cut before it.
    pub stop: Vec<String>,
    /// Constrain the output to one JSON value of this shape; generation ends when it is
    /// complete (`output: json` nodes).
    pub json: Option<JsonShape>,
    /// Added to the logits of these token ids before sampling (OpenAI's `logit_bias`); a bias
    /// of -100 or less bans the token.
    pub logit_bias: Vec<(u32, f32)>,
}

impl GenerateRequest {
    /// Greedy generation of up to `max_tokens` tokens from `text`.
    pub fn greedy(text: impl Into<String>, max_tokens: usize) -> Self {
        Self {
            prompt: Prompt::Text(text.into()),
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
            json: None,
            logit_bias: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` were generated.
    Length,
    /// The model produced an end-of-generation token (EOS, `<|im_end|>`, ...).
    EndOfGeneration,
    /// The text reached the stop string with this index in the request.
    Stop(usize),
    /// The caller's token callback asked to stop.
    Cancelled,
}

/// One generated token, as seen by a streaming caller.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenEvent<'a> {
    pub token: u32,
    /// Text that became final with this token (may be empty: a character or a possible stop
    /// string is still incomplete). Concatenated, the events' texts are the generation's text.
    pub text: &'a str,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Forward pass over the prompt, through the first sampled token.
    pub prefill: Duration,
    /// All later forward passes and sampling.
    pub decode: Duration,
}

impl Timings {
    pub fn prefill_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Tokens generated after the first, per second of decode time.
    pub fn decode_tokens_per_second(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64
            / self.decode.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    pub prompt_tokens: Vec<u32>,
    /// Every generated token, including a final end-of-generation token and the tokens that
    /// completed a stop string.
    pub tokens: Vec<u32>,
    /// The generated text without end-of-generation markers, cut before a stop string.
    pub text: String,
    pub finish_reason: FinishReason,
    pub timings: Timings,
}

/// A loaded model with its tokenizer, chat template and thread pool.
pub struct Engine {
    model: LlamaModel,
    tokenizer: Tokenizer,
    chat_template: Option<ChatTemplate>,
    pool: rayon::ThreadPool,
    context_length: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", self.model.config())
            .field("context_length", &self.context_length)
            .finish_non_exhaustive()
    }
}

impl Engine {
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(path, &EngineOptions::default())
    }

    pub fn load_with(path: impl AsRef<Path>, options: &EngineOptions) -> Result<Self> {
        let gguf = GgufFile::open(path)?;
        let model = LlamaModel::load(&gguf, Matmul::new(options.matmul, options.threads)?)?;
        let tokenizer = Tokenizer::from_metadata(&gguf)?;
        let marker = |id: Option<u32>| -> Result<String> {
            Ok(match id {
                Some(id) => tokenizer.decode(&[id], true)?,
                None => String::new(),
            })
        };
        let ids = tokenizer.special_ids();
        let chat_template =
            ChatTemplate::from_metadata(&gguf, &marker(ids.bos)?, &marker(ids.eos)?)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .build()?;
        let context_length = options
            .context_length
            .unwrap_or(model.config().context_length);
        Ok(Self {
            model,
            tokenizer,
            chat_template,
            pool,
            context_length,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        self.model.config()
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// Renders `messages` with the model's chat template, ready for the assistant's reply.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            Error::InvalidRequest(
                "the model has no chat template (tokenizer.chat_template)".to_owned(),
            )
        })?;
        Ok(template.render(messages, true)?)
    }

    /// The token ids a prompt becomes.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        Ok(match prompt {
            Prompt::Text(text) => self.tokenizer.encode(text, true, true)?,
            Prompt::Chat(messages) => {
                self.tokenizer
                    .encode(&self.render_chat(messages)?, true, true)?
            }
            Prompt::Tokens(ids) => ids.clone(),
        })
    }

    /// Logits after `tokens`, from a fresh sequence (for tests and scoring).
    pub fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut sequence = self.solo_sequence(tokens.len())?;
        self.run(|| sequence.forward(&self.model, tokens))
    }

    pub(crate) fn model(&self) -> &LlamaModel {
        &self.model
    }

    /// Runs `f`, a forward pass or several: the kernels backend splits its work over its own
    /// spinning workers from the calling thread; the reference backend's rayon loops run in the
    /// engine's rayon pool.
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.model.matmul_backend() {
            MatmulBackend::Kernels => f(),
            MatmulBackend::Reference => self.pool.install(f),
        }
    }

    /// A private KV store for one sequence of up to `positions` positions.
    fn solo_sequence(&self, positions: usize) -> Result<SoloSequence> {
        if positions > self.context_length {
            return Err(Error::ContextFull {
                needed: positions,
                capacity: self.context_length,
            });
        }
        let blocks = positions.div_ceil(SOLO_BLOCK_SIZE).max(1);
        Ok(SoloSequence {
            kv: self.model.new_kv_store(SOLO_BLOCK_SIZE, blocks)?,
            blocks: (0..blocks as BlockId).collect(),
            len: 0,
        })
    }

    /// Teacher forcing: the logits the model gives before each token of `continuation`, after
    /// `prompt` and the continuation tokens before it (one row per continuation token).
    pub fn teacher_forced_logits(
        &self,
        prompt: &[u32],
        continuation: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        let mut sequence = self.solo_sequence(prompt.len() + continuation.len())?;
        self.run(|| {
            let mut rows = Vec::with_capacity(continuation.len());
            if continuation.is_empty() {
                return Ok(rows);
            }
            rows.push(sequence.forward(&self.model, prompt)?);
            for &token in &continuation[..continuation.len() - 1] {
                rows.push(sequence.forward(&self.model, &[token])?);
            }
            Ok(rows)
        })
    }

    pub fn generate(&self, request: &GenerateRequest) -> Result<Generation> {
        self.generate_streaming(request, |_| ControlFlow::Continue(()))
    }

    /// Like [`Engine::generate`], calling `on_token` after every generated token with the text
    /// that became final; returning `ControlFlow::Break` stops generation
    /// ([`FinishReason::Cancelled`]). The last event carries all remaining text.
    pub fn generate_streaming(
        &self,
        request: &GenerateRequest,
        mut on_token: impl FnMut(&TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<Generation> {
        if request.stop.iter().any(String::is_empty) {
            return Err(Error::InvalidRequest(
                "stop strings must not be empty".to_owned(),
            ));
        }
        let prompt_tokens = self.prompt_tokens(&request.prompt)?;
        if prompt_tokens.is_empty() {
            return Err(Error::InvalidRequest(
                "the prompt is empty after tokenization (and the model adds no BOS)".to_owned(),
            ));
        }
        let needed = prompt_tokens.len() + request.max_tokens;
        if needed > self.context_length {
            return Err(Error::ContextFull {
                needed,
                capacity: self.context_length,
            });
        }
        let mut sequence = self.solo_sequence(needed)?;
        let mut sampler = Sampler::new(request.sampling.clone());
        let mut timings = Timings {
            prompt_tokens: prompt_tokens.len(),
            ..Timings::default()
        };
        let mut tokens = Vec::with_capacity(request.max_tokens);
        let mut stream = TextStream::new(&request.stop);
        let mut finish_reason = FinishReason::Length;
        let mut stop_cut = None;

        let started = Instant::now();
        let mut logits = self.run(|| sequence.forward(&self.model, &prompt_tokens))?;
        let mut decode_started = None;
        let mut json = request.json.map(JsonConstraint::new);
        while tokens.len() < request.max_tokens {
            let token = next_token(
                &mut sampler,
                json.as_mut(),
                &logits,
                &request.logit_bias,
                &self.tokenizer,
            );
            let json_done = json.as_ref().is_some_and(JsonConstraint::is_complete);
            tokens.push(token);
            if tokens.len() == 1 {
                timings.prefill = started.elapsed();
                decode_started = Some(Instant::now());
            }
            let end_of_generation = self.tokenizer.is_end_of_generation(token);
            if !end_of_generation {
                self.tokenizer
                    .append_token_bytes(token, false, stream.bytes_mut())?;
            }
            let stop = stream.find_stop();
            let last = end_of_generation
                || json_done
                || stop.is_some()
                || tokens.len() == request.max_tokens;
            let text = if last {
                stream.finish(stop.map(|(_, at)| at))
            } else {
                stream.take_ready()
            };
            let control = on_token(&TokenEvent { token, text: &text });
            if end_of_generation || json_done {
                finish_reason = FinishReason::EndOfGeneration;
                break;
            }
            if let Some((index, at)) = stop {
                finish_reason = FinishReason::Stop(index);
                stop_cut = Some(at);
                break;
            }
            if control.is_break() {
                finish_reason = FinishReason::Cancelled;
                break;
            }
            if !last {
                logits = self.run(|| sequence.forward(&self.model, &[token]))?;
            }
        }
        if let Some(decode_started) = decode_started {
            timings.decode = decode_started.elapsed();
        }
        timings.generated_tokens = tokens.len();
        Ok(Generation {
            prompt_tokens,
            tokens,
            text: stream.text(stop_cut),
            finish_reason,
            timings,
        })
    }
}

/// Block size of the single-sequence path's private KV store (results do not depend on it).
const SOLO_BLOCK_SIZE: usize = 16;

/// One sequence with a KV store of its own (the `Engine::generate` path).
struct SoloSequence {
    kv: KvStore,
    blocks: Vec<BlockId>,
    len: usize,
}

impl SoloSequence {
    /// Appends `tokens` and returns the logits after the last one.
    fn forward(&mut self, model: &LlamaModel, tokens: &[u32]) -> Result<Vec<f32>> {
        let chunk = SeqChunk {
            blocks: &self.blocks,
            start: self.len,
            tokens,
            logits: true,
        };
        let logits = model
            .forward(&[chunk], &mut self.kv)?
            .into_last()
            .ok_or_else(|| Error::InvalidRequest("no tokens to process".to_owned()))?;
        self.len += tokens.len();
        Ok(logits)
    }
}

/// The next token: sampled among those that keep a JSON-constrained output valid, or from all
/// of them, after adding `bias` to the logits. A constraint no token can satisfy falls back to
/// plain sampling (the output then fails to parse, with the text in the error).
pub(crate) fn next_token(
    sampler: &mut Sampler,
    json: Option<&mut JsonConstraint>,
    logits: &[f32],
    bias: &[(u32, f32)],
    tokenizer: &Tokenizer,
) -> u32 {
    let biased;
    let logits = if bias.is_empty() {
        logits
    } else {
        biased = apply_logit_bias(logits, bias);
        &biased[..]
    };
    json.and_then(|j| j.choose(logits, sampler, tokenizer))
        .unwrap_or_else(|| sampler.sample(logits))
}

/// `logits` with `bias` added (ids outside the vocabulary are ignored; they are refused at
/// submission); a bias of -100 or less bans the token, as OpenAI documents.
pub(crate) fn apply_logit_bias(logits: &[f32], bias: &[(u32, f32)]) -> Vec<f32> {
    let mut out = logits.to_vec();
    for &(id, b) in bias {
        if let Some(l) = out.get_mut(id as usize) {
            *l = if b <= -100.0 {
                f32::NEG_INFINITY
            } else {
                *l + b
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_bias_adds_bans_and_ignores_ids_outside_the_vocabulary() {
        let logits = [1.0, 2.0, 3.0];
        assert_eq!(
            apply_logit_bias(&logits, &[(0, 2.5), (2, -100.0), (7, 50.0)]),
            [3.5, 2.0, f32::NEG_INFINITY]
        );
    }

    #[test]
    fn engine_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }
}

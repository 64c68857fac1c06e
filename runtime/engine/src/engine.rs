//! The single-sequence generation API: load a GGUF model, then generate from text, a chat or
//! token ids with greedy or sampled decoding, max tokens, stop strings and end-of-generation.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentc_model::{ChatMessage, ChatTemplate, GgufFile, LlamaConfig, Tokenizer, ToolSupport};

use crate::constraint::{
    Grammars, Guide, OutputConstraint, commit, ensure_complete, prepare_during,
};
use crate::error::{Error, Result};
use crate::kv::{BlockId, KvStore};
use crate::model::{ChunkLogits, LlamaModel, Logits, SeqChunk};

mod perplexity;

use crate::ops::{Matmul, MatmulBackend};
use crate::sampling::{MAX_TOP_LOGPROBS, Sampler, SamplingParams, TokenLogprob};
use crate::text_stream::TextStream;
pub use perplexity::Perplexity;

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
    /// A Jinja chat template to use instead of the model's `tokenizer.chat_template` (for a
    /// model file without one, or one whose template lacks tool calling).
    pub chat_template: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: DEFAULT_THREADS,
            context_length: None,
            matmul: MatmulBackend::default(),
            chat_template: None,
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
    /// Constrain the output to a JSON Schema, a regex or a list of choices; generation ends
    /// when it is complete, and fails if `max_tokens` or a stop string ends it before.
    pub constraint: Option<OutputConstraint>,
    /// Added to the logits of these token ids before sampling (OpenAI's `logit_bias`); a bias
    /// of -100 or less bans the token.
    pub logit_bias: Vec<(u32, f32)>,
    /// Report each generated token's log-probability with this many alternatives (at most
    /// [`MAX_TOP_LOGPROBS`]); `None` reports none.
    pub logprobs: Option<usize>,
}

impl GenerateRequest {
    /// Refuses more log-probability alternatives than [`MAX_TOP_LOGPROBS`].
    pub(crate) fn check_logprobs(&self) -> Result<()> {
        match self.logprobs {
            Some(top) if top > MAX_TOP_LOGPROBS => Err(Error::InvalidRequest(format!(
                "at most {MAX_TOP_LOGPROBS} log-probability alternatives per token, asked for {top}"
            ))),
            _ => Ok(()),
        }
    }

    /// Greedy generation of up to `max_tokens` tokens from `text`.
    pub fn greedy(text: impl Into<String>, max_tokens: usize) -> Self {
        Self {
            prompt: Prompt::Text(text.into()),
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
            constraint: None,
            logit_bias: Vec::new(),
            logprobs: None,
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
    /// Time spent computing constraint masks (overlapped with the forward passes).
    pub mask: Duration,
    /// Constraint masks computed (one per sampled token under a constraint).
    pub masks: u32,
    /// Tokens a constraint forced without sampling (fast-forward).
    pub forced_tokens: usize,
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
    /// One per generated token but an end-of-generation one, when the request asked for them.
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: FinishReason,
    pub timings: Timings,
}

/// A loaded model with its tokenizer, chat template and thread pool.
pub struct Engine {
    model: LlamaModel,
    tokenizer: Arc<Tokenizer>,
    /// The constraint compiler for this vocabulary, built on first use.
    grammars: OnceLock<std::result::Result<Grammars, String>>,
    /// Whether tokens a constraint forces are appended without sampling (on by default).
    fast_forward: AtomicBool,
    /// Whether constraint masks are computed only when an unmasked sample is refused (on by
    /// default; see `Guide::set_lazy`).
    lazy_masks: AtomicBool,
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
        let tokenizer = Arc::new(Tokenizer::from_metadata(&gguf)?);
        let marker = |id: Option<u32>| -> Result<String> {
            Ok(match id {
                Some(id) => tokenizer.decode(&[id], true)?,
                None => String::new(),
            })
        };
        let ids = tokenizer.special_ids();
        let (bos, eos) = (marker(ids.bos)?, marker(ids.eos)?);
        let chat_template = match &options.chat_template {
            Some(source) => Some(ChatTemplate::new(source, &bos, &eos)?),
            None => ChatTemplate::from_metadata(&gguf, &bos, &eos)?,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.max(1))
            .build()?;
        let context_length = options
            .context_length
            .unwrap_or(model.config().context_length);
        Ok(Self {
            model,
            tokenizer,
            grammars: OnceLock::new(),
            fast_forward: AtomicBool::new(true),
            lazy_masks: AtomicBool::new(true),
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

    /// Turns fast-forward of forced tokens on or off (for benchmarks; on by default).
    pub fn set_fast_forward(&self, on: bool) {
        self.fast_forward.store(on, Ordering::Relaxed);
    }

    /// A matcher for `constraint` over this model's vocabulary (the vocabulary's token trie is
    /// built on the first call).
    pub fn guide(&self, constraint: &OutputConstraint) -> Result<Guide> {
        let grammars = self
            .grammars
            .get_or_init(|| Grammars::new(Arc::clone(&self.tokenizer)).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::InvalidConstraint(e.clone()))?;
        grammars.guide(constraint, self.fast_forward.load(Ordering::Relaxed))
    }

    /// A matcher for `request`'s constraint, lazy where that leaves its sampling distribution
    /// unchanged (see [`Guide::set_lazy`]).
    pub(crate) fn guide_for(
        &self,
        constraint: &OutputConstraint,
        request: &GenerateRequest,
    ) -> Result<Guide> {
        let mut guide = self.guide(constraint)?;
        let s = &request.sampling;
        let exact = s.is_greedy() || (s.top_k == 0 && s.top_p >= 1.0);
        guide.set_lazy(
            self.lazy_masks.load(Ordering::Relaxed) && exact && request.logprobs.is_none(),
        );
        Ok(guide)
    }

    /// Turns lazy masking (on by default) on or off, for benchmarks.
    pub fn set_lazy_masks(&self, on: bool) {
        self.lazy_masks.store(on, Ordering::Relaxed);
    }

    /// Renders `messages` with the model's chat template, ready for the assistant's reply.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        self.render_chat_with_tools(messages, None)
    }

    /// Renders `messages` with `tools` (OpenAI function definitions) given to the template.
    pub fn render_chat_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<String> {
        Ok(self.template()?.render_with_tools(messages, tools, true)?)
    }

    /// What the chat template does with tools (nothing, without a template).
    pub fn tool_support(&self) -> ToolSupport {
        self.chat_template
            .as_ref()
            .map(ChatTemplate::tool_support)
            .unwrap_or_default()
    }

    fn template(&self) -> Result<&ChatTemplate> {
        self.chat_template.as_ref().ok_or_else(|| {
            Error::InvalidRequest(
                "the model has no chat template (tokenizer.chat_template); give one with \
                 --chat-template-file"
                    .to_owned(),
            )
        })
    }

    /// The token ids a prompt becomes.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        Ok(match prompt {
            Prompt::Text(text) => self.tokenizer.encode(text, true, true)?,
            Prompt::Chat(messages) => self.chat_tokens(messages, None)?,
            Prompt::Tokens(ids) => ids.clone(),
        })
    }

    /// The token ids of `messages` rendered with the chat template (and `tools`). The
    /// template's own control tokens are parsed; message text never is: `<|im_end|>` typed by a
    /// user is plain text, so no message can forge a turn. Where a message holds control-token
    /// text, each message's content is rendered as a placeholder and tokenized on its own.
    pub fn chat_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<u32>> {
        if messages
            .iter()
            .all(|m| self.tokenizer.control_text_in(&m.content).is_none())
        {
            let text = self.render_chat_with_tools(messages, tools)?;
            return Ok(self.tokenizer.encode(&text, true, true)?);
        }
        // Private-use characters: no template writes them, and no control token contains them.
        let marker = |i: usize| format!("\u{E000}{i}\u{E001}");
        let masked: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage {
                content: marker(i),
                ..m.clone()
            })
            .collect();
        let text = self.render_chat_with_tools(&masked, tools)?;
        let mut pieces: Vec<(&str, bool)> = Vec::new();
        let mut rest = text.as_str();
        for (i, message) in messages.iter().enumerate() {
            let mark = marker(i);
            let at = rest
                .find(&mark)
                .filter(|_| text.matches(&mark).count() == 1);
            let Some(at) = at else {
                let control = self
                    .tokenizer
                    .control_text_in(&message.content)
                    .unwrap_or("");
                return Err(Error::InvalidRequest(format!(
                    "message {i} contains the control token text `{control}`, and the chat \
                     template does not render message text as it is, so it cannot be kept as \
                     plain text; remove it from the message"
                )));
            };
            pieces.push((&rest[..at], true));
            pieces.push((&message.content, false));
            rest = &rest[at + mark.len()..];
        }
        pieces.push((rest, true));
        Ok(self.tokenizer.encode_pieces(&pieces, true)?)
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
        request.check_logprobs()?;
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
        let mut logprobs = Vec::new();

        let mut guide = request
            .constraint
            .as_ref()
            .map(|c| self.guide_for(c, request))
            .transpose()?;
        let started = Instant::now();
        let mut logits = {
            let mut guides: Vec<&mut Guide> = guide.iter_mut().collect();
            prepare_during(&mut guides, || {
                self.run(|| sequence.forward(&self.model, &prompt_tokens))
            })?
        };
        let mut decode_started = None;
        let mut scratch = Vec::new();
        while tokens.len() < request.max_tokens {
            let (token, sampled) = next_token(
                &mut sampler,
                guide.as_mut(),
                &logits,
                &request.logit_bias,
                &mut scratch,
                request.logprobs,
            )?;
            let end_of_generation = self.tokenizer.is_end_of_generation(token);
            let room = request.max_tokens - tokens.len() - 1;
            let committed = commit(guide.as_mut(), token, end_of_generation, room)?;
            let complete = committed.complete;
            logprobs.extend(step_logprobs(
                sampled,
                &committed.forced,
                request.logprobs.unwrap_or(0),
                end_of_generation,
            ));
            timings.forced_tokens += committed.forced.len();
            let mut step = vec![token];
            step.extend(committed.forced);
            tokens.extend_from_slice(&step);
            if decode_started.is_none() {
                timings.prefill = started.elapsed();
                decode_started = Some(Instant::now());
            }
            if !end_of_generation {
                for &t in &step {
                    self.tokenizer
                        .append_token_bytes(t, false, stream.bytes_mut())?;
                }
            }
            let stop = stream.find_stop();
            let last = end_of_generation
                || complete
                || stop.is_some()
                || tokens.len() >= request.max_tokens;
            if last && !end_of_generation && !complete {
                ensure_complete(guide.as_mut(), stop.is_some(), tokens.len())?;
            }
            let text = if last {
                stream.finish(stop.map(|(_, at)| at))
            } else {
                stream.take_ready()
            };
            let control = on_token(&TokenEvent { token, text: &text });
            if end_of_generation || complete {
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
                let mut guides: Vec<&mut Guide> = guide.iter_mut().collect();
                logits = prepare_during(&mut guides, || {
                    self.run(|| sequence.forward(&self.model, &step))
                })?;
            }
        }
        if let Some(g) = &guide {
            (timings.mask, timings.masks) = g.mask_stats();
        }
        if let Some(decode_started) = decode_started {
            timings.decode = decode_started.elapsed();
        }
        timings.generated_tokens = tokens.len();
        Ok(Generation {
            prompt_tokens,
            tokens,
            text: stream.text(stop_cut),
            logprobs,
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
        self.forward_logits(model, tokens, ChunkLogits::Last)?
            .into_last()
            .ok_or_else(|| Error::InvalidRequest("no tokens to process".to_owned()))
    }

    /// Appends `tokens` and returns the logits `mode` asks for.
    fn forward_logits(
        &mut self,
        model: &LlamaModel,
        tokens: &[u32],
        mode: ChunkLogits,
    ) -> Result<Logits> {
        let chunk = SeqChunk {
            blocks: &self.blocks,
            start: self.len,
            tokens,
            logits: mode,
        };
        let logits = model.forward(&[chunk], &mut self.kv)?;
        self.len += tokens.len();
        Ok(logits)
    }
}

/// The next token: sampled after adding `bias` to the logits and masking the tokens a
/// constraint does not allow. Only then are the logits copied (into `scratch`): an unbiased,
/// unconstrained sample reads them in place.
/// With `logprobs` (the number of alternatives), also the token's log-probability under the
/// biased, masked logits.
pub(crate) fn next_token(
    sampler: &mut Sampler,
    guide: Option<&mut Guide>,
    logits: &[f32],
    bias: &[(u32, f32)],
    scratch: &mut Vec<f32>,
    logprobs: Option<usize>,
) -> Result<(u32, Option<TokenLogprob>)> {
    let Some(guide) = guide else {
        let dist = biased(logits, bias, scratch);
        let token = sampler.sample(dist);
        return Ok((
            token,
            logprobs.map(|top| TokenLogprob::from_logits(dist, token, top)),
        ));
    };
    if guide.is_lazy() && logprobs.is_none() {
        let token = sampler.sample(biased(logits, bias, scratch));
        if guide.allows(token) {
            return Ok((token, None));
        }
    }
    scratch.clear();
    scratch.extend_from_slice(logits);
    apply_logit_bias(scratch, bias);
    guide.apply(scratch)?;
    let token = sampler.sample(scratch);
    Ok((
        token,
        logprobs.map(|top| TokenLogprob::from_logits(scratch, token, top)),
    ))
}

/// `logits` with `bias` added: read in place when there is none, else copied into `scratch`.
fn biased<'a>(logits: &'a [f32], bias: &[(u32, f32)], scratch: &'a mut Vec<f32>) -> &'a [f32] {
    if bias.is_empty() {
        return logits;
    }
    scratch.clear();
    scratch.extend_from_slice(logits);
    apply_logit_bias(scratch, bias);
    scratch
}

/// One step's log-probabilities: the sampled token's, then one per token the constraint
/// forced after it. An end-of-generation token is not part of the output, so it has none.
pub(crate) fn step_logprobs(
    sampled: Option<TokenLogprob>,
    forced: &[u32],
    top: usize,
    end_of_generation: bool,
) -> Vec<TokenLogprob> {
    match sampled {
        Some(_) if end_of_generation => Vec::new(),
        Some(first) => std::iter::once(first)
            .chain(forced.iter().map(|&t| TokenLogprob::forced(t, top)))
            .collect(),
        None => Vec::new(),
    }
}

/// `logits` with `bias` added (ids outside the vocabulary are ignored; they are refused at
/// submission); a bias of -100 or less bans the token, as OpenAI documents.
pub(crate) fn apply_logit_bias(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if b <= -100.0 {
                f32::NEG_INFINITY
            } else {
                *l + b
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logit_bias_adds_bans_and_ignores_ids_outside_the_vocabulary() {
        let mut logits = [1.0, 2.0, 3.0];
        apply_logit_bias(&mut logits, &[(0, 2.5), (2, -100.0), (7, 50.0)]);
        assert_eq!(logits, [3.5, 2.0, f32::NEG_INFINITY]);
    }

    #[test]
    fn engine_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Engine>();
    }
}

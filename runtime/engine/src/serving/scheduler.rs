//! The scheduler thread: the one owner of the KV store, the block pool, the prefix index and
//! every admitted sequence. It runs steps of continuous batching until shut down.
//!
//! One step:
//! 1. take released retention hints; end cancelled sequences (their blocks free at once);
//! 2. admit waiting requests (earliest deadline first) while `max_running` allows, resuming
//!    preempted sequences before new ones;
//! 3. plan the forward pass: one decode token for every sequence that has sampled a token, then
//!    prompt chunks (a sequence starts with a prefix-cache lookup and the blocks for its whole
//!    prompt) up to `step_token_budget`; a decode that needs a block when none is left preempts
//!    the sequence with the latest deadline (its blocks are freed, it is recomputed later);
//! 4. run the pass, then sample each sequence that reached its last known token with its own
//!    seeded sampler, stream the text, and finish sequences on end-of-generation, a stop string
//!    or `max_tokens` (their full blocks go into the prefix index).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::mpsc;

use super::{
    Pending, SequenceEvent, ServingConfig, ServingStats, Shared, SubmitOptions, Usage, lock,
};
use crate::constraint::{Guide, commit, ensure_complete, prepare_during};
use crate::engine::{Engine, FinishReason, next_token, step_logprobs};
use crate::error::Error;
use crate::kv::{Block, BlockAllocator, BlockId, KvStore, PrefixIndex};
use crate::model::{ChunkLogits, Logits, SeqChunk};
use crate::sampling::Sampler;
use crate::text_stream::TextStream;

/// How long a step with nothing runnable waits before looking again.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// KV blocks that `config.kv_cache_mib` holds for `engine`'s model.
pub(super) fn kv_blocks(engine: &Engine, config: &ServingConfig) -> usize {
    let bytes = config.kv_cache_mib.saturating_mul(1 << 20);
    bytes / engine.model().kv_block_bytes(config.block_size).max(1)
}

/// The scheduler thread's body.
pub(super) fn run(shared: &Shared) {
    match Scheduler::new(shared) {
        Ok(mut scheduler) => scheduler.run(),
        Err(error) => {
            // Nothing can be served: fail every request as it arrives until shutdown.
            let message = error.to_string();
            while let Some(batch) = wait_for_work(shared, true) {
                for pending in batch {
                    let _ = pending
                        .events
                        .send(SequenceEvent::Failed(Error::InvalidRequest(format!(
                            "the serving engine could not start: {message}"
                        ))));
                }
            }
        }
    }
}

/// Takes the waiting requests (`limit` of them at most, earliest deadline first); blocks while
/// there are none if `idle`. `None` once shut down with nothing left to take.
fn wait_for_work(shared: &Shared, idle: bool) -> Option<Vec<Pending>> {
    let mut queue = lock(&shared.queue);
    loop {
        if !queue.pending.is_empty() || !queue.released.is_empty() || !idle {
            let batch: Vec<Pending> = std::iter::from_fn(|| queue.pending.pop()).collect();
            // Still waiting, now on the scheduler's side: counted under the same lock that
            // `submit` checks the bound under.
            shared.waiting.fetch_add(batch.len(), Ordering::Relaxed);
            return Some(batch);
        }
        if queue.shut_down {
            return None;
        }
        queue = shared
            .wake
            .wait(queue)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// An admitted sequence.
struct Active {
    id: u64,
    options: SubmitOptions,
    submitted: Instant,
    events: mpsc::UnboundedSender<SequenceEvent>,
    cancelled: Arc<AtomicBool>,
    max_tokens: usize,
    prompt_len: usize,
    /// Prompt, then generated tokens.
    tokens: Vec<u32>,
    /// Positions whose KV is in `blocks` (the rest of `tokens` is still to be computed).
    computed: usize,
    blocks: Vec<Block>,
    /// Block ids of `blocks`, for the forward pass.
    table: Vec<BlockId>,
    sampler: Sampler,
    /// The output constraint's matcher, if the request has one.
    guide: Option<Guide>,
    logit_bias: Vec<(u32, f32)>,
    /// Alternatives to report with each token's log-probability; `None`: no log-probabilities.
    logprobs: Option<usize>,
    stream: TextStream,
    cached_tokens: usize,
    /// Whether it holds its blocks (after its prefix lookup); false again after preemption.
    started: bool,
    /// Whether its `Started` event was sent.
    announced: bool,
}

impl Active {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    fn remaining(&self) -> usize {
        self.tokens.len() - self.computed
    }

    /// Larger is preempted first: no deadline, later deadline, later arrival.
    fn preemption_key(&self) -> (bool, Option<Instant>, u64) {
        (
            self.options.deadline.is_none(),
            self.options.deadline,
            self.id,
        )
    }

    fn push_block(&mut self, block: Block) {
        self.table.push(block.id());
        self.blocks.push(block);
    }

    /// Drops every block reference (KV freed unless shared) and forgets the computed positions.
    fn release_blocks(&mut self) {
        self.blocks.clear();
        self.table.clear();
        self.computed = 0;
    }
}

/// What a step computes for one sequence.
struct Planned {
    seq: usize,
    start: usize,
    len: usize,
}

struct Scheduler<'a> {
    shared: &'a Shared,
    engine: &'a Engine,
    config: ServingConfig,
    kv: KvStore,
    pool: BlockAllocator,
    index: PrefixIndex,
    /// The last forward pass's logits (one buffer reused every step).
    logits: Logits,
    /// Logits copied for biasing and masking (one buffer reused every sample).
    scratch: Vec<f32>,
    running: Vec<Active>,
    /// Preempted sequences, resumed before new requests (front first).
    preempted: VecDeque<Active>,
    /// Admitted from the queue but not yet running, in EDF order.
    waiting: VecDeque<Pending>,
    /// Pinned prefixes by sequence id (the tokens the pin covered).
    retained: Vec<(u64, Vec<u32>)>,
    stats: ServingStats,
    shut_down: bool,
}

impl<'a> Scheduler<'a> {
    fn new(shared: &'a Shared) -> Result<Self, Error> {
        let engine: &Engine = &shared.engine;
        let config = shared.config.clone();
        let blocks = kv_blocks(engine, &config);
        Ok(Self {
            shared,
            engine,
            kv: engine.model().new_kv_store(config.block_size, blocks)?,
            pool: BlockAllocator::new(blocks),
            index: PrefixIndex::new(config.block_size),
            logits: Logits::default(),
            scratch: Vec::new(),
            running: Vec::new(),
            preempted: VecDeque::new(),
            waiting: VecDeque::new(),
            retained: Vec::new(),
            stats: ServingStats {
                kv_blocks_total: blocks,
                ..ServingStats::default()
            },
            config,
            shut_down: false,
        })
    }

    fn run(&mut self) {
        loop {
            let idle =
                self.running.is_empty() && self.preempted.is_empty() && self.waiting.is_empty();
            if idle && self.shut_down {
                return;
            }
            match wait_for_work(self.shared, idle) {
                Some(batch) => self.enqueue(batch),
                None => return,
            }
            self.take_releases();
            self.end_cancelled();
            self.admit();
            self.step();
            self.publish_stats();
        }
    }

    fn enqueue(&mut self, batch: Vec<Pending>) {
        for pending in batch {
            // `batch` is in EDF order; merge it into the requests already waiting here.
            let at = self
                .waiting
                .iter()
                .position(|w| w.key() < pending.key())
                .unwrap_or(self.waiting.len());
            self.waiting.insert(at, pending);
        }
        if !self.shut_down && lock(&self.shared.queue).shut_down {
            self.shut_down = true;
            for pending in std::mem::take(&mut self.waiting) {
                self.unqueued(1);
                let _ = pending
                    .events
                    .send(SequenceEvent::Failed(Error::InvalidRequest(
                        "the serving engine shut down before this request started".to_owned(),
                    )));
            }
        }
    }

    /// `n` requests stopped waiting (they run, failed or were cancelled).
    fn unqueued(&self, n: usize) {
        self.shared.waiting.fetch_sub(n, Ordering::Relaxed);
    }

    fn take_releases(&mut self) {
        let released = std::mem::take(&mut lock(&self.shared.queue).released);
        for id in released {
            if let Some(at) = self.retained.iter().position(|(r, _)| *r == id) {
                let (_, tokens) = self.retained.swap_remove(at);
                self.index.unpin(&tokens);
            }
        }
    }

    fn end_cancelled(&mut self) {
        let cancelled = |c: &Arc<AtomicBool>| c.load(Ordering::Acquire);
        let before = self.waiting.len();
        self.waiting.retain(|p| !cancelled(&p.cancelled));
        let gone = before - self.waiting.len();
        self.unqueued(gone);
        self.stats.cancelled += gone as u64;
        let mut ended: Vec<Active> = self
            .running
            .extract_if(.., |s| cancelled(&s.cancelled))
            .collect();
        let (keep, cancel): (VecDeque<Active>, VecDeque<Active>) =
            std::mem::take(&mut self.preempted)
                .into_iter()
                .partition(|s| !cancelled(&s.cancelled));
        self.preempted = keep;
        ended.extend(cancel);
        for seq in ended {
            self.finish(seq, FinishReason::Cancelled, None);
        }
    }

    fn max_running(&self) -> usize {
        if self.config.batching {
            self.config.max_running
        } else {
            1
        }
    }

    fn admit(&mut self) {
        while self.running.len() < self.max_running() {
            if let Some(seq) = self.preempted.pop_front() {
                self.running.push(seq);
                continue;
            }
            let Some(pending) = self.waiting.pop_front() else {
                break;
            };
            self.unqueued(1);
            match self.validate(&pending) {
                Ok(seq) if seq.max_tokens == 0 => {
                    // Nothing to generate (as `Engine::generate`, which still runs the prompt,
                    // but no output depends on it here).
                    let _ = seq.events.send(SequenceEvent::Started {
                        prompt_tokens: seq.prompt_len,
                        cached_tokens: 0,
                        queued: seq.submitted.elapsed(),
                    });
                    self.finish(seq, FinishReason::Length, None);
                }
                Ok(seq) => self.running.push(seq),
                Err(error) => {
                    self.stats.failed += 1;
                    self.publish_stats();
                    let _ = pending.events.send(SequenceEvent::Failed(error));
                }
            }
        }
    }

    /// Tokenizes and checks a request; a request that can never fit fails here.
    fn validate(&self, pending: &Pending) -> Result<Active, Error> {
        let request = &pending.request;
        let check = || -> Result<(Vec<u32>, Option<Guide>), Error> {
            if request.stop.iter().any(String::is_empty) {
                return Err(Error::InvalidRequest(
                    "stop strings must not be empty".to_owned(),
                ));
            }
            request.check_logprobs()?;
            let tokens = self.engine.prompt_tokens(&request.prompt)?;
            if tokens.is_empty() {
                return Err(Error::InvalidRequest(
                    "the prompt is empty after tokenization (and the model adds no BOS)".to_owned(),
                ));
            }
            let vocab_size = self.engine.config().vocab_size;
            let biased = request.logit_bias.iter().map(|&(id, _)| id);
            if let Some(id) = tokens
                .iter()
                .copied()
                .chain(biased)
                .find(|&t| t as usize >= vocab_size)
            {
                return Err(Error::TokenOutOfRange { id, vocab_size });
            }
            let needed = tokens.len() + request.max_tokens;
            if needed > self.engine.context_length() {
                return Err(Error::ContextFull {
                    needed,
                    capacity: self.engine.context_length(),
                });
            }
            let blocks = needed.div_ceil(self.config.block_size);
            if blocks > self.pool.total() {
                return Err(Error::InvalidRequest(format!(
                    "the prompt and max_tokens need {needed} positions ({blocks} KV blocks), but \
                     the KV cache holds {} blocks; raise kv_cache_mib or lower max_tokens",
                    self.pool.total()
                )));
            }
            let guide = request
                .constraint
                .as_ref()
                .map(|c| self.engine.guide_for(c, request))
                .transpose()?;
            Ok((tokens, guide))
        };
        check().map(|(tokens, guide)| Active {
            id: pending.id,
            options: pending.options.clone(),
            submitted: pending.submitted,
            events: pending.events.clone(),
            cancelled: Arc::clone(&pending.cancelled),
            max_tokens: request.max_tokens,
            prompt_len: tokens.len(),
            tokens,
            computed: 0,
            blocks: Vec::new(),
            table: Vec::new(),
            sampler: Sampler::new(request.sampling.clone()),
            guide,
            logit_bias: request.logit_bias.clone(),
            logprobs: request.logprobs,
            stream: TextStream::new(&request.stop),
            cached_tokens: 0,
            started: false,
            announced: false,
        })
    }

    /// Plans, runs and samples one forward pass.
    fn step(&mut self) {
        let plan = self.plan();
        if plan.is_empty() {
            if !self.running.is_empty() {
                // Every admitted sequence waits for blocks; do not spin at full speed.
                std::thread::sleep(IDLE_WAIT);
            }
            return;
        }
        // The masks of the sequences sampling after this pass are computed while it runs.
        let mut guides: Vec<(usize, Guide)> = Vec::new();
        for p in &plan {
            let seq = &mut self.running[p.seq];
            if p.start + p.len == seq.tokens.len()
                && let Some(g) = seq.guide.take()
            {
                guides.push((p.seq, g));
            }
        }
        let chunks: Vec<SeqChunk<'_>> = plan
            .iter()
            .map(|p| {
                let seq = &self.running[p.seq];
                SeqChunk {
                    blocks: &seq.table,
                    start: p.start,
                    tokens: &seq.tokens[p.start..p.start + p.len],
                    logits: if p.start + p.len == seq.tokens.len() {
                        ChunkLogits::Last
                    } else {
                        ChunkLogits::None
                    },
                }
            })
            .collect();
        let (model, kv) = (self.engine.model(), &mut self.kv);
        let logits = &mut self.logits;
        let engine = self.engine;
        let outcome = {
            let mut refs: Vec<&mut Guide> = guides.iter_mut().map(|(_, g)| g).collect();
            prepare_during(&mut refs, || {
                engine.run(|| model.forward_into(&chunks, kv, logits))
            })
        };
        drop(chunks);
        for (i, g) in guides {
            self.running[i].guide = Some(g);
        }
        self.stats.steps += 1;
        self.stats.step_tokens += plan.iter().map(|p| p.len as u64).sum::<u64>();
        let logits = match outcome {
            Ok(()) => &self.logits,
            Err(error) => {
                // Inputs are validated at admission, so this is an engine fault: fail the
                // sequences of this pass rather than serve wrong tokens.
                let message = error.to_string();
                let mut seqs: Vec<usize> = plan.iter().map(|p| p.seq).collect();
                seqs.sort_unstable();
                for &i in seqs.iter().rev() {
                    let seq = self.running.remove(i);
                    self.stats.failed += 1;
                    self.publish_stats();
                    let _ = seq
                        .events
                        .send(SequenceEvent::Failed(Error::InvalidRequest(format!(
                            "forward pass failed: {message}"
                        ))));
                }
                return;
            }
        };
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let mut next_row = 0;
        for p in &plan {
            let seq = &mut self.running[p.seq];
            seq.computed = p.start + p.len;
            if self.config.prefix_caching && seq.computed <= seq.prompt_len {
                // Prompt blocks become shareable as soon as they are computed, so requests
                // arriving together with a common prefix compute it once.
                let full = seq.computed - seq.computed % self.config.block_size;
                self.index.insert(&seq.tokens[..full], &seq.blocks);
            }
            if seq.computed < seq.tokens.len() {
                continue;
            }
            let Some(row) = logits.row(next_row) else {
                continue;
            };
            next_row += 1;
            match sample(self.engine, seq, row, &mut self.scratch) {
                Ok(Some((reason, cut))) => done.push((p.seq, Some((reason, cut)))),
                Ok(None) => {}
                Err(error) => {
                    done.push((p.seq, None));
                    failed.push(error);
                }
            }
        }
        // Plans list sequences in increasing index order; remove from the back.
        done.sort_by_key(|(i, _)| *i);
        for (i, end) in done.into_iter().rev() {
            let seq = self.running.remove(i);
            match end {
                Some((reason, cut)) => self.finish(seq, reason, cut),
                None => {
                    self.stats.failed += 1;
                    self.publish_stats();
                    let error = failed.pop().unwrap_or_else(|| {
                        Error::InvalidRequest("the generated token cannot be decoded".to_owned())
                    });
                    let _ = seq.events.send(SequenceEvent::Failed(error));
                }
            }
        }
    }

    /// Chooses this step's work; preempts sequences when decodes run out of blocks.
    fn plan(&mut self) -> Vec<Planned> {
        loop {
            match self.try_plan() {
                Ok(plan) => return plan,
                Err(victim) => self.preempt(victim),
            }
        }
    }

    /// The step's work, or `Err(index)` of the running sequence to preempt first.
    fn try_plan(&mut self) -> Result<Vec<Planned>, usize> {
        let mut plan = Vec::new();
        let mut budget = self.config.step_token_budget;
        let bs = self.config.block_size;
        // Decodes first: the sampled token (and any tokens a constraint forced after it) of
        // each sequence past its prompt.
        for i in 0..self.running.len() {
            let seq = &self.running[i];
            if !seq.started || seq.remaining() == 0 || seq.computed < seq.prompt_len {
                continue;
            }
            if budget == 0 {
                break;
            }
            let len = seq.remaining().min(budget);
            let needed = (seq.computed + len).div_ceil(bs);
            while self.running[i].blocks.len() < needed {
                if !self.grow(i) {
                    return Err(self.victim());
                }
            }
            plan.push(Planned {
                seq: i,
                start: self.running[i].computed,
                len,
            });
            budget -= len;
        }
        // Then prompt chunks (and recomputation of preempted sequences), in admission order.
        for i in 0..self.running.len() {
            if budget == 0 {
                break;
            }
            if !self.running[i].started {
                if self.defer_for_shared_prefix(i) || !self.start(i) {
                    continue;
                }
                if self.running[i].remaining() == 0 {
                    continue;
                }
            }
            let seq = &self.running[i];
            if seq.remaining() == 0 || plan.iter().any(|p| p.seq == i) {
                continue;
            }
            let len = seq.remaining().min(budget);
            plan.push(Planned {
                seq: i,
                start: seq.computed,
                len,
            });
            budget -= len;
        }
        Ok(plan)
    }

    /// Whether sequence `i` should wait a step because a running sequence is still computing
    /// a prompt that starts with the same block: once that is done, `i` finds it cached.
    fn defer_for_shared_prefix(&self, i: usize) -> bool {
        let bs = self.config.block_size;
        let seq = &self.running[i];
        if !self.config.prefix_caching || seq.tokens.len() <= bs {
            return false;
        }
        let first = &seq.tokens[..bs];
        self.running.iter().any(|other| {
            other.started
                && other.computed < other.prompt_len
                && other.tokens.len() > bs
                && &other.tokens[..bs] == first
        })
    }

    /// Starts sequence `i`: prefix lookup, blocks for all its known tokens, `Started`. False
    /// (and nothing held) when the blocks are not available yet.
    fn start(&mut self, i: usize) -> bool {
        let bs = self.config.block_size;
        let caching = self.config.prefix_caching;
        let seq = &self.running[i];
        // At least the last known token is computed, for its logits.
        let lookup_len = seq.tokens.len() - 1;
        let cached: Vec<Block> = if caching {
            self.index.lookup(&seq.tokens[..lookup_len])
        } else {
            Vec::new()
        };
        let needed = seq.tokens.len().div_ceil(bs) - cached.len();
        if !self.reserve(needed) {
            return false;
        }
        let Some(fresh) = self.pool.allocate_many(needed) else {
            return false;
        };
        let seq = &mut self.running[i];
        seq.computed = cached.len() * bs;
        for block in cached.into_iter().chain(fresh) {
            seq.push_block(block);
        }
        if !seq.announced {
            seq.announced = true;
            seq.cached_tokens = seq.computed;
            if caching {
                self.stats.prefix_query_tokens += seq.prompt_len as u64;
                self.stats.prefix_hit_tokens += seq.computed as u64;
            }
            let _ = seq.events.send(SequenceEvent::Started {
                prompt_tokens: seq.prompt_len,
                cached_tokens: seq.cached_tokens,
                queued: seq.submitted.elapsed(),
            });
        }
        seq.started = true;
        true
    }

    /// Makes `n` blocks free, evicting cached prefixes if needed (pins are dropped only when
    /// nothing else could ever make room).
    fn reserve(&mut self, n: usize) -> bool {
        if self.pool.free() < n {
            self.index.evict(n - self.pool.free());
        }
        if self.pool.free() < n && self.running.iter().all(|s| s.blocks.is_empty()) {
            self.index.clear_pins();
            self.retained.clear();
            self.index.evict(n - self.pool.free());
        }
        self.pool.free() >= n
    }

    /// One more block for running sequence `i`.
    fn grow(&mut self, i: usize) -> bool {
        if !self.reserve(1) {
            return false;
        }
        match self.pool.allocate() {
            Some(block) => {
                self.running[i].push_block(block);
                true
            }
            None => false,
        }
    }

    /// The running sequence to preempt: one holding blocks, latest deadline, latest arrival.
    fn victim(&self) -> usize {
        (0..self.running.len())
            .max_by_key(|&i| {
                let seq = &self.running[i];
                (!seq.blocks.is_empty(), seq.preemption_key())
            })
            .unwrap_or(0)
    }

    /// Frees running sequence `i`'s blocks (caching its full blocks first) and queues it to be
    /// recomputed; its sampler and text keep their state, so its output does not change.
    fn preempt(&mut self, i: usize) {
        let mut seq = self.running.remove(i);
        if self.config.prefix_caching {
            let full = seq.computed - seq.computed % self.config.block_size;
            self.index.insert(&seq.tokens[..full], &seq.blocks);
        }
        seq.release_blocks();
        seq.started = false;
        self.stats.preemptions += 1;
        self.preempted.push_front(seq);
    }

    /// Ends `seq`: caches its blocks, applies its retention hint, reports `Finished`.
    fn finish(&mut self, mut seq: Active, reason: FinishReason, cut: Option<usize>) {
        if self.config.prefix_caching && reason != FinishReason::Cancelled {
            let full = seq.computed - seq.computed % self.config.block_size;
            self.index.insert(&seq.tokens[..full], &seq.blocks);
            let retain = seq.options.retain_prefix_tokens.min(seq.prompt_len);
            if retain >= self.config.block_size {
                let pinned = self.index.pin(&seq.tokens[..retain]);
                let covered = seq.tokens[..pinned * self.config.block_size].to_vec();
                self.retained.push((seq.id, covered));
            }
        }
        seq.release_blocks();
        if reason == FinishReason::Cancelled {
            self.stats.cancelled += 1;
        } else {
            self.stats.finished += 1;
        }
        // Whoever reads `Finished` sees stats that already count it (and its freed blocks).
        self.publish_stats();
        let _ = seq.events.send(SequenceEvent::Finished {
            usage: Usage {
                prompt_tokens: seq.prompt_len,
                cached_tokens: seq.cached_tokens,
                completion_tokens: seq.generated(),
            },
            text: seq.stream.text(cut),
            reason,
        });
    }

    fn publish_stats(&mut self) {
        self.stats.running = self.running.len() + self.preempted.len();
        self.stats.kv_blocks_used = self.pool.used();
        self.stats.kv_blocks_cached = self.index.cached_blocks();
        let mut shared = lock(&self.shared.stats);
        let waiting = shared.waiting;
        *shared = self.stats;
        shared.waiting = waiting;
    }
}

/// Samples `seq`'s next token from `logits` (with the tokens its constraint then forces),
/// streams it, and says whether the sequence ends (with the stop string's byte offset when one
/// ended it). Mirrors `Engine::generate_streaming`.
fn sample(
    engine: &Engine,
    seq: &mut Active,
    logits: &[f32],
    scratch: &mut Vec<f32>,
) -> Result<Option<(FinishReason, Option<usize>)>, Error> {
    let tokenizer = engine.tokenizer();
    let (token, sampled) = next_token(
        &mut seq.sampler,
        seq.guide.as_mut(),
        logits,
        &seq.logit_bias,
        scratch,
        seq.logprobs,
    )?;
    let end_of_generation = tokenizer.is_end_of_generation(token);
    let start = seq.tokens.len();
    seq.tokens.push(token);
    let room = seq.max_tokens - seq.generated();
    let committed = commit(seq.guide.as_mut(), token, end_of_generation, room)?;
    let complete = committed.complete;
    let logprobs = step_logprobs(
        sampled,
        &committed.forced,
        seq.logprobs.unwrap_or(0),
        end_of_generation,
    );
    seq.tokens.extend(committed.forced);
    if !end_of_generation {
        for &t in &seq.tokens[start..] {
            tokenizer.append_token_bytes(t, false, seq.stream.bytes_mut())?;
        }
    }
    let stop = seq.stream.find_stop();
    let last = end_of_generation || complete || stop.is_some() || seq.generated() >= seq.max_tokens;
    if last && !end_of_generation && !complete {
        let generated = seq.generated();
        ensure_complete(seq.guide.as_mut(), stop.is_some(), generated)?;
    }
    let text = if last {
        seq.stream.finish(stop.map(|(_, at)| at))
    } else {
        seq.stream.take_ready()
    };
    let _ = seq.events.send(SequenceEvent::Token {
        token,
        text,
        logprobs,
    });
    Ok(if end_of_generation || complete {
        Some((FinishReason::EndOfGeneration, None))
    } else if let Some((index, at)) = stop {
        Some((FinishReason::Stop(index), Some(at)))
    } else if last {
        Some((FinishReason::Length, None))
    } else {
        None
    })
}

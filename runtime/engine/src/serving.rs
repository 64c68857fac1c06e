//! The serving engine: many concurrent generation requests over one loaded model.
//!
//! [`ServingEngine`] is a cheap, cloneable handle to a scheduler thread that owns all mutable
//! serving state (the waiting queue, running sequences, KV blocks). Callers [`submit`] a request
//! and get a [`Sequence`]: a stream of [`SequenceEvent`]s that ends with `Finished` or `Failed`.
//! Dropping the `Sequence` (or calling [`Sequence::cancel`]) cancels it; the scheduler frees its
//! resources at the next step. Admission is bounded: past `max_waiting` queued requests, `submit`
//! answers [`SubmitError::Overloaded`] at once instead of queueing without limit.
//!
//! Waiting requests are admitted earliest deadline first (no deadline sorts last, ties in
//! arrival order). The scheduler runs steps of continuous batching (see [`scheduler`]): each
//! forward pass carries one decode token of every running sequence plus chunks of pending
//! prompts, up to `step_token_budget` tokens, over a paged KV cache whose blocks are shared
//! between requests with a common prompt prefix.
//!
//! [`submit`]: ServingEngine::submit

mod scheduler;

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::engine::{Engine, FinishReason, GenerateRequest};
use crate::error::Error;
use crate::sampling::TokenLogprob;

/// How the serving engine batches, caches and admits work.
#[derive(Clone, Debug, PartialEq)]
pub struct ServingConfig {
    /// Requests that may wait for a slot; one more is refused with `Overloaded`.
    pub max_waiting: usize,
    /// Sequences that may be running (holding KV) at once.
    pub max_running: usize,
    /// Most tokens (prefill chunks plus decodes) in one forward pass.
    pub step_token_budget: usize,
    /// KV cache memory, in MiB.
    pub kv_cache_mib: usize,
    /// Tokens per KV block.
    pub block_size: usize,
    /// Reuse cached KV of common prompt prefixes across requests.
    pub prefix_caching: bool,
    /// Run several sequences in one forward pass; off runs one request at a time.
    pub batching: bool,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            max_waiting: 256,
            max_running: 16,
            step_token_budget: 512,
            kv_cache_mib: 512,
            block_size: 16,
            prefix_caching: true,
            batching: true,
        }
    }
}

/// Per-request scheduling hints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// When the result is needed; earlier deadlines are served first.
    pub deadline: Option<Instant>,
    /// Retention hint: keep the KV of this many leading prompt tokens (whole blocks of them)
    /// cached after the sequence ends, safe from eviction, until
    /// [`ServingEngine::release_retained`] is called with the sequence's id. For a prefix that a
    /// later step of the same workflow run will reuse. 0 retains nothing.
    pub retain_prefix_tokens: usize,
}

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the server is overloaded: {waiting} requests are already waiting; retry later")]
    Overloaded { waiting: usize },
    #[error("the serving engine has shut down")]
    ShutDown,
    #[error(transparent)]
    Invalid(#[from] Error),
}

/// Token counts of a finished sequence, as the OpenAI API reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

/// What happened to a sequence, in order: `Started`, any number of `Token`s, then one of
/// `Finished` or `Failed`.
#[derive(Debug)]
pub enum SequenceEvent {
    /// The sequence left the queue and its prompt is being processed.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
        queued: Duration,
    },
    /// One sampled token and the text that became final with it (may be empty), with the
    /// log-probabilities of it and the tokens the constraint forced after it when the request
    /// asked for them.
    Token {
        token: u32,
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Finished {
        reason: FinishReason,
        usage: Usage,
        /// The whole generated text (the `Token` texts concatenated).
        text: String,
    },
    Failed(Error),
}

/// Counters and gauges for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServingStats {
    pub waiting: usize,
    pub running: usize,
    /// KV blocks in use: held by running sequences or by the prefix cache.
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
    /// KV blocks the prefix cache holds (some may also be in use by running sequences).
    pub kv_blocks_cached: usize,
    /// Sequences whose KV was freed under memory pressure, to be recomputed later.
    pub preemptions: u64,
    /// Forward passes run, and the tokens they carried (prefill chunks plus decodes).
    pub steps: u64,
    pub step_tokens: u64,
    /// Prompt tokens looked up in the prefix cache, and how many of them were found.
    pub prefix_query_tokens: u64,
    pub prefix_hit_tokens: u64,
    pub finished: u64,
    pub cancelled: u64,
    pub failed: u64,
}

/// A submitted request: read its events; drop it to cancel.
#[derive(Debug)]
pub struct Sequence {
    id: u64,
    events: mpsc::UnboundedReceiver<SequenceEvent>,
    cancelled: Arc<AtomicBool>,
}

impl Sequence {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; `None` after the last one.
    pub async fn next(&mut self) -> Option<SequenceEvent> {
        self.events.recv().await
    }

    /// The next event, blocking the thread (not for async code).
    pub fn blocking_next(&mut self) -> Option<SequenceEvent> {
        self.events.blocking_recv()
    }

    /// Stops the sequence; it ends with `Finished { reason: Cancelled }` if it had started.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A handle to the serving engine; clones share it.
#[derive(Clone)]
pub struct ServingEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ServingEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingEngine")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

struct Shared {
    engine: Arc<Engine>,
    config: ServingConfig,
    next_id: AtomicU64,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Requests the scheduler has taken from `queue` that have not started yet (they count
    /// against `max_waiting` too).
    waiting: AtomicUsize,
    stats: Mutex<ServingStats>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Queue {
    pending: BinaryHeap<Pending>,
    /// Sequence ids whose retained prefix may be released.
    released: Vec<u64>,
    shut_down: bool,
}

struct Pending {
    id: u64,
    request: GenerateRequest,
    options: SubmitOptions,
    submitted: Instant,
    events: mpsc::UnboundedSender<SequenceEvent>,
    cancelled: Arc<AtomicBool>,
}

impl Pending {
    /// Larger is served first: earlier deadline, then earlier submission.
    fn key(
        &self,
    ) -> (
        std::cmp::Reverse<(bool, Option<Instant>)>,
        std::cmp::Reverse<u64>,
    ) {
        (
            std::cmp::Reverse((self.options.deadline.is_none(), self.options.deadline)),
            std::cmp::Reverse(self.id),
        )
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl ServingEngine {
    /// Starts the scheduler thread over `engine`.
    pub fn start(engine: Arc<Engine>, config: ServingConfig) -> Result<Self, Error> {
        if config.max_running == 0 || config.step_token_budget == 0 || config.block_size == 0 {
            return Err(Error::InvalidRequest(
                "serving config: max_running, step_token_budget and block_size must be > 0"
                    .to_owned(),
            ));
        }
        let blocks = scheduler::kv_blocks(&engine, &config);
        if blocks == 0 {
            return Err(Error::InvalidRequest(format!(
                "serving config: kv_cache_mib = {} holds no KV block of {} positions ({} bytes); \
                 raise kv_cache_mib or lower block_size",
                config.kv_cache_mib,
                config.block_size,
                engine.model().kv_block_bytes(config.block_size)
            )));
        }
        let shared = Arc::new(Shared {
            engine,
            config,
            next_id: AtomicU64::new(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            waiting: AtomicUsize::new(0),
            stats: Mutex::new(ServingStats {
                kv_blocks_total: blocks,
                ..ServingStats::default()
            }),
            worker: Mutex::new(None),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("agentc-scheduler".to_owned())
                .spawn(move || scheduler::run(&shared))
                .map_err(|e| Error::InvalidRequest(format!("cannot start the scheduler: {e}")))?
        };
        *lock(&shared.worker) = Some(worker);
        Ok(Self { shared })
    }

    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    pub fn config(&self) -> &ServingConfig {
        &self.shared.config
    }

    /// Queues `request`; refuses it at once when `max_waiting` requests already wait.
    pub fn submit(
        &self,
        request: GenerateRequest,
        options: SubmitOptions,
    ) -> Result<Sequence, SubmitError> {
        let shared = &self.shared;
        let mut queue = lock(&shared.queue);
        if queue.shut_down {
            return Err(SubmitError::ShutDown);
        }
        let waiting = queue.pending.len() + shared.waiting.load(Ordering::Relaxed);
        if waiting >= shared.config.max_waiting {
            tracing::warn!(waiting, "request rejected: the serving queue is full");
            return Err(SubmitError::Overloaded { waiting });
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        queue.pending.push(Pending {
            id,
            request,
            options,
            submitted: Instant::now(),
            events: sender,
            cancelled: Arc::clone(&cancelled),
        });
        drop(queue);
        shared.wake.notify_one();
        Ok(Sequence {
            id,
            events: receiver,
            cancelled,
        })
    }

    /// Ends the retention hint of sequence `id` (see [`SubmitOptions::retain_prefix_tokens`]):
    /// its prefix's blocks become evictable again. Unknown ids are ignored.
    pub fn release_retained(&self, id: u64) {
        lock(&self.shared.queue).released.push(id);
        self.shared.wake.notify_one();
    }

    pub fn stats(&self) -> ServingStats {
        let mut stats = *lock(&self.shared.stats);
        let queued = lock(&self.shared.queue).pending.len();
        stats.waiting = queued + self.shared.waiting.load(Ordering::Relaxed);
        stats
    }

    /// Stops taking requests, lets the running ones finish and joins the scheduler thread.
    /// Requests still waiting fail with a shut-down error.
    pub fn shutdown(&self) {
        lock(&self.shared.queue).shut_down = true;
        self.shared.wake.notify_all();
        if let Some(worker) = lock(&self.shared.worker).take() {
            // A panicking scheduler has already reported through its sequences' channels.
            let _ = worker.join();
        }
    }
}

/// Locks `mutex`, recovering the data if a holder panicked (the state stays consistent: every
/// critical section here is a few plain assignments).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

//! The serving engine: many concurrent generation requests over one loaded model.
//!
//! [`ServingEngine`] is a cheap, cloneable handle to a scheduler thread that owns all mutable
//! serving state (the waiting queue, running sequences, KV blocks). Callers [`submit`] a request
//! and get a [`Sequence`]: a stream of [`SequenceEvent`]s that ends with `Finished` or `Failed`.
//! Dropping the `Sequence` (or calling [`Sequence::cancel`]) cancels it; the scheduler frees its
//! resources at the next step. Admission is bounded: past `max_waiting` queued requests, `submit`
//! answers [`SubmitError::Overloaded`] at once instead of queueing without limit.
//!
//! Waiting requests are served earliest deadline first (no deadline sorts last, ties in arrival
//! order).
//!
//! [`submit`]: ServingEngine::submit

use std::collections::BinaryHeap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::engine::{Engine, FinishReason, GenerateRequest, Prompt};
use crate::error::Error;

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
    /// One generated token and the text that became final with it (may be empty).
    Token {
        token: u32,
        text: String,
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
    pub kv_blocks_used: usize,
    pub kv_blocks_total: usize,
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
    waiting: AtomicUsize,
    stats: Mutex<ServingStats>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Queue {
    pending: BinaryHeap<Pending>,
    shut_down: bool,
}

struct Pending {
    id: u64,
    request: GenerateRequest,
    deadline: Option<Instant>,
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
            std::cmp::Reverse((self.deadline.is_none(), self.deadline)),
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
        let shared = Arc::new(Shared {
            engine,
            config,
            next_id: AtomicU64::new(1),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            waiting: AtomicUsize::new(0),
            stats: Mutex::new(ServingStats::default()),
            worker: Mutex::new(None),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("agentc-scheduler".to_owned())
                .spawn(move || run_scheduler(&shared))
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
        let waiting = queue.pending.len();
        if waiting >= shared.config.max_waiting {
            return Err(SubmitError::Overloaded { waiting });
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = mpsc::unbounded_channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        queue.pending.push(Pending {
            id,
            request,
            deadline: options.deadline,
            submitted: Instant::now(),
            events: sender,
            cancelled: Arc::clone(&cancelled),
        });
        shared.waiting.store(queue.pending.len(), Ordering::Relaxed);
        drop(queue);
        shared.wake.notify_one();
        Ok(Sequence {
            id,
            events: receiver,
            cancelled,
        })
    }

    pub fn stats(&self) -> ServingStats {
        let mut stats = *lock(&self.shared.stats);
        stats.waiting = self.shared.waiting.load(Ordering::Relaxed);
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

/// The scheduler loop: one request at a time, earliest deadline first.
fn run_scheduler(shared: &Shared) {
    loop {
        let next = {
            let mut queue = lock(&shared.queue);
            loop {
                if let Some(next) = queue.pending.pop() {
                    shared.waiting.store(queue.pending.len(), Ordering::Relaxed);
                    break Some(next);
                }
                if queue.shut_down {
                    break None;
                }
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        let Some(next) = next else { return };
        if lock(&shared.queue).shut_down {
            let _ = next
                .events
                .send(SequenceEvent::Failed(Error::InvalidRequest(
                    "the serving engine shut down before this request started".to_owned(),
                )));
            continue;
        }
        serve_one(shared, next);
    }
}

fn serve_one(shared: &Shared, pending: Pending) {
    let Pending {
        mut request,
        submitted,
        events,
        cancelled,
        ..
    } = pending;
    if cancelled.load(Ordering::Acquire) {
        lock(&shared.stats).cancelled += 1;
        return;
    }
    let fail = |error: Error| {
        lock(&shared.stats).failed += 1;
        let _ = events.send(SequenceEvent::Failed(error));
    };
    let prompt_tokens = match shared.engine.prompt_tokens(&request.prompt) {
        Ok(tokens) => tokens,
        Err(error) => return fail(error),
    };
    let _ = events.send(SequenceEvent::Started {
        prompt_tokens: prompt_tokens.len(),
        cached_tokens: 0,
        queued: submitted.elapsed(),
    });
    request.prompt = Prompt::Tokens(prompt_tokens);
    lock(&shared.stats).running = 1;
    let outcome = shared.engine.generate_streaming(&request, |event| {
        let _ = events.send(SequenceEvent::Token {
            token: event.token,
            text: event.text.to_owned(),
        });
        if cancelled.load(Ordering::Acquire) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    lock(&shared.stats).running = 0;
    match outcome {
        Ok(generation) => {
            {
                let mut stats = lock(&shared.stats);
                if generation.finish_reason == FinishReason::Cancelled {
                    stats.cancelled += 1;
                } else {
                    stats.finished += 1;
                }
                stats.prefix_query_tokens += generation.prompt_tokens.len() as u64;
            }
            let _ = events.send(SequenceEvent::Finished {
                reason: generation.finish_reason,
                usage: Usage {
                    prompt_tokens: generation.prompt_tokens.len(),
                    cached_tokens: 0,
                    completion_tokens: generation.tokens.len(),
                },
                text: generation.text,
            });
        }
        Err(error) => fail(error),
    }
}

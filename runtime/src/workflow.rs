//! Running a compiled plan: the workflow executor.
//!
//! Each run walks the plan's functions as a dataflow graph: every op is a future that waits for
//! its operands, so independent ops (five sampled chains, six judge calls, a map's elements) run
//! at once and meet in the serving engine, which batches their forward passes and shares their
//! cached prompt prefixes. Every op gets a deadline: the run's (arrival + the SLA's p95) minus
//! the predicted time of the longest chain still to run after it, and the engine serves
//! earliest deadline first. The first failing op fails the run with its node's name; the other
//! ops of that run are dropped, which cancels their LLM sequences and frees their KV blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared, try_join_all};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::embed::EmbeddingModel;
use crate::engine::{GenerateRequest, Prompt};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::plan::{Function, Op, OpKind, Program};
use crate::serving::ServingEngine;
use crate::tools::ToolRouter;
use crate::value::{Condition, Doc, Value, render_template, template_value};
use agentc_model::ChatMessage;

mod llm;
mod setup;

use llm::RemoteLlm;
pub use llm::parse_model_json;

/// What the executor reports while a run progresses (for live progress and SSE).
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    NodeStarted {
        node: String,
    },
    /// Text an LLM node produced (may be empty).
    Token {
        node: String,
        text: String,
    },
    NodeFinished {
        node: String,
        elapsed: Duration,
    },
}

/// Per op kind: how many ran, their measured and predicted time.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct OpKindStats {
    pub count: usize,
    pub measured_ms: f64,
    pub predicted_ms: f64,
}

/// What the LLM calls of one workflow node did in a run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlmNodeStats {
    pub calls: usize,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RunStats {
    pub elapsed_ms: f64,
    pub sla_ms: f64,
    pub llm_calls: usize,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub by_kind: std::collections::BTreeMap<String, OpKindStats>,
    /// Per LLM node: calls and tokens (what the simulator replays as the run's shape).
    pub llm_nodes: std::collections::BTreeMap<String, LlmNodeStats>,
}

impl RunStats {
    pub fn met_sla(&self) -> bool {
        self.elapsed_ms <= self.sla_ms
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// Output name -> value, sorted by name.
    pub outputs: serde_json::Map<String, Json>,
    pub stats: RunStats,
}

/// A failure inside a run: which node, and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeError {
    pub node: String,
    pub message: String,
}

impl NodeError {
    fn new(op: &Op, message: impl Into<String>) -> Self {
        Self {
            node: op.node.clone(),
            message: message.into(),
        }
    }
}

impl From<NodeError> for Error {
    fn from(e: NodeError) -> Self {
        Error::Workflow {
            node: e.node,
            message: e.message,
        }
    }
}

/// What flows along a plan's edges: workflow values, and the LLM pipeline's intermediate
/// token ids, KV handle and generated text.
#[derive(Clone, Debug)]
enum Datum {
    Value(Value),
    Tokens(Arc<Vec<u32>>),
    Kv(Arc<Kv>),
    Generated(Arc<str>),
    /// The result of an op with none (`exec.output`).
    Unit,
}

/// A prefill's result: the prompt to run. Decodes forked from one prefill (the compiler's CSE of
/// identical prompts) each submit it; the serving engine computes the shared blocks once and
/// the others find them in its prefix cache.
#[derive(Debug)]
struct Kv {
    tokens: Arc<Vec<u32>>,
    /// The prefill's predicted time, reported with the decode that runs it.
    predicted_ms: f64,
    /// Tokens of a prefix other calls of the run share: kept cached until the run ends.
    retain_tokens: usize,
}

impl Kv {
    fn new(tokens: Arc<Vec<u32>>, predicted_ms: f64, retain_tokens: usize) -> Self {
        Self {
            tokens,
            predicted_ms,
            retain_tokens,
        }
    }
}

type Slot<'a> = Shared<BoxFuture<'a, std::result::Result<Datum, NodeError>>>;

/// Runs one plan, any number of times concurrently.
pub struct WorkflowRunner {
    program: Arc<Program>,
    /// LLM model name -> its serving engine (several names may share one).
    llms: HashMap<String, ServingEngine>,
    /// Embedding model name -> the loaded model.
    embedders: HashMap<String, Arc<EmbeddingModel>>,
    indexes: HashMap<String, Arc<Index>>,
    tools: ToolRouter,
    /// When set, LLM calls go to this OpenAI-compatible server instead, one at a time per run
    /// (the plain-orchestrator baseline the benchmarks compare against).
    remote: Option<RemoteLlm>,
}

impl std::fmt::Debug for WorkflowRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowRunner")
            .field("workflow", &self.program.name)
            .finish_non_exhaustive()
    }
}

/// Per-run state shared by its ops.
struct RunCtx {
    outputs: Mutex<Vec<(String, Json)>>,
    /// Held around each remote LLM call: a plain orchestrator makes one call at a time.
    sequential: tokio::sync::Mutex<()>,
    /// Sequences whose shared prefix is pinned until the run ends.
    retained: Mutex<Vec<(ServingEngine, u64)>>,
    stats: Mutex<RunStats>,
    events: Option<mpsc::UnboundedSender<RunEvent>>,
}

impl Drop for RunCtx {
    /// The run is over (finished, failed or dropped): its shared prefixes may be evicted.
    fn drop(&mut self) {
        for (serving, id) in lock(&self.retained).drain(..) {
            serving.release_retained(id);
        }
    }
}

impl RunCtx {
    fn emit(&self, event: RunEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }
}

impl WorkflowRunner {
    /// Sends every LLM call to the OpenAI-compatible server at `base_url` (up to and including
    /// `/v1`) as prompt text on `/completions`, one call at a time within a run, the way a plain
    /// orchestrator walks a workflow. Templates and tokenization still run here.
    pub fn with_remote_llm(mut self, base_url: &str) -> Self {
        self.remote = Some(RemoteLlm {
            client: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        });
        self
    }

    /// The tool router, with its per-tool counters (for `/metrics`).
    pub fn tools(&self) -> &ToolRouter {
        &self.tools
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    /// Runs the workflow once on `inputs`, sending progress to `events` if given. Logs the
    /// run's start and end (callers put the run's id in a span around it).
    pub async fn run(
        &self,
        inputs: &serde_json::Map<String, Json>,
        events: Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<RunOutcome> {
        let workflow = self.program.name.as_str();
        tracing::info!(workflow, "run started");
        let result = self.run_logged(inputs, events).await;
        match &result {
            Ok(outcome) => tracing::info!(
                workflow,
                elapsed_ms = outcome.stats.elapsed_ms.round(),
                "run finished"
            ),
            Err(error) => tracing::warn!(workflow, %error, "run failed"),
        }
        result
    }

    async fn run_logged(
        &self,
        inputs: &serde_json::Map<String, Json>,
        events: Option<mpsc::UnboundedSender<RunEvent>>,
    ) -> Result<RunOutcome> {
        let inputs = self.input_values(inputs)?;
        let started = Instant::now();
        let sla = Duration::from_secs_f64(self.program.sla_p95_ms() / 1000.0);
        let ctx = RunCtx {
            outputs: Mutex::new(Vec::new()),
            retained: Mutex::new(Vec::new()),
            sequential: tokio::sync::Mutex::new(()),
            stats: Mutex::new(RunStats {
                sla_ms: self.program.sla_p95_ms(),
                ..RunStats::default()
            }),
            events,
        };
        let run = Run {
            runner: self,
            ctx: &ctx,
            inputs: &inputs,
        };
        run.call(&self.program.main, Vec::new(), started + sla)
            .await?;
        let mut stats = lock(&ctx.stats).clone();
        stats.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outputs = std::mem::take(&mut *lock(&ctx.outputs))
            .into_iter()
            .collect();
        Ok(RunOutcome { outputs, stats })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One run in progress.
#[derive(Clone, Copy)]
struct Run<'a> {
    runner: &'a WorkflowRunner,
    ctx: &'a RunCtx,
    inputs: &'a HashMap<String, Value>,
}

impl<'a> Run<'a> {
    /// Runs `func` on `args` and returns its results; `deadline` is when its results are due.
    fn call(
        self,
        func: &'a Function,
        args: Vec<Value>,
        deadline: Instant,
    ) -> BoxFuture<'a, std::result::Result<Vec<Value>, NodeError>> {
        async move {
            let n_values = func.n_args + func.ops.iter().filter(|o| o.result.is_some()).count();
            let mut slots: Vec<Option<Slot<'a>>> = vec![None; n_values];
            for (i, arg) in args.into_iter().enumerate() {
                slots[i] = Some(
                    futures::future::ready(Ok(Datum::Value(arg)))
                        .boxed()
                        .shared(),
                );
            }
            let mut all = Vec::with_capacity(func.ops.len());
            for (i, op) in func.ops.iter().enumerate() {
                let operands: Vec<Slot<'a>> = op
                    .operands
                    .iter()
                    .map(|&v| {
                        slots[v].clone().ok_or_else(|| {
                            NodeError::new(op, format!("operand %{v} has no producer"))
                        })
                    })
                    .collect::<std::result::Result<_, _>>()?;
                let op_deadline = deadline
                    .checked_sub(Duration::from_secs_f64(func.tail_ms[i] / 1000.0))
                    .unwrap_or(deadline);
                let slot: Slot<'a> = async move {
                    let operands = try_join_all(operands).await?;
                    self.timed(op, operands, op_deadline).await
                }
                .boxed()
                .shared();
                if let Some(r) = op.result {
                    slots[r] = Some(slot.clone());
                }
                all.push(slot);
            }
            // Drive every op (outputs have no users) and fail on the first error.
            try_join_all(all).await?;
            let mut results = Vec::with_capacity(func.returns.len());
            for &r in &func.returns {
                let slot = slots[r].clone().ok_or_else(|| NodeError {
                    node: func.name.clone(),
                    message: format!("returned value %{r} has no producer"),
                })?;
                results.push(value(slot.await?, &func.name)?);
            }
            Ok(results)
        }
        .boxed()
    }

    async fn timed(
        self,
        op: &'a Op,
        operands: Vec<Datum>,
        deadline: Instant,
    ) -> std::result::Result<Datum, NodeError> {
        let started = Instant::now();
        let reported = matches!(
            op.kind,
            OpKind::Decode { .. } | OpKind::Embed { .. } | OpKind::Knn { .. } | OpKind::Tool { .. }
        );
        if reported {
            self.ctx.emit(RunEvent::NodeStarted {
                node: op.node.clone(),
            });
        }
        // An LLM call is predicted as its prefill plus its decode.
        let predicted_ms = op.predicted_ms
            + match operands.first() {
                Some(Datum::Kv(kv)) => kv.predicted_ms,
                _ => 0.0,
            };
        let result = self.execute(op, operands, deadline).await?;
        let elapsed = started.elapsed();
        if reported {
            self.ctx.emit(RunEvent::NodeFinished {
                node: op.node.clone(),
                elapsed,
            });
        }
        let kind = kind_name(&op.kind);
        if !kind.is_empty() {
            let mut stats = lock(&self.ctx.stats);
            let entry = stats.by_kind.entry(kind.to_owned()).or_default();
            entry.count += 1;
            entry.measured_ms += elapsed.as_secs_f64() * 1000.0;
            entry.predicted_ms += predicted_ms;
        }
        Ok(result)
    }

    async fn execute(
        self,
        op: &'a Op,
        operands: Vec<Datum>,
        deadline: Instant,
    ) -> std::result::Result<Datum, NodeError> {
        let fail = |message: String| NodeError::new(op, message);
        let values = || -> std::result::Result<Vec<Value>, NodeError> {
            operands
                .iter()
                .map(|d| value(d.clone(), &op.node))
                .collect()
        };
        Ok(match &op.kind {
            OpKind::Input(decl) => Datum::Value(
                self.inputs
                    .get(&decl.name)
                    .cloned()
                    .ok_or_else(|| fail(format!("input `{}` was not given", decl.name)))?,
            ),
            OpKind::Render {
                template,
                messages,
                model,
            } => {
                let values = values()?;
                if messages.is_empty() {
                    Datum::Value(Value::Text(
                        render_template(template, &values).map_err(fail)?,
                    ))
                } else {
                    let messages = messages
                        .iter()
                        .map(|(role, content)| {
                            render_template(content, &values).map(|c| ChatMessage::new(role, &c))
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(fail)?;
                    let engine = self.llm(op, model)?.engine();
                    Datum::Value(Value::Text(
                        engine
                            .render_chat(&messages)
                            .map_err(|e| fail(e.to_string()))?,
                    ))
                }
            }
            OpKind::Tokenize { model } => {
                let text = values()?.pop().map(|v| v.render()).unwrap_or_default();
                let engine = self.llm(op, model)?.engine();
                let tokens = engine
                    .prompt_tokens(&Prompt::Text(text))
                    .map_err(|e| fail(e.to_string()))?;
                Datum::Tokens(Arc::new(tokens))
            }
            OpKind::Prefill { prefix_tokens, .. } => match operands.into_iter().next() {
                Some(Datum::Tokens(tokens)) => {
                    let retain = (*prefix_tokens).min(tokens.len());
                    Datum::Kv(Arc::new(Kv::new(tokens, op.predicted_ms, retain)))
                }
                other => return Err(fail(format!("prefill expects token ids, got {other:?}"))),
            },
            OpKind::Decode {
                model,
                max_tokens,
                sampling,
                stop,
                constraint,
            } => {
                let Some(Datum::Kv(kv)) = operands.into_iter().next() else {
                    return Err(fail("decode expects a prefill's KV".to_owned()));
                };
                let request = GenerateRequest {
                    logit_bias: Vec::new(),
                    logprobs: None,
                    constraint: constraint.clone(),
                    prompt: Prompt::Tokens(kv.tokens.as_ref().clone()),
                    max_tokens: *max_tokens,
                    sampling: sampling.clone(),
                    stop: stop.clone(),
                };
                match &self.runner.remote {
                    Some(remote) => {
                        let _one_at_a_time = self.ctx.sequential.lock().await;
                        let tokenizer = self.llm(op, model)?.engine().tokenizer();
                        self.remote_decode(op, remote, tokenizer, request).await?
                    }
                    None => {
                        let serving = self.llm(op, model)?;
                        self.decode(op, serving, request, &kv, deadline).await?
                    }
                }
            }
            OpKind::Detokenize { json } => {
                let Some(Datum::Generated(text)) = operands.into_iter().next() else {
                    return Err(fail("detokenize expects a decode's output".to_owned()));
                };
                if *json {
                    Datum::Value(Value::Json(parse_model_json(&text).map_err(fail)?))
                } else {
                    Datum::Value(Value::Text(text.to_string()))
                }
            }
            OpKind::Embed { model } => {
                let text = values()?.pop().map(|v| v.render()).unwrap_or_default();
                let embedder = self
                    .runner
                    .embedders
                    .get(model)
                    .cloned()
                    .ok_or_else(|| fail(format!("no embedding model `{model}` was loaded")))?;
                let mut vectors = tokio::task::spawn_blocking(move || embedder.embed(&[&text]))
                    .await
                    .map_err(|e| fail(format!("the embedding task failed: {e}")))?
                    .map_err(|e| fail(e.to_string()))?;
                let vector = vectors
                    .pop()
                    .ok_or_else(|| fail("the embedding model returned no vector".to_owned()))?;
                Datum::Value(Value::Vec(Arc::new(vector)))
            }
            OpKind::Knn { index, k } => {
                let Some(Value::Vec(query)) = values()?.pop() else {
                    return Err(fail("knn expects an embedding vector".to_owned()));
                };
                let index = self
                    .runner
                    .indexes
                    .get(index)
                    .ok_or_else(|| fail(format!("no index `{index}` was loaded")))?;
                let hits = index.search(&query, *k).map_err(|e| fail(e.to_string()))?;
                Datum::Value(Value::Docs(
                    hits.into_iter()
                        .map(|h| Doc {
                            id: h.id,
                            text: h.text,
                            score: h.score,
                            source: h.source,
                        })
                        .collect(),
                ))
            }
            OpKind::Tool { tool, args } => {
                let values = values()?;
                let mut arguments = serde_json::Map::new();
                for (name, arg) in args {
                    let value = match arg {
                        Json::String(template) => {
                            template_value(template, &values).map_err(&fail)?.to_json()
                        }
                        literal => literal.clone(),
                    };
                    arguments.insert(name.clone(), value);
                }
                let call = self
                    .runner
                    .tools
                    .call(tool, &Json::Object(arguments))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                match call.value {
                    Json::String(text) if self.tool_outputs_text(tool) => {
                        Datum::Value(Value::Text(text))
                    }
                    json => Datum::Value(Value::Json(json)),
                }
            }
            OpKind::JsonExtract { template, path } => {
                let source = template_value(template, &values()?).map_err(fail)?;
                let source = match source {
                    Value::Text(text) => Value::Json(parse_model_json(&text).map_err(fail)?),
                    other => other,
                };
                Datum::Value(source.field(path).map_err(fail)?)
            }
            OpKind::JsonObject { fields } => {
                let values = values()?;
                let mut object = serde_json::Map::new();
                for (name, template) in fields {
                    let v = template_value(template, &values).map_err(fail)?;
                    object.insert(name.clone(), v.to_json());
                }
                Datum::Value(Value::Json(Json::Object(object)))
            }
            OpKind::Transfer => operands
                .into_iter()
                .next()
                .ok_or_else(|| fail("transfer without a value".to_owned()))?,
            OpKind::Map {
                body,
                max_concurrency,
            } => {
                let mut values = values()?;
                if values.is_empty() {
                    return Err(fail("map without a list to map over".to_owned()));
                }
                let over = values.remove(0);
                let elements = over.elements().ok_or_else(|| {
                    fail(format!(
                        "map over a {} value; it needs a list, docs or a json array",
                        over.type_name()
                    ))
                })?;
                let body = self.function(op, body)?;
                let limit = match *max_concurrency {
                    0 => elements.len().max(1),
                    n => n,
                };
                let results: Vec<Value> = stream::iter(elements.into_iter().map(|element| {
                    let mut args = vec![element];
                    args.extend(values.iter().cloned());
                    self.call(body, args, deadline)
                        .map(|r| r.map(|mut out| out.swap_remove(0)))
                }))
                .buffered(limit)
                .try_collect()
                .await?;
                Datum::Value(Value::List(results))
            }
            OpKind::Branch {
                conditions,
                cases,
                default,
            } => {
                let values = values()?;
                let mut chosen = default;
                for (condition, case) in conditions.iter().zip(cases) {
                    if crate::value::evaluate(condition, &values).map_err(fail)? {
                        chosen = case;
                        break;
                    }
                }
                let body = self.function(op, chosen)?;
                let mut out = self.call(body, values, deadline).await?;
                Datum::Value(out.swap_remove(0))
            }
            OpKind::Loop {
                body,
                max_iters,
                carry_operands,
                until,
            } => {
                self.run_loop(
                    op,
                    values()?,
                    body,
                    *max_iters,
                    carry_operands,
                    until.as_ref(),
                    deadline,
                )
                .await?
            }
            OpKind::Output { name } => {
                let v = values()?
                    .pop()
                    .ok_or_else(|| fail("output without a value".to_owned()))?;
                lock(&self.ctx.outputs).push((name.clone(), v.to_json()));
                Datum::Unit
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_loop(
        self,
        op: &'a Op,
        operands: Vec<Value>,
        body: &str,
        max_iters: usize,
        carry_operands: &[usize],
        until: Option<&Condition>,
        deadline: Instant,
    ) -> std::result::Result<Datum, NodeError> {
        let fail = |message: String| NodeError::new(op, message);
        let body = self.function(op, body)?;
        let mut carry: Vec<Value> = carry_operands
            .iter()
            .map(|&i| {
                operands
                    .get(i)
                    .cloned()
                    .ok_or_else(|| fail(format!("carry operand {i} is missing")))
            })
            .collect::<std::result::Result<_, _>>()?;
        let mut output = None;
        for _ in 0..max_iters.max(1) {
            let mut args = carry.clone();
            args.extend(operands.iter().cloned());
            let mut results = self.call(body, args, deadline).await?;
            if results.len() < carry.len() + 1 {
                return Err(fail(format!(
                    "the loop body returned {} values, expected at least {}",
                    results.len(),
                    carry.len() + 1
                )));
            }
            let until_values = results.split_off(carry.len() + 1);
            output = results.pop();
            carry = results;
            if let Some(until) = until
                && crate::value::evaluate(until, &until_values).map_err(fail)?
            {
                break;
            }
        }
        output
            .map(Datum::Value)
            .ok_or_else(|| fail("the loop produced no output".to_owned()))
    }

    /// Whether `tool` is declared with `output: text`.
    fn tool_outputs_text(self, tool: &str) -> bool {
        self.runner
            .program
            .tools()
            .iter()
            .any(|t| t.name == tool && t.output == crate::tools::OutputFormat::Text)
    }

    fn llm(self, op: &Op, model: &str) -> std::result::Result<&'a ServingEngine, NodeError> {
        self.runner
            .llms
            .get(model)
            .ok_or_else(|| NodeError::new(op, format!("no LLM engine for model `{model}`")))
    }

    fn function(self, op: &Op, name: &str) -> std::result::Result<&'a Function, NodeError> {
        self.runner
            .program
            .function(name)
            .map_err(|e| NodeError::new(op, e.to_string()))
    }
}

fn value(datum: Datum, node: &str) -> std::result::Result<Value, NodeError> {
    match datum {
        Datum::Value(v) => Ok(v),
        other => Err(NodeError {
            node: node.to_owned(),
            message: format!("expected a workflow value, got {}", datum_name(&other)),
        }),
    }
}

fn datum_name(d: &Datum) -> &'static str {
    match d {
        Datum::Value(_) => "a value",
        Datum::Tokens(_) => "token ids",
        Datum::Kv(_) => "a KV cache",
        Datum::Generated(_) => "generated text",
        Datum::Unit => "nothing",
    }
}

/// The op kind's name in run statistics ("" for bookkeeping ops not worth reporting).
fn kind_name(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Render { .. } => "render",
        OpKind::Tokenize { .. } => "tokenize",
        OpKind::Decode { .. } => "llm",
        OpKind::Embed { .. } => "embed",
        OpKind::Knn { .. } => "knn",
        OpKind::Tool { .. } => "tool",
        OpKind::JsonExtract { .. } | OpKind::JsonObject { .. } => "json",
        _ => "",
    }
}

//! Workflow runs over HTTP: `POST /v1/workflows/{name}/runs` (a JSON result, or SSE events per
//! node and streamed tokens), `GET /v1/workflows`, `GET /v1/runs/{id}`, and the workflow and
//! tool counters of `/metrics`.
//!
//! A run is admitted only while fewer than `max_runs` are in flight (otherwise 429, like the
//! completions endpoints). A streaming run is a task whose abort handle the SSE stream owns: a
//! client that disconnects drops the stream, the task is aborted, and dropping the run cancels
//! its LLM sequences and frees their KV blocks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::auth::bearer;
use super::error::{ApiError, JsonBody};
use super::metrics;
use crate::error::Error;
use crate::workflow::{RunEvent, RunOutcome, WorkflowRunner};

/// Finished runs kept for `GET /v1/runs/{id}`; older ones are forgotten first.
const KEPT_RUNS: usize = 1000;
/// How long a finished run's record is kept by default (`agentc serve --run-retention`).
pub const DEFAULT_RUN_RETENTION: Duration = Duration::from_secs(3600);

/// The workflows a server runs, and its runs.
#[derive(Clone)]
pub struct WorkflowState {
    inner: Arc<WorkflowInner>,
}

struct WorkflowInner {
    runners: BTreeMap<String, Arc<WorkflowRunner>>,
    admission: Arc<Semaphore>,
    max_runs: usize,
    /// How long a finished run's record is kept.
    retention: Duration,
    runs: Mutex<RunTable>,
    counters: Mutex<BTreeMap<(String, &'static str), u64>>,
}

#[derive(Default)]
struct RunTable {
    records: HashMap<String, Json>,
    /// The API key that started each run (with keys configured): only it may read the run.
    owners: HashMap<String, String>,
    order: VecDeque<String>,
    /// Finished runs in the order they finished, with when.
    finished: VecDeque<(Instant, String)>,
}

impl RunTable {
    /// Forgets the runs that finished `retention` or longer ago.
    fn expire(&mut self, retention: Duration, now: Instant) {
        while let Some((at, _)) = self.finished.front() {
            if now.duration_since(*at) < retention {
                break;
            }
            if let Some((_, id)) = self.finished.pop_front() {
                self.forget(&id);
            }
        }
    }

    fn forget(&mut self, id: &str) {
        self.records.remove(id);
        self.owners.remove(id);
        self.order.retain(|kept| kept != id);
    }
}

impl std::fmt::Debug for WorkflowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkflowState")
            .field("workflows", &self.inner.runners.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl WorkflowState {
    /// Serves `runners` (by workflow name) with at most `max_runs` runs in flight, keeping
    /// finished runs' records for [`DEFAULT_RUN_RETENTION`].
    pub fn new(runners: Vec<WorkflowRunner>, max_runs: usize) -> Self {
        Self::with_retention(runners, max_runs, DEFAULT_RUN_RETENTION)
    }

    /// As [`WorkflowState::new`], keeping a finished run's record for `retention` (and at most
    /// the 1,000 most recent).
    pub fn with_retention(
        runners: Vec<WorkflowRunner>,
        max_runs: usize,
        retention: Duration,
    ) -> Self {
        let runners = runners
            .into_iter()
            .map(|r| (r.program().name.clone(), Arc::new(r)))
            .collect();
        Self {
            inner: Arc::new(WorkflowInner {
                runners,
                admission: Arc::new(Semaphore::new(max_runs)),
                max_runs,
                retention,
                runs: Mutex::new(RunTable::default()),
                counters: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn runner(&self, name: &str) -> Result<Arc<WorkflowRunner>, ApiError> {
        self.inner
            .runners
            .get(name)
            .cloned()
            .ok_or_else(|| ApiError::NotFound {
                param: "name",
                message: format!(
                    "no workflow `{name}`; this server runs: {}",
                    self.inner
                        .runners
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        Arc::clone(&self.inner.admission)
            .try_acquire_owned()
            .map_err(|_| {
                tracing::warn!(
                    max_runs = self.inner.max_runs,
                    "workflow run rejected: as many runs as --max-runs are in flight"
                );
                self.count("", "rejected");
                ApiError::Submit(crate::serving::SubmitError::Overloaded {
                    waiting: self.inner.max_runs,
                })
            })
    }

    fn count(&self, workflow: &str, what: &'static str) {
        *lock(&self.inner.counters)
            .entry((workflow.to_owned(), what))
            .or_default() += 1;
    }

    fn record(&self, id: &str, record: Json) {
        let now = Instant::now();
        let finished = record["status"] != "running";
        let mut table = lock(&self.inner.runs);
        table.expire(self.inner.retention, now);
        if table.records.insert(id.to_owned(), record).is_none() {
            table.order.push_back(id.to_owned());
        }
        if finished {
            table.finished.push_back((now, id.to_owned()));
        }
        while table.order.len() > KEPT_RUNS {
            if let Some(old) = table.order.pop_front() {
                table.records.remove(&old);
                table.owners.remove(&old);
            }
        }
    }

    fn finish(&self, id: &str, workflow: &str, result: &Result<RunOutcome, Error>) -> Json {
        let record = match result {
            Ok(outcome) => {
                self.count(workflow, "succeeded");
                json!({"id": id, "workflow": workflow, "status": "succeeded",
                       "outputs": outcome.outputs, "stats": outcome.stats})
            }
            Err(error) => {
                self.count(workflow, "failed");
                let mut record = json!({"id": id, "workflow": workflow, "status": "failed",
                                        "error": error.to_string()});
                if let Error::Workflow { node, .. } = error {
                    record["node"] = json!(node);
                }
                record
            }
        };
        self.record(id, record.clone());
        record
    }

    /// Adds the workflow-run and tool series to a `/metrics` scrape.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let runs = Family::<Labels, Counter>::default();
        for ((workflow, outcome), n) in lock(&self.inner.counters).iter() {
            runs.get_or_create(&vec![
                ("workflow", workflow.clone()),
                ("outcome", (*outcome).to_owned()),
            ])
            .inc_by(*n);
        }
        registry.register("agentc:workflow_runs", "Workflow runs by outcome", runs);
        let running = self.inner.max_runs - self.inner.admission.available_permits();
        registry.register(
            "agentc:workflow_runs_running",
            "Workflow runs in flight",
            metrics::gauge_at(running as f64),
        );
        // Labelled by workflow: two workflows may declare tools of the same name.
        let tools = Family::<Labels, Counter>::default();
        for (workflow, runner) in &self.inner.runners {
            for (tool, c) in runner.tools().metrics().snapshot() {
                let labels = |event: &str| {
                    vec![
                        ("workflow", workflow.clone()),
                        ("tool", tool.clone()),
                        ("event", event.to_owned()),
                    ]
                };
                for (event, n) in [
                    ("calls", c.calls),
                    ("successes", c.successes),
                    ("reroutes", c.reroutes),
                    ("breaker_opens", c.breaker_opens),
                ] {
                    tools.get_or_create(&labels(event)).inc_by(n);
                }
                for (kind, n) in &c.failures {
                    let mut labels = labels("failures");
                    labels.push(("kind", (*kind).to_owned()));
                    tools.get_or_create(&labels).inc_by(*n);
                }
            }
        }
        registry.register(
            "agentc:tool_events",
            "Tool calls, failures by kind, reroutes and circuit-breaker openings",
            tools,
        );
    }
}

/// Label pairs of a series, in the order they are written.
type Labels = Vec<(&'static str, String)>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The body of `POST /v1/workflows/{name}/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    #[serde(default)]
    pub inputs: serde_json::Map<String, Json>,
    #[serde(default)]
    pub stream: bool,
}

/// The workflow routes over `state`; merge them with [`super::router`].
pub fn workflow_router(state: WorkflowState) -> Router {
    Router::new()
        .route("/v1/workflows", get(list))
        .route("/v1/workflows/{name}/runs", post(start_run))
        .route("/v1/runs/{id}", get(get_run))
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .with_state(state)
}

async fn list(State(state): State<WorkflowState>) -> axum::Json<Json> {
    let data: Vec<Json> = state
        .inner
        .runners
        .values()
        .map(|r| {
            let p = r.program();
            json!({
                "name": p.name,
                "sla_p95_ms": p.sla_p95_ms(),
                "inputs": p.inputs.iter().map(|i| json!({"name": i.name, "type": i.ty})).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data}))
}

async fn get_run(
    State(state): State<WorkflowState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut table = lock(&state.inner.runs);
    table.expire(state.inner.retention, Instant::now());
    // A run started with a key is visible only with that key; to anyone else it does not exist.
    let visible = table
        .owners
        .get(&id)
        .is_none_or(|owner| bearer(&headers) == Some(owner.as_str()));
    match table.records.get(&id).filter(|_| visible) {
        Some(record) => axum::Json(record.clone()).into_response(),
        None => ApiError::NotFound {
            param: "id",
            message: format!(
                "no run `{id}` (finished runs are kept for {} s, and only the {KEPT_RUNS} most recent)",
                state.inner.retention.as_secs()
            ),
        }
        .into_response(),
    }
}

async fn start_run(
    State(state): State<WorkflowState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RunRequest>,
) -> Result<Response, ApiError> {
    let runner = state.runner(&name)?;
    runner
        .input_values(&request.inputs)
        .map_err(|e| ApiError::invalid("inputs", e.to_string()))?;
    let permit = state.admit()?;
    let id = run_id();
    if let Some(key) = bearer(&headers) {
        lock(&state.inner.runs)
            .owners
            .insert(id.clone(), key.to_owned());
    }
    state.record(
        &id,
        json!({"id": id, "workflow": name, "status": "running"}),
    );
    let span = tracing::info_span!("run", id = %id);
    if !request.stream {
        let mut guard = CancelledUnlessFinished::new(&state, &id, &name);
        let result = runner.run(&request.inputs, None).instrument(span).await;
        guard.finished = true;
        drop(permit);
        let record = state.finish(&id, &name, &result);
        return Ok(match result {
            Ok(_) => axum::Json(record).into_response(),
            Err(error) => {
                let mut body = ApiError::Runtime(error).body();
                body["id"] = json!(id);
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
            }
        });
    }
    let (events, receiver) = mpsc::unbounded_channel();
    let (done, done_receiver) = tokio::sync::oneshot::channel();
    let task = {
        let state = state.clone();
        let (id, name) = (id.clone(), name.clone());
        tokio::spawn(async move {
            let mut guard = CancelledUnlessFinished::new(&state, &id, &name);
            let result = runner
                .run(&request.inputs, Some(events))
                .instrument(span)
                .await;
            guard.finished = true;
            drop(permit);
            let _ = done.send(state.finish(&id, &name, &result));
        })
    };
    Ok(run_events(
        id,
        receiver,
        done_receiver,
        AbortOnDrop(task.abort_handle()),
    )
    .into_response())
}

/// `run-` and 32 random hex digits: ids cannot be guessed or enumerated.
fn run_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (never on Linux): fall back to the std hasher's random keys.
        use std::hash::BuildHasher;
        let state = std::hash::RandomState::new();
        let (a, b) = (state.hash_one(1u8), state.hash_one(2u8));
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("run-{hex}")
}

/// Records a run as cancelled if it is dropped before it finished (its client went away), so
/// that no record stays "running".
struct CancelledUnlessFinished {
    state: WorkflowState,
    id: String,
    workflow: String,
    finished: bool,
}

impl CancelledUnlessFinished {
    fn new(state: &WorkflowState, id: &str, workflow: &str) -> Self {
        Self {
            state: state.clone(),
            id: id.to_owned(),
            workflow: workflow.to_owned(),
            finished: false,
        }
    }
}

impl Drop for CancelledUnlessFinished {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        tracing::info!(id = %self.id, workflow = %self.workflow, "run cancelled: the client went away");
        self.state.count(&self.workflow, "cancelled");
        self.state.record(
            &self.id,
            json!({"id": self.id, "workflow": self.workflow, "status": "cancelled",
                   "error": "the client disconnected before the run finished"}),
        );
    }
}

/// Aborts the run's task when the stream that owns it is dropped (the client went away).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct EventState {
    events: mpsc::UnboundedReceiver<RunEvent>,
    done: Option<tokio::sync::oneshot::Receiver<Json>>,
    finished: bool,
    _guard: AbortOnDrop,
}

/// `event: run` (the id), `event: node` / `event: token` while it runs, then `event: result`
/// (the run record) and `data: [DONE]`.
fn run_events(
    id: String,
    events: mpsc::UnboundedReceiver<RunEvent>,
    done: tokio::sync::oneshot::Receiver<Json>,
    guard: AbortOnDrop,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = Event::default()
        .event("run")
        .data(json!({"id": id}).to_string());
    let state = EventState {
        events,
        done: Some(done),
        finished: false,
        _guard: guard,
    };
    let rest = futures::stream::unfold(state, |mut state| async move {
        if state.finished {
            return None;
        }
        if let Some(event) = state.events.recv().await {
            let event = match event {
                RunEvent::NodeStarted { node } => Event::default()
                    .event("node")
                    .data(json!({"node": node, "state": "running"}).to_string()),
                RunEvent::NodeFinished { node, elapsed } => Event::default().event("node").data(
                    json!({"node": node, "state": "done", "ms": elapsed.as_secs_f64() * 1000.0})
                        .to_string(),
                ),
                RunEvent::Token { node, text } => Event::default()
                    .event("token")
                    .data(json!({"node": node, "text": text}).to_string()),
            };
            return Some((Ok(event), state));
        }
        // The run dropped its event sender: it has finished.
        let record = match state.done.take() {
            Some(done) => done
                .await
                .unwrap_or_else(|_| json!({"status": "failed", "error": "the run was cancelled"})),
            None => return None,
        };
        state.finished = true;
        Some((
            Ok(Event::default().event("result").data(record.to_string())),
            state,
        ))
    });
    let done = futures::stream::once(async { Ok(Event::default().data("[DONE]")) });
    use futures::StreamExt;
    Sse::new(
        futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .chain(done),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished_table(ids: &[&str], at: Instant) -> RunTable {
        let mut table = RunTable::default();
        for id in ids {
            table
                .records
                .insert((*id).to_owned(), json!({"id": id, "status": "succeeded"}));
            table.owners.insert((*id).to_owned(), "key".to_owned());
            table.order.push_back((*id).to_owned());
            table.finished.push_back((at, (*id).to_owned()));
        }
        table
    }

    #[test]
    fn finished_runs_are_forgotten_after_the_retention() {
        let start = Instant::now();
        let mut table = finished_table(&["a", "b"], start);
        table
            .records
            .insert("c".to_owned(), json!({"id": "c", "status": "running"}));
        table.order.push_back("c".to_owned());
        let retention = Duration::from_secs(60);

        table.expire(retention, start + Duration::from_secs(59));
        assert_eq!(table.records.len(), 3, "nothing has been kept 60 s yet");

        table.expire(retention, start + Duration::from_secs(60));
        let mut kept: Vec<&String> = table.records.keys().collect();
        kept.sort();
        assert_eq!(kept, ["c"], "the running run stays, the finished ones go");
        assert!(table.owners.is_empty());
        assert_eq!(table.order, ["c"]);
        assert!(table.finished.is_empty());
    }
}

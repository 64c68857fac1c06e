//! Self-healing tool calls. The declared fallbacks form a directed graph whose edge to a tool
//! weighs that tool's `cost`. A call to tool T tries T, then the tools reachable from T in order
//! of their shortest-path distance (Dijkstra; ties by name), skipping tools already tried and
//! tools whose circuit breaker is open. Every attempt, failure, reroute and breaker transition is
//! logged and counted; when no tool is left the error lists each tool tried and why it failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use petgraph::algo::dijkstra;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;

use super::breaker::{BreakerConfig, BreakerState, CircuitBreaker, Transition};
use super::failure::{FailureKind, ToolFailure};
use super::metrics::ToolMetrics;
use super::{ToolRunner, ToolSpec};
use crate::error::{Error, Result};

/// One failed or skipped attempt of a routed call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub tool: String,
    pub failure: ToolFailure,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.tool, self.failure)
    }
}

/// A routed call's answer: which tool gave it, and the attempts that failed before.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub tool: String,
    pub value: Value,
    pub failed: Vec<Attempt>,
}

/// Routes calls over all declared tools; cheap to clone and share between tasks.
#[derive(Clone, Debug)]
pub struct ToolRouter {
    inner: Arc<RouterInner>,
}

#[derive(Debug)]
struct RouterInner {
    runner: ToolRunner,
    specs: Vec<ToolSpec>,
    by_name: HashMap<String, NodeIndex>,
    graph: DiGraph<usize, f64>,
    /// Indexed like `specs`. Held only for a state update, never across an await.
    breakers: Vec<Mutex<CircuitBreaker>>,
    config: BreakerConfig,
    metrics: ToolMetrics,
}

impl ToolRouter {
    /// Checks the declarations (unique names, known fallbacks, finite non-negative costs) and
    /// builds the fallback graph.
    pub fn new(specs: Vec<ToolSpec>, runner: ToolRunner, config: BreakerConfig) -> Result<Self> {
        let mut graph = DiGraph::new();
        let mut by_name = HashMap::new();
        for (i, spec) in specs.iter().enumerate() {
            if !(spec.cost.is_finite() && spec.cost >= 0.0) {
                return Err(Error::ToolSetup(format!(
                    "tool {} has cost {}; costs must be finite and not negative",
                    spec.name, spec.cost
                )));
            }
            if by_name
                .insert(spec.name.clone(), graph.add_node(i))
                .is_some()
            {
                return Err(Error::ToolSetup(format!(
                    "tool {} is declared twice",
                    spec.name
                )));
            }
        }
        for spec in &specs {
            let from = by_name[&spec.name];
            for fallback in &spec.fallbacks {
                let Some(&to) = by_name.get(fallback) else {
                    return Err(Error::ToolSetup(format!(
                        "tool {} names fallback {fallback}, which is not declared",
                        spec.name
                    )));
                };
                graph.add_edge(from, to, specs[graph[to]].cost);
            }
        }
        let now = Instant::now();
        let metrics = ToolMetrics::new(specs.iter().map(|s| s.name.as_str()));
        Ok(Self {
            inner: Arc::new(RouterInner {
                runner,
                breakers: specs
                    .iter()
                    .map(|_| Mutex::new(CircuitBreaker::new(now)))
                    .collect(),
                specs,
                by_name,
                graph,
                config,
                metrics,
            }),
        })
    }

    pub fn metrics(&self) -> &ToolMetrics {
        &self.inner.metrics
    }

    pub fn breaker_state(&self, tool: &str) -> Option<BreakerState> {
        let node = *self.inner.by_name.get(tool)?;
        Some(self.breaker(self.inner.graph[node]).state())
    }

    fn breaker(&self, i: usize) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        // A panic elsewhere while holding the lock cannot leave the breaker's few fields
        // inconsistent, so a poisoned lock is still usable.
        self.inner.breakers[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The order in which a call to `tool` tries tools: `tool` first, then every tool reachable
    /// over fallback edges by increasing path cost (ties by name).
    pub fn route(&self, tool: &str) -> Result<Vec<String>> {
        let start = *self
            .inner
            .by_name
            .get(tool)
            .ok_or_else(|| Error::UnknownTool(tool.to_string()))?;
        let distances = dijkstra(&self.inner.graph, start, None, |e| *e.weight());
        let mut order: Vec<(f64, &str)> = distances
            .into_iter()
            .map(|(node, d)| (d, self.inner.specs[self.inner.graph[node]].name.as_str()))
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
        // The start tool has distance 0, but a zero-cost fallback could tie with it.
        let mut names: Vec<String> = vec![tool.to_string()];
        names.extend(
            order
                .into_iter()
                .filter(|(_, n)| *n != tool)
                .map(|(_, n)| n.to_string()),
        );
        Ok(names)
    }

    /// Calls `tool` with `args`, rerouting on failure. Errors: unknown tool, arguments that
    /// are not an object, or every reachable tool failed or was skipped.
    pub async fn call(&self, tool: &str, args: &Value) -> Result<ToolCall> {
        let order = self.route(tool)?;
        if !args.is_object() {
            return Err(Error::Tool {
                tool: tool.to_string(),
                failure: ToolFailure::BadArguments(format!(
                    "arguments must be a JSON object, not {}",
                    super::failure::snippet(&args.to_string())
                )),
            });
        }
        let mut failed: Vec<Attempt> = Vec::new();
        for (n, name) in order.iter().enumerate() {
            let i = self.inner.graph[self.inner.by_name[name]];
            let spec = &self.inner.specs[i];
            let (admitted, transition) = self.breaker(i).admit(Instant::now(), &self.inner.config);
            self.log_transition(name, transition);
            let outcome = if admitted {
                self.inner.metrics.call(name);
                tracing::debug!(tool = %name, requested = tool, "calling tool");
                self.inner.runner.run(spec, args).await
            } else {
                Err(ToolFailure::BreakerOpen)
            };
            match outcome {
                Ok(value) => {
                    self.inner.metrics.success(name);
                    let transition = self.breaker(i).on_success();
                    self.log_transition(name, transition);
                    if !failed.is_empty() {
                        tracing::info!(tool = %name, requested = tool, failed = failed.len(), "rerouted call succeeded");
                    }
                    return Ok(ToolCall {
                        tool: name.clone(),
                        value,
                        failed,
                    });
                }
                Err(failure) => {
                    self.inner.metrics.failure(name, failure.kind());
                    // A refusal of this call's input shows the tool is up: it counts for the
                    // breaker as a success; only unhealthy failures count against it.
                    let transition = if failure.is_health_failure() {
                        self.breaker(i)
                            .on_failure(Instant::now(), &self.inner.config)
                    } else if failure.kind() != FailureKind::BreakerOpen {
                        self.breaker(i).on_success()
                    } else {
                        None
                    };
                    self.log_transition(name, transition);
                    tracing::warn!(tool = %name, requested = tool, kind = failure.kind().as_str(), "tool failed: {failure}");
                    if let Some(next) = order.get(n + 1) {
                        self.inner.metrics.reroute(name);
                        tracing::warn!(from = %name, to = %next, requested = tool, "rerouting tool call");
                    }
                    failed.push(Attempt {
                        tool: name.clone(),
                        failure,
                    });
                }
            }
        }
        tracing::error!(
            requested = tool,
            attempts = failed.len(),
            "no tool left for the call"
        );
        Err(Error::ToolsExhausted {
            tool: tool.to_string(),
            attempts: failed,
        })
    }

    fn log_transition(&self, tool: &str, transition: Option<Transition>) {
        let Some((from, to)) = transition else { return };
        if to == BreakerState::Open {
            self.inner.metrics.breaker_open(tool);
        }
        tracing::warn!(
            tool,
            from = from.as_str(),
            to = to.as_str(),
            "circuit breaker changed state"
        );
    }
}

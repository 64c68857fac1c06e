//! Per-tool counters of calls, failures by kind, reroutes and breaker openings, readable at any
//! time without locks (for a `/metrics` endpoint).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::failure::FailureKind;

#[derive(Debug, Default)]
struct ToolCounters {
    calls: AtomicU64,
    successes: AtomicU64,
    failures: [AtomicU64; FailureKind::ALL.len()],
    reroutes: AtomicU64,
    breaker_opens: AtomicU64,
}

/// Counters of every declared tool.
#[derive(Debug, Default)]
pub struct ToolMetrics {
    tools: BTreeMap<String, ToolCounters>,
}

/// One tool's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ToolCountersSnapshot {
    /// Calls actually made (skips by an open breaker are not calls).
    pub calls: u64,
    pub successes: u64,
    /// Failure kind label -> count; every kind is listed, zeros included.
    pub failures: BTreeMap<&'static str, u64>,
    /// Times a failure of this tool sent the call on to a fallback.
    pub reroutes: u64,
    pub breaker_opens: u64,
}

impl ToolCountersSnapshot {
    pub fn failures_of(&self, kind: FailureKind) -> u64 {
        self.failures.get(kind.as_str()).copied().unwrap_or(0)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl ToolMetrics {
    pub fn new<'a>(tools: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            tools: tools
                .into_iter()
                .map(|t| (t.to_string(), ToolCounters::default()))
                .collect(),
        }
    }

    pub(crate) fn call(&self, tool: &str) {
        if let Some(c) = self.tools.get(tool) {
            bump(&c.calls);
        }
    }

    pub(crate) fn success(&self, tool: &str) {
        if let Some(c) = self.tools.get(tool) {
            bump(&c.successes);
        }
    }

    pub(crate) fn failure(&self, tool: &str, kind: FailureKind) {
        if let Some(c) = self.tools.get(tool) {
            bump(&c.failures[kind as usize]);
        }
    }

    pub(crate) fn reroute(&self, tool: &str) {
        if let Some(c) = self.tools.get(tool) {
            bump(&c.reroutes);
        }
    }

    pub(crate) fn breaker_open(&self, tool: &str) {
        if let Some(c) = self.tools.get(tool) {
            bump(&c.breaker_opens);
        }
    }

    /// Every tool's counters, by name.
    pub fn snapshot(&self) -> BTreeMap<String, ToolCountersSnapshot> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        self.tools
            .iter()
            .map(|(name, c)| {
                let failures = FailureKind::ALL
                    .iter()
                    .map(|&k| (k.as_str(), load(&c.failures[k as usize])))
                    .collect();
                let snapshot = ToolCountersSnapshot {
                    calls: load(&c.calls),
                    successes: load(&c.successes),
                    failures,
                    reroutes: load(&c.reroutes),
                    breaker_opens: load(&c.breaker_opens),
                };
                (name.clone(), snapshot)
            })
            .collect()
    }
}

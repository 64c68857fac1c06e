//! Prometheus metrics in vLLM's style (`agentc:` prefix), encoded by `prometheus-client` in the
//! OpenMetrics text format.
//!
//! Request-level histograms and counters are recorded by [`RequestTracker`]s; gauges and prefix
//! cache counters are read from the serving engine's [`ServingStats`] when `/metrics` is scraped.
//! Each scrape builds a [`Registry`] of the recorded metrics (shared handles), the engine's
//! figures, and whatever else the server adds (workflow runs, tools), and encodes it once.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::FinishReason;
use crate::serving::ServingStats;

/// Bucket bounds in seconds, as vLLM uses for the same metrics (shortened at the ends).
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
];
const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const REQUEST_LATENCY_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
];

/// The content type of the exposition text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The label of `agentc:request_success_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Finished {
    finished_reason: &'static str,
}

/// Its values, all exported from the start (zeros included).
const FINISHED_REASONS: [&str; 3] = ["stop", "length", "abort"];
const ABORT: &str = "abort";

/// A gauge of `f64` values.
pub type FloatGauge = Gauge<f64, AtomicU64>;

/// The server's metrics; share it with `Arc`. Clones of its handles record into the same
/// series.
#[derive(Debug)]
pub struct Metrics {
    time_to_first_token: Histogram,
    time_per_output_token: Histogram,
    e2e_request_latency: Histogram,
    request_queue_time: Histogram,
    prompt_tokens: Counter,
    generation_tokens: Counter,
    finished: Family<Finished, Counter>,
    rejected: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let finished = Family::default();
        for reason in FINISHED_REASONS {
            // Created now so that every reason is exported, zeros included.
            drop(finished.get_or_create(&Finished {
                finished_reason: reason,
            }));
        }
        Self {
            time_to_first_token: Histogram::new(TTFT_BUCKETS.iter().copied()),
            time_per_output_token: Histogram::new(TPOT_BUCKETS.iter().copied()),
            e2e_request_latency: Histogram::new(REQUEST_LATENCY_BUCKETS.iter().copied()),
            request_queue_time: Histogram::new(REQUEST_LATENCY_BUCKETS.iter().copied()),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            finished,
            rejected: Counter::default(),
        }
    }
}

/// A counter holding `value` (for totals another part keeps, read at scrape time).
pub fn counter_at(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

/// A gauge holding `value`.
pub fn gauge_at(value: f64) -> FloatGauge {
    let gauge = FloatGauge::default();
    gauge.set(value);
    gauge
}

impl Metrics {
    /// A request refused with 429.
    pub fn record_rejected(&self) {
        self.rejected.inc();
    }

    /// A registry for one scrape: the recorded metrics plus the engine's gauges and counters in
    /// `stats`. Help texts end without a period: the encoder adds one.
    pub fn registry(&self, stats: &ServingStats) -> Registry {
        let mut r = Registry::default();
        r.register(
            "agentc:num_requests_running",
            "Sequences being processed",
            gauge_at(stats.running as f64),
        );
        r.register(
            "agentc:num_requests_waiting",
            "Requests waiting to start",
            gauge_at(stats.waiting as f64),
        );
        let kv_usage = if stats.kv_blocks_total == 0 {
            0.0
        } else {
            stats.kv_blocks_used as f64 / stats.kv_blocks_total as f64
        };
        r.register(
            "agentc:kv_cache_usage_perc",
            "Fraction of KV cache blocks in use (1 means 100 percent)",
            gauge_at(kv_usage),
        );
        r.register(
            "agentc:prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache",
            counter_at(stats.prefix_query_tokens),
        );
        r.register(
            "agentc:prefix_cache_hits",
            "Prompt tokens found in the prefix cache",
            counter_at(stats.prefix_hit_tokens),
        );
        r.register(
            "agentc:prompt_tokens",
            "Prompt tokens processed",
            self.prompt_tokens.clone(),
        );
        r.register(
            "agentc:generation_tokens",
            "Tokens generated",
            self.generation_tokens.clone(),
        );
        r.register(
            "agentc:request_success",
            "Requests that finished, by finish reason",
            self.finished.clone(),
        );
        r.register(
            "agentc:request_rejected",
            "Requests refused with 429 because too many were waiting",
            self.rejected.clone(),
        );
        r.register(
            "agentc:time_to_first_token_seconds",
            "Time from arrival to the first generated token",
            self.time_to_first_token.clone(),
        );
        r.register(
            "agentc:time_per_output_token_seconds",
            "Time between consecutive generated tokens",
            self.time_per_output_token.clone(),
        );
        r.register(
            "agentc:e2e_request_latency_seconds",
            "Time from arrival to the last generated token",
            self.e2e_request_latency.clone(),
        );
        r.register(
            "agentc:request_queue_time_seconds",
            "Time a request waited before its prompt was processed",
            self.request_queue_time.clone(),
        );
        r
    }

    /// The exposition text of [`Metrics::registry`].
    pub fn render(&self, stats: &ServingStats) -> String {
        encode(&self.registry(stats))
    }
}

/// The OpenMetrics text of `registry`.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// One request's timeline; records into [`Metrics`]. Dropped before `finish`, it counts as an
/// aborted request (the client went away).
#[derive(Debug)]
pub struct RequestTracker {
    metrics: Arc<Metrics>,
    arrived: Instant,
    last_token: Option<Instant>,
    finished: bool,
}

impl RequestTracker {
    pub fn new(metrics: Arc<Metrics>, arrived: Instant) -> Self {
        Self {
            metrics,
            arrived,
            last_token: None,
            finished: false,
        }
    }

    pub fn started(&self, prompt_tokens: usize, queued: Duration) {
        self.metrics.prompt_tokens.inc_by(prompt_tokens as u64);
        self.metrics
            .request_queue_time
            .observe(queued.as_secs_f64());
    }

    pub fn token(&mut self) {
        let now = Instant::now();
        let metrics = &self.metrics;
        metrics.generation_tokens.inc();
        match self.last_token.replace(now) {
            None => metrics
                .time_to_first_token
                .observe((now - self.arrived).as_secs_f64()),
            Some(previous) => metrics
                .time_per_output_token
                .observe((now - previous).as_secs_f64()),
        }
    }

    pub fn finish(&mut self, reason: &FinishReason) {
        self.finish_with(finished_reason(reason));
    }

    /// The request failed: it is neither a success nor an abort.
    pub fn fail(&mut self) {
        self.finished = true;
    }

    /// Whether the request has finished or failed.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    fn finish_with(&mut self, reason: &'static str) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.metrics
            .finished
            .get_or_create(&Finished {
                finished_reason: reason,
            })
            .inc();
        self.metrics
            .e2e_request_latency
            .observe(self.arrived.elapsed().as_secs_f64());
    }
}

impl Drop for RequestTracker {
    fn drop(&mut self) {
        self.finish_with(ABORT);
    }
}

fn finished_reason(reason: &FinishReason) -> &'static str {
    match reason {
        FinishReason::EndOfGeneration | FinishReason::Stop(_) => FINISHED_REASONS[0],
        FinishReason::Length => FINISHED_REASONS[1],
        FinishReason::Cancelled => ABORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_gives_the_exact_exposition_text() {
        let metrics = Arc::new(Metrics::default());
        // A request whose first token took 30 ms and second 20 ms, finished by length.
        let mut tracker = RequestTracker::new(Arc::clone(&metrics), Instant::now());
        tracker.started(7, Duration::from_millis(200));
        metrics.generation_tokens.inc_by(2);
        metrics.time_to_first_token.observe(0.03);
        metrics.time_per_output_token.observe(0.02);
        tracker.finished = true;
        metrics
            .finished
            .get_or_create(&Finished {
                finished_reason: "length",
            })
            .inc();
        metrics.e2e_request_latency.observe(1.25);
        drop(tracker);
        // A request whose client went away: counted as aborted, with its latency.
        drop(RequestTracker::new(Arc::clone(&metrics), Instant::now()));
        metrics.record_rejected();

        // Functional update, so that fields the engine adds later keep this compiling.
        let stats = ServingStats {
            running: 1,
            waiting: 3,
            kv_blocks_used: 8,
            kv_blocks_total: 32,
            prefix_query_tokens: 100,
            prefix_hit_tokens: 64,
            ..ServingStats::default()
        };
        let text = metrics.render(&stats);

        let head = "\
# HELP agentc:num_requests_running Sequences being processed.
# TYPE agentc:num_requests_running gauge
agentc:num_requests_running 1.0
# HELP agentc:num_requests_waiting Requests waiting to start.
# TYPE agentc:num_requests_waiting gauge
agentc:num_requests_waiting 3.0
# HELP agentc:kv_cache_usage_perc Fraction of KV cache blocks in use (1 means 100 percent).
# TYPE agentc:kv_cache_usage_perc gauge
agentc:kv_cache_usage_perc 0.25
# HELP agentc:prefix_cache_queries Prompt tokens looked up in the prefix cache.
# TYPE agentc:prefix_cache_queries counter
agentc:prefix_cache_queries_total 100
# HELP agentc:prefix_cache_hits Prompt tokens found in the prefix cache.
# TYPE agentc:prefix_cache_hits counter
agentc:prefix_cache_hits_total 64
# HELP agentc:prompt_tokens Prompt tokens processed.
# TYPE agentc:prompt_tokens counter
agentc:prompt_tokens_total 7
# HELP agentc:generation_tokens Tokens generated.
# TYPE agentc:generation_tokens counter
agentc:generation_tokens_total 2
# HELP agentc:request_success Requests that finished, by finish reason.
# TYPE agentc:request_success counter
";
        assert!(text.starts_with(head), "{text}");
        for line in [
            "agentc:request_success_total{finished_reason=\"stop\"} 0",
            "agentc:request_success_total{finished_reason=\"length\"} 1",
            "agentc:request_success_total{finished_reason=\"abort\"} 1",
            "agentc:request_rejected_total 1",
            "# TYPE agentc:time_to_first_token_seconds histogram",
            "agentc:time_to_first_token_seconds_bucket{le=\"0.02\"} 0",
            "agentc:time_to_first_token_seconds_bucket{le=\"0.04\"} 1",
            "agentc:request_queue_time_seconds_bucket{le=\"0.3\"} 1",
            "agentc:request_queue_time_seconds_sum 0.2",
            "agentc:time_per_output_token_seconds_bucket{le=\"0.01\"} 0",
            "agentc:time_per_output_token_seconds_bucket{le=\"0.025\"} 1",
            // Two finished requests: one at 1.25 s, one aborted at once.
            "agentc:e2e_request_latency_seconds_bucket{le=\"1.5\"} 2",
            "agentc:e2e_request_latency_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

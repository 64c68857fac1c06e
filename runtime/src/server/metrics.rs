//! Prometheus metrics in vLLM's style (`agentc:` prefix), written in the text exposition format.
//!
//! Request-level histograms and counters are recorded by [`RequestTracker`]s; gauges and prefix
//! cache counters are read from the serving engine's [`ServingStats`] when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// The label values of `agentc:request_success_total`, in the order they are printed.
const FINISHED_REASONS: [&str; 3] = ["stop", "length", "abort"];

/// A cumulative histogram: counts per upper bound, sum and count.
#[derive(Clone, Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations in each bucket (not cumulative); the last entry is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += value;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound:?}\"}} {cumulative}");
        }
        let count: u64 = self.counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {:?}", self.sum);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Debug)]
struct Recorded {
    time_to_first_token: Histogram,
    time_per_output_token: Histogram,
    e2e_request_latency: Histogram,
    request_queue_time: Histogram,
    prompt_tokens: u64,
    generation_tokens: u64,
    /// Indexed like [`FINISHED_REASONS`].
    finished: [u64; 3],
    rejected: u64,
}

/// The server's metrics; share it with `Arc`.
#[derive(Debug)]
pub struct Metrics {
    recorded: Mutex<Recorded>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            recorded: Mutex::new(Recorded {
                time_to_first_token: Histogram::new(TTFT_BUCKETS),
                time_per_output_token: Histogram::new(TPOT_BUCKETS),
                e2e_request_latency: Histogram::new(REQUEST_LATENCY_BUCKETS),
                request_queue_time: Histogram::new(REQUEST_LATENCY_BUCKETS),
                prompt_tokens: 0,
                generation_tokens: 0,
                finished: [0; 3],
                rejected: 0,
            }),
        }
    }
}

impl Metrics {
    fn record(&self, update: impl FnOnce(&mut Recorded)) {
        // Every update is a few additions, so a panicking holder cannot leave it half-done.
        let mut recorded = self
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        update(&mut recorded);
    }

    /// A request refused with 429.
    pub fn record_rejected(&self) {
        self.record(|r| r.rejected += 1);
    }

    /// The exposition text: recorded metrics plus the engine's gauges and counters in `stats`.
    pub fn render(&self, stats: &ServingStats) -> String {
        let recorded = self
            .recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP agentc:{name} {help}");
            let _ = writeln!(out, "# TYPE agentc:{name} gauge");
            let _ = writeln!(out, "agentc:{name} {value:?}");
        };
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP agentc:{name}_total {help}");
            let _ = writeln!(out, "# TYPE agentc:{name}_total counter");
            let _ = writeln!(out, "agentc:{name}_total {value}");
        };
        gauge(
            &mut out,
            "num_requests_running",
            "Sequences being processed.",
            stats.running as f64,
        );
        gauge(
            &mut out,
            "num_requests_waiting",
            "Requests waiting to start.",
            stats.waiting as f64,
        );
        let kv_usage = if stats.kv_blocks_total == 0 {
            0.0
        } else {
            stats.kv_blocks_used as f64 / stats.kv_blocks_total as f64
        };
        gauge(
            &mut out,
            "kv_cache_usage_perc",
            "Fraction of KV cache blocks in use (1 means 100 percent).",
            kv_usage,
        );
        counter(
            &mut out,
            "prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache.",
            stats.prefix_query_tokens,
        );
        counter(
            &mut out,
            "prefix_cache_hits",
            "Prompt tokens found in the prefix cache.",
            stats.prefix_hit_tokens,
        );
        counter(
            &mut out,
            "prompt_tokens",
            "Prompt tokens processed.",
            recorded.prompt_tokens,
        );
        counter(
            &mut out,
            "generation_tokens",
            "Tokens generated.",
            recorded.generation_tokens,
        );
        let _ = writeln!(
            out,
            "# HELP agentc:request_success_total Requests that finished, by finish reason."
        );
        let _ = writeln!(out, "# TYPE agentc:request_success_total counter");
        for (reason, count) in FINISHED_REASONS.iter().zip(recorded.finished) {
            let _ = writeln!(
                out,
                "agentc:request_success_total{{finished_reason=\"{reason}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "request_rejected",
            "Requests refused with 429 because too many were waiting.",
            recorded.rejected,
        );
        recorded.time_to_first_token.write(
            &mut out,
            "agentc:time_to_first_token_seconds",
            "Time from arrival to the first generated token.",
        );
        recorded.time_per_output_token.write(
            &mut out,
            "agentc:time_per_output_token_seconds",
            "Time between consecutive generated tokens.",
        );
        recorded.e2e_request_latency.write(
            &mut out,
            "agentc:e2e_request_latency_seconds",
            "Time from arrival to the last generated token.",
        );
        recorded.request_queue_time.write(
            &mut out,
            "agentc:request_queue_time_seconds",
            "Time a request waited before its prompt was processed.",
        );
        out
    }
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
        self.metrics.record(|r| {
            r.prompt_tokens += prompt_tokens as u64;
            r.request_queue_time.observe(queued.as_secs_f64());
        });
    }

    pub fn token(&mut self) {
        let now = Instant::now();
        let since = self.last_token.replace(now);
        let arrived = self.arrived;
        self.metrics.record(|r| {
            r.generation_tokens += 1;
            match since {
                None => r.time_to_first_token.observe((now - arrived).as_secs_f64()),
                Some(previous) => r
                    .time_per_output_token
                    .observe((now - previous).as_secs_f64()),
            }
        });
    }

    pub fn finish(&mut self, reason: &FinishReason) {
        self.finish_with(finished_reason_index(reason));
    }

    /// The request failed: it is neither a success nor an abort.
    pub fn fail(&mut self) {
        self.finished = true;
    }

    /// Whether the request has finished or failed.
    pub fn is_done(&self) -> bool {
        self.finished
    }

    fn finish_with(&mut self, reason: usize) {
        if self.finished {
            return;
        }
        self.finished = true;
        let latency = self.arrived.elapsed().as_secs_f64();
        self.metrics.record(|r| {
            r.finished[reason] += 1;
            r.e2e_request_latency.observe(latency);
        });
    }
}

impl Drop for RequestTracker {
    fn drop(&mut self) {
        self.finish_with(ABORT);
    }
}

const ABORT: usize = 2;

fn finished_reason_index(reason: &FinishReason) -> usize {
    match reason {
        FinishReason::EndOfGeneration | FinishReason::Stop(_) => 0,
        FinishReason::Length => 1,
        FinishReason::Cancelled => ABORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_text_is_cumulative_with_sum_and_count() {
        static BOUNDS: &[f64] = &[0.125, 1.0];
        let mut histogram = Histogram::new(BOUNDS);
        for value in [0.0625, 0.125, 0.5, 2.0] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.write(&mut out, "x_seconds", "An example.");
        assert_eq!(
            out,
            "# HELP x_seconds An example.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.125\"} 2\n\
             x_seconds_bucket{le=\"1.0\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\n\
             x_seconds_sum 2.6875\n\
             x_seconds_count 4\n"
        );
    }

    #[test]
    fn render_gives_the_exact_exposition_text() {
        let metrics = Arc::new(Metrics::default());
        let start = Instant::now();
        // Observations at fixed offsets from an arrival time in the past.
        let mut tracker = RequestTracker {
            metrics: Arc::clone(&metrics),
            arrived: start,
            last_token: None,
            finished: false,
        };
        tracker.started(7, Duration::from_millis(200));
        metrics.record(|r| {
            r.generation_tokens += 2;
            r.time_to_first_token.observe(0.03);
            r.time_per_output_token.observe(0.02);
        });
        tracker.finished = true;
        metrics.record(|r| {
            r.finished[1] += 1;
            r.e2e_request_latency.observe(1.25);
        });
        drop(tracker);
        // A request whose client went away: counted as aborted, with its latency.
        let aborted = RequestTracker::new(Arc::clone(&metrics), Instant::now());
        drop(aborted);
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
# HELP agentc:prefix_cache_queries_total Prompt tokens looked up in the prefix cache.
# TYPE agentc:prefix_cache_queries_total counter
agentc:prefix_cache_queries_total 100
# HELP agentc:prefix_cache_hits_total Prompt tokens found in the prefix cache.
# TYPE agentc:prefix_cache_hits_total counter
agentc:prefix_cache_hits_total 64
# HELP agentc:prompt_tokens_total Prompt tokens processed.
# TYPE agentc:prompt_tokens_total counter
agentc:prompt_tokens_total 7
# HELP agentc:generation_tokens_total Tokens generated.
# TYPE agentc:generation_tokens_total counter
agentc:generation_tokens_total 2
# HELP agentc:request_success_total Requests that finished, by finish reason.
# TYPE agentc:request_success_total counter
agentc:request_success_total{finished_reason=\"stop\"} 0
agentc:request_success_total{finished_reason=\"length\"} 1
agentc:request_success_total{finished_reason=\"abort\"} 1
# HELP agentc:request_rejected_total Requests refused with 429 because too many were waiting.
# TYPE agentc:request_rejected_total counter
agentc:request_rejected_total 1
# HELP agentc:time_to_first_token_seconds Time from arrival to the first generated token.
# TYPE agentc:time_to_first_token_seconds histogram
agentc:time_to_first_token_seconds_bucket{le=\"0.001\"} 0
agentc:time_to_first_token_seconds_bucket{le=\"0.005\"} 0
agentc:time_to_first_token_seconds_bucket{le=\"0.01\"} 0
agentc:time_to_first_token_seconds_bucket{le=\"0.02\"} 0
agentc:time_to_first_token_seconds_bucket{le=\"0.04\"} 1
";
        assert!(text.starts_with(head), "{text}");
        let queue = "\
# TYPE agentc:request_queue_time_seconds histogram
agentc:request_queue_time_seconds_bucket{le=\"0.3\"} 1
";
        assert!(text.contains(queue), "{text}");
        assert!(text.contains("agentc:request_queue_time_seconds_sum 0.2\n"));
        assert!(text.contains("agentc:time_per_output_token_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("agentc:time_per_output_token_seconds_bucket{le=\"0.025\"} 1\n"));
        // Two finished requests: one at 1.25 s, one aborted at once.
        assert!(text.contains("agentc:e2e_request_latency_seconds_bucket{le=\"1.5\"} 2\n"));
        assert!(text.contains("agentc:e2e_request_latency_seconds_count 2\n"));
        assert!(text.ends_with("agentc:request_queue_time_seconds_count 1\n"));
    }
}

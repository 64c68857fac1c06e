//! Turning the simulation's raw measurements into a [`SimReport`].

use super::{DeviceStats, OpRecord, SimReport, Simulation};

/// Counts gathered while simulating.
#[derive(Debug, Clone, Default)]
pub(super) struct Counters {
    pub cache_lookups: u64,
    pub cache_hits: u64,
    pub kv_evictions: u64,
    pub step_tokens: u64,
    pub link_usd: f64,
}

const RUNS_PER_REPORTED_COST: f64 = 1000.0;

/// The `q`-quantile (0 < q <= 1) of sorted `values` by the nearest-rank method.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Assembles the report; `busy[d]` is (busy seconds, ops served, batch steps) of device `d`.
pub(super) fn report(
    sim: &Simulation<'_>,
    arrivals: &[f64],
    sla_s: &[f64],
    completion: &[f64],
    busy: &[(f64, u64, u64)],
    counters: &Counters,
    op_log: Vec<OpRecord>,
) -> SimReport {
    let mut latencies: Vec<f64> = arrivals
        .iter()
        .zip(completion)
        .filter(|(_, c)| c.is_finite())
        .map(|(a, c)| c - a)
        .collect();
    // Within each run's SLA, with the solver's tolerance for floating-point sums.
    let within = arrivals
        .iter()
        .zip(completion)
        .zip(sla_s)
        .filter(|((a, c), sla)| c.is_finite() && *c - *a <= *sla * (1.0 + 1e-9))
        .count();
    latencies.sort_by(f64::total_cmp);
    let completed = latencies.len();
    let first = arrivals.first().copied().unwrap_or(0.0);
    let last = completion
        .iter()
        .copied()
        .filter(|c| c.is_finite())
        .fold(first, f64::max);
    let duration = last - first;
    let per_s = |count: f64| {
        if duration > 0.0 {
            count / duration
        } else {
            0.0
        }
    };
    let devices = sim.priced.devices();
    let type_names = sim.priced.type_names();
    let busy_usd: f64 = devices
        .iter()
        .zip(busy)
        .map(|(d, (b, _, _))| b * d.usd_per_s)
        .sum::<f64>()
        + counters.link_usd;
    let provisioned_usd: f64 = devices.iter().map(|d| d.usd_per_s * duration).sum();
    let per_1k = |usd: f64| {
        if completed > 0 {
            usd / completed as f64 * RUNS_PER_REPORTED_COST
        } else {
            0.0
        }
    };
    let steps: u64 = busy.iter().map(|(_, _, s)| s).sum();
    SimReport {
        runs: arrivals.len(),
        completed,
        sla_s: sim.sla_s,
        policy: sim.settings.policy,
        dispatch: sim.settings.dispatch,
        duration_s: duration,
        throughput_rps: per_s(completed as f64),
        goodput_rps: per_s(within as f64),
        sla_attainment: if arrivals.is_empty() {
            0.0
        } else {
            within as f64 / arrivals.len() as f64
        },
        latency_mean_s: if completed > 0 {
            latencies.iter().sum::<f64>() / completed as f64
        } else {
            0.0
        },
        latency_p50_s: percentile(&latencies, 0.50),
        latency_p95_s: percentile(&latencies, 0.95),
        latency_p99_s: percentile(&latencies, 0.99),
        latency_max_s: latencies.last().copied().unwrap_or(0.0),
        usd_per_1k_runs_busy: per_1k(busy_usd),
        usd_per_1k_runs_provisioned: per_1k(provisioned_usd),
        late_completion_ratio: late_completion_ratio(arrivals, completion),
        cache_hit_rate: if counters.cache_lookups > 0 {
            counters.cache_hits as f64 / counters.cache_lookups as f64
        } else {
            0.0
        },
        cache_lookups: counters.cache_lookups,
        cache_hits: counters.cache_hits,
        cache_evictions: counters.kv_evictions,
        batch_steps: steps,
        mean_batch_tokens: if steps > 0 {
            counters.step_tokens as f64 / steps as f64
        } else {
            0.0
        },
        devices: devices
            .iter()
            .zip(busy)
            .map(|(d, &(b, ops, steps))| DeviceStats {
                device: d.name.clone(),
                device_type: type_names.get(d.type_index).cloned().unwrap_or_default(),
                busy_s: b,
                utilization: per_s(b),
                ops,
                batch_steps: steps,
            })
            .collect(),
        op_log,
    }
}

/// Completions over arrivals within the second half of the arrival window.
fn late_completion_ratio(arrivals: &[f64], completion: &[f64]) -> f64 {
    let finite = || arrivals.iter().copied().filter(|a| a.is_finite());
    let first = finite().fold(f64::INFINITY, f64::min);
    let last = finite().fold(f64::NEG_INFINITY, f64::max);
    if last.partial_cmp(&first) != Some(std::cmp::Ordering::Greater) {
        return 1.0;
    }
    let mid = 0.5 * (first + last);
    let arrived = finite().filter(|&a| a > mid).count();
    let completed = completion
        .iter()
        .filter(|&&c| c.is_finite() && c > mid && c <= last)
        .count();
    if arrived == 0 {
        1.0
    } else {
        completed as f64 / arrived as f64
    }
}

#[cfg(test)]
mod tests {
    use super::{late_completion_ratio, percentile};

    #[test]
    fn late_completion_ratio_compares_completions_with_arrivals() {
        let arrivals: Vec<f64> = (0..1000).map(f64::from).collect();
        // Keeping up: each run takes 0.5 s. Arrivals after 499.5: 500..999 (500 runs);
        // completions in (499.5, 999]: runs 500..998.
        let kept: Vec<f64> = arrivals.iter().map(|a| a + 0.5).collect();
        assert_eq!(late_completion_ratio(&arrivals, &kept), 499.0 / 500.0);
        // Half the capacity: one completion every 2 s from t = 1, so runs 250..499 complete in
        // the window.
        let slow: Vec<f64> = (0..1000).map(|i| 1.0 + 2.0 * f64::from(i)).collect();
        assert_eq!(late_completion_ratio(&arrivals, &slow), 250.0 / 500.0);
        assert_eq!(late_completion_ratio(&[0.0, 0.0], &[1.0, 1.0]), 1.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.95), 95.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[3.0], 0.5), 3.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}

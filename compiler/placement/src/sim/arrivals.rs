//! Arrival processes: Poisson at a fixed rate (from a seed), or a trace file of arrival times.
//!
//! Trace format: one arrival per line, its time in seconds from the start as the first
//! comma-separated field (so a CSV whose first column is the time works); blank lines and lines
//! starting with `#` are skipped; times must be finite, >= 0 and non-decreasing.

use std::path::Path;

use crate::error::{Error, Result};
use crate::synthetic::Rng;

/// Arrival times of the runs to simulate, in seconds, non-decreasing.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrivals {
    times: Vec<f64>,
}

/// A sample of the exponential distribution with rate `rate` (mean `1 / rate`), by inversion.
pub fn exponential(rng: &mut Rng, rate: f64) -> f64 {
    // `unit` is in [0, 1), so 1 - u is in (0, 1] and its logarithm is finite.
    -(1.0 - rng.unit()).ln() / rate
}

impl Arrivals {
    /// `runs` Poisson arrivals at `rps` runs per second (exponential gaps), from `seed`.
    pub fn poisson(rps: f64, runs: usize, seed: u64) -> Result<Self> {
        if !(rps.is_finite() && rps > 0.0) {
            return Err(Error::Simulation(format!(
                "the arrival rate must be a positive number of runs per second, got {rps}"
            )));
        }
        if runs == 0 {
            return Err(Error::Simulation(
                "the number of runs must be at least 1".into(),
            ));
        }
        let mut rng = Rng::new(seed);
        let mut t = 0.0;
        let times = (0..runs)
            .map(|_| {
                t += exponential(&mut rng, rps);
                t
            })
            .collect();
        Ok(Self { times })
    }

    /// Arrivals at the given times.
    pub fn from_times(times: Vec<f64>) -> Result<Self> {
        if times.is_empty() {
            return Err(Error::Simulation(
                "there are no arrivals to simulate".into(),
            ));
        }
        let mut last = 0.0f64;
        for (i, &t) in times.iter().enumerate() {
            if !(t.is_finite() && t >= last) {
                return Err(Error::Simulation(format!(
                    "arrival {i} at {t} s is not a finite time >= the previous one ({last} s)"
                )));
            }
            last = t;
        }
        Ok(Self { times })
    }

    /// Reads a trace file (see the module documentation for the format).
    pub fn from_trace_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_trace_str(&text, &path.display().to_string())
    }

    /// Parses trace text; errors name `origin` and the 1-based line.
    pub fn from_trace_str(text: &str, origin: &str) -> Result<Self> {
        let mut times = Vec::new();
        let mut last = 0.0f64;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let field = trimmed.split(',').next().unwrap_or("").trim();
            let bad = |message: String| Error::Parse {
                origin: origin.to_string(),
                line: i as u64 + 1,
                column: 1,
                message,
            };
            let t: f64 = field.parse().map_err(|_| {
                bad(format!(
                    "`{field}` is not an arrival time in seconds (one number per line)"
                ))
            })?;
            if !(t.is_finite() && t >= 0.0) {
                return Err(bad(format!(
                    "arrival time {field} must be a finite number of seconds >= 0"
                )));
            }
            if t < last {
                return Err(bad(format!(
                    "arrival time {field} is earlier than the previous one ({last}); sort the trace"
                )));
            }
            last = t;
            times.push(t);
        }
        if times.is_empty() {
            return Err(Error::Invalid {
                origin: origin.to_string(),
                message: "the trace has no arrival times".into(),
            });
        }
        Ok(Self { times })
    }

    pub fn times(&self) -> &[f64] {
        &self.times
    }

    pub fn len(&self) -> usize {
        self.times.len()
    }

    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_samples_have_the_right_mean_and_variance() {
        let mut rng = Rng::new(3);
        let rate = 4.0;
        let n = 200_000;
        let samples: Vec<f64> = (0..n).map(|_| exponential(&mut rng, rate)).collect();
        let mean = samples.iter().sum::<f64>() / n as f64;
        let var = samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard error of the mean is (1/rate)/sqrt(n) = 0.00056: allow 4 of them.
        assert!((mean - 0.25).abs() < 0.0023, "mean {mean}");
        assert!((var - 0.0625).abs() < 0.002, "variance {var}");
        assert!(samples.iter().all(|&x| x.is_finite() && x >= 0.0));
    }

    #[test]
    fn poisson_arrivals_are_increasing_and_seeded() {
        let a = Arrivals::poisson(10.0, 1000, 1).expect("arrivals");
        assert!(a.times().windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a, Arrivals::poisson(10.0, 1000, 1).expect("arrivals"));
        assert_ne!(a, Arrivals::poisson(10.0, 1000, 2).expect("arrivals"));
    }
}

//! Measured device figures written by `agentc profile`. When a profile is given for a device
//! type it replaces the datasheet peaks times achievable fractions, and its per-op timings
//! replace the roofline estimate for matching ops.
//!
//! JSON format (version 1):
//! ```json
//! {
//!   "format_version": 1,
//!   "device_type": "dev-2core",
//!   "measured_at": "2026-11-24T20:00:00Z",
//!   "host": "dev-box",
//!   "memory_bandwidth_gbs": 62.5,
//!   "matmul_gflops": { "fp32": 260.0, "fp16": null, "int8": 610.0 },
//!   "op_overhead_us": 3.0,
//!   "op_timings": [
//!     { "kind": "decode", "model": "smollm2-135m-q4_1", "fixed_s": 0.0004,
//!       "per_token_s": 0.0068, "samples": 20 }
//!   ],
//!   "step_timings": [
//!     { "model": "smollm2-135m-q4_1", "fixed_s": 0.0016, "per_prefill_token_s": 0.0008,
//!       "per_decode_token_s": 0.00125, "per_attention_pair_s": 1.5e-5, "per_sampled_token_s": 0.002,
//!       "samples": 99 }
//!   ]
//! }
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::graph::OpKind;

/// The profile format this code reads and writes.
pub const PROFILE_FORMAT_VERSION: u32 = 1;

/// Measured matmul throughput in GFLOP/s (GOP/s for int8); `None` = not measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredFlops {
    pub fp32: f64,
    #[serde(default)]
    pub fp16: Option<f64>,
    #[serde(default)]
    pub int8: Option<f64>,
}

/// A measured timing for ops of one kind (and model): `fixed_s + per_token_s x tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpTiming {
    pub kind: OpKind,
    /// Model or index name; `None` matches every op of the kind.
    #[serde(default)]
    pub model: Option<String>,
    pub fixed_s: f64,
    pub per_token_s: f64,
    /// How many runs the figures average, for reports.
    #[serde(default)]
    pub samples: u32,
}

/// A measured continuous-batching step of one model: a forward pass over prompt chunks and
/// decode tokens takes `fixed_s + per_prefill_token_s x prompt tokens + per_decode_token_s x
/// decode tokens + per_attention_pair_s x attention pairs` (a decode token also computes the
/// vocabulary logits and is sampled; a pair is one token attending to one earlier position). Fitted
/// over the serving engine's own steps at several batch sizes, so it includes what a roofline
/// leaves out: per-step overhead, thread hand-offs and the per-sequence work of sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTiming {
    /// Model name; `None` matches every model.
    #[serde(default)]
    pub model: Option<String>,
    pub fixed_s: f64,
    pub per_prefill_token_s: f64,
    pub per_decode_token_s: f64,
    #[serde(default)]
    pub per_attention_pair_s: f64,
    /// Extra per decode token that is sampled (temperature > 0) rather than taken greedily.
    #[serde(default)]
    pub per_sampled_token_s: f64,
    /// How many forward passes the fit covers, for reports.
    #[serde(default)]
    pub samples: u32,
}

impl StepTiming {
    /// Time of one step over `tokens`: prompt tokens, decode tokens, and how many of those
    /// decode tokens are sampled; they attend to `pairs` earlier positions in all.
    pub fn step_s(&self, tokens: StepTokens, pairs: f64) -> f64 {
        self.fixed_s
            + self.per_prefill_token_s * tokens.prefill as f64
            + self.per_decode_token_s * tokens.decode as f64
            + self.per_sampled_token_s * tokens.sampled as f64
            + self.per_attention_pair_s * pairs
    }
}

/// What one batch step processes: prompt tokens, decode tokens, and of the decode tokens those
/// that are sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTokens {
    pub prefill: u64,
    pub decode: u64,
    pub sampled: u64,
}

impl StepTokens {
    pub fn new(prefill: u64, decode: u64, sampled: u64) -> Self {
        Self {
            prefill,
            decode,
            sampled,
        }
    }
}

/// Measured figures of one device type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    pub format_version: u32,
    /// Catalog name of the device type measured.
    pub device_type: String,
    /// RFC 3339 time of the measurement.
    pub measured_at: String,
    #[serde(default)]
    pub host: Option<String>,
    pub memory_bandwidth_gbs: f64,
    pub matmul_gflops: MeasuredFlops,
    #[serde(default)]
    pub op_overhead_us: Option<f64>,
    #[serde(default)]
    pub op_timings: Vec<OpTiming>,
    /// Batch-step timings of the serving engine (absent in profiles of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_timings: Vec<StepTiming>,
}

impl DeviceProfile {
    /// Reads a profile file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses and validates profile JSON.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self> {
        let profile: DeviceProfile = serde_json::from_str(text).map_err(|e| Error::Parse {
            origin: origin.to_string(),
            line: e.line() as u64,
            column: e.column() as u64,
            message: strip_position(&e.to_string()),
        })?;
        profile.validate(origin)?;
        Ok(profile)
    }

    /// The profile as pretty JSON (what `agentc profile` writes).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Invalid {
            origin: self.device_type.clone(),
            message: e.to_string(),
        })
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let bad = |message: String| Error::Invalid {
            origin: origin.to_string(),
            message,
        };
        if self.format_version != PROFILE_FORMAT_VERSION {
            return Err(bad(format!(
                "profile format_version {} is not supported; this agentc reads {PROFILE_FORMAT_VERSION}",
                self.format_version
            )));
        }
        let positive = [
            ("memory_bandwidth_gbs", Some(self.memory_bandwidth_gbs)),
            ("matmul_gflops.fp32", Some(self.matmul_gflops.fp32)),
            ("matmul_gflops.fp16", self.matmul_gflops.fp16),
            ("matmul_gflops.int8", self.matmul_gflops.int8),
        ];
        for (what, value) in positive {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(bad(format!("{what} must be a positive number, got {v}")));
            }
        }
        if let Some(v) = self.op_overhead_us
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(bad(format!("op_overhead_us must be >= 0, got {v}")));
        }
        for (i, t) in self.op_timings.iter().enumerate() {
            if !(t.fixed_s.is_finite()
                && t.fixed_s >= 0.0
                && t.per_token_s.is_finite()
                && t.per_token_s >= 0.0)
            {
                return Err(bad(format!(
                    "op_timings[{i}]: fixed_s and per_token_s must be finite and >= 0"
                )));
            }
        }
        for (i, t) in self.step_timings.iter().enumerate() {
            if ![
                t.fixed_s,
                t.per_prefill_token_s,
                t.per_decode_token_s,
                t.per_attention_pair_s,
                t.per_sampled_token_s,
            ]
            .iter()
            .all(|v| v.is_finite() && *v >= 0.0)
            {
                return Err(bad(format!(
                    "step_timings[{i}]: fixed_s and the per-token and per-pair figures must be \
                     finite and >= 0"
                )));
            }
        }
        Ok(())
    }

    /// The batch-step timing of `model`: an exact model match wins over a model-wide one.
    pub fn step_timing_for(&self, model: Option<&str>) -> Option<&StepTiming> {
        self.step_timings
            .iter()
            .find(|t| t.model.is_some() && t.model.as_deref() == model)
            .or_else(|| self.step_timings.iter().find(|t| t.model.is_none()))
    }

    /// The timing for an op of `kind` on `model`: an exact model match wins over a kind-wide one.
    pub fn timing_for(&self, kind: OpKind, model: Option<&str>) -> Option<&OpTiming> {
        let of_kind = || self.op_timings.iter().filter(move |t| t.kind == kind);
        of_kind()
            .find(|t| t.model.is_some() && t.model.as_deref() == model)
            .or_else(|| of_kind().find(|t| t.model.is_none()))
    }
}

fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_string(),
        None => text.to_string(),
    }
}

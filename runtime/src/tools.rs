//! Tool executors (the `tool` op): subprocess tools run from an argument array (never a shell)
//! and HTTP tools, each under a time limit and an output cap, and a [`ToolRouter`] that routes a
//! failed call to the cheapest healthy fallback.
//!
//! A subprocess tool gets its arguments as one JSON object on stdin and answers on stdout. It runs
//! in a process group of its own, in a fresh empty temporary directory (removed after the call)
//! that is also its `HOME` and `TMPDIR`, with an environment cleared down to `PATH`, `LANG`,
//! `HOME` and `TMPDIR`. Elements of `command` that are relative paths with a `/` and name an
//! existing file under the workflow's directory (`tools/calculator.py`) are made absolute, like
//! model paths. On a timeout or an output flood the whole process group is killed.
//!
//! An HTTP tool gets its arguments as a JSON body (`POST`, the default) or as query parameters
//! (`GET`); proxies from the environment are not used. A status other than 2xx is a failure.

mod breaker;
mod failure;
mod http;
mod metrics;
mod router;
mod subprocess;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

pub use breaker::{BreakerConfig, BreakerState, DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD};
pub use failure::{FailureKind, ToolFailure};
pub use metrics::{ToolCountersSnapshot, ToolMetrics};
pub use router::{Attempt, ToolCall, ToolRouter};

/// Time limit of a call when the workflow sets none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Output cap when the workflow sets none (1 MiB).
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// Cost of a call when the workflow sets none.
pub const DEFAULT_COST: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Subprocess,
    Http,
}

/// What a tool's output is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Json,
    Text,
}

/// A `tools:` entry of a compiled plan's manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub kind: ToolKind,
    /// `subprocess`: program and arguments.
    #[serde(default)]
    pub command: Vec<String>,
    /// `http`: the URL called.
    #[serde(default)]
    pub url: Option<String>,
    /// `http`: `GET` or `POST` (default).
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub output: OutputFormat,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    #[serde(default = "default_cost")]
    pub cost: f64,
    /// Tools tried when this one fails, cheapest healthy first.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// `subprocess`: it may use the network; otherwise it runs in a network namespace of its own.
    #[serde(default)]
    pub network: bool,
}

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_max_output_bytes() -> u64 {
    DEFAULT_MAX_OUTPUT_BYTES
}
fn default_cost() -> f64 {
    DEFAULT_COST
}

impl ToolSpec {
    /// A subprocess tool with the defaults of a workflow file.
    pub fn subprocess(name: &str, command: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            kind: ToolKind::Subprocess,
            command: command.iter().map(|s| s.to_string()).collect(),
            url: None,
            method: None,
            output: OutputFormat::Json,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            cost: DEFAULT_COST,
            fallbacks: Vec::new(),
            network: false,
        }
    }

    /// An HTTP tool with the defaults of a workflow file.
    pub fn http(name: &str, url: &str) -> Self {
        Self {
            kind: ToolKind::Http,
            command: Vec::new(),
            url: Some(url.to_string()),
            ..Self::subprocess(name, &[])
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Runs one tool call at a time per `run`; cheap to clone and share between tasks.
#[derive(Clone, Debug)]
pub struct ToolRunner {
    inner: Arc<RunnerInner>,
}

#[derive(Debug)]
struct RunnerInner {
    base_dir: PathBuf,
    http: reqwest::Client,
    /// The environment a subprocess tool starts with (besides `HOME` and `TMPDIR`).
    env: Vec<(String, String)>,
}

/// `PATH` for tools when the runtime itself has none.
const FALLBACK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// `LANG` for tools when the runtime itself has none.
const FALLBACK_LANG: &str = "C.UTF-8";

impl ToolRunner {
    /// A runner for the tools of a workflow in `base_dir`.
    pub fn new(base_dir: &Path) -> Result<Self> {
        // Redirects are never followed: a tool's answer comes from the tool's own URL, not from
        // wherever (an internal address) a 3xx points.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::ToolSetup(e.to_string()))?;
        let var = |name: &str, fallback: &str| {
            (
                name.to_string(),
                std::env::var(name).unwrap_or_else(|_| fallback.to_string()),
            )
        };
        Ok(Self {
            inner: Arc::new(RunnerInner {
                base_dir: base_dir.to_path_buf(),
                http,
                env: vec![var("PATH", FALLBACK_PATH), var("LANG", FALLBACK_LANG)],
            }),
        })
    }

    /// Calls `spec` once with `args` (a JSON object). `output: json` tools give the parsed JSON,
    /// `output: text` tools a JSON string.
    pub async fn run(
        &self,
        spec: &ToolSpec,
        args: &Value,
    ) -> std::result::Result<Value, ToolFailure> {
        if !args.is_object() {
            return Err(ToolFailure::BadArguments(format!(
                "arguments must be a JSON object, not {}",
                failure::snippet(&args.to_string())
            )));
        }
        let bytes = match spec.kind {
            ToolKind::Subprocess => subprocess::run(&self.inner, spec, args).await?,
            ToolKind::Http => http::run(&self.inner.http, spec, args).await?,
        };
        decode_output(spec.output, bytes)
    }
}

fn decode_output(format: OutputFormat, bytes: Vec<u8>) -> std::result::Result<Value, ToolFailure> {
    match format {
        OutputFormat::Json => {
            serde_json::from_slice(&bytes).map_err(|e| ToolFailure::InvalidJson {
                reason: e.to_string(),
                snippet: failure::snippet(&String::from_utf8_lossy(&bytes)),
            })
        }
        OutputFormat::Text => String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| ToolFailure::InvalidText),
    }
}

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
mod landlock;
mod metrics;
mod router;
mod subprocess;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};

pub use breaker::{BreakerConfig, BreakerState, DEFAULT_COOL_DOWN, DEFAULT_FAILURE_THRESHOLD};
pub use failure::{FailureKind, ToolFailure};
pub use metrics::{ToolCountersSnapshot, ToolMetrics};
pub use router::{Attempt, ToolCall, ToolRouter};

pub use agentc_plan::decl::{
    DEFAULT_COST, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_TIMEOUT_MS, OutputFormat, ToolKind, ToolSpec,
};

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
        // Asked once, at start-up: a kernel without Landlock is logged now, not at the first call
        // (its subprocess tools are refused then, unless they declare `confine: false`).
        let _ = landlock::abi();
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

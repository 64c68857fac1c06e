//! The one error type of `agentc-runtime`.

use std::path::PathBuf;

use crate::tools::{Attempt, ToolFailure};

/// Everything that can go wrong while running a workflow, serving, embedding or indexing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Loading a model or generating with it.
    #[error(transparent)]
    Engine(#[from] agentc_engine::Error),

    #[error(transparent)]
    Model(#[from] agentc_model::Error),

    /// Profiling the kernels.
    #[error("kernel: {0}")]
    Kernel(#[from] agentc_kernels::Error),

    #[error("invalid request: {0}")]
    InvalidRequest(String),

    #[error("plan {}: {message}", path.display())]
    Plan {
        path: std::path::PathBuf,
        message: String,
    },

    #[error("{0}")]
    Inputs(String),

    #[error("node `{node}`: {message}")]
    Workflow { node: String, message: String },

    #[error("cannot load {}: {reason}", path.display())]
    ModelFile { path: PathBuf, reason: String },

    #[error("cannot tokenize: {0}")]
    Tokenize(String),

    #[error("embedding model: {0}")]
    Tensor(#[from] candle_core::Error),

    #[error("{}: {reason}", path.display())]
    IndexSource { path: PathBuf, reason: String },

    #[error("{}:{line}: {reason}", path.display())]
    IndexSourceLine {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("cannot build the index: {0}")]
    IndexInput(String),

    #[error("index {}: {reason}", path.display())]
    IndexFile { path: PathBuf, reason: String },

    #[error("invalid index query: {0}")]
    IndexQuery(String),

    #[error("tools: {0}")]
    ToolSetup(String),

    #[error("no tool named {0} is declared")]
    UnknownTool(String),

    #[error("tool {tool} {failure}")]
    Tool { tool: String, failure: ToolFailure },

    #[error("tool {tool} failed and no fallback is left; attempts: {}", attempts.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ToolsExhausted {
        tool: String,
        attempts: Vec<Attempt>,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

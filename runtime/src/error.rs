//! The one error type of `agentc-runtime`.

use std::path::PathBuf;

use crate::tools::{Attempt, ToolFailure};

/// Everything that can go wrong while loading a model or generating with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Model(#[from] agentc_model::Error),

    #[error("kernel: {0}")]
    Kernel(#[from] agentc_kernels::Error),

    #[error(
        "tensor {tensor} is only kept packed for the kernels, but the matmul backend has no kernels"
    )]
    WeightsUnavailable { tensor: String },

    #[error("tensor {tensor} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        tensor: String,
        expected: Vec<u64>,
        found: Vec<u64>,
    },

    #[error("invalid generation request: {0}")]
    InvalidRequest(String),

    #[error("invalid output constraint: {0}")]
    InvalidConstraint(String),

    #[error(
        "the output is incomplete: {reason} after {tokens} tokens, before it matched its schema; raise max_tokens"
    )]
    IncompleteOutput { reason: &'static str, tokens: usize },

    #[error(
        "the prompt and the tokens to generate need {needed} positions but the context holds {capacity}; shorten the prompt or lower max_tokens"
    )]
    ContextFull { needed: usize, capacity: usize },

    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    TokenOutOfRange { id: u32, vocab_size: usize },

    #[error("plan {}: {message}", path.display())]
    Plan {
        path: std::path::PathBuf,
        message: String,
    },

    #[error("{0}")]
    Inputs(String),

    #[error("node `{node}`: {message}")]
    Workflow { node: String, message: String },

    #[error("cannot start the thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),

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

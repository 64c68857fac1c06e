//! The error type of `agentc-engine`.

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

    #[error("cannot start the thread pool: {0}")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

pub type Result<T> = std::result::Result<T, Error>;

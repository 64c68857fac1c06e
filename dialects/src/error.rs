use thiserror::Error;

/// Errors from loading dialects and verifying IR.
#[derive(Debug, Error)]
pub enum Error {
    #[error("the {dialect} dialect definition failed to parse or load: {details}")]
    DialectLoad {
        dialect: &'static str,
        details: String,
    },
    #[error("MLIR verification failed:\n{0}")]
    Verify(String),
    #[error("MLIR text failed to parse:\n{0}")]
    Parse(String),
    #[error(transparent)]
    Melior(#[from] melior::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

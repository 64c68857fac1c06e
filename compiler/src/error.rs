use thiserror::Error;

use crate::diagnostics::Diagnostics;

#[derive(Debug, Error)]
pub enum Error {
    /// The workflow is invalid; every problem found is listed.
    #[error("{0}")]
    Invalid(Box<Diagnostics>),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Dialect(#[from] agentc_plan::Error),
    #[error(transparent)]
    Melior(#[from] melior::Error),
    #[error("placement: {0}")]
    Placement(String),
    #[error("no placement meets the SLA: {0}")]
    Infeasible(String),
    #[error("internal compiler error: {0}")]
    Internal(String),
}

impl From<Diagnostics> for Error {
    fn from(d: Diagnostics) -> Error {
        Error::Invalid(Box::new(d))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

//! The crate's one error type.

use std::path::PathBuf;

use crate::solver::Infeasibility;

/// Errors from loading catalogs, cluster files and profiles, and from solving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A YAML or JSON file could not be parsed or failed validation; `origin` is the file name
    /// (or `<embedded catalog>`), `line`/`column` are 1-based.
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        origin: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file was read but a problem has no position in it (for example a JSON profile).
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    /// The operator graph is malformed (cycle, dangling dependency, duplicate name).
    #[error("invalid operator graph: {0}")]
    Graph(String),
    /// No placement meets the SLA and the memory limits; the payload says which constraint binds.
    #[error("no feasible placement: {0}")]
    Infeasible(Box<Infeasibility>),
    /// Solver settings were out of range.
    #[error("invalid solver settings: {0}")]
    Settings(String),
    /// The simulation's inputs were out of range (empty cluster, no arrivals, bad rate).
    #[error("invalid simulation: {0}")]
    Simulation(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

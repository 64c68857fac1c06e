//! agentc's compiler: the workflow frontend, MLIR emission and (later) passes, cost model and
//! placement.

pub mod diagnostics;
pub mod emit;
mod error;
pub mod export;
pub mod frontend;
pub mod graph;
mod load;
pub mod schema;

pub use error::{Error, Result};
pub use load::load_workflow;

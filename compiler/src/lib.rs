//! agentc's compiler: the workflow frontend, MLIR emission and (later) passes, cost model and
//! placement.

mod compile;
pub mod diagnostics;
pub mod emit;
mod error;
pub mod export;
pub mod frontend;
pub mod graph;
mod load;
pub mod manifest;
pub mod model_facts;
pub mod observed;
pub mod passes;
pub mod report;
pub mod schema;
pub mod synthetic;
pub mod tokens;

pub use compile::{
    Compilation, CompileOptions, Compiled, Target, compile, compile_file, compile_graph,
};
pub use error::{Error, Result};
pub use load::load_workflow;
pub use passes::place::PlaceInput;

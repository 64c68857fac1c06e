//! The plan contract between the compiler and the runtime:
//!
//! - the `agent` and `exec` MLIR dialects, each defined once in IRDL (`dialects/*.irdl.mlir`)
//!   and loaded into a melior [`Context`] at run time (stock MLIR tools read the same files with
//!   `--irdl-file`), with the helpers to build, verify and read them ([`ir`]);
//! - the names of their attributes ([`attr`]), spelled once;
//! - what a workflow declares besides its graph ([`decl`]: SLA, models, tools, indexes) and what
//!   a decode asks of the decoder ([`decode`]: sampling, output constraints);
//! - the condition language of branches and loops ([`condition`]), for both the workflow form
//!   and the plan form;
//! - the plan itself, in memory or as a directory ([`manifest`]), and its reader ([`program`]).

pub mod attr;
pub mod condition;
pub mod decl;
pub mod decode;
pub mod manifest;

// Everything that needs MLIR (melior) is behind the default `mlir` feature, so that the engine
// can use the plan's data types without linking LLVM.
#[cfg(feature = "mlir")]
mod error;
#[cfg(feature = "mlir")]
pub mod ir;
#[cfg(feature = "mlir")]
mod mlir;
#[cfg(feature = "mlir")]
pub mod program;
#[cfg(feature = "mlir")]
mod value_type;

pub use manifest::{Manifest, Plan, PlanFileError};
#[cfg(feature = "mlir")]
pub use {
    error::{Error, Result},
    mlir::{capture_diagnostics, file_location, new_context, parse_module, verify},
    program::Program,
    value_type::ValueType,
};

/// The IRDL source of the `agent` dialect.
pub const AGENT_IRDL: &str = include_str!("../agent.irdl.mlir");

/// The IRDL source of the `exec` dialect.
pub const EXEC_IRDL: &str = include_str!("../exec.irdl.mlir");

/// Op names of the `exec` dialect.
pub mod exec {
    pub const INPUT: &str = "exec.input";
    pub const RENDER: &str = "exec.render";
    pub const TOKENIZE: &str = "exec.tokenize";
    pub const KV_PREFIX: &str = "exec.kv_prefix";
    pub const PREFILL: &str = "exec.prefill";
    pub const DECODE: &str = "exec.decode";
    pub const DETOKENIZE: &str = "exec.detokenize";
    pub const EMBED: &str = "exec.embed";
    pub const KNN: &str = "exec.knn";
    pub const TOOL: &str = "exec.tool";
    pub const JSON: &str = "exec.json_op";
    pub const TRANSFER: &str = "exec.transfer";
    pub const MAP: &str = "exec.map";
    pub const BRANCH: &str = "exec.branch";
    pub const LOOP: &str = "exec.loop";
    pub const OUTPUT: &str = "exec.output";
}

/// Op names of the `agent` dialect.
pub mod agent {
    pub const INPUT: &str = "agent.input";
    pub const LLM: &str = "agent.llm";
    pub const EMBED: &str = "agent.embed";
    pub const RETRIEVE: &str = "agent.retrieve";
    pub const TOOL: &str = "agent.tool";
    pub const RENDER: &str = "agent.render";
    pub const JSON: &str = "agent.json_op";
    pub const MAP: &str = "agent.map";
    pub const BRANCH: &str = "agent.branch";
    pub const LOOP: &str = "agent.loop";
    pub const OUTPUT: &str = "agent.output";
}

//! The compiler driver: workflow graph -> `agent` MLIR -> pass pipeline -> `exec` MLIR.

use crate::graph::WorkflowGraph;
use crate::passes::{PassContext, PassReport, Pipeline};
use crate::tokens::TokenCounter;
use crate::{Result, emit};

/// What `agentc build` produced for one workflow.
pub struct Compiled {
    pub exec_mlir: String,
    pub passes: Vec<PassReport>,
}

pub struct CompileOptions<'t> {
    pub tokens: &'t dyn TokenCounter,
    /// Queries compiled into one consolidated graph.
    pub batch: usize,
}

/// Compiles a validated workflow to the `exec` dialect.
pub fn compile(graph: &WorkflowGraph, file: &str, options: &CompileOptions) -> Result<Compiled> {
    let context = agentc_dialects::new_context()?;
    let mut module = emit::emit_agent_batched(&context, graph, file, options.batch)?;
    let cx = PassContext {
        context: &context,
        tokens: options.tokens,
        batch: options.batch,
    };
    let passes = Pipeline::standard().run(&cx, &mut module)?;
    Ok(Compiled {
        exec_mlir: module.as_operation().to_string(),
        passes,
    })
}

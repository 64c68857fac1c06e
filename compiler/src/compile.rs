//! The compiler driver: workflow graph -> `agent` MLIR -> pass pipeline -> `exec` MLIR.

use std::time::Instant;

use crate::graph::WorkflowGraph;
use crate::passes::{PassContext, PassReport, Pipeline};
use crate::tokens::TokenCounter;
use crate::{Result, emit};

/// What `agentc build` produced for one workflow.
pub struct Compiled {
    /// The printed `exec` module (empty unless `CompileOptions::print`).
    pub exec_mlir: String,
    /// The placement report, when a cluster was given.
    pub report: Option<crate::report::PlanReport>,
    /// The operator graph and the devices the solver chose, when a placement was found.
    pub placed: Option<agentc_placement::sim::PlacedGraph>,
    pub passes: Vec<PassReport>,
    /// Emitting and verifying the `agent` module.
    pub emit_micros: u128,
    /// Printing the `exec` module.
    pub print_micros: u128,
}

pub struct CompileOptions<'t> {
    pub tokens: &'t dyn TokenCounter,
    /// Queries compiled into one consolidated graph.
    pub batch: usize,
    /// Where to place the operators; `None` leaves them unplaced.
    pub place: Option<&'t crate::passes::place::PlaceInput<'t>>,
    /// Print the `exec` module (`Compiled::exec_mlir`); reports alone do not need it.
    pub print: bool,
}

/// Compiles a validated workflow to the `exec` dialect.
pub fn compile(graph: &WorkflowGraph, file: &str, options: &CompileOptions) -> Result<Compiled> {
    let context = agentc_dialects::new_context()?;
    let start = Instant::now();
    let mut module = emit::emit_agent_batched(&context, graph, file, options.batch)?;
    let emit_micros = start.elapsed().as_micros();
    let cx = PassContext {
        context: &context,
        tokens: options.tokens,
        batch: options.batch,
        place: options.place,
        placed: std::cell::OnceCell::new(),
    };
    let passes = Pipeline::standard().run(&cx, &mut module)?;
    let report = match options.place {
        Some(input) => Some(crate::report::plan_report(
            &module,
            input.facts.notes.clone(),
        )?),
        None => None,
    };
    let start = Instant::now();
    let exec_mlir = if options.print {
        module.as_operation().to_string()
    } else {
        String::new()
    };
    Ok(Compiled {
        exec_mlir,
        report,
        placed: cx.placed.into_inner(),
        passes,
        emit_micros,
        print_micros: start.elapsed().as_micros(),
    })
}

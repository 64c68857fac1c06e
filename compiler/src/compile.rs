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
    let context = agentc_plan::new_context()?;
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

/// What to compile a workflow for: the cluster to place on, and how to price it.
pub struct Target<'a> {
    /// `None` compiles without placing (the `exec` module with no devices chosen).
    pub cluster: Option<&'a agentc_placement::Cluster>,
    pub settings: agentc_placement::CostSettings,
    /// Measured figures replacing datasheet ones (`agentc profile`).
    pub profile: Option<agentc_placement::DeviceProfile>,
    /// Queries compiled into one consolidated graph.
    pub batch: usize,
    /// Runs as measured instead of the compile-time worst case (checking the simulator).
    pub observed: Option<&'a crate::observed::ObservedShape>,
    /// Print the `exec` module; a plan needs it, reports alone do not.
    pub print: bool,
}

/// A workflow compiled and placed for a [`Target`].
pub struct Compilation {
    pub graph: WorkflowGraph,
    /// The workflow file as given.
    pub path: std::path::PathBuf,
    pub compiled: Compiled,
    /// Queries compiled into one graph.
    pub batch: usize,
    /// Models whose token counts are estimated (4 characters a token), and why.
    pub estimated_tokens: Vec<(String, String)>,
}

/// The one compile entry point behind `build`, `run`, `serve`, `simulate` and the benchmarks:
/// token counts and model facts from the workflow's own model files, the pass pipeline, and
/// placement on `target`.
pub fn compile_graph(
    graph: WorkflowGraph,
    path: &std::path::Path,
    target: &Target,
) -> Result<Compilation> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tokens = crate::tokens::ModelTokens::for_workflow(&graph, dir);
    let facts = crate::model_facts::model_facts(&graph, dir);
    let input = target
        .cluster
        .map(|cluster| crate::passes::place::PlaceInput {
            cluster,
            settings: target.settings,
            profile: target.profile.clone(),
            facts: &facts,
            observed: target.observed,
        });
    let options = CompileOptions {
        tokens: &tokens,
        batch: target.batch,
        place: input.as_ref(),
        print: target.print,
    };
    let compiled = compile(&graph, &path.display().to_string(), &options)?;
    Ok(Compilation {
        estimated_tokens: tokens.estimated.clone(),
        batch: target.batch,
        graph,
        path: path.to_path_buf(),
        compiled,
    })
}

/// Loads the workflow at `path` and compiles it for `target` ([`compile_graph`]).
pub fn compile_file(path: &std::path::Path, target: &Target) -> Result<Compilation> {
    compile_graph(crate::load_workflow(path)?, path, target)
}

impl Compilation {
    /// Why no placement meets the SLA, when none does.
    pub fn infeasible(&self) -> Option<String> {
        match &self.compiled.report {
            Some(report) if report.feasible => None,
            Some(report) => Some(
                report
                    .reason
                    .clone()
                    .unwrap_or_else(|| "no placement meets the SLA".into()),
            ),
            None => Some("the workflow was not placed".into()),
        }
    }

    /// The plan the runtime runs: the placed `exec` module and its manifest. An error when no
    /// placement meets the SLA or the module was not printed.
    pub fn plan(&self) -> Result<agentc_plan::Plan> {
        if let Some(why) = self.infeasible() {
            return Err(crate::Error::Infeasible(why));
        }
        let (Some(report), false) = (&self.compiled.report, self.compiled.exec_mlir.is_empty())
        else {
            return Err(crate::Error::Internal(
                "the plan was compiled without printing its module".into(),
            ));
        };
        // Absolute, so the runtime finds the models wherever it runs from.
        let source = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        Ok(agentc_plan::Plan {
            mlir: self.compiled.exec_mlir.clone(),
            manifest: crate::manifest::manifest(
                &self.graph,
                source,
                self.batch,
                report,
                &self.compiled.passes,
            )?,
        })
    }
}

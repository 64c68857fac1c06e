//! Command-line arguments and the commands they run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentc_compiler::graph::WorkflowGraph;
use agentc_compiler::tokens::CharEstimate;
use agentc_compiler::{CompileOptions, Error, compile, emit, export, load_workflow, schema};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

/// Exit status for invalid input: a bad workflow file or unreadable path.
const EXIT_INVALID: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "agentc",
    version,
    about = "Compile agent workflows through MLIR and run them on mixed hardware"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate workflow files and report every problem with file:line:col (exit 2 if invalid).
    Check {
        /// Workflow YAML files.
        #[arg(required = true)]
        workflows: Vec<PathBuf>,
    },
    /// Compile a workflow and print or write the result.
    Build {
        /// Workflow YAML file.
        workflow: PathBuf,
        /// What to produce: the `agent` dialect MLIR, a Graphviz graph, or the typed graph as JSON.
        #[arg(long, value_enum, default_value_t = Emit::Mlir)]
        emit: Emit,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Compile one consolidated graph for this many queries of the workflow, sharing and
        /// batching across them (for `--emit exec`).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
        batch: u32,
        /// Print how long each compiler stage and pass took, on standard error.
        #[arg(long)]
        timings: bool,
    },
    /// Print the JSON Schema of workflow files (for editor completion).
    Schema,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Emit {
    /// The `agent` dialect: one op per workflow node.
    Mlir,
    /// The `exec` dialect: granular operators after lowering, CSE, DCE, prefix sharing, batching.
    Exec,
    Dot,
    GraphJson,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { workflows } => {
            let mut failed = false;
            for path in &workflows {
                match load(path)? {
                    Some(g) => println!("{}", summary(path, &g)),
                    None => failed = true,
                }
            }
            Ok(if failed {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Build {
            workflow,
            emit,
            output,
            batch,
            timings,
        } => {
            let start = std::time::Instant::now();
            let Some(g) = load(&workflow)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            if timings {
                eprintln!(
                    "frontend: {:.1} ms ({} nodes)",
                    start.elapsed().as_secs_f64() * 1e3,
                    g.nodes.len()
                );
            }
            let text = match emit {
                Emit::Mlir => emit::agent_mlir(&g, &workflow.display().to_string())?,
                Emit::Exec => {
                    let options = CompileOptions {
                        tokens: &CharEstimate,
                        batch: batch as usize,
                    };
                    let compiled = compile(&g, &workflow.display().to_string(), &options)?;
                    if timings {
                        let ms = |us: u128| us as f64 / 1e3;
                        eprintln!("emit agent: {:.1} ms", ms(compiled.emit_micros));
                        for p in &compiled.passes {
                            let note = if p.changed { "" } else { ", no change" };
                            eprintln!(
                                "{}: {:.1} ms (+{:.1} ms verify{note})",
                                p.pass,
                                ms(p.micros),
                                ms(p.verify_micros)
                            );
                        }
                        eprintln!("print exec: {:.1} ms", ms(compiled.print_micros));
                        eprintln!("total: {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
                    }
                    compiled.exec_mlir
                }
                Emit::Dot => export::dot(&g),
                Emit::GraphJson => serde_json::to_string_pretty(&export::graph_json(&g))? + "\n",
            };
            write_output(output.as_deref(), &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!("{}", schema::workflow_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads a workflow; invalid input is reported on stderr and gives `None`.
fn load(path: &Path) -> anyhow::Result<Option<WorkflowGraph>> {
    match load_workflow(path) {
        Ok(g) => Ok(Some(g)),
        Err(Error::Invalid(d)) => {
            eprintln!("{d}");
            Ok(None)
        }
        Err(e @ Error::Io { .. }) => {
            eprintln!("error: {e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn summary(path: &Path, g: &WorkflowGraph) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for n in &g.nodes {
        match kinds.iter_mut().find(|(k, _)| *k == n.op.kind()) {
            Some((_, c)) => *c += 1,
            None => kinds.push((n.op.kind(), 1)),
        }
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, c)| format!("{c} {k}")).collect();
    format!(
        "ok: {} ({}): {} nodes ({}), {} inputs, {} outputs, SLA p95 {} ms",
        g.name,
        path.display(),
        g.nodes.len(),
        kinds.join(", "),
        g.inputs.len(),
        g.outputs.len(),
        g.sla.p95_ms
    )
}

fn write_output(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

//! Command-line arguments and the commands they run.

mod bench;
mod build;
mod generate;
mod index;
mod perplexity;
mod profile;
mod run;
mod serve;
mod simulate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentc_compiler::graph::WorkflowGraph;
use agentc_compiler::{Error, load_workflow, schema};
use anyhow::Context;
use clap::{Parser, Subcommand};

/// Exit status for invalid input: a bad workflow file or unreadable path.
const EXIT_INVALID: u8 = 2;
/// Exit status when no placement meets the SLA.
const EXIT_INFEASIBLE: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "agentc",
    version,
    about = "Compile agent workflows through MLIR and run them on mixed hardware"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines on standard error are written: `text` for people, `json` (one object
    /// per line) for machines. `RUST_LOG` chooses what is logged (default: `info` for agentc,
    /// `warn` for libraries).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "AGENTC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What is logged when `RUST_LOG` is not set.
const DEFAULT_LOG_FILTER: &str =
    "warn,agentc=info,agentc_runtime=info,agentc_compiler=info,agentc_placement=info";

/// Installs the log subscriber: `RUST_LOG` filters (default [`DEFAULT_LOG_FILTER`]), lines go
/// to standard error (standard output carries results).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    // A second initialization (never in the binary) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate workflow files and report every problem with file:line:col (exit 2 if invalid).
    Check {
        /// Workflow YAML files.
        #[arg(required = true)]
        workflows: Vec<PathBuf>,
    },
    /// Compile a workflow. With `--cluster` and `-o DIR`, writes the placed plan
    /// (DIR/plan.mlir and DIR/manifest.json); with `--emit`, prints one form of it.
    Build(build::BuildArgs),
    /// Generate a completion with the CPU engine (streams to standard output).
    Generate(generate::GenerateArgs),
    /// The perplexity of a GGUF model over a text file, computed as llama.cpp's
    /// `llama-perplexity` does (chunks of `--context` tokens, the second half of each scored).
    Perplexity(perplexity::PerplexityArgs),
    /// Measure this machine (memory bandwidth, matmul throughput, engine prefill/decode) and
    /// write a device profile for `agentc build --profile`.
    Profile(profile::ProfileArgs),
    /// Compile a workflow for this machine and run it on inputs (`--input k=v`, or a JSONL
    /// file with `--batch`), printing its outputs as JSON and its run statistics.
    Run(run::RunArgs),
    /// Compile and place a workflow on a cluster, then simulate runs arriving (Poisson at
    /// `--rps` or from `--trace`) and report goodput within the SLA, latency percentiles,
    /// utilisation per device type, prefix-cache hits and $ per 1k runs.
    Simulate(simulate::SimulateArgs),
    /// Serve a GGUF model over an OpenAI-compatible HTTP API (/v1/completions,
    /// /v1/chat/completions, /v1/models, /health, /metrics) until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Build vector indexes for `retrieve` nodes (`agentc index build SRC -o DIR`).
    Index(index::IndexArgs),
    /// Run a benchmark suite (examples/suites/): measure workflows on this machine next to
    /// the simulator's prediction of the same configuration, and run the placement study;
    /// prints a table and writes OUTDIR/results.json and OUTDIR/report.html.
    Bench(bench::BenchArgs),
    /// Print the JSON Schema of workflow files (for editor completion).
    Schema,
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
        Command::Build(args) => build::build(args),
        Command::Generate(args) => generate::generate(args),
        Command::Perplexity(args) => perplexity::perplexity(args),
        Command::Profile(args) => profile::profile(args),
        Command::Run(args) => run::run(args),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Serve(args) => serve::serve(args),
        Command::Index(args) => index::index(args),
        Command::Bench(args) => bench::bench(args),
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

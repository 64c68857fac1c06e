//! `agentc build`: compile a workflow to MLIR, a graph, or a placed plan.

use std::path::PathBuf;
use std::process::ExitCode;

use agentc_compiler::{Target, compile_graph, emit, export, report};
use agentc_placement::{Cluster, CostSettings, DeviceProfile, HardwareCatalog};
use clap::{Args, ValueEnum};

use super::{EXIT_INFEASIBLE, EXIT_INVALID, load, write_output};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Emit {
    /// The `agent` dialect: one op per workflow node.
    Mlir,
    /// The `exec` dialect: granular operators after lowering, CSE, DCE, prefix sharing,
    /// batching (and placement, with `--cluster`).
    Exec,
    /// The placement: op, device, predicted ms and $, critical path, SLA, single-type alternative.
    Report,
    Dot,
    GraphJson,
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Workflow YAML file.
    pub workflow: PathBuf,
    /// What to produce: `mlir` (the agent dialect), `exec` (granular operators; placed with
    /// `--cluster`), `report` (the placement table; needs `--cluster`), `dot`, `graph-json`.
    /// Default: the plan directory with `--cluster`, else `mlir`.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
    /// Output format of `--emit report`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Cluster file to place the operators on (see examples/clusters/).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// Hardware catalog to read device types from instead of the built-in one.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Device profile from `agentc profile`, replacing datasheet figures where measured.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Declared load in runs per second, for queueing in the latency prediction.
    #[arg(long, default_value_t = 0.0)]
    pub rps: f64,
    /// Output file (or, for a plan, directory) instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Compile one consolidated graph for this many queries of the workflow, sharing and
    /// batching across them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Print how long each compiler stage and pass took, on standard error.
    #[arg(long)]
    pub timings: bool,
}

/// The cluster (with `--catalog`) and the measured profile the command line names.
pub(super) fn target_files(
    args: &BuildArgs,
) -> anyhow::Result<Option<(Cluster, Option<DeviceProfile>)>> {
    let Some(cluster_path) = &args.cluster else {
        return Ok(None);
    };
    let catalog = match &args.catalog {
        Some(p) => HardwareCatalog::from_path(p)?,
        None => HardwareCatalog::builtin()?,
    };
    let cluster = Cluster::from_path(cluster_path, &catalog)?;
    let profile = args
        .profile
        .as_deref()
        .map(DeviceProfile::from_path)
        .transpose()?;
    Ok(Some((cluster, profile)))
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let start = std::time::Instant::now();
    let Some(g) = load(&args.workflow)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let file = args.workflow.display().to_string();
    if args.timings {
        eprintln!(
            "frontend: {:.1} ms ({} nodes)",
            start.elapsed().as_secs_f64() * 1e3,
            g.nodes.len()
        );
    }
    let emit = args.emit.unwrap_or(if args.cluster.is_some() {
        Emit::Exec
    } else {
        Emit::Mlir
    });
    match emit {
        Emit::Mlir => return finish(&args, emit::agent_mlir(&g, &file)?),
        Emit::Dot => return finish(&args, export::dot(&g)),
        Emit::GraphJson => {
            return finish(
                &args,
                serde_json::to_string_pretty(&export::graph_json(&g))? + "\n",
            );
        }
        Emit::Exec | Emit::Report => {}
    }
    if emit == Emit::Report && args.cluster.is_none() {
        eprintln!(
            "error: --emit report needs --cluster (for example examples/clusters/local.yaml)"
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    if !(args.rps >= 0.0 && args.rps.is_finite()) {
        eprintln!(
            "error: --rps must be a non-negative number, got {}",
            args.rps
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let loaded = target_files(&args)?;
    let target = Target {
        cluster: loaded.as_ref().map(|(cluster, _)| cluster),
        settings: CostSettings {
            rps: args.rps,
            ..CostSettings::default()
        },
        profile: loaded.as_ref().and_then(|(_, profile)| profile.clone()),
        batch: args.batch as usize,
        observed: None,
        print: emit != Emit::Report,
    };
    let compilation = compile_graph(g, &args.workflow, &target)?;
    let compiled = &compilation.compiled;
    if args.timings {
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
    for (model, why) in &compilation.estimated_tokens {
        eprintln!(
            "note: token counts for model `{model}` are estimated (4 characters a token): {why}"
        );
    }
    let Some(report) = &compiled.report else {
        return finish(&args, compiled.exec_mlir.clone());
    };
    if emit == Emit::Report {
        let text = match args.format {
            Format::Text => report::render_text(report),
            Format::Json => serde_json::to_string_pretty(report)? + "\n",
        };
        return finish(&args, text);
    }
    if !report.feasible {
        eprintln!(
            "error: no placement meets the SLA: {}",
            report.reason.as_deref().unwrap_or("unknown")
        );
        return Ok(ExitCode::from(EXIT_INFEASIBLE));
    }
    match (&args.output, args.emit) {
        // A plan: the directory the runtime loads.
        (Some(out), None) => {
            compilation.plan()?.write_dir(out)?;
            eprintln!(
                "wrote {0}/plan.mlir and {0}/manifest.json: predicted {1:.1} ms (SLA {2:.1} ms), ${3:.6} per 1k runs",
                out.display(),
                report.predicted_p95_ms.unwrap_or(0.0),
                report.sla_p95_ms,
                report.usd_per_1k.unwrap_or(0.0)
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => finish(&args, compiled.exec_mlir.clone()),
    }
}

fn finish(args: &BuildArgs, text: String) -> anyhow::Result<ExitCode> {
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

//! `agentc simulate`: compile and place a workflow as `agentc build` does, then run the cluster
//! simulator on the placed graph and print its report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agentc_compiler::{Target, compile_graph};
use agentc_placement::sim::{
    Arrivals, DEFAULT_MAX_BATCH, DEFAULT_TOKEN_BUDGET, Dispatch, QueuePolicy, SimReport,
    SimSettings, Simulation,
};
use agentc_placement::{CostModel, CostSettings};
use clap::{Args, ValueEnum};

use super::build::{BuildArgs, Format, target_files};
use super::{EXIT_INFEASIBLE, EXIT_INVALID, load, write_output};

const MS_PER_S: f64 = 1e3;
const PERCENT: f64 = 100.0;

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Policy {
    /// Earliest deadline first (deadline = arrival + SLA - the op's remaining critical path).
    Edf,
    /// First come, first served by run arrival.
    Fifo,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum DispatchArg {
    /// An op may run on any device of the type the placement chose for it.
    Pool,
    /// An op runs on exactly the device the placement chose.
    Pinned,
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Workflow YAML file.
    pub workflow: PathBuf,
    /// Cluster file to place and simulate on (see examples/clusters/).
    #[arg(long)]
    pub cluster: PathBuf,
    /// Hardware catalog to read device types from instead of the built-in one.
    #[arg(long)]
    pub catalog: Option<PathBuf>,
    /// Device profile from `agentc profile`, replacing datasheet figures where measured.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Poisson arrivals at this many runs per second.
    #[arg(long, conflicts_with = "trace")]
    pub rps: Option<f64>,
    /// Arrival times instead of Poisson: one time in seconds per line (the first
    /// comma-separated field), `#` comments, non-decreasing.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Runs to simulate with `--rps` (1 to 1,000,000).
    #[arg(long, default_value_t = 10_000)]
    pub runs: usize,
    /// Seed of the arrival process.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Queue order on every device.
    #[arg(long, value_enum, default_value_t = Policy::Edf)]
    pub policy: Policy,
    /// Which devices may run an op.
    #[arg(long, value_enum, default_value_t = DispatchArg::Pool)]
    pub dispatch: DispatchArg,
    /// Tokens one continuous-batching step may process.
    #[arg(long, default_value_t = DEFAULT_TOKEN_BUDGET)]
    pub token_budget: u64,
    /// Sequences one batch may hold.
    #[arg(long, default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Output file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

/// Most runs one `simulate` call may ask for: its time and memory grow with the runs.
pub const MAX_SIMULATED_RUNS: usize = 1_000_000;

pub fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if !(1..=MAX_SIMULATED_RUNS).contains(&args.runs) {
        eprintln!(
            "error: --runs must be 1 to {MAX_SIMULATED_RUNS}, got {}",
            args.runs
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let arrivals = match (&args.rps, &args.trace) {
        (Some(rps), None) => Arrivals::poisson(*rps, args.runs, args.seed),
        (None, Some(path)) => Arrivals::from_trace_path(path),
        _ => {
            eprintln!("error: give the arrivals with --rps RUNS_PER_S or --trace FILE");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let arrivals = match arrivals {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let Some(g) = load(&args.workflow)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    // The same inputs `agentc build --cluster` places with, at the idle load: the simulator,
    // not the solver's queueing estimate, says what load the placement sustains.
    let build_args = BuildArgs {
        workflow: args.workflow.clone(),
        emit: None,
        format: args.format,
        cluster: Some(args.cluster.clone()),
        catalog: args.catalog.clone(),
        profile: args.profile.clone(),
        rps: 0.0,
        output: None,
        batch: 1,
        timings: false,
    };
    let Some((cluster, profile)) = target_files(&build_args)? else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let settings = CostSettings::default();
    let target = Target {
        cluster: Some(&cluster),
        settings,
        profile: profile.clone(),
        batch: 1,
        observed: None,
        print: false,
    };
    let workflow_name = g.name.clone();
    let compilation = compile_graph(g, &args.workflow, &target)?;
    let Some(placed) = compilation.compiled.placed else {
        let reason = compilation
            .compiled
            .report
            .and_then(|r| r.reason)
            .unwrap_or_else(|| "unknown".into());
        eprintln!("error: no placement meets the SLA: {reason}");
        return Ok(ExitCode::from(EXIT_INFEASIBLE));
    };
    let mut cost = CostModel::new(&cluster, settings)?;
    if let Some(p) = profile {
        cost = cost.with_profile(p)?;
    }
    let priced = cost.price(&placed.graph);
    let sim_settings = SimSettings {
        policy: match args.policy {
            Policy::Edf => QueuePolicy::Edf,
            Policy::Fifo => QueuePolicy::Fifo,
        },
        dispatch: match args.dispatch {
            DispatchArg::Pool => Dispatch::Pool,
            DispatchArg::Pinned => Dispatch::Pinned,
        },
        token_budget: args.token_budget,
        max_batch: args.max_batch,
        record_ops: false,
        fuse_steps: true,
        stop_after_misses: None,
    };
    let sim = match Simulation::new(
        &cost,
        &priced,
        &placed.assignment,
        placed.sla_s,
        sim_settings,
    ) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let report = sim.run(&arrivals)?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
        Format::Text => {
            let arrival = match args.rps {
                Some(rps) => format!("Poisson {rps} runs/s, seed {}", args.seed),
                None => format!(
                    "trace {}",
                    args.trace.as_deref().unwrap_or(Path::new("")).display()
                ),
            };
            render_text(&report, &workflow_name, &cluster.name, &arrival)
        }
    };
    write_output(args.output.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

/// The report as a short table; devices are summarised per type.
fn render_text(r: &SimReport, workflow: &str, cluster: &str, arrivals: &str) -> String {
    use std::fmt::Write;
    let ms = |s: f64| s * MS_PER_S;
    let mut out = String::new();
    let policy = match r.policy {
        QueuePolicy::Edf => "EDF",
        QueuePolicy::Fifo => "FIFO",
    };
    let dispatch = match r.dispatch {
        Dispatch::Pool => "pool",
        Dispatch::Pinned => "pinned",
    };
    let _ = writeln!(
        out,
        "simulated `{workflow}` on `{cluster}`: {} runs ({} completed), {arrivals}, {policy}, \
         {dispatch} dispatch",
        r.runs, r.completed
    );
    let _ = writeln!(
        out,
        "SLA {:.1} ms: attainment {:.2}%, goodput {:.3} runs/s, throughput {:.3} runs/s over {:.1} s",
        ms(r.sla_s),
        r.sla_attainment * PERCENT,
        r.goodput_rps,
        r.throughput_rps,
        r.duration_s
    );
    let _ = writeln!(
        out,
        "latency ms: mean {:.1}, p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
        ms(r.latency_mean_s),
        ms(r.latency_p50_s),
        ms(r.latency_p95_s),
        ms(r.latency_p99_s),
        ms(r.latency_max_s)
    );
    let _ = writeln!(
        out,
        "prefix cache: {} hits / {} lookups ({:.2}%), {} evictions; {} batch steps of {:.1} tokens",
        r.cache_hits,
        r.cache_lookups,
        r.cache_hit_rate * PERCENT,
        r.cache_evictions,
        r.batch_steps,
        r.mean_batch_tokens
    );
    let _ = writeln!(
        out,
        "$ per 1k runs: {:.6} busy (device-seconds used x $/s), {:.6} provisioned (cluster $/hour / throughput)",
        r.usd_per_1k_runs_busy, r.usd_per_1k_runs_provisioned
    );
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "device type", "devices", "mean util", "max util", "ops", "steps"
    );
    let mut types: Vec<&str> = Vec::new();
    for d in &r.devices {
        if !types.contains(&d.device_type.as_str()) {
            types.push(&d.device_type);
        }
    }
    for t in types {
        let of: Vec<_> = r.devices.iter().filter(|d| d.device_type == t).collect();
        let mean = of.iter().map(|d| d.utilization).sum::<f64>() / of.len() as f64;
        let max = of.iter().map(|d| d.utilization).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>8.2}% {:>8.2}% {:>10} {:>10}",
            t,
            of.len(),
            mean * PERCENT,
            max * PERCENT,
            of.iter().map(|d| d.ops).sum::<u64>(),
            of.iter().map(|d| d.batch_steps).sum::<u64>()
        );
    }
    out
}

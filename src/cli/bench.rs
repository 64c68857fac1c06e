//! `agentc bench SUITE`: measures workflows on this machine through the same path as
//! `agentc run --batch`, simulates the same configurations with the cluster simulator calibrated
//! by `agentc profile`, runs the placement study, and writes a table, `results.json` and
//! `report.html`.

mod report;
mod study;
mod suite;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agentc_compiler::observed::ObservedShape;
use agentc_compiler::{Target, compile_graph};
use agentc_placement::sim::{RunClass, SimSettings, Start};
use agentc_placement::{
    Cluster, CostModel, CostSettings, DeviceProfile, HardwareCatalog, Simulation,
};
use agentc_runtime::ServingConfig;
use anyhow::Context;
use clap::Args;

use super::EXIT_INVALID;
use super::profile::{ProfileArgs, profile};
use super::run::{
    compile_program, local_usd_per_second, read_inputs, run_lines, serving_config, start_runner,
};
use report::{MeasuredRow, Results, Simulated};

/// The development machine's cluster, where measured entries run.
const LOCAL_CLUSTER: &str = include_str!("../../examples/clusters/local.yaml");
const MS_PER_S: f64 = 1e3;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Suite file (see examples/suites/).
    pub suite: PathBuf,
    /// Directory for results.json, report.html and the cached device profile.
    #[arg(short, long, default_value = "target/bench")]
    pub output: PathBuf,
    /// Device profile to calibrate with instead of OUTDIR/profile.json (measured when absent).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// GGUF model the profile times.
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    /// Threads for the LLM engine's forward passes.
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
    /// Measure nothing: simulate the measured rows of OUTDIR/results.json again (with the
    /// profile given, e.g. after re-calibrating) and rewrite the table, JSON and report.
    #[arg(long)]
    pub resimulate: bool,
}

pub fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let suite = match suite::load(&args.suite) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    if args.resimulate {
        return resimulate(&args, &suite);
    }
    let mut results = Results {
        suite: suite.name.clone(),
        load_average: (load_average(), 0.0),
        profile: None,
        measured: Vec::new(),
        skipped: Vec::new(),
        study: Vec::new(),
    };
    if let Some(m) = &suite.measured {
        let profile_path = calibrate(&args)?;
        results.profile = Some(profile_path.display().to_string());
        let total: usize = suite.workloads.len() * m.systems.len() * m.concurrency.len();
        let mut done = 0;
        for w in &suite.workloads {
            let runs = w.runs.unwrap_or(m.runs);
            for system in &m.systems {
                for &c in &m.concurrency {
                    done += 1;
                    eprintln!(
                        "[{done}/{total}] {} {system} concurrency {c}: {runs} runs ...",
                        w.name
                    );
                    match measure(w, system, c, runs, &profile_path, args.threads)? {
                        Ok(row) => {
                            eprintln!("{}", row_line(&row));
                            results.measured.push(row);
                        }
                        Err(why) => {
                            let line = format!("SKIPPED {} {system} c={c}: {why}", w.name);
                            eprintln!("{line}");
                            results.skipped.push(line);
                        }
                    }
                }
            }
        }
    }
    if let Some(s) = &suite.study {
        let started = std::time::Instant::now();
        results.study = study::run(s, &suite.workloads, |line| {
            eprintln!("[{:.0}s] {line}", started.elapsed().as_secs_f64());
        })?;
    }
    results.load_average.1 = load_average();
    write_results(&args, &results)
}

/// Simulates the measured rows of OUTDIR/results.json again and rewrites the outputs.
fn resimulate(args: &BenchArgs, suite: &suite::Suite) -> anyhow::Result<ExitCode> {
    let json = args.output.join("results.json");
    let text = std::fs::read_to_string(&json)
        .with_context(|| format!("cannot read {}", json.display()))?;
    let mut results: Results = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a results file", json.display()))?;
    let profile = calibrate(args)?;
    results.profile = Some(profile.display().to_string());
    for row in &mut results.measured {
        let Some(w) = suite.workloads.iter().find(|w| w.name == row.workload) else {
            continue;
        };
        let observed = observed_shapes(&row.measured);
        row.simulated = Some(simulate(
            &w.workflow,
            &profile,
            &observed,
            &serving_config(row.system == "agentc-no-opt"),
            row.concurrency,
            row.measured.runs,
        )?);
    }
    write_results(args, &results)
}

/// Calls and tokens per LLM node of each measured run, in input order, as the compiler takes
/// them.
/// Results written before per-run figures were kept give one mean shape.
fn observed_shapes(summary: &super::run::BatchSummary) -> Vec<ObservedShape> {
    type Nodes = std::collections::BTreeMap<String, agentc_runtime::LlmNodeStats>;
    let shape = |runs: usize, nodes: &Nodes| {
        ObservedShape::from_totals(
            runs,
            nodes.iter().map(|(node, n)| {
                (
                    node.as_str(),
                    [
                        n.calls,
                        n.prompt_tokens,
                        n.cached_tokens,
                        n.completion_tokens,
                    ],
                )
            }),
        )
    };
    if summary.run_llm_nodes.is_empty() {
        return vec![shape(summary.runs, &summary.llm_nodes)];
    }
    summary
        .run_llm_nodes
        .iter()
        .map(|nodes| shape(1, nodes))
        .collect()
}

fn write_results(args: &BenchArgs, results: &Results) -> anyhow::Result<ExitCode> {
    let text = table(results);
    print!("{text}");
    let json = args.output.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(results)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let html = args.output.join("report.html");
    std::fs::write(&html, report::html(results))
        .with_context(|| format!("cannot write {}", html.display()))?;
    eprintln!("wrote {} and {}", json.display(), html.display());
    Ok(ExitCode::SUCCESS)
}

/// The device profile to calibrate with: given, cached in OUTDIR, or measured now.
fn calibrate(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.profile {
        return Ok(p.clone());
    }
    let cached = args.output.join("profile.json");
    if cached.is_file() {
        eprintln!("calibration: using {}", cached.display());
        return Ok(cached);
    }
    eprintln!("calibration: agentc profile -o {}", cached.display());
    profile(ProfileArgs {
        device: "cpu".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
        device_type: None,
        model: args.model.clone(),
        threads: args.threads,
        output: Some(cached.clone()),
    })?;
    Ok(cached)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Measures one configuration through `agentc run --batch`'s path and simulates it; `Err`
/// explains why it was skipped.
fn measure(
    w: &suite::Workload,
    system: &str,
    concurrency: usize,
    runs: usize,
    profile: &Path,
    threads: usize,
) -> anyhow::Result<Result<MeasuredRow, String>> {
    let Some(inputs_path) = &w.inputs else {
        return Ok(Err("no inputs file".into()));
    };
    let lines = match read_inputs(inputs_path)? {
        Ok(l) if !l.is_empty() => l,
        Ok(_) => return Ok(Err(format!("{} has no inputs", inputs_path.display()))),
        Err(e) => return Ok(Err(e)),
    };
    let lines: Vec<_> = lines.iter().cycle().take(runs).cloned().collect();
    let Some(program) = compile_program(&w.workflow, None, Some(profile))? else {
        return Ok(Err("the workflow did not compile for this machine".into()));
    };
    let no_opt = system == "agentc-no-opt";
    let runner = match start_runner(program, no_opt, threads) {
        Ok(r) => Arc::new(r),
        Err(e) => return Ok(Err(format!("{e:#}"))),
    };
    let usd_per_second = local_usd_per_second(None)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut done = 0;
    let summary = tokio.block_on(run_lines(
        &runner,
        lines,
        concurrency,
        usd_per_second,
        |_, _| {
            done += 1;
            eprint!("\r  {done}/{runs} runs");
            Ok(())
        },
    ))?;
    eprintln!();
    if summary.failed > 0 {
        return Ok(Err(format!(
            "{} of {runs} runs failed: {}",
            summary.failed,
            summary.first_error.as_deref().unwrap_or("unknown error")
        )));
    }
    let observed = observed_shapes(&summary);
    let simulated = simulate(
        &w.workflow,
        profile,
        &observed,
        &serving_config(no_opt),
        concurrency,
        runs,
    )?;
    Ok(Ok(MeasuredRow {
        workload: w.name.clone(),
        system: system.to_string(),
        concurrency,
        measured: summary,
        simulated: Some(simulated),
    }))
}

/// The same configuration in the simulator: the workflow placed on this machine with the
/// measured profile, `runs` runs `concurrency` at a time (closed loop), run i shaped as measured
/// run i was (`shapes[i % len]`: calls, prompt, cached and generated tokens per LLM node),
/// batched as the serving engine batches (`serving`: token budget, running sequences; one at a
/// time without batching).
fn simulate(
    workflow: &Path,
    profile: &Path,
    shapes: &[ObservedShape],
    serving: &ServingConfig,
    concurrency: usize,
    runs: usize,
) -> anyhow::Result<Simulated> {
    let g = agentc_compiler::load_workflow(workflow)?;
    let catalog = HardwareCatalog::builtin()?;
    let cluster = Cluster::from_yaml_str(LOCAL_CLUSTER, "local.yaml", &catalog)?;
    let profile = DeviceProfile::from_path(profile)?;
    let settings = CostSettings::default();
    let unshaped = [ObservedShape::default()];
    let shapes = if shapes.is_empty() { &unshaped } else { shapes };
    let mut parts = Vec::with_capacity(shapes.len());
    for (i, shape) in shapes.iter().enumerate() {
        let target = Target {
            cluster: Some(&cluster),
            settings,
            profile: Some(profile.clone()),
            batch: 1,
            observed: (!shape.nodes.is_empty()).then_some(shape),
            print: false,
        };
        let placed = compile_graph(g.clone(), workflow, &target)?
            .compiled
            .placed
            .context("no placement meets the SLA on this machine")?;
        parts.push((format!("run{i}"), placed));
    }
    let named: Vec<(&str, &agentc_placement::OpGraph)> =
        parts.iter().map(|(n, p)| (n.as_str(), &p.graph)).collect();
    let (union, ranges) = agentc_placement::OpGraph::union(&named)?;
    let assignment: Vec<_> = parts
        .iter()
        .flat_map(|(_, p)| p.assignment.iter().copied())
        .collect();
    let classes: Vec<RunClass> = parts
        .iter()
        .zip(ranges)
        .map(|((name, p), ops)| RunClass {
            name: name.clone(),
            ops,
            sla_s: p.sla_s,
        })
        .collect();
    let cost = CostModel::new(&cluster, settings)?.with_profile(profile)?;
    let priced = cost.price(&union);
    let sim_settings = SimSettings {
        max_batch: if serving.batching {
            serving.max_running
        } else {
            1
        },
        token_budget: serving.step_token_budget as u64,
        ..SimSettings::default()
    };
    let sim = Simulation::new(&cost, &priced, &assignment, classes[0].sla_s, sim_settings)?
        .with_classes(classes)?;
    let order: Vec<usize> = (0..parts.len()).collect();
    let r = sim.run_mix(Start::Closed { concurrency, runs }, &order)?;
    Ok(Simulated {
        p50_ms: r.latency_p50_s * MS_PER_S,
        p95_ms: r.latency_p95_s * MS_PER_S,
        runs_per_s: r.throughput_rps,
        sla_attainment: r.sla_attainment,
    })
}

fn pct(e: f64) -> String {
    if e.is_finite() {
        format!("{:+.0}%", e * 100.0)
    } else {
        "-".into()
    }
}

fn row_line(m: &MeasuredRow) -> String {
    let s = m.simulated.as_ref();
    let e = m.errors().unwrap_or([f64::NAN; 3]);
    format!(
        "{:<22} {:<14} {:>3} {:>5} | {:>9.0} {:>9.0} {:>6} | {:>9.0} {:>9.0} {:>6} | {:>8.4} {:>8.4} {:>6} | {:>5.0}% {:>5.0}% {:>10.4}",
        m.workload,
        m.system,
        m.concurrency,
        m.measured.runs,
        m.measured.p50_ms,
        s.map_or(f64::NAN, |s| s.p50_ms),
        pct(e[0]),
        m.measured.p95_ms,
        s.map_or(f64::NAN, |s| s.p95_ms),
        pct(e[1]),
        m.measured.runs_per_s,
        s.map_or(f64::NAN, |s| s.runs_per_s),
        pct(e[2]),
        100.0 * m.measured.sla_met as f64 / m.measured.runs.max(1) as f64,
        100.0 * s.map_or(f64::NAN, |s| s.sla_attainment),
        m.measured.usd_per_1k_runs,
    )
}

/// The results as text tables: measured vs simulated, ratios of agentc to the baseline, and
/// the placement study.
pub(super) fn table(r: &Results) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if !r.measured.is_empty() {
        let _ = writeln!(
            out,
            "measured on this machine vs simulated (same configuration; error = (sim - measured) / measured)"
        );
        let _ = writeln!(
            out,
            "{:<22} {:<14} {:>3} {:>5} | {:>9} {:>9} {:>6} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>6} | {:>6} {:>6} {:>10}",
            "workload",
            "system",
            "c",
            "runs",
            "p50 ms",
            "sim",
            "err",
            "p95 ms",
            "sim",
            "err",
            "runs/s",
            "sim",
            "err",
            "SLA",
            "sim",
            "$/1k runs"
        );
        for m in &r.measured {
            let _ = writeln!(out, "{}", row_line(m));
        }
        let errs: Vec<[f64; 3]> = r.measured.iter().filter_map(MeasuredRow::errors).collect();
        if !errs.is_empty() {
            let mean = |i: usize| errs.iter().map(|e| e[i].abs()).sum::<f64>() / errs.len() as f64;
            let _ = writeln!(
                out,
                "mean |error|: p50 {:.0}%, p95 {:.0}%, throughput {:.0}% ({} configurations)",
                100.0 * mean(0),
                100.0 * mean(1),
                100.0 * mean(2),
                errs.len()
            );
        }
        for m in r.measured.iter().filter(|m| m.system == "agentc") {
            if let Some(b) = r.measured.iter().find(|b| {
                b.system == "agentc-no-opt"
                    && b.workload == m.workload
                    && b.concurrency == m.concurrency
            }) {
                let _ = writeln!(
                    out,
                    "agentc / agentc-no-opt {} c={}: throughput x{:.2}, p95 x{:.2}",
                    m.workload,
                    m.concurrency,
                    m.measured.runs_per_s / b.measured.runs_per_s.max(f64::MIN_POSITIVE),
                    m.measured.p95_ms / b.measured.p95_ms.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
    for s in &r.skipped {
        let _ = writeln!(out, "{s}");
    }
    if !r.study.is_empty() {
        let _ = writeln!(
            out,
            "placement study (simulated): cheapest $ per 1k runs at the highest load with the SLA attainment target"
        );
        let _ = writeln!(
            out,
            "{:<40} {:<34} {:>8} {:>11} | {:<34} {:>8} {:>11} | {:>7}",
            "workload",
            "best homogeneous",
            "runs/s",
            "$/1k runs",
            "best heterogeneous",
            "runs/s",
            "$/1k runs",
            "saving"
        );
        let cell = |b: &Option<study::Best>| match b {
            Some(b) => format!(
                "{:<34} {:>8.2} {:>11.6}",
                b.cluster, b.max_rps, b.usd_per_1k_runs
            ),
            None => format!("{:<34} {:>8} {:>11}", "none feasible", "-", "-"),
        };
        for row in &r.study {
            let _ = writeln!(
                out,
                "{:<40} {} | {} | {:>7}",
                row.workload,
                cell(&row.homogeneous),
                cell(&row.heterogeneous),
                row.saving.map_or("-".into(), pct)
            );
        }
        for row in &r.study {
            if let Some(b) = &row.heterogeneous {
                let placed: Vec<String> = b
                    .placement
                    .iter()
                    .map(|(t, k)| format!("{t}: {}", k.join(",")))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {} heterogeneous placement: {}",
                    row.workload,
                    placed.join("; ")
                );
            }
        }
        let _ = writeln!(out, "findings:");
        for row in &r.study {
            let _ = writeln!(out, "  {}: {}", row.workload, study::finding(row));
        }
    }
    out
}

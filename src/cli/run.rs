//! `agentc run`: compile a workflow for this machine and run it, once or over a file of inputs.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use agentc_compiler::{Target, compile_graph};
use agentc_placement::{Cluster, CostSettings, DeviceClass, DeviceProfile, HardwareCatalog};
use agentc_plan::decl::ModelKind;
use agentc_runtime::{
    Engine, EngineOptions, Program, RunEvent, RunOutcome, ServingConfig, ServingEngine,
    WorkflowRunner,
};
use anyhow::Context;
use clap::Args;
use futures::StreamExt;
use serde_json::Value as Json;

use super::{EXIT_INVALID, load};

/// The development machine's cluster, the default placement target of `agentc run`.
const LOCAL_CLUSTER: &str = include_str!("../../examples/clusters/local.yaml");

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Workflow YAML file (compiled for this machine), unless --plan is given.
    #[arg(required_unless_present = "plan")]
    pub workflow: Option<PathBuf>,
    /// Run a plan directory written by `agentc build --cluster C -o DIR` instead.
    #[arg(long, conflicts_with = "workflow")]
    pub plan: Option<PathBuf>,
    /// Cluster file to compile for (default: this development machine, one CPU).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
    /// An input as NAME=VALUE; VALUE is text, or JSON for json/list inputs; NAME=@FILE reads
    /// the value from FILE. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Run every line of this JSONL file (one object of inputs per line) and print one JSON
    /// line per input, in input order, then a summary.
    #[arg(long, value_name = "INPUTS.jsonl", conflicts_with = "inputs")]
    pub batch: Option<PathBuf>,
    /// Runs in flight at once with --batch.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Threads for the LLM engine's forward passes.
    #[arg(long, env = "AGENTC_THREADS", default_value_t = agentc_runtime::DEFAULT_THREADS)]
    pub threads: usize,
    /// Serve one LLM call at a time and share no prompt prefixes (the baseline to compare
    /// agentc's batching and prefix reuse against).
    #[arg(long)]
    pub no_optimizations: bool,
    /// Device profile from `agentc profile` to compile with (predictions from measured figures).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// With --batch, also write the summary as JSON to this file.
    #[arg(long, value_name = "FILE", requires = "batch")]
    pub summary_json: Option<PathBuf>,
    /// Send LLM calls to this OpenAI-compatible server (e.g. `http://127.0.0.1:8000/v1`) as
    /// prompt text on /completions, one at a time per run: the plain-orchestrator baseline of
    /// the benchmarks.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// Print no progress on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.concurrency == 0 || args.threads == 0 {
        eprintln!("error: --concurrency and --threads must be at least 1");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let program = match load_program(&args, args.profile.as_deref())? {
        Some(p) => p,
        None => return Ok(ExitCode::from(EXIT_INVALID)),
    };
    let runner = match start_runner(program, args.no_optimizations, args.threads) {
        Ok(r) => Arc::new(match &args.llm_url {
            Some(url) => r.with_remote_llm(url),
            None => r,
        }),
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match &args.batch {
        None => {
            let checked = parse_inputs(&args.inputs).and_then(|i| {
                runner
                    .input_values(&i)
                    .map(|_| i)
                    .map_err(|e| e.to_string())
            });
            let inputs = match checked {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            tokio.block_on(run_once(&runner, inputs, args.quiet))
        }
        Some(path) => {
            let usd_per_second = local_usd_per_second(args.cluster.as_deref())?;
            tokio.block_on(run_batch(&runner, path, &args, usd_per_second))
        }
    }
}

/// What the machine the runs happen on costs per second: the cluster's devices' prices.
pub(super) fn local_usd_per_second(cluster: Option<&Path>) -> anyhow::Result<f64> {
    let catalog = HardwareCatalog::builtin()?;
    let cluster = match cluster {
        Some(path) => Cluster::from_path(path, &catalog)?,
        None => Cluster::from_yaml_str(LOCAL_CLUSTER, "local.yaml", &catalog)?,
    };
    Ok(cluster.devices().iter().map(|d| d.usd_per_second).sum())
}

fn load_program(args: &RunArgs, profile: Option<&Path>) -> anyhow::Result<Option<Program>> {
    match (&args.plan, &args.workflow) {
        (Some(plan), _) => match Program::load(plan) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                eprintln!("error: {e}");
                Ok(None)
            }
        },
        (None, Some(workflow)) => compile_program(workflow, args.cluster.as_deref(), profile),
        (None, None) => unreachable!("clap requires a workflow or --plan"),
    }
}

/// Compiles `workflow` for `cluster` (default: this machine), with measured figures from
/// `profile` if given, and loads the plan in memory. Invalid input and workflows no placement
/// fits are reported on standard error and give `None`.
pub(super) fn compile_program(
    workflow: &Path,
    cluster: Option<&Path>,
    profile: Option<&Path>,
) -> anyhow::Result<Option<Program>> {
    let Some(graph) = load(workflow)? else {
        return Ok(None);
    };
    let catalog = HardwareCatalog::builtin()?;
    let cluster = match cluster {
        Some(path) => Cluster::from_path(path, &catalog)?,
        None => Cluster::from_yaml_str(LOCAL_CLUSTER, "local.yaml", &catalog)?,
    };
    let profile = profile.map(DeviceProfile::from_path).transpose()?;
    let target = Target {
        cluster: Some(&cluster),
        settings: CostSettings::default(),
        profile,
        batch: 1,
        observed: None,
        print: true,
    };
    let compilation = compile_graph(graph, workflow, &target)?;
    if let Some(why) = compilation.infeasible() {
        eprintln!("error: no placement meets the SLA: {why}");
        return Ok(None);
    }
    match Program::from_plan(&compilation.plan()?) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(None)
        }
    }
}

/// A runner for `program` on this machine's CPU; `no_optimizations` turns batching and prefix
/// caching off (the baseline).
pub(super) fn start_runner(
    program: Program,
    no_optimizations: bool,
    threads: usize,
) -> anyhow::Result<WorkflowRunner> {
    runner_with_engines(
        program,
        &mut HashMap::new(),
        &serving_config(no_optimizations),
        threads,
    )
}

/// How `agentc run` serves LLM calls: batching and prefix caching, or neither (`--no-opt`).
pub(super) fn serving_config(no_optimizations: bool) -> ServingConfig {
    if no_optimizations {
        ServingConfig {
            batching: false,
            prefix_caching: false,
            ..ServingConfig::default()
        }
    } else {
        ServingConfig::default()
    }
}

/// A runner for `program` on this machine's CPU whose LLM models run on the serving engines in
/// `engines` (keyed by canonical model path), starting one with `config` for each model file
/// not there yet. Plans placed on devices this machine lacks are refused.
pub(super) fn runner_with_engines(
    program: Program,
    engines: &mut HashMap<PathBuf, ServingEngine>,
    config: &ServingConfig,
    threads: usize,
) -> anyhow::Result<WorkflowRunner> {
    let mut devices = program.devices();
    let catalog = HardwareCatalog::builtin()?;
    devices.retain(|d| !is_local_cpu(&catalog, d));
    if !devices.is_empty() {
        anyhow::bail!(
            "the plan places ops on {}, which this runtime does not have (it runs on this machine's CPU); compile for a cluster of this machine",
            devices.join(", ")
        );
    }
    let mut llms = HashMap::new();
    for model in program.models() {
        if model.kind != ModelKind::Llm {
            continue;
        }
        let path = program.model_path(model);
        let serving = engine_for(&path, engines, config, threads, None).with_context(|| {
            format!("cannot load model `{}` from {}", model.name, path.display())
        })?;
        llms.insert(model.name.clone(), serving);
    }
    Ok(WorkflowRunner::new(program, llms)?)
}

/// The serving engine of the model file at `path`, started on first use (with
/// `chat_template` instead of the file's own, if given).
pub(super) fn engine_for(
    path: &Path,
    engines: &mut HashMap<PathBuf, ServingEngine>,
    config: &ServingConfig,
    threads: usize,
    chat_template: Option<String>,
) -> anyhow::Result<ServingEngine> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(s) = engines.get(&key) {
        return Ok(s.clone());
    }
    let options = EngineOptions {
        threads,
        chat_template,
        ..EngineOptions::default()
    };
    let engine = Engine::load_with(&key, &options)?;
    let serving = ServingEngine::start(Arc::new(engine), config.clone())?;
    engines.insert(key, serving.clone());
    Ok(serving)
}

/// Device ids are `node/type#index`. Ops placed on any CPU type run on this machine's CPU
/// (slower or faster than predicted); GPUs and unknown types are refused until the runtime has
/// a backend for them.
fn is_local_cpu(catalog: &HardwareCatalog, device: &str) -> bool {
    let ty = device
        .split('/')
        .nth(1)
        .and_then(|t| t.split('#').next())
        .unwrap_or("");
    catalog.get(ty).is_some_and(|t| t.class == DeviceClass::Cpu)
}

fn parse_inputs(raw: &[String]) -> Result<serde_json::Map<String, Json>, String> {
    let mut inputs = serde_json::Map::new();
    for item in raw {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| format!("--input `{item}`: expected NAME=VALUE"))?;
        let value = match value.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| format!("--input {name}: cannot read {file}: {e}"))?,
            None => value.to_owned(),
        };
        // JSON when it parses as an array or object (list and json inputs), else text.
        let json = match serde_json::from_str::<Json>(&value) {
            Ok(j @ (Json::Array(_) | Json::Object(_))) => j,
            _ => Json::String(value),
        };
        inputs.insert(name.to_owned(), json);
    }
    Ok(inputs)
}

async fn run_once(
    runner: &WorkflowRunner,
    inputs: serde_json::Map<String, Json>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let sla = runner.program().sla_p95_ms();
    let progress = tokio::spawn(async move {
        let mut tokens: HashMap<String, usize> = HashMap::new();
        while let Some(event) = receiver.recv().await {
            if quiet {
                continue;
            }
            let at = started.elapsed().as_secs_f64();
            match event {
                RunEvent::NodeStarted { node } => {
                    eprintln!("[{at:6.2}s / SLA {:.1}s] {node}: running", sla / 1000.0);
                }
                RunEvent::Token { node, .. } => *tokens.entry(node).or_default() += 1,
                RunEvent::NodeFinished { node, elapsed } => {
                    let n = tokens.get(&node).copied().unwrap_or(0);
                    let rate = if n > 0 {
                        format!(
                            ", {n} tokens, {:.0} tok/s",
                            n as f64 / elapsed.as_secs_f64()
                        )
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "[{at:6.2}s / SLA {:.1}s] {node}: done in {:.0} ms{rate}",
                        sla / 1000.0,
                        elapsed.as_secs_f64() * 1000.0
                    );
                }
            }
        }
    });
    let result = runner
        .run(&inputs, Some(events))
        .instrument(tracing::info_span!("run", id = "run-0"))
        .await;
    let _ = progress.await;
    match result {
        Ok(outcome) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&Json::Object(outcome.outputs.clone()))?
            );
            if !quiet {
                eprintln!("{}", stats_line(&outcome));
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn stats_line(outcome: &RunOutcome) -> String {
    let s = &outcome.stats;
    format!(
        "run: {:.0} ms (SLA {:.0} ms, {}), {} LLM calls, {} prompt tokens ({} from the prefix cache), {} generated",
        s.elapsed_ms,
        s.sla_ms,
        if s.met_sla() { "met" } else { "missed" },
        s.llm_calls,
        s.prompt_tokens,
        s.cached_tokens,
        s.completion_tokens
    )
}

async fn run_batch(
    runner: &Arc<WorkflowRunner>,
    path: &Path,
    args: &RunArgs,
    usd_per_second: f64,
) -> anyhow::Result<ExitCode> {
    let lines = match read_inputs(path)? {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let total = lines.len();
    let stdout = std::io::stdout();
    let mut done = 0;
    let summary = run_lines(runner, lines, args.concurrency, usd_per_second, |i, result| {
        let line = match result {
            Ok(outcome) => serde_json::json!({"index": i, "outputs": outcome.outputs, "ms": outcome.stats.elapsed_ms}),
            Err(e) => serde_json::json!({"index": i, "error": e.to_string()}),
        };
        done += 1;
        if !args.quiet {
            eprint!("\r{done}/{total} runs");
        }
        writeln!(stdout.lock(), "{line}").context("cannot write to standard output")
    })
    .await?;
    if !args.quiet {
        eprintln!();
    }
    eprintln!("{}", summary.line());
    if let Some(path) = &args.summary_json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The lines of a JSONL file of inputs (one object per line, blank lines skipped); a bad line
/// is named as `file:line: why`.
pub(super) fn read_inputs(
    path: &Path,
) -> anyhow::Result<Result<Vec<serde_json::Map<String, Json>>, String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Json>(&line) {
            Ok(Json::Object(map)) => lines.push(map),
            Ok(_) => {
                return Ok(Err(format!(
                    "{}:{}: expected a JSON object of inputs",
                    path.display(),
                    i + 1
                )));
            }
            Err(e) => return Ok(Err(format!("{}:{}: {e}", path.display(), i + 1))),
        }
    }
    Ok(Ok(lines))
}

/// Runs every input, `concurrency` at a time (a new run starts when the oldest in flight
/// finishes), calling `each` with every result in input order, and summarises the batch. This
/// is `agentc run --batch`; `agentc bench` measures through it too.
pub(super) async fn run_lines(
    runner: &Arc<WorkflowRunner>,
    lines: Vec<serde_json::Map<String, Json>>,
    concurrency: usize,
    usd_per_second: f64,
    mut each: impl FnMut(usize, &agentc_runtime::Result<RunOutcome>) -> anyhow::Result<()>,
) -> anyhow::Result<BatchSummary> {
    let started = Instant::now();
    let mut results = futures::stream::iter(lines.into_iter().enumerate().map(|(i, inputs)| {
        let runner = Arc::clone(runner);
        let span = tracing::info_span!("run", id = %format!("run-{i}"));
        async move { (i, runner.run(&inputs, None).instrument(span).await) }
    }))
    .buffered(concurrency.max(1));
    let mut summary = BatchSummary::default();
    // `buffered` yields in input order, so per-run figures are kept in input order.
    while let Some((i, result)) = results.next().await {
        match &result {
            Ok(outcome) => summary.add(&outcome.stats),
            Err(e) => {
                summary.failed += 1;
                if summary.first_error.is_none() {
                    summary.first_error = Some(e.to_string());
                }
            }
        }
        each(i, &result)?;
    }
    summary.finish(started.elapsed(), usd_per_second);
    Ok(summary)
}

/// What a batch of runs did, for people (one line) and for benchmark scripts (JSON).
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(super) struct BatchSummary {
    pub runs: usize,
    pub failed: usize,
    pub wall_s: f64,
    pub runs_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub sla_ms: f64,
    pub sla_met: usize,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub prefix_cache_hit_rate: f64,
    /// The machine's price for the batch's wall time, per 1000 successful runs.
    pub usd_per_1k_runs: f64,
    /// Per op kind: mean measured and predicted milliseconds per op.
    pub by_kind: std::collections::BTreeMap<String, KindSummary>,
    /// Per LLM node: calls and tokens summed over the successful runs.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty", default)]
    pub llm_nodes: std::collections::BTreeMap<String, agentc_runtime::LlmNodeStats>,
    /// The same per successful run, in input order (what the simulator replays).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub run_llm_nodes: Vec<std::collections::BTreeMap<String, agentc_runtime::LlmNodeStats>>,
    /// Latency of every successful run in ms, sorted.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub latencies: Vec<f64>,
    /// The first failed run's error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_error: Option<String>,
}

#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub(super) struct KindSummary {
    pub count: usize,
    pub measured_ms: f64,
    pub predicted_ms: f64,
}

impl BatchSummary {
    fn add(&mut self, s: &agentc_runtime::RunStats) {
        self.runs += 1;
        self.latencies.push(s.elapsed_ms);
        self.sla_ms = s.sla_ms;
        self.sla_met += usize::from(s.met_sla());
        self.prompt_tokens += s.prompt_tokens;
        self.cached_tokens += s.cached_tokens;
        self.completion_tokens += s.completion_tokens;
        for (kind, k) in &s.by_kind {
            let entry = self.by_kind.entry(kind.clone()).or_default();
            entry.count += k.count;
            entry.measured_ms += k.measured_ms;
            entry.predicted_ms += k.predicted_ms;
        }
        self.run_llm_nodes.push(s.llm_nodes.clone());
        for (node, n) in &s.llm_nodes {
            let entry = self.llm_nodes.entry(node.clone()).or_default();
            entry.calls += n.calls;
            entry.prompt_tokens += n.prompt_tokens;
            entry.cached_tokens += n.cached_tokens;
            entry.completion_tokens += n.completion_tokens;
        }
    }

    fn finish(&mut self, wall: Duration, usd_per_second: f64) {
        self.latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| match self.latencies.len() {
            0 => 0.0,
            n => self.latencies[((n as f64 * p).ceil() as usize).clamp(1, n) - 1],
        };
        self.p50_ms = pct(0.5);
        self.p95_ms = pct(0.95);
        self.wall_s = wall.as_secs_f64();
        self.runs_per_s = self.runs as f64 / self.wall_s.max(f64::MIN_POSITIVE);
        self.prefix_cache_hit_rate = if self.prompt_tokens == 0 {
            0.0
        } else {
            self.cached_tokens as f64 / self.prompt_tokens as f64
        };
        self.usd_per_1k_runs = if self.runs == 0 {
            0.0
        } else {
            self.wall_s * usd_per_second * 1000.0 / self.runs as f64
        };
        for k in self.by_kind.values_mut() {
            if k.count > 0 {
                k.measured_ms /= k.count as f64;
                k.predicted_ms /= k.count as f64;
            }
        }
    }

    fn line(&self) -> String {
        let total = self.runs + self.failed;
        let mut line = format!(
            "{total} runs in {:.2} s: {:.2} runs/s, p50 {:.0} ms, p95 {:.0} ms, SLA met {}/{total}, {} failed, prefix cache hit {:.1}% of {} prompt tokens, ${:.4} per 1k runs",
            self.wall_s,
            self.runs_per_s,
            self.p50_ms,
            self.p95_ms,
            self.sla_met,
            self.failed,
            100.0 * self.prefix_cache_hit_rate,
            self.prompt_tokens,
            self.usd_per_1k_runs,
        );
        for (kind, k) in &self.by_kind {
            line.push_str(&format!(
                "\n  {kind}: {} ops, measured {:.1} ms, predicted {:.1} ms per op",
                k.count, k.measured_ms, k.predicted_ms
            ));
        }
        line
    }
}

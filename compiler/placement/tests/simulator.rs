//! The simulator on cases with a closed-form or constructed answer: an M/D/1 queue, one batch
//! with known step times, a prefix-cache hit rate fixed by construction, KV capacity forcing an
//! exact number of evictions, EDF against FIFO order, and bad inputs.

use agentc_placement::cluster::DeviceId;
use agentc_placement::graph::Flops;
use agentc_placement::profile::StepTokens;
use agentc_placement::sim::{Arrivals, Dispatch, QueuePolicy, SimSettings, Simulation};
use agentc_placement::synthetic::llama_8b;
use agentc_placement::{
    Cluster, CostModel, CostSettings, Error, HardwareCatalog, ModelShape, OpGraph, OpKind, Work,
};

const BOX: &str = "name: box
pricing: { mode: on_demand }
nodes:
  - name: n
    devices:
      - { type: xeon-8480p, count: 1 }
      - { type: h100-sxm, count: 1 }
";
const CPU: DeviceId = DeviceId(0);
const H100: DeviceId = DeviceId(1);

fn cluster() -> Cluster {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    Cluster::from_yaml_str(BOX, "box.yaml", &catalog).expect("cluster")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// One step of `members` identical sequences of `work` (each processing one of its `tokens`).
fn step(cost: &CostModel<'_>, work: &Work, tokens: u64, members: f64, weights: f64) -> f64 {
    let per = members / tokens as f64;
    let flops = Flops {
        fp16: work.flops.fp16 * per,
        ..Flops::default()
    };
    cost.step_s(
        H100,
        None,
        StepTokens::new(0, members as u64, 0),
        0.0,
        &flops,
        work.bytes_read * per + weights,
    )
    .expect("device")
}

#[test]
fn md1_mean_wait_matches_pollaczek_khinchine() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let mut b = OpGraph::builder();
    b.op("render", OpKind::Render, Work::host(1.0e6, 0.0));
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let service = priced
        .cost(agentc_placement::OpId(0), CPU.0)
        .expect("runs")
        .busy_s;
    let rho = 0.5;
    let arrivals = Arrivals::poisson(rho / service, 200_000, 7).expect("arrivals");
    let sim = Simulation::new(&cost, &priced, &[CPU], 1.0, SimSettings::default()).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    let wait = report.latency_mean_s - service;
    let expected = rho * service / (2.0 * (1.0 - rho));
    let error = (wait - expected).abs() / expected;
    println!(
        "M/D/1: D = {service:.6e} s, rho = {rho}, mean wait {wait:.6e} s, \
         closed form {expected:.6e} s, relative error {error:.4}, utilisation {:.4}",
        report.devices[0].utilization
    );
    assert_eq!(report.completed, 200_000);
    assert!(error < 0.03, "relative error {error}");
    assert!((report.devices[0].utilization - rho).abs() < 0.01);
    // Deterministic: the same seed gives the same report.
    let again = sim.run(&arrivals).expect("report");
    assert_eq!(again, report);
}

#[test]
fn one_batch_finishes_after_its_known_steps() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let m = llama_8b();
    let tokens = 10;
    let work = Work::decode(&m, 0, tokens);
    let mut b = OpGraph::builder();
    b.op("decode", OpKind::Decode, work.clone());
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let arrivals = Arrivals::from_times(vec![0.0; 4]).expect("arrivals");
    // All four fit one step: every run ends after 10 steps of a batch of 4.
    let sim = Simulation::new(&cost, &priced, &[H100], 1.0, SimSettings::default()).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    let four = step(&cost, &work, tokens, 4.0, m.weight_bytes);
    assert!(close(report.latency_max_s, 10.0 * four));
    assert!(close(report.latency_p50_s, 10.0 * four));
    assert_eq!(report.batch_steps, 10);
    assert_eq!(report.mean_batch_tokens, 4.0);
    // A budget of 2 tokens: two sequences run 10 steps, then the other two.
    let settings = SimSettings {
        token_budget: 2,
        ..SimSettings::default()
    };
    let sim = Simulation::new(&cost, &priced, &[H100], 1.0, settings).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    let two = step(&cost, &work, tokens, 2.0, m.weight_bytes);
    assert!(close(report.latency_p50_s, 10.0 * two));
    assert!(close(report.latency_max_s, 20.0 * two));
    assert_eq!(report.batch_steps, 20);
    // Batching beats running the four alone: 10 steps of 4 take less than 40 steps of 1.
    let one = step(&cost, &work, tokens, 1.0, m.weight_bytes);
    assert!(10.0 * four < 40.0 * one);
}

/// A model whose weights leave exactly `kv_bytes` of the H100's usable memory for KV.
fn model_leaving(cost: &CostModel<'_>, kv_bytes: f64) -> ModelShape {
    let mut b = OpGraph::builder();
    b.op("x", OpKind::Render, Work::host(1.0, 0.0));
    let graph = b.build().expect("graph");
    let capacity = cost.price(&graph).devices()[H100.0].capacity;
    ModelShape {
        weight_bytes: capacity - kv_bytes,
        ..llama_8b()
    }
}

#[test]
fn shared_prefix_hits_every_run_but_the_first() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let m = llama_8b();
    let (prompt, prefix) = (1000, 256);
    let mut b = OpGraph::builder();
    let op = b.op("prefill", OpKind::Prefill, Work::prefill(&m, prompt, 0));
    let g = b.prefix_group("system", prefix as f64 * m.kv_bytes_per_token);
    b.join_prefix(op, g);
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let runs = 10;
    let arrivals = Arrivals::from_times((0..runs).map(f64::from).collect()).expect("arrivals");
    let sim = Simulation::new(&cost, &priced, &[H100], 1.0, SimSettings::default()).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    assert_eq!((report.cache_lookups, report.cache_hits), (10, 9));
    assert_eq!(report.cache_hit_rate, 0.9);
    assert_eq!(report.cache_evictions, 0);
    let work = Work::prefill(&m, prompt, 0);
    let full = step(&cost, &work, prompt, prompt as f64, m.weight_bytes);
    let hit = step(
        &cost,
        &work,
        prompt,
        (prompt - prefix) as f64,
        m.weight_bytes,
    );
    assert!(close(report.latency_max_s, full));
    assert!(close(report.latency_p50_s, hit));
}

#[test]
fn kv_capacity_forces_an_eviction_at_every_prefix_insert_but_the_first() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let kv = llama_8b().kv_bytes_per_token;
    // Room for one 100-token sequence and one 64-token prefix, not for a second prefix.
    let m = model_leaving(&cost, 150.0 * kv);
    let mut b = OpGraph::builder();
    let first = b.op("a", OpKind::Prefill, Work::prefill(&m, 100, 0));
    let second = b.op("b", OpKind::Prefill, Work::prefill(&m, 100, 0));
    b.dep(first, second);
    for (name, op) in [("pa", first), ("pb", second)] {
        let g = b.prefix_group(name, 64.0 * kv);
        b.join_prefix(op, g);
    }
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let runs: u32 = 5;
    let arrivals =
        Arrivals::from_times((0..runs).map(|r| f64::from(r) * 10.0).collect()).expect("arrivals");
    let sim =
        Simulation::new(&cost, &priced, &[H100, H100], 10.0, SimSettings::default()).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    // Each admission evicts the other group's prefix, except the very first.
    assert_eq!(report.cache_evictions, 2 * u64::from(runs) - 1);
    assert_eq!((report.cache_lookups, report.cache_hits), (10, 0));
    // With room for both prefixes every run after the first hits twice.
    let roomy = model_leaving(&cost, 250.0 * kv);
    let mut b = OpGraph::builder();
    let first = b.op("a", OpKind::Prefill, Work::prefill(&roomy, 100, 0));
    let second = b.op("b", OpKind::Prefill, Work::prefill(&roomy, 100, 0));
    b.dep(first, second);
    for (name, op) in [("pa", first), ("pb", second)] {
        let g = b.prefix_group(name, 64.0 * kv);
        b.join_prefix(op, g);
    }
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let sim =
        Simulation::new(&cost, &priced, &[H100, H100], 10.0, SimSettings::default()).expect("sim");
    let report = sim.run(&arrivals).expect("report");
    assert_eq!(report.cache_evictions, 0);
    assert_eq!((report.cache_lookups, report.cache_hits), (10, 8));
}

/// Start order of the ops on the CPU under `policy`.
fn cpu_order(policy: QueuePolicy) -> Vec<String> {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let mut b = OpGraph::builder();
    let host = || Work::host(1.0e5, 0.0);
    b.op("blocker", OpKind::Render, host());
    b.op("short_tail", OpKind::Render, host());
    let x = b.op("long_tail", OpKind::Render, host());
    let z = b.op(
        "after",
        OpKind::Prefill,
        Work::prefill(&llama_8b(), 4096, 0),
    );
    b.dep(x, z);
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let settings = SimSettings {
        policy,
        dispatch: Dispatch::Pinned,
        record_ops: true,
        ..SimSettings::default()
    };
    let sim = Simulation::new(&cost, &priced, &[CPU, CPU, CPU, H100], 1.0, settings).expect("sim");
    let report = sim
        .run(&Arrivals::from_times(vec![0.0]).expect("arrivals"))
        .expect("report");
    let mut log: Vec<_> = report.op_log.iter().filter(|r| r.device == CPU).collect();
    log.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    log.iter().map(|r| graph.op(r.op).name.clone()).collect()
}

#[test]
fn edf_serves_the_op_with_less_slack_first_and_fifo_does_not() {
    // All three are ready at once: EDF takes the one whose dependent still has to run on the GPU.
    assert_eq!(
        cpu_order(QueuePolicy::Edf),
        ["long_tail", "blocker", "short_tail"]
    );
    assert_eq!(
        cpu_order(QueuePolicy::Fifo),
        ["blocker", "short_tail", "long_tail"]
    );
}

#[test]
fn bad_inputs_give_exact_errors() {
    let message = |e: Error| e.to_string();
    assert_eq!(
        message(Arrivals::poisson(0.0, 10, 1).unwrap_err()),
        "invalid simulation: the arrival rate must be a positive number of runs per second, got 0"
    );
    assert_eq!(
        message(Arrivals::poisson(-2.0, 10, 1).unwrap_err()),
        "invalid simulation: the arrival rate must be a positive number of runs per second, got -2"
    );
    assert_eq!(
        message(Arrivals::poisson(1.0, 0, 1).unwrap_err()),
        "invalid simulation: the number of runs must be at least 1"
    );
    assert_eq!(
        message(Arrivals::from_trace_str("# t\n0.5\n\nsoon\n", "t.csv").unwrap_err()),
        "t.csv:4:1: `soon` is not an arrival time in seconds (one number per line)"
    );
    assert_eq!(
        message(Arrivals::from_trace_str("0.5,a\n0.25,b\n", "t.csv").unwrap_err()),
        "t.csv:2:1: arrival time 0.25 is earlier than the previous one (0.5); sort the trace"
    );
    assert_eq!(
        message(Arrivals::from_trace_str("-1\n", "t.csv").unwrap_err()),
        "t.csv:1:1: arrival time -1 must be a finite number of seconds >= 0"
    );
    assert_eq!(
        message(Arrivals::from_trace_str("# nothing\n", "t.csv").unwrap_err()),
        "t.csv: the trace has no arrival times"
    );
    let trace = Arrivals::from_trace_str("0\n0.5, extra\n2\n", "t.csv").expect("trace");
    assert_eq!(trace.times(), [0.0, 0.5, 2.0]);
    // An empty cluster is refused when the cluster file is read.
    let catalog = HardwareCatalog::builtin().expect("catalog");
    let empty = "name: e\npricing: { mode: on_demand }\nnodes: []\n";
    assert_eq!(
        message(Cluster::from_yaml_str(empty, "e.yaml", &catalog).unwrap_err()),
        "e.yaml: a cluster needs at least one node"
    );
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let mut b = OpGraph::builder();
    b.op("tokenize", OpKind::Tokenize, Work::host(10.0, 10.0));
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let new = |assignment: &[DeviceId], sla: f64| {
        Simulation::new(&cost, &priced, assignment, sla, SimSettings::default())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        new(&[H100], 1.0),
        "invalid simulation: op `tokenize` cannot run on its device `n/h100-sxm#0`"
    );
    assert_eq!(
        new(&[DeviceId(7)], 1.0),
        "invalid simulation: op `tokenize` is placed on device 7 which the cluster does not have"
    );
    assert_eq!(
        new(&[CPU], 0.0),
        "invalid simulation: the SLA must be a positive number of seconds, got 0"
    );
    assert_eq!(
        new(&[], 1.0),
        "invalid simulation: the placement has 0 devices for 1 ops"
    );
    let huge = model_leaving(&cost, 10.0 * llama_8b().kv_bytes_per_token);
    let mut b = OpGraph::builder();
    b.op("prefill", OpKind::Prefill, Work::prefill(&huge, 100, 0));
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    assert_eq!(
        Simulation::new(&cost, &priced, &[H100], 1.0, SimSettings::default())
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        "invalid simulation: op `prefill` needs 13107200 bytes of KV but device \
         `n/h100-sxm#0` has 1310720 bytes left after the weights"
    );
}

#[test]
fn fused_decode_steps_give_the_same_results_as_single_steps() {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    let cluster = Cluster::from_yaml_str(
        "name: two
pricing: { mode: on_demand }
nodes:
  - name: n
    devices:
      - { type: xeon-8480p, count: 2 }
      - { type: h100-sxm, count: 2 }
      - { type: l4, count: 2 }
",
        "two.yaml",
        &catalog,
    )
    .expect("cluster");
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let graph = agentc_placement::synthetic::agent_workflow(30, 5, &llama_8b()).expect("graph");
    let priced = cost.price(&graph);
    let placement =
        agentc_placement::PlacementSolver::new(&priced, agentc_placement::SolverSettings::new(1e3))
            .and_then(|s| s.solve())
            .expect("placement");
    let arrivals = Arrivals::poisson(3.0, 300, 11).expect("arrivals");
    let run = |fuse_steps: bool| {
        let settings = SimSettings {
            fuse_steps,
            ..SimSettings::default()
        };
        Simulation::new(&cost, &priced, &placement.assignment, 30.0, settings)
            .expect("sim")
            .run(&arrivals)
            .expect("report")
    };
    let (fused, single) = (run(true), run(false));
    let near = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-12);
    assert_eq!(fused.batch_steps, single.batch_steps);
    assert_eq!(fused.cache_hits, single.cache_hits);
    assert!(near(fused.latency_mean_s, single.latency_mean_s));
    assert!(near(fused.latency_p99_s, single.latency_p99_s));
    assert!(near(
        fused.usd_per_1k_runs_busy,
        single.usd_per_1k_runs_busy
    ));
    println!(
        "fused vs single steps: {} steps, p99 {} s vs {} s, mean batch {:.2} tokens",
        fused.batch_steps, fused.latency_p99_s, single.latency_p99_s, fused.mean_batch_tokens
    );
}

//! Simulation speed on a 256-GPU mixed cluster (128 H100, 64 A100, 64 L4 on 32 nodes, two host
//! CPUs per node): a ~40-op synthetic agent workflow placed by the solver, spread over every
//! device of each placed type, 100,000 Poisson runs at about 60% of the busiest pool's capacity.

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use agentc_placement::sim::{Arrivals, SimSettings, Simulation};
use agentc_placement::synthetic::{agent_workflow, llama_8b};
use agentc_placement::{
    Cluster, CostModel, CostSettings, HardwareCatalog, OpId, PlacementSolver, SolverSettings,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RUNS: usize = 100_000;
const TARGET_LOAD: f64 = 0.6;

fn cluster_yaml() -> String {
    let mut y = String::from("name: mixed-256\npricing: { mode: on_demand }\nnodes:\n");
    for n in 0..32 {
        let gpu = match n {
            0..16 => "h100-sxm",
            16..24 => "a100-80gb-sxm",
            _ => "l4",
        };
        let _ = write!(
            y,
            "  - name: n{n}\n    devices:\n      - {{ type: xeon-8480p, count: 2 }}\n      \
             - {{ type: {gpu}, count: 8 }}\n"
        );
    }
    y.push_str("default_link: { bandwidth_gbs: 50, latency_us: 5 }\n");
    y
}

fn simulate(c: &mut Criterion) {
    let Ok(catalog) = HardwareCatalog::builtin() else {
        return;
    };
    let Ok(cluster) = Cluster::from_yaml_str(&cluster_yaml(), "mixed-256.yaml", &catalog) else {
        return;
    };
    let Ok(cost) = CostModel::new(&cluster, CostSettings::default()) else {
        return;
    };
    let Ok(graph) = agent_workflow(40, 42, &llama_8b()) else {
        return;
    };
    let priced = cost.price(&graph);
    let Ok(placement) =
        PlacementSolver::new(&priced, SolverSettings::new(1e3)).and_then(|s| s.solve())
    else {
        return;
    };
    let sla = placement.latency_s * 4.0;
    let Ok(sim) = Simulation::new(
        &cost,
        &priced,
        &placement.assignment,
        sla,
        SimSettings::default(),
    ) else {
        return;
    };
    // Busy seconds per run on each placed type over the devices of that type.
    let devices = priced.devices();
    let mut per_type = vec![0.0; priced.type_names().len()];
    for (i, d) in placement.assignment.iter().enumerate() {
        per_type[devices[d.0].type_index] += priced.cost(OpId(i), d.0).map_or(0.0, |c| c.busy_s);
    }
    let capacity = per_type
        .iter()
        .enumerate()
        .filter(|(_, busy)| **busy > 0.0)
        .map(|(t, busy)| devices.iter().filter(|d| d.type_index == t).count() as f64 / busy)
        .fold(f64::INFINITY, f64::min);
    let Ok(arrivals) = Arrivals::poisson(TARGET_LOAD * capacity, RUNS, 1) else {
        return;
    };
    let mut group = c.benchmark_group("simulate");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(RUNS as u64));
    group.bench_function("256-gpu mixed, 100k runs", |b| {
        b.iter(|| black_box(sim.run(&arrivals).map(|r| r.goodput_rps).ok()))
    });
    group.finish();
    if let Ok(r) = sim.run(&arrivals) {
        eprintln!(
            "{} ops on {} devices, {:.1} runs/s offered: goodput {:.1} runs/s, SLA attainment \
             {:.4}, p99 {:.3} s, {} batch steps of {:.1} tokens, cache hit rate {:.3}",
            graph.len(),
            devices.len(),
            TARGET_LOAD * capacity,
            r.goodput_rps,
            r.sla_attainment,
            r.latency_p99_s,
            r.batch_steps,
            r.mean_batch_tokens,
            r.cache_hit_rate
        );
    }
}

criterion_group!(benches, simulate);
criterion_main!(benches);

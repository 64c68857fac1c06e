//! Placement solve time on synthetic agent workflows of 100, 1,000 and 10,000 ops, on a mixed
//! owned cluster (CPU + L4 + H100) with an SLA halfway between the fastest possible latency and
//! the cheapest placement's, so the latency constraint binds.

use std::hint::black_box;
use std::time::Duration;

use agentc_placement::synthetic::{agent_workflow, llama_8b};
use agentc_placement::{
    Cluster, CostModel, CostSettings, Error, HardwareCatalog, Infeasibility, OpGraph,
    PlacementSolver, SolverSettings,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const CLUSTER: &str = include_str!("bench_cluster.yaml");

/// The SLA halfway between the latency bound and the loose optimum's latency.
fn binding_sla(cost: &CostModel<'_>, graph: &OpGraph) -> f64 {
    let priced = cost.price(graph);
    let loose = PlacementSolver::new(&priced, SolverSettings::new(1e9))
        .and_then(|s| s.solve())
        .map(|p| p.latency_s)
        .unwrap_or(1e9);
    let bound =
        match PlacementSolver::new(&priced, SolverSettings::new(1e-9)).and_then(|s| s.solve()) {
            Err(Error::Infeasible(why)) => match *why {
                Infeasibility::SlaBelowCriticalPath { lower_bound_s, .. } => lower_bound_s,
                _ => 0.0,
            },
            _ => 0.0,
        };
    (loose + bound) / 2.0
}

fn solve(c: &mut Criterion) {
    let Ok(catalog) = HardwareCatalog::builtin() else {
        return;
    };
    let Ok(cluster) = Cluster::from_yaml_str(CLUSTER, "bench.yaml", &catalog) else {
        return;
    };
    let Ok(cost) = CostModel::new(&cluster, CostSettings::default()) else {
        return;
    };
    let mut group = c.benchmark_group("solve");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for ops in [100usize, 1_000, 10_000] {
        let Ok(graph) = agent_workflow(ops, 42, &llama_8b()) else {
            continue;
        };
        let sla = binding_sla(&cost, &graph);
        group.bench_with_input(
            BenchmarkId::new("price+solve", graph.len()),
            &graph,
            |b, graph| {
                b.iter(|| {
                    let priced = cost.price(graph);
                    let placement = PlacementSolver::new(&priced, SolverSettings::new(sla))
                        .and_then(|s| s.solve());
                    black_box(placement.map(|p| p.cost_usd).ok())
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, solve);
criterion_main!(benches);

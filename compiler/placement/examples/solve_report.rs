//! Prints solve time, cost, lower bound and gap for synthetic workflows of growing size, and
//! the exact-vs-heuristic gap on small ones: the figures quoted in docs/placement.md.
//!
//! `cargo run --release -p agentc-placement --example solve_report`

use std::time::Instant;

use agentc_placement::synthetic::{
    agent_workflow, llama_8b, random_catalog_yaml, random_cluster_yaml, random_graph,
};
use agentc_placement::{
    Cluster, CostModel, CostSettings, Error, HardwareCatalog, Infeasibility, OpGraph,
    PlacementSolver, SolverSettings,
};

const CLUSTER: &str = include_str!("../benches/bench_cluster.yaml");

fn bound(cost: &CostModel<'_>, graph: &OpGraph) -> f64 {
    let priced = cost.price(graph);
    match PlacementSolver::new(&priced, SolverSettings::new(1e-9)).and_then(|s| s.solve()) {
        Err(Error::Infeasible(why)) => match *why {
            Infeasibility::SlaBelowCriticalPath { lower_bound_s, .. } => lower_bound_s,
            _ => 0.0,
        },
        _ => 0.0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let catalog = HardwareCatalog::builtin()?;
    let cluster = Cluster::from_yaml_str(CLUSTER, "bench_cluster.yaml", &catalog)?;
    let cost = CostModel::new(&cluster, CostSettings::default())?;
    println!("ops edges | price ms solve ms | latency s / SLA s | $/request lower bound gap");
    for ops in [100usize, 1_000, 10_000] {
        let graph = agent_workflow(ops, 42, &llama_8b())?;
        let priced = cost.price(&graph);
        let loose = PlacementSolver::new(&priced, SolverSettings::new(1e9))?.solve()?;
        let sla = (loose.latency_s + bound(&cost, &graph)) / 2.0;
        let t0 = Instant::now();
        let priced = cost.price(&graph);
        let t1 = Instant::now();
        let placement = PlacementSolver::new(&priced, SolverSettings::new(sla))?.solve()?;
        let t2 = Instant::now();
        println!(
            "{} {} | {:.1} {:.1} | {:.2} / {:.2} | {:.5} {:.5} {:.2}%",
            graph.len(),
            graph.edge_count(),
            (t1 - t0).as_secs_f64() * 1e3,
            (t2 - t1).as_secs_f64() * 1e3,
            placement.latency_s,
            sla,
            placement.cost_usd,
            placement.lower_bound_usd,
            placement.gap * 100.0
        );
    }
    // Heuristic against the exact optimum on small workflows at binding SLAs.
    let mut gaps = Vec::new();
    let mut exact_ms: f64 = 0.0;
    let mut exact_nodes = 0;
    let mut unproven = 0;
    for seed in 0..30u64 {
        let graph = agent_workflow(12 + (seed % 5) as usize, seed, &llama_8b())?;
        let priced = cost.price(&graph);
        let loose = PlacementSolver::new(&priced, SolverSettings::new(1e9))?.solve()?;
        let sla = (loose.latency_s + bound(&cost, &graph)) / 2.0;
        let solver = PlacementSolver::new(&priced, SolverSettings::new(sla))?;
        let t = Instant::now();
        let exact = solver.solve_exact();
        exact_ms = exact_ms.max(t.elapsed().as_secs_f64() * 1e3);
        if let Ok(e) = &exact {
            exact_nodes = exact_nodes.max(e.nodes_explored);
            if !e.proven_optimal {
                unproven += 1;
                if std::env::var_os("VERBOSE").is_some() {
                    println!(
                        "  unproven: {} ops, cost {:.6} bound {:.6} gap {:.3}%",
                        graph.len(),
                        e.cost_usd,
                        e.lower_bound_usd,
                        e.gap * 100.0
                    );
                }
            }
        }
        if let (Ok(exact), Ok(heur)) = (exact, solver.solve_heuristic())
            && exact.proven_optimal
        {
            gaps.push((heur.cost_usd - exact.cost_usd) / exact.cost_usd);
        }
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    let optimal = gaps.iter().filter(|g| **g <= 1e-9).count();
    println!(
        "heuristic vs proven optimum on {} small workflows: optimal in {optimal}, mean excess {:.2}%, worst {:.2}%",
        gaps.len(),
        mean * 100.0,
        worst * 100.0
    );
    println!(
        "exact solver on those: slowest {exact_ms:.1} ms, most nodes {exact_nodes}, node limit hit in {unproven}"
    );
    random_instances()?;
    Ok(())
}

/// Heuristic against the exact optimum on random memory-tight instances (8-12 ops, made-up
/// devices, link charges) at four SLAs each.
fn random_instances() -> Result<(), Box<dyn std::error::Error>> {
    let (mut cases, mut failed, mut optimal) = (0, 0, 0);
    let mut excess = Vec::new();
    for seed in 0..200u64 {
        let catalog = HardwareCatalog::from_yaml_str(&random_catalog_yaml(seed), "random.yaml")?;
        let cluster = Cluster::from_yaml_str(&random_cluster_yaml(true), "random.yaml", &catalog)?;
        let graph = random_graph(seed, 8 + (seed % 5) as usize)?;
        let cost = CostModel::new(&cluster, CostSettings::default())?;
        let priced = cost.price(&graph);
        for sla in [0.1, 0.5, 2.0, 1e4] {
            let solver = PlacementSolver::new(&priced, SolverSettings::new(sla))?;
            let Ok(exact) = solver.solve_exact() else {
                continue;
            };
            if !exact.proven_optimal {
                continue;
            }
            cases += 1;
            match solver.solve_heuristic() {
                Ok(h) => {
                    let x = (h.cost_usd - exact.cost_usd) / exact.cost_usd;
                    if x <= 1e-9 {
                        optimal += 1;
                    }
                    excess.push(x);
                }
                Err(_) => failed += 1,
            }
        }
    }
    let mean = excess.iter().sum::<f64>() / excess.len().max(1) as f64;
    let worst = excess.iter().copied().fold(0.0, f64::max);
    println!(
        "random memory-tight instances: {cases} feasible cases, heuristic optimal in {optimal}, no placement found in {failed}, mean excess {:.1}%, worst {:.0}%",
        mean * 100.0,
        worst * 100.0
    );
    Ok(())
}

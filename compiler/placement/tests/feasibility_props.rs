//! Property: every placement the solver returns is feasible (latency within the SLA, memory
//! within capacity, utilisation within the limit) by the exact evaluator, and never cheaper
//! than the reported lower bound.

use agentc_placement::synthetic::{random_catalog_yaml, random_cluster_yaml, random_graph};
use agentc_placement::{
    Cluster, CostModel, CostSettings, Error, HardwareCatalog, Placement, PlacementSolver,
    SolverSettings,
};
use proptest::prelude::*;

fn check_feasible(
    placement: &Placement,
    solver: &PlacementSolver<'_, '_>,
    sla: f64,
    max_util: f64,
) {
    let assessed = solver.assess(&placement.assignment).expect("assess");
    assert!(
        assessed.feasible,
        "returned placement is infeasible: {assessed:?}"
    );
    assert!(placement.latency_s <= sla * (1.0 + 1e-9) + 1e-9);
    assert!((assessed.cost_usd - placement.cost_usd).abs() <= 1e-12 * placement.cost_usd.max(1.0));
    for d in &placement.devices {
        assert!(d.memory_bytes <= d.capacity_bytes, "{d:?}");
        assert!(d.utilization <= max_util + 1e-12, "{d:?}");
    }
    assert!(placement.lower_bound_usd <= placement.cost_usd * (1.0 + 1e-12));
    assert!((0.0..=1.0).contains(&placement.gap));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn returned_placements_are_feasible(
        seed in 0u64..1_000_000,
        ops in 1usize..40,
        sla in prop::sample::select(vec![0.02, 0.1, 0.5, 2.0, 10.0, 1000.0]),
        rps in prop::sample::select(vec![0.0, 0.2, 1.0]),
        duplicate in any::<bool>(),
    ) {
        let catalog = HardwareCatalog::from_yaml_str(&random_catalog_yaml(seed), "random.yaml")
            .expect("catalog");
        let cluster = Cluster::from_yaml_str(&random_cluster_yaml(duplicate), "random.yaml", &catalog)
            .expect("cluster");
        let graph = random_graph(seed, ops).expect("graph");
        let settings = CostSettings { rps, ..CostSettings::default() };
        let model = CostModel::new(&cluster, settings).expect("model");
        let priced = model.price(&graph);
        let solver = PlacementSolver::new(&priced, SolverSettings::new(sla)).expect("solver");
        for result in [solver.solve(), solver.solve_heuristic()] {
            match result {
                Ok(placement) => check_feasible(&placement, &solver, sla, settings.max_utilization),
                Err(Error::Infeasible(_)) => {}
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Larger graphs exercise the heuristic's downgrade passes and their re-checks.
    #[test]
    fn heuristic_placements_on_larger_graphs_are_feasible(
        seed in 0u64..1_000_000,
        ops in 40usize..300,
        sla in prop::sample::select(vec![0.5, 2.0, 10.0, 60.0]),
        rps in prop::sample::select(vec![0.0, 0.01, 0.05]),
    ) {
        let catalog = HardwareCatalog::from_yaml_str(&random_catalog_yaml(seed), "random.yaml")
            .expect("catalog");
        let cluster = Cluster::from_yaml_str(&random_cluster_yaml(true), "random.yaml", &catalog)
            .expect("cluster");
        let graph = random_graph(seed, ops).expect("graph");
        let settings = CostSettings { rps, ..CostSettings::default() };
        let model = CostModel::new(&cluster, settings).expect("model");
        let priced = model.price(&graph);
        let solver = PlacementSolver::new(&priced, SolverSettings::new(sla)).expect("solver");
        match solver.solve() {
            Ok(placement) => check_feasible(&placement, &solver, sla, settings.max_utilization),
            Err(Error::Infeasible(_)) => {}
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}

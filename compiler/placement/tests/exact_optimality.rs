//! The exact solver against exhaustive enumeration: on random instances of up to 10 ops and
//! 4 device types it finds the same optimum (or proves infeasibility whenever enumeration does).

use agentc_placement::synthetic::{random_catalog_yaml, random_cluster_yaml, random_graph};
use agentc_placement::{
    Cluster, CostModel, CostSettings, Error, HardwareCatalog, Infeasibility, OpGraph,
    PlacementSolver, SolverSettings, cluster::DeviceId,
};

/// Tolerance the solver uses when comparing latency with the SLA.
const LATENCY_EPS: f64 = 1e-9;

/// (cost, latency, within memory and load limits) of every one of the `devices^ops`
/// assignments. The SLA does not change these, so one enumeration serves every SLA.
fn enumerate(
    solver: &PlacementSolver<'_, '_>,
    ops: usize,
    devices: usize,
) -> Vec<(f64, f64, bool)> {
    let mut assign = vec![0usize; ops];
    let mut all = Vec::with_capacity(devices.pow(ops as u32));
    loop {
        let ids: Vec<DeviceId> = assign.iter().map(|&d| DeviceId(d)).collect();
        let a = solver.assess(&ids).expect("valid assignment");
        let runnable = a.cost_usd.is_finite() && a.latency_s.is_finite();
        all.push((
            a.cost_usd,
            a.latency_s,
            runnable && a.memory_ok && a.utilization_ok,
        ));
        // Odometer increment.
        let mut i = 0;
        loop {
            if i == ops {
                return all;
            }
            assign[i] += 1;
            if assign[i] < devices {
                break;
            }
            assign[i] = 0;
            i += 1;
        }
    }
}

/// The cheapest enumerated assignment that meets `sla`.
fn best_within(all: &[(f64, f64, bool)], sla: f64) -> Option<f64> {
    all.iter()
        .filter(|(_, latency, ok)| *ok && *latency <= sla * (1.0 + LATENCY_EPS) + LATENCY_EPS)
        .map(|(cost, _, _)| *cost)
        .fold(None, |best: Option<f64>, c| {
            Some(best.map_or(c, |b| b.min(c)))
        })
}

struct Instance {
    cluster: Cluster,
    graph: OpGraph,
    rps: f64,
}

fn instance(seed: u64, ops: usize, duplicate: bool) -> Instance {
    let catalog =
        HardwareCatalog::from_yaml_str(&random_catalog_yaml(seed), "random.yaml").expect("catalog");
    let cluster = Cluster::from_yaml_str(&random_cluster_yaml(duplicate), "random.yaml", &catalog)
        .expect("cluster");
    let graph = random_graph(seed, ops).expect("graph");
    // Every third instance runs under load so queueing is part of the check.
    let rps = if seed.is_multiple_of(3) { 0.5 } else { 0.0 };
    Instance {
        cluster,
        graph,
        rps,
    }
}

/// How many SLA cases were checked, how many were feasible, and in how many the SLA made the
/// optimum dearer than the loose one (the SLA bound).
#[derive(Default)]
struct Tally {
    checked: usize,
    feasible: usize,
    binding: usize,
}

/// Checks one instance at several SLAs between "impossible" and "loose".
fn check(seed: u64, ops: usize, duplicate: bool, tally: &mut Tally) {
    let inst = instance(seed, ops, duplicate);
    let settings = CostSettings {
        rps: inst.rps,
        ..CostSettings::default()
    };
    let model = CostModel::new(&inst.cluster, settings).expect("model");
    let priced = model.price(&inst.graph);
    let devices = priced.device_count();
    let any = PlacementSolver::new(&priced, SolverSettings::new(1.0)).expect("solver");
    let all = enumerate(&any, ops, devices);
    let loose = best_within(&all, f64::MAX);
    for sla in [0.01, 0.05, 0.2, 1.0, 5.0, 1e4] {
        let solver = PlacementSolver::new(&priced, SolverSettings::new(sla)).expect("solver");
        let brute = best_within(&all, sla);
        let exact = solver.solve_exact();
        match (brute, exact) {
            (Some(best), Ok(placement)) => {
                assert!(placement.proven_optimal);
                let tolerance = 1e-9 * best.abs().max(1e-12);
                assert!(
                    (placement.cost_usd - best).abs() <= tolerance,
                    "seed {seed} ops {ops} sla {sla}: exact {} vs enumeration {best}",
                    placement.cost_usd
                );
                let lb = solver.lower_bound_usd().expect("bound");
                assert!(
                    lb <= best * (1.0 + 1e-9),
                    "seed {seed}: bound {lb} > optimum {best}"
                );
                tally.checked += 1;
                tally.feasible += 1;
                if loose.is_some_and(|l| best > l * (1.0 + 1e-9)) {
                    tally.binding += 1;
                }
            }
            (None, Err(Error::Infeasible(why))) => {
                if let Infeasibility::NoPlacementFound { proven, .. } = *why {
                    assert!(proven, "seed {seed} sla {sla}: infeasibility not proven");
                }
                tally.checked += 1;
            }
            (brute, exact) => panic!(
                "seed {seed} ops {ops} sla {sla}: enumeration {brute:?}, exact {:?}",
                exact.map(|p| p.cost_usd)
            ),
        }
    }
}

#[test]
fn exact_matches_enumeration_on_small_instances() {
    let mut tally = Tally::default();
    for seed in 0..40u64 {
        let ops = 2 + (seed % 6) as usize; // 2..=7 ops, 5 devices (two interchangeable)
        check(seed, ops, true, &mut tally);
    }
    assert_eq!(tally.checked, 40 * 6);
    // The instances exercise both outcomes and SLAs that change the optimum.
    println!(
        "feasible {} of {}, SLA binding in {}",
        tally.feasible, tally.checked, tally.binding
    );
    assert!(tally.feasible >= 60 && tally.feasible < tally.checked);
    assert!(tally.binding >= 10);
}

#[test]
fn exact_matches_enumeration_at_ten_ops_and_four_device_types() {
    let mut tally = Tally::default();
    for seed in [101u64, 202] {
        check(seed, 10, false, &mut tally);
    }
    assert_eq!(tally.checked, 2 * 6);
    println!(
        "feasible {} of {}, SLA binding in {}",
        tally.feasible, tally.checked, tally.binding
    );
}

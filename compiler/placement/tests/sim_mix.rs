//! Mixes of workflows and closed-loop runs in the simulator, on cases with a constructed
//! answer: one CPU serving single ops of known service time.

use agentc_placement::cluster::DeviceId;
use agentc_placement::sim::{Arrivals, RunClass, SimSettings, Simulation, Start};
use agentc_placement::{
    Cluster, CostModel, CostSettings, HardwareCatalog, OpGraph, OpId, OpKind, Work,
};

const BOX: &str = "name: box
pricing: { mode: on_demand }
nodes:
  - name: n
    devices:
      - { type: xeon-8480p, count: 1 }
";
const CPU: DeviceId = DeviceId(0);

fn cluster() -> Cluster {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    Cluster::from_yaml_str(BOX, "box.yaml", &catalog).expect("cluster")
}

fn two_ops(bytes: f64) -> OpGraph {
    let mut b = OpGraph::builder();
    let r = b.op("render", OpKind::Render, Work::host(bytes, 0.0));
    let j = b.op("json", OpKind::Json, Work::host(bytes, 0.0));
    b.dep(r, j);
    b.build().expect("graph")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn closed_loop_keeps_n_runs_in_flight() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let mut b = OpGraph::builder();
    b.op("render", OpKind::Render, Work::host(1.0e6, 0.0));
    let graph = b.build().expect("graph");
    let priced = cost.price(&graph);
    let d = priced.cost(OpId(0), CPU.0).expect("runs").busy_s;
    let sim = Simulation::new(&cost, &priced, &[CPU], 1.0, SimSettings::default()).expect("sim");
    // One in flight: every run takes exactly D, back to back.
    let one = sim
        .run_mix(
            Start::Closed {
                concurrency: 1,
                runs: 5,
            },
            &[],
        )
        .expect("report");
    assert_eq!(one.completed, 5);
    assert!(close(one.latency_p95_s, d) && close(one.latency_p50_s, d));
    assert!(close(one.duration_s, 5.0 * d));
    // Two in flight on one CPU: the first takes D, every later run waits for one service.
    let two = sim
        .run_mix(
            Start::Closed {
                concurrency: 2,
                runs: 4,
            },
            &[],
        )
        .expect("report");
    assert!(close(two.latency_max_s, 2.0 * d), "{two:?}");
    assert!(close(two.latency_p50_s, 2.0 * d));
    assert!(close(two.latency_mean_s, 7.0 * d / 4.0));
    assert!(close(two.throughput_rps, 1.0 / d));
    let err = sim
        .run_mix(
            Start::Closed {
                concurrency: 0,
                runs: 4,
            },
            &[],
        )
        .expect_err("no run in flight");
    assert_eq!(
        err.to_string(),
        "invalid simulation: a closed loop needs at least one run in flight and one run, got 0 and 4"
    );
}

#[test]
fn a_mix_runs_only_each_runs_own_workflow_against_its_own_sla() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("cost");
    let (a, b) = (two_ops(1.0e6), two_ops(4.0e6));
    let (union, ranges) = OpGraph::union(&[("a", &a), ("b", &b)]).expect("union");
    assert_eq!(ranges, vec![0..2, 2..4]);
    assert_eq!(union.op(OpId(3)).name, "b/json");
    assert_eq!(union.op(OpId(3)).deps[0].from, OpId(2));
    let priced = cost.price(&union);
    let service = |r: &std::ops::Range<usize>| -> f64 {
        r.clone()
            .map(|i| priced.cost(OpId(i), CPU.0).expect("runs").busy_s)
            .sum()
    };
    let (da, db) = (service(&ranges[0]), service(&ranges[1]));
    // a's SLA is met, b's is not: attainment is exactly one half.
    let classes = vec![
        RunClass {
            name: "a".into(),
            ops: ranges[0].clone(),
            sla_s: 2.0 * da,
        },
        RunClass {
            name: "b".into(),
            ops: ranges[1].clone(),
            sla_s: db / 2.0,
        },
    ];
    let settings = SimSettings {
        record_ops: true,
        ..SimSettings::default()
    };
    let sim = Simulation::new(&cost, &priced, &[CPU; 4], 1.0, settings)
        .expect("sim")
        .with_classes(classes)
        .expect("classes");
    let arrivals = Arrivals::from_times(vec![0.0, 1.0, 2.0, 3.0]).expect("arrivals");
    let report = sim
        .run_mix(Start::Open(&arrivals), &[0, 1])
        .expect("report");
    assert_eq!(report.completed, 4);
    assert_eq!(report.sla_attainment, 0.5);
    assert!(close(report.latency_p50_s, da) && close(report.latency_max_s, db));
    let ops_of = |run: usize| -> Vec<usize> {
        report
            .op_log
            .iter()
            .filter(|r| r.run == run)
            .map(|r| r.op.0)
            .collect()
    };
    assert_eq!(ops_of(0), vec![0, 1]);
    assert_eq!(ops_of(1), vec![2, 3]);
    assert_eq!(report.devices[0].ops, 8);
    let err = sim
        .run_mix(Start::Open(&arrivals), &[0, 2])
        .expect_err("no class 2");
    assert_eq!(
        err.to_string(),
        "invalid simulation: run class 2 does not exist (2 classes)"
    );
    let bad = Simulation::new(&cost, &priced, &[CPU; 4], 1.0, SimSettings::default())
        .expect("sim")
        .with_classes(vec![RunClass {
            name: "x".into(),
            ops: 1..3,
            sla_s: 1.0,
        }])
        .expect_err("crosses classes");
    assert_eq!(
        bad.to_string(),
        "invalid simulation: op `a/json` of class `x` depends on op `a/render` of another class"
    );
}

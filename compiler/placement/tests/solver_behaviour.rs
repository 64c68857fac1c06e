//! Behaviour of the solver on hand-built and synthetic workflows.

use std::path::PathBuf;

use agentc_placement::synthetic::{agent_workflow, llama_8b, llm_call, smollm2_135m};
use agentc_placement::{
    Cluster, CostModel, CostSettings, DeviceClass, Error, HardwareCatalog, Infeasibility, OpGraph,
    OpKind, PlacementSolver, SolveMethod, SolverSettings, Work,
};

fn cluster(file: &str) -> Cluster {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/clusters")
        .join(file);
    Cluster::from_path(&path, &catalog).expect("cluster")
}

/// One chat call with a tool round-trip: tokenize, prefill, decode, detokenize, tool, and a
/// second call that reads the tool's answer.
/// Owned L4s and H100s: L4 time is slightly cheaper per byte moved but 11x slower, so the SLA
/// decides between them.
const OWNED_MIXED: &str = "name: owned-mixed
pricing: { mode: owned, usd_per_kwh: 0.12, pue: 1.3 }
nodes:
  - name: n0
    devices:
      - { type: xeon-8480p, count: 1 }
      - { type: l4, count: 2 }
      - { type: h100-sxm, count: 1 }
";

fn owned_mixed() -> Cluster {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    Cluster::from_yaml_str(OWNED_MIXED, "owned-mixed.yaml", &catalog).expect("cluster")
}

/// The fastest achievable latency bound, read from the solver's explanation at a tiny SLA.
fn latency_lower_bound(cluster: &Cluster, graph: &OpGraph) -> f64 {
    match solve(cluster, graph, 1e-6) {
        Err(Error::Infeasible(why)) => match *why {
            Infeasibility::SlaBelowCriticalPath { lower_bound_s, .. } => lower_bound_s,
            other => panic!("unexpected {other}"),
        },
        other => panic!("unexpected {other:?}"),
    }
}

fn chat_with_tool() -> OpGraph {
    let model = llama_8b();
    let mut b = OpGraph::builder();
    let first = llm_call(&mut b, "plan", &model, 1024, 128, &[]);
    let tool = b.op("search.tool", OpKind::Tool, Work::tool(0.05, 8192.0));
    b.dep(first, tool);
    llm_call(&mut b, "answer", &model, 2048, 256, &[tool]);
    b.build().expect("graph")
}

fn solve(
    cluster: &Cluster,
    graph: &OpGraph,
    sla_s: f64,
) -> agentc_placement::Result<agentc_placement::Placement> {
    let model = CostModel::new(cluster, CostSettings::default())?;
    let priced = model.price(graph);
    PlacementSolver::new(&priced, SolverSettings::new(sla_s))?.solve()
}

fn device_types_of(
    cluster: &Cluster,
    placement: &agentc_placement::Placement,
    graph: &OpGraph,
    kind: OpKind,
) -> Vec<String> {
    graph
        .ops()
        .iter()
        .enumerate()
        .filter(|(_, op)| op.kind == kind)
        .map(|(i, _)| {
            cluster
                .device(placement.assignment[i])
                .map(|d| d.type_name.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn loose_sla_picks_the_cheapest_devices() {
    let cluster = cluster("mixed.yaml");
    let graph = chat_with_tool();
    let placement = solve(&cluster, &graph, 600.0).expect("feasible");
    assert_eq!(placement.method, SolveMethod::Exact);
    assert!(placement.proven_optimal);
    // With no latency pressure every op sits on its individually cheapest device.
    let model = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let priced = model.price(&graph);
    for (i, d) in placement.assignment.iter().enumerate() {
        let chosen = priced.cost(agentc_placement::OpId(i), d.0).map(|c| c.usd);
        let cheapest = (0..priced.device_count())
            .filter_map(|e| priced.cost(agentc_placement::OpId(i), e).map(|c| c.usd))
            .fold(f64::INFINITY, f64::min);
        assert_eq!(chosen, Some(cheapest), "op {}", graph.ops()[i].name);
    }
}

#[test]
fn tightening_the_sla_moves_critical_ops_to_faster_devices() {
    let cluster = owned_mixed();
    let graph = chat_with_tool();
    let loose = solve(&cluster, &graph, 600.0).expect("loose");
    let fastest = latency_lower_bound(&cluster, &graph);
    assert!(
        fastest < loose.latency_s * 0.5,
        "{fastest} vs {}",
        loose.latency_s
    );
    let tight_sla = fastest * 1.2;
    let tight = solve(&cluster, &graph, tight_sla).expect("tight");
    assert!(tight.latency_s <= tight_sla * (1.0 + 1e-9));
    assert!(tight.cost_usd >= loose.cost_usd);
    let loose_decode = device_types_of(&cluster, &loose, &graph, OpKind::Decode);
    let tight_decode = device_types_of(&cluster, &tight, &graph, OpKind::Decode);
    assert_eq!(loose_decode, ["l4", "l4"]);
    assert!(
        tight_decode.iter().any(|t| t == "h100-sxm"),
        "{tight_decode:?}"
    );
    for t in &tight_decode {
        let class = cluster
            .device_types()
            .iter()
            .find(|d| &d.name == t)
            .map(|d| d.class);
        assert_eq!(class, Some(DeviceClass::Gpu));
    }
}

#[test]
fn sla_below_the_fastest_critical_path_is_explained() {
    let cluster = cluster("mixed.yaml");
    let graph = chat_with_tool();
    let err = solve(&cluster, &graph, 0.010).expect_err("infeasible");
    let Error::Infeasible(why) = &err else {
        panic!("unexpected error {err}");
    };
    match why.as_ref() {
        Infeasibility::SlaBelowCriticalPath {
            lower_bound_s,
            sla_s,
            path,
        } => {
            assert!(*lower_bound_s > *sla_s);
            assert_eq!(path.first().map(String::as_str), Some("plan.tokenize"));
            assert_eq!(path.last().map(String::as_str), Some("answer.detokenize"));
        }
        other => panic!("unexpected reason {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("critical path on fastest devices is"),
        "{text}"
    );
    assert!(text.contains("> SLA 10.0 ms"), "{text}");
    assert!(text.contains("loosen SLA to >="), "{text}");
}

#[test]
fn a_model_larger_than_every_device_is_named() {
    let cluster = cluster("mixed.yaml");
    let model = agentc_placement::ModelShape {
        name: "llama-3.1-405b-bf16".to_string(),
        params: 405.0e9,
        weight_bytes: 810.0e9,
        kv_bytes_per_token: 2.0 * 126.0 * 8.0 * 128.0 * 2.0,
        dtype: agentc_placement::Dtype::Fp16,
    };
    let mut b = OpGraph::builder();
    llm_call(&mut b, "big", &model, 512, 64, &[]);
    let graph = b.build().expect("graph");
    let err = solve(&cluster, &graph, 1e6).expect_err("does not fit");
    insta::assert_snapshot!(err.to_string(), @"no feasible placement: op big.prefill needs 810.3 GB (weights + KV), largest device (xeon-8480p) has 345.6 GB usable; add a device with more memory or shrink the model");
}

#[test]
fn host_ops_need_a_cpu() {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    let text = "name: gpu-only\npricing: { mode: on_demand }\nnodes:\n  - name: n\n    devices:\n      - { type: l4, count: 1 }\n";
    let cluster = Cluster::from_yaml_str(text, "c.yaml", &catalog).expect("cluster");
    let graph = chat_with_tool();
    let err = solve(&cluster, &graph, 1e6).expect_err("no cpu");
    insta::assert_snapshot!(err.to_string(), @"no feasible placement: op plan.tokenize (tokenize) runs on a CPU only and the cluster has no CPU; add a CPU device to a node");
}

#[test]
fn overload_is_explained() {
    let cluster = cluster("local.yaml");
    let model = smollm2_135m();
    let mut b = OpGraph::builder();
    llm_call(&mut b, "chat", &model, 512, 64, &[]);
    let graph = b.build().expect("graph");
    let settings = CostSettings {
        rps: 100.0,
        ..CostSettings::default()
    };
    let cost = CostModel::new(&cluster, settings).expect("model");
    let priced = cost.price(&graph);
    let err = PlacementSolver::new(&priced, SolverSettings::new(10.0))
        .and_then(|s| s.solve())
        .expect_err("overloaded");
    insta::assert_snapshot!(err.to_string(), @"no feasible placement: at 100 requests/s op chat.prefill keeps even its fastest device 5433% busy (limit 90%); lower the load or add faster devices");
}

#[test]
fn queueing_raises_latency_with_load() {
    let cluster = cluster("local.yaml");
    let model = smollm2_135m();
    let mut b = OpGraph::builder();
    llm_call(&mut b, "chat", &model, 512, 64, &[]);
    let graph = b.build().expect("graph");
    let mut latencies = Vec::new();
    for rps in [0.0, 0.5, 1.0] {
        let cost = CostModel::new(
            &cluster,
            CostSettings {
                rps,
                ..CostSettings::default()
            },
        )
        .expect("model");
        let priced = cost.price(&graph);
        let placement = PlacementSolver::new(&priced, SolverSettings::new(100.0))
            .and_then(|s| s.solve())
            .expect("feasible");
        latencies.push(placement.latency_s);
    }
    assert!(
        latencies[0] < latencies[1] && latencies[1] < latencies[2],
        "{latencies:?}"
    );
}

#[test]
fn shared_prefix_members_stay_together_when_moving_kv_costs_time() {
    let cluster = cluster("one-gpu-type.yaml");
    let graph = agent_workflow(14, 7, &llama_8b()).expect("graph");
    let placement = solve(&cluster, &graph, 600.0).expect("feasible");
    let prefills: Vec<_> = graph
        .ops()
        .iter()
        .enumerate()
        .filter(|(_, op)| op.prefix_group.is_some())
        .map(|(i, _)| placement.assignment[i])
        .collect();
    assert!(prefills.len() >= 2, "the workflow should share a prefix");
    assert!(prefills.windows(2).all(|w| w[0] == w[1]), "{prefills:?}");
}

#[test]
fn homogeneous_alternatives_are_no_cheaper_than_the_mixed_optimum() {
    let cluster = cluster("mixed.yaml");
    let graph = chat_with_tool();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let priced = cost.price(&graph);
    let solver = PlacementSolver::new(&priced, SolverSettings::new(5.0)).expect("solver");
    let best = solver.solve().expect("feasible");
    let options = solver.homogeneous_alternatives().expect("alternatives");
    assert_eq!(options.len(), cluster.device_types().len());
    for option in &options {
        if let Ok(p) = &option.outcome {
            assert!(
                p.cost_usd >= best.cost_usd * (1.0 - 1e-9),
                "{}",
                option.device_type
            );
        }
    }
    assert!(options[0].outcome.is_ok());
}

#[test]
fn large_graphs_use_the_heuristic_and_report_a_gap() {
    let cluster = owned_mixed();
    let graph = agent_workflow(1000, 3, &llama_8b()).expect("graph");
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let priced = cost.price(&graph);
    let loose = PlacementSolver::new(&priced, SolverSettings::new(3600.0))
        .and_then(|s| s.solve())
        .expect("feasible");
    assert_eq!(loose.method, SolveMethod::Heuristic);
    // Resident KV fills the cheap devices, so even the loose optimum is not the per-op minimum.
    assert!(loose.gap < 0.05, "gap {}", loose.gap);
    let fastest = latency_lower_bound(&cluster, &graph);
    let sla = (fastest + loose.latency_s) / 2.0;
    let tight = PlacementSolver::new(&priced, SolverSettings::new(sla))
        .and_then(|s| s.solve())
        .expect("feasible");
    assert!(tight.latency_s <= sla * (1.0 + 1e-9));
    assert!(tight.cost_usd > loose.cost_usd);
    assert!(tight.lower_bound_usd <= tight.cost_usd);
    assert!((0.0..1.0).contains(&tight.gap));
}

#[test]
fn an_empty_graph_costs_nothing() {
    let cluster = cluster("local.yaml");
    let graph = OpGraph::builder().build().expect("graph");
    let placement = solve(&cluster, &graph, 1.0).expect("feasible");
    assert_eq!(placement.cost_usd, 0.0);
    assert_eq!(placement.latency_s, 0.0);
    assert!(placement.assignment.is_empty());
}

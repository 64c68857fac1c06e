//! The cost model's equations on known parts: roofline regimes, context growth, tool ops,
//! transfers, TCO and measured profiles.

use agentc_placement::cluster::DeviceId;
use agentc_placement::profile::StepTokens;
use agentc_placement::synthetic::{llama_8b, smollm2_135m};
use agentc_placement::{
    Cluster, CostModel, CostSettings, DeviceProfile, HardwareCatalog, OpGraph, OpKind, Work,
};

const NODE: &str = "name: t
pricing: { mode: on_demand }
nodes:
  - name: a
    devices:
      - { type: xeon-8480p, count: 1 }
      - { type: h100-sxm, count: 2 }
  - name: b
    devices:
      - { type: dev-2core, count: 1 }
links:
  - { between: [a, b], bandwidth_gbs: 10, latency_us: 100, usd_per_gb: 0.02 }
";
const CPU: DeviceId = DeviceId(0);
const H100: DeviceId = DeviceId(1);
const H100_2: DeviceId = DeviceId(2);
const DEV: DeviceId = DeviceId(3);

fn cluster() -> Cluster {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    Cluster::from_yaml_str(NODE, "t.yaml", &catalog).expect("cluster")
}

fn single(kind: OpKind, work: Work) -> OpGraph {
    let mut b = OpGraph::builder();
    b.op("x", kind, work);
    b.build().expect("graph")
}

fn busy(cost: &CostModel<'_>, graph: &OpGraph, device: DeviceId) -> f64 {
    cost.op_cost(graph, &graph.ops()[0], device)
        .expect("runs")
        .busy_s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

#[test]
fn prefill_is_compute_bound_on_h100() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let m = llama_8b();
    let graph = single(OpKind::Prefill, Work::prefill(&m, 1024, 0));
    let flops = graph.ops()[0].work.flops.total();
    let compute = flops / (989.4e12 * 0.6);
    let memory = 16e9 / (3350e9 * 0.8);
    assert!(compute > memory);
    assert!(close(busy(&cost, &graph, H100), compute + 20e-6));
}

#[test]
fn decode_is_bandwidth_bound_and_grows_with_context() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let m = llama_8b();
    let short = single(OpKind::Decode, Work::decode(&m, 128, 64));
    let long = single(OpKind::Decode, Work::decode(&m, 32_768, 64));
    let w = &short.ops()[0].work;
    let bytes = 64.0 * 16e9 + w.kv_bytes_read;
    let memory = bytes / (3350e9 * 0.8);
    assert!(w.flops.total() / (989.4e12 * 0.6) < memory);
    assert!(close(busy(&cost, &short, H100), memory + 64.0 * 20e-6));
    assert!(busy(&cost, &long, H100) > busy(&cost, &short, H100) * 1.1);
}

#[test]
fn tool_latency_is_declared_and_host_only() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let graph = single(OpKind::Tool, Work::tool(0.25, 100.0));
    let on_cpu = cost.op_cost(&graph, &graph.ops()[0], CPU).expect("cpu");
    assert!(close(on_cpu.service_s, 0.25 + 2e-6));
    assert!(close(on_cpu.busy_s, 2e-6));
    assert!(cost.op_cost(&graph, &graph.ops()[0], H100).is_none());
}

#[test]
fn tco_is_busy_seconds_times_price() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let graph = single(OpKind::Decode, Work::decode(&llama_8b(), 128, 64));
    let c = cost.op_cost(&graph, &graph.ops()[0], H100).expect("runs");
    assert!(close(c.usd, c.busy_s * 4.916 / 3600.0));
}

#[test]
fn transfers_use_nvlink_within_a_node_and_the_link_across() {
    let cluster = cluster();
    let gb = 1e9;
    assert_eq!(cluster.transfer(H100, H100, gb), Some((0.0, 0.0)));
    let (t, usd) = cluster.transfer(H100, H100_2, gb).expect("nvlink");
    assert!(close(t, 10e-6 + gb / 450e9));
    assert_eq!(usd, 0.0);
    let (t, _) = cluster.transfer(CPU, H100, gb).expect("pcie");
    assert!(close(t, 10e-6 + gb / 64e9));
    let (t, usd) = cluster.transfer(H100, DEV, gb).expect("link");
    assert!(close(t, 100e-6 + gb / 10e9));
    assert!(close(usd, 0.02));
}

const PROFILE: &str = r#"{
  "format_version": 1,
  "device_type": "dev-2core",
  "measured_at": "2026-11-24T20:00:00Z",
  "memory_bandwidth_gbs": 100.0,
  "matmul_gflops": { "fp32": 260.0, "int8": 520.0 },
  "op_overhead_us": 2.0,
  "op_timings": [
    { "kind": "prefill", "model": "smollm2-135m-q4_1", "fixed_s": 0.01, "per_token_s": 0.002, "samples": 5 }
  ]
}"#;

#[test]
fn a_profile_replaces_datasheet_figures() {
    let cluster = cluster();
    let m = smollm2_135m();
    let decode = single(OpKind::Decode, Work::decode(&m, 128, 64));
    let prefill = single(OpKind::Prefill, Work::prefill(&m, 500, 0));
    let datasheet = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let profile = DeviceProfile::from_json_str(PROFILE, "p.json").expect("profile");
    let measured = CostModel::new(&cluster, CostSettings::default())
        .and_then(|c| c.with_profile(profile))
        .expect("model");
    // 100 GB/s measured instead of 50 GB/s x 1.0: decode (bandwidth-bound) takes about half.
    let ratio = busy(&measured, &decode, DEV) / busy(&datasheet, &decode, DEV);
    assert!((0.45..0.55).contains(&ratio), "{ratio}");
    // The per-op timing overrides the roofline.
    assert!(close(busy(&measured, &prefill, DEV), 0.01 + 0.002 * 500.0));
    // Other devices keep datasheet figures.
    assert_eq!(
        busy(&measured, &decode, H100),
        busy(&datasheet, &decode, H100)
    );
}

#[test]
fn profile_round_trips_and_reports_positions() {
    let profile = DeviceProfile::from_json_str(PROFILE, "p.json").expect("profile");
    let again =
        DeviceProfile::from_json_str(&profile.to_json().expect("json"), "p2.json").expect("again");
    assert_eq!(profile, again);
    let bad = PROFILE.replace(
        "\"memory_bandwidth_gbs\": 100.0",
        "\"memory_bandwidth_gbs\": \"fast\"",
    );
    insta::assert_snapshot!(DeviceProfile::from_json_str(&bad, "p.json").expect_err("bad").to_string(), @"p.json:5:32: invalid type: string \"fast\", expected f64");
    let negative = PROFILE.replace("100.0", "-1.0");
    insta::assert_snapshot!(DeviceProfile::from_json_str(&negative, "p.json").expect_err("bad").to_string(), @"p.json: memory_bandwidth_gbs must be a positive number, got -1");
}

#[test]
fn a_profile_for_a_type_the_cluster_lacks_is_an_error() {
    let cluster = cluster();
    let profile = DeviceProfile::from_json_str(&PROFILE.replace("dev-2core", "l4"), "p.json")
        .expect("profile");
    let err = CostModel::new(&cluster, CostSettings::default())
        .and_then(|c| c.with_profile(profile))
        .expect_err("unknown type");
    insta::assert_snapshot!(err.to_string(), @"profile for `l4`: cluster `t` has no device of type `l4`");
}

/// A decode timing is measured at batch 1: it prices each step, so a batch of sequences decoding
/// together costs one step per token of the longest, and never less than its roofline.
#[test]
fn a_decode_timing_prices_steps_not_tokens() {
    let cluster = cluster();
    let m = smollm2_135m();
    let timing = r#"{ "kind": "decode", "model": "smollm2-135m-q4_1", "fixed_s": 0.0, "per_token_s": 0.005, "samples": 3 }"#;
    let json = PROFILE.replace(
        r#"{ "kind": "prefill", "model": "smollm2-135m-q4_1", "fixed_s": 0.01, "per_token_s": 0.002, "samples": 5 }"#,
        timing,
    );
    let measured = CostModel::new(&cluster, CostSettings::default())
        .and_then(|c| {
            c.with_profile(DeviceProfile::from_json_str(&json, "p.json").expect("profile"))
        })
        .expect("model");
    let one = Work::decode(&m, 16, 64);
    // Four sequences in one batch: four times the tokens, the same 64 steps.
    let mut four = one.clone();
    four.tokens *= 4;
    assert!(close(
        busy(&measured, &single(OpKind::Decode, one), DEV),
        64.0 * 0.005
    ));
    assert!(close(
        busy(&measured, &single(OpKind::Decode, four), DEV),
        64.0 * 0.005
    ));
}

#[test]
fn batch_steps_of_a_lone_decode_add_up_to_its_op_cost() {
    let cluster = cluster();
    let cost = CostModel::new(&cluster, CostSettings::default()).expect("model");
    let m = llama_8b();
    let steps = 16u64;
    let graph = single(OpKind::Decode, Work::decode(&m, 0, steps));
    let w = &graph.ops()[0].work;
    // Each step does 1/steps of the FLOPs and KV reads and streams the weights once.
    let mut per_step = w.flops;
    per_step.fp16 /= steps as f64;
    let step = cost
        .step_s(
            H100,
            None,
            StepTokens::new(0, 1, 0),
            0.0,
            &per_step,
            w.bytes_read / steps as f64 + m.weight_bytes,
        )
        .expect("device exists");
    assert!(close(step * steps as f64, busy(&cost, &graph, H100)));
    // A decode step is bandwidth-bound: weights / (3350 GB/s x 0.8) plus the overhead, when the
    // context is empty at the first step.
    let first = Work::decode(&m, 0, 1);
    let first_step = cost
        .step_s(
            H100,
            None,
            StepTokens::new(0, 1, 0),
            0.0,
            &first.flops,
            first.bytes_read + m.weight_bytes,
        )
        .expect("device exists");
    assert!(close(first_step, 16e9 / (3350e9 * 0.8) + 20e-6));
    assert_eq!(
        cost.step_s(
            DeviceId(99),
            None,
            StepTokens::new(0, 1, 0),
            0.0,
            &first.flops,
            0.0
        ),
        None
    );
}

/// A measured batch-step timing prices a step as `fixed + per prompt token x prompt tokens + per
/// decode token x decode tokens + per pair x attention pairs` for its model when that is slower than the roofline, and
/// leaves other models on the roofline.
#[test]
fn a_step_timing_prices_batch_steps_by_tokens() {
    let cluster = cluster();
    let m = smollm2_135m();
    let json = PROFILE.replace(
        "\"op_timings\"",
        r#""step_timings": [ { "model": "smollm2-135m-q4_1", "fixed_s": 0.004, "per_prefill_token_s": 0.0005, "per_decode_token_s": 0.001, "per_attention_pair_s": 1e-5, "samples": 40 } ],
  "op_timings""#,
    );
    let profile = DeviceProfile::from_json_str(&json, "p.json").expect("profile");
    assert_eq!(
        DeviceProfile::from_json_str(&profile.to_json().expect("json"), "p2.json")
            .expect("round trip"),
        profile
    );
    let measured = CostModel::new(&cluster, CostSettings::default())
        .and_then(|c| c.with_profile(profile))
        .expect("model");
    let first = Work::decode(&m, 0, 1);
    let step = |model: Option<&str>, tokens: (u64, u64)| {
        let tokens = StepTokens::new(tokens.0, tokens.1, 0);
        measured
            .step_s(DEV, model, tokens, 300.0, &first.flops, m.weight_bytes)
            .expect("device exists")
    };
    let model = Some("smollm2-135m-q4_1");
    assert!(close(step(model, (0, 1)), 0.004 + 0.001 + 0.003));
    assert!(close(step(model, (100, 8)), 0.004 + 0.05 + 0.008 + 0.003));
    // Another model, or none: the roofline (weights over the measured 100 GB/s plus the 2 us
    // overhead), which is faster than the measured step here.
    let roofline = m.weight_bytes / 100e9 + 2e-6;
    assert!(close(step(Some("other"), (0, 8)), roofline));
    assert!(close(step(None, (0, 8)), roofline));
    assert!(roofline < 0.004, "{roofline}");
    let negative = json.replace("\"fixed_s\": 0.004", "\"fixed_s\": -1.0");
    insta::assert_snapshot!(DeviceProfile::from_json_str(&negative, "p.json").expect_err("bad").to_string(), @"p.json: step_timings[0]: fixed_s and the per-token and per-pair figures must be finite and >= 0");
}

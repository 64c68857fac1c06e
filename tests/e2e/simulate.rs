//! `agentc simulate`: the example workflows placed and simulated on the example clusters, with
//! a fixed seed (snapshots), a trace file, and exact messages for bad arrivals.

use crate::{agentc, text};

fn simulate(args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["simulate"];
    all.extend_from_slice(args);
    let out = agentc(&all);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn rag_on_the_mixed_cluster_with_a_fixed_seed() {
    let (code, stdout, stderr) = simulate(&[
        "examples/rag_qa.yaml",
        "--cluster",
        "examples/clusters/mixed.yaml",
        "--rps",
        "20",
        "--runs",
        "2000",
        "--seed",
        "7",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    insta::assert_snapshot!("simulate_rag_mixed", stdout);
}

#[test]
fn json_report_has_the_documented_fields_and_is_deterministic() {
    let args = [
        "examples/multi_chain_reasoning.yaml",
        "--cluster",
        "examples/clusters/cpu-h100.yaml",
        "--rps",
        "5",
        "--runs",
        "500",
        "--seed",
        "3",
        "--format",
        "json",
    ];
    let (code, first, stderr) = simulate(&args);
    assert_eq!(code, Some(0), "{stderr}");
    let (_, second, _) = simulate(&args);
    assert_eq!(first, second);
    let r: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(r["runs"], 500);
    assert_eq!(r["completed"], 500);
    assert_eq!(r["policy"], "edf");
    for field in [
        "goodput_rps",
        "sla_attainment",
        "latency_p50_s",
        "latency_p95_s",
        "latency_p99_s",
        "usd_per_1k_runs_busy",
        "usd_per_1k_runs_provisioned",
        "late_completion_ratio",
        "cache_hit_rate",
    ] {
        assert!(r[field].as_f64().is_some(), "{field} in {first}");
    }
    insta::assert_snapshot!("simulate_multi_chain_cpu_h100_json", first);
}

#[test]
fn a_trace_file_sets_the_arrivals() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.csv");
    std::fs::write(&trace, "# time_s,user\n0,a\n0.5,b\n0.5,c\n3,d\n").unwrap();
    let (code, stdout, stderr) = simulate(&[
        "examples/tip_suggestion.yaml",
        "--cluster",
        "examples/clusters/local.yaml",
        "--trace",
        trace.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let r: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["runs"], 4);
    assert_eq!(r["completed"], 4);
}

#[test]
fn bad_arrivals_give_exact_errors() {
    let base = [
        "examples/rag_qa.yaml",
        "--cluster",
        "examples/clusters/mixed.yaml",
    ];
    let run = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        simulate(&args)
    };
    let (code, _, stderr) = run(&["--rps", "0"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: invalid simulation: the arrival rate must be a positive number of runs per \
         second, got 0\n"
    );
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: give the arrivals with --rps RUNS_PER_S or --trace FILE\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("bad.csv");
    std::fs::write(&trace, "0.1\n0.2\nnoon\n").unwrap();
    let (code, _, stderr) = run(&["--trace", trace.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        format!(
            "error: {}:3:1: `noon` is not an arrival time in seconds (one number per line)\n",
            trace.display()
        )
    );
}

#[test]
fn the_number_of_runs_is_bounded() {
    for runs in ["0", "100000000"] {
        let (code, _, stderr) = simulate(&[
            "examples/rag_qa.yaml",
            "--cluster",
            "examples/clusters/mixed.yaml",
            "--rps",
            "20",
            "--runs",
            runs,
        ]);
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!("error: --runs must be 1 to 1000000, got {runs}")
        );
    }
}

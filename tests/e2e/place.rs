//! Placement through `agentc build --cluster`: the SLA drives devices, infeasibility is
//! explained, reports have their documented shape, and every placed plan verifies.

use serde_json::Value;

use crate::{agentc, examples, mlir_opt, root, text};

/// The RAG example with its SLA replaced, written beside the examples so model paths resolve.
fn rag_with_sla(dir: &std::path::Path, p95_ms: &str) -> String {
    let src = std::fs::read_to_string(root().join("examples/rag_qa.yaml")).unwrap();
    let src = src
        .replace("p95_ms: 4000", &format!("p95_ms: {p95_ms}"))
        .replace("../models", &root().join("models").display().to_string());
    let path = dir.join(format!("rag_{p95_ms}.yaml"));
    std::fs::write(&path, src).unwrap();
    path.display().to_string()
}

fn report(workflow: &str, cluster: &str) -> Value {
    let out = agentc(&[
        "build",
        workflow,
        "--cluster",
        cluster,
        "--emit",
        "report",
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn device_of(r: &Value, kind: &str) -> String {
    r["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == kind)
        .map(|o| o["device"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn tightening_the_sla_moves_decode_to_the_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = "examples/clusters/cpu-h100.yaml";
    let loose = report(&rag_with_sla(dir.path(), "1000000"), cluster);
    let tight = report(&rag_with_sla(dir.path(), "100"), cluster);
    // Loose: the cheapest placement, proven optimal; bandwidth-bound decode on the cheap CPU,
    // compute-bound prefill on the GPU, where it finishes fastest and so costs least.
    assert_eq!(loose["feasible"], true);
    assert_eq!(loose["proven_optimal"], true);
    assert_eq!(device_of(&loose, "decode"), "box/dev-2core#0");
    assert_eq!(device_of(&loose, "prefill"), "box/h100-sxm#0");
    // Tight: the critical path's decode moves to the faster device, at a higher cost.
    assert_eq!(tight["feasible"], true);
    assert_eq!(device_of(&tight, "decode"), "box/h100-sxm#0");
    assert!(tight["predicted_p95_ms"].as_f64().unwrap() <= 100.0);
    assert!(tight["usd_per_1k"].as_f64().unwrap() > loose["usd_per_1k"].as_f64().unwrap());
    // The cheapest placement costs no more than any single device type can.
    for h in loose["homogeneous"].as_array().unwrap() {
        assert!(
            loose["usd_per_1k"].as_f64().unwrap() <= h["usd_per_1k"].as_f64().unwrap() + 1e-12,
            "{h}"
        );
    }
}

#[test]
fn an_sla_below_the_fastest_path_is_infeasible_with_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let wf = rag_with_sla(dir.path(), "1");
    let r = report(&wf, "examples/clusters/mixed.yaml");
    assert_eq!(r["feasible"], false);
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("critical path on fastest devices is "),
        "{reason}"
    );
    assert!(
        reason.contains("> SLA 1.0 ms (question_vec.embed -> passages.knn -> answer.render"),
        "{reason}"
    );
    assert!(reason.ends_with("or add faster devices"), "{reason}");
    let plan = dir.path().join("plan");
    let out = agentc(&[
        "build",
        &wf,
        "--cluster",
        "examples/clusters/mixed.yaml",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr)
            .starts_with("error: no placement meets the SLA: critical path on fastest devices")
    );
    assert!(!plan.join("plan.mlir").exists());
}

#[test]
fn json_report_has_the_documented_fields() {
    let r = report("examples/llm_judge.yaml", "examples/clusters/local.yaml");
    for key in [
        "feasible",
        "sla_p95_ms",
        "predicted_p95_ms",
        "usd_per_1k",
        "homogeneous_best",
        "shared_prefix_tokens",
        "ops",
    ] {
        assert!(r.get(key).is_some(), "missing {key}");
    }
    assert_eq!(r["sla_p95_ms"], 15000.0);
    // Five rubric calls reuse the 1024-token article prefix the first one computed.
    assert_eq!(r["shared_prefix_tokens"], 5 * 1024);
    assert_eq!(r["homogeneous_best"]["device"], "dev-2core");
    for op in r["ops"].as_array().unwrap() {
        for key in ["id", "kind", "device", "predicted_ms", "usd"] {
            assert!(op.get(key).is_some(), "op without {key}: {op}");
        }
        assert_eq!(op["device"], "dev/dev-2core#0");
    }
}

#[test]
fn every_placed_plan_verifies_with_mlir_opt() {
    let irdl = root().join("dialects/exec.irdl.mlir");
    let dir = tempfile::tempdir().unwrap();
    for cluster in ["local", "cpu-only", "one-gpu-type", "mixed", "cpu-h100"] {
        for wf in examples() {
            let plan = dir.path().join(format!(
                "{cluster}-{}",
                wf.file_stem().unwrap().to_str().unwrap()
            ));
            let cluster_path = format!("examples/clusters/{cluster}.yaml");
            let out = agentc(&[
                "build",
                wf.to_str().unwrap(),
                "--cluster",
                &cluster_path,
                "-o",
                plan.to_str().unwrap(),
            ]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{cluster} {wf:?}: {}",
                text(&out.stderr)
            );
            let mlir = std::fs::read_to_string(plan.join("plan.mlir")).unwrap();
            assert!(
                !mlir.contains("device = \"\""),
                "{cluster} {wf:?}: an op is unplaced"
            );
            let (ok, _, err) = mlir_opt(&irdl, &mlir);
            assert!(ok, "{cluster} {wf:?}: {err}");
            let manifest: Value =
                serde_json::from_str(&std::fs::read_to_string(plan.join("manifest.json")).unwrap())
                    .unwrap();
            assert_eq!(manifest["format"], 2);
            assert_eq!(manifest["predicted"]["feasible"], true);
        }
    }
}

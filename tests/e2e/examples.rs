//! Every example compiles to `agent` MLIR that stock MLIR tools accept.

use agentc_compiler::{emit, export, load_workflow};

use crate::{agentc, examples, mlir_opt, root, text};

#[test]
fn agent_mlir_snapshots() {
    for path in examples() {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let graph = load_workflow(&path).unwrap();
        let mlir = emit::agent_mlir(&graph, &format!("examples/{name}.yaml")).unwrap();
        insta::assert_snapshot!(format!("agent_{name}"), mlir);
    }
}

#[test]
fn mlir_opt_accepts_and_round_trips_every_example() {
    for path in examples() {
        let rel = format!("examples/{}", path.file_name().unwrap().to_str().unwrap());
        let out = agentc(&["build", &rel, "--emit", "mlir"]);
        assert!(out.status.success(), "{rel}: {}", text(&out.stderr));
        let ours = text(&out.stdout);
        let irdl = root().join("dialects/agent.irdl.mlir");
        let (ok, once, err) = mlir_opt(&irdl, &ours);
        assert!(ok, "mlir-opt-22 rejected {rel}:\n{err}");
        let (ok, twice, err) = mlir_opt(&irdl, &once);
        assert!(ok, "mlir-opt-22 rejected its own output for {rel}:\n{err}");
        assert_eq!(once, twice, "{rel} does not round-trip");
        assert_eq!(
            ours.trim_end(),
            once.trim_end(),
            "{rel}: our printing differs from mlir-opt's"
        );
    }
}

#[test]
fn graph_json_of_rag() {
    let graph = load_workflow(&root().join("examples/rag_qa.yaml")).unwrap();
    let json = serde_json::to_value(export::graph_json(&graph)).unwrap();
    let nodes: Vec<(&str, &str, &str)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_str().unwrap(),
                n["kind"].as_str().unwrap(),
                n["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![
            ("question_vec", "embed", "vec"),
            ("passages", "retrieve", "docs"),
            ("answer", "llm", "text")
        ]
    );
    let edges: Vec<(&str, &str)> = json["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["from"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        edges,
        vec![
            ("inputs.question", "question_vec"),
            ("question_vec", "passages"),
            ("passages", "answer"),
            ("inputs.question", "answer"),
        ]
    );
}

#[test]
fn dot_snapshots() {
    for name in ["map_reduce_summary", "react_calculator"] {
        let graph = load_workflow(&root().join(format!("examples/{name}.yaml"))).unwrap();
        insta::assert_snapshot!(format!("dot_{name}"), export::dot(&graph));
    }
}

#[test]
fn shared_prefix_shape_of_forked_examples() {
    // Multi-chain and judge fork several calls from one prompt prefix: the compiler's prefix
    // sharing relies on these templates starting with the same static text and operand.
    let graph = load_workflow(&root().join("examples/llm_judge.yaml")).unwrap();
    let mlir = emit::agent_mlir(&graph, "examples/llm_judge.yaml").unwrap();
    assert_eq!(
        mlir.matches("content = \"Article:\\0A${0}\\0A\\0AJudge the article's")
            .count(),
        6
    );
}

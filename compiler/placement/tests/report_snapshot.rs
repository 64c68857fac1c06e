//! End-to-end on the shipped local cluster: a small RAG + chat workflow with SmolLM2 placed on
//! the 2-core dev machine, rendered as the report `agentc build` prints.

use std::path::PathBuf;

use agentc_placement::synthetic::{llm_call, minilm, smollm2_135m};
use agentc_placement::{
    Cluster, CostModel, CostSettings, HardwareCatalog, OpGraph, OpKind, PlacementReport,
    PlacementSolver, SolverSettings, Work,
};

fn workflow() -> OpGraph {
    let mut b = OpGraph::builder();
    let question = b.op("question.render", OpKind::Render, Work::host(512.0, 512.0));
    let embed = b.op(
        "retrieve.embed",
        OpKind::Embed,
        Work::embed(&minilm(), 32, 384),
    );
    let knn = b.op(
        "retrieve.knn",
        OpKind::Knn,
        Work::knn("corpus-index", 10_000, 384, 4.0, 1),
    );
    b.dep(question, embed).dep(embed, knn);
    let prompt = b.op("prompt.render", OpKind::Render, Work::host(4096.0, 4096.0));
    b.dep(knn, prompt);
    let answer = llm_call(&mut b, "answer", &smollm2_135m(), 512, 64, &[prompt]);
    let out = b.op("output.json", OpKind::Json, Work::host(256.0, 256.0));
    b.dep(answer, out);
    b.build().expect("graph")
}

#[test]
fn local_rag_chat_report() {
    let catalog = HardwareCatalog::builtin().expect("catalog");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/clusters/local.yaml");
    let cluster = Cluster::from_path(&path, &catalog).expect("cluster");
    let graph = workflow();
    let cost = CostModel::new(
        &cluster,
        CostSettings {
            rps: 0.2,
            ..CostSettings::default()
        },
    )
    .expect("model");
    let priced = cost.price(&graph);
    let placement = PlacementSolver::new(&priced, SolverSettings::new(2.0))
        .and_then(|s| s.solve())
        .expect("feasible");
    let report = PlacementReport::new(&placement, &priced);
    insta::assert_snapshot!(report.to_string(), @r#"
latency 1020.0 ms (SLA 2000.0 ms), $17.13 per million requests (lower bound $17.13, gap 0.00%; exact, proven optimal)
critical path: question.render -> retrieve.embed -> retrieve.knn -> prompt.render -> answer.tokenize -> answer.prefill -> answer.decode -> answer.detokenize -> output.json
op                       kind       device                   ready ms    wait ms  finish ms      $/M req
question.render          render     dev/dev-2core#0              0.00      36.58      36.58       0.0001 *
retrieve.embed           embed      dev/dev-2core#0             36.58      36.58      78.75       0.1386 *
retrieve.knn             knn        dev/dev-2core#0             78.75      36.58     115.64       0.0077 *
prompt.render            render     dev/dev-2core#0            115.64      36.58     152.23       0.0001 *
answer.tokenize          tokenize   dev/dev-2core#0            152.23      36.58     188.81       0.0001 *
answer.prefill           prefill    dev/dev-2core#0            188.81      36.58     768.70      13.4695 *
answer.decode            decode     dev/dev-2core#0            768.70      36.58     946.88       3.5104 *
answer.detokenize        detokenize dev/dev-2core#0            946.88      36.58     983.46       0.0001 *
output.json              json       dev/dev-2core#0            983.46      36.58    1020.05       0.0001 *
device                   ops    memory GB    usable GB   util %
dev/dev-2core#0            9         0.22        21.60    13.82
"#);
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["critical_path"][0], "question.render");
}

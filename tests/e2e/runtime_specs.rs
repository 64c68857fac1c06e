//! The manifest the compiler writes is what the runtime's executors read: its `tools` and
//! `indexes` are the runtime's specs, and the calculator tool of the react example
//! runs from them.

use agentc_plan::decl::{ArgType, ToolArg};
use agentc_runtime::tools::{BreakerConfig, OutputFormat, ToolKind};
use agentc_runtime::{IndexSpec, Metric, ToolRouter, ToolRunner, ToolSpec};
use serde_json::{Value, json};

use crate::{agentc, root, text};

fn manifest(example: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = agentc(&[
        "build",
        &format!("examples/{example}.yaml"),
        "--cluster",
        "examples/clusters/local.yaml",
        "-o",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(dir.path().join("manifest.json")).unwrap())
        .unwrap()
}

#[test]
fn manifest_tools_run_through_the_runtime_router() {
    let m = manifest("react_calculator");
    let specs: Vec<ToolSpec> = serde_json::from_value(m["declarations"]["tools"].clone()).unwrap();
    let mut want = ToolSpec::subprocess("calculator", &["python3", "tools/calculator.py"]);
    want.timeout_ms = 2000;
    want.max_output_bytes = 4096;
    want.args.insert(
        "expression".into(),
        ToolArg {
            ty: ArgType::String,
            required: true,
            description: Some("an arithmetic expression such as \"(3 + 4) * 2\"".into()),
        },
    );
    assert_eq!(specs, [want]);
    assert_eq!(specs[0].kind, ToolKind::Subprocess);
    assert_eq!(specs[0].output, OutputFormat::Json);

    // Relative command paths are relative to the workflow file's directory.
    let source = root().join(m["source"].as_str().unwrap());
    let base = source.parent().unwrap();
    let runner = ToolRunner::new(base).unwrap();
    let router = ToolRouter::new(specs, runner, BreakerConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let call = rt
        .block_on(router.call("calculator", &json!({"expression": "6 * 7"})))
        .unwrap();
    assert_eq!(call.value, json!({"value": 42}));
}

#[test]
fn manifest_indexes_are_runtime_index_specs() {
    let m = manifest("rag_qa");
    let specs: Vec<IndexSpec> =
        serde_json::from_value(m["declarations"]["indexes"].clone()).unwrap();
    assert_eq!(
        specs,
        [IndexSpec {
            name: "corpus".to_string(),
            path: "../indexes/corpus".to_string(),
            model: "minilm".to_string(),
            metric: Metric::Cosine,
        }]
    );
}

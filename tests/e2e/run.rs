//! `agentc run`: compile an example for this machine, run it on the bundled model, and the
//! errors a user gets for bad inputs and plans.

use super::{agentc, root, text};

fn model_present() -> bool {
    agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

#[test]
fn runs_the_judge_example_and_prints_its_outputs() {
    if !model_present() {
        return;
    }
    let out = agentc(&[
        "run",
        "examples/llm_judge.yaml",
        "--input",
        "article=Rust is a language. It is fast because it compiles to machine code.",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON outputs");
    let object = outputs.as_object().expect("an object of outputs");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["judgments", "score"]);
    let judgments = object["judgments"].as_object().expect("judgments is json");
    let aspects: Vec<&str> = judgments.keys().map(String::as_str).collect();
    assert_eq!(
        aspects,
        [
            "accuracy",
            "clarity",
            "depth",
            "evidence",
            "structure",
            "tone"
        ]
    );
    assert!(judgments.values().all(serde_json::Value::is_string));
    // Seven LLM calls: six judges (one shared article prefix) and the score.
    assert!(stderr.contains(", 7 LLM calls, "), "{stderr}");
}

#[test]
fn a_batch_file_gives_one_line_per_input_in_order() {
    if !model_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.jsonl");
    std::fs::write(
        &inputs,
        "{\"question\": \"What is 2 + 2?\"}\n\n{\"question\": \"Name a colour.\"}\n{\"nope\": 1}\n",
    )
    .unwrap();
    let out = agentc(&[
        "run",
        "examples/multi_chain_reasoning.yaml",
        "--batch",
        inputs.to_str().unwrap(),
        "--concurrency",
        "3",
        "--quiet",
    ]);
    assert!(!out.status.success(), "one input is bad, so the run fails");
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
    }
    assert!(lines[0]["outputs"]["answer"].is_string());
    assert!(lines[1]["outputs"]["answer"].is_string());
    assert_eq!(
        lines[2]["error"],
        "missing input `question` (text); the workflow takes: question"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("3 runs in ")
            && stderr.contains("SLA met ")
            && stderr.contains(", 1 failed,"),
        "{stderr}"
    );
}

#[test]
fn bad_inputs_and_plans_are_clear_errors() {
    if !model_present() {
        return;
    }
    let out = agentc(&["run", "examples/multi_chain_reasoning.yaml", "-i", "q=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .ends_with("error: missing input `question` (text); the workflow takes: question\n"),
        "{}",
        text(&out.stderr)
    );
    let out = agentc(&[
        "run",
        "examples/multi_chain_reasoning.yaml",
        "-i",
        "question",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).ends_with("error: --input `question`: expected NAME=VALUE\n"));

    let out = agentc(&["run", "--plan", "/nonexistent/plan", "-i", "q=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "error: plan /nonexistent/plan/manifest.json: cannot read it: No such file or directory"
        ),
        "{}",
        text(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("bad.jsonl");
    std::fs::write(&inputs, "{\"question\": \"ok\"}\n[1, 2]\n").unwrap();
    let out = agentc(&[
        "run",
        "examples/multi_chain_reasoning.yaml",
        "--batch",
        inputs.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).ends_with(&format!(
            "error: {}:2: expected a JSON object of inputs\n",
            inputs.display()
        )),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_built_plan_runs_and_a_damaged_or_foreign_plan_is_refused() {
    if !model_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan");
    let plan_arg = plan.to_str().unwrap();
    let out = agentc(&[
        "build",
        "examples/multi_chain_reasoning.yaml",
        "--cluster",
        "examples/clusters/local.yaml",
        "-o",
        plan_arg,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = agentc(&[
        "run",
        "--plan",
        plan_arg,
        "-i",
        "question=What is 3 + 4?",
        "-q",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(outputs["answer"].is_string());

    // A plan cut short is a clear error naming the file.
    let mlir = std::fs::read_to_string(plan.join("plan.mlir")).unwrap();
    std::fs::write(plan.join("plan.mlir"), &mlir[..mlir.len() / 2]).unwrap();
    let out = agentc(&["run", "--plan", plan_arg, "-i", "question=x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: plan {}/plan.mlir: ", plan.display())),
        "{stderr}"
    );

    // A plan placed on a GPU this machine does not have is refused before anything runs.
    let gpu = dir.path().join("gpu");
    let out = agentc(&[
        "build",
        "examples/multi_chain_reasoning.yaml",
        "--cluster",
        "examples/clusters/one-gpu-type.yaml",
        "-o",
        gpu.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = agentc(&["run", "--plan", gpu.to_str().unwrap(), "-i", "question=x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: the plan places ops on ")
            && stderr.ends_with(
                ", which this runtime does not have (it runs on this machine's CPU); compile for a cluster of this machine\n"
            ),
        "{stderr}"
    );
}

/// The declared outputs of each example, as `agentc run` prints them (sorted by name).
const EXAMPLE_OUTPUTS: [(&str, &[&str]); 6] = [
    ("llm_judge", &["judgments", "score"]),
    ("map_reduce_summary", &["partial", "summary"]),
    ("multi_chain_reasoning", &["answer"]),
    ("rag_qa", &["answer", "sources"]),
    ("react_calculator", &["answer"]),
    ("tip_suggestion", &["paragraphs", "tips"]),
];

#[test]
fn every_example_runs_every_shipped_input_without_a_failed_run() {
    if !model_present() {
        return;
    }
    // rag_qa retrieves from indexes/corpus, built from the shipped corpus.
    let out = agentc(&["index", "build", "examples/corpus", "-o", "indexes/corpus"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (name, outputs) in EXAMPLE_OUTPUTS {
        let inputs = root().join(format!("examples/inputs/{name}.jsonl"));
        let count = std::fs::read_to_string(&inputs)
            .expect("every example has inputs")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        let out = agentc(&[
            "run",
            &format!("examples/{name}.yaml"),
            "--batch",
            inputs.to_str().unwrap(),
            "--concurrency",
            "4",
            "--quiet",
        ]);
        let lines: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), count, "{name}: {}", text(&out.stderr));
        for line in &lines {
            assert!(line.get("error").is_none(), "{name}: {line}");
            let mut keys: Vec<&str> = line["outputs"]
                .as_object()
                .expect("outputs")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            let mut expected = outputs.to_vec();
            expected.sort_unstable();
            assert_eq!(keys, expected, "{name}");
        }
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    }
}

#[test]
fn a_failing_tool_is_routed_to_its_fallback_and_a_dead_end_names_every_attempt() {
    if !model_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let calculator = root().join("examples/tools/calculator.py");
    let workflow = |primary: &str| {
        format!(
            "name: tools_fallback
inputs:
  expression: {{type: text, max_len: 16}}
models:
  chat: {{kind: llm, path: {model}}}
tools:
  broken:
    kind: subprocess
    command: [python3, -c, \"{primary}\"]
    args: {{expression: {{type: string}}}}
    cost: 1
    fallbacks: [calc]
  calc:
    kind: subprocess
    command: [python3, {calculator}]
    args: {{expression: {{type: string}}}}
    cost: 2
sla: {{p95_ms: 10000}}
nodes:
  - {{id: value, kind: tool, tool: broken, args: {{expression: '${{inputs.expression}}'}}}}
  - {{id: say, kind: llm, model: chat, max_tokens: 4, prompt: 'The value is ${{value.value}}.'}}
outputs:
  value: ${{value}}
",
            model = model.display(),
            calculator = calculator.display(),
        )
    };
    let path = dir.path().join("fallback.yaml");
    std::fs::write(&path, workflow("import sys; sys.exit(3)")).unwrap();
    let out = agentc(&[
        "run",
        path.to_str().unwrap(),
        "-q",
        "-i",
        "expression=6 * 7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value, serde_json::json!({"value": {"value": 42}}));

    // Both tools fail: the error names the node and each tool tried.
    let out = agentc(&["run", path.to_str().unwrap(), "-q", "-i", "expression=6 *"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "error: node `value`: tool broken failed and no fallback is left; attempts: broken exited with exit code 3 and printed nothing; calc exited with exit code 1: "
        ),
        "{stderr}"
    );
}

#[test]
fn fifty_concurrent_runs_complete_and_failing_ones_do_not_disturb_the_others() {
    if !model_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let calculator = root().join("examples/tools/calculator.py");
    let workflow = dir.path().join("fifty.yaml");
    std::fs::write(
        &workflow,
        format!(
            "name: fifty
inputs:
  n: {{type: text, max_len: 8}}
models:
  chat: {{kind: llm, path: {model}}}
tools:
  calc:
    kind: subprocess
    command: [python3, {calculator}]
    args: {{expression: {{type: string}}}}
sla: {{p95_ms: 60000}}
nodes:
  - {{id: square, kind: tool, tool: calc, args: {{expression: '${{inputs.n}} * ${{inputs.n}}'}}}}
  - {{id: say, kind: llm, model: chat, max_tokens: 4, prompt: 'The square of ${{inputs.n}} is ${{square.value}}, so'}}
outputs:
  square: ${{square.value}}
  said: ${{say}}
",
            model = model.display(),
            calculator = calculator.display()
        ),
    )
    .unwrap();
    let inputs = dir.path().join("inputs.jsonl");
    // Every tenth run gives the calculator something it refuses: that run fails, the others
    // in flight are unaffected.
    let bad = |n: usize| n % 10 == 7;
    let lines: String = (0..50)
        .map(|n| match bad(n) {
            true => "{\"n\": \"x\"}\n".to_owned(),
            false => format!("{{\"n\": \"{n}\"}}\n"),
        })
        .collect();
    std::fs::write(&inputs, lines).unwrap();
    let out = agentc(&[
        "run",
        workflow.to_str().unwrap(),
        "--batch",
        inputs.to_str().unwrap(),
        "--concurrency",
        "50",
        "--quiet",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 50);
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], n);
        if bad(n) {
            assert!(
                line["error"].as_str().is_some_and(|e| e.starts_with(
                    "node `square`: tool calc failed and no fallback is left; attempts: calc exited with exit code 1"
                )),
                "{line}"
            );
        } else {
            assert_eq!(line["outputs"]["square"], n * n);
            assert!(line["outputs"]["said"].is_string());
        }
    }
    assert!(
        text(&out.stderr).contains("50 runs in ") && text(&out.stderr).contains(", 5 failed,"),
        "{}",
        text(&out.stderr)
    );
}

/// A workflow whose only tool call goes to a tool that always fails, with the examples'
/// calculator as its fallback; `name` names the workflow.
pub(crate) fn failing_tool_workflow(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let calculator = root().join("examples/tools/calculator.py");
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            r#"name: {name}
description: One calculator call whose first choice is broken.
inputs:
  expr: {{type: text, max_len: 64}}
tools:
  broken:
    kind: subprocess
    command: [python3, -c, "import sys; sys.exit('broken on purpose')"]
    args:
      expression: {{type: string}}
    timeout_ms: 5000
    fallbacks: [calculator]
  calculator:
    kind: subprocess
    command: [python3, "{}"]
    args:
      expression: {{type: string}}
    timeout_ms: 5000
sla: {{p95_ms: 20000}}
nodes:
  - id: calc
    kind: tool
    tool: broken
    args:
      expression: ${{inputs.expr}}
outputs:
  value: ${{calc}}
"#,
            calculator.display()
        ),
    )
    .expect("writes the workflow");
    path
}

#[test]
fn a_failing_tool_is_logged_as_a_warning_with_its_error_and_reroute() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = failing_tool_workflow(dir.path(), "calc_a");
    let out = agentc(&[
        "run",
        workflow.to_str().unwrap(),
        "--input",
        "expr=2+3",
        "--quiet",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let outputs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON outputs");
    assert_eq!(outputs, serde_json::json!({"value": {"value": 5}}));
    let line = |needle: &str| {
        stderr
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stderr}"))
    };
    let failed = line("tool failed");
    assert!(failed.contains(" WARN run{id=\"run-0\"}"), "{failed}");
    assert!(failed.contains("broken on purpose"), "{failed}");
    assert!(failed.contains("tool=broken"), "{failed}");
    let reroute = line("rerouting tool call");
    assert!(reroute.contains(" WARN "), "{reroute}");
    assert!(reroute.contains("from=broken to=calculator"), "{reroute}");

    // Machines get one JSON object per line, with the run's span.
    let out = agentc(&[
        "--log-format",
        "json",
        "run",
        workflow.to_str().unwrap(),
        "--input",
        "expr=2+3",
        "--quiet",
    ]);
    let stderr = text(&out.stderr);
    let warning: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("tool failed"))
        })
        .unwrap_or_else(|| panic!("no JSON warning in:\n{stderr}"));
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["tool"], "broken");
    assert_eq!(warning["span"]["id"], "run-0");
}

/// `network` is a subprocess tool's key: on an http tool it is an error with its location; on a
/// subprocess tool it reaches the plan's manifest and the tools the runtime loads from the plan.
#[test]
fn network_is_a_subprocess_tool_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("net.yaml");
    std::fs::write(
        &path,
        "name: net\ninputs:\n  q: {type: text, max_len: 8}\ntools:\n  search:\n    kind: http\n    \
         url: http://127.0.0.1:9/search\n    network: true\nsla: {p95_ms: 1000}\nnodes:\n  - id: s\n    \
         kind: tool\n    tool: search\n    args:\n      query: ${inputs.q}\noutputs:\n  r: ${s}\n",
    )
    .expect("writes");
    let out = agentc(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        report.contains("tool `search` is an http tool; `network` is for subprocess tools"),
        "{report}"
    );

    let workflow = failing_tool_workflow(dir.path(), "calc_net");
    let yaml = std::fs::read_to_string(&workflow).unwrap().replace(
        "    fallbacks: [calculator]\n",
        "    fallbacks: [calculator]\n    network: true\n",
    );
    std::fs::write(&workflow, yaml).unwrap();
    let plan = build_plan(&workflow, &dir.path().join("plan"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plan.join("manifest.json")).unwrap()).unwrap();
    let tools = manifest["declarations"]["tools"].as_array().expect("tools");
    let network: Vec<(&str, bool)> = tools
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t.get("network").is_some()))
        .collect();
    assert_eq!(network, [("broken", true), ("calculator", false)]);
    let program = agentc_runtime::Program::load(&plan).expect("the plan loads");
    let network: Vec<(&str, bool)> = program
        .tools()
        .iter()
        .map(|t| (t.name.as_str(), t.network))
        .collect();
    assert_eq!(network, [("broken", true), ("calculator", false)]);
}

/// `reads`, `writes` and `confine` are subprocess tool keys: on an http tool each is an error; on
/// a subprocess tool they reach the tools the runtime loads from the plan.
#[test]
fn reads_writes_and_confine_are_subprocess_tool_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("files.yaml");
    std::fs::write(
        &path,
        "name: files\ninputs:\n  q: {type: text, max_len: 8}\ntools:\n  search:\n    kind: http\n    \
         url: http://127.0.0.1:9/search\n    reads: [data]\n    writes: [out]\n    confine: false\n\
         sla: {p95_ms: 1000}\n\
         nodes:\n  - id: s\n    kind: tool\n    tool: search\n    args:\n      query: ${inputs.q}\n\
         outputs:\n  r: ${s}\n",
    )
    .expect("writes");
    let out = agentc(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    for key in ["reads", "writes", "confine"] {
        assert!(
            report.contains(&format!(
                "tool `search` is an http tool; `{key}` is for subprocess tools"
            )),
            "{report}"
        );
    }

    let workflow = failing_tool_workflow(dir.path(), "calc_files");
    let yaml = std::fs::read_to_string(&workflow).unwrap().replace(
        "    fallbacks: [calculator]\n",
        "    fallbacks: [calculator]\n    reads: [data, more/notes.txt]\n    writes: [out]\n    \
         confine: false\n",
    );
    std::fs::write(&workflow, yaml).unwrap();
    let plan = build_plan(&workflow, &dir.path().join("plan"));
    let program = agentc_runtime::Program::load(&plan).expect("the plan loads");
    let files: Vec<(&str, &[String], &[String])> = program
        .tools()
        .iter()
        .map(|t| (t.name.as_str(), &t.reads[..], &t.writes[..]))
        .collect();
    let (reads, writes) = (
        ["data".to_owned(), "more/notes.txt".to_owned()],
        ["out".to_owned()],
    );
    assert_eq!(
        files,
        [
            ("broken", &reads[..], &writes[..]),
            ("calculator", &[][..], &[][..])
        ]
    );
    let confined: Vec<bool> = program.tools().iter().map(|t| t.confine).collect();
    assert_eq!(confined, [false, true]);
}

/// Builds `workflow` for the local cluster into the plan directory `plan`.
fn build_plan(workflow: &std::path::Path, plan: &std::path::Path) -> std::path::PathBuf {
    let out = agentc(&[
        "build",
        workflow.to_str().unwrap(),
        "--cluster",
        "examples/clusters/local.yaml",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    plan.to_path_buf()
}

//! The pass pipeline on every example: IR after each pass, acceptance by mlir-opt-22, and the
//! behaviour the passes promise (shared prefixes, batches, CSE, DCE, consolidated batches).

use agentc_compiler::passes::{PassContext, Pipeline};
use agentc_compiler::tokens::CharEstimate;
use agentc_compiler::{CompileOptions, compile, emit, frontend, load_workflow};

use crate::{examples, mlir_opt, root};

fn exec_of(src: &str, batch: usize) -> String {
    let graph = frontend::parse("t.yaml", src.as_bytes()).unwrap();
    compile(
        &graph,
        "t.yaml",
        &CompileOptions {
            tokens: &CharEstimate,
            batch,
            place: None,
            print: true,
        },
    )
    .unwrap()
    .exec_mlir
}

/// Snapshots of the IR after every pass that changed it, for every example.
#[test]
fn ir_after_each_pass() {
    for path in examples() {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let graph = load_workflow(&path).unwrap();
        let context = agentc_plan::new_context().unwrap();
        let mut module =
            emit::emit_agent(&context, &graph, &format!("examples/{name}.yaml")).unwrap();
        let cx = PassContext {
            context: &context,
            tokens: &CharEstimate,
            batch: 1,
            place: None,
            placed: Default::default(),
        };
        let mut index = 0;
        Pipeline::standard()
            .with_dump_dir(None)
            .run_observed(&cx, &mut module, &mut |report, module| {
                index += 1;
                if report.changed {
                    insta::assert_snapshot!(
                        format!("pass_{name}_{index}_{}", report.pass),
                        module.as_operation().to_string()
                    );
                }
            })
            .unwrap();
    }
}

#[test]
fn mlir_opt_accepts_every_exec_module() {
    let irdl = root().join("dialects/exec.irdl.mlir");
    for path in examples() {
        let graph = load_workflow(&path).unwrap();
        for batch in [1, 4] {
            let exec = compile(
                &graph,
                "x.yaml",
                &CompileOptions {
                    tokens: &CharEstimate,
                    batch,
                    place: None,
                    print: true,
                },
            )
            .unwrap()
            .exec_mlir;
            let (ok, once, err) = mlir_opt(&irdl, &exec);
            assert!(ok, "{path:?} batch {batch}: {err}");
            let (_, twice, _) = mlir_opt(&irdl, &once);
            assert_eq!(once, twice, "{path:?} batch {batch} does not round-trip");
        }
    }
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn forked_siblings_share_one_kv_prefix() {
    let graph = load_workflow(&root().join("examples/llm_judge.yaml")).unwrap();
    let exec = compile(
        &graph,
        "x.yaml",
        &CompileOptions {
            tokens: &CharEstimate,
            batch: 1,
            place: None,
            print: true,
        },
    )
    .unwrap()
    .exec_mlir;
    assert_eq!(count(&exec, "\"exec.kv_prefix\""), 1, "{exec}");
    assert!(
        exec.contains(
            r#"consumers = ["clarity", "accuracy", "evidence", "structure", "depth", "tone"]"#
        ),
        "{exec}"
    );
    // 1024 article tokens plus the static "Article:\n" text, in whole 16-token KV blocks.
    assert_eq!(
        count(&exec, r#"prefix = "p0", prefix_tokens = 1024 : i64"#),
        6
    );
    assert_eq!(count(&exec, r#""exec.prefill"(%"#), 7);
    assert_eq!(
        count(&exec, r#"batch = "b0""#),
        6,
        "the six rubric prefills run together"
    );
}

const BASE: &str = "name: t\ninputs: {q: {type: text, max_len: 32}}\nmodels: {m: {kind: llm, path: m.gguf}}\nsla: {p95_ms: 1000}\n";

#[test]
fn cse_runs_identical_deterministic_calls_once() {
    let src = format!(
        "{BASE}nodes:\n  - {{id: a, kind: llm, model: m, prompt: \"Q: ${{inputs.q}}\"}}\n  - {{id: b, kind: llm, model: m, prompt: \"Q: ${{inputs.q}}\"}}\n  - {{id: c, kind: llm, model: m, temperature: 0.5, prompt: \"Q: ${{inputs.q}}\"}}\noutputs: {{x: \"${{a}} ${{b}} ${{c}}\"}}\n"
    );
    let exec = exec_of(&src, 1);
    // a and b are one chain; c samples, so only its prompt work is shared: one prefill in all.
    assert_eq!(count(&exec, r#""exec.prefill"(%"#), 1, "{exec}");
    assert_eq!(count(&exec, r#""exec.decode"(%"#), 2, "{exec}");
}

#[test]
fn dce_removes_what_no_output_reads() {
    let src = format!(
        "{BASE}nodes:\n  - {{id: used, kind: llm, model: m, prompt: \"${{inputs.q}}\"}}\n  - {{id: unused, kind: llm, model: m, prompt: \"other ${{inputs.q}}\"}}\noutputs: {{x: \"${{used}}\"}}\n"
    );
    let exec = exec_of(&src, 1);
    assert!(!exec.contains("node = \"unused\""), "{exec}");
    assert_eq!(count(&exec, r#""exec.decode"(%"#), 1);
}

#[test]
fn map_bodies_share_their_static_prefix_across_elements() {
    let graph = load_workflow(&root().join("examples/tip_suggestion.yaml")).unwrap();
    let exec = compile(
        &graph,
        "x.yaml",
        &CompileOptions {
            tokens: &CharEstimate,
            batch: 1,
            place: None,
            print: true,
        },
    )
    .unwrap()
    .exec_mlir;
    assert_eq!(count(&exec, "\"exec.kv_prefix\""), 1, "{exec}");
    assert!(exec.contains(r#"consumers = ["expand"]"#));
    assert_eq!(
        count(&exec, r#"batch = "map:expanded""#),
        2,
        "the body's prefill and decode"
    );
}

#[test]
fn consolidated_batch_shares_and_batches_across_queries() {
    let graph = load_workflow(&root().join("examples/rag_qa.yaml")).unwrap();
    let exec = compile(
        &graph,
        "x.yaml",
        &CompileOptions {
            tokens: &CharEstimate,
            batch: 8,
            place: None,
            print: true,
        },
    )
    .unwrap()
    .exec_mlir;
    assert_eq!(count(&exec, r#""exec.input"()"#), 8);
    assert_eq!(count(&exec, r#""exec.output"("#), 16);
    assert_eq!(
        count(&exec, "\"exec.kv_prefix\""),
        1,
        "the system prompt, once for all queries"
    );
    let consumers: Vec<String> = (0..8).map(|q| format!("\"q{q}.answer\"")).collect();
    assert!(
        exec.contains(&format!("consumers = [{}]", consumers.join(", "))),
        "{exec}"
    );
    for b in ["b0", "b1", "b2"] {
        assert_eq!(
            count(&exec, &format!("batch = \"{b}\"")),
            8,
            "{b}: the 8 queries' embeds, prefills, decodes"
        );
    }
}

#[test]
fn a_child_prompt_extending_its_parent_reuses_the_parents_kv_and_output() {
    let src = format!(
        "{BASE}nodes:\n  - {{id: draft, kind: llm, model: m, max_tokens: 64, prompt: \"Write a short poem about ${{inputs.q}}. Make it vivid and concrete, with one image per line.\\n\"}}\n  - {{id: better, kind: llm, model: m, max_tokens: 64, prompt: \"Write a short poem about ${{inputs.q}}. Make it vivid and concrete, with one image per line.\\n${{draft}}\\nNow improve the poem:\\n\"}}\noutputs: {{x: \"${{better}}\"}}\n"
    );
    let exec = exec_of(&src, 1);
    assert_eq!(count(&exec, "\"exec.kv_prefix\""), 1, "{exec}");
    // The prefix ends with the draft's generated text: the child starts after it.
    assert!(
        exec.contains(r#"consumers = ["draft", "better"]"#),
        "{exec}"
    );
    assert!(
        exec.contains(r#"image per line.\0A${draft}", tokens = 112 : i64"#),
        "{exec}"
    );
    assert!(exec.contains(r#"node = "better", predicted_ms = 0.000000e+00 : f64, prefix = "p0", prefix_tokens = 112 : i64"#), "{exec}");
    // The parent itself reads back only its prompt (48 tokens in whole 16-token blocks).
    assert!(exec.contains(r#"node = "draft", predicted_ms = 0.000000e+00 : f64, prefix = "p0", prefix_tokens = 48 : i64"#), "{exec}");
}

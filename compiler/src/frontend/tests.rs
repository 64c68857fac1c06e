//! Exact-message tests for every kind of validation error, and the no-panic property over
//! arbitrary bytes and mutated valid workflows.

use super::parse;

const BASE: &str = r#"name: wf
inputs:
  question: {type: text, max_len: 32}
models:
  chat: {kind: llm, path: m.gguf}
  emb: {kind: embedding, path: e}
tools:
  calc:
    kind: subprocess
    command: [python3, calc.py]
    args:
      expression: {type: string}
indexes:
  docs: {path: idx, model: emb}
sla: {p95_ms: 1000}
nodes:
NODES
outputs:
  answer: ${answer}
"#;

const ANSWER: &str =
    "  - {id: answer, kind: llm, model: chat, prompt: \"Q: ${inputs.question}\"}\n";

fn wf(nodes: &str) -> String {
    BASE.replace("NODES\n", nodes)
}

/// The base workflow with a second input, `chunks` (a list), on line 4: later lines move down one.
fn wf_with_list(nodes: &str) -> String {
    wf(nodes).replace("max_len: 32}\n", "max_len: 32}\n  chunks: {type: list}\n")
}

/// `file:line:col: message` for each error, plus ` [hint]` when there is one.
fn errors(src: &str) -> Vec<String> {
    match parse("wf.yaml", src.as_bytes()) {
        Ok(_) => vec![],
        Err(d) => d
            .items
            .iter()
            .map(|i| {
                let hint = i
                    .hint
                    .as_ref()
                    .map(|h| format!(" [{h}]"))
                    .unwrap_or_default();
                format!("{}:{}: {}{hint}", i.pos.line, i.pos.col, i.message)
            })
            .collect(),
    }
}

#[test]
fn base_is_valid() {
    assert_eq!(errors(&wf(ANSWER)), Vec::<String>::new());
}

#[test]
fn unknown_reference_with_closest_name() {
    let src =
        wf("  - {id: answer, kind: llm, model: chat, prompt: \"${anser} ${inputs.questoin}\"}\n");
    assert_eq!(
        errors(&src),
        vec![
            "17:51: unknown reference `${anser}` [did you mean `${answer}`?]",
            "17:60: unknown input `inputs.questoin` [did you mean `${inputs.question}`?]",
        ]
    );
}

#[test]
fn cycle_reports_its_path() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: a, kind: render, template: \"${{b}}\"}}\n  - {{id: b, kind: render, template: \"${{c}}\"}}\n  - {{id: c, kind: render, template: \"${{a}}\"}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "18:5: cycle: a -> b -> c -> a [a node cannot depend on its own result; loops are written with `kind: loop`]"
        ]
    );
}

#[test]
fn self_reference_is_a_cycle() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: a, kind: render, template: \"${{a}}\"}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "18:5: cycle: a -> a [a node cannot depend on its own result; loops are written with `kind: loop`]"
        ]
    );
}

#[test]
fn body_reading_its_own_compound_is_a_cycle() {
    let src = wf_with_list(&format!(
        "{ANSWER}  - id: m\n    kind: map\n    over: ${{inputs.chunks}}\n    nodes:\n      - {{id: inner, kind: render, template: \"${{m}}\"}}\n    output: ${{inner}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "23:46: cycle: `inner` refers to `m`, which contains it [a body cannot read the result of its own map/branch/loop]"
        ]
    );
}

#[test]
fn type_mismatches() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: v, kind: embed, model: emb, input: \"${{inputs.question}}\"}}\n  - {{id: r, kind: render, template: \"x ${{v}}\"}}\n  - {{id: f, kind: render, template: \"${{answer.field}}\"}}\n  - id: m\n    kind: map\n    over: ${{answer}}\n    output: ${{item}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "19:40: type mismatch: `${v}` is a vec (an embedding) and cannot be rendered into a template [use a vec only as the `query` of a retrieve node]",
            "20:38: `${answer.field}` reads field `field` of `answer`, which is text; only json values have fields [give the llm node `output: json`, or drop the field]",
            "23:11: type mismatch: the `over` of a map needs list or docs or json, but `${answer}` is text [have the producing llm use `output: json` and return a JSON array]",
        ]
    );
}

#[test]
fn duplicate_ids_and_keys() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: answer, kind: render, template: x, template: y}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "18:5: duplicate node id `answer` (first at 17:5) [node ids are unique across the whole workflow, bodies included]",
            "18:45: duplicate key `template` in a node (first at 18:32)",
        ]
    );
}

#[test]
fn undeclared_model_tool_index_and_wrong_model_kind() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: a, kind: llm, model: chatt, prompt: x}}\n  - {{id: b, kind: tool, tool: calculator, args: {{}}}}\n  - {{id: c, kind: retrieve, index: doc, query: x}}\n  - {{id: d, kind: embed, model: chat, input: x}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "18:5: undeclared model `chatt` [did you mean `chat`?]",
            "19:5: undeclared tool `calculator` [did you mean `calc`?]",
            "20:5: undeclared index `doc` [did you mean `docs`?]",
            "21:5: node `d` needs an embedding model, but `chat` is an llm model [declare an embedding model under `models:` with `kind: embedding`]",
        ]
    );
}

#[test]
fn tool_arguments_are_checked() {
    let src = wf(&format!(
        "{ANSWER}  - {{id: t, kind: tool, tool: calc, args: {{expresion: \"1+1\"}}}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "18:5: call of tool `calc` is missing required argument `expression`",
            "18:55: tool `calc` has no argument `expresion` [did you mean `expression`?]",
        ]
    );
}

#[test]
fn bad_template_placeholders() {
    let src = wf(
        "  - id: answer\n    kind: llm\n    model: chat\n    prompt: |\n      Question:\n        ${inputs question}\n  - {id: b, kind: render, template: \"abc ${\"}\n  - {id: c, kind: render, template: \"${}\"}\n",
    );
    assert_eq!(
        errors(&src),
        vec![
            "22:9: malformed placeholder `${inputs question}` [a reference looks like `${node}`, `${node.field}`, `${inputs.name}`; write `$${` for a literal `${`]",
            "23:42: unclosed placeholder `${` [a reference looks like `${node}`, `${node.field}`, `${inputs.name}`; write `$${` for a literal `${`]",
            "24:38: empty placeholder `${}` [a reference looks like `${node}`, `${node.field}`, `${inputs.name}`; write `$${` for a literal `${`]",
        ]
    );
}

#[test]
fn unbounded_loops() {
    let missing = wf(&format!(
        "{ANSWER}  - id: l\n    kind: loop\n    until: ${{x}} == 1\n    output: ${{inputs.question}}\n"
    ));
    assert_eq!(
        errors(&missing),
        vec![
            "18:5: node `l` is an unbounded loop: `max_iters` is missing [add `max_iters: N` (at most 100); `until` alone may never hold]"
        ]
    );
    let huge = wf(&format!(
        "{ANSWER}  - id: l\n    kind: loop\n    max_iters: 100000\n    output: ${{inputs.question}}\n"
    ));
    assert_eq!(
        errors(&huge),
        vec!["20:16: max_iters of node `l` must be between 1 and 100, found 100000"]
    );
}

#[test]
fn sla_missing_or_not_positive() {
    let missing = wf(ANSWER).replace("sla: {p95_ms: 1000}\n", "");
    assert_eq!(
        errors(&missing),
        vec![
            "1:1: the workflow has no `sla` [add `sla: {p95_ms: 5000}` with the latency the workflow must meet]"
        ]
    );
    let zero = wf(ANSWER).replace("p95_ms: 1000", "p95_ms: 0");
    assert_eq!(
        errors(&zero),
        vec!["15:15: sla.p95_ms must be greater than 0, found 0"]
    );
    let negative = wf(ANSWER).replace("p95_ms: 1000", "p95_ms: -5");
    assert_eq!(
        errors(&negative),
        vec!["15:15: sla.p95_ms must be greater than 0, found -5"]
    );
}

#[test]
fn unknown_keys_and_bad_values() {
    let src = wf(
        "  - {id: answer, kind: lm, model: chat, prompt: x}\n  - {id: b, kind: render, templat: x}\n  - {id: c, kind: llm, model: chat, prompt: x, temperature: 9}\n",
    );
    assert_eq!(
        errors(&src),
        vec![
            "17:24: kind of node `answer` `lm` is not one of llm, embed, retrieve, tool, render, json, map, branch, loop [did you mean `llm`?]",
            "18:5: node `b` is missing `template`",
            "18:27: unknown key `templat` in node `b` [did you mean `template`?]",
            "19:61: temperature of node `c` must be at least 0 and at most 2, found 9",
        ]
    );
}

#[test]
fn a_list_where_a_mapping_belongs() {
    assert_eq!(
        errors("- a\n- b\n"),
        vec!["1:1: the workflow must be a mapping, found a list"]
    );
    let src = wf(ANSWER).replace("sla: {p95_ms: 1000}", "sla: [1000]");
    assert_eq!(
        errors(&src),
        vec!["15:6: sla must be a mapping, found a list"]
    );
}

#[test]
fn hostile_bytes() {
    let e = |b: &[u8]| match parse("wf.yaml", b) {
        Ok(_) => String::new(),
        Err(d) => d.summary_lines().join("\n"),
    };
    assert_eq!(e(b""), "wf.yaml:1:1: the file is empty");
    assert_eq!(
        e(b"name: x\n\0"),
        "wf.yaml:2:1: NUL byte in the file; workflow files are text"
    );
    assert_eq!(
        e(b"name: \xc3\x28"),
        "wf.yaml:1:7: invalid UTF-8 (byte 0xc3 at offset 6)"
    );
    assert!(
        e(b"name: x\nnodes:\n\t- a\n").starts_with("wf.yaml:3:"),
        "{}",
        e(b"name: x\nnodes:\n\t- a\n")
    );
    let big = vec![b'a'; super::yaml::MAX_FILE_BYTES + 1];
    assert_eq!(
        e(&big),
        "wf.yaml:1:1: file is 2097153 bytes; workflow files are limited to 2 MiB"
    );
}

#[test]
fn errors_are_all_reported_at_once_in_order() {
    let src = wf(
        "  - {id: answer, kind: llm, model: nope, prompt: \"${zzz}\"}\n  - {id: b, kind: render}\n",
    )
    .replace("sla: {p95_ms: 1000}", "sla: {p95_ms: 0}");
    assert_eq!(errors(&src).len(), 4, "{:?}", errors(&src));
}

#[test]
fn visibility_of_body_nodes() {
    let src = wf_with_list(&format!(
        "{ANSWER}  - id: m\n    kind: map\n    over: ${{inputs.chunks}}\n    nodes:\n      - {{id: inner, kind: render, template: x}}\n    output: ${{inner}}\n  - {{id: out, kind: render, template: \"${{inner}}\"}}\n"
    ));
    assert_eq!(
        errors(&src),
        vec![
            "25:40: `inner` is inside `m` and not visible here [use `${m}`, the result of `m`, or move `inner` out of its body]"
        ]
    );
}

mod no_panic {
    use proptest::prelude::*;

    use super::super::parse;

    fn examples() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Parses, and when valid emits and verifies MLIR: neither may panic.
    fn exercise(bytes: &[u8]) {
        if let Ok(graph) = parse("fuzz.yaml", bytes) {
            let out = crate::emit::agent_mlir(&graph, "fuzz.yaml");
            assert!(out.is_ok(), "a valid workflow failed to emit: {out:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            exercise(&bytes);
        }

        #[test]
        fn yamlish_text(text in "[a-z{}\\[\\]:,\\-&*!|>'\"$ \n\t.#0-9]{0,400}") {
            exercise(text.as_bytes());
        }

        #[test]
        fn mutated_examples(which in 0usize..64, edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, any::<u8>()), 1..8)) {
            let all = examples();
            prop_assume!(!all.is_empty());
            let mut bytes = all[which % all.len()].clone().into_bytes();
            for (at, op, byte) in edits {
                if bytes.is_empty() { break; }
                let i = at.index(bytes.len());
                match op {
                    0 => { bytes.remove(i); }
                    1 => bytes.insert(i, byte),
                    2 => bytes[i] = byte,
                    _ => {
                        // Duplicate a line: exercises duplicate keys and ids.
                        let start = bytes[..i].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                        let end = bytes[i..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| i + p + 1);
                        let line = bytes[start..end].to_vec();
                        bytes.splice(start..start, line);
                    }
                }
            }
            exercise(&bytes);
        }
    }
}

//! The command line: exit codes, messages, outputs, and hostile files.

use std::time::{Duration, Instant};

use crate::{agentc, text};

const INVALID: i32 = 2;

#[test]
fn check_prints_a_summary() {
    let out = agentc(&[
        "check",
        "examples/rag_qa.yaml",
        "examples/react_calculator.yaml",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "ok: rag_qa (examples/rag_qa.yaml): 3 nodes (1 embed, 1 retrieve, 1 llm), 1 inputs, 2 outputs, SLA p95 4000 ms\n\
         ok: react_calculator (examples/react_calculator.yaml): 4 nodes (1 loop, 1 llm, 1 branch, 1 tool), 1 inputs, 1 outputs, SLA p95 30000 ms\n"
    );
}

#[test]
fn invalid_workflow_exits_2_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: bad\nsla: {p95_ms: 100}\nmodels:\n  chat: {kind: llm, path: m.gguf}\nnodes:\n  - {id: a, kind: llm, model: chat, prompt: \"${b}\"}\n  - {id: b, kind: render, template: \"${a}\"}\noutputs:\n  x: ${a}\n",
    )
    .unwrap();
    let shown = path.display().to_string();
    let out = agentc(&["check", &shown]);
    assert_eq!(out.status.code(), Some(INVALID));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: cycle: a -> b -> a\n  --> {shown}:6:5\n  |\n6 |   - {{id: a, kind: llm, model: chat, prompt: \"${{b}}\"}}\n  |     ^\n  = hint: a node cannot depend on its own result; loops are written with `kind: loop`\n1 error in {shown}\n"
        )
    );
    let out = agentc(&["build", &shown, "--emit", "mlir"]);
    assert_eq!(out.status.code(), Some(INVALID));
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_is_invalid_input() {
    let out = agentc(&["check", "examples/nope.yaml"]);
    assert_eq!(out.status.code(), Some(INVALID));
    assert_eq!(
        text(&out.stderr),
        "error: cannot read examples/nope.yaml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn build_writes_each_format_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    for (emit, start) in [
        ("mlir", "module {"),
        ("dot", "digraph \"rag_qa\" {"),
        ("graph-json", "{"),
    ] {
        let path = dir.path().join(format!("out.{emit}"));
        let out = agentc(&[
            "build",
            "examples/rag_qa.yaml",
            "--emit",
            emit,
            "-o",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(start), "{emit}: {written}");
    }
}

#[test]
fn schema_is_json_with_the_workflow_keys() {
    let out = agentc(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "Workflow");
    assert_eq!(
        schema["required"],
        serde_json::json!(["name", "sla", "nodes", "outputs"])
    );
}

/// Hostile files: each is rejected with exit 2 and a message, quickly, never a panic (101).
#[test]
fn hostile_files_are_rejected_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for (prev, name) in "abcdefghi".chars().zip("bcdefghij".chars()) {
        bomb.push_str(&format!("{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bomb",
            bomb.into_bytes(),
            "aliases expand to more than 100000 nodes",
        ),
        (
            "deep",
            "[".repeat(200_000).into_bytes(),
            "recursion limit exceeded",
        ),
        (
            "deep_block",
            (0..200)
                .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
            "nesting is deeper than 64 levels",
        ),
        (
            "huge",
            vec![b'a'; 50 * 1024 * 1024],
            "workflow files are limited to 2 MiB",
        ),
        (
            "scalar",
            format!("name: {}\n", "x".repeat(1024 * 1024)).into_bytes(),
            "larger than the 256 KiB limit",
        ),
        (
            "tabs",
            b"name: x\nnodes:\n\t- id: a\n".to_vec(),
            "YAML does not allow tabs",
        ),
        (
            "dupkeys",
            b"name: x\nname: y\n".to_vec(),
            "duplicate key `name` in the workflow (first at 1:1)",
        ),
        ("utf8", b"name: \xff\xfe\n".to_vec(), "invalid UTF-8"),
        ("nul", b"name: x\0\n".to_vec(), "NUL byte"),
        ("empty", Vec::new(), "the file is empty"),
        (
            "list",
            b"- name: x\n".to_vec(),
            "the workflow must be a mapping, found a list",
        ),
        (
            "binary",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
            "error",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, &bytes).unwrap();
        let start = Instant::now();
        let out = agentc(&["check", path.to_str().unwrap()]);
        let took = start.elapsed();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(INVALID), "{name}: {err}");
        assert!(
            err.contains(expected),
            "{name}: expected `{expected}` in:\n{err}"
        );
        // A generous bound that only a runaway (exponential expansion, unbounded read) breaks.
        assert!(took < Duration::from_secs(20), "{name} took {took:?}");
    }
}

/// The schema shipped for editors is the one the compiler generates.
#[test]
fn shipped_schema_is_current() {
    let out = agentc(&["schema"]);
    let shipped = std::fs::read_to_string(crate::root().join("docs/workflow.schema.json")).unwrap();
    assert_eq!(
        text(&out.stdout),
        shipped,
        "run `agentc schema > docs/workflow.schema.json`"
    );
}

#[test]
fn profile_rejects_unknown_devices() {
    let out = agentc(&["profile", "--device", "gpu"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(
            "error: invalid value 'gpu' for '--device <DEVICE>': unknown device `gpu`; expected `cpu` or `cuda:N` (e.g. `cuda:0`)\n"
        ),
        "{}",
        text(&out.stderr)
    );
}

/// Without the `cuda` feature a CUDA device is a clear error, before anything is measured.
#[cfg(not(feature = "cuda"))]
#[test]
fn profile_on_cuda_without_cuda_support_says_how_to_get_it() {
    let out = agentc(&["profile", "--device", "cuda:0", "--device-type", "h100-sxm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        "error: agentc was built without CUDA support; rebuild with --features cuda\n"
    );
}

/// With the feature: on a machine without a GPU, the reason; with one, the missing device type.
#[cfg(feature = "cuda")]
#[test]
fn profile_on_cuda_names_what_is_missing() {
    let out = agentc(&["profile", "--device", "cuda:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: no CUDA device: ")
            || err.starts_with("error: --device-type is required with --device cuda:0"),
        "{err}"
    );
}

/// Kills the server when the test ends, passing or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `agentc serve --port 0` prints its address, answers a completion over HTTP, and is stopped.
#[test]
fn serve_answers_a_completion_over_http() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let model = crate::root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_runtime::bundled::present(&model) {
        return;
    }
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_agentc"))
            .args([
                "serve",
                "--port",
                "0",
                "--served-model-name",
                "smol",
                "--model",
            ])
            .arg(&model)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agentc runs"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reads the first line");
    let address = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    let body = r#"{"model": "smol", "prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}"#;
    let mut socket = std::net::TcpStream::connect(&address).expect("connects");
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("sets a timeout");
    write!(
        socket,
        "POST /v1/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("reads");
    let (head, json) = response
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{response}");
    let value: serde_json::Value = serde_json::from_str(json).expect("a JSON body");
    assert_eq!(value["model"], "smol");
    assert_eq!(value["object"], "text_completion");
    assert_eq!(value["usage"]["completion_tokens"], 4);
    assert_eq!(value["choices"][0]["finish_reason"], "length");
    assert!(
        value["choices"][0]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
}

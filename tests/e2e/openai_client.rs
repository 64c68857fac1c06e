//! `agentc serve` driven by the real OpenAI Python client (`tests/python/openai_client.py`):
//! chat, streaming, `response_format` with a schema, a tool-call round trip, logprobs and a
//! 400, every structured output validated with `jsonschema`.

use std::process::Command;

use super::serve_workflows::serve;
use super::{root, text};

#[test]
fn the_openai_python_client_works_against_agentc_serve() {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test.sh, which installs tests/python/requirements.txt \
         (the openai and jsonschema packages) into .venv",
        python.display()
    );
    let (_server, address) = serve(&["--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    let out = Command::new(&python)
        .arg(root().join("tests/python/openai_client.py"))
        .args([
            &format!("http://{address}/v1"),
            "SmolLM2-135M-Instruct.Q4_1",
        ])
        .current_dir(root())
        .output()
        .expect("python runs");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    let checks: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok: "))
        .collect();
    assert_eq!(
        checks,
        [
            "chat",
            "chat streamed equals chat",
            "response_format json_schema (3 samples valid)",
            "response_format json_object",
            "tool_choice required",
            "tool calls streamed equal tool calls",
            "named tool_choice",
            "tool result round trip",
            "tool_choice auto",
            "chat logprobs",
            "completion logprobs",
            "bad schema is a 400 naming the pointer",
        ],
        "{stdout}"
    );
    assert!(stdout.ends_with("all checks passed\n"), "{stdout}");
}

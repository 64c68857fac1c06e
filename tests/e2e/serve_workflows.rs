//! `agentc serve --workflow`: workflow runs over HTTP beside the OpenAI endpoints, on one engine.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::root;

pub(crate) struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `agentc serve --port 0 ARGS...`; the server (killed on drop) and its address.
pub(crate) fn serve(args: &[&str]) -> (KillOnDrop, String) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_agentc"))
            .args(["serve", "--port", "0"])
            .args(args)
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("agentc runs"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("reads the first line");
    let address = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, address)
}

/// One HTTP/1.1 request with `connection: close`: (status line, raw body).
fn request(address: &str, method: &str, path: &str, body: &str) -> (String, String) {
    request_with_key(address, method, path, body, None)
}

/// [`request`] with `Authorization: Bearer KEY` when `key` is given.
fn request_with_key(
    address: &str,
    method: &str,
    path: &str,
    body: &str,
    key: Option<&str>,
) -> (String, String) {
    let auth = key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    let mut socket = std::net::TcpStream::connect(address).expect("connects");
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("sets a timeout");
    write!(
        socket,
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         {auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("reads");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn workflow_runs_over_http() {
    if !agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        return;
    }
    let (_server, address) = serve(&["--workflow", "examples/multi_chain_reasoning.yaml"]);

    let (status, body) = request(&address, "GET", "/v1/workflows", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        json(&body),
        serde_json::json!({"object": "list", "data": [{
            "name": "multi_chain_reasoning", "sla_p95_ms": 12000.0,
            "inputs": [{"name": "question", "type": "text"}]}]})
    );

    let path = "/v1/workflows/multi_chain_reasoning/runs";
    let (status, body) = request(
        &address,
        "POST",
        path,
        r#"{"inputs": {"question": "What is 2 + 2?"}}"#,
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let run = json(&body);
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["workflow"], "multi_chain_reasoning");
    assert!(run["outputs"]["answer"].is_string());
    assert_eq!(run["stats"]["llm_calls"], 6);
    let id = run["id"].as_str().expect("an id").to_owned();
    // Ids are random: `run-` and 32 hex digits.
    let hex = id.strip_prefix("run-").expect("run- prefix");
    assert!(
        hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let (status, body) = request(&address, "GET", &format!("/v1/runs/{id}"), "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(json(&body), run);

    // Streamed: the run id, node and token events, the result, then [DONE].
    let (status, body) = request(
        &address,
        "POST",
        path,
        r#"{"inputs": {"question": "What is 3 + 3?"}, "stream": true}"#,
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    for needle in [
        "event: run\n",
        "event: node\ndata: {\"node\":\"chain1\",\"state\":\"running\"}",
        "event: token\n",
        "event: result\ndata: {\"id\":\"run-",
        "\"status\":\"succeeded\"",
        "data: [DONE]",
    ] {
        assert!(body.contains(needle), "{needle:?} missing from {body}");
    }

    // Errors name what is wrong.
    let (status, body) = request(&address, "POST", "/v1/workflows/nope/runs", "{}");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(
        json(&body)["error"]["message"],
        "no workflow `nope`; this server runs: multi_chain_reasoning"
    );
    let (status, body) = request(&address, "POST", path, r#"{"inputs": {}}"#);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_eq!(
        json(&body)["error"]["message"],
        "inputs: missing input `question` (text); the workflow takes: question"
    );
    let (status, body) = request(
        &address,
        "POST",
        path,
        r#"{"inputs": {"question": 1}, "x": 2}"#,
    );
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("x: unknown field `x`")),
        "{body}"
    );
    for (inputs, message) in [
        (
            r#"{"inputs": {"question": 17}}"#.to_owned(),
            "inputs: input `question` is text: give a JSON string, not a number",
        ),
        (
            format!(r#"{{"inputs": {{"question": "{}"}}}}"#, "why ".repeat(200)),
            "inputs: input `question` is 201 tokens long; the workflow declares max_len 96",
        ),
    ] {
        let (status, body) = request(&address, "POST", path, &inputs);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
        assert_eq!(json(&body)["error"]["message"], message, "{body}");
    }
    let (status, _) = request(&address, "GET", "/v1/runs/run-999", "");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // The OpenAI endpoints serve the workflow's model, and /metrics counts the runs.
    let (status, body) = request(&address, "GET", "/v1/models", "");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(json(&body)["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
    let (_, body) = request(&address, "GET", "/metrics", "");
    assert!(
        body.contains(
            "agentc:workflow_runs_total{workflow=\"multi_chain_reasoning\",outcome=\"succeeded\"} 2"
        ),
        "{body}"
    );
}

/// `agentc run --llm-url` (the plain-orchestrator baseline) sends each LLM call over HTTP; against
/// agentc's own OpenAI server it gives exactly the outputs of the in-process run.
#[test]
fn the_http_orchestrator_baseline_matches_the_in_process_run() {
    if !agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        return;
    }
    let (_server, address) = serve(&["--model", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "examples/multi_chain_reasoning.yaml",
            "-i",
            "question=What is 5 + 6?",
        ];
        args.extend_from_slice(extra);
        let out = super::agentc(&args);
        assert!(out.status.success(), "{}", super::text(&out.stderr));
        (json(&super::text(&out.stdout)), super::text(&out.stderr))
    };
    let url = format!("http://{address}/v1");
    let (remote, stderr) = run(&["--llm-url", &url]);
    assert!(stderr.contains(", 6 LLM calls, "), "{stderr}");
    let (local, _) = run(&[]);
    assert_eq!(remote, local);
}

/// A client that disconnects from a streamed run cancels it: the run never finishes and its
/// LLM sequences stop.
#[test]
fn a_disconnected_client_cancels_its_run() {
    if !agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        return;
    }
    let (_server, address) = serve(&["--workflow", "examples/multi_chain_reasoning.yaml"]);
    let body = r#"{"inputs": {"question": "Count to one hundred."}, "stream": true}"#;
    let mut socket = std::net::TcpStream::connect(&address).expect("connects");
    write!(
        socket,
        "POST /v1/workflows/multi_chain_reasoning/runs HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut reader = BufReader::new(socket.try_clone().expect("clones"));
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("reads") > 0, "{seen}");
        seen.push_str(&line);
    }
    drop(reader);
    socket.shutdown(std::net::Shutdown::Both).expect("closes");
    drop(socket);
    // Poll until nothing runs (generous: the machine may be busy), then check it was cancelled.
    let mut metrics = String::new();
    for _ in 0..600 {
        metrics = request(&address, "GET", "/metrics", "").1;
        if metrics.contains("agentc:workflow_runs_running 0")
            && metrics.contains("agentc:num_requests_running 0")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        metrics.contains("agentc:workflow_runs_running 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agentc:num_requests_running 0"),
        "{metrics}"
    );
    assert!(!metrics.contains("outcome=\"succeeded\""), "{metrics}");
    assert!(
        metrics.contains(
            "agentc:workflow_runs_total{workflow=\"multi_chain_reasoning\",outcome=\"cancelled\"} 1"
        ),
        "{metrics}"
    );
    // Its record ends in a final state.
    let id = seen
        .split("\"id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no run id in {seen}"));
    let (status, record) = request(&address, "GET", &format!("/v1/runs/{id}"), "");
    assert!(status.contains("200"), "{status}: {record}");
    assert_eq!(json(&record)["status"], "cancelled", "{record}");
}

/// Two workflows that declare a tool of the same name: `/metrics` labels tool series by workflow,
/// so no series appears twice.
#[test]
fn metrics_have_no_duplicate_series_when_workflows_share_a_tool_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = super::run::failing_tool_workflow(dir.path(), "calc_a");
    let b = super::run::failing_tool_workflow(dir.path(), "calc_b");
    let (_server, address) = serve(&[
        "--model",
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "--workflow",
        a.to_str().unwrap(),
        "--workflow",
        b.to_str().unwrap(),
    ]);
    for name in ["calc_a", "calc_b"] {
        let (status, body) = request(
            &address,
            "POST",
            &format!("/v1/workflows/{name}/runs"),
            r#"{"inputs": {"expr": "6*7"}}"#,
        );
        assert!(status.contains("200"), "{status}: {body}");
        assert_eq!(json(&body)["outputs"]["value"]["value"], 42, "{body}");
    }
    let (_, metrics) = request(&address, "GET", "/metrics", "");
    let mut series: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').expect("series value").0)
        .collect();
    let total = series.len();
    series.sort_unstable();
    series.dedup();
    assert_eq!(series.len(), total, "duplicate series in:\n{metrics}");
    for workflow in ["calc_a", "calc_b"] {
        for (tool, event, n) in [
            ("broken", "calls", 1),
            ("calculator", "successes", 1),
            ("broken", "reroutes", 1),
        ] {
            let line = format!(
                "agentc:tool_events_total{{workflow=\"{workflow}\",tool=\"{tool}\",event=\"{event}\"}} {n}"
            );
            assert!(
                metrics.lines().any(|l| l == line),
                "no {line:?} in:\n{metrics}"
            );
        }
    }
    // A run that fails (the calculator refuses 1/0 and no fallback is left) is recorded as
    // failed, with the node that failed.
    let (status, body) = request(
        &address,
        "POST",
        "/v1/workflows/calc_a/runs",
        r#"{"inputs": {"expr": "1/0"}}"#,
    );
    assert!(status.contains("500"), "{status}: {body}");
    let id = json(&body)["id"].as_str().expect("run id").to_owned();
    let (status, record) = request(&address, "GET", &format!("/v1/runs/{id}"), "");
    assert!(status.contains("200"), "{status}: {record}");
    let record = json(&record);
    assert_eq!(
        (&record["status"], &record["node"]),
        (&serde_json::json!("failed"), &serde_json::json!("calc")),
        "{record}"
    );
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("no fallback is left")),
        "{record}"
    );
}

/// With `--api-key-file`, every route but `/health` needs one of the keys; without keys the
/// server refuses to listen beyond loopback.
#[test]
fn api_keys_guard_the_server_and_are_required_off_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "# test keys\nsk-test-0123456789abcdef\nsk-other-0123456789abcdef\n",
    )
    .expect("writes");
    let workflow = super::run::failing_tool_workflow(dir.path(), "calc_a");
    let (_server, address) = serve(&[
        "--model",
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "--workflow",
        workflow.to_str().unwrap(),
        "--api-key-file",
        keys.to_str().unwrap(),
    ]);
    let body = r#"{"prompt": "Hi", "max_tokens": 1}"#;
    let (status, text) = request(&address, "POST", "/v1/completions", body);
    assert!(status.contains("401"), "{status}: {text}");
    assert_eq!(json(&text)["error"]["code"], "invalid_api_key");
    let (status, _) = request_with_key(&address, "POST", "/v1/completions", body, Some("sk-wrong"));
    assert!(status.contains("401"), "{status}");
    let (status, _) = request(&address, "GET", "/v1/models", "");
    assert!(status.contains("401"), "{status}");
    let (status, text) = request_with_key(
        &address,
        "POST",
        "/v1/completions",
        body,
        Some("sk-test-0123456789abcdef"),
    );
    assert!(status.contains("200"), "{status}: {text}");
    let (status, _) = request(&address, "GET", "/health", "");
    assert!(status.contains("200"), "{status}");

    // A run is readable with the key that started it, and to another key it does not exist.
    let (status, text) = request_with_key(
        &address,
        "POST",
        "/v1/workflows/calc_a/runs",
        r#"{"inputs": {"expr": "1+1"}}"#,
        Some("sk-test-0123456789abcdef"),
    );
    assert!(status.contains("200"), "{status}: {text}");
    let id = json(&text)["id"].as_str().expect("an id").to_owned();
    let path = format!("/v1/runs/{id}");
    let (status, _) =
        request_with_key(&address, "GET", &path, "", Some("sk-test-0123456789abcdef"));
    assert!(status.contains("200"), "{status}");
    let (status, _) = request_with_key(
        &address,
        "GET",
        &path,
        "",
        Some("sk-other-0123456789abcdef"),
    );
    assert!(status.contains("404"), "{status}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agentc"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--model"])
        .arg(root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .output()
        .expect("agentc runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--host 0.0.0.0 is reachable from other machines; give --api-key-file"),
        "{stderr}"
    );
}

#[test]
fn finished_run_records_expire_after_the_retention() {
    if !agentc_runtime::bundled::present(&root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf")) {
        return;
    }
    let (_server, address) = serve(&[
        "--workflow",
        "examples/multi_chain_reasoning.yaml",
        "--run-retention",
        "0",
    ]);
    let (status, body) = request(
        &address,
        "POST",
        "/v1/workflows/multi_chain_reasoning/runs",
        r#"{"inputs": {"question": "What is 2 + 2?"}}"#,
    );
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let run = json(&body);
    assert_eq!(run["status"], "succeeded");
    let id = run["id"].as_str().expect("an id");
    let (status, body) = request(&address, "GET", &format!("/v1/runs/{id}"), "");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert_eq!(
        json(&body)["error"]["message"],
        format!("no run `{id}` (finished runs are kept for 0 s, and only the 1000 most recent)")
    );
}

//! HTTP tools against a real HTTP server on loopback, started by the test: 200 with JSON, 500,
//! 200 with invalid JSON, a GET with query parameters, an oversized answer, and a hang.

use std::time::{Duration, Instant};

use agentc_runtime::tools::{
    BreakerConfig, FailureKind, ToolFailure, ToolRouter, ToolRunner, ToolSpec,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HANG_TIMEOUT_MS: u64 = 300;
const HANG_BOUND: Duration = Duration::from_secs(3);
const BIG_BODY_BYTES: usize = 100_000;

/// Reads one request: (request line, body).
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < header_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let line = head.lines().next().unwrap_or_default().to_string();
    Some((line, data[header_end..].to_vec()))
}

async fn respond(stream: &mut TcpStream, status: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    let _ = stream.shutdown().await;
}

async fn serve(mut stream: TcpStream) {
    let Some((line, body)) = read_request(&mut stream).await else {
        return;
    };
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    match target.split('?').next().unwrap_or_default() {
        "/ok" => {
            let args: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let reply = json!({"echo": args, "method": line.split_whitespace().next()});
            respond(&mut stream, "200 OK", reply.to_string().as_bytes()).await;
        }
        "/query" => {
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
            respond(
                &mut stream,
                "200 OK",
                json!({"query": query}).to_string().as_bytes(),
            )
            .await;
        }
        "/fail" => respond(&mut stream, "500 Internal Server Error", b"database down").await,
        "/garbled" => respond(&mut stream, "200 OK", b"<html>oops</html>").await,
        "/big" => respond(&mut stream, "200 OK", &vec![b' '; BIG_BODY_BYTES]).await,
        "/hang" => tokio::time::sleep(Duration::from_secs(60)).await,
        "/redirect" => {
            let head = "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/internal-secret\r\n\
                        content-length: 0\r\nconnection: close\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
        "/bad-request" => respond(&mut stream, "400 Bad Request", b"no such city").await,
        _ => respond(&mut stream, "404 Not Found", b"").await,
    }
}

/// Starts the server; returns its base URL.
async fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    format!("http://{addr}")
}

fn runner() -> ToolRunner {
    ToolRunner::new(&std::env::temp_dir()).expect("runner")
}

#[tokio::test]
async fn post_sends_arguments_as_json_body() {
    let base = start_server().await;
    let spec = ToolSpec::http("search", &format!("{base}/ok"));
    let out = runner().run(&spec, &json!({"query": "rust"})).await;
    assert_eq!(
        out,
        Ok(json!({"echo": {"query": "rust"}, "method": "POST"}))
    );
}

#[tokio::test]
async fn get_sends_arguments_as_query() {
    let base = start_server().await;
    let mut spec = ToolSpec::http("lookup", &format!("{base}/query"));
    spec.method = Some("GET".to_string());
    let out = runner().run(&spec, &json!({"q": "a b", "n": 3})).await;
    // Arguments go in the order they were given (serde_json keeps insertion order).
    assert_eq!(out, Ok(json!({"query": "q=a+b&n=3"})));
}

#[tokio::test]
async fn server_error_is_a_failure_with_status_and_body() {
    let base = start_server().await;
    let spec = ToolSpec::http("search", &format!("{base}/fail"));
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "answered HTTP 500: \"database down\"");
    assert_eq!(err.kind(), FailureKind::HttpStatus);
}

/// A redirect is never followed (a tool could be sent to an internal address): it is an error.
#[tokio::test]
async fn redirects_are_not_followed() {
    let base = start_server().await;
    let spec = ToolSpec::http("search", &format!("{base}/redirect"));
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "answered HTTP 302");
}

/// A 4xx answer refuses this call's input: not a sign the tool is down. A 5xx is.
#[tokio::test]
async fn client_errors_are_not_health_failures() {
    let base = start_server().await;
    let spec = ToolSpec::http("search", &format!("{base}/bad-request"));
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(err.to_string(), "answered HTTP 400: \"no such city\"");
    assert!(!err.is_health_failure());
    let spec = ToolSpec::http("search", &format!("{base}/fail"));
    assert!(
        runner()
            .run(&spec, &json!({}))
            .await
            .unwrap_err()
            .is_health_failure()
    );
}

#[tokio::test]
async fn invalid_json_answer_is_a_failure() {
    let base = start_server().await;
    let spec = ToolSpec::http("search", &format!("{base}/garbled"));
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "returned invalid JSON (expected value at line 1 column 1): \"<html>oops</html>\""
    );
}

#[tokio::test]
async fn oversized_answer_is_capped() {
    let base = start_server().await;
    let mut spec = ToolSpec::http("search", &format!("{base}/big"));
    spec.max_output_bytes = 1000;
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(err, ToolFailure::OutputTooLarge { limit: 1000 });
}

#[tokio::test]
async fn hanging_server_times_out() {
    let base = start_server().await;
    let mut spec = ToolSpec::http("search", &format!("{base}/hang"));
    spec.timeout_ms = HANG_TIMEOUT_MS;
    let started = Instant::now();
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(
        err,
        ToolFailure::Timeout {
            ms: HANG_TIMEOUT_MS
        }
    );
    assert!(started.elapsed() < HANG_BOUND, "{:?}", started.elapsed());
}

#[tokio::test]
async fn unreachable_server_and_bad_method_are_failures() {
    // Bind then drop a listener: nothing listens on that port afterwards.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let spec = ToolSpec::http("gone", &format!("http://127.0.0.1:{port}/x"));
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(err.kind(), FailureKind::Unreachable);
    assert!(err.to_string().contains("Connection refused"), "{err}");

    let mut spec = ToolSpec::http("odd", "http://127.0.0.1:9/x");
    spec.method = Some("DELETE".to_string());
    let err = runner().run(&spec, &json!({})).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot be run: method \"DELETE\" is not GET or POST"
    );
}

#[tokio::test]
async fn failing_http_tool_falls_back_to_a_healthy_one() {
    let base = start_server().await;
    let mut primary = ToolSpec::http("primary", &format!("{base}/hang"));
    primary.timeout_ms = HANG_TIMEOUT_MS;
    primary.fallbacks = vec!["broken".to_string(), "mirror".to_string()];
    let mut broken = ToolSpec::http("broken", &format!("{base}/fail"));
    broken.cost = 0.5;
    let mut mirror = ToolSpec::http("mirror", &format!("{base}/ok"));
    mirror.cost = 2.0;
    let router = ToolRouter::new(
        vec![primary, broken, mirror],
        runner(),
        BreakerConfig::default(),
    )
    .expect("router");
    let call = router
        .call("primary", &json!({"q": 1}))
        .await
        .expect("mirror answers");
    assert_eq!(call.tool, "mirror");
    assert_eq!(call.value["echo"], json!({"q": 1}));
    let tried: Vec<String> = call.failed.iter().map(ToString::to_string).collect();
    assert_eq!(
        tried,
        [
            format!("primary timed out after {HANG_TIMEOUT_MS} ms"),
            "broken answered HTTP 500: \"database down\"".to_string()
        ]
    );
    let m = router.metrics().snapshot();
    assert_eq!(m["primary"].failures_of(FailureKind::Timeout), 1);
    assert_eq!(m["broken"].failures_of(FailureKind::HttpStatus), 1);
    assert_eq!(m["mirror"].successes, 1);
}

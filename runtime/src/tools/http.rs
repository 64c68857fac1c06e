//! HTTP tools: the arguments as a JSON body (POST) or as query parameters (GET), under the
//! tool's time limit and output cap.

use serde_json::Value;

use super::ToolSpec;
use super::failure::{self, ToolFailure};

pub async fn run(
    client: &reqwest::Client,
    spec: &ToolSpec,
    args: &Value,
) -> Result<Vec<u8>, ToolFailure> {
    let Some(url) = spec.url.as_deref() else {
        return Err(ToolFailure::Misconfigured(
            "an http tool needs a url".to_string(),
        ));
    };
    let method = spec.method.as_deref().unwrap_or("POST");
    let request = if method.eq_ignore_ascii_case("POST") {
        client.post(url).json(args)
    } else if method.eq_ignore_ascii_case("GET") {
        client.get(url).query(&query_pairs(args))
    } else {
        return Err(ToolFailure::Misconfigured(format!(
            "method {method:?} is not GET or POST"
        )));
    };
    let call = async {
        let mut response = request
            .send()
            .await
            .map_err(|e| ToolFailure::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| ToolFailure::Unreachable(error_chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > spec.max_output_bytes {
                return Err(ToolFailure::OutputTooLarge {
                    limit: spec.max_output_bytes,
                });
            }
        }
        if !status.is_success() {
            return Err(ToolFailure::HttpStatus {
                status: status.as_u16(),
                body: failure::snippet(&String::from_utf8_lossy(&body)),
            });
        }
        Ok(body)
    };
    tokio::time::timeout(spec.timeout(), call)
        .await
        .unwrap_or(Err(ToolFailure::Timeout {
            ms: spec.timeout_ms,
        }))
}

/// Query parameters from a JSON object: strings as they are, other values as JSON.
fn query_pairs(args: &Value) -> Vec<(String, String)> {
    args.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// reqwest's error with its sources ("error sending request: connection refused").
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

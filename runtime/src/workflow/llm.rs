//! LLM calls of a run: on the serving engine, or over HTTP to an OpenAI-compatible server (the
//! plain-orchestrator baseline); and parsing a model's JSON output.

use std::time::Instant;

use serde_json::Value as Json;

use crate::constraint::OutputConstraint;

use super::{Datum, Kv, NodeError, Run, RunEvent, lock};
use crate::engine::{GenerateRequest, Prompt};
use crate::plan::Op;
use crate::serving::{SequenceEvent, ServingEngine, SubmitOptions};
use crate::value::snippet;

/// An OpenAI-compatible completions endpoint (for example llama.cpp's server).
#[derive(Clone, Debug)]
pub(super) struct RemoteLlm {
    pub(super) client: reqwest::Client,
    /// Up to and including `/v1`.
    pub(super) base_url: String,
}

impl<'a> Run<'a> {
    pub(super) async fn decode(
        self,
        op: &'a Op,
        serving: &ServingEngine,
        request: GenerateRequest,
        kv: &Kv,
        deadline: Instant,
    ) -> std::result::Result<Datum, NodeError> {
        let fail = |message: String| NodeError::new(op, message);
        let submitted = serving.submit(
            request,
            SubmitOptions {
                deadline: Some(deadline),
                retain_prefix_tokens: kv.retain_tokens,
            },
        );
        let mut sequence = match submitted {
            Ok(sequence) => {
                if kv.retain_tokens > 0 {
                    lock(&self.ctx.retained).push((serving.clone(), sequence.id()));
                }
                sequence
            }
            Err(error) => {
                return Err(fail(format!("the LLM engine refused the call: {error}")));
            }
        };
        let mut text = None;
        while let Some(event) = sequence.next().await {
            match event {
                SequenceEvent::Started {
                    prompt_tokens,
                    cached_tokens,
                    ..
                } => {
                    let mut stats = lock(&self.ctx.stats);
                    stats.llm_calls += 1;
                    stats.prompt_tokens += prompt_tokens;
                    stats.cached_tokens += cached_tokens;
                    let node = stats.llm_nodes.entry(op.node.clone()).or_default();
                    node.calls += 1;
                    node.prompt_tokens += prompt_tokens;
                    node.cached_tokens += cached_tokens;
                }
                SequenceEvent::Token { text, .. } => {
                    self.ctx.emit(RunEvent::Token {
                        node: op.node.clone(),
                        text,
                    });
                }
                SequenceEvent::Finished { usage, text: t, .. } => {
                    let mut stats = lock(&self.ctx.stats);
                    stats.completion_tokens += usage.completion_tokens;
                    stats
                        .llm_nodes
                        .entry(op.node.clone())
                        .or_default()
                        .completion_tokens += usage.completion_tokens;
                    drop(stats);
                    text = Some(t);
                }
                SequenceEvent::Failed(error) => {
                    return Err(fail(error.to_string()));
                }
            }
        }
        let text =
            text.ok_or_else(|| fail("the LLM engine ended the call without a result".to_owned()))?;
        Ok(Datum::Generated(text.into()))
    }

    /// One LLM call over HTTP to the remote server. The prompt goes as text (servers such as
    /// llama-cpp-python's take no token ids), without the BOS the server adds itself.
    pub(super) async fn remote_decode(
        self,
        op: &'a Op,
        remote: &RemoteLlm,
        tokenizer: &agentc_model::Tokenizer,
        request: GenerateRequest,
    ) -> std::result::Result<Datum, NodeError> {
        let fail = |message: String| NodeError::new(op, message);
        let Prompt::Tokens(tokens) = &request.prompt else {
            return Err(fail("a remote call needs token ids".to_owned()));
        };
        let bos = tokenizer.special_ids().bos;
        let tokens = match tokens.split_first() {
            Some((first, rest)) if tokenizer.adds_bos() && Some(*first) == bos => rest,
            _ => tokens.as_slice(),
        };
        let prompt = tokenizer
            .decode(tokens, true)
            .map_err(|e| fail(e.to_string()))?;
        let mut body = serde_json::json!({
            "prompt": prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "seed": request.sampling.seed,
        });
        if request.sampling.top_k > 0 {
            body["top_k"] = serde_json::json!(request.sampling.top_k);
        }
        if !request.stop.is_empty() {
            body["stop"] = serde_json::json!(request.stop);
        }
        // llama.cpp's server constrains to a JSON Schema with its own grammar engine.
        match &request.constraint {
            Some(OutputConstraint::JsonSchema(schema)) => body["json_schema"] = schema.clone(),
            Some(OutputConstraint::JsonObject) => {
                body["json_schema"] = serde_json::json!({"type": "object"})
            }
            Some(OutputConstraint::Choice(choices)) => {
                body["json_schema"] = serde_json::json!({"enum": choices})
            }
            // Workflows carry no Lark grammars; llama.cpp takes GBNF, not Rust regexes.
            Some(OutputConstraint::Regex(_) | OutputConstraint::Lark(_)) | None => {}
        }
        let url = format!("{}/completions", remote.base_url);
        let response = remote
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| fail(format!("POST {url}: {e}")))?;
        let status = response.status();
        let reply: Json = response
            .json()
            .await
            .map_err(|e| fail(format!("POST {url}: the reply is not JSON: {e}")))?;
        if !status.is_success() {
            return Err(fail(format!(
                "POST {url}: HTTP {status}: {}",
                snippet(&reply.to_string())
            )));
        }
        let text = reply["choices"][0]["text"]
            .as_str()
            .ok_or_else(|| {
                fail(format!(
                    "POST {url}: no choices[0].text in {}",
                    snippet(&reply.to_string())
                ))
            })?
            .to_owned();
        {
            let usage = &reply["usage"];
            let count = |field: &str| usage[field].as_u64().unwrap_or(0) as usize;
            let mut stats = lock(&self.ctx.stats);
            stats.llm_calls += 1;
            stats.prompt_tokens += count("prompt_tokens");
            stats.completion_tokens += count("completion_tokens");
            let node = stats.llm_nodes.entry(op.node.clone()).or_default();
            node.calls += 1;
            node.prompt_tokens += count("prompt_tokens");
            node.completion_tokens += count("completion_tokens");
        }
        self.ctx.emit(RunEvent::Token {
            node: op.node.clone(),
            text: text.clone(),
        });
        Ok(Datum::Generated(text.into()))
    }
}

/// A model's reply as JSON: the whole text; else the first parseable `{...}` or `[...]` in it
/// (a remote server's unconstrained reply may wrap JSON in prose or code fences). A value cut
/// short is never closed here: constrained decoding fails instead.
pub fn parse_model_json(text: &str) -> std::result::Result<Json, String> {
    if let Ok(json) = serde_json::from_str(text.trim()) {
        return Ok(json);
    }
    for (start, c) in text.char_indices() {
        if c == '{' || c == '[' {
            let mut stream = serde_json::Deserializer::from_str(&text[start..]).into_iter::<Json>();
            if let Some(Ok(json)) = stream.next() {
                return Ok(json);
            }
        }
    }
    Err(format!("the model's output is not JSON: {}", snippet(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_json_is_found_inside_prose() {
        assert_eq!(
            parse_model_json("Sure! ```json\n{\"a\": [1, 2]}\n``` done").unwrap(),
            serde_json::json!({"a": [1, 2]})
        );
        assert_eq!(parse_model_json(" 42 ").unwrap(), serde_json::json!(42));
        assert_eq!(
            parse_model_json("no json {here").unwrap_err(),
            "the model's output is not JSON: no json {here"
        );
    }
}

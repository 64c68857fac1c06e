//! The handlers, and [`Running`]: a submitted sequence with its metrics tracker.

use std::time::Instant;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, JsonBody};
use super::metrics::RequestTracker;
use super::openai::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatLogprobs, ChatRequest, Checked, Completion,
    CompletionChoice, CompletionLogprobs, CompletionRequest, ModelCard, ModelList, finish_reason,
};
use super::sse::{StreamKind, event_stream};
use super::{AppState, unix_seconds};
use crate::engine::FinishReason;
use crate::sampling::TokenLogprob;
use crate::serving::{Sequence, SequenceEvent, ServingEngine, SubmitError, SubmitOptions, Usage};

pub async fn completions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CompletionRequest>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    state.check_model(body.model.as_deref())?;
    let checked = body.check(state.serving().engine())?;
    let logprobs = checked.request.logprobs.is_some();
    let mut running = Running::start(&state, checked, arrived, "cmpl").await?;
    if body.stream {
        let kind = StreamKind::Completion {
            include_usage: body.sampling().include_usage,
        };
        return Ok(event_stream(running, kind, None, logprobs).into_response());
    }
    let (reason, usage, text, token_logprobs) = running.finish().await?;
    let engine = state.serving().engine();
    Ok(axum::Json(Completion {
        id: running.id,
        object: "text_completion",
        created: running.created,
        model: state.model_id().to_owned(),
        choices: vec![CompletionChoice {
            text,
            index: 0,
            logprobs: logprobs.then(|| CompletionLogprobs::new(engine, &token_logprobs, &mut 0)),
            finish_reason: Some(finish_reason(&reason)),
        }],
        usage: Some(usage.into()),
    })
    .into_response())
}

pub async fn chat_completions(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<ChatRequest>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    state.check_model(body.model.as_deref())?;
    let mut checked = body.check(state.serving().engine())?;
    let logprobs = checked.request.logprobs.is_some();
    let tools = checked.tools.take();
    let mut running = Running::start(&state, checked, arrived, "chatcmpl").await?;
    if body.stream {
        let kind = StreamKind::Chat {
            include_usage: body.sampling().include_usage,
        };
        return Ok(event_stream(running, kind, tools, logprobs).into_response());
    }
    let (reason, usage, text, token_logprobs) = running.finish().await?;
    let (message, finish) = match &tools {
        Some(plan) => {
            let reply = plan.parse(&text, &running.id)?;
            let finish = if reply.calls.is_empty() {
                finish_reason(&reason)
            } else {
                "tool_calls"
            };
            let message = AssistantMessage {
                role: "assistant",
                content: reply.content,
                tool_calls: (!reply.calls.is_empty()).then_some(reply.calls),
            };
            (message, finish)
        }
        None => {
            let message = AssistantMessage {
                role: "assistant",
                content: Some(text),
                tool_calls: None,
            };
            (message, finish_reason(&reason))
        }
    };
    let engine = state.serving().engine();
    Ok(axum::Json(ChatCompletion {
        id: running.id,
        object: "chat.completion",
        created: running.created,
        model: state.model_id().to_owned(),
        choices: vec![ChatChoice {
            index: 0,
            message,
            logprobs: logprobs.then(|| ChatLogprobs::new(engine, &token_logprobs)),
            finish_reason: finish,
        }],
        usage: usage.into(),
    })
    .into_response())
}

pub async fn models(State(state): State<AppState>) -> axum::Json<ModelList> {
    axum::Json(ModelList {
        object: "list",
        data: vec![ModelCard {
            id: state.model_id().to_owned(),
            object: "model",
            created: state.inner.created,
            owned_by: "agentc",
            max_model_len: state.serving().engine().context_length(),
        }],
    })
}

/// 200 while the server answers: the engine is loaded before the listener opens.
pub async fn health() -> StatusCode {
    StatusCode::OK
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut registry = state.metrics().registry(&state.serving().stats());
    if let Some(workflows) = state.workflows() {
        workflows.register_metrics(&mut registry);
    }
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        super::metrics::encode(&registry),
    )
        .into_response()
}

/// What a running sequence produced next.
#[derive(Debug)]
pub enum Step {
    /// Text that became final (may be empty), and the step's token log-probabilities if the
    /// request asked for them.
    Token {
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Finished {
        reason: FinishReason,
        usage: Usage,
        text: String,
    },
}

/// A sequence that has started, with the response's id and its metrics. Dropping it cancels
/// the sequence and counts the request as aborted unless it finished.
#[derive(Debug)]
pub struct Running {
    sequence: Sequence,
    tracker: RequestTracker,
    pub id: String,
    pub created: u64,
    pub model: String,
    /// The engine that runs it (its tokenizer shows log-probabilities' tokens).
    pub serving: ServingEngine,
}

impl Running {
    /// Submits `checked` and waits until the sequence has started (so that a request the engine
    /// refuses gets an error status, not a stream that fails).
    async fn start(
        state: &AppState,
        checked: Checked,
        arrived: Instant,
        id_prefix: &str,
    ) -> Result<Self, ApiError> {
        let sequence = state
            .serving()
            .submit(checked.request, SubmitOptions::default())
            .inspect_err(|error| {
                if matches!(error, SubmitError::Overloaded { .. }) {
                    state.metrics().record_rejected();
                }
            })?;
        let mut running = Self {
            id: format!("{id_prefix}-{}", sequence.id()),
            sequence,
            tracker: RequestTracker::new(state.metrics().clone(), arrived),
            created: unix_seconds(),
            model: state.model_id().to_owned(),
            serving: state.serving().clone(),
        };
        match running.sequence.next().await {
            Some(SequenceEvent::Started {
                prompt_tokens,
                queued,
                ..
            }) => {
                running.tracker.started(prompt_tokens, queued);
                Ok(running)
            }
            Some(SequenceEvent::Failed(error)) => {
                running.tracker.fail();
                Err(error.into())
            }
            Some(other) => {
                running.tracker.fail();
                Err(ApiError::Engine(agentc_engine::Error::InvalidRequest(
                    format!("the serving engine sent {other:?} before Started"),
                )))
            }
            None => {
                running.tracker.fail();
                Err(ApiError::EngineStopped)
            }
        }
    }

    /// The next step; `None` after `Finished` or an error.
    pub async fn next(&mut self) -> Option<Result<Step, ApiError>> {
        loop {
            let event = self.sequence.next().await;
            return match event {
                Some(SequenceEvent::Token { text, logprobs, .. }) => {
                    self.tracker.token();
                    Some(Ok(Step::Token { text, logprobs }))
                }
                Some(SequenceEvent::Finished {
                    reason,
                    usage,
                    text,
                }) => {
                    self.tracker.finish(&reason);
                    Some(Ok(Step::Finished {
                        reason,
                        usage,
                        text,
                    }))
                }
                Some(SequenceEvent::Failed(error)) => {
                    self.tracker.fail();
                    Some(Err(error.into()))
                }
                // A second Started cannot come; skip it rather than fail the request.
                Some(SequenceEvent::Started { .. }) => continue,
                None if self.tracker.is_done() => None,
                None => {
                    self.tracker.fail();
                    Some(Err(ApiError::EngineStopped))
                }
            };
        }
    }

    /// Reads the sequence to its end: finish reason, usage, text and log-probabilities.
    async fn finish(
        &mut self,
    ) -> Result<(FinishReason, Usage, String, Vec<TokenLogprob>), ApiError> {
        let mut all = Vec::new();
        loop {
            match self.next().await {
                Some(Ok(Step::Token { logprobs, .. })) => all.extend(logprobs),
                Some(Ok(Step::Finished {
                    reason,
                    usage,
                    text,
                })) => return Ok((reason, usage, text, all)),
                Some(Err(error)) => return Err(error),
                None => return Err(ApiError::EngineStopped),
            }
        }
    }
}

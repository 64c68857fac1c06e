//! Server-sent events for `"stream": true`: `data: {chunk}` lines, then `data: [DONE]`.
//!
//! The stream owns the [`Running`] sequence, so when a client disconnects hyper drops the
//! stream, the sequence is dropped and the serving engine cancels it.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::response::sse::{Event, Sse};
use futures::Stream;
use serde::Serialize;

use super::error::ApiError;
use super::openai::{
    ChatChunk, ChatChunkChoice, Completion, CompletionChoice, Delta, finish_reason,
};
use super::routes::{Running, Step};
use crate::serving::Usage;

/// Which endpoint's chunk format to stream.
#[derive(Clone, Copy, Debug)]
pub enum StreamKind {
    Completion { include_usage: bool },
    Chat { include_usage: bool },
}

struct StreamState {
    running: Running,
    kind: StreamKind,
    pending: VecDeque<Event>,
    done: bool,
}

/// The SSE response for a started sequence.
pub fn event_stream(
    running: Running,
    kind: StreamKind,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut state = StreamState {
        running,
        kind,
        pending: VecDeque::new(),
        done: false,
    };
    if let StreamKind::Chat { .. } = kind {
        let first = state.chat_chunk(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            None,
        );
        state.pending.push_back(first);
    }
    Sse::new(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.pending.pop_front() {
                return Some((Ok(event), state));
            }
            if state.done {
                return None;
            }
            state.advance().await;
        }
    }))
}

impl StreamState {
    /// Reads the next step of the sequence into `pending`.
    async fn advance(&mut self) {
        match self.running.next().await {
            Some(Ok(Step::Token(text))) => {
                if !text.is_empty() {
                    let event = self.content_chunk(text);
                    self.pending.push_back(event);
                }
            }
            Some(Ok(Step::Finished { reason, usage, .. })) => {
                let reason = finish_reason(&reason);
                let last = match self.kind {
                    StreamKind::Completion { .. } => {
                        self.completion_chunk(String::new(), Some(reason))
                    }
                    StreamKind::Chat { .. } => self.chat_chunk(Delta::default(), Some(reason)),
                };
                self.pending.push_back(last);
                if let Some(event) = self.usage_chunk(usage) {
                    self.pending.push_back(event);
                }
                self.end();
            }
            Some(Err(error)) => {
                self.pending.push_back(error_event(&error));
                self.end();
            }
            None => {
                self.pending
                    .push_back(error_event(&ApiError::EngineStopped));
                self.end();
            }
        }
    }

    fn end(&mut self) {
        self.pending.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }

    fn content_chunk(&self, text: String) -> Event {
        match self.kind {
            StreamKind::Completion { .. } => self.completion_chunk(text, None),
            StreamKind::Chat { .. } => self.chat_chunk(
                Delta {
                    role: None,
                    content: Some(text),
                },
                None,
            ),
        }
    }

    fn completion_chunk(&self, text: String, finish_reason: Option<&'static str>) -> Event {
        json_event(&Completion {
            id: self.running.id.clone(),
            object: "text_completion",
            created: self.running.created,
            model: self.running.model.clone(),
            choices: vec![CompletionChoice {
                text,
                index: 0,
                logprobs: None,
                finish_reason,
            }],
            usage: None,
        })
    }

    fn chat_chunk(&self, delta: Delta, finish_reason: Option<&'static str>) -> Event {
        json_event(&ChatChunk {
            id: self.running.id.clone(),
            object: "chat.completion.chunk",
            created: self.running.created,
            model: self.running.model.clone(),
            choices: vec![ChatChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: None,
        })
    }

    /// OpenAI's `stream_options.include_usage`: one more chunk, with no choices and the usage.
    fn usage_chunk(&self, usage: Usage) -> Option<Event> {
        Some(match self.kind {
            StreamKind::Completion {
                include_usage: true,
            } => json_event(&Completion {
                id: self.running.id.clone(),
                object: "text_completion",
                created: self.running.created,
                model: self.running.model.clone(),
                choices: Vec::new(),
                usage: Some(usage.into()),
            }),
            StreamKind::Chat {
                include_usage: true,
            } => json_event(&ChatChunk {
                id: self.running.id.clone(),
                object: "chat.completion.chunk",
                created: self.running.created,
                model: self.running.model.clone(),
                choices: Vec::new(),
                usage: Some(usage.into()),
            }),
            _ => return None,
        })
    }
}

fn json_event(chunk: &impl Serialize) -> Event {
    // These types hold only strings and numbers, so serializing them cannot fail; an error
    // would still produce a well-formed (empty object) event rather than a panic.
    Event::default().data(serde_json::to_string(chunk).unwrap_or_else(|_| "{}".to_owned()))
}

fn error_event(error: &ApiError) -> Event {
    Event::default().data(error.body().to_string())
}

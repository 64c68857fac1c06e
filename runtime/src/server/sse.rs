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
    ChatChunk, ChatChunkChoice, ChatLogprobs, Completion, CompletionChoice, CompletionLogprobs,
    Delta, ToolCallDelta, finish_reason,
};
use super::routes::{Running, Step};
use super::tool_calls::{Format, HermesParser, Piece, ToolCallOut, ToolPlan};
use crate::sampling::TokenLogprob;
use crate::serving::Usage;

/// Which endpoint's chunk format to stream.
#[derive(Clone, Copy, Debug)]
pub enum StreamKind {
    Completion { include_usage: bool },
    Chat { include_usage: bool },
}

/// How a chat reply with tools is streamed: a Hermes reply's text as it comes and each call
/// once it is closed; a generic reply (one JSON object) once it is complete.
enum ToolStream {
    Hermes {
        plan: ToolPlan,
        parser: HermesParser,
    },
    Generic {
        plan: ToolPlan,
        text: String,
    },
}

struct StreamState {
    running: Running,
    kind: StreamKind,
    tools: Option<ToolStream>,
    /// Calls streamed so far.
    calls: usize,
    logprobs: bool,
    /// Log-probabilities not yet sent (they go with the next chunk).
    held_logprobs: Vec<TokenLogprob>,
    /// Characters of completion text streamed so far (`text_offset`).
    text_offset: usize,
    pending: VecDeque<Event>,
    done: bool,
}

/// The SSE response for a started sequence.
pub fn event_stream(
    running: Running,
    kind: StreamKind,
    tools: Option<ToolPlan>,
    logprobs: bool,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let tools = tools.map(|plan| match plan.format {
        Format::Hermes => ToolStream::Hermes {
            plan,
            parser: HermesParser::default(),
        },
        Format::Generic => ToolStream::Generic {
            plan,
            text: String::new(),
        },
    });
    let mut state = StreamState {
        running,
        kind,
        tools,
        calls: 0,
        logprobs,
        held_logprobs: Vec::new(),
        text_offset: 0,
        pending: VecDeque::new(),
        done: false,
    };
    if let StreamKind::Chat { .. } = kind {
        let first = state.chat_chunk(
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                tool_calls: None,
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
            Some(Ok(Step::Token { text, logprobs })) => {
                self.held_logprobs.extend(logprobs);
                if let Err(error) = self.text(text) {
                    self.fail(&error);
                }
            }
            Some(Ok(Step::Finished { reason, usage, .. })) => {
                if let Err(error) = self.end_of_text() {
                    self.fail(&error);
                    return;
                }
                let reason = if self.calls > 0 {
                    "tool_calls"
                } else {
                    finish_reason(&reason)
                };
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
            Some(Err(error)) => self.fail(&error),
            None => self.fail(&ApiError::EngineStopped),
        }
    }

    /// Streams newly final text: as content, or through the tool-call parser.
    fn text(&mut self, text: String) -> Result<(), ApiError> {
        match &mut self.tools {
            None => {
                if !text.is_empty() || !self.held_logprobs.is_empty() {
                    let event = self.content_chunk(text);
                    self.pending.push_back(event);
                }
                Ok(())
            }
            Some(ToolStream::Generic { text: all, .. }) => {
                all.push_str(&text);
                Ok(())
            }
            Some(ToolStream::Hermes { parser, .. }) => {
                let pieces = parser.push(&text);
                pieces.into_iter().try_for_each(|p| self.piece(p))
            }
        }
    }

    /// Streams what a tool-call reply still holds at its end.
    fn end_of_text(&mut self) -> Result<(), ApiError> {
        match &mut self.tools {
            None => Ok(()),
            Some(ToolStream::Hermes { parser, .. }) => match parser.finish() {
                Some(piece) => self.piece(piece),
                None => Ok(()),
            },
            Some(ToolStream::Generic { plan, text }) => {
                let reply = plan.parse(text, &self.running.id)?;
                if let Some(content) = reply.content {
                    let event = self.content_chunk(content);
                    self.pending.push_back(event);
                }
                for call in reply.calls {
                    self.call_chunk(call);
                }
                Ok(())
            }
        }
    }

    fn piece(&mut self, piece: Piece) -> Result<(), ApiError> {
        let Some(ToolStream::Hermes { plan, .. }) = &self.tools else {
            return Ok(());
        };
        match piece {
            // Text between or after calls is only whitespace by the grammar; the
            // non-streamed response trims it too.
            Piece::Text(text) if self.calls > 0 && text.trim().is_empty() => Ok(()),
            Piece::Text(text) => {
                let event = self.content_chunk(text);
                self.pending.push_back(event);
                Ok(())
            }
            Piece::Call(body) => {
                let call = plan.hermes_call(&body, &self.running.id, self.calls)?;
                self.call_chunk(call);
                Ok(())
            }
            Piece::Unclosed(rest) => Err(ApiError::MalformedToolCall(format!(
                "<tool_call> without </tool_call>: {rest:?}"
            ))),
        }
    }

    fn call_chunk(&mut self, call: ToolCallOut) {
        let delta = Delta {
            role: None,
            content: None,
            tool_calls: Some(vec![ToolCallDelta {
                index: self.calls,
                call,
            }]),
        };
        self.calls += 1;
        let event = self.chat_chunk(delta, None);
        self.pending.push_back(event);
    }

    fn fail(&mut self, error: &ApiError) {
        self.pending.push_back(error_event(error));
        self.end();
    }

    fn end(&mut self) {
        self.pending.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }

    fn content_chunk(&mut self, text: String) -> Event {
        match self.kind {
            StreamKind::Completion { .. } => self.completion_chunk(text, None),
            StreamKind::Chat { .. } => self.chat_chunk(
                Delta {
                    role: None,
                    content: Some(text),
                    tool_calls: None,
                },
                None,
            ),
        }
    }

    /// The held log-probabilities, taken (`None` when the request did not ask for them).
    fn take_logprobs(&mut self) -> Option<Vec<TokenLogprob>> {
        self.logprobs
            .then(|| std::mem::take(&mut self.held_logprobs))
    }

    fn completion_chunk(&mut self, text: String, finish_reason: Option<&'static str>) -> Event {
        let logprobs = self.take_logprobs().map(|lps| {
            CompletionLogprobs::new(self.running.serving.engine(), &lps, &mut self.text_offset)
        });
        json_event(&Completion {
            id: self.running.id.clone(),
            object: "text_completion",
            created: self.running.created,
            model: self.running.model.clone(),
            choices: vec![CompletionChoice {
                text,
                index: 0,
                logprobs,
                finish_reason,
            }],
            usage: None,
        })
    }

    fn chat_chunk(&mut self, delta: Delta, finish_reason: Option<&'static str>) -> Event {
        let logprobs = self
            .take_logprobs()
            .map(|lps| ChatLogprobs::new(self.running.serving.engine(), &lps));
        json_event(&ChatChunk {
            id: self.running.id.clone(),
            object: "chat.completion.chunk",
            created: self.running.created,
            model: self.running.model.clone(),
            choices: vec![ChatChunkChoice {
                index: 0,
                delta,
                logprobs,
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

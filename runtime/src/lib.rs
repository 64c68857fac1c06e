//! The agentc runtime: the LLM engine's CPU path (GGUF weights, a batched llama forward pass
//! over a paged KV cache, sampling, the serving engine with continuous batching and prefix
//! sharing, and its OpenAI-compatible HTTP server) the executors of
//! the other ops (sentence embeddings, vector indexes, tools) and the workflow runtime that
//! runs compiled plans.

pub mod constraint;
pub mod embed;
pub mod engine;
pub mod error;
pub mod index;
pub mod kv;
pub mod model;
pub mod ops;
pub mod plan;
pub mod profile;
pub mod quant;
pub mod sampling;
pub mod server;
pub mod serving;
pub mod text_stream;
pub mod tools;
pub mod value;
pub mod weights;
pub mod workflow;

pub use agentc_model::{ChatMessage, bundled};
pub use embed::EmbeddingModel;
pub use engine::{
    DEFAULT_THREADS, Engine, EngineOptions, FinishReason, GenerateRequest, Generation, Prompt,
    Timings, TokenEvent,
};
pub use error::{Error, Result};
pub use index::{Hit, Index, IndexSpec, Metric, Passage};
pub use ops::MatmulBackend;
pub use plan::Program;
pub use sampling::{SamplingParams, TokenLogprob};
pub use server::{AppState, model_id_from_path, router};
pub use serving::{
    Sequence, SequenceEvent, ServingConfig, ServingEngine, ServingStats, SubmitError,
    SubmitOptions, Usage,
};
pub use tools::{ToolCall, ToolRouter, ToolRunner, ToolSpec};
pub use value::{Doc, Value};
pub use workflow::{LlmNodeStats, NodeError, RunEvent, RunOutcome, RunStats, WorkflowRunner};

//! The agentc runtime: the workflow executor that runs compiled plans, the executors of the
//! non-LLM ops (sentence embeddings, vector indexes, tools), engine profiling, and the
//! OpenAI-compatible HTTP server. LLM calls go to the serving engine of `agentc-engine`, whose
//! modules are re-exported here under their own names.

pub mod embed;
pub mod error;
pub mod index;
pub mod plan;
pub mod profile;
pub mod server;
pub mod tools;
pub mod value;
pub mod workflow;

pub use agentc_engine::Error as EngineError;
pub use agentc_engine::{
    constraint, engine, kv, model, ops, sampling, serving, text_stream, weights,
};

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

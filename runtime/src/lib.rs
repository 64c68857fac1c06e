//! The agentc runtime: the LLM engine's CPU path (GGUF weights, a llama forward pass with a
//! per-sequence KV cache, sampling, a single-sequence generation API) and the executors of the
//! other ops: sentence embeddings (`embed`), vector indexes (`knn`) and tools (`tool`).

pub mod embed;
pub mod engine;
pub mod error;
pub mod index;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod profile;
pub mod quant;
pub mod sampling;
pub mod text_stream;
pub mod tools;
pub mod weights;

pub use agentc_model::ChatMessage;
pub use embed::EmbeddingModel;
pub use engine::{
    DEFAULT_THREADS, Engine, EngineOptions, FinishReason, GenerateRequest, Generation, Prompt,
    Timings, TokenEvent,
};
pub use error::{Error, Result};
pub use index::{Hit, Index, IndexSpec, Metric, Passage};
pub use ops::MatmulBackend;
pub use sampling::SamplingParams;
pub use tools::{ToolCall, ToolRouter, ToolRunner, ToolSpec};

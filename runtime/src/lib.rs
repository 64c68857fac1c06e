//! The agentc runtime. This first part is the LLM engine's CPU path: GGUF weights, a llama
//! forward pass with a per-sequence KV cache, sampling, a single-sequence generation API, the
//! serving engine and its OpenAI-compatible HTTP server.

pub mod engine;
pub mod error;
pub mod kv_cache;
pub mod model;
pub mod ops;
pub mod profile;
pub mod quant;
pub mod sampling;
pub mod server;
pub mod serving;
pub mod text_stream;
pub mod weights;

pub use agentc_model::ChatMessage;
pub use engine::{
    DEFAULT_THREADS, Engine, EngineOptions, FinishReason, GenerateRequest, Generation, Prompt,
    Timings, TokenEvent,
};
pub use error::{Error, Result};
pub use ops::MatmulBackend;
pub use sampling::SamplingParams;
pub use server::{AppState, model_id_from_path, router};
pub use serving::{
    Sequence, SequenceEvent, ServingConfig, ServingEngine, ServingStats, SubmitError,
    SubmitOptions, Usage,
};

//! agentc's LLM engine, on its own so that it builds without MLIR and so that the runtime, a
//! cluster worker and the benchmarks share one engine: GGUF weights, a batched llama forward
//! pass over a paged KV cache, sampling, structured-output constraints, and the serving engine
//! with continuous batching and prefix sharing. The maths it calls lives in `agentc-kernels`.

pub mod constraint;
pub mod engine;
pub mod error;
pub mod kv;
pub mod model;
pub mod ops;
pub mod sampling;
pub mod serving;
pub mod text_stream;
pub mod weights;

pub use engine::{
    DEFAULT_THREADS, Engine, EngineOptions, FinishReason, GenerateRequest, Generation, Perplexity,
    Prompt, Timings, TokenEvent,
};
pub use error::{Error, Result};
pub use ops::MatmulBackend;
pub use sampling::{SamplingParams, TokenLogprob};
pub use serving::{
    Sequence, SequenceEvent, ServingConfig, ServingEngine, ServingStats, SubmitError,
    SubmitOptions, Usage,
};

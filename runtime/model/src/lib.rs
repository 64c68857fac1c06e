//! Model facts read from files: the GGUF container, llama-family hyper-parameters, the tokenizer
//! and the chat template. The compiler uses this crate to count tokens and size KV caches; the
//! runtime uses it to load weights.

pub mod config;
pub mod error;
pub mod gguf;

pub use config::{LlamaConfig, RopeStyle};
pub use error::{Error, Result};
pub use gguf::{GgmlType, GgufFile, MetadataLookup, MetadataValue, TensorInfo};
pub mod bundled;
pub mod chat_template;
pub mod tokenizer;

pub use chat_template::{ChatMessage, ChatTemplate, ToolSupport};
pub use tokenizer::Tokenizer;

//! The one error type of `agentc-model`.

use std::path::PathBuf;

/// Everything that can go wrong while reading model facts from a file.
///
/// Variants that come from a file carry its path, so a message alone tells a user which file is
/// bad and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path} is not a GGUF file: it starts with {found:02x?}, expected the magic bytes \"GGUF\""
    )]
    BadMagic { path: PathBuf, found: Vec<u8> },

    #[error(
        "{path} is GGUF version {version}; agentc reads versions 2 and 3 (re-convert the model with a current llama.cpp)"
    )]
    UnsupportedVersion { path: PathBuf, version: u32 },

    #[error(
        "{path} is truncated or corrupt: {what} needs bytes {start}..{end}, file has {file_len}"
    )]
    Truncated {
        path: PathBuf,
        what: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("{path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },

    #[error("{path}: metadata key {key:?} has unknown value type id {type_id}")]
    UnknownValueType {
        path: PathBuf,
        key: String,
        type_id: u32,
    },

    #[error("{path}: tensor {tensor} has unknown ggml type id {type_id}")]
    UnknownTensorType {
        path: PathBuf,
        tensor: String,
        type_id: u32,
    },

    #[error(
        "tensor {tensor} has type {type_name}, which agentc does not support yet (supported: {})",
        crate::GgmlType::supported_names()
    )]
    UnsupportedTensorType {
        tensor: String,
        type_name: &'static str,
    },

    #[error(
        "{path}: tensor {tensor} extends past end of file: needs bytes {start}..{end}, file has {file_len}"
    )]
    TensorOutOfBounds {
        path: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("model has no tensor named {0}")]
    MissingTensor(String),

    #[error("model metadata has no key {0:?}")]
    MissingKey(String),

    #[error("model metadata key {key:?} is {found}, expected {expected}")]
    WrongValueType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    #[error("model metadata key {key:?} has an invalid value: {why}")]
    InvalidValue { key: String, why: String },

    #[error("architecture {0:?} is not supported (supported: llama, qwen2)")]
    UnsupportedArchitecture(String),

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("chat template: {0}")]
    ChatTemplate(#[from] minijinja::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

//! What the cost model needs to know about a workflow's models and indexes, read from the model
//! files themselves: sizes, parameters, KV bytes per token. Missing files fall back to stated
//! defaults (each listed in `notes`), so a plan can be priced before the models are installed.

use std::collections::HashMap;
use std::path::Path;

use agentc_model::{GgmlType, GgufFile, LlamaConfig};
use agentc_placement::{Dtype, ModelShape};

use crate::frontend::ast::ModelKind;
use crate::graph::WorkflowGraph;

/// Bytes per KV element in the engine's cache (f16).
const KV_ELEMENT_BYTES: f64 = 2.0;
/// Assumed when an LLM file cannot be read: SmolLM2-135M's figures.
const DEFAULT_LLM: (f64, f64, f64) = (134.5e6, 98.4e6, 30.0 * 3.0 * 64.0 * 2.0 * KV_ELEMENT_BYTES);
/// Assumed when an embedding model cannot be read: all-MiniLM-L6-v2's figures.
const DEFAULT_EMBED: (f64, f64, u64) = (22.7e6, 90.9e6, 384);
/// Vectors assumed in an index that has not been built yet.
pub const DEFAULT_INDEX_VECTORS: u64 = 10_000;

pub struct ModelFacts {
    pub llms: HashMap<String, ModelShape>,
    /// Embedding models with their output dimension.
    pub embedders: HashMap<String, (ModelShape, u64)>,
    /// Index name -> (vectors, dim).
    pub indexes: HashMap<String, (u64, u64)>,
    /// What was assumed rather than read, one sentence each.
    pub notes: Vec<String>,
}

pub fn model_facts(graph: &WorkflowGraph, workflow_dir: &Path) -> ModelFacts {
    let mut facts = ModelFacts {
        llms: HashMap::new(),
        embedders: HashMap::new(),
        indexes: HashMap::new(),
        notes: Vec::new(),
    };
    for m in &graph.models {
        let path = workflow_dir.join(&m.path);
        match m.kind {
            ModelKind::Llm => {
                let shape = llm_shape(&m.name, &path).unwrap_or_else(|why| {
                    facts.notes.push(format!(
                        "model `{}`: {why}; assumed a 135M-parameter model",
                        m.name
                    ));
                    let (params, weight_bytes, kv_bytes_per_token) = DEFAULT_LLM;
                    ModelShape {
                        name: m.name.clone(),
                        params,
                        weight_bytes,
                        kv_bytes_per_token,
                        dtype: Dtype::Int8,
                    }
                });
                facts.llms.insert(m.name.clone(), shape);
            }
            ModelKind::Embedding => {
                let entry = embed_shape(&m.name, &path).unwrap_or_else(|why| {
                    facts.notes.push(format!(
                        "model `{}`: {why}; assumed a MiniLM-sized encoder",
                        m.name
                    ));
                    let (params, weight_bytes, dim) = DEFAULT_EMBED;
                    let shape = ModelShape {
                        name: m.name.clone(),
                        params,
                        weight_bytes,
                        kv_bytes_per_token: 0.0,
                        dtype: Dtype::Fp32,
                    };
                    (shape, dim)
                });
                facts.embedders.insert(m.name.clone(), entry);
            }
        }
    }
    for index in &graph.indexes {
        let dim = facts
            .embedders
            .get(&index.model)
            .map_or(DEFAULT_EMBED.2, |(_, d)| *d);
        facts.notes.push(format!(
            "index `{}`: size not known at compile time; assumed {DEFAULT_INDEX_VECTORS} vectors",
            index.name
        ));
        facts
            .indexes
            .insert(index.name.clone(), (DEFAULT_INDEX_VECTORS, dim));
    }
    facts
}

/// A model's identity for the cost model: its file name without extension, so two workflow names
/// for one file share resident weights, and `agentc profile` timings (named the same) apply.
fn identity(path: &Path, fallback: &str) -> String {
    path.file_stem().map_or_else(
        || fallback.to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

fn llm_shape(name: &str, path: &Path) -> Result<ModelShape, String> {
    let file = GgufFile::open(path).map_err(|e| e.to_string())?;
    let config = LlamaConfig::from_metadata(&file).map_err(|e| e.to_string())?;
    let params: u64 = file.tensors().iter().map(|t| t.element_count()).sum();
    let weight_bytes: u64 = file.tensors().iter().map(|t| t.data_len).sum();
    let quantized = file.tensors().iter().any(|t| {
        matches!(
            t.ggml_type,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0
        )
    });
    let head_dim = config.n_embd / config.n_head.max(1);
    Ok(ModelShape {
        name: identity(path, name),
        params: params as f64,
        weight_bytes: weight_bytes as f64,
        kv_bytes_per_token: 2.0
            * (config.n_layer * config.n_head_kv * head_dim) as f64
            * KV_ELEMENT_BYTES,
        // Quantized weights run as int8 dot products against quantized activations.
        dtype: if quantized { Dtype::Int8 } else { Dtype::Fp32 },
    })
}

fn embed_shape(name: &str, dir: &Path) -> Result<(ModelShape, u64), String> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let get = |k: &str| {
        config[k]
            .as_u64()
            .ok_or_else(|| format!("{}: no `{k}`", config_path.display()))
    };
    let (h, layers, ff, vocab) = (
        get("hidden_size")?,
        get("num_hidden_layers")?,
        get("intermediate_size")?,
        get("vocab_size")?,
    );
    let params = vocab * h + layers * (4 * h * h + 2 * h * ff);
    let weights = dir.join("model.safetensors");
    let weight_bytes = std::fs::metadata(&weights)
        .map_err(|e| format!("{}: {e}", weights.display()))?
        .len();
    let shape = ModelShape {
        name: identity(dir, name),
        params: params as f64,
        weight_bytes: weight_bytes as f64,
        kv_bytes_per_token: 0.0,
        dtype: Dtype::Fp32,
    };
    Ok((shape, h))
}

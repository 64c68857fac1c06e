//! Transformer hyper-parameters of llama-family models, read from GGUF metadata.

use crate::error::{Error, Result};
use crate::gguf::MetadataLookup;

/// Architectures whose GGUF keys and tensor layout follow llama's (`{arch}.block_count`, ...).
const SUPPORTED_ARCHITECTURES: [&str; 2] = ["llama", "qwen2"];
/// llama.cpp's default when a file has no `{arch}.rope.freq_base`.
const DEFAULT_ROPE_FREQ_BASE: f64 = 10_000.0;
/// llama.cpp's default when a file has no `{arch}.attention.layer_norm_rms_epsilon`.
const DEFAULT_RMS_EPS: f64 = 1e-5;

/// Which dimensions RoPE rotates together (llama.cpp's rope types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(x[2i], x[2i+1])` (LLAMA_ROPE_TYPE_NORM: llama, whose Q/K weights the GGUF
    /// converter permutes to suit it).
    AdjacentPairs,
    /// Pairs `(x[i], x[i + d/2])` (LLAMA_ROPE_TYPE_NEOX: qwen2 and Hugging Face's layout).
    Halves,
}

/// The sizes and constants that define a llama-style decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// `general.architecture`, e.g. "llama" or "qwen2".
    pub architecture: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Hidden size of the feed-forward block.
    pub n_ff: usize,
    pub rope_freq_base: f32,
    pub rope_style: RopeStyle,
    /// Number of leading dimensions of each head that RoPE rotates (the whole head by default).
    pub rope_dim: usize,
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub context_length: usize,
    pub vocab_size: usize,
}

impl LlamaConfig {
    /// Reads the configuration of a llama or qwen2 model from its metadata.
    pub fn from_metadata(metadata: &impl MetadataLookup) -> Result<Self> {
        let architecture = metadata.require_str("general.architecture")?.to_owned();
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(Error::UnsupportedArchitecture(architecture));
        }
        let key = |name: &str| format!("{architecture}.{name}");
        let size = |name: &str| -> Result<usize> {
            let k = key(name);
            let value = metadata.require_u64(&k)?;
            usize::try_from(value)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| Error::InvalidValue {
                    key: k,
                    why: format!("{value} is not a usable size"),
                })
        };
        let n_embd = size("embedding_length")?;
        let n_head = size("attention.head_count")?;
        let n_head_kv = match metadata.get_u64(&key("attention.head_count_kv"))? {
            Some(_) => size("attention.head_count_kv")?,
            None => n_head,
        };
        if n_embd % n_head != 0 || n_head % n_head_kv != 0 {
            return Err(Error::InvalidValue {
                key: key("attention.head_count"),
                why: format!(
                    "embedding length {n_embd}, {n_head} heads and {n_head_kv} KV heads do not divide evenly"
                ),
            });
        }
        let head_dim = n_embd / n_head;
        let rope_dim = match metadata.get_u64(&key("rope.dimension_count"))? {
            Some(d) if d as usize <= head_dim && d % 2 == 0 && d > 0 => d as usize,
            Some(d) => {
                return Err(Error::InvalidValue {
                    key: key("rope.dimension_count"),
                    why: format!("{d} must be even and at most the head size {head_dim}"),
                });
            }
            None => head_dim,
        };
        let vocab_size = match metadata.get_u64(&key("vocab_size"))? {
            Some(v) => v as usize,
            None => metadata.require_array("tokenizer.ggml.tokens")?.len(),
        };
        Ok(Self {
            n_layer: size("block_count")?,
            n_embd,
            n_head,
            n_head_kv,
            n_ff: size("feed_forward_length")?,
            rope_freq_base: metadata
                .get_f64(&key("rope.freq_base"))?
                .unwrap_or(DEFAULT_ROPE_FREQ_BASE) as f32,
            rope_dim,
            rope_style: if architecture == "qwen2" {
                RopeStyle::Halves
            } else {
                RopeStyle::AdjacentPairs
            },
            rms_eps: metadata
                .get_f64(&key("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(DEFAULT_RMS_EPS) as f32,
            context_length: size("context_length")?,
            vocab_size,
            architecture,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the K and V projections (all KV heads together).
    pub fn kv_dim(&self) -> usize {
        self.head_dim() * self.n_head_kv
    }

    /// Bytes of f16 KV cache one token occupies across all layers.
    pub fn kv_bytes_per_token(&self) -> usize {
        const F16_BYTES: usize = 2;
        2 * self.n_layer * self.kv_dim() * F16_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::MetadataValue;
    use std::collections::BTreeMap;

    fn smollm_like() -> BTreeMap<String, MetadataValue> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: MetadataValue| m.insert(k.to_owned(), v);
        put(
            "general.architecture",
            MetadataValue::String("llama".into()),
        );
        put("llama.block_count", MetadataValue::U32(30));
        put("llama.embedding_length", MetadataValue::U32(576));
        put("llama.attention.head_count", MetadataValue::U32(9));
        put("llama.attention.head_count_kv", MetadataValue::U32(3));
        put("llama.feed_forward_length", MetadataValue::U32(1536));
        put("llama.rope.freq_base", MetadataValue::F32(100000.0));
        put(
            "llama.attention.layer_norm_rms_epsilon",
            MetadataValue::F32(1e-5),
        );
        put("llama.context_length", MetadataValue::U32(8192));
        put("llama.vocab_size", MetadataValue::U32(49152));
        m
    }

    #[test]
    fn reads_a_llama_config() {
        let config = LlamaConfig::from_metadata(&smollm_like()).unwrap();
        assert_eq!(config.n_layer, 30);
        assert_eq!(config.head_dim(), 64);
        assert_eq!(config.kv_dim(), 192);
        assert_eq!(config.rope_dim, 64);
        assert_eq!(config.rope_freq_base, 100000.0);
        assert_eq!(config.vocab_size, 49152);
    }

    #[test]
    fn qwen2_uses_its_own_prefix() {
        let mut m = BTreeMap::new();
        for (k, v) in smollm_like() {
            m.insert(k.replacen("llama.", "qwen2.", 1), v);
        }
        m.insert(
            "general.architecture".into(),
            MetadataValue::String("qwen2".into()),
        );
        assert_eq!(
            LlamaConfig::from_metadata(&m).unwrap().architecture,
            "qwen2"
        );
    }

    #[test]
    fn bad_configs_are_rejected_with_the_key() {
        let mut m = smollm_like();
        m.insert(
            "general.architecture".into(),
            MetadataValue::String("mamba".into()),
        );
        assert!(matches!(
            LlamaConfig::from_metadata(&m),
            Err(Error::UnsupportedArchitecture(_))
        ));

        let mut m = smollm_like();
        m.remove("llama.block_count");
        assert_eq!(
            LlamaConfig::from_metadata(&m).unwrap_err().to_string(),
            "model metadata has no key \"llama.block_count\""
        );

        let mut m = smollm_like();
        m.insert(
            "llama.attention.head_count_kv".into(),
            MetadataValue::U32(4),
        );
        assert!(matches!(
            LlamaConfig::from_metadata(&m),
            Err(Error::InvalidValue { .. })
        ));
    }
}

//! BERT-style sentence embeddings (the `embed` op): a safetensors BERT encoder with a WordPiece
//! `tokenizer.json`, mean pooling over the attention mask and L2 normalisation, the recipe of
//! sentence-transformers' all-MiniLM-L6-v2.
//!
//! Inputs longer than the model's maximum sequence length are truncated: only the first
//! `max_tokens` tokens (including `[CLS]` and `[SEP]`) are embedded. The limit comes from the
//! `truncation.max_length` of `tokenizer.json` when it sets one (128 for all-MiniLM-L6-v2, the
//! length the model was trained at), otherwise from `max_position_embeddings` of `config.json`.

mod bert;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::error::{Error, Result};
use bert::{BertConfig, BertEncoder};

/// Weights file of an embedding model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Tokenizer file of an embedding model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Architecture file of an embedding model directory.
pub const CONFIG_FILE: &str = "config.json";

/// Texts embedded in one forward pass; larger inputs are split. Texts are sorted by length first
/// so that a batch pads to a similar length.
pub const EMBED_BATCH: usize = 32;

/// A loaded sentence-embedding model. Cheap to share behind an `Arc`: `embed` takes `&self`.
pub struct EmbeddingModel {
    name: String,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation or padding.
    splitter: Tokenizer,
    encoder: BertEncoder,
    max_tokens: usize,
}

#[derive(Deserialize)]
struct TokenizerTruncation {
    truncation: Option<TruncationLength>,
}

#[derive(Deserialize)]
struct TruncationLength {
    max_length: usize,
}

impl EmbeddingModel {
    /// Loads `dir/config.json`, `dir/tokenizer.json` and `dir/model.safetensors`. A missing or
    /// damaged file is an error naming it.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config_text = read_text(&config_path)?;
        let config: BertConfig =
            serde_json::from_str(&config_text).map_err(|e| model_file(&config_path, e))?;
        config.validate().map_err(|e| model_file(&config_path, e))?;

        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer_text = read_text(&tokenizer_path)?;
        let declared: TokenizerTruncation =
            serde_json::from_str(&tokenizer_text).map_err(|e| model_file(&tokenizer_path, e))?;
        let max_tokens = declared
            .truncation
            .map(|t| t.max_length)
            .unwrap_or(config.max_position_embeddings)
            .min(config.max_position_embeddings);
        let mut tokenizer = Tokenizer::from_bytes(tokenizer_text.as_bytes())
            .map_err(|e| model_file(&tokenizer_path, e))?;
        let mut splitter = tokenizer.clone();
        splitter
            .with_truncation(None)
            .map_err(|e| model_file(&tokenizer_path, e))?;
        splitter.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| model_file(&tokenizer_path, e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..PaddingParams::default()
        }));

        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            return Err(model_file(&weights_path, "no such file"));
        }
        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| model_file(&weights_path, e))?;
        let encoder =
            BertEncoder::new(tensors, &config).map_err(|e| model_file(&weights_path, e))?;

        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            name,
            tokenizer,
            splitter,
            encoder,
            max_tokens,
        })
    }

    /// The model's name: its directory's name (for example `all-MiniLM-L6-v2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Length of the vectors `embed` returns.
    pub fn dim(&self) -> usize {
        self.encoder.hidden_size()
    }

    /// Tokens embedded per text; longer texts are truncated to this many.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Byte ranges of the word-piece tokens of `text`, without `[CLS]`/`[SEP]` and without
    /// truncation: the index builder cuts passages at token boundaries with them.
    pub fn token_offsets(&self, text: &str) -> Result<Vec<(usize, usize)>> {
        let encoding = self
            .splitter
            // `encode_fast` does not track offsets.
            .encode(text, false)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        Ok(encoding.get_offsets().to_vec())
    }

    /// One L2-normalised vector of `dim()` floats per text, in the order of `texts`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(EMBED_BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, v) in chunk.iter().zip(self.embed_batch(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| Error::Tokenize(e.to_string()))?;
        let batch = encodings.len();
        let seq = encodings.first().map(|e| e.len()).unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut types = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for e in &encodings {
            ids.extend(e.get_ids().iter().copied());
            types.extend(e.get_type_ids().iter().copied());
            mask.extend(e.get_attention_mask().iter().map(|&m| m as f32));
        }
        let ids = Tensor::from_vec(ids, (batch, seq), &Device::Cpu)?;
        let types = Tensor::from_vec(types, (batch, seq), &Device::Cpu)?;
        let mask = Tensor::from_vec(mask, (batch, seq), &Device::Cpu)?;

        let hidden = self.encoder.forward(&ids, &types, &mask)?;
        // Mean over the real tokens only: padded positions are zeroed by the mask.
        let mask3 = mask.unsqueeze(2)?.to_dtype(DType::F32)?;
        let summed = hidden.broadcast_mul(&mask3)?.sum(1)?;
        let counts = mask3.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        let unit = mean.broadcast_div(&norms)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel")
            .field("name", &self.name)
            .field("dim", &self.dim())
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| model_file(path, e))
}

fn model_file(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::ModelFile {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    }
}

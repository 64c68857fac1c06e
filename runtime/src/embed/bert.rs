//! The BERT encoder forward pass (post-layer-norm, absolute positions, exact-erf GELU), on
//! candle tensors. Tensor names are those of Hugging Face `BertModel` checkpoints.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// Added to attention scores of padded keys so that softmax gives them no weight.
const MASKED_SCORE: f32 = -1.0e9;

/// The fields of a BERT `config.json` the forward pass needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_hidden_act() -> String {
    "gelu".to_string()
}

fn default_position_embedding_type() -> String {
    "absolute".to_string()
}

impl BertConfig {
    /// The variants this encoder implements; anything else is refused instead of computed wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub struct BertEncoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    heads: usize,
    hidden: usize,
}

impl BertEncoder {
    pub fn new(tensors: HashMap<String, Tensor>, c: &BertConfig) -> candle_core::Result<Self> {
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        // Some checkpoints prefix every name with `bert.`.
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let h = c.hidden_size;
        let emb = vb.pp("embeddings");
        let layer_norm = |vb: VarBuilder| candle_nn::layer_norm(h, c.layer_norm_eps, vb);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let attn = l.pp("attention");
            layers.push(EncoderLayer {
                query: candle_nn::linear(h, h, attn.pp("self.query"))?,
                key: candle_nn::linear(h, h, attn.pp("self.key"))?,
                value: candle_nn::linear(h, h, attn.pp("self.value"))?,
                attention_out: candle_nn::linear(h, h, attn.pp("output.dense"))?,
                attention_norm: layer_norm(attn.pp("output.LayerNorm"))?,
                intermediate: candle_nn::linear(
                    h,
                    c.intermediate_size,
                    l.pp("intermediate.dense"),
                )?,
                output: candle_nn::linear(c.intermediate_size, h, l.pp("output.dense"))?,
                output_norm: layer_norm(l.pp("output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word: candle_nn::embedding(c.vocab_size, h, emb.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                c.max_position_embeddings,
                h,
                emb.pp("position_embeddings"),
            )?,
            token_type: candle_nn::embedding(
                c.type_vocab_size,
                h,
                emb.pp("token_type_embeddings"),
            )?,
            embedding_norm: layer_norm(emb.pp("LayerNorm"))?,
            layers,
            heads: c.num_attention_heads,
            hidden: h,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// `ids`, `types`: `[batch, seq]` u32; `mask`: `[batch, seq]` f32 (1 real, 0 padding).
    /// Returns the last hidden states, `[batch, seq, hidden]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        types: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let x = self
            .word
            .forward(ids)?
            .add(&self.token_type.forward(types)?)?
            .broadcast_add(&self.position.forward(&positions)?)?;
        let mut x = self.embedding_norm.forward(&x)?;
        // [batch, 1, 1, seq]: 0 for real keys, MASKED_SCORE for padding.
        let bias = ((1.0 - mask)? * f64::from(-MASKED_SCORE))?
            .neg()?
            .reshape((batch, 1, 1, seq))?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &bias)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        l: &EncoderLayer,
        x: &Tensor,
        bias: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let head_dim = hidden / self.heads;
        let split = |t: Tensor| {
            t.reshape((batch, seq, self.heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        let scale = 1.0 / (head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))?;
        let attended = l
            .attention_norm
            .forward(&(l.attention_out.forward(&context)? + x)?)?;
        let inner = l.intermediate.forward(&attended)?.gelu_erf()?;
        l.output_norm
            .forward(&(l.output.forward(&inner)? + attended)?)
    }
}

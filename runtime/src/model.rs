//! The llama forward pass (also qwen2, which adds Q/K/V biases): RMSNorm, RoPE, grouped-query
//! attention over the KV cache, SwiGLU feed-forward, tied or separate output projection.

use agentc_model::{GgufFile, LlamaConfig};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kv_cache::KvCache;
use crate::ops::{self, Matmul, MatmulBackend};
use crate::weights::{LayerWeights, LlamaWeights};

#[derive(Debug)]
pub struct LlamaModel {
    config: LlamaConfig,
    weights: LlamaWeights,
    matmul: Matmul,
}

impl LlamaModel {
    /// Loads the weights; `matmul` decides whether they are also packed for the kernels.
    pub fn load(gguf: &GgufFile, matmul: Matmul) -> Result<Self> {
        let config = LlamaConfig::from_metadata(gguf)?;
        let mut weights = LlamaWeights::load(gguf, &config)?;
        if matmul.backend() == MatmulBackend::Kernels {
            weights.pack_for_kernels()?;
        }
        Ok(Self {
            config,
            weights,
            matmul,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// A cache sized for this model holding at most `capacity` positions.
    pub fn new_cache(&self, capacity: usize) -> KvCache {
        KvCache::new(self.config.n_layer, self.config.kv_dim(), capacity)
    }

    /// Runs `tokens` (at positions `cache.len()..`) through the model, appends their keys and
    /// values to `cache`, and returns the logits of the last token. Call it on a rayon pool.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let c = &self.config;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::InvalidRequest("no tokens to process".to_owned()));
        }
        cache.reserve(n)?;
        let mut x = vec![0.0f32; n * c.n_embd];
        for (&token, row) in tokens.iter().zip(x.chunks_exact_mut(c.n_embd)) {
            if token as usize >= c.vocab_size {
                return Err(Error::TokenOutOfRange {
                    id: token,
                    vocab_size: c.vocab_size,
                });
            }
            self.weights
                .token_embedding
                .dequantize_row(token as usize, row);
        }
        for (index, layer) in self.weights.layers.iter().enumerate() {
            self.attention_block(index, layer, &mut x, cache)?;
            self.feed_forward_block(layer, &mut x)?;
        }
        cache.advance(n);

        let mut last = x[(n - 1) * c.n_embd..].to_vec();
        ops::rms_norm(&mut last, &self.weights.output_norm, c.rms_eps);
        let output = self.weights.output_projection();
        let mut logits = vec![0.0f32; output.rows];
        self.matmul.run(output, &last, 1, &mut logits)?;
        Ok(logits)
    }

    fn attention_block(
        &self,
        index: usize,
        layer: &LayerWeights,
        x: &mut [f32],
        cache: &mut KvCache,
    ) -> Result<()> {
        let c = &self.config;
        let n = x.len() / c.n_embd;
        let (head_dim, kv_dim) = (c.head_dim(), c.kv_dim());
        let start = cache.len();

        let mut h = x.to_vec();
        ops::rms_norm(&mut h, &layer.attn_norm, c.rms_eps);
        let mut q = vec![0.0f32; n * c.n_embd];
        let mut k = vec![0.0f32; n * kv_dim];
        let mut v = vec![0.0f32; n * kv_dim];
        self.matmul.run(&layer.wq, &h, n, &mut q)?;
        self.matmul.run(&layer.wk, &h, n, &mut k)?;
        self.matmul.run(&layer.wv, &h, n, &mut v)?;
        add_bias(&mut q, layer.bq.as_deref());
        add_bias(&mut k, layer.bk.as_deref());
        add_bias(&mut v, layer.bv.as_deref());
        let rope = ops::Rope::for_config(c);
        for t in 0..n {
            rope.apply(&mut q[t * c.n_embd..(t + 1) * c.n_embd], start + t);
            rope.apply(&mut k[t * kv_dim..(t + 1) * kv_dim], start + t);
        }
        cache.append(index, &k, &v);

        let (keys, values) = cache.layer(index);
        let group = c.n_head / c.n_head_kv;
        let mut attended = vec![0.0f32; n * c.n_embd];
        attended.par_chunks_mut(head_dim).enumerate().for_each_init(
            ops::AttentionScratch::default,
            |scratch, (i, out)| {
                let (t, head) = (i / c.n_head, i % c.n_head);
                let kv_offset = (head / group) * head_dim;
                let query =
                    &q[t * c.n_embd + head * head_dim..t * c.n_embd + (head + 1) * head_dim];
                let visible = start + t + 1;
                let kv = ops::KvHead {
                    keys: &keys[kv_offset..],
                    values: &values[kv_offset..],
                    positions: visible,
                    stride: kv_dim,
                };
                ops::attend(query, kv, out, scratch);
            },
        );
        let mut projected = vec![0.0f32; n * c.n_embd];
        self.matmul.run(&layer.wo, &attended, n, &mut projected)?;
        for (xv, p) in x.iter_mut().zip(&projected) {
            *xv += p;
        }
        Ok(())
    }

    fn feed_forward_block(&self, layer: &LayerWeights, x: &mut [f32]) -> Result<()> {
        let c = &self.config;
        let n = x.len() / c.n_embd;
        let mut h = x.to_vec();
        ops::rms_norm(&mut h, &layer.ffn_norm, c.rms_eps);
        let mut gate = vec![0.0f32; n * c.n_ff];
        let mut up = vec![0.0f32; n * c.n_ff];
        self.matmul.run(&layer.w_gate, &h, n, &mut gate)?;
        self.matmul.run(&layer.w_up, &h, n, &mut up)?;
        ops::swiglu(&mut gate, &up);
        let mut down = vec![0.0f32; n * c.n_embd];
        self.matmul.run(&layer.w_down, &gate, n, &mut down)?;
        for (xv, d) in x.iter_mut().zip(&down) {
            *xv += d;
        }
        Ok(())
    }
}

fn add_bias(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    }
}

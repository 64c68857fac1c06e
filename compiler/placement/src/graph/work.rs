//! What an op costs a device, in machine-independent terms, and helpers that derive it for
//! transformer prefill/decode, embeddings, vector search and host-side ops.

use crate::catalog::Dtype;

/// Bytes per KV-cache element (fp16/bf16 caches).
pub const KV_ELEMENT_BYTES: f64 = 2.0;
/// FLOPs per parameter per token of a dense transformer forward pass (one multiply-add).
const FLOPS_PER_PARAM_TOKEN: f64 = 2.0;
/// Attention FLOPs per cached KV element per query token (QK^T and AV, one multiply-add each).
const ATTENTION_FLOPS_PER_KV_ELEMENT: f64 = 2.0;
/// Scalar operations per input byte for host-side string work (BPE merges, templating, JSON):
/// roughly a hash lookup and a few compares per byte.
pub const HOST_OPS_PER_BYTE: f64 = 200.0;
/// Bytes a vector search hands on: ids and scores of the top hits (a few hundred).
const KNN_RESULT_BYTES: f64 = 4096.0;
/// FLOPs per vector element per query of brute-force inner-product search.
const KNN_FLOPS_PER_ELEMENT: f64 = 2.0;

/// FLOPs (op count for int8) by dtype.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Flops {
    pub fp32: f64,
    pub fp16: f64,
    pub int8: f64,
}

impl Flops {
    /// `count` FLOPs in `dtype`.
    pub fn of(dtype: Dtype, count: f64) -> Self {
        let mut f = Flops::default();
        match dtype {
            Dtype::Fp32 => f.fp32 = count,
            Dtype::Fp16 => f.fp16 = count,
            Dtype::Int8 => f.int8 = count,
        }
        f
    }

    pub fn get(&self, dtype: Dtype) -> f64 {
        match dtype {
            Dtype::Fp32 => self.fp32,
            Dtype::Fp16 => self.fp16,
            Dtype::Int8 => self.int8,
        }
    }

    pub fn total(&self) -> f64 {
        self.fp32 + self.fp16 + self.int8
    }
}

/// Size facts of a transformer, from the GGUF header or config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelShape {
    pub name: String,
    pub params: f64,
    pub weight_bytes: f64,
    /// KV bytes one token adds to the cache (2 x layers x kv_heads x head_dim x element bytes).
    pub kv_bytes_per_token: f64,
    /// Dtype the matmuls run in.
    pub dtype: Dtype,
}

/// Machine-independent work of one op.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Work {
    pub flops: Flops,
    /// Bytes streamed from memory besides the weights (activations, KV reads, index scans).
    pub bytes_read: f64,
    /// Model identity and weight bytes; ops naming the same model share resident weights.
    pub weights: Option<(String, f64)>,
    /// How many times the op streams its weights (decode: once per generated token).
    pub weight_reads: f64,
    /// KV bytes read from the cache (already counted in `bytes_read`; kept for reports).
    pub kv_bytes_read: f64,
    /// KV bytes the op adds to the cache.
    pub kv_bytes_written: f64,
    /// KV bytes the op holds at its peak (its context plus what it adds). Held while the op's
    /// call runs and freed after it, so a device needs the largest of its ops' figures (times
    /// the requests in flight), not their sum; shared prefixes are counted separately.
    pub kv_bytes_held: f64,
    /// Tokens processed or produced.
    pub tokens: u64,
    /// Sequential steps (kernel launches that cannot overlap), each paying the fixed overhead.
    pub steps: u32,
    /// Sequences a batched prefill or decode stands for (a decode advances each by one token
    /// per step); 1 for one call (0, the default, counts as 1).
    pub sequences: u32,
    /// A decode that samples (temperature > 0) instead of taking the most likely token: the
    /// engine's sampler then sorts the vocabulary for every token.
    pub sampled: bool,
    /// Time spent outside any device (a tool's declared latency); adds latency, not busy time.
    pub external_latency_s: f64,
    /// Bytes handed to dependents.
    pub output_bytes: f64,
}

impl Work {
    /// Prefill of `new_tokens` tokens after `cached_tokens` already in the cache: compute-bound
    /// (every token multiplies every weight), weights read once.
    pub fn prefill(model: &ModelShape, new_tokens: u64, cached_tokens: u64) -> Self {
        let n = new_tokens as f64;
        let c = cached_tokens as f64;
        let kv_elements = model.kv_bytes_per_token / KV_ELEMENT_BYTES;
        // Causal attention: token i attends to c + i earlier positions.
        let attended = n * c + n * n / 2.0;
        let flops = FLOPS_PER_PARAM_TOKEN * model.params * n
            + ATTENTION_FLOPS_PER_KV_ELEMENT * kv_elements * attended;
        let kv_read = model.kv_bytes_per_token * c;
        Work {
            flops: Flops::of(model.dtype, flops),
            bytes_read: kv_read,
            weights: Some((model.name.clone(), model.weight_bytes)),
            weight_reads: 1.0,
            kv_bytes_read: kv_read,
            kv_bytes_written: model.kv_bytes_per_token * n,
            kv_bytes_held: model.kv_bytes_per_token * (c + n),
            tokens: new_tokens,
            steps: 1,
            sequences: 1,
            sampled: false,
            external_latency_s: 0.0,
            output_bytes: 0.0,
        }
    }

    /// Batch-1 decode of `new_tokens` tokens after `context_tokens`: bandwidth-bound (each step
    /// streams all weights and the whole KV cache, which grows by one token per step).
    pub fn decode(model: &ModelShape, context_tokens: u64, new_tokens: u64) -> Self {
        let m = new_tokens as f64;
        let c = context_tokens as f64;
        let kv_elements = model.kv_bytes_per_token / KV_ELEMENT_BYTES;
        // Step i reads c + i cached tokens.
        let cached_reads = m * c + m * (m - 1.0).max(0.0) / 2.0;
        let flops = FLOPS_PER_PARAM_TOKEN * model.params * m
            + ATTENTION_FLOPS_PER_KV_ELEMENT * kv_elements * cached_reads;
        let kv_read = model.kv_bytes_per_token * cached_reads;
        Work {
            flops: Flops::of(model.dtype, flops),
            bytes_read: kv_read,
            weights: Some((model.name.clone(), model.weight_bytes)),
            weight_reads: m,
            kv_bytes_read: kv_read,
            kv_bytes_written: model.kv_bytes_per_token * m,
            kv_bytes_held: model.kv_bytes_per_token * (c + m),
            tokens: new_tokens,
            steps: new_tokens.min(u64::from(u32::MAX)) as u32,
            sequences: 1,
            sampled: false,
            external_latency_s: 0.0,
            output_bytes: 0.0,
        }
    }

    /// Encoder forward pass over `tokens` (no KV kept), producing one `dim`-float vector.
    pub fn embed(model: &ModelShape, tokens: u64, dim: u64) -> Self {
        let n = tokens as f64;
        Work {
            flops: Flops::of(model.dtype, FLOPS_PER_PARAM_TOKEN * model.params * n),
            weights: Some((model.name.clone(), model.weight_bytes)),
            weight_reads: 1.0,
            tokens,
            steps: 1,
            output_bytes: dim as f64 * 4.0,
            ..Work::default()
        }
    }

    /// Brute-force search of `queries` vectors against an index of `vectors` x `dim` elements of
    /// `element_bytes` each; the index is resident like weights, under `index_name`.
    pub fn knn(index_name: &str, vectors: u64, dim: u64, element_bytes: f64, queries: u64) -> Self {
        let elements = vectors as f64 * dim as f64;
        let index_bytes = elements * element_bytes;
        let dtype = if element_bytes <= 1.0 {
            Dtype::Int8
        } else if element_bytes <= 2.0 {
            Dtype::Fp16
        } else {
            Dtype::Fp32
        };
        Work {
            flops: Flops::of(dtype, KNN_FLOPS_PER_ELEMENT * elements * queries as f64),
            weights: Some((index_name.to_string(), index_bytes)),
            weight_reads: 1.0,
            steps: 1,
            output_bytes: KNN_RESULT_BYTES,
            ..Work::default()
        }
    }

    /// A tool call whose answer takes `latency_s` outside the cluster and returns `output_bytes`.
    pub fn tool(latency_s: f64, output_bytes: f64) -> Self {
        Work {
            external_latency_s: latency_s,
            steps: 1,
            output_bytes,
            ..Work::default()
        }
    }

    /// Host-side processing of `input_bytes` of text (tokenize, render, JSON).
    pub fn host(input_bytes: f64, output_bytes: f64) -> Self {
        Work {
            flops: Flops::of(Dtype::Fp32, HOST_OPS_PER_BYTE * input_bytes),
            bytes_read: input_bytes,
            steps: 1,
            output_bytes,
            ..Work::default()
        }
    }

    /// Sets the bytes handed to dependents.
    pub fn with_output_bytes(mut self, bytes: f64) -> Self {
        self.output_bytes = bytes;
        self
    }

    /// Peak transient bytes on the op's device besides shared weights and prefixes.
    pub fn transient_bytes(&self) -> f64 {
        self.kv_bytes_held
    }

    /// Total bytes streamed from device memory.
    pub fn bytes_streamed(&self) -> f64 {
        let weights = self.weights.as_ref().map_or(0.0, |(_, b)| *b);
        self.bytes_read + weights * self.weight_reads
    }

    pub(crate) fn check(&self, op: &str) -> std::result::Result<(), String> {
        let numbers = [
            ("flops.fp32", self.flops.fp32),
            ("flops.fp16", self.flops.fp16),
            ("flops.int8", self.flops.int8),
            ("bytes_read", self.bytes_read),
            ("weight_reads", self.weight_reads),
            ("kv_bytes_read", self.kv_bytes_read),
            ("kv_bytes_written", self.kv_bytes_written),
            ("kv_bytes_held", self.kv_bytes_held),
            ("external_latency_s", self.external_latency_s),
            ("output_bytes", self.output_bytes),
            (
                "weight bytes",
                self.weights.as_ref().map_or(0.0, |(_, b)| *b),
            ),
        ];
        for (what, value) in numbers {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "op `{op}`: {what} is {value}; it must be finite and >= 0"
                ));
            }
        }
        Ok(())
    }
}

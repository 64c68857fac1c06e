//! The llama forward pass (also qwen2, which adds Q/K/V biases): RMSNorm, RoPE, grouped-query
//! attention over a paged KV store, SwiGLU feed-forward, tied or separate output projection.
//!
//! One pass runs a batch of sequence chunks: every token of every chunk goes through each
//! matmul together (one read of the weights serves them all), and each token attends to its
//! own sequence's blocks. Every kernel computes a row independently of the other rows, so a
//! token's result does not depend on what else is in the batch: batched, chunked, prefix-cached
//! and one-at-a-time generation give bit-identical logits.

use agentc_model::{GgufFile, LlamaConfig};

use crate::error::{Error, Result};
use crate::kv::{BlockId, KvStore};
use crate::ops::{self, Matmul, MatmulBackend};
use crate::weights::{LayerWeights, LlamaWeights};

/// Attention work (visible positions summed over query heads) below which one thread does it
/// all: a few microseconds, the order of handing tasks to the spinning kernel workers.
const PARALLEL_ATTENTION_WORK: usize = 512;
/// SwiGLU activations below which one thread does them all, and the chunk a task takes.
const PARALLEL_SWIGLU: usize = 4096;
const SWIGLU_CHUNK: usize = 256;

#[derive(Debug)]
pub struct LlamaModel {
    config: LlamaConfig,
    weights: LlamaWeights,
    matmul: Matmul,
}

/// A run of consecutive tokens of one sequence, for one forward pass.
#[derive(Clone, Copy, Debug)]
pub struct SeqChunk<'a> {
    /// The sequence's block table: position `p` lives in slot `p % block_size` of
    /// `blocks[p / block_size]`. Must cover `start + tokens.len()` positions.
    pub blocks: &'a [BlockId],
    /// Position of `tokens[0]`; positions `0..start` must already be in the blocks.
    pub start: usize,
    pub tokens: &'a [u32],
    /// Which rows' logits to return.
    pub logits: ChunkLogits,
}

/// Which of a chunk's rows a forward pass returns logits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkLogits {
    None,
    /// After the chunk's last token (what generation needs).
    Last,
    /// After every token of the chunk (scoring: perplexity, teacher forcing).
    All,
}

/// Where one activation row of a batch comes from, and its RoPE angles (the same in every
/// layer, so computed once per pass).
#[derive(Clone, Debug)]
struct Row {
    chunk: usize,
    position: usize,
    angles: Vec<(f32, f32)>,
}

impl LlamaModel {
    /// Which code runs the matmuls.
    pub fn matmul_backend(&self) -> MatmulBackend {
        self.matmul.backend()
    }

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

    /// A KV store of `num_blocks` blocks of `block_size` positions for this model.
    pub fn new_kv_store(&self, block_size: usize, num_blocks: usize) -> Result<KvStore> {
        KvStore::new(
            self.config.n_layer,
            self.config.kv_dim(),
            block_size,
            num_blocks,
        )
    }

    /// Bytes one KV block of `block_size` positions takes.
    pub fn kv_block_bytes(&self, block_size: usize) -> usize {
        KvStore::block_bytes(self.config.n_layer, self.config.kv_dim(), block_size)
    }

    /// Runs every chunk's tokens through the model in one pass, storing their keys and values in
    /// `kv`, and returns the logits each chunk asks for (in chunk order, rows in token order).
    pub fn forward(&self, chunks: &[SeqChunk<'_>], kv: &mut KvStore) -> Result<Logits> {
        let mut logits = Logits::default();
        self.forward_into(chunks, kv, &mut logits)?;
        Ok(logits)
    }

    /// As [`LlamaModel::forward`], with the logits written into `logits`, whose memory is reused
    /// (a serving loop keeps one). The activation buffers are kept per thread between calls:
    /// allocating a step's few MB afresh each time cost page faults on every step.
    pub fn forward_into(
        &self,
        chunks: &[SeqChunk<'_>],
        kv: &mut KvStore,
        logits: &mut Logits,
    ) -> Result<()> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
        }
        let mut scratch = SCRATCH.with_borrow_mut(std::mem::take);
        let result = self.forward_with(chunks, kv, &mut scratch, logits);
        // Decode steps (a few rows) reuse the buffers; a long prefill's are not worth keeping
        // on every thread that ever ran one.
        if scratch.bytes() <= RETAINED_SCRATCH_BYTES {
            SCRATCH.with_borrow_mut(|kept| *kept = scratch);
        }
        result
    }

    fn forward_with(
        &self,
        chunks: &[SeqChunk<'_>],
        kv: &mut KvStore,
        scratch: &mut Scratch,
        logits: &mut Logits,
    ) -> Result<()> {
        let c = &self.config;
        let rows = self.rows(chunks, kv)?;
        let n = rows.len();
        if n == 0 {
            return Err(Error::InvalidRequest("no tokens to process".to_owned()));
        }
        let Scratch {
            x,
            last,
            layer: buffers,
        } = scratch;
        resize(x, n * c.n_embd);
        buffers.resize(c, n);
        let tokens = chunks.iter().flat_map(|chunk| chunk.tokens);
        for (&token, row) in tokens.zip(x.chunks_exact_mut(c.n_embd)) {
            self.weights
                .token_embedding
                .dequantize_row(token as usize, row)?;
        }
        // One set of activation buffers for every layer (each is overwritten whole).
        for (index, layer) in self.weights.layers.iter().enumerate() {
            self.attention_block(index, layer, x, &rows, chunks, kv, buffers)?;
            self.feed_forward_block(layer, x, buffers)?;
        }

        // The rows that want logits: the last of a chunk, or all of it.
        last.clear();
        let mut end = 0;
        for chunk in chunks {
            let start = end;
            end += chunk.tokens.len();
            match chunk.logits {
                ChunkLogits::None => {}
                ChunkLogits::Last => {
                    last.extend_from_slice(&x[(end - 1) * c.n_embd..end * c.n_embd]);
                }
                ChunkLogits::All => last.extend_from_slice(&x[start * c.n_embd..end * c.n_embd]),
            }
        }
        let output = self.weights.output_projection();
        let wanted = last.len() / c.n_embd;
        logits.vocab = output.rows;
        resize(&mut logits.values, wanted * output.rows);
        if wanted > 0 {
            ops::rms_norm(last, &self.weights.output_norm, c.rms_eps);
            self.matmul.run(output, last, wanted, &mut logits.values)?;
        }
        Ok(())
    }

    /// Checks the chunks against the model and the store and lists the batch's rows.
    fn rows(&self, chunks: &[SeqChunk<'_>], kv: &KvStore) -> Result<Vec<Row>> {
        let mut rows = Vec::with_capacity(chunks.iter().map(|c| c.tokens.len()).sum());
        for (index, chunk) in chunks.iter().enumerate() {
            if chunk.tokens.is_empty() {
                return Err(Error::InvalidRequest("a chunk has no tokens".to_owned()));
            }
            let end = chunk.start + chunk.tokens.len();
            if end > chunk.blocks.len() * kv.block_size() {
                return Err(Error::ContextFull {
                    needed: end,
                    capacity: chunk.blocks.len() * kv.block_size(),
                });
            }
            if let Some(&block) = chunk
                .blocks
                .iter()
                .find(|&&b| b as usize >= kv.num_blocks())
            {
                return Err(Error::InvalidRequest(format!(
                    "KV block {block} is outside the store of {} blocks",
                    kv.num_blocks()
                )));
            }
            if let Some(&id) = chunk
                .tokens
                .iter()
                .find(|&&t| t as usize >= self.config.vocab_size)
            {
                return Err(Error::TokenOutOfRange {
                    id,
                    vocab_size: self.config.vocab_size,
                });
            }
            let rope = ops::Rope::for_config(&self.config);
            rows.extend((chunk.start..end).map(|position| {
                let mut angles = Vec::new();
                rope.angles(position, &mut angles);
                Row {
                    chunk: index,
                    position,
                    angles,
                }
            }));
        }
        Ok(rows)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention_block(
        &self,
        index: usize,
        layer: &LayerWeights,
        x: &mut [f32],
        rows: &[Row],
        chunks: &[SeqChunk<'_>],
        kv: &mut KvStore,
        buffers: &mut Buffers,
    ) -> Result<()> {
        let c = &self.config;
        let n = rows.len();
        let (head_dim, kv_dim) = (c.head_dim(), c.kv_dim());
        let width = c.n_embd + 2 * kv_dim;
        let Buffers {
            h,
            qkv,
            attended,
            projected,
            ..
        } = buffers;
        h.copy_from_slice(x);
        ops::rms_norm(h, &layer.attn_norm, c.rms_eps);
        self.matmul.run_parts(
            &[&layer.wq, &layer.wk, &layer.wv],
            layer.qkv.as_ref(),
            h,
            n,
            qkv,
        )?;
        let rope = ops::Rope::for_config(c);
        let block_size = kv.block_size();
        for (row, r) in qkv.chunks_exact_mut(width).zip(rows) {
            let (q, rest) = row.split_at_mut(c.n_embd);
            let (k, v) = rest.split_at_mut(kv_dim);
            add_bias(q, layer.bq.as_deref());
            add_bias(k, layer.bk.as_deref());
            add_bias(v, layer.bv.as_deref());
            rope.apply_angles(q, &r.angles);
            rope.apply_angles(k, &r.angles);
            let block = chunks[r.chunk].blocks[r.position / block_size];
            kv.write(index, block, r.position % block_size, k, v);
        }
        let (keys, values) = kv.layer(index);
        let group = c.n_head / c.n_head_kv;
        let qkv = &*qkv;
        // A task is a token's `per_task` query heads that share a KV head (contiguous in the
        // row): they attend together, sharing the layout work and the value sweeps. Whole GQA
        // groups unless that leaves too few tasks to balance over the threads (batch 1).
        let per_task = queries_per_task(group, n * c.n_head, self.matmul.threads());
        let tasks_per_row = c.n_head / per_task;
        let width_task = per_task * head_dim;
        let heads = |scratch: &mut ops::AttentionScratch, (i, out): (usize, &mut [f32])| {
            let (t, first) = (i / tasks_per_row, (i % tasks_per_row) * per_task);
            let r = &rows[t];
            let at = t * width + first * head_dim;
            let kv = ops::KvHead {
                keys,
                values,
                blocks: chunks[r.chunk].blocks,
                block_size,
                kv_dim,
                offset: (first / group) * head_dim,
                positions: r.position + 1,
            };
            ops::attend(&qkv[at..at + width_task], head_dim, kv, out, scratch);
        };
        let work: usize = rows.iter().map(|r| (r.position + 1) * c.n_head).sum();
        if work < PARALLEL_ATTENTION_WORK {
            // Short contexts: splitting costs more than the attention itself.
            let mut scratch = ops::AttentionScratch::default();
            for task in attended.chunks_mut(width_task).enumerate() {
                heads(&mut scratch, task);
            }
        } else {
            thread_local! {
                static SCRATCH: std::cell::RefCell<ops::AttentionScratch> =
                    std::cell::RefCell::default();
            }
            self.matmul
                .for_each_chunk_mut(attended, width_task, |i, out| {
                    SCRATCH.with_borrow_mut(|scratch| heads(scratch, (i, out)))
                });
        }
        self.matmul.run(&layer.wo, attended, n, projected)?;
        for (xv, p) in x.iter_mut().zip(projected.iter()) {
            *xv += p;
        }
        Ok(())
    }

    fn feed_forward_block(
        &self,
        layer: &LayerWeights,
        x: &mut [f32],
        buffers: &mut Buffers,
    ) -> Result<()> {
        let c = &self.config;
        let n = x.len() / c.n_embd;
        let Buffers {
            h,
            gate_up,
            act,
            down,
            ..
        } = buffers;
        h.copy_from_slice(x);
        ops::rms_norm(h, &layer.ffn_norm, c.rms_eps);
        self.matmul.run_parts(
            &[&layer.w_gate, &layer.w_up],
            layer.gate_up.as_ref(),
            h,
            n,
            gate_up,
        )?;
        let gate_up = &*gate_up;
        // Element-wise, so split in column chunks on the kernel threads (same bits).
        let chunk = if c.n_ff.is_multiple_of(SWIGLU_CHUNK) {
            SWIGLU_CHUNK
        } else {
            c.n_ff
        };
        let per_row = c.n_ff / chunk;
        let swiglu = |i: usize, a: &mut [f32]| {
            let (row, col) = (i / per_row, (i % per_row) * chunk);
            let at = row * 2 * c.n_ff + col;
            a.copy_from_slice(&gate_up[at..at + chunk]);
            ops::swiglu(a, &gate_up[at + c.n_ff..at + c.n_ff + chunk]);
        };
        if n * c.n_ff < PARALLEL_SWIGLU {
            act.chunks_mut(chunk)
                .enumerate()
                .for_each(|(i, a)| swiglu(i, a));
        } else {
            self.matmul.for_each_chunk_mut(act, chunk, swiglu);
        }
        self.matmul.run(&layer.w_down, act, n, down)?;
        for (xv, d) in x.iter_mut().zip(down.iter()) {
            *xv += d;
        }
        Ok(())
    }
}

/// Tasks per thread an attention section should have for load balance.
const ATTENTION_TASKS_PER_THREAD: usize = 4;

/// Query heads per attention task: the largest divisor of the GQA `group` that still leaves
/// [`ATTENTION_TASKS_PER_THREAD`] tasks per thread among `heads` query heads in all (1 if none).
fn queries_per_task(group: usize, heads: usize, threads: usize) -> usize {
    let wanted = ATTENTION_TASKS_PER_THREAD * threads.max(1);
    (1..=group.max(1))
        .rev()
        .find(|&q| group.is_multiple_of(q) && heads / q >= wanted)
        .unwrap_or(1)
}

/// The logits of a forward pass: the vocabulary-wide rows the chunks asked for, in chunk order,
/// in one buffer (a batch of 8 would otherwise copy 1.5 MB per step).
#[derive(Debug, Default)]
pub struct Logits {
    values: Vec<f32>,
    vocab: usize,
}

impl Logits {
    /// Rows held.
    pub fn len(&self) -> usize {
        self.values.len() / self.vocab.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Row `i`, if there is one.
    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.values.get(i * self.vocab..(i + 1) * self.vocab)
    }

    /// The last row, owned (no copy when it is the only one).
    pub fn into_last(mut self) -> Option<Vec<f32>> {
        let rows = self.len();
        if rows == 0 {
            return None;
        }
        self.values.drain(..(rows - 1) * self.vocab);
        Some(self.values)
    }
}

/// Memory a forward pass reuses: the hidden states, the rows that get logits, and one layer's
/// activations.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,
    last: Vec<f32>,
    layer: Buffers,
}

impl Scratch {
    /// Bytes held (capacity).
    fn bytes(&self) -> usize {
        let b = &self.layer;
        [
            &self.x,
            &self.last,
            &b.h,
            &b.qkv,
            &b.attended,
            &b.projected,
            &b.gate_up,
            &b.act,
            &b.down,
        ]
        .iter()
        .map(|v| v.capacity() * std::mem::size_of::<f32>())
        .sum()
    }
}

/// Largest forward-pass scratch a thread keeps between calls: a few dozen rows of a small model.
const RETAINED_SCRATCH_BYTES: usize = 4 << 20;

/// `v` at `len` values (contents unspecified: every user overwrites them).
fn resize(v: &mut Vec<f32>, len: usize) {
    v.truncate(len);
    v.resize(len, 0.0);
}

/// Activations of one layer for a batch of `n` rows, reused by every layer of a pass.
#[derive(Default)]
struct Buffers {
    h: Vec<f32>,
    qkv: Vec<f32>,
    attended: Vec<f32>,
    projected: Vec<f32>,
    gate_up: Vec<f32>,
    act: Vec<f32>,
    down: Vec<f32>,
}

impl Buffers {
    /// Sizes every buffer for `n` rows.
    fn resize(&mut self, c: &LlamaConfig, n: usize) {
        let embd = n * c.n_embd;
        resize(&mut self.h, embd);
        resize(&mut self.qkv, n * (c.n_embd + 2 * c.kv_dim()));
        resize(&mut self.attended, embd);
        resize(&mut self.projected, embd);
        resize(&mut self.gate_up, n * 2 * c.n_ff);
        resize(&mut self.act, n * c.n_ff);
        resize(&mut self.down, embd);
    }
}

fn add_bias(x: &mut [f32], bias: Option<&[f32]>) {
    if let Some(bias) = bias {
        for (v, b) in x.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Logits, Scratch, queries_per_task, resize};

    #[test]
    fn attention_tasks_keep_whole_groups_unless_too_few_for_the_threads() {
        // SmolLM2: 9 heads in 3 groups of 3. Batch 8: 24 groups for 2 threads.
        assert_eq!(queries_per_task(3, 8 * 9, 2), 3);
        // Batch 1: 3 groups would leave a thread idle; single heads give 9 tasks.
        assert_eq!(queries_per_task(3, 9, 2), 1);
        // 32 heads in groups of 8 (TinyLlama), batch 1, 2 threads: 8 tasks of 4 heads.
        assert_eq!(queries_per_task(8, 32, 2), 4);
        assert_eq!(queries_per_task(1, 9, 2), 1);
        assert_eq!(queries_per_task(4, 4, 8), 1);
    }

    #[test]
    fn scratch_counts_every_buffer_it_holds() {
        let mut scratch = Scratch::default();
        assert_eq!(scratch.bytes(), 0);
        resize(&mut scratch.x, 10);
        resize(&mut scratch.layer.down, 6);
        assert!(scratch.bytes() >= 16 * 4);
        resize(&mut scratch.x, 2);
        // Shrinking keeps the memory: retention is decided by capacity.
        assert!(scratch.bytes() >= 16 * 4);
    }

    #[test]
    fn logits_rows_are_the_vocabulary_wide_slices_in_order() {
        let logits = Logits {
            values: (0..12).map(|v| v as f32).collect(),
            vocab: 4,
        };
        assert_eq!(logits.len(), 3);
        assert_eq!(logits.row(1), Some(&[4.0, 5.0, 6.0, 7.0][..]));
        assert_eq!(logits.row(3), None);
        assert_eq!(logits.into_last(), Some(vec![8.0, 9.0, 10.0, 11.0]));
        let none = Logits {
            values: Vec::new(),
            vocab: 4,
        };
        assert!(none.is_empty());
        assert_eq!(none.into_last(), None);
    }
}

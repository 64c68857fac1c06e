//! The paged KV cache: a pool of fixed-size token blocks ([`KvStore`]), counted references to
//! them that free themselves on drop ([`BlockAllocator`], [`Block`]), and a radix tree over
//! block-aligned prompt prefixes for reuse across requests ([`PrefixIndex`]).

mod block_allocator;
mod prefix_index;

pub use block_allocator::{Block, BlockAllocator, BlockId};
pub use prefix_index::PrefixIndex;

use crate::error::{Error, Result};
use crate::quant::round_f16;

/// Keys and values of `num_blocks` blocks of `block_size` positions, for every layer.
///
/// Layout per layer: `[block][kv_dim][slot]` for K and `[block][slot][kv_dim]` for V, so one
/// layer's keys and values of one block are contiguous. Values are rounded to f16 precision (llama.cpp's default KV type)
/// and kept as f32 for simple, fast reads.
#[derive(Debug)]
pub struct KvStore {
    n_layer: usize,
    kv_dim: usize,
    block_size: usize,
    num_blocks: usize,
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl KvStore {
    /// Bytes one block takes for a model with `n_layer` layers of `kv_dim`-wide keys/values.
    pub fn block_bytes(n_layer: usize, kv_dim: usize, block_size: usize) -> usize {
        n_layer * 2 * block_size * kv_dim * std::mem::size_of::<f32>()
    }

    /// A store of `num_blocks` blocks (memory is reserved lazily by the OS as it is written).
    pub fn new(
        n_layer: usize,
        kv_dim: usize,
        block_size: usize,
        num_blocks: usize,
    ) -> Result<Self> {
        let len = n_layer
            .checked_mul(num_blocks)
            .and_then(|v| v.checked_mul(block_size))
            .and_then(|v| v.checked_mul(kv_dim))
            .filter(|_| block_size > 0 && kv_dim > 0)
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "KV store of {num_blocks} blocks of {block_size} positions is not possible"
                ))
            })?;
        Ok(Self {
            n_layer,
            kv_dim,
            block_size,
            num_blocks,
            keys: vec![0.0; len],
            values: vec![0.0; len],
        })
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    pub fn n_layer(&self) -> usize {
        self.n_layer
    }

    /// Stores position `slot` of `block` in `layer` (values rounded to f16 precision).
    pub fn write(&mut self, layer: usize, block: BlockId, slot: usize, key: &[f32], value: &[f32]) {
        let (d, bs) = (self.kv_dim, self.block_size);
        let block_start = self.offset(layer, block as usize, 0);
        for (i, &src) in key.iter().enumerate().take(d) {
            self.keys[block_start + i * bs + slot] = round_f16(src);
        }
        let at = block_start + slot * d;
        for (dst, &src) in self.values[at..at + d].iter_mut().zip(value) {
            *dst = round_f16(src);
        }
    }

    /// All keys and values of `layer`: keys `[block][kv_dim][slot]` (each block transposed, so
    /// attention reads one dimension of consecutive positions as a vector), values
    /// `[block][slot][kv_dim]`.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        let len = self.num_blocks * self.block_size * self.kv_dim;
        let at = layer * len;
        (&self.keys[at..at + len], &self.values[at..at + len])
    }

    fn offset(&self, layer: usize, block: usize, slot: usize) -> usize {
        ((layer * self.num_blocks + block) * self.block_size + slot) * self.kv_dim
    }
}

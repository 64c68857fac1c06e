//! The paged KV cache: a pool of fixed-size token blocks ([`KvStore`]), counted references to
//! them that free themselves on drop ([`BlockAllocator`], [`Block`]), and a radix tree over
//! block-aligned prompt prefixes for reuse across requests ([`PrefixIndex`]).

mod block_allocator;
mod prefix_index;

pub use block_allocator::{Block, BlockAllocator, BlockId};
pub use prefix_index::PrefixIndex;

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use crate::error::{Error, Result};

/// Keys converted to f16 per slice conversion (one vectorized pass) before they are scattered
/// to their transposed slots.
const ROUND_CHUNK: usize = 64;

/// Keys and values of `num_blocks` blocks of `block_size` positions, for every layer.
///
/// Layout per layer: `[block][kv_dim][slot]` for K and `[block][slot][kv_dim]` for V, so one
/// layer's keys and values of one block are contiguous. Stored as f16, llama.cpp's default KV
/// type: half the bytes attention reads at long contexts (where it is bound by them) and twice
/// the tokens per MiB of cache.
#[derive(Debug)]
pub struct KvStore {
    n_layer: usize,
    kv_dim: usize,
    block_size: usize,
    num_blocks: usize,
    /// f16 bit patterns: a `u16` buffer of zeros comes from the allocator as untouched pages
    /// (calloc), so the OS commits memory only as blocks are written; a `Vec<f16>` would be
    /// written whole at start.
    keys: Vec<u16>,
    values: Vec<u16>,
}

impl KvStore {
    /// Bytes one block takes for a model with `n_layer` layers of `kv_dim`-wide keys/values.
    pub fn block_bytes(n_layer: usize, kv_dim: usize, block_size: usize) -> usize {
        n_layer * 2 * block_size * kv_dim * std::mem::size_of::<f16>()
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
            keys: vec![0; len],
            values: vec![0; len],
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

    /// Stores position `slot` of `block` in `layer` (rounded to f16, to nearest).
    pub fn write(&mut self, layer: usize, block: BlockId, slot: usize, key: &[f32], value: &[f32]) {
        let (d, bs) = (self.kv_dim, self.block_size);
        let block_start = self.offset(layer, block as usize, 0);
        let mut halves = [f16::ZERO; ROUND_CHUNK];
        for (c, src) in key[..d].chunks(ROUND_CHUNK).enumerate() {
            let halves = &mut halves[..src.len()];
            halves.convert_from_f32_slice(src);
            for (i, &h) in halves.iter().enumerate() {
                self.keys[block_start + (c * ROUND_CHUNK + i) * bs + slot] = h.to_bits();
            }
        }
        let at = block_start + slot * d;
        let values: &mut [f16] = self.values[at..at + d].reinterpret_cast_mut();
        values.convert_from_f32_slice(&value[..d]);
    }

    /// All keys and values of `layer`: keys `[block][kv_dim][slot]` (each block transposed, so
    /// attention reads one dimension of consecutive positions as a vector), values
    /// `[block][slot][kv_dim]`.
    pub fn layer(&self, layer: usize) -> (&[f16], &[f16]) {
        let len = self.num_blocks * self.block_size * self.kv_dim;
        let at = layer * len;
        (
            self.keys[at..at + len].reinterpret_cast(),
            self.values[at..at + len].reinterpret_cast(),
        )
    }

    fn offset(&self, layer: usize, block: usize, slot: usize) -> usize {
        ((layer * self.num_blocks + block) * self.block_size + slot) * self.kv_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_f16(x: f32) -> f32 {
        half::f16::from_f32(x).to_f32()
    }

    #[test]
    fn write_rounds_to_f16_and_transposes_keys_within_the_block() {
        let (kv_dim, bs) = (100, 4);
        let mut store = KvStore::new(2, kv_dim, bs, 3).expect("store");
        let key: Vec<f32> = (0..kv_dim).map(|i| 1.0 + i as f32 * 0.001_234_5).collect();
        let value: Vec<f32> = (0..kv_dim).map(|i| -3.0 - i as f32 * 0.007_654_3).collect();
        store.write(1, 2, 3, &key, &value);
        let (keys, values) = store.layer(1);
        let block = 2 * bs * kv_dim;
        for i in 0..kv_dim {
            assert_eq!(
                keys[block + i * bs + 3].to_f32(),
                round_f16(key[i]),
                "key {i}"
            );
            let v = values[block + 3 * kv_dim + i].to_f32();
            assert_eq!(v, round_f16(value[i]), "value {i}");
        }
        // Nothing else was written.
        let written = keys
            .iter()
            .chain(values)
            .filter(|v| v.to_f32() != 0.0)
            .count();
        assert_eq!(written, 2 * kv_dim);
        assert!(store.layer(0).0.iter().all(|v| v.to_f32() == 0.0));
    }
}

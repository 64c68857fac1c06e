//! A per-sequence KV cache: keys and values of every processed position, per layer.
//!
//! Values are stored rounded to f16 precision (llama.cpp's default KV type is f16, and rounding
//! the same way keeps attention numerically close to it) but kept as f32 for simple, fast reads.
//! The paged, prefix-shared cache of the serving engine replaces this later.

use crate::error::{Error, Result};
use crate::quant::round_f16;

#[derive(Debug)]
pub struct KvCache {
    kv_dim: usize,
    capacity: usize,
    len: usize,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

impl KvCache {
    /// An empty cache for `n_layer` layers of `kv_dim`-wide keys/values, holding at most
    /// `capacity` positions. Memory grows with use, not with `capacity`.
    pub fn new(n_layer: usize, kv_dim: usize, capacity: usize) -> Self {
        Self {
            kv_dim,
            capacity,
            len: 0,
            keys: vec![Vec::new(); n_layer],
            values: vec![Vec::new(); n_layer],
        }
    }

    /// Positions already processed (and visible to the next token's attention).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Fails if `extra` more positions would not fit.
    pub fn reserve(&self, extra: usize) -> Result<()> {
        let needed = self.len + extra;
        if needed > self.capacity {
            return Err(Error::ContextFull {
                needed,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Appends the keys and values of new positions to `layer` (`n * kv_dim` values each).
    /// [`KvCache::advance`] makes them count once every layer has them.
    pub fn append(&mut self, layer: usize, keys: &[f32], values: &[f32]) {
        self.keys[layer].extend(keys.iter().map(|&v| round_f16(v)));
        self.values[layer].extend(values.iter().map(|&v| round_f16(v)));
    }

    pub fn advance(&mut self, positions: usize) {
        self.len += positions;
    }

    /// All keys and values of `layer` so far, `kv_dim` values per position.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.keys[layer], &self.values[layer])
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Forgets every position from `len` on (to reuse a cached prompt prefix).
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        for layer in self.keys.iter_mut().chain(self.values.iter_mut()) {
            layer.truncate(len * self.kv_dim);
        }
        self.len = len;
    }
}

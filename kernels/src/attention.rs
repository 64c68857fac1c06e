//! Attention of one query position over a paged KV cache.
//!
//! K and V live in pools of fixed-size blocks, each `[num_blocks, block_size, n_kv_heads,
//! head_dim]` f32, and a sequence names its blocks with a block table: token `t` of the sequence
//! is slot `t % block_size` of block `block_table[t / block_size]`. Heads are grouped (GQA):
//! query head `h` reads KV head `h / (n_heads / n_kv_heads)`, so each K and V row is loaded once
//! per group and used for all of the group's query heads.

use crate::error::{Error, Result, check_len};
use crate::simd::dispatch;

/// A K and a V pool of `num_blocks` blocks of `block_size` tokens x `n_kv_heads` x `head_dim`.
#[derive(Debug, Clone, Copy)]
pub struct KvPool<'a> {
    k: &'a [f32],
    v: &'a [f32],
    num_blocks: usize,
    block_size: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl<'a> KvPool<'a> {
    /// Wraps the pools, checking their lengths against the geometry.
    pub fn new(
        k: &'a [f32],
        v: &'a [f32],
        block_size: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<Self> {
        let row = block_size * n_kv_heads * head_dim;
        if row == 0 {
            return Err(Error::InvalidShape(
                "kv pool: block_size, n_kv_heads and head_dim must be > 0".into(),
            ));
        }
        if !k.len().is_multiple_of(row) {
            return Err(Error::InvalidShape(format!(
                "kv pool: {} K values are not whole blocks of {row}",
                k.len()
            )));
        }
        check_len("V pool", k.len(), v.len(), "elements")?;
        Ok(Self {
            k,
            v,
            num_blocks: k.len() / row,
            block_size,
            n_kv_heads,
            head_dim,
        })
    }

    /// Number of blocks in each pool.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// Offset of (token slot `t` of the sequence, KV head `h`) in the pools.
    #[inline(always)]
    fn offset(&self, table: &[u32], t: usize, h: usize) -> usize {
        let block = table[t / self.block_size] as usize;
        ((block * self.block_size + t % self.block_size) * self.n_kv_heads + h) * self.head_dim
    }
}

/// `out[h] = softmax(scale * q[h] . K[0..len]) . V[0..len]` for each query head `h`, where
/// `q` and `out` are `[n_heads, head_dim]` and the sequence's first `len` tokens are those of
/// `block_table` (causal: the query sees positions `0..len`). `scale` is usually
/// `1 / sqrt(head_dim)`.
pub fn attention_paged_f32(
    q: &[f32],
    pool: &KvPool,
    block_table: &[u32],
    len: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<()> {
    let hd = pool.head_dim;
    if q.is_empty()
        || !q.len().is_multiple_of(hd)
        || !(q.len() / hd).is_multiple_of(pool.n_kv_heads)
    {
        return Err(Error::InvalidShape(format!(
            "attention: {} query values are not a multiple of {} KV heads of {hd}",
            q.len(),
            pool.n_kv_heads
        )));
    }
    check_len("attention output", q.len(), out.len(), "elements")?;
    if len == 0 || len > block_table.len() * pool.block_size {
        return Err(Error::InvalidShape(format!(
            "attention: length {len} needs 1..={} tokens for {} blocks",
            block_table.len() * pool.block_size,
            block_table.len()
        )));
    }
    let used = len.div_ceil(pool.block_size);
    if let Some((index, &b)) = block_table[..used]
        .iter()
        .enumerate()
        .find(|(_, b)| **b as usize >= pool.num_blocks)
    {
        return Err(Error::BlockOutOfRange {
            index,
            block: b as usize,
            num_blocks: pool.num_blocks,
        });
    }
    let group = q.len() / hd / pool.n_kv_heads;
    let mut scores = vec![0.0f32; group * len];
    dispatch!(
        fn body(
            q: &[f32],
            pool: &KvPool,
            table: &[u32],
            scale: f32,
            scores: &mut [f32],
            out: &mut [f32],
        ) {
            let hd = pool.head_dim;
            let group = q.len() / hd / pool.n_kv_heads;
            let len = scores.len() / group;
            for kvh in 0..pool.n_kv_heads {
                let qg = &q[kvh * group * hd..(kvh + 1) * group * hd];
                for t in 0..len {
                    let at = pool.offset(table, t, kvh);
                    let kr = &pool.k[at..at + hd];
                    for (g, qh) in qg.chunks_exact(hd).enumerate() {
                        scores[g * len + t] = dot(qh, kr) * scale;
                    }
                }
                for s in scores.chunks_exact_mut(len) {
                    softmax_row(s);
                }
                let og = &mut out[kvh * group * hd..(kvh + 1) * group * hd];
                og.fill(0.0);
                for t in 0..len {
                    let at = pool.offset(table, t, kvh);
                    let vr = &pool.v[at..at + hd];
                    for (g, oh) in og.chunks_exact_mut(hd).enumerate() {
                        let p = scores[g * len + t];
                        for (o, &v) in oh.iter_mut().zip(vr) {
                            *o += p * v;
                        }
                    }
                }
            }
        }
    );
    body(q, pool, block_table, scale, &mut scores, out);
    Ok(())
}

/// Partial sums of the dot product (one AVX-512 register of f32).
const LANES: usize = 16;

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Stable softmax of a non-empty row of finite scores.
#[inline(always)]
fn softmax_row(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

//! Attention of one query position over a paged KV cache.
//!
//! K and V live in pools of fixed-size blocks, each `[num_blocks, block_size, n_kv_heads,
//! head_dim]` f32, and a sequence names its blocks with a block table: token `t` of the sequence
//! is slot `t % block_size` of block `block_table[t / block_size]`. Heads are grouped (GQA):
//! query head `h` reads KV head `h / (n_heads / n_kv_heads)`, so each K and V row is loaded once
//! per group and used for all of the group's query heads.

use crate::error::{Error, Result, check_len};
use crate::simd::{exp_f32, max_f32, sum_f32, sum16};

/// The attention loops over validated inputs, with `$dot(a, b) -> f32` and
/// `$pv(p, pool, table, kvh, o)` (for each head `g` of the group, `o[g] = sum_t p[g][t] *
/// V[t][kvh]`) supplied per instruction set.
macro_rules! attend_body {
    ($dot:path, $pv:path, $q:expr, $pool:expr, $table:expr, $scale:expr, $scores:expr, $out:expr) => {{
        let (q, pool, table, scale, scores, out): (
            &[f32],
            &KvPool,
            &[u32],
            f32,
            &mut [f32],
            &mut [f32],
        ) = ($q, $pool, $table, $scale, $scores, $out);
        let hd = pool.head_dim;
        let group = q.len() / hd / pool.n_kv_heads;
        let len = scores.len() / group;
        for kvh in 0..pool.n_kv_heads {
            let qg = &q[kvh * group * hd..(kvh + 1) * group * hd];
            for (t, at) in pool.token_offsets(table, len, kvh).enumerate() {
                let kr = &pool.k[at..at + hd];
                for (g, qh) in qg.chunks_exact(hd).enumerate() {
                    scores[g * len + t] = $dot(qh, kr) * scale;
                }
            }
            for s in scores.chunks_exact_mut(len) {
                softmax_row(s);
            }
            let og = &mut out[kvh * group * hd..(kvh + 1) * group * hd];
            $pv(scores, pool, table, kvh, og);
        }
    }};
}

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

    /// Offsets in the pools of KV head `h` of the sequence's tokens `0..len`, in order, walking
    /// the block table (no division per token).
    #[inline(always)]
    fn token_offsets<'t>(
        &self,
        table: &'t [u32],
        len: usize,
        h: usize,
    ) -> impl Iterator<Item = usize> + 't {
        let (bs, hd) = (self.block_size, self.head_dim);
        let stride = self.n_kv_heads * hd;
        table
            .iter()
            .flat_map(move |&b| {
                let base = b as usize * bs * stride + h * hd;
                (0..bs).map(move |slot| base + slot * stride)
            })
            .take(len)
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
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { fma::attend(q, pool, block_table, scale, &mut scores, out) };
        return Ok(());
    }
    attend_portable(q, pool, block_table, scale, &mut scores, out);
    Ok(())
}

fn attend_portable(
    q: &[f32],
    pool: &KvPool,
    table: &[u32],
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    attend_body!(dot, pv, q, pool, table, scale, scores, out)
}

/// For each head `g` of a KV group: `o[g] = sum_t p[g][t] * V[t]` for KV head `kvh` (`p` is
/// `group x len` probabilities, `o` is `group x head_dim`).
#[inline(always)]
fn pv(p: &[f32], pool: &KvPool, table: &[u32], kvh: usize, o: &mut [f32]) {
    let hd = pool.head_dim;
    let len = p.len() / (o.len() / hd);
    o.fill(0.0);
    for (t, at) in pool.token_offsets(table, len, kvh).enumerate() {
        let vr = &pool.v[at..at + hd];
        for (g, oh) in o.chunks_exact_mut(hd).enumerate() {
            let pt = p[g * len + t];
            for (oj, &v) in oh.iter_mut().zip(vr) {
                *oj += pt * v;
            }
        }
    }
}

/// AVX2 + FMA versions: explicit 8-wide fused multiply-adds (without fast-math the compiler
/// neither fuses nor vectorizes the portable dot product well).
#[cfg(target_arch = "x86_64")]
mod fma {
    use super::{KvPool, softmax_row};
    use std::arch::x86_64::*;

    /// Lanes of a 256-bit register of f32.
    const W: usize = 8;

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn attend(
        q: &[f32],
        pool: &KvPool,
        table: &[u32],
        scale: f32,
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        attend_body!(dot, pv, q, pool, table, scale, scores, out)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut s0, mut s1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 2 * W <= n {
            // SAFETY: `i + 16 <= n` elements of both slices; unaligned loads.
            unsafe {
                s0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                    s0,
                );
                s1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(a.as_ptr().add(i + W)),
                    _mm256_loadu_ps(b.as_ptr().add(i + W)),
                    s1,
                );
            }
            i += 2 * W;
        }
        let s = _mm256_add_ps(s0, s1);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        let mut total = _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps::<1>(s2, s2)));
        for j in i..n {
            total += a[j] * b[j];
        }
        total
    }

    /// Output columns accumulated in registers per pass over the tokens (4 ymm per head).
    const COLS: usize = 4 * W;
    /// Heads accumulated together, so each V row is loaded once for all of them (3 heads x 4
    /// accumulators + a broadcast and a load fit the 16 ymm registers).
    const HEADS: usize = 3;

    /// See the portable `pv`. Each V row chunk of 32 columns is loaded once per token for up to
    /// 3 heads whose 32 output columns stay in registers over all tokens.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn pv(p: &[f32], pool: &KvPool, table: &[u32], kvh: usize, o: &mut [f32]) {
        let hd = pool.head_dim;
        let group = o.len() / hd;
        let len = p.len() / group;
        let mut g = 0;
        while g < group {
            let heads = HEADS.min(group - g);
            let (pg, og) = (
                &p[g * len..(g + heads) * len],
                &mut o[g * hd..(g + heads) * hd],
            );
            match heads {
                3 => pv_heads::<3>(pg, pool, table, kvh, og),
                2 => pv_heads::<2>(pg, pool, table, kvh, og),
                _ => pv_heads::<1>(pg, pool, table, kvh, og),
            }
            g += heads;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn pv_heads<const G: usize>(
        p: &[f32],
        pool: &KvPool,
        table: &[u32],
        kvh: usize,
        o: &mut [f32],
    ) {
        let hd = pool.head_dim;
        let len = p.len() / G;
        let mut c = 0;
        while c + COLS <= hd {
            let mut acc = [[_mm256_setzero_ps(); 4]; G];
            for (t, at) in pool.token_offsets(table, len, kvh).enumerate() {
                let v = &pool.v[at + c..at + c + COLS];
                // SAFETY: `v` holds 32 f32: four unaligned loads of 8.
                let vv = unsafe { [0, 1, 2, 3].map(|i| _mm256_loadu_ps(v.as_ptr().add(i * W))) };
                for (h, ah) in acc.iter_mut().enumerate() {
                    let pt = _mm256_set1_ps(p[h * len + t]);
                    for (a, &x) in ah.iter_mut().zip(&vv) {
                        *a = _mm256_fmadd_ps(pt, x, *a);
                    }
                }
            }
            for (h, ah) in acc.iter().enumerate() {
                let oc = &mut o[h * hd + c..h * hd + c + COLS];
                for (i, a) in ah.iter().enumerate() {
                    // SAFETY: `oc` holds 32 f32; unaligned store of 8 at `8 i`.
                    unsafe { _mm256_storeu_ps(oc.as_mut_ptr().add(i * W), *a) };
                }
            }
            c += COLS;
        }
        if c < hd {
            for h in 0..G {
                o[h * hd + c..(h + 1) * hd].fill(0.0);
            }
            for (t, at) in pool.token_offsets(table, len, kvh).enumerate() {
                for h in 0..G {
                    let pt = p[h * len + t];
                    for (oj, &v) in o[h * hd + c..(h + 1) * hd]
                        .iter_mut()
                        .zip(&pool.v[at + c..at + hd])
                    {
                        *oj += pt * v;
                    }
                }
            }
        }
    }
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
    sum16(acc) + tail
}

/// Stable softmax of a non-empty row of finite scores.
#[inline(always)]
fn softmax_row(s: &mut [f32]) {
    let max = max_f32(s);
    // Separate passes so each vectorizes: exp, then a lane-parallel sum, then the scale.
    for v in s.iter_mut() {
        *v = exp_f32(*v - max);
    }
    let inv = 1.0 / sum_f32(s);
    for v in s.iter_mut() {
        *v *= inv;
    }
}

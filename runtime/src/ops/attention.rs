//! Causal attention of one query head over the paged KV store, following ggml's non-flash
//! path: the query is rounded to f16 for the score dot products, the softmax sums in f64, and
//! the probabilities are rounded to f16 before weighting the values.
//!
//! Keys are stored transposed within a block (`[block][kv_dim][slot]`, see `KvStore`), so the
//! scores of [`SLOTS`] positions are that many independent running sums over the head
//! dimension: one vector lane per position, no horizontal sums. Values stay
//! `[block][slot][kv_dim]`, and each output column is a running sum over positions. Every sum
//! has one fixed order with separate multiplies and adds (Rust neither contracts nor reorders
//! float operations), so the AVX-512 and AVX2 builds of the one portable body give identical
//! bits, and a position's result never depends on how the blocks are laid out.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Positions whose scores are computed together (one 512-bit register of f32).
const SLOTS: usize = 16;
/// Slot chunks whose running sums interleave, so the adds are not one dependent chain.
const CHUNKS_AT_ONCE: usize = 4;
/// Output columns accumulated in registers while weighting the values.
const PV_COLUMNS: usize = 64;
/// Partial sums of the softmax's f64 sum and of its max.
const REDUCE_LANES: usize = 8;

/// The keys and values one query head attends to: position `p` is slot `p % block_size` of
/// block `blocks[p / block_size]`.
#[derive(Clone, Copy, Debug)]
pub struct KvHead<'a> {
    /// One layer's keys, `[block][kv_dim][slot]`.
    pub keys: &'a [f32],
    /// One layer's values, `[block][slot][kv_dim]`.
    pub values: &'a [f32],
    pub blocks: &'a [u32],
    pub block_size: usize,
    /// Width of one position's keys or values (all KV heads).
    pub kv_dim: usize,
    /// The head's first element within that width.
    pub offset: usize,
    /// Positions visible to the query (`0..positions`).
    pub positions: usize,
}

/// Reusable buffers of one attention worker.
#[derive(Debug, Default)]
pub struct AttentionScratch {
    scores: Vec<f32>,
    halves: Vec<f16>,
    query: Vec<f32>,
    /// Start of each visible position's value row, the head's offset included.
    rows: Vec<usize>,
    chunks: Vec<KeyChunk>,
}

/// Up to [`SLOTS`] consecutive positions of one block: the key of dimension `d` for the chunk's
/// slot `s` is at `at + d * block_size + s`.
#[derive(Clone, Copy, Debug)]
struct KeyChunk {
    at: usize,
    first: usize,
    /// Slots of the block from `first` on (at most `SLOTS`), visible or not.
    len: usize,
}

/// Attention of `query` (one head, f32) over `kv`; writes the head's output to `out`
/// (`query.len()` values).
pub fn attend(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected just above, the only requirement of the function.
            unsafe { attend_avx512(query, kv, out, scratch) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above, the only requirement of the function.
            unsafe { attend_avx2(query, kv, out, scratch) };
            return;
        }
    }
    attend_portable(query, kv, out, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn attend_avx512(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    attend_portable(query, kv, out, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn attend_avx2(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    attend_portable(query, kv, out, scratch);
}

#[inline(always)]
fn attend_portable(query: &[f32], kv: KvHead<'_>, out: &mut [f32], scratch: &mut AttentionScratch) {
    let head_dim = query.len();
    let scale = 1.0 / (head_dim as f32).sqrt();
    let AttentionScratch {
        scores,
        halves,
        query: q,
        rows,
        chunks,
    } = scratch;
    q.clear();
    q.extend_from_slice(query);
    round_to_f16(q, halves);
    layout(&kv, rows, chunks);

    scores.clear();
    scores.resize(kv.positions, 0.0);
    let mut groups = chunks.chunks_exact(CHUNKS_AT_ONCE);
    for group in &mut groups {
        let group: &[KeyChunk; CHUNKS_AT_ONCE] = group.try_into().expect("exact chunk");
        if group.iter().all(|c| c.len == SLOTS) {
            let sums = chunk_scores(q, kv.keys, kv.block_size, group);
            for (c, sums) in group.iter().zip(&sums) {
                store_scores(c, sums, scale, scores);
            }
        } else {
            for c in group {
                one_chunk_scores(q, &kv, c, scale, scores);
            }
        }
    }
    for c in groups.remainder() {
        one_chunk_scores(q, &kv, c, scale, scores);
    }

    let max = max_f32(scores);
    for s in scores.iter_mut() {
        *s = agentc_kernels::exp_f32(*s - max);
    }
    let inverse = (1.0 / sum_f64(scores)) as f32;
    for s in scores.iter_mut() {
        *s *= inverse;
    }
    round_to_f16(scores, halves);

    let mut col = 0;
    while col < head_dim {
        let rest = head_dim - col;
        let dst = &mut out[col..];
        col += if rest >= PV_COLUMNS {
            weighted_columns::<PV_COLUMNS>(rows, scores, kv.values, col, dst)
        } else if rest >= SLOTS {
            weighted_columns::<SLOTS>(rows, scores, kv.values, col, dst)
        } else {
            weighted_columns::<1>(rows, scores, kv.values, col, dst)
        };
    }
}

/// Fills `rows` with each visible position's value row and `chunks` with the key chunks.
#[inline(always)]
fn layout(kv: &KvHead<'_>, rows: &mut Vec<usize>, chunks: &mut Vec<KeyChunk>) {
    let bs = kv.block_size;
    rows.clear();
    chunks.clear();
    for (i, &block) in kv.blocks.iter().enumerate() {
        let first = i * bs;
        if first >= kv.positions {
            break;
        }
        let base = block as usize * bs * kv.kv_dim;
        let visible = bs.min(kv.positions - first);
        rows.extend((0..visible).map(|s| base + s * kv.kv_dim + kv.offset));
        for slot in (0..visible).step_by(SLOTS) {
            chunks.push(KeyChunk {
                at: base + kv.offset * bs + slot,
                first: first + slot,
                len: SLOTS.min(bs - slot),
            });
        }
    }
}

/// Running sums over the head dimension for [`CHUNKS_AT_ONCE`] full chunks, interleaved.
#[inline(always)]
fn chunk_scores(
    q: &[f32],
    keys: &[f32],
    block_size: usize,
    chunks: &[KeyChunk; CHUNKS_AT_ONCE],
) -> [[f32; SLOTS]; CHUNKS_AT_ONCE] {
    let mut sums = [[0.0f32; SLOTS]; CHUNKS_AT_ONCE];
    for (d, &qd) in q.iter().enumerate() {
        for (sum, c) in sums.iter_mut().zip(chunks) {
            let k: &[f32; SLOTS] = keys[c.at + d * block_size..][..SLOTS]
                .try_into()
                .expect("SLOTS keys");
            for s in 0..SLOTS {
                sum[s] += qd * k[s];
            }
        }
    }
    sums
}

/// Scores of one chunk, full or not, in the same order as [`chunk_scores`].
#[inline(always)]
fn one_chunk_scores(q: &[f32], kv: &KvHead<'_>, c: &KeyChunk, scale: f32, scores: &mut [f32]) {
    let visible = c.len.min(kv.positions - c.first);
    let mut sums = [0.0f32; SLOTS];
    for (d, &qd) in q.iter().enumerate() {
        let k = &kv.keys[c.at + d * kv.block_size..][..visible];
        for (sum, &k) in sums.iter_mut().zip(k) {
            *sum += qd * k;
        }
    }
    store_scores(c, &sums, scale, scores);
}

#[inline(always)]
fn store_scores(c: &KeyChunk, sums: &[f32; SLOTS], scale: f32, scores: &mut [f32]) {
    let visible = c.len.min(scores.len() - c.first);
    for (dst, &sum) in scores[c.first..c.first + visible].iter_mut().zip(sums) {
        *dst = sum * scale;
    }
}

/// `out[j] = sum over positions p, in order, of weights[p] * values[rows[p] + col + j]` for
/// `j < W`, from 0 with one multiply and one add per term; returns `W`.
#[inline(always)]
fn weighted_columns<const W: usize>(
    rows: &[usize],
    weights: &[f32],
    values: &[f32],
    col: usize,
    out: &mut [f32],
) -> usize {
    let mut sums = [0.0f32; W];
    for (&at, &w) in rows.iter().zip(weights) {
        let v: &[f32; W] = values[at + col..][..W].try_into().expect("W values");
        for j in 0..W {
            sums[j] += w * v[j];
        }
    }
    out[..W].copy_from_slice(&sums);
    W
}

/// The largest value (exact in any order; `f32::max` ignores NaN).
#[inline(always)]
fn max_f32(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; REDUCE_LANES];
    let mut whole = values.chunks_exact(REDUCE_LANES);
    for c in &mut whole {
        for l in 0..REDUCE_LANES {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    let tail = whole
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    lanes.iter().fold(tail, |m, &v| m.max(v))
}

/// The f64 sum of `values` (as ggml sums softmax), in [`REDUCE_LANES`] partial sums.
#[inline(always)]
fn sum_f64(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; REDUCE_LANES];
    let mut whole = values.chunks_exact(REDUCE_LANES);
    for c in &mut whole {
        for l in 0..REDUCE_LANES {
            lanes[l] += f64::from(c[l]);
        }
    }
    let tail: f64 = whole.remainder().iter().map(|&v| f64::from(v)).sum();
    lanes.iter().sum::<f64>() + tail
}

fn round_to_f16(values: &mut [f32], halves: &mut Vec<f16>) {
    halves.clear();
    halves.resize(values.len(), f16::ZERO);
    halves.convert_from_f32_slice(values);
    halves.convert_to_f32_slice(values);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys and values of `positions` random positions in blocks laid out in `order`, as
    /// `KvStore` lays them out (f16-rounded).
    struct Store {
        keys: Vec<f32>,
        values: Vec<f32>,
        blocks: Vec<u32>,
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn store(kv_dim: usize, bs: usize, positions: usize, order: &[u32], seed: u64) -> Store {
        let nblocks = order.len();
        let total = order.iter().copied().max().unwrap_or(0) as usize + 1;
        let mut keys = vec![0.0; total * bs * kv_dim];
        let mut values = vec![0.0; total * bs * kv_dim];
        let mut seed = seed;
        for p in 0..positions.min(nblocks * bs) {
            let (b, s) = (order[p / bs] as usize, p % bs);
            for d in 0..kv_dim {
                keys[b * bs * kv_dim + d * bs + s] = f16::from_f32(lcg(&mut seed)).to_f32();
                values[(b * bs + s) * kv_dim + d] = f16::from_f32(lcg(&mut seed)).to_f32();
            }
        }
        Store {
            keys,
            values,
            blocks: order.to_vec(),
        }
    }

    /// Plain attention in f64 over positions in order: the oracle.
    fn reference(
        q: &[f32],
        st: &Store,
        bs: usize,
        kv_dim: usize,
        offset: usize,
        n: usize,
    ) -> Vec<f64> {
        let hd = q.len();
        let key = |p: usize, d: usize| {
            let (b, s) = (st.blocks[p / bs] as usize, p % bs);
            f64::from(st.keys[b * bs * kv_dim + (offset + d) * bs + s])
        };
        let value = |p: usize, d: usize| {
            let (b, s) = (st.blocks[p / bs] as usize, p % bs);
            f64::from(st.values[(b * bs + s) * kv_dim + offset + d])
        };
        let scores: Vec<f64> = (0..n)
            .map(|p| (0..hd).map(|d| f64::from(q[d]) * key(p, d)).sum::<f64>() / (hd as f64).sqrt())
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        (0..hd)
            .map(|d| (0..n).map(|p| e[p] / sum * value(p, d)).sum())
            .collect()
    }

    fn run(q: &[f32], st: &Store, bs: usize, kv_dim: usize, offset: usize, n: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; q.len()];
        let kv = KvHead {
            keys: &st.keys,
            values: &st.values,
            blocks: &st.blocks,
            block_size: bs,
            kv_dim,
            offset,
            positions: n,
        };
        attend(q, kv, &mut out, &mut AttentionScratch::default());
        out
    }

    #[test]
    fn one_position_returns_its_value() {
        let st = Store {
            keys: vec![0.5, 0.5],
            values: vec![2.0, -1.0],
            blocks: vec![0],
        };
        assert_eq!(run(&[1.0, 0.0], &st, 1, 2, 0, 1), [2.0, -1.0]);
    }

    #[test]
    fn matches_plain_attention_for_every_length_and_layout() {
        let (kv_dim, hd) = (3 * 64, 64);
        for bs in [1, 8, 16, 32] {
            let order: Vec<u32> = (0..(200 / bs + 1) as u32).rev().collect();
            let st = store(kv_dim, bs, 200, &order, bs as u64);
            let mut seed = 7;
            let q: Vec<f32> = (0..hd).map(|_| lcg(&mut seed) * 2.0).collect();
            for n in [1, 2, 15, 16, 17, 63, 64, 65, 127, 200] {
                let offset = 64;
                let got = run(&q, &st, bs, kv_dim, offset, n);
                let want = reference(&q, &st, bs, kv_dim, offset, n);
                for (g, w) in got.iter().zip(&want) {
                    // f16 query and probabilities: a few parts in a thousand.
                    assert!(
                        (f64::from(*g) - w).abs() < 4e-3,
                        "bs {bs} n {n}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn result_does_not_depend_on_block_placement_or_vector_width() {
        let (kv_dim, hd, bs, n) = (2 * 64, 64, 16, 150);
        let forward: Vec<u32> = (0..10).collect();
        let shuffled: Vec<u32> = vec![7, 2, 9, 0, 4, 1, 8, 3, 6, 5];
        // Same contents per position, different physical blocks.
        let a = store(kv_dim, bs, n, &forward, 3);
        let mut b = store(kv_dim, bs, n, &shuffled, 99);
        for p in 0..n {
            let (fa, fb) = (forward[p / bs] as usize, shuffled[p / bs] as usize);
            for d in 0..kv_dim {
                b.keys[fb * bs * kv_dim + d * bs + p % bs] =
                    a.keys[fa * bs * kv_dim + d * bs + p % bs];
                b.values[(fb * bs + p % bs) * kv_dim + d] =
                    a.values[(fa * bs + p % bs) * kv_dim + d];
            }
        }
        let mut seed = 11;
        let q: Vec<f32> = (0..hd).map(|_| lcg(&mut seed)).collect();
        let from_a = run(&q, &a, bs, kv_dim, 0, n);
        assert_eq!(from_a, run(&q, &b, bs, kv_dim, 0, n));
        let kv = KvHead {
            keys: &a.keys,
            values: &a.values,
            blocks: &a.blocks,
            block_size: bs,
            kv_dim,
            offset: 0,
            positions: n,
        };
        let mut portable = vec![0.0; hd];
        attend_portable(&q, kv, &mut portable, &mut AttentionScratch::default());
        assert_eq!(from_a, portable);
    }
}

//! Causal attention of the query heads that share one KV head over the paged KV store,
//! following ggml's non-flash path: queries are rounded to f16 for the score dot products, the
//! softmax sums in f64, and the probabilities are rounded to f16 before weighting the values.
//!
//! Keys are stored transposed within a block (`[block][kv_dim][slot]`, see `KvStore`), so the
//! scores of [`SLOTS`] positions are that many independent running sums over the head
//! dimension: one vector lane per position, no horizontal sums. The queries of a GQA group go
//! in batches of up to [`QUERIES_AT_ONCE`]: a batch's scores are summed for a few chunks at
//! once (4 chunks for one query, 3 for two, 2 for three), each key vector widened once for
//! the whole batch, so the chains overlap and the widening is shared. Values stay
//! `[block][slot][kv_dim]`; each output column is a running sum over positions, and a batch
//! weighs the values in one sweep, which again gives the fused multiply-adds independent
//! chains (one query's few columns alone wait on the add latency).
//!
//! Keys and values are f16 in the store (`KvStore`) and widened to f32 as they are read
//! (F16C on x86); at long contexts attention is bound by those reads.
//!
//! Every sum has one fixed order of fused multiply-adds (`f32::mul_add`, an FMA instruction
//! on the x86 builds, which require FMA), so the AVX-512 and AVX2 builds of the one portable
//! body give identical bits, and a position's result depends neither on how the blocks are
//! laid out nor on how many queries are computed together.

use half::f16;
use half::slice::HalfFloatSliceExt;

/// Positions whose scores are computed together (one 512-bit register of f32).
const SLOTS: usize = 16;
/// Queries of a GQA group scored and weighted together.
const QUERIES_AT_ONCE: usize = 3;
/// Partial sums of the softmax's f64 sum and of its max.
const REDUCE_LANES: usize = 8;

/// The keys and values a group of query heads attends to: position `p` is slot
/// `p % block_size` of block `blocks[p / block_size]`.
#[derive(Clone, Copy, Debug)]
pub struct KvHead<'a> {
    /// One layer's keys, `[block][kv_dim][slot]`.
    pub keys: &'a [f16],
    /// One layer's values, `[block][slot][kv_dim]`.
    pub values: &'a [f16],
    pub blocks: &'a [u32],
    pub block_size: usize,
    /// Width of one position's keys or values (all KV heads).
    pub kv_dim: usize,
    /// The KV head's first element within that width.
    pub offset: usize,
    /// Positions visible to the queries (`0..positions`).
    pub positions: usize,
}

/// Reusable buffers of one attention worker.
#[derive(Debug, Default)]
pub struct AttentionScratch {
    /// Query-major: `positions` scores, then probabilities, per query.
    scores: Vec<f32>,
    halves: Vec<f16>,
    queries: Vec<f32>,
    /// Start of each visible position's value row, the head's offset included.
    rows: Vec<usize>,
    chunks: Vec<KeyChunk>,
    /// Indices of the chunks whose keys fill all [`SLOTS`] lanes.
    full: Vec<usize>,
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

/// Attention of the `queries.len() / head_dim` query heads in `queries` (f32, one after the
/// other), which share the KV head `kv`; writes each head's output to the matching
/// `head_dim` values of `out`.
pub fn attend(
    queries: &[f32],
    head_dim: usize,
    kv: KvHead<'_>,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    assert!(
        head_dim > 0 && queries.len().is_multiple_of(head_dim) && out.len() == queries.len(),
        "attend: {} query values, {} outputs, head_dim {head_dim}",
        queries.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(f16c) = F16c::detect()
        && std::arch::is_x86_feature_detected!("fma")
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F, FMA and F16C were detected just above, the requirements.
            unsafe { attend_avx512(f16c, queries, head_dim, kv, out, scratch) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2, FMA and F16C were detected just above, the requirements.
            unsafe { attend_avx2(f16c, queries, head_dim, kv, out, scratch) };
            return;
        }
    }
    attend_portable::<32, 4, 3, 2, _>(Portable, queries, head_dim, kv, out, scratch);
}

/// Widens 16 f16 values to f32 (exactly: every f16 is an f32).
trait Widen: Copy {
    fn widen16(self, h: &[f16; SLOTS]) -> [f32; SLOTS];
}

/// One value at a time, on any CPU.
#[derive(Clone, Copy)]
struct Portable;

impl Widen for Portable {
    #[inline(always)]
    fn widen16(self, h: &[f16; SLOTS]) -> [f32; SLOTS] {
        h.map(f16::to_f32)
    }
}

/// F16C's conversion instruction; a value exists only once the CPU is known to have it.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F16c(());

#[cfg(target_arch = "x86_64")]
impl F16c {
    fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("f16c").then_some(F16c(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Widen for F16c {
    #[inline(always)]
    fn widen16(self, h: &[f16; SLOTS]) -> [f32; SLOTS] {
        use std::arch::x86_64::{__m128i, __m256, _mm_loadu_si128, _mm256_cvtph_ps};
        let p = h.as_ptr().cast::<__m128i>();
        // SAFETY: `self` proves the CPU has F16C (and the AVX it implies); the two unaligned
        // 16-byte loads cover exactly the 16 halves of `h`.
        unsafe {
            let lo = _mm256_cvtph_ps(_mm_loadu_si128(p));
            let hi = _mm256_cvtph_ps(_mm_loadu_si128(p.add(1)));
            std::mem::transmute::<[__m256; 2], [f32; SLOTS]>([lo, hi])
        }
    }
}

/// `W` halves widened, 16 at a time when `W` allows.
#[inline(always)]
fn widen<C: Widen, const W: usize>(c: C, h: &[f16]) -> [f32; W] {
    let mut out = [0.0f32; W];
    if W.is_multiple_of(SLOTS) {
        for (o, i) in out.chunks_exact_mut(SLOTS).zip(h.chunks_exact(SLOTS)) {
            o.copy_from_slice(&c.widen16(i.try_into().expect("SLOTS halves")));
        }
    } else {
        for (o, &i) in out.iter_mut().zip(h) {
            *o = i.to_f32();
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma,f16c")]
fn attend_avx512(
    f16c: F16c,
    queries: &[f32],
    head_dim: usize,
    kv: KvHead<'_>,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    // Values: 3 queries x 64 columns, 12 of the 32 vector registers accumulate; scores: up to
    // 3 queries x 4 chunks.
    attend_portable::<64, 4, 4, 4, _>(f16c, queries, head_dim, kv, out, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn attend_avx2(
    f16c: F16c,
    queries: &[f32],
    head_dim: usize,
    kv: KvHead<'_>,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    // Values: 3 queries x 32 columns, 12 of the 16 vector registers accumulate; scores: 4, 3
    // or 2 chunks (two registers each) for 1, 2 or 3 queries.
    attend_portable::<32, 4, 3, 2, _>(f16c, queries, head_dim, kv, out, scratch);
}

/// The one body of every build; `W` is the number of output columns a sweep over the values
/// accumulates per query, `K1`..`K3` the chunks scored at once for 1..3 queries (they change
/// the registers used, not the result).
#[inline(always)]
fn attend_portable<const W: usize, const K1: usize, const K2: usize, const K3: usize, C: Widen>(
    wide: C,
    queries: &[f32],
    head_dim: usize,
    kv: KvHead<'_>,
    out: &mut [f32],
    scratch: &mut AttentionScratch,
) {
    let count = queries.len() / head_dim;
    let n = kv.positions;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let AttentionScratch {
        scores,
        halves,
        queries: q,
        rows,
        chunks,
        full,
    } = scratch;
    q.clear();
    q.extend_from_slice(queries);
    round_to_f16(q, halves);
    layout(&kv, rows, chunks);

    scores.clear();
    scores.resize(count * n, 0.0);
    full.clear();
    for (index, c) in chunks.iter().enumerate() {
        if c.len == SLOTS {
            full.push(index);
        } else {
            // A block narrower than SLOTS: lanes past it are other dimensions' keys.
            for query in 0..count {
                let qh = &q[query * head_dim..(query + 1) * head_dim];
                one_chunk_scores(qh, &kv, c, scale, &mut scores[query * n..(query + 1) * n]);
            }
        }
    }
    // Queries in the same batches as the value sweeps below; each batch's scores are summed
    // for a few chunks at once, every key vector widened once for all the batch's queries.
    let scoring = Scoring {
        q,
        head_dim,
        keys: kv.keys,
        block_size: kv.block_size,
        chunks,
        scale,
        n,
    };
    for (first, size) in query_batches(count) {
        match size {
            3 => scoring.run::<3, K3, C>(wide, first, full, scores),
            2 => scoring.run::<2, K2, C>(wide, first, full, scores),
            _ => scoring.run::<1, K1, C>(wide, first, full, scores),
        }
    }

    for sc in scores.chunks_exact_mut(n.max(1)).take(count) {
        let max = max_f32(sc);
        for s in sc.iter_mut() {
            *s = agentc_kernels::exp_f32(*s - max);
        }
        let inverse = (1.0 / sum_f64(sc)) as f32;
        for s in sc.iter_mut() {
            *s *= inverse;
        }
    }
    round_to_f16(scores, halves);

    for (first, size) in query_batches(count) {
        let weights = &scores[first * n..(first + size) * n];
        let outs = &mut out[first * head_dim..(first + size) * head_dim];
        match size {
            3 => weigh_values::<3, W, C>(wide, rows, weights, n, kv.values, head_dim, outs),
            2 => weigh_values::<2, W, C>(wide, rows, weights, n, kv.values, head_dim, outs),
            _ => weigh_values::<1, W, C>(wide, rows, weights, n, kv.values, head_dim, outs),
        }
    }
}

/// `count` queries in batches of at most [`QUERIES_AT_ONCE`], as even as possible: (first
/// query, batch size) each.
fn query_batches(count: usize) -> impl Iterator<Item = (usize, usize)> {
    let batches = count.div_ceil(QUERIES_AT_ONCE);
    (0..batches).scan(0, move |first, b| {
        let size = (count - *first).div_ceil(batches - b).min(QUERIES_AT_ONCE);
        let batch = (*first, size);
        *first += size;
        Some(batch)
    })
}

/// What scoring a batch of queries against the full key chunks needs.
struct Scoring<'a> {
    /// All the call's queries (f16-rounded), `head_dim` values each.
    q: &'a [f32],
    head_dim: usize,
    keys: &'a [f16],
    block_size: usize,
    chunks: &'a [KeyChunk],
    scale: f32,
    /// Scores per query (the stride of `scores`).
    n: usize,
}

impl Scoring<'_> {
    /// Scores of queries `first..first + Q` against the chunks `full` (indices into
    /// `chunks`, each [`SLOTS`] slots wide), `K` chunks at a time (the last group padded with
    /// copies of its last chunk, recomputed and stored again).
    #[inline(always)]
    fn run<const Q: usize, const K: usize, C: Widen>(
        &self,
        wide: C,
        first: usize,
        full: &[usize],
        scores: &mut [f32],
    ) {
        let hd = self.head_dim;
        let qs: [&[f32]; Q] = std::array::from_fn(|i| &self.q[(first + i) * hd..][..hd]);
        for group in full.chunks(K) {
            let picked: [usize; K] = std::array::from_fn(|i| group[i.min(group.len() - 1)]);
            let ats = picked.map(|index| self.chunks[index].at);
            let sums = chunk_scores::<Q, K, C>(wide, &qs, self.keys, self.block_size, &ats);
            for (i, per_chunk) in sums.iter().enumerate() {
                let row = &mut scores[(first + i) * self.n..(first + i + 1) * self.n];
                for (&index, sums) in picked.iter().zip(per_chunk) {
                    store_scores(&self.chunks[index], sums, self.scale, row);
                }
            }
        }
    }
}

/// Each of `Q` queries' outputs (`head_dim` values each in `out`): the values weighted by the
/// query's `n` probabilities in `weights` (query-major), `W` columns per sweep.
#[inline(always)]
fn weigh_values<const Q: usize, const W: usize, C: Widen>(
    wide: C,
    rows: &[usize],
    weights: &[f32],
    n: usize,
    values: &[f16],
    head_dim: usize,
    out: &mut [f32],
) {
    let mut col = 0;
    while col < head_dim {
        let rest = head_dim - col;
        col += if rest >= W {
            weighted_columns::<Q, W, C>(wide, rows, weights, n, values, col, head_dim, out)
        } else if rest >= SLOTS {
            weighted_columns::<Q, SLOTS, C>(wide, rows, weights, n, values, col, head_dim, out)
        } else {
            weighted_columns::<Q, 1, C>(wide, rows, weights, n, values, col, head_dim, out)
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

/// Running sums over the head dimension of `Q` queries against `K` full chunks (keys from
/// `ats[k]` on): `[query][chunk]` lane `s` is the query dotted with the key of the chunk's slot
/// `s`. Each chunk's keys of one dimension are widened once for all `Q` queries, and the
/// `Q * K` sums are independent chains.
#[inline(always)]
fn chunk_scores<const Q: usize, const K: usize, C: Widen>(
    wide: C,
    qs: &[&[f32]; Q],
    keys: &[f16],
    block_size: usize,
    ats: &[usize; K],
) -> [[[f32; SLOTS]; K]; Q] {
    let head_dim = qs.first().map_or(0, |q| q.len());
    let mut sums = [[[0.0f32; SLOTS]; K]; Q];
    // Each chunk's keys from its first one on, checked once here.
    let span = (head_dim.max(1) - 1) * block_size + SLOTS;
    let ks = ats.map(|at| &keys[at..][..span]);
    for d in 0..head_dim {
        let at = d * block_size;
        let k: [[f32; SLOTS]; K] =
            std::array::from_fn(|c| wide.widen16(ks[c][at..at + SLOTS].try_into().expect("keys")));
        for (sum, qh) in sums.iter_mut().zip(qs) {
            let qd = qh[d];
            for (sum, k) in sum.iter_mut().zip(&k) {
                for s in 0..SLOTS {
                    sum[s] = qd.mul_add(k[s], sum[s]);
                }
            }
        }
    }
    sums
}

/// Scores of one chunk narrower than [`SLOTS`], in the same order as [`chunk_scores`].
#[inline(always)]
fn one_chunk_scores(q: &[f32], kv: &KvHead<'_>, c: &KeyChunk, scale: f32, scores: &mut [f32]) {
    let visible = c.len.min(kv.positions - c.first);
    let mut sums = [0.0f32; SLOTS];
    for (d, &qd) in q.iter().enumerate() {
        let k = &kv.keys[c.at + d * kv.block_size..][..visible];
        for (sum, &k) in sums.iter_mut().zip(k) {
            *sum = qd.mul_add(k.to_f32(), *sum);
        }
    }
    store_scores(c, &sums, scale, scores);
}

/// Stores the chunk's visible lanes (slots past the last position hold other keys or none).
#[inline(always)]
fn store_scores(c: &KeyChunk, sums: &[f32; SLOTS], scale: f32, scores: &mut [f32]) {
    let visible = c.len.min(scores.len() - c.first);
    for (dst, &sum) in scores[c.first..c.first + visible].iter_mut().zip(sums) {
        *dst = sum * scale;
    }
}

/// For each of `Q` queries: `out[query * head_dim + col + j]` = the sum over positions `p`, in
/// order, of `weights[query * n + p] * values[rows[p] + col + j]` for `j < W`, from 0 with
/// one fused multiply-add per term; returns `W`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn weighted_columns<const Q: usize, const W: usize, C: Widen>(
    wide: C,
    rows: &[usize],
    weights: &[f32],
    n: usize,
    values: &[f16],
    col: usize,
    head_dim: usize,
    out: &mut [f32],
) -> usize {
    let mut sums = [[0.0f32; W]; Q];
    for (p, &at) in rows.iter().enumerate() {
        let v: [f32; W] = widen(wide, &values[at + col..][..W]);
        for (query, sum) in sums.iter_mut().enumerate() {
            let w = weights[query * n + p];
            for j in 0..W {
                sum[j] = w.mul_add(v[j], sum[j]);
            }
        }
    }
    for (query, sum) in sums.iter().enumerate() {
        out[query * head_dim + col..][..W].copy_from_slice(sum);
    }
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
        keys: Vec<f16>,
        values: Vec<f16>,
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
        let mut keys = vec![f16::ZERO; total * bs * kv_dim];
        let mut values = vec![f16::ZERO; total * bs * kv_dim];
        let mut seed = seed;
        for p in 0..positions.min(nblocks * bs) {
            let (b, s) = (order[p / bs] as usize, p % bs);
            for d in 0..kv_dim {
                keys[b * bs * kv_dim + d * bs + s] = f16::from_f32(lcg(&mut seed));
                values[(b * bs + s) * kv_dim + d] = f16::from_f32(lcg(&mut seed));
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
            f64::from(st.keys[b * bs * kv_dim + (offset + d) * bs + s].to_f32())
        };
        let value = |p: usize, d: usize| {
            let (b, s) = (st.blocks[p / bs] as usize, p % bs);
            f64::from(st.values[(b * bs + s) * kv_dim + offset + d].to_f32())
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
        attend(q, q.len(), kv, &mut out, &mut AttentionScratch::default());
        out
    }

    #[test]
    fn one_position_returns_its_value() {
        let st = Store {
            keys: vec![f16::from_f32(0.5); 2],
            values: vec![f16::from_f32(2.0), f16::from_f32(-1.0)],
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
        let scratch = &mut AttentionScratch::default();
        attend_portable::<32, 4, 3, 2, _>(Portable, &q, hd, kv, &mut portable, scratch);
        assert_eq!(from_a, portable);
        #[cfg(target_arch = "x86_64")]
        if let Some(f16c) = F16c::detect()
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            let mut avx2 = vec![0.0; hd];
            let scratch = &mut AttentionScratch::default();
            // SAFETY: AVX2, FMA and F16C were detected just above.
            unsafe { attend_avx2(f16c, &q, hd, kv, &mut avx2, scratch) };
            assert_eq!(from_a, avx2);
        }
    }

    #[test]
    fn a_group_of_queries_gives_each_query_its_own_result_bit_for_bit() {
        let (kv_dim, hd) = (2 * 64, 64);
        for bs in [8, 16] {
            let order: Vec<u32> = (0..(100 / bs + 1) as u32).collect();
            let st = store(kv_dim, bs, 100, &order, 5);
            let mut seed = 13;
            let queries: Vec<f32> = (0..8 * hd).map(|_| lcg(&mut seed)).collect();
            for n in [1, 16, 40, 100] {
                let alone: Vec<f32> = queries
                    .chunks(hd)
                    .flat_map(|q| run(q, &st, bs, kv_dim, 64, n))
                    .collect();
                for count in 1..=8 {
                    let group = &queries[..count * hd];
                    let mut out = vec![f32::NAN; group.len()];
                    let kv = KvHead {
                        keys: &st.keys,
                        values: &st.values,
                        blocks: &st.blocks,
                        block_size: bs,
                        kv_dim,
                        offset: 64,
                        positions: n,
                    };
                    attend(group, hd, kv, &mut out, &mut AttentionScratch::default());
                    assert_eq!(out, alone[..count * hd], "bs {bs} n {n} group of {count}");
                }
            }
        }
    }
}

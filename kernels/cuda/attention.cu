// Attention of query positions over a paged KV cache (the CPU version is
// kernels/src/attention.rs, same layout and semantics).
//
// K and V pools are [num_blocks, block_size, n_kv_heads, head_dim] f32. Query `s` (blockIdx.y)
// has `lens[s]` tokens named by `tables + s * table_stride`: token t is slot t % block_size of
// block table[t / block_size]. Query head h (blockIdx.x) reads KV head h / (n_heads /
// n_kv_heads). q and out are [n_queries, n_heads, head_dim].
//
// One block of ATTN_WARPS warps per (head, query). Warp w takes tokens w, w + ATTN_WARPS, ...
// with an online softmax (running max m, running sum l, running P.V in registers: lane holds
// elements lane + 32 c of the head, c < ATTN_MAX_HEAD_DIM / 32); the warps' partial results are
// then merged through shared memory. No length limit, no score buffer.

#define ATTN_CHUNKS (ATTN_MAX_HEAD_DIM / 32)

extern "C" __global__ void attention_paged_f32(
    const float* __restrict__ q, const float* __restrict__ k_pool,
    const float* __restrict__ v_pool, const unsigned int* __restrict__ tables,
    const unsigned int* __restrict__ lens, float* __restrict__ out, unsigned int table_stride,
    unsigned int n_heads, unsigned int n_kv_heads, unsigned int head_dim,
    unsigned int block_size, float scale) {
    __shared__ float part_m[ATTN_WARPS];
    __shared__ float part_l[ATTN_WARPS];
    __shared__ float part_o[ATTN_WARPS * ATTN_MAX_HEAD_DIM];

    const unsigned int head = blockIdx.x;
    const unsigned int seq = blockIdx.y;
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    const unsigned int kvh = head / (n_heads / n_kv_heads);
    const unsigned int len = lens[seq];
    const unsigned int* table = tables + (size_t)seq * table_stride;
    const float* qh = q + ((size_t)seq * n_heads + head) * head_dim;
    const size_t token_stride = (size_t)n_kv_heads * head_dim;

    float qr[ATTN_CHUNKS];
    float acc[ATTN_CHUNKS];
    for (unsigned int c = 0; c < ATTN_CHUNKS; ++c) {
        const unsigned int e = lane + 32u * c;
        qr[c] = e < head_dim ? qh[e] : 0.0f;
        acc[c] = 0.0f;
    }
    float m = NEG_INF;
    float l = 0.0f;
    for (unsigned int t = warp; t < len; t += ATTN_WARPS) {
        const unsigned int block = table[t / block_size];
        const unsigned int slot = t - (t / block_size) * block_size;
        const size_t at = ((size_t)block * block_size + slot) * token_stride + (size_t)kvh * head_dim;
        const float* kr = k_pool + at;
        const float* vr = v_pool + at;
        float dot = 0.0f;
        for (unsigned int c = 0; c < ATTN_CHUNKS; ++c) {
            const unsigned int e = lane + 32u * c;
            if (e < head_dim) {
                dot += qr[c] * kr[e];
            }
        }
        const float s = warp_sum(dot) * scale;
        const float m_new = fmaxf(m, s);
        const float keep = expf(m - m_new);  // 0 on the warp's first token (m = -inf)
        const float p = expf(s - m_new);
        l = l * keep + p;
        for (unsigned int c = 0; c < ATTN_CHUNKS; ++c) {
            const unsigned int e = lane + 32u * c;
            acc[c] = acc[c] * keep + (e < head_dim ? p * vr[e] : 0.0f);
        }
        m = m_new;
    }

    if (lane == 0u) {
        part_m[warp] = m;
        part_l[warp] = l;
    }
    for (unsigned int c = 0; c < ATTN_CHUNKS; ++c) {
        const unsigned int e = lane + 32u * c;
        if (e < head_dim) {
            part_o[warp * ATTN_MAX_HEAD_DIM + e] = acc[c];
        }
    }
    __syncthreads();

    // Merge: M = max m_w, L = sum l_w e^(m_w - M), out = sum o_w e^(m_w - M) / L. A warp that saw
    // no token has m_w = -inf and weight 0; len >= 1 (checked by the caller) makes M finite.
    float big = NEG_INF;
    for (unsigned int w = 0; w < ATTN_WARPS; ++w) {
        big = fmaxf(big, part_m[w]);
    }
    float total = 0.0f;
    for (unsigned int w = 0; w < ATTN_WARPS; ++w) {
        total += part_l[w] * expf(part_m[w] - big);
    }
    const float inv = 1.0f / total;
    float* oh = out + ((size_t)seq * n_heads + head) * head_dim;
    for (unsigned int e = threadIdx.x; e < head_dim; e += blockDim.x) {
        float o = 0.0f;
        for (unsigned int w = 0; w < ATTN_WARPS; ++w) {
            o += part_o[w * ATTN_MAX_HEAD_DIM + e] * expf(part_m[w] - big);
        }
        oh[e] = o * inv;
    }
}

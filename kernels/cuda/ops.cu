// The f32 kernels of a llama forward pass (the CPU versions are in kernels/src/ops.rs) and a
// plain copy used to measure device memory bandwidth.

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, one block (ROW_THREADS threads) per row of
// d values.
extern "C" __global__ void rms_norm_f32(const float* __restrict__ x,
                                        const float* __restrict__ weight,
                                        float* __restrict__ out, unsigned int d, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (size_t)blockIdx.x * d;
    float* orow = out + (size_t)blockIdx.x * d;
    float ss = 0.0f;
    for (unsigned int i = threadIdx.x; i < d; i += blockDim.x) {
        ss += xr[i] * xr[i];
    }
    ss = block_sum(ss, scratch);
    const float scale = 1.0f / sqrtf(ss / (float)d + eps);
    for (unsigned int i = threadIdx.x; i < d; i += blockDim.x) {
        orow[i] = xr[i] * scale * weight[i];
    }
}

// SwiGLU: out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)); grid-stride over len.
extern "C" __global__ void silu_mul_f32(const float* __restrict__ gate,
                                        const float* __restrict__ up, float* __restrict__ out,
                                        unsigned int len) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < len;
         i += gridDim.x * blockDim.x) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// In-place softmax of each row of `len` values (one block per row), the row's maximum
// subtracted first. A row of only -inf gives NaN here (the CPU kernel reports it as an error).
extern "C" __global__ void softmax_f32(float* __restrict__ x, unsigned int len) {
    __shared__ float scratch[32];
    float* xr = x + (size_t)blockIdx.x * len;
    float m = NEG_INF;
    for (unsigned int i = threadIdx.x; i < len; i += blockDim.x) {
        m = fmaxf(m, xr[i]);
    }
    m = block_max(m, scratch);
    float s = 0.0f;
    for (unsigned int i = threadIdx.x; i < len; i += blockDim.x) {
        const float e = expf(xr[i] - m);
        xr[i] = e;
        s += e;
    }
    s = block_sum(s, scratch);
    const float inv = 1.0f / s;
    for (unsigned int i = threadIdx.x; i < len; i += blockDim.x) {
        xr[i] *= inv;
    }
}

// Rotary position embedding in place. x is [n_tokens, n_heads, head_dim]; one thread per
// rotated pair (grid-stride over n_tokens * n_heads * head_dim / 2). Pair i of a head of the
// token at position p turns by p * theta_base^(-2i / head_dim). neox == 0: pairs (2i, 2i + 1)
// (llama.cpp "normal"); neox != 0: pairs (i, i + head_dim / 2).
extern "C" __global__ void rope_f32(float* __restrict__ x, const unsigned int* __restrict__ positions,
                                    unsigned int n_tokens, unsigned int n_heads,
                                    unsigned int head_dim, float theta_base, unsigned int neox) {
    const unsigned int half = head_dim / 2u;
    const unsigned int pairs_per_token = n_heads * half;
    const unsigned int total = n_tokens * pairs_per_token;
    for (unsigned int p = blockIdx.x * blockDim.x + threadIdx.x; p < total;
         p += gridDim.x * blockDim.x) {
        const unsigned int token = p / pairs_per_token;
        const unsigned int rem = p - token * pairs_per_token;
        const unsigned int head = rem / half;
        const unsigned int i = rem - head * half;
        const float inv_freq = powf(theta_base, -2.0f * (float)i / (float)head_dim);
        const float angle = (float)positions[token] * inv_freq;
        float s, c;
        sincosf(angle, &s, &c);
        float* h = x + ((size_t)token * n_heads + head) * head_dim;
        const unsigned int a = neox ? i : 2u * i;
        const unsigned int b = neox ? i + half : 2u * i + 1u;
        const float x0 = h[a];
        const float x1 = h[b];
        h[a] = x0 * c - x1 * s;
        h[b] = x0 * s + x1 * c;
    }
}

// dst[i] = src[i], grid-stride; `agentc profile` times it for the device's memory bandwidth.
extern "C" __global__ void copy_f32(const float* __restrict__ src, float* __restrict__ dst,
                                    unsigned int len) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < len;
         i += gridDim.x * blockDim.x) {
        dst[i] = src[i];
    }
}

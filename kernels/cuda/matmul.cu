// Dequantizing matmul: y (n x rows) = x (n x cols) . W^T, W in raw ggml row-major blocks,
// i.e. y[j * rows + r] = sum_i W[r][i] * x[j * cols + i], activations and output f32.
//
// One warp per weight row, MATMUL_WARPS rows per block (blockIdx.x), tokens over blockIdx.y
// (strided by gridDim.y when n exceeds the grid). For the block formats, lane l handles element
// l of every 32-element block, so the activation loads are coalesced; the warp then sums its
// lanes. A simple, correct baseline: it re-reads the row once per token (from L1/L2).
//
// Block layouts (ggml-common.h): Q4_0 {f16 d; u8 qs[16]} (q - 8) * d; Q4_1 {f16 d, m; u8
// qs[16]} q * d + m; Q8_0 {f16 d; i8 qs[32]} q * d. Element l < 16 of a 4-bit block is the low
// nibble of qs[l], element l + 16 its high nibble.

// Value of element `lane` (0..31) of the Q4_0 block at `blk`.
__device__ __forceinline__ float q4_0_value(const unsigned char* blk, unsigned int lane) {
    const float d = f16_to_f32(load_u16(blk));
    const unsigned int q = blk[2 + (lane & 15u)];
    const int v = (int)(lane < 16u ? (q & 0x0fu) : (q >> 4));
    return (float)(v - 8) * d;
}

__device__ __forceinline__ float q4_1_value(const unsigned char* blk, unsigned int lane) {
    const float d = f16_to_f32(load_u16(blk));
    const float m = f16_to_f32(load_u16(blk + 2));
    const unsigned int q = blk[4 + (lane & 15u)];
    const unsigned int v = lane < 16u ? (q & 0x0fu) : (q >> 4);
    return (float)v * d + m;
}

__device__ __forceinline__ float q8_0_value(const unsigned char* blk, unsigned int lane) {
    const float d = f16_to_f32(load_u16(blk));
    const int q = (int)(signed char)blk[2 + lane];
    return (float)q * d;
}

// The body shared by the three block formats: BLOCK_BYTES per 32 elements, VALUE(blk, lane).
#define MATMUL_BLOCKS(NAME, BLOCK_BYTES, VALUE)                                                \
    extern "C" __global__ void NAME(const unsigned char* __restrict__ w,                      \
                                    const float* __restrict__ x, float* __restrict__ y,       \
                                    unsigned int rows, unsigned int cols, unsigned int n) {   \
        const unsigned int lane = threadIdx.x & 31u;                                          \
        const unsigned int row = blockIdx.x * MATMUL_WARPS + (threadIdx.x >> 5);              \
        if (row >= rows) {                                                                    \
            return; /* the whole warp: row is the same for its 32 lanes */                    \
        }                                                                                     \
        const unsigned int nb = cols / 32u;                                                   \
        const unsigned char* wr = w + (size_t)row * nb * (BLOCK_BYTES);                       \
        for (unsigned int j = blockIdx.y; j < n; j += gridDim.y) {                            \
            const float* xr = x + (size_t)j * cols;                                           \
            float acc = 0.0f;                                                                 \
            for (unsigned int b = 0; b < nb; ++b) {                                           \
                acc += VALUE(wr + (size_t)b * (BLOCK_BYTES), lane) * xr[b * 32u + lane];      \
            }                                                                                 \
            acc = warp_sum(acc);                                                              \
            if (lane == 0u) {                                                                 \
                y[(size_t)j * rows + row] = acc;                                              \
            }                                                                                 \
        }                                                                                     \
    }

MATMUL_BLOCKS(matmul_q4_0, 18u, q4_0_value)
MATMUL_BLOCKS(matmul_q4_1, 20u, q4_1_value)
MATMUL_BLOCKS(matmul_q8_0, 34u, q8_0_value)

// f16 weights: rows of `cols` halves (any cols); lane l handles elements l, l + 32, ...
extern "C" __global__ void matmul_f16(const unsigned short* __restrict__ w,
                                      const float* __restrict__ x, float* __restrict__ y,
                                      unsigned int rows, unsigned int cols, unsigned int n) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int row = blockIdx.x * MATMUL_WARPS + (threadIdx.x >> 5);
    if (row >= rows) {
        return;
    }
    const unsigned short* wr = w + (size_t)row * cols;
    for (unsigned int j = blockIdx.y; j < n; j += gridDim.y) {
        const float* xr = x + (size_t)j * cols;
        float acc = 0.0f;
        for (unsigned int i = lane; i < cols; i += 32u) {
            acc += f16_to_f32(wr[i]) * xr[i];
        }
        acc = warp_sum(acc);
        if (lane == 0u) {
            y[(size_t)j * rows + row] = acc;
        }
    }
}

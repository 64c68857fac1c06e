// Paged KV cache maintenance.

// Copies whole blocks inside one pool (K or V, [num_blocks, block_elems] f32): pair p
// (blockIdx.y, strided by gridDim.y) copies block pairs[2p] to block pairs[2p + 1]. The caller
// guarantees that no destination is also a source or another pair's destination, so the
// copies are independent.
extern "C" __global__ void kv_block_copy_f32(float* __restrict__ pool,
                                             const unsigned int* __restrict__ pairs,
                                             unsigned int n_pairs, unsigned int block_elems) {
    for (unsigned int p = blockIdx.y; p < n_pairs; p += gridDim.y) {
        const float* src = pool + (size_t)pairs[2u * p] * block_elems;
        float* dst = pool + (size_t)pairs[2u * p + 1u] * block_elems;
        for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < block_elems;
             i += gridDim.x * blockDim.x) {
            dst[i] = src[i];
        }
    }
}

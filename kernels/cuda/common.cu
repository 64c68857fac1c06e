// Helpers shared by every agentc CUDA module. NVRTC compiles each module as this file followed
// by the module's own source (there is no #include: NVRTC gets no CUDA headers from us), with
// the launch constants passed as -D options from `kernels/src/cuda_source.rs`.
//
// Conventions: every reduction block has a multiple of 32 threads; a warp that takes part in a
// shuffle has all 32 lanes active (kernels return early per warp, never per lane, before one).

#define FULL_MASK 0xffffffffu
// -inf without math.h (NVRTC defines no INFINITY macro of its own).
#define NEG_INF __uint_as_float(0xff800000u)

// IEEE half (binary16) bits to float, without cuda_fp16.h: normal, subnormal, zero, inf, NaN.
__device__ __forceinline__ float f16_to_f32(unsigned int h) {
    const unsigned int sign = (h & 0x8000u) << 16;
    const unsigned int exp = (h >> 10) & 0x1fu;
    const unsigned int mant = h & 0x3ffu;
    if (exp == 0u) {
        // Zero or subnormal: mant * 2^-24, exact in f32.
        const float f = (float)mant * 5.9604644775390625e-8f;
        return sign ? -f : f;
    }
    if (exp == 31u) {
        return __uint_as_float(sign | 0x7f800000u | (mant << 13));
    }
    return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Little-endian u16 at any byte address (ggml blocks are only 2-byte aligned, and a Q4_0 row of
// 18-byte blocks can start anywhere even).
__device__ __forceinline__ unsigned int load_u16(const unsigned char* p) {
    return (unsigned int)p[0] | ((unsigned int)p[1] << 8);
}

// Sum over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(FULL_MASK, v, offset);
    }
    return v;
}

// Maximum over the 32 lanes of a warp; every lane gets the result.
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the
// result. `scratch` is 32 floats of shared memory; it may be reused right after the call.
__device__ float block_sum(float v, float* scratch) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    const unsigned int warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // a previous call's readers are done with scratch
    if (lane == 0u) {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0u) {
        v = lane < warps ? scratch[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0u) {
            scratch[0] = v;
        }
    }
    __syncthreads();
    return scratch[0];
}

// Maximum over the whole block; same contract as block_sum.
__device__ float block_max(float v, float* scratch) {
    const unsigned int lane = threadIdx.x & 31u;
    const unsigned int warp = threadIdx.x >> 5;
    const unsigned int warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0u) {
        scratch[warp] = v;
    }
    __syncthreads();
    if (warp == 0u) {
        v = lane < warps ? scratch[lane] : NEG_INF;
        v = warp_max(v);
        if (lane == 0u) {
            scratch[0] = v;
        }
    }
    __syncthreads();
    return scratch[0];
}

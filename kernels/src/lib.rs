//! CPU kernels for the agentc engine: ggml block formats, quantized matmul, and the f32 kernels
//! of a llama forward pass. Every kernel has a portable reference that is the test oracle; the
//! fast paths are chosen once per [`KernelContext`] from the CPU's features.
//!
//! How the engine uses it (the full story is in `docs/kernels.md`):
//!
//! ```
//! use agentc_kernels::*;
//! # fn main() -> agentc_kernels::Result<()> {
//! // Once, at start-up: detect the CPU, start 2 worker threads.
//! let ctx = KernelContext::new(2)?;
//! // Once, at model load: repack each GGUF weight matrix (here a made-up 64 x 32 Q4_1 one).
//! let (rows, cols) = (64, 32);
//! let w_f32: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.1).sin()).collect();
//! let bytes = quantize_matrix(GgmlType::Q4_1, &w_f32, rows, cols)?;
//! let w = PackedMatrix::pack(&QMatrix::new(GgmlType::Q4_1, rows, cols, &bytes)?)?;
//! // Per step: n activation rows in, n output rows out (y is n x rows).
//! let n = 3;
//! let x = vec![0.5f32; n * cols];
//! let mut y = vec![0.0f32; n * rows];
//! ctx.install(|| matmul(&w, &x, n, &mut y, &ctx))?;
//! # Ok(()) }
//! ```

pub mod activations;
pub mod attention;
/// CUDA kernels and devices. Without the `cuda` feature the same names exist, and opening a
/// device returns [`Error::NotCompiledWithCuda`].
#[cfg(feature = "cuda")]
pub mod cuda;
/// CUDA kernels and devices. Without the `cuda` feature the same names exist, and opening a
/// device returns [`Error::NotCompiledWithCuda`].
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;
pub mod cuda_launch;
pub mod cuda_source;
pub mod device;
pub mod error;
pub mod formats;
pub mod matmul;
pub mod ops;
mod pool;
mod simd;

pub use activations::Q8Activations;
pub use attention::{KvPool, attention_paged_f32};
pub use cuda::{CudaBuffer, CudaDevice, CudaKernels, CudaKvPool, CudaMatrix, CudaMemory};
pub use device::{Device, DeviceSpec};
pub use error::{Error, Result};
pub use formats::{
    GgmlType, QK, dequantize_row, dequantize_row_f16, dequantize_row_f32, dequantize_row_q4_0,
    dequantize_row_q4_1, dequantize_row_q8_0, dequantize_row_q8_1, quantize_matrix, quantize_row,
    quantize_row_f16, quantize_row_q4_0, quantize_row_q4_1, quantize_row_q8_0, quantize_row_q8_1,
};
pub use matmul::{
    Isa, KernelContext, PackedMatrix, QMatrix, ROW_GROUP, matmul, matmul_q8, matmul_ref,
};
pub use ops::{RopeMode, rms_norm_f32, rope_f32, silu_mul_f32, softmax_f32};
pub use simd::exp_f32;

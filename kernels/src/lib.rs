//! CPU kernels for the agentc engine: ggml block formats, quantized matmul, and the f32 kernels
//! of a llama forward pass. Every kernel has a portable reference that is the test oracle; the
//! fast paths are chosen once per [`KernelContext`] from the CPU's features.

pub mod activations;
pub mod attention;
pub mod error;
pub mod formats;
pub mod matmul;
pub mod ops;
mod simd;

pub use activations::Q8Activations;
pub use attention::{KvPool, attention_paged_f32};
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

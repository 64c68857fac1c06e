//! One function per CUDA kernel. Each checks shapes exactly as the CPU kernel of the same name
//! (same errors), then queues the kernel; every launch's `// SAFETY:` names the checks that
//! keep the kernel's indices inside its buffers.

use super::{CudaBuffer, CudaDevice, CudaKvPool, CudaMatrix, config, driver};
use crate::cuda_launch::{
    ATTN_MAX_HEAD_DIM, attention_dims, check_block_copies, elementwise_dims, index_arg,
    kv_block_copy_dims, matmul_dims, row_dims,
};
use crate::error::{Error, Result, check_len};
use crate::{GgmlType, RopeMode};

/// Shape checks of a matmul: `w` of type `ty`, `x` is `n x cols`, `y` is `n x rows`. Returns
/// `(rows, cols, n)` as kernel arguments.
fn matmul_shapes(
    op: &'static str,
    ty: GgmlType,
    w: &CudaMatrix,
    x: &CudaBuffer<f32>,
    n: usize,
    y: &CudaBuffer<f32>,
) -> Result<(u32, u32, u32)> {
    if w.ty != ty {
        return Err(Error::UnsupportedType {
            op,
            ty: w.ty.name(),
        });
    }
    check_len("activations", n * w.cols, x.len(), "elements")?;
    check_len("matmul output", n * w.rows, y.len(), "elements")?;
    Ok((
        index_arg("matmul rows", w.rows)?,
        index_arg("matmul cols", w.cols)?,
        index_arg("matmul tokens", n)?,
    ))
}

macro_rules! matmul_fn {
    ($(#[$doc:meta])* $fn_name:ident, $kernel:literal, $ty:expr) => {
        $(#[$doc])*
        pub fn $fn_name(
            dev: &CudaDevice,
            w: &CudaMatrix,
            x: &CudaBuffer<f32>,
            n: usize,
            y: &mut CudaBuffer<f32>,
        ) -> Result<()> {
            let (rows, cols, n32) = matmul_shapes($kernel, $ty, w, x, n, y)?;
            if n == 0 || w.rows == 0 {
                return Ok(());
            }
            let dims = matmul_dims(w.rows, n)?;
            // SAFETY: matmul.cu's parameters are (const u8* w, const float* x, float* y,
            // unsigned rows, cols, n). `w` holds rows x cols values of its type (checked by
            // `QMatrix::new` at upload), x holds n x cols and y n x rows floats (checked above);
            // the kernel reads row < rows, token < n, column < cols only.
            unsafe { launch!(dev, $kernel, dims, [&w.data.slice, &x.slice, &mut y.slice, &rows, &cols, &n32]) }
        }
    };
}

matmul_fn!(
    /// `y (n x rows) = x (n x cols) . W^T` for Q4_0 weights (dequantized on the fly).
    matmul_q4_0,
    "matmul_q4_0",
    GgmlType::Q4_0
);
matmul_fn!(
    /// `y (n x rows) = x (n x cols) . W^T` for Q4_1 weights.
    matmul_q4_1,
    "matmul_q4_1",
    GgmlType::Q4_1
);
matmul_fn!(
    /// `y (n x rows) = x (n x cols) . W^T` for Q8_0 weights.
    matmul_q8_0,
    "matmul_q8_0",
    GgmlType::Q8_0
);
matmul_fn!(
    /// `y (n x rows) = x (n x cols) . W^T` for f16 weights.
    matmul_f16,
    "matmul_f16",
    GgmlType::F16
);

/// The matmul for `w`'s type.
pub fn matmul(
    dev: &CudaDevice,
    w: &CudaMatrix,
    x: &CudaBuffer<f32>,
    n: usize,
    y: &mut CudaBuffer<f32>,
) -> Result<()> {
    match w.ty {
        GgmlType::Q4_0 => matmul_q4_0(dev, w, x, n, y),
        GgmlType::Q4_1 => matmul_q4_1(dev, w, x, n, y),
        GgmlType::Q8_0 => matmul_q8_0(dev, w, x, n, y),
        GgmlType::F16 => matmul_f16(dev, w, x, n, y),
        other => Err(Error::UnsupportedType {
            op: "CUDA matmul",
            ty: other.name(),
        }),
    }
}

/// `out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight` for each row of `weight.len()` values.
pub fn rms_norm_f32(
    dev: &CudaDevice,
    x: &CudaBuffer<f32>,
    weight: &CudaBuffer<f32>,
    eps: f32,
    out: &mut CudaBuffer<f32>,
) -> Result<()> {
    let d = weight.len();
    if d == 0 || !x.len().is_multiple_of(d) {
        return Err(Error::InvalidShape(format!(
            "rms_norm: {} values are not rows of {d}",
            x.len()
        )));
    }
    check_len("rms_norm output", x.len(), out.len(), "elements")?;
    let rows = x.len() / d;
    if rows == 0 {
        return Ok(());
    }
    let d32 = index_arg("rms_norm row", d)?;
    let dims = row_dims(rows)?;
    // SAFETY: ops.cu rms_norm_f32(const float* x, const float* weight, float* out, unsigned d,
    // float eps); block r reads and writes row r < rows of x and out (rows * d values each,
    // checked) and d weights.
    unsafe {
        launch!(
            dev,
            "rms_norm_f32",
            dims,
            [&x.slice, &weight.slice, &mut out.slice, &d32, &eps]
        )
    }
}

/// SwiGLU: `out[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul_f32(
    dev: &CudaDevice,
    gate: &CudaBuffer<f32>,
    up: &CudaBuffer<f32>,
    out: &mut CudaBuffer<f32>,
) -> Result<()> {
    check_len("silu_mul up", gate.len(), up.len(), "elements")?;
    check_len("silu_mul output", gate.len(), out.len(), "elements")?;
    if gate.is_empty() {
        return Ok(());
    }
    let len = index_arg("silu_mul", gate.len())?;
    let dims = elementwise_dims(gate.len())?;
    // SAFETY: ops.cu silu_mul_f32(const float* gate, const float* up, float* out, unsigned len);
    // all three hold len values (checked) and the kernel touches i < len only.
    unsafe {
        launch!(
            dev,
            "silu_mul_f32",
            dims,
            [&gate.slice, &up.slice, &mut out.slice, &len]
        )
    }
}

/// In-place softmax of each row of `row_len` values of `x` (the CPU kernel's one row is
/// `row_len = x.len()`). Unlike the CPU kernel, a row of only `-inf` is not detected; it
/// becomes NaN.
pub fn softmax_f32(dev: &CudaDevice, x: &mut CudaBuffer<f32>, row_len: usize) -> Result<()> {
    if x.is_empty() {
        return Ok(());
    }
    if row_len == 0 || !x.len().is_multiple_of(row_len) {
        return Err(Error::InvalidShape(format!(
            "softmax: {} values are not rows of {row_len}",
            x.len()
        )));
    }
    let len = index_arg("softmax row", row_len)?;
    let dims = row_dims(x.len() / row_len)?;
    // SAFETY: ops.cu softmax_f32(float* x, unsigned len); block r touches row r < rows of
    // `len` values, and x holds rows * len (checked).
    unsafe { launch!(dev, "softmax_f32", dims, [&mut x.slice, &len]) }
}

/// Rotary position embedding in place; `x` is `[positions.len(), n_heads, head_dim]`, as the
/// CPU `rope_f32`.
pub fn rope_f32(
    dev: &CudaDevice,
    x: &mut CudaBuffer<f32>,
    head_dim: usize,
    positions: &CudaBuffer<u32>,
    theta_base: f32,
    mode: RopeMode,
) -> Result<()> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::InvalidShape(format!(
            "rope: head_dim {head_dim} must be even and non-zero"
        )));
    }
    let n_tokens = positions.len();
    if n_tokens == 0 && x.is_empty() {
        return Ok(());
    }
    let per_token = x.len().checked_div(n_tokens).unwrap_or(0);
    if per_token == 0 || !per_token.is_multiple_of(head_dim) || per_token * n_tokens != x.len() {
        return Err(Error::InvalidShape(format!(
            "rope: {} values are not {n_tokens} tokens of whole heads of {head_dim}",
            x.len()
        )));
    }
    index_arg("rope", x.len())?;
    let dims = elementwise_dims(x.len() / 2)?;
    let (tokens, heads, hd) = (
        n_tokens as u32,
        (per_token / head_dim) as u32,
        head_dim as u32,
    );
    let neox = u32::from(mode == RopeMode::Neox);
    // SAFETY: ops.cu rope_f32(float* x, const unsigned* positions, unsigned n_tokens, n_heads,
    // head_dim, float theta_base, unsigned neox); x holds n_tokens * n_heads * head_dim values
    // and positions n_tokens (checked, all below 2^31); pair p < n_tokens * n_heads * head_dim
    // / 2 touches elements of its own head only.
    unsafe {
        launch!(
            dev,
            "rope_f32",
            dims,
            [
                &mut x.slice,
                &positions.slice,
                &tokens,
                &heads,
                &hd,
                &theta_base,
                &neox
            ]
        )
    }
}

/// `out[h] = softmax(scale * q[h] . K[0..len]) . V[0..len]` for each query head `h`, the
/// sequence's tokens named by `block_table` (same semantics and checks as the CPU
/// `attention_paged_f32`; GQA). The table is uploaded with the call.
pub fn attention_paged_f32(
    dev: &CudaDevice,
    q: &CudaBuffer<f32>,
    pool: &CudaKvPool,
    block_table: &[u32],
    len: usize,
    scale: f32,
    out: &mut CudaBuffer<f32>,
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
    if hd > ATTN_MAX_HEAD_DIM as usize {
        return Err(Error::InvalidShape(format!(
            "attention: head_dim {hd} is more than the CUDA kernel's {ATTN_MAX_HEAD_DIM}"
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
    let n_heads = q.len() / hd;
    let dims = attention_dims(n_heads, 1)?;
    let table = dev.upload(&block_table[..used])?;
    let lens = dev.upload(&[index_arg("attention length", len)?])?;
    let (stride, heads, kv_heads, hd32, bs) = (
        used as u32,
        n_heads as u32,
        pool.n_kv_heads as u32,
        hd as u32,
        index_arg("block size", pool.block_size)?,
    );
    // SAFETY: attention.cu attention_paged_f32(const float* q, k_pool, v_pool, const unsigned*
    // tables, lens, float* out, unsigned table_stride, n_heads, n_kv_heads, head_dim,
    // block_size, float scale). q and out hold n_heads * head_dim values, head_dim <=
    // ATTN_MAX_HEAD_DIM, n_heads is a multiple of n_kv_heads; the table holds the `used` blocks
    // that tokens 0..len need, every one < num_blocks (checked), so each K/V row read is inside
    // the pools.
    unsafe {
        launch!(
            dev,
            "attention_paged_f32",
            dims,
            [
                &q.slice,
                &pool.k.slice,
                &pool.v.slice,
                &table.slice,
                &lens.slice,
                &mut out.slice,
                &stride,
                &heads,
                &kv_heads,
                &hd32,
                &bs,
                &scale
            ]
        )
    }
}

/// Copies whole KV blocks, K and V: for each `(src, dst)`, block `dst` becomes a copy of block
/// `src` (copy-on-write of a shared prefix block). Destinations must be distinct and must not
/// be sources.
pub fn kv_block_copy_f32(
    dev: &CudaDevice,
    pool: &mut CudaKvPool,
    copies: &[(u32, u32)],
) -> Result<()> {
    check_block_copies(copies, pool.num_blocks)?;
    if copies.is_empty() {
        return Ok(());
    }
    let block_elems = pool.block_elems();
    let dims = kv_block_copy_dims(block_elems, copies.len())?;
    let flat: Vec<u32> = copies.iter().flat_map(|&(s, d)| [s, d]).collect();
    let pairs = dev.upload(&flat)?;
    let (n_pairs, elems) = (
        index_arg("block copies", copies.len())?,
        index_arg("block", block_elems)?,
    );
    for buf in [&mut pool.k, &mut pool.v] {
        // SAFETY: kv.cu kv_block_copy_f32(float* pool, const unsigned* pairs, unsigned n_pairs,
        // block_elems); pairs holds 2 * n_pairs block ids, all < num_blocks, and the pool holds
        // num_blocks * block_elems values (checked); destinations are distinct and no source
        // (checked), so no block is read and written by different pairs.
        unsafe {
            launch!(
                dev,
                "kv_block_copy_f32",
                dims,
                [&mut buf.slice, &pairs.slice, &n_pairs, &elems]
            )?;
        }
    }
    Ok(())
}

/// `dst = src` by a kernel (a device-to-device copy that `agentc profile` times for bandwidth).
pub fn copy_f32(dev: &CudaDevice, src: &CudaBuffer<f32>, dst: &mut CudaBuffer<f32>) -> Result<()> {
    check_len("copy destination", src.len(), dst.len(), "elements")?;
    if src.is_empty() {
        return Ok(());
    }
    let len = index_arg("copy", src.len())?;
    let dims = elementwise_dims(src.len())?;
    // SAFETY: ops.cu copy_f32(const float* src, float* dst, unsigned len); both hold len values.
    unsafe { launch!(dev, "copy_f32", dims, [&src.slice, &mut dst.slice, &len]) }
}

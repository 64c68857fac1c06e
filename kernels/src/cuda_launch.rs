//! Launch shapes of the CUDA kernels: grid and block sizes from tensor shapes, as plain
//! arithmetic compiled in every build (tested without a GPU). The constants here are passed to
//! NVRTC as `-D` options (`cuda_source.rs`), so the kernels index with the same values.

use crate::error::{Error, Result};

/// Threads per warp.
pub const WARP_SIZE: u32 = 32;
/// Weight rows per matmul block: one warp each.
pub const MATMUL_WARPS: u32 = 4;
/// Threads of the one-block-per-row kernels (RMS norm, softmax).
pub const ROW_THREADS: u32 = 256;
/// Threads per block of the element-wise kernels.
pub const ELEMENTWISE_THREADS: u32 = 256;
/// At most this many blocks for a grid-stride kernel; each thread then loops.
pub const MAX_ELEMENTWISE_BLOCKS: u32 = 65_535;
/// Warps per attention block (one block per query head and query).
pub const ATTN_WARPS: u32 = 4;
/// Largest head dimension of `attention_paged_f32` (each lane keeps `ATTN_MAX_HEAD_DIM / 32`
/// accumulators in registers).
pub const ATTN_MAX_HEAD_DIM: u32 = 256;
/// CUDA's limit on `gridDim.x`.
pub const MAX_GRID_X: u32 = i32::MAX as u32;
/// CUDA's limit on `gridDim.y` and `gridDim.z`.
pub const MAX_GRID_YZ: u32 = 65_535;
/// Largest element count a kernel indexes: kernels use 32-bit indices and a grid-stride step of
/// at most `MAX_ELEMENTWISE_BLOCKS * ELEMENTWISE_THREADS`, which must not wrap past `u32::MAX`.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

/// A kernel launch's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchDims {
    /// Blocks in x, y, z.
    pub grid: (u32, u32, u32),
    /// Threads per block in x, y, z.
    pub block: (u32, u32, u32),
    /// Dynamic shared memory per block in bytes.
    pub shared_bytes: u32,
}

impl LaunchDims {
    fn new(grid: (u32, u32, u32), threads: u32) -> LaunchDims {
        LaunchDims {
            grid,
            block: (threads, 1, 1),
            shared_bytes: 0,
        }
    }
}

/// `value` as a 32-bit kernel argument no larger than [`MAX_ELEMENTS`] (kernels index in u32).
pub fn index_arg(what: &str, value: usize) -> Result<u32> {
    if value > MAX_ELEMENTS {
        return Err(Error::InvalidShape(format!(
            "{what}: {value} is more than the {MAX_ELEMENTS} elements a CUDA kernel indexes"
        )));
    }
    Ok(value as u32)
}

fn nonzero(what: &str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::InvalidShape(format!(
            "{what}: a kernel launch needs at least one {what}"
        )));
    }
    Ok(())
}

/// Matmul of `rows` weight rows against `n` activation rows: `ceil(rows / MATMUL_WARPS)` blocks
/// in x, `min(n, MAX_GRID_YZ)` in y (the kernel strides over the rest of the tokens).
pub fn matmul_dims(rows: usize, n: usize) -> Result<LaunchDims> {
    nonzero("row", rows)?;
    nonzero("token", n)?;
    let blocks = rows.div_ceil(MATMUL_WARPS as usize);
    if blocks > MAX_GRID_X as usize {
        return Err(Error::InvalidShape(format!(
            "matmul: {rows} rows need more than {MAX_GRID_X} blocks"
        )));
    }
    let y = n.min(MAX_GRID_YZ as usize) as u32;
    Ok(LaunchDims::new(
        (blocks as u32, y, 1),
        MATMUL_WARPS * WARP_SIZE,
    ))
}

/// One block of [`ROW_THREADS`] per row (RMS norm, softmax).
pub fn row_dims(rows: usize) -> Result<LaunchDims> {
    nonzero("row", rows)?;
    if rows > MAX_GRID_X as usize {
        return Err(Error::InvalidShape(format!(
            "{rows} rows are more than the {MAX_GRID_X} blocks of a launch"
        )));
    }
    Ok(LaunchDims::new((rows as u32, 1, 1), ROW_THREADS))
}

/// A grid-stride launch over `len` items: enough blocks for one item per thread, at most
/// [`MAX_ELEMENTWISE_BLOCKS`].
pub fn elementwise_dims(len: usize) -> Result<LaunchDims> {
    nonzero("element", len)?;
    index_arg("elements", len)?;
    let blocks = len
        .div_ceil(ELEMENTWISE_THREADS as usize)
        .min(MAX_ELEMENTWISE_BLOCKS as usize);
    Ok(LaunchDims::new((blocks as u32, 1, 1), ELEMENTWISE_THREADS))
}

/// Paged attention: one block of [`ATTN_WARPS`] warps per query head (x) and query (y).
pub fn attention_dims(n_heads: usize, n_queries: usize) -> Result<LaunchDims> {
    nonzero("head", n_heads)?;
    nonzero("query", n_queries)?;
    if n_heads > MAX_GRID_X as usize || n_queries > MAX_GRID_YZ as usize {
        return Err(Error::InvalidShape(format!(
            "attention: {n_heads} heads x {n_queries} queries do not fit one launch \
             (at most {MAX_GRID_YZ} queries)"
        )));
    }
    Ok(LaunchDims::new(
        (n_heads as u32, n_queries as u32, 1),
        ATTN_WARPS * WARP_SIZE,
    ))
}

/// KV block copies: a grid-stride over a block's `block_elems` values in x, the pairs in y (the
/// kernel strides over pairs beyond [`MAX_GRID_YZ`]).
pub fn kv_block_copy_dims(block_elems: usize, n_pairs: usize) -> Result<LaunchDims> {
    nonzero("pair", n_pairs)?;
    let mut dims = elementwise_dims(block_elems)?;
    dims.grid.1 = n_pairs.min(MAX_GRID_YZ as usize) as u32;
    Ok(dims)
}

/// Checks a list of KV block copies `(src, dst)` for a pool of `num_blocks` blocks: every id in
/// range, no destination twice, no destination that is also a source (the copies run in
/// parallel, so each must read blocks no other copy writes).
pub fn check_block_copies(copies: &[(u32, u32)], num_blocks: usize) -> Result<()> {
    let mut written = std::collections::HashSet::new();
    for (index, &(src, dst)) in copies.iter().enumerate() {
        for block in [src, dst] {
            if block as usize >= num_blocks {
                return Err(Error::BlockOutOfRange {
                    index,
                    block: block as usize,
                    num_blocks,
                });
            }
        }
        if !written.insert(dst) {
            return Err(Error::InvalidShape(format!(
                "kv block copy: block {dst} is the destination of two copies"
            )));
        }
    }
    if let Some(&(src, _)) = copies.iter().find(|(src, _)| written.contains(src)) {
        return Err(Error::InvalidShape(format!(
            "kv block copy: block {src} is both a source and a destination"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_covers_every_row_and_caps_tokens() {
        let d = matmul_dims(1, 1).unwrap();
        assert_eq!((d.grid, d.block), ((1, 1, 1), (128, 1, 1)));
        assert_eq!(matmul_dims(4, 3).unwrap().grid, (1, 3, 1));
        assert_eq!(matmul_dims(5, 3).unwrap().grid, (2, 3, 1));
        assert_eq!(matmul_dims(49_152, 8).unwrap().grid, (12_288, 8, 1));
        // More tokens than gridDim.y allows: the kernel strides over them.
        assert_eq!(matmul_dims(7, 70_000).unwrap().grid, (2, 65_535, 1));
        // Every row has a warp: blocks * warps >= rows > (blocks - 1) * warps.
        for rows in 1..200 {
            let b = matmul_dims(rows, 1).unwrap().grid.0 as usize;
            assert!(b * 4 >= rows && (b - 1) * 4 < rows, "{rows}");
        }
        assert!(matmul_dims(0, 1).is_err() && matmul_dims(1, 0).is_err());
    }

    #[test]
    fn elementwise_caps_blocks_and_rejects_what_32_bits_cannot_index() {
        assert_eq!(elementwise_dims(1).unwrap().grid, (1, 1, 1));
        assert_eq!(elementwise_dims(256).unwrap().grid, (1, 1, 1));
        assert_eq!(elementwise_dims(257).unwrap().grid, (2, 1, 1));
        assert_eq!(elementwise_dims(1 << 30).unwrap().grid, (65_535, 1, 1));
        assert!(elementwise_dims(0).is_err());
        assert!(elementwise_dims(MAX_ELEMENTS).is_ok());
        assert!(elementwise_dims(MAX_ELEMENTS + 1).is_err());
        // The largest index plus one grid-stride step stays below u32::MAX: no wrap-around.
        let step = (MAX_ELEMENTWISE_BLOCKS * ELEMENTWISE_THREADS) as u64;
        assert!(MAX_ELEMENTS as u64 + step < u32::MAX as u64);
        assert!(index_arg("x", 5).unwrap() == 5 && index_arg("x", usize::MAX).is_err());
    }

    #[test]
    fn rows_attention_and_copies() {
        assert_eq!(row_dims(3).unwrap().grid, (3, 1, 1));
        assert_eq!(row_dims(3).unwrap().block.0 % WARP_SIZE, 0);
        assert!(row_dims(0).is_err());
        let a = attention_dims(9, 2).unwrap();
        assert_eq!((a.grid, a.block), ((9, 2, 1), (128, 1, 1)));
        assert!(attention_dims(9, 70_000).is_err() && attention_dims(0, 1).is_err());
        let c = kv_block_copy_dims(16 * 3 * 64, 100_000).unwrap();
        assert_eq!(c.grid, (12, 65_535, 1));
        assert!(kv_block_copy_dims(64, 0).is_err() && kv_block_copy_dims(0, 1).is_err());
        assert!(check_block_copies(&[(0, 1), (0, 2), (3, 4)], 5).is_ok());
        assert!(check_block_copies(&[], 0).is_ok());
        assert_eq!(
            check_block_copies(&[(0, 1), (5, 2)], 5),
            Err(Error::BlockOutOfRange {
                index: 1,
                block: 5,
                num_blocks: 5
            })
        );
        assert!(check_block_copies(&[(0, 1), (2, 1)], 5).is_err());
        assert!(check_block_copies(&[(0, 1), (1, 2)], 5).is_err());
        assert!(check_block_copies(&[(1, 1)], 5).is_err());
        // The attention lane accumulators cover whole warps.
        assert_eq!(ATTN_MAX_HEAD_DIM % WARP_SIZE, 0);
    }
}

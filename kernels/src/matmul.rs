//! Quantized matrix multiplication: `Y (n x rows) = X (n x k) * W^T`, where `W` is `rows x k`
//! in a ggml type and `X` holds `n` rows of f32 activations (one per sequence or token).
//!
//! Two entry points:
//! - [`matmul_ref`] works on the raw ggml bytes ([`QMatrix`], e.g. straight from a GGUF mmap). It
//!   is the scalar oracle and supports every type, but it is slow.
//! - [`matmul`] works on a [`PackedMatrix`], a one-time repacking of the same bytes (same size)
//!   into groups of [`ROW_GROUP`] interleaved rows. With that layout one AVX-512 VNNI `dpbusd`
//!   multiplies 4 weights of 16 rows by 4 broadcast activations, the 16 per-row scales of a block
//!   load as one vector, and the result of a group is 16 finished outputs with no horizontal sums.
//!   Every expanded weight block is reused for all `n` activation rows while it sits in
//!   registers, so a batch of 8 costs much less than 8 single decodes.
//!
//! Activations are quantized to 8 bits per 32-element block ([`Q8Activations`]), as ggml does
//! (Q8_0 / Q8_1); callers that multiply the same input by several matrices (Q, K, V; gate, up)
//! quantize once and call [`matmul_q8`].

mod avx2;
mod avx512;
mod pack;
mod scalar;

use crate::activations::Q8Activations;
use crate::error::{Error, Result, check_len};
use crate::formats::{GgmlType, QK};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Mutex;

use crate::pool::SpinPool;

pub use pack::PackedMatrix;

/// Rows interleaved per group in a [`PackedMatrix`] (one 512-bit lane of i32 per row).
pub const ROW_GROUP: usize = 16;

/// A borrowed `rows x cols` weight matrix in a ggml type, rows stored one after another exactly as
/// in a GGUF file.
#[derive(Debug, Clone, Copy)]
pub struct QMatrix<'a> {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: &'a [u8],
}

impl<'a> QMatrix<'a> {
    /// Wraps `data`, checking that it holds exactly `rows` rows of `cols` elements of type `ty`.
    pub fn new(ty: GgmlType, rows: usize, cols: usize, data: &'a [u8]) -> Result<Self> {
        let rb = ty.row_bytes(cols)?;
        check_len("weight matrix", rows * rb, data.len(), "bytes")?;
        Ok(Self {
            ty,
            rows,
            cols,
            data,
        })
    }

    /// The element type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Number of rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The raw bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The bytes of row `r` (`r < rows`).
    pub(crate) fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.data.len() / self.rows.max(1);
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// The instruction set a kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust; the reference.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (`vpmaddubsw`).
    Avx2,
    /// x86-64 AVX-512 F/BW/VL + VNNI (`vpdpbusd` on 512-bit registers).
    Avx512Vnni,
}

impl Isa {
    /// The best instruction set this CPU supports.
    pub fn detect() -> Self {
        [Self::Avx512Vnni, Self::Avx2]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Self::Scalar)
    }

    /// Whether this CPU can run kernels built for `self`.
    pub fn is_available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Scalar => true,
                Self::Avx2 => avx2::available(),
                Self::Avx512Vnni => avx512::available(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Self::Scalar
        }
    }
}

/// Where a context's kernels run their parallel parts.
#[derive(Debug)]
enum Workers {
    /// On the caller's thread only.
    Inline,
    /// On spinning worker threads this context owns (see [`SpinPool`]).
    Own(SpinPool),
    /// On whichever rayon pool the caller runs in (its own pool if called from one of its
    /// workers, else rayon's global pool): no hand-off between pools.
    Current,
}

/// What the kernels run with: the instruction set (detected once) and the worker threads.
#[derive(Debug)]
pub struct KernelContext {
    isa: Isa,
    workers: Workers,
    /// Reused activation buffers for [`matmul`]: a prefill's activations are hundreds of KB,
    /// which the allocator would otherwise map, fault in and zero on every call. A call that
    /// finds it busy (another thread using the same context) allocates its own.
    scratch: Mutex<Q8Activations>,
}

impl KernelContext {
    /// A context using the best instruction set of this CPU and its own pool of `threads`
    /// worker threads (0 is treated as 1; 1 runs everything on the caller's thread).
    pub fn new(threads: usize) -> Result<Self> {
        Self::with_isa(Isa::detect(), threads)
    }

    /// A context forced to `isa` (for tests and benchmarks); an error if the CPU lacks it.
    pub fn with_isa(isa: Isa, threads: usize) -> Result<Self> {
        check_isa(isa)?;
        let workers = if threads > 1 {
            Workers::Own(SpinPool::new(threads).map_err(|e| Error::ThreadPool(e.to_string()))?)
        } else {
            Workers::Inline
        };
        Ok(Self {
            isa,
            workers,
            scratch: Mutex::default(),
        })
    }

    /// A context using the best instruction set and the rayon pool of the caller: use this when
    /// the engine already runs its forward pass inside its own rayon pool, so that each kernel
    /// call splits across that pool's threads instead of handing off to a second pool.
    pub fn on_current_pool() -> Self {
        Self {
            isa: Isa::detect(),
            workers: Workers::Current,
            scratch: Mutex::default(),
        }
    }

    /// [`KernelContext::on_current_pool`] forced to `isa`; an error if the CPU lacks it.
    pub fn with_isa_on_current_pool(isa: Isa) -> Result<Self> {
        check_isa(isa)?;
        Ok(Self {
            isa,
            workers: Workers::Current,
            scratch: Mutex::default(),
        })
    }

    /// The instruction set in use.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// Number of threads a kernel call splits over (for the current pool: that pool's size, as
    /// seen from the calling thread).
    pub fn threads(&self) -> usize {
        match &self.workers {
            Workers::Inline => 1,
            Workers::Own(p) => p.threads(),
            Workers::Current => rayon::current_num_threads(),
        }
    }

    /// Runs `f` on the calling thread. Kept so callers can mark a whole forward pass as one
    /// unit of kernel work: with an own pool its workers spin between the kernel calls inside
    /// `f` instead of sleeping, so there is no cross-thread hand-off to pay for.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }

    /// Calls `f(i)` for every `i < tasks` on the context's threads (the caller included) and
    /// returns when all are done; a panic in a task is resumed here.
    pub fn for_each_task(&self, tasks: usize, f: impl Fn(usize) + Sync) {
        match &self.workers {
            Workers::Own(p) => p.run(tasks, &f),
            Workers::Inline => (0..tasks).for_each(f),
            Workers::Current => (0..tasks).into_par_iter().for_each(&f),
        }
    }

    /// `f(i, chunk)` for each `chunk_len`-sized chunk of `data` (the last may be shorter), on
    /// the context's threads.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let chunks: Vec<Mutex<&mut [T]>> =
            data.chunks_mut(chunk_len.max(1)).map(Mutex::new).collect();
        self.for_each_task(chunks.len(), |i| {
            let mut chunk = chunks[i].lock().unwrap_or_else(|e| e.into_inner());
            f(i, &mut chunk)
        });
    }
}

fn check_isa(isa: Isa) -> Result<()> {
    if isa.is_available() {
        Ok(())
    } else {
        Err(Error::InvalidShape(format!(
            "instruction set {isa:?} is not available on this CPU"
        )))
    }
}

/// `y[j*rows + r] = sum_i w[r][i] * x[j*k + i]` for `j < n`, `r < rows`, with `x` quantized to
/// 8 bits per block first (f32 weights use plain f32 arithmetic).
pub fn matmul(
    w: &PackedMatrix,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    ctx: &KernelContext,
) -> Result<()> {
    if w.ty().is_float() {
        return matmul_f32(w, x, n, y, ctx);
    }
    match ctx.scratch.try_lock() {
        Ok(mut acts) => {
            acts.requantize_for(w.ty(), x, n, w.cols())?;
            matmul_q8(w, &acts, y, ctx)
        }
        // Busy, or poisoned by a panic elsewhere: a fresh buffer is always correct.
        Err(_) => matmul_q8(
            w,
            &Q8Activations::quantize_for(w.ty(), x, n, w.cols())?,
            y,
            ctx,
        ),
    }
}

/// Like [`matmul`], with activations already quantized (reuse them across matrices that share
/// an input).
pub fn matmul_q8(
    w: &PackedMatrix,
    acts: &Q8Activations,
    y: &mut [f32],
    ctx: &KernelContext,
) -> Result<()> {
    if w.ty().is_float() {
        return Err(Error::UnsupportedType {
            op: "matmul_q8",
            ty: w.ty().name(),
        });
    }
    check_len("activation row length", w.cols(), acts.k(), "elements")?;
    let n = acts.n();
    check_len("matmul output", n * w.rows(), y.len(), "elements")?;
    if n == 0 || w.rows() == 0 {
        return Ok(());
    }
    let isa = ctx.isa();
    run_tasks(w, n, y, ctx, |groups, out| match isa {
        Isa::Avx512Vnni => avx512::matmul_groups(w, acts, groups, out),
        Isa::Avx2 => avx2::matmul_groups(w, acts, groups, out),
        Isa::Scalar => scalar::matmul_groups(w, acts, groups, out),
    });
    Ok(())
}

fn matmul_f32(
    w: &PackedMatrix,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    ctx: &KernelContext,
) -> Result<()> {
    check_len("activations", n * w.cols(), x.len(), "elements")?;
    check_len("matmul output", n * w.rows(), y.len(), "elements")?;
    if n == 0 || w.rows() == 0 {
        return Ok(());
    }
    run_tasks(w, n, y, ctx, |groups, out| {
        scalar::matmul_groups_f32(w, x, groups, out)
    });
    Ok(())
}

/// Group blocks ahead of the one being multiplied that the kernels prefetch into L1. A decode
/// step streams ~100 MB of weights through kernels that also do a lot of arithmetic per byte at
/// batch 8; the hardware prefetcher alone leaves the loads waiting (a 30-layer stream of
/// distinct matrices ran 1.5x faster at batch 8 and 1.1-1.4x at batch 1 with this; 4 to 8
/// blocks measured alike).
const PREFETCH_BLOCKS: usize = 6;
/// Group blocks ahead prefetched into L2, so the L1 prefetches find their lines close (engine
/// decode, alternating binaries: batch 1 about 275-290 -> 330 tok/s, batch 8 785-805 -> 834-891
/// tok/s; 16, 32 and 64 blocks measured alike at batch 1, 16 best at batch 8).
const PREFETCH_L2_BLOCKS: usize = 16;

/// Prefetches the group blocks [`PREFETCH_BLOCKS`] (to L1) and [`PREFETCH_L2_BLOCKS`] (to L2)
/// blocks after the one at `block` (blocks of `block_bytes`; past the end of the matrix it
/// fetches nothing useful but cannot fault).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_ahead(block: *const u8, block_bytes: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _MM_HINT_T1, _mm_prefetch};
    let ahead = block.wrapping_add(PREFETCH_BLOCKS * block_bytes);
    let far = block.wrapping_add(PREFETCH_L2_BLOCKS * block_bytes);
    let mut offset = 0;
    while offset < block_bytes {
        // SAFETY: a prefetch is a hint: it never faults, whatever the address.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(offset) as *const i8);
            _mm_prefetch::<_MM_HINT_T1>(far.wrapping_add(offset) as *const i8);
        }
        offset += 64;
    }
}

/// Minimum row groups per task, so that tiny matrices do not pay for many task hand-offs.
const MIN_GROUPS_PER_TASK: usize = 2;
/// Tasks per thread, for load balance when a core is also busy with something else.
const TASKS_PER_THREAD: usize = 8;

/// A task's row groups and its slice of each activation row's output.
type Task<'a> = (Range<usize>, Vec<&'a mut [f32]>);

/// Splits the row groups of `w` into tasks, hands each task the slices of `y` it owns (one per
/// activation row) and runs them on the context's threads.
fn run_tasks<F>(w: &PackedMatrix, n: usize, y: &mut [f32], ctx: &KernelContext, kernel: F)
where
    F: Fn(Range<usize>, &mut [&mut [f32]]) + Sync,
{
    let rows = w.rows();
    let groups = w.groups();
    let ntasks = (ctx.threads() * TASKS_PER_THREAD)
        .min(groups.div_ceil(MIN_GROUPS_PER_TASK))
        .max(1);
    let per = groups.div_ceil(ntasks);
    let ranges: Vec<Range<usize>> = (0..groups)
        .step_by(per)
        .map(|g| g..(g + per).min(groups))
        .collect();
    let mut tasks: Vec<(Range<usize>, Vec<&mut [f32]>)> = ranges
        .iter()
        .map(|r| (r.clone(), Vec::with_capacity(n)))
        .collect();
    for yj in y.chunks_exact_mut(rows) {
        let mut rest = yj;
        for (range, outs) in tasks.iter_mut() {
            let len = (range.end * ROW_GROUP).min(rows) - range.start * ROW_GROUP;
            let (head, tail) = rest.split_at_mut(len);
            outs.push(head);
            rest = tail;
        }
    }
    if tasks.len() == 1 || ctx.threads() == 1 {
        for (range, outs) in tasks.iter_mut() {
            kernel(range.clone(), outs);
        }
        return;
    }
    // Each task's output slices behind their own (never contended) lock, so tasks can be
    // claimed by index from any thread.
    let tasks: Vec<Mutex<Task>> = tasks.into_iter().map(Mutex::new).collect();
    ctx.for_each_task(tasks.len(), |i| {
        let mut task = tasks[i].lock().unwrap_or_else(|e| e.into_inner());
        let (range, outs) = &mut *task;
        kernel(range.clone(), outs);
    });
}

/// The scalar oracle over raw ggml bytes: same maths as [`matmul`] (activations quantized to
/// 8 bits for quantized weights, plain f32 for F32/F16 weights), one row at a time.
pub fn matmul_ref(w: &QMatrix, x: &[f32], n: usize, y: &mut [f32]) -> Result<()> {
    check_len("activations", n * w.cols(), x.len(), "elements")?;
    check_len("matmul output", n * w.rows(), y.len(), "elements")?;
    if w.ty().is_float() {
        scalar::matmul_ref_f32(w, x, n, y)
    } else {
        let acts = Q8Activations::quantize_for(w.ty(), x, n, w.cols())?;
        scalar::matmul_ref_q8(w, &acts, y)
    }
}

impl GgmlType {
    /// Whether values are stored as floats (F32, F16) rather than quantized blocks.
    pub fn is_float(self) -> bool {
        matches!(self, GgmlType::F32 | GgmlType::F16 | GgmlType::Bf16)
    }
}

/// Number of quantization blocks in a row of `cols` elements.
pub(crate) fn blocks(cols: usize) -> usize {
    cols / QK
}

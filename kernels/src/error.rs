//! The crate's one error type.

/// Errors the kernels return instead of panicking on bad shapes or bad buffers.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A buffer has the wrong length for the shape the caller gave.
    #[error("{what}: expected {expected} {unit}, got {got}")]
    LengthMismatch {
        /// Which argument was wrong (e.g. "q4_1 row bytes", "activations").
        what: &'static str,
        /// The length the shape implies.
        expected: usize,
        /// The length that was passed.
        got: usize,
        /// "bytes" or "elements".
        unit: &'static str,
    },
    /// A row length that is not a multiple of the quantization block size.
    #[error("{ty} rows need a multiple of {block} elements, got {cols}")]
    NotBlockAligned {
        /// The quantized type's name.
        ty: &'static str,
        /// Its block size in elements.
        block: usize,
        /// The row length that was passed.
        cols: usize,
    },
    /// A shape argument is invalid (zero, odd where it must be even, inconsistent heads, ...).
    #[error("invalid shape: {0}")]
    InvalidShape(String),
    /// The operation does not support this tensor type.
    #[error("{op} does not support tensor type {ty}")]
    UnsupportedType {
        /// The operation.
        op: &'static str,
        /// The type's name.
        ty: &'static str,
    },
    /// A block table names a block outside the KV pool.
    #[error("block table entry {index} is block {block}, but the pool has {num_blocks} blocks")]
    BlockOutOfRange {
        /// Position in the block table.
        index: usize,
        /// The block id found there.
        block: usize,
        /// Number of blocks in the pool.
        num_blocks: usize,
    },
    /// The rayon thread pool could not be built.
    #[error("could not build the kernel thread pool: {0}")]
    ThreadPool(String),
    /// A CUDA device was asked for, but this build has no CUDA support (feature `cuda` off).
    #[error("agentc was built without CUDA support; rebuild with --features cuda")]
    NotCompiledWithCuda,
    /// CUDA support is built in, but this machine cannot provide it: no driver library, no
    /// device with that ordinal, or no NVRTC library. The reason says which.
    #[error("no CUDA device: {0}")]
    CudaUnavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA {op} failed: {message}")]
    Cuda {
        /// What was being done ("launch matmul_q4_1", "upload", ...).
        op: String,
        /// The driver's error.
        message: String,
    },
    /// NVRTC could not compile a kernel source; `log` is its compile log.
    #[error("NVRTC could not compile kernels/cuda/{file} ({message}):\n{log}")]
    CudaCompile {
        /// The `.cu` file.
        file: &'static str,
        /// NVRTC's error code.
        message: String,
        /// The compiler's log (errors with line numbers of the program: common.cu, then the file).
        log: String,
    },
    /// A device name that is not `cpu` or `cuda:N`.
    #[error("unknown device `{0}`; expected `cpu` or `cuda:N` (e.g. `cuda:0`)")]
    InvalidDevice(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `got == expected`, naming the argument in the error.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
    unit: &'static str,
) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            what,
            expected,
            got,
            unit,
        })
    }
}

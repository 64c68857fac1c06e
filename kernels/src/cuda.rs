//! CUDA kernels (feature `cuda`): a device, its buffers, the NVRTC-compiled module cache, and
//! one function per kernel with the same shape checks and semantics as the CPU kernel of the
//! same name (the CPU kernel is the oracle: `tests/cuda_diff.rs`).
//!
//! The driver and NVRTC are loaded at run time (cudarc's `dynamic-loading`): the build needs no
//! CUDA, and a machine without a driver or a GPU gets [`Error::CudaUnavailable`] from
//! [`CudaDevice::open`], never a panic. Kernel sources are `kernels/cuda/*.cu`; each module is
//! compiled by NVRTC the first time one of its kernels is launched on a device (or by
//! [`CudaKernels::compile_all`]), for the device's own architecture.
//!
//! All work goes to one stream per device, in order; functions return once the work is queued.
//! [`CudaDevice::download`] waits for it.
//!
//! With the feature off, `cuda_stub.rs` provides the same names, and every constructor returns
//! [`Error::NotCompiledWithCuda`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DeviceRepr, DriverError,
    LaunchConfig, ValidAsZeroBits, sys,
};
use cudarc::nvrtc::{CompileError, CompileOptions, compile_ptx_with_opts};

use crate::cuda_launch::{LaunchDims, index_arg};
use crate::cuda_source::{
    CUDA_MODULES, CudaModuleSource, arch_option, define_options, module_index, program_source,
};
use crate::error::{Error, Result, check_len};
use crate::{GgmlType, QMatrix};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// Element types a [`CudaBuffer`] holds.
pub trait DeviceScalar:
    sealed::Sealed + DeviceRepr + ValidAsZeroBits + Copy + Default + Unpin + fmt::Debug + 'static
{
}
impl DeviceScalar for f32 {}
impl DeviceScalar for u8 {}
impl DeviceScalar for u16 {}
impl DeviceScalar for u32 {}

/// A driver error as this crate's error, naming what was being done.
fn driver(op: impl Into<String>) -> impl FnOnce(DriverError) -> Error {
    let op = op.into();
    move |e| Error::Cuda {
        op,
        message: e.to_string(),
    }
}

/// Device memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemory {
    /// All of the device's memory.
    pub total_bytes: usize,
    /// Memory not yet allocated (by any process).
    pub free_bytes: usize,
}

/// One opened CUDA device: its context, the stream all work goes to, and its compiled kernels.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct CudaDevice {
    inner: Arc<DeviceInner>,
}

struct DeviceInner {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    kernels: CudaKernels,
}

impl fmt::Debug for CudaDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CudaDevice(cuda:{})", self.ordinal())
    }
}

/// Fails with [`Error::CudaUnavailable`] unless the driver library can be loaded (cudarc panics
/// on first use of a missing library, so this is checked before any driver call).
fn require_driver_library() -> Result<()> {
    // SAFETY: only tries to dlopen the driver library under its usual names and closes it.
    if unsafe { cudarc::driver::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::CudaUnavailable(
            "the CUDA driver library (libcuda.so) was not found: no NVIDIA driver is installed \
             or it is not on the library path"
                .into(),
        ))
    }
}

impl CudaDevice {
    /// Number of CUDA devices; 0 where the driver is installed but no GPU is visible.
    pub fn count() -> Result<usize> {
        require_driver_library()?;
        let n = CudaContext::device_count().map_err(|e| {
            Error::CudaUnavailable(format!("the CUDA driver could not list devices: {e}"))
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Opens device `ordinal` (its primary context and a stream). Fails with
    /// [`Error::CudaUnavailable`] when there is no driver or no such device.
    pub fn open(ordinal: usize) -> Result<CudaDevice> {
        let count = Self::count()?;
        if ordinal >= count {
            return Err(Error::CudaUnavailable(format!(
                "device cuda:{ordinal} does not exist ({count} CUDA device(s) visible)"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| Error::CudaUnavailable(format!("cannot open cuda:{ordinal}: {e}")))?;
        let stream = ctx
            .new_stream()
            .map_err(driver(format!("create a stream on cuda:{ordinal}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("read the compute capability"))?;
        let kernels = CudaKernels::new(ctx.clone(), (major as u32, minor as u32));
        Ok(CudaDevice {
            inner: Arc::new(DeviceInner {
                ctx,
                stream,
                kernels,
            }),
        })
    }

    /// The ordinal it was opened with.
    pub fn ordinal(&self) -> usize {
        self.inner.ctx.ordinal()
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> Result<String> {
        self.inner
            .ctx
            .name()
            .map_err(driver("read the device name"))
    }

    /// Total and free device memory.
    pub fn memory(&self) -> Result<CudaMemory> {
        let (free_bytes, total_bytes) = self
            .inner
            .ctx
            .mem_get_info()
            .map_err(driver("read device memory"))?;
        Ok(CudaMemory {
            total_bytes,
            free_bytes,
        })
    }

    /// Compute capability `(major, minor)`, e.g. `(9, 0)` for an H100.
    pub fn compute_capability(&self) -> Result<(u32, u32)> {
        Ok(self.inner.kernels.capability)
    }

    /// The device's compiled-kernel cache.
    pub fn kernels(&self) -> &CudaKernels {
        &self.inner.kernels
    }

    /// Copies `host` into a new device buffer.
    pub fn upload<T: DeviceScalar>(&self, host: &[T]) -> Result<CudaBuffer<T>> {
        let stream = &self.inner.stream;
        let slice = if host.is_empty() {
            stream.null()
        } else {
            stream.clone_htod(host)
        }
        .map_err(driver(format!("upload {} values", host.len())))?;
        Ok(CudaBuffer { slice })
    }

    /// A new device buffer of `len` zeros.
    pub fn zeros<T: DeviceScalar>(&self, len: usize) -> Result<CudaBuffer<T>> {
        let stream = &self.inner.stream;
        let slice = if len == 0 {
            stream.null()
        } else {
            stream.alloc_zeros(len)
        }
        .map_err(driver(format!("allocate {len} values")))?;
        Ok(CudaBuffer { slice })
    }

    /// Overwrites `buf` with `host` (same length).
    pub fn write<T: DeviceScalar>(&self, host: &[T], buf: &mut CudaBuffer<T>) -> Result<()> {
        check_len("device buffer", host.len(), buf.len(), "elements")?;
        if host.is_empty() {
            return Ok(());
        }
        self.inner
            .stream
            .memcpy_htod(host, &mut buf.slice)
            .map_err(driver(format!("write {} values", host.len())))
    }

    /// Waits for the queued work, then copies `buf` to the host.
    pub fn download<T: DeviceScalar>(&self, buf: &CudaBuffer<T>) -> Result<Vec<T>> {
        if buf.is_empty() {
            return Ok(Vec::new());
        }
        self.inner
            .stream
            .clone_dtoh(&buf.slice)
            .map_err(driver(format!("download {} values", buf.len())))
    }

    /// Waits until all queued work is done.
    pub fn synchronize(&self) -> Result<()> {
        self.inner
            .stream
            .synchronize()
            .map_err(driver("synchronize"))
    }

    /// Device time in seconds of the work `queue` puts on the stream (timed with CUDA events,
    /// so host-side queuing is not counted unless the device waits for it).
    pub fn time_seconds(&self, queue: impl FnOnce() -> Result<()>) -> Result<f64> {
        let ctx = &self.inner.ctx;
        let flags = Some(sys::CUevent_flags::CU_EVENT_DEFAULT);
        let start = ctx.new_event(flags).map_err(driver("create an event"))?;
        let end = ctx.new_event(flags).map_err(driver("create an event"))?;
        start
            .record(&self.inner.stream)
            .map_err(driver("record an event"))?;
        queue()?;
        end.record(&self.inner.stream)
            .map_err(driver("record an event"))?;
        let ms = start.elapsed_ms(&end).map_err(driver("time events"))?;
        Ok(f64::from(ms) / 1e3)
    }
}

/// The modules of `kernels/cuda/` compiled for one device, each by NVRTC at first use, and the
/// kernels loaded from them.
pub struct CudaKernels {
    ctx: Arc<CudaContext>,
    capability: (u32, u32),
    cache: Mutex<KernelCache>,
}

#[derive(Default)]
struct KernelCache {
    modules: HashMap<&'static str, Arc<CudaModule>>,
    functions: HashMap<&'static str, CudaFunction>,
}

impl CudaKernels {
    fn new(ctx: Arc<CudaContext>, capability: (u32, u32)) -> CudaKernels {
        CudaKernels {
            ctx,
            capability,
            cache: Mutex::new(KernelCache::default()),
        }
    }

    /// Compiles every module now (start-up), so a compile error shows before the first launch.
    pub fn compile_all(&self) -> Result<()> {
        for m in CUDA_MODULES {
            self.module(m)?;
        }
        Ok(())
    }

    /// The `.cu` files compiled so far, in [`CUDA_MODULES`] order.
    pub fn compiled_files(&self) -> Vec<&'static str> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        CUDA_MODULES
            .iter()
            .map(|m| m.file)
            .filter(|f| cache.modules.contains_key(f))
            .collect()
    }

    /// The loaded kernel `name`, compiling its module if this is the first use.
    fn function(&self, name: &'static str) -> Result<CudaFunction> {
        if let Some(f) = self.lock().functions.get(name) {
            return Ok(f.clone());
        }
        let index = module_index(name).ok_or_else(|| Error::Cuda {
            op: format!("load kernel {name}"),
            message: "no module in kernels/cuda defines it".into(),
        })?;
        let module = self.module(&CUDA_MODULES[index])?;
        let f = module
            .load_function(name)
            .map_err(driver(format!("load kernel {name}")))?;
        self.lock().functions.insert(name, f.clone());
        Ok(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KernelCache> {
        // The cache only ever gains complete entries, so a panic elsewhere leaves it valid.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn module(&self, source: &CudaModuleSource) -> Result<Arc<CudaModule>> {
        // Held while compiling: two threads do not compile the same module twice.
        let mut cache = self.lock();
        if let Some(m) = cache.modules.get(source.file) {
            return Ok(m.clone());
        }
        let ptx = compile(source, self.capability)?;
        let module = self.ctx.load_module(ptx).map_err(|e| Error::Cuda {
            op: format!("load the module compiled from kernels/cuda/{}", source.file),
            message: format!(
                "{e} (CUDA_ERROR_UNSUPPORTED_PTX_VERSION means the NVRTC library is newer than \
                 the driver)"
            ),
        })?;
        cache.modules.insert(source.file, module.clone());
        Ok(module)
    }
}

/// NVRTC-compiles one module for compute capability `capability`; if this NVRTC does not know
/// the architecture, for its default one (the driver then JIT-compiles the PTX).
fn compile(source: &CudaModuleSource, capability: (u32, u32)) -> Result<cudarc::nvrtc::Ptx> {
    // SAFETY: only tries to dlopen the NVRTC library under its usual names and closes it.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(Error::CudaUnavailable(
            "the NVRTC library (libnvrtc.so) was not found: install CUDA's NVRTC (e.g. the \
             cuda-nvrtc package or the nvidia-cuda-nvrtc wheel) and put it on LD_LIBRARY_PATH"
                .into(),
        ));
    }
    let program = program_source(source);
    let options = |arch: bool| {
        let mut options = define_options();
        if arch {
            options.push(arch_option(capability.0, capability.1));
        }
        CompileOptions {
            options,
            name: Some(source.file.to_string()),
            ..CompileOptions::default()
        }
    };
    let first = compile_ptx_with_opts(&program, options(true));
    let result = match first {
        Err(CompileError::CompileError { nvrtc, .. })
            if nvrtc.0 == cudarc::nvrtc::sys::nvrtcResult::NVRTC_ERROR_INVALID_OPTION =>
        {
            compile_ptx_with_opts(&program, options(false))
        }
        other => other,
    };
    result.map_err(|e| match e {
        CompileError::CompileError { nvrtc, log, .. } => Error::CudaCompile {
            file: source.file,
            message: format!("{nvrtc:?}"),
            log: log.to_string_lossy().into_owned(),
        },
        other => Error::CudaCompile {
            file: source.file,
            message: format!("{other:?}"),
            log: String::new(),
        },
    })
}

/// A buffer of `T` in device memory.
pub struct CudaBuffer<T: DeviceScalar> {
    slice: CudaSlice<T>,
}

impl<T: DeviceScalar> CudaBuffer<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.slice.len() == 0
    }
}

impl<T: DeviceScalar> fmt::Debug for CudaBuffer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CudaBuffer<{}>({})",
            std::any::type_name::<T>(),
            self.len()
        )
    }
}

/// A weight matrix in device memory, in its raw ggml block layout (uploaded once at load).
#[derive(Debug)]
pub struct CudaMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: CudaBuffer<u8>,
}

impl CudaMatrix {
    /// Uploads `w`'s bytes. Q4_0, Q4_1, Q8_0 and F16 have CUDA matmuls.
    pub fn upload(device: &CudaDevice, w: &QMatrix) -> Result<CudaMatrix> {
        if !matches!(
            w.ty(),
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0 | GgmlType::F16
        ) {
            return Err(Error::UnsupportedType {
                op: "CUDA matmul",
                ty: w.ty().name(),
            });
        }
        index_arg("matmul rows", w.rows())?;
        index_arg("matmul cols", w.cols())?;
        Ok(CudaMatrix {
            ty: w.ty(),
            rows: w.rows(),
            cols: w.cols(),
            data: device.upload(w.data())?,
        })
    }

    /// The weight type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// A paged KV cache in device memory: K and V pools of `[num_blocks, block_size, n_kv_heads,
/// head_dim]` f32, the layout of the CPU's [`crate::KvPool`].
#[derive(Debug)]
pub struct CudaKvPool {
    k: CudaBuffer<f32>,
    v: CudaBuffer<f32>,
    num_blocks: usize,
    block_size: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

impl CudaKvPool {
    /// Wraps the pools, checking their lengths against the geometry (as `KvPool::new`).
    pub fn new(
        k: CudaBuffer<f32>,
        v: CudaBuffer<f32>,
        block_size: usize,
        n_kv_heads: usize,
        head_dim: usize,
    ) -> Result<CudaKvPool> {
        let block_elems = block_size * n_kv_heads * head_dim;
        if block_elems == 0 {
            return Err(Error::InvalidShape(
                "kv pool: block_size, n_kv_heads and head_dim must be > 0".into(),
            ));
        }
        if !k.len().is_multiple_of(block_elems) {
            return Err(Error::InvalidShape(format!(
                "kv pool: {} K values are not whole blocks of {block_elems}",
                k.len()
            )));
        }
        check_len("V pool", k.len(), v.len(), "elements")?;
        Ok(CudaKvPool {
            num_blocks: k.len() / block_elems,
            k,
            v,
            block_size,
            n_kv_heads,
            head_dim,
        })
    }

    /// Number of blocks in each pool.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }
    /// Values per block: `block_size * n_kv_heads * head_dim`.
    pub fn block_elems(&self) -> usize {
        self.block_size * self.n_kv_heads * self.head_dim
    }
    /// The K pool.
    pub fn k(&self) -> &CudaBuffer<f32> {
        &self.k
    }
    /// The V pool.
    pub fn v(&self) -> &CudaBuffer<f32> {
        &self.v
    }
    /// The K pool, to write new tokens into.
    pub fn k_mut(&mut self) -> &mut CudaBuffer<f32> {
        &mut self.k
    }
    /// The V pool, to write new tokens into.
    pub fn v_mut(&mut self) -> &mut CudaBuffer<f32> {
        &mut self.v
    }
}

fn config(d: LaunchDims) -> LaunchConfig {
    LaunchConfig {
        grid_dim: d.grid,
        block_dim: d.block,
        shared_mem_bytes: d.shared_bytes,
    }
}

/// Launches kernel `$name` (a literal) on `$dev`'s stream with `$dims` and the arguments in the
/// kernel's parameter order. Unsafe to expand: the caller states why the arguments match the
/// kernel's parameters and why every index it forms is inside its buffers.
macro_rules! launch {
    ($dev:expr, $name:literal, $dims:expr, [$($arg:expr),* $(,)?]) => {{
        let dev: &CudaDevice = $dev;
        let func = dev.inner.kernels.function($name)?;
        let mut builder = dev.inner.stream.launch_builder(&func);
        $( cudarc::driver::PushKernelArg::arg(&mut builder, $arg); )*
        builder.launch(config($dims)).map(|_| ()).map_err(driver(concat!("launch ", $name)))
    }};
}

mod ops;
pub use ops::*;

//! The `cuda` module of a build without the `cuda` feature: the same names as `cuda.rs`, so
//! code above the kernels needs no `#[cfg]`, and every constructor returns
//! [`Error::NotCompiledWithCuda`]. The types are uninhabited (no value of them can exist), so
//! their methods and the kernel functions, which all need one, can never run.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::{GgmlType, QMatrix, RopeMode};

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// Element types a [`CudaBuffer`] holds.
pub trait DeviceScalar: sealed::Sealed + Copy + Default + fmt::Debug + 'static {}
impl DeviceScalar for f32 {}
impl DeviceScalar for u8 {}
impl DeviceScalar for u16 {}
impl DeviceScalar for u32 {}

/// Device memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaMemory {
    /// All of the device's memory.
    pub total_bytes: usize,
    /// Memory not yet allocated (by any process).
    pub free_bytes: usize,
}

/// A CUDA device; this build cannot open one.
#[derive(Clone, Debug)]
pub struct CudaDevice {
    none: Infallible,
}

impl CudaDevice {
    /// Always [`Error::NotCompiledWithCuda`].
    pub fn count() -> Result<usize> {
        Err(Error::NotCompiledWithCuda)
    }
    /// Always [`Error::NotCompiledWithCuda`].
    pub fn open(_ordinal: usize) -> Result<CudaDevice> {
        Err(Error::NotCompiledWithCuda)
    }
    /// Unreachable: no device exists.
    pub fn ordinal(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn name(&self) -> Result<String> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn memory(&self) -> Result<CudaMemory> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn compute_capability(&self) -> Result<(u32, u32)> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn kernels(&self) -> &CudaKernels {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn upload<T: DeviceScalar>(&self, _host: &[T]) -> Result<CudaBuffer<T>> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn zeros<T: DeviceScalar>(&self, _len: usize) -> Result<CudaBuffer<T>> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn write<T: DeviceScalar>(&self, _host: &[T], _buf: &mut CudaBuffer<T>) -> Result<()> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn download<T: DeviceScalar>(&self, _buf: &CudaBuffer<T>) -> Result<Vec<T>> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn synchronize(&self) -> Result<()> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn time_seconds(&self, _queue: impl FnOnce() -> Result<()>) -> Result<f64> {
        match self.none {}
    }
}

/// The compiled-kernel cache of a device; this build has none.
#[derive(Debug)]
pub struct CudaKernels {
    none: Infallible,
}

impl CudaKernels {
    /// Unreachable: no device exists.
    pub fn compile_all(&self) -> Result<()> {
        match self.none {}
    }
    /// Unreachable: no device exists.
    pub fn compiled_files(&self) -> Vec<&'static str> {
        match self.none {}
    }
}

/// A device buffer; this build cannot make one.
#[derive(Debug)]
pub struct CudaBuffer<T: DeviceScalar> {
    none: Infallible,
    _of: PhantomData<T>,
}

impl<T: DeviceScalar> CudaBuffer<T> {
    /// Unreachable: no buffer exists.
    pub fn len(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no buffer exists.
    pub fn is_empty(&self) -> bool {
        match self.none {}
    }
}

/// A device weight matrix; this build cannot make one.
#[derive(Debug)]
pub struct CudaMatrix {
    none: Infallible,
}

impl CudaMatrix {
    /// Always [`Error::NotCompiledWithCuda`].
    pub fn upload(_device: &CudaDevice, _w: &QMatrix) -> Result<CudaMatrix> {
        Err(Error::NotCompiledWithCuda)
    }
    /// Unreachable: no matrix exists.
    pub fn ty(&self) -> GgmlType {
        match self.none {}
    }
    /// Unreachable: no matrix exists.
    pub fn rows(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no matrix exists.
    pub fn cols(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no matrix exists.
    pub fn bytes(&self) -> usize {
        match self.none {}
    }
}

/// A device KV pool; this build cannot make one.
#[derive(Debug)]
pub struct CudaKvPool {
    none: Infallible,
}

impl CudaKvPool {
    /// Always [`Error::NotCompiledWithCuda`].
    pub fn new(
        _k: CudaBuffer<f32>,
        _v: CudaBuffer<f32>,
        _block_size: usize,
        _n_kv_heads: usize,
        _head_dim: usize,
    ) -> Result<CudaKvPool> {
        Err(Error::NotCompiledWithCuda)
    }
    /// Unreachable: no pool exists.
    pub fn num_blocks(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no pool exists.
    pub fn block_elems(&self) -> usize {
        match self.none {}
    }
    /// Unreachable: no pool exists.
    pub fn k(&self) -> &CudaBuffer<f32> {
        match self.none {}
    }
    /// Unreachable: no pool exists.
    pub fn v(&self) -> &CudaBuffer<f32> {
        match self.none {}
    }
    /// Unreachable: no pool exists.
    pub fn k_mut(&mut self) -> &mut CudaBuffer<f32> {
        match self.none {}
    }
    /// Unreachable: no pool exists.
    pub fn v_mut(&mut self) -> &mut CudaBuffer<f32> {
        match self.none {}
    }
}

macro_rules! matmul_stub {
    ($($name:ident),*) => {$(
        /// Unreachable: no device exists.
        pub fn $name(
            dev: &CudaDevice,
            _w: &CudaMatrix,
            _x: &CudaBuffer<f32>,
            _n: usize,
            _y: &mut CudaBuffer<f32>,
        ) -> Result<()> {
            match dev.none {}
        }
    )*};
}
matmul_stub!(matmul_q4_0, matmul_q4_1, matmul_q8_0, matmul_f16, matmul);

/// Unreachable: no device exists.
pub fn rms_norm_f32(
    dev: &CudaDevice,
    _x: &CudaBuffer<f32>,
    _weight: &CudaBuffer<f32>,
    _eps: f32,
    _out: &mut CudaBuffer<f32>,
) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn silu_mul_f32(
    dev: &CudaDevice,
    _gate: &CudaBuffer<f32>,
    _up: &CudaBuffer<f32>,
    _out: &mut CudaBuffer<f32>,
) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn softmax_f32(dev: &CudaDevice, _x: &mut CudaBuffer<f32>, _row_len: usize) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn rope_f32(
    dev: &CudaDevice,
    _x: &mut CudaBuffer<f32>,
    _head_dim: usize,
    _positions: &CudaBuffer<u32>,
    _theta_base: f32,
    _mode: RopeMode,
) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn attention_paged_f32(
    dev: &CudaDevice,
    _q: &CudaBuffer<f32>,
    _pool: &CudaKvPool,
    _block_table: &[u32],
    _len: usize,
    _scale: f32,
    _out: &mut CudaBuffer<f32>,
) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn kv_block_copy_f32(
    dev: &CudaDevice,
    _pool: &mut CudaKvPool,
    _copies: &[(u32, u32)],
) -> Result<()> {
    match dev.none {}
}

/// Unreachable: no device exists.
pub fn copy_f32(
    dev: &CudaDevice,
    _src: &CudaBuffer<f32>,
    _dst: &mut CudaBuffer<f32>,
) -> Result<()> {
    match dev.none {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_says_cuda_is_not_built_in() {
        let msg = "agentc was built without CUDA support; rebuild with --features cuda";
        assert_eq!(CudaDevice::open(0).unwrap_err().to_string(), msg);
        assert_eq!(CudaDevice::count(), Err(Error::NotCompiledWithCuda));
    }
}

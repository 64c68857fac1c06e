//! Which device a kernel runs on: `enum Device` for dispatch above the kernels (STYLE rule 3).
//! The CUDA variant exists in every build; without the `cuda` feature it cannot be opened and
//! says so ([`Error::NotCompiledWithCuda`]). The runtime adds remote nodes on top of this.

use std::fmt;
use std::str::FromStr;

use crate::cuda::CudaDevice;
use crate::error::{Error, Result};

/// A device by name, before opening it: `cpu` or `cuda:N`. Parsing needs no hardware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceSpec {
    /// The host CPU (the kernels' own thread pool).
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<DeviceSpec> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("cpu") {
            return Ok(DeviceSpec::Cpu);
        }
        if t.eq_ignore_ascii_case("cuda") {
            return Ok(DeviceSpec::Cuda(0));
        }
        match t.split_once(':') {
            Some((kind, ordinal)) if kind.eq_ignore_ascii_case("cuda") => ordinal
                .parse()
                .map(DeviceSpec::Cuda)
                .map_err(|_| Error::InvalidDevice(s.to_string())),
            _ => Err(Error::InvalidDevice(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// An opened device.
#[derive(Debug, Clone)]
pub enum Device {
    /// The host CPU.
    Cpu,
    /// An opened CUDA device.
    Cuda(CudaDevice),
}

impl Device {
    /// Opens the device `spec` names. CUDA fails with [`Error::NotCompiledWithCuda`] in a build
    /// without the `cuda` feature, and with [`Error::CudaUnavailable`] where there is no driver
    /// or no such device.
    pub fn open(spec: DeviceSpec) -> Result<Device> {
        match spec {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(ordinal) => CudaDevice::open(ordinal).map(Device::Cuda),
        }
    }

    /// Parses `cpu` or `cuda:N` and opens it.
    pub fn parse(name: &str) -> Result<Device> {
        Device::open(name.parse()?)
    }

    /// The name it was opened with.
    pub fn spec(&self) -> DeviceSpec {
        match self {
            Device::Cpu => DeviceSpec::Cpu,
            Device::Cuda(d) => DeviceSpec::Cuda(d.ordinal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_ordinals() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!(" CPU ".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "", "metal:0"] {
            assert_eq!(
                bad.parse::<DeviceSpec>(),
                Err(Error::InvalidDevice(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(
            Error::InvalidDevice("gpu".into()).to_string(),
            "unknown device `gpu`; expected `cpu` or `cuda:N` (e.g. `cuda:0`)"
        );
        assert!(matches!(Device::parse("cpu"), Ok(Device::Cpu)));
        assert_eq!(Device::parse("cpu").map(|d| d.spec()), Ok(DeviceSpec::Cpu));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = Device::parse("cuda:0").unwrap_err();
        assert_eq!(err, Error::NotCompiledWithCuda);
        assert_eq!(
            err.to_string(),
            "agentc was built without CUDA support; rebuild with --features cuda"
        );
    }
}

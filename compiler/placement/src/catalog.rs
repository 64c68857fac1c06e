//! The hardware catalog: published figures per device type, shipped as YAML in the crate
//! (`catalog/hardware.yaml`) and loadable from any path so that a site can add its own parts.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};
use crate::yaml;

/// The catalog that ships with agentc.
pub const BUILTIN_CATALOG_YAML: &str = include_str!("../catalog/hardware.yaml");
/// How errors in the shipped catalog name their origin.
pub const BUILTIN_CATALOG_ORIGIN: &str = "<builtin>/catalog/hardware.yaml";
/// The catalog format this code reads.
pub const CATALOG_VERSION: u32 = 1;

const TERA: f64 = 1e12;
const GIGA: f64 = 1e9;
const MICRO: f64 = 1e-6;
/// Hours in a (non-leap) year, for straight-line depreciation of owned hardware.
pub const HOURS_PER_YEAR: f64 = 8760.0;
const WATTS_PER_KILOWATT: f64 = 1000.0;

/// Fractions of peak that real kernels reach when the catalog gives none and no profile is
/// loaded. GPUs reach ~60% of tensor peak on large GEMMs and ~80% of HBM bandwidth on streaming
/// reads (typical of cuBLAS / vLLM measurements); CPUs reach less of their vector peak.
pub const DEFAULT_GPU_ACHIEVABLE: Achievable = Achievable {
    compute: 0.6,
    bandwidth: 0.8,
};
/// See [`DEFAULT_GPU_ACHIEVABLE`].
pub const DEFAULT_CPU_ACHIEVABLE: Achievable = Achievable {
    compute: 0.5,
    bandwidth: 0.7,
};

/// What kind of processor a device type is; host-side ops (tools, tokenizers) need a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    Cpu,
    Gpu,
}

/// Arithmetic precision of an operator's FLOPs. `Fp16` covers bf16 too (same peak on all
/// catalog parts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dtype {
    Fp32,
    Fp16,
    Int8,
}

impl Dtype {
    /// All dtypes, in the order [`crate::graph::Flops`] stores them.
    pub const ALL: [Dtype; 3] = [Dtype::Fp32, Dtype::Fp16, Dtype::Int8];
}

/// Peak dense throughput in FLOP/s (op/s for int8).
#[derive(Debug, Clone, PartialEq)]
pub struct PeakFlops {
    pub fp32: f64,
    pub fp16: Option<f64>,
    pub int8: Option<f64>,
}

impl PeakFlops {
    /// Peak for `dtype`; a dtype the part has no fast path for runs at the next wider one's
    /// rate (int8 -> fp16 -> fp32), which is what a kernel that upcasts would see.
    pub fn get(&self, dtype: Dtype) -> f64 {
        match dtype {
            Dtype::Fp32 => self.fp32,
            Dtype::Fp16 => self.fp16.unwrap_or(self.fp32),
            Dtype::Int8 => self.int8.or(self.fp16).unwrap_or(self.fp32),
        }
    }
}

/// Fractions of peak compute and bandwidth that real kernels reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Achievable {
    pub compute: f64,
    pub bandwidth: f64,
}

/// Links a device has to its neighbours, in bytes/s (bidirectional totals, as datasheets quote).
#[derive(Debug, Clone, PartialEq)]
pub struct Interconnect {
    pub pcie_gen: u8,
    pub pcie_bytes_per_s: f64,
    pub nvlink_bytes_per_s: Option<f64>,
}

/// A cloud list price.
#[derive(Debug, Clone, PartialEq)]
pub struct OnDemandPrice {
    pub usd_per_hour: f64,
    /// When the price was read (`YYYY-MM` or `YYYY-MM-DD`).
    pub date: String,
    pub source: String,
}

/// Purchase price and depreciation lifetime of owned hardware.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedCost {
    pub capex_usd: f64,
    pub lifetime_years: f64,
    pub date: String,
    pub source: String,
}

impl OwnedCost {
    /// Straight-line depreciation plus power at full TDP.
    pub fn usd_per_hour(&self, tdp_w: f64, usd_per_kwh: f64, pue: f64) -> f64 {
        self.capex_usd / (self.lifetime_years * HOURS_PER_YEAR)
            + tdp_w / WATTS_PER_KILOWATT * pue * usd_per_kwh
    }
}

/// One device type of the catalog, in SI units.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceType {
    pub name: String,
    pub class: DeviceClass,
    pub vendor: String,
    pub model: String,
    /// Where the figures come from (URL or datasheet name).
    pub source: String,
    pub note: Option<String>,
    pub peak: PeakFlops,
    pub memory_bytes: f64,
    pub memory_bandwidth: f64,
    pub tdp_w: f64,
    pub interconnect: Interconnect,
    /// Fixed cost of launching one operator step, in seconds.
    pub op_overhead_s: f64,
    pub achievable: Achievable,
    pub on_demand: Option<OnDemandPrice>,
    pub owned: Option<OwnedCost>,
}

/// All device types known to the compiler.
#[derive(Debug, Clone)]
pub struct HardwareCatalog {
    devices: Vec<DeviceType>,
    by_name: HashMap<String, usize>,
}

impl HardwareCatalog {
    /// The catalog shipped in the crate.
    pub fn builtin() -> Result<Self> {
        Self::from_yaml_str(BUILTIN_CATALOG_YAML, BUILTIN_CATALOG_ORIGIN)
    }

    /// Reads a catalog file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string())
    }

    /// Parses and validates catalog YAML; `origin` names the text in error messages.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<Self> {
        let raw: RawCatalog = yaml::parse(text, origin)?;
        if raw.version.value != CATALOG_VERSION {
            return Err(yaml::error_at(
                origin,
                &raw.version.referenced,
                format!(
                    "catalog version {} is not supported; this agentc reads version {CATALOG_VERSION}",
                    raw.version.value
                ),
            ));
        }
        let mut devices = Vec::with_capacity(raw.devices.len());
        let mut by_name = HashMap::new();
        for entry in &raw.devices {
            let device = entry.validate(origin)?;
            if by_name.insert(device.name.clone(), devices.len()).is_some() {
                return Err(yaml::error_at(
                    origin,
                    &entry.name.referenced,
                    format!("device type `{}` is defined twice", device.name),
                ));
            }
            devices.push(device);
        }
        Ok(Self { devices, by_name })
    }

    /// The device type called `name`.
    pub fn get(&self, name: &str) -> Option<&DeviceType> {
        self.by_name.get(name).map(|&i| &self.devices[i])
    }

    /// All device types, in file order.
    pub fn devices(&self) -> &[DeviceType] {
        &self.devices
    }

    /// The catalog name closest to `name`, for "did you mean" hints.
    pub fn closest_name(&self, name: &str) -> Option<&str> {
        yaml::closest(name, self.devices.iter().map(|d| d.name.as_str()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    version: Spanned<u32>,
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    class: DeviceClass,
    vendor: String,
    model: String,
    source: Spanned<String>,
    #[serde(default)]
    note: Option<String>,
    peak_tflops: RawPeaks,
    memory_gb: Spanned<f64>,
    memory_bandwidth_gbs: Spanned<f64>,
    tdp_w: Spanned<f64>,
    interconnect: RawInterconnect,
    op_overhead_us: Spanned<f64>,
    #[serde(default)]
    achievable: Option<RawAchievable>,
    #[serde(default)]
    on_demand: Option<RawOnDemand>,
    #[serde(default)]
    owned: Option<RawOwned>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeaks {
    fp32: Spanned<f64>,
    #[serde(default)]
    fp16: Option<Spanned<f64>>,
    #[serde(default)]
    int8: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterconnect {
    pcie_gen: Spanned<u8>,
    pcie_gbs: Spanned<f64>,
    #[serde(default)]
    nvlink_gbs: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAchievable {
    compute: Spanned<f64>,
    bandwidth: Spanned<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnDemand {
    usd_per_hour: Spanned<f64>,
    date: Spanned<String>,
    source: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwned {
    capex_usd: Spanned<f64>,
    lifetime_years: Spanned<f64>,
    date: Spanned<String>,
    source: Spanned<String>,
}

/// The highest PCIe generation we know figures for.
const MAX_PCIE_GEN: u8 = 6;

fn non_empty(origin: &str, value: &Spanned<String>, what: &str) -> Result<String> {
    if value.value.trim().is_empty() {
        Err(yaml::error_at(
            origin,
            &value.referenced,
            format!("{what} must not be empty"),
        ))
    } else {
        Ok(value.value.clone())
    }
}

impl RawDevice {
    fn validate(&self, origin: &str) -> Result<DeviceType> {
        let name = non_empty(origin, &self.name, "device `name`")?;
        let ctx = |field: &str| format!("device `{name}`: {field}");
        let peak = PeakFlops {
            fp32: yaml::positive(origin, &self.peak_tflops.fp32, &ctx("peak_tflops.fp32"))? * TERA,
            fp16: optional_positive(origin, &self.peak_tflops.fp16, &ctx("peak_tflops.fp16"))?
                .map(|v| v * TERA),
            int8: optional_positive(origin, &self.peak_tflops.int8, &ctx("peak_tflops.int8"))?
                .map(|v| v * TERA),
        };
        let pcie_gen = &self.interconnect.pcie_gen;
        if pcie_gen.value == 0 || pcie_gen.value > MAX_PCIE_GEN {
            return Err(yaml::error_at(
                origin,
                &pcie_gen.referenced,
                format!(
                    "{}: PCIe generation must be 1..={MAX_PCIE_GEN}, got {}",
                    ctx("interconnect.pcie_gen"),
                    pcie_gen.value
                ),
            ));
        }
        let interconnect = Interconnect {
            pcie_gen: pcie_gen.value,
            pcie_bytes_per_s: yaml::positive(
                origin,
                &self.interconnect.pcie_gbs,
                &ctx("interconnect.pcie_gbs"),
            )? * GIGA,
            nvlink_bytes_per_s: optional_positive(
                origin,
                &self.interconnect.nvlink_gbs,
                &ctx("interconnect.nvlink_gbs"),
            )?
            .map(|v| v * GIGA),
        };
        let achievable = match &self.achievable {
            Some(a) => Achievable {
                compute: yaml::fraction(origin, &a.compute, &ctx("achievable.compute"))?,
                bandwidth: yaml::fraction(origin, &a.bandwidth, &ctx("achievable.bandwidth"))?,
            },
            None => match self.class {
                DeviceClass::Cpu => DEFAULT_CPU_ACHIEVABLE,
                DeviceClass::Gpu => DEFAULT_GPU_ACHIEVABLE,
            },
        };
        let on_demand = match &self.on_demand {
            Some(p) => Some(OnDemandPrice {
                usd_per_hour: yaml::positive(
                    origin,
                    &p.usd_per_hour,
                    &ctx("on_demand.usd_per_hour"),
                )?,
                date: yaml::date(origin, &p.date, &ctx("on_demand.date"))?,
                source: non_empty(origin, &p.source, &ctx("on_demand.source"))?,
            }),
            None => None,
        };
        let owned = match &self.owned {
            Some(p) => Some(OwnedCost {
                capex_usd: yaml::positive(origin, &p.capex_usd, &ctx("owned.capex_usd"))?,
                lifetime_years: yaml::positive(
                    origin,
                    &p.lifetime_years,
                    &ctx("owned.lifetime_years"),
                )?,
                date: yaml::date(origin, &p.date, &ctx("owned.date"))?,
                source: non_empty(origin, &p.source, &ctx("owned.source"))?,
            }),
            None => None,
        };
        if on_demand.is_none() && owned.is_none() {
            return Err(yaml::error_at(
                origin,
                &self.name.referenced,
                format!(
                    "{}: give at least one of `on_demand` or `owned`",
                    ctx("pricing")
                ),
            ));
        }
        Ok(DeviceType {
            class: self.class,
            vendor: self.vendor.clone(),
            model: self.model.clone(),
            source: non_empty(origin, &self.source, &ctx("source"))?,
            note: self.note.clone(),
            peak,
            memory_bytes: yaml::positive(origin, &self.memory_gb, &ctx("memory_gb"))? * GIGA,
            memory_bandwidth: yaml::positive(
                origin,
                &self.memory_bandwidth_gbs,
                &ctx("memory_bandwidth_gbs"),
            )? * GIGA,
            tdp_w: yaml::positive(origin, &self.tdp_w, &ctx("tdp_w"))?,
            interconnect,
            op_overhead_s: yaml::non_negative(
                origin,
                &self.op_overhead_us,
                &ctx("op_overhead_us"),
            )? * MICRO,
            achievable,
            on_demand,
            owned,
            name,
        })
    }
}

fn optional_positive(
    origin: &str,
    value: &Option<Spanned<f64>>,
    what: &str,
) -> Result<Option<f64>> {
    value
        .as_ref()
        .map(|v| yaml::positive(origin, v, what))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_with_required_parts() -> Result<()> {
        let catalog = HardwareCatalog::builtin()?;
        for name in [
            "epyc-9654",
            "xeon-8480p",
            "l4",
            "a10g",
            "a100-80gb-sxm",
            "h100-sxm",
            "h200",
        ] {
            assert!(catalog.get(name).is_some(), "{name} missing");
        }
        let h100 = catalog
            .get("h100-sxm")
            .ok_or_else(|| Error::Graph("h100".into()))?;
        assert_eq!(h100.memory_bytes, 80e9);
        assert_eq!(h100.peak.get(Dtype::Fp16), 989.4e12);
        Ok(())
    }
}

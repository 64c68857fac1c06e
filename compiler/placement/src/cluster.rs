//! Cluster files: which devices, how many, on which nodes, joined by which links, priced how.
//!
//! A cluster file is checked against the [`HardwareCatalog`]; each `count` of a device type
//! expands into that many placement targets ([`Device`]s) so that memory and queueing are per
//! physical device.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::catalog::{DeviceClass, DeviceType, HardwareCatalog};
use crate::error::{Error, Result};
use crate::yaml;

const GIGA: f64 = 1e9;
const MICRO: f64 = 1e-6;
const SECONDS_PER_HOUR: f64 = 3600.0;
/// Datasheets quote PCIe and NVLink as the sum of both directions; one transfer uses one.
const DIRECTIONS_PER_LINK: f64 = 2.0;
/// Latency of a copy between two devices of one node (driver + DMA set-up), in seconds.
pub const INTRA_NODE_LATENCY_S: f64 = 10e-6;
/// Upper bound on expanded devices, so a typo like `count: 100000` fails early.
pub const MAX_DEVICES: usize = 4096;

/// Index of a device in [`Cluster::devices`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct DeviceId(pub usize);

/// How device time is priced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PricingMode {
    /// Cloud list price per device-hour from the catalog.
    OnDemand,
    /// Capex over the depreciation lifetime plus power at TDP.
    Owned { usd_per_kwh: f64, pue: f64 },
}

/// A network link between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// One-direction bandwidth in bytes/s.
    pub bandwidth: f64,
    pub latency_s: f64,
    /// Egress or fabric charge, $ per 1e9 bytes moved.
    pub usd_per_gb: f64,
}

/// One physical device, a placement target.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// `node/type#index`, e.g. `gpu-0/h100-sxm#1`.
    pub name: String,
    pub node: usize,
    /// Catalog name of its type.
    pub type_name: String,
    /// Index into [`Cluster::device_types`].
    pub type_index: usize,
    pub usd_per_second: f64,
}

/// A validated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub pricing: PricingMode,
    node_names: Vec<String>,
    types: Vec<DeviceType>,
    devices: Vec<Device>,
    /// Row-major `nodes x nodes`; `None` means the two nodes cannot exchange data.
    links: Vec<Option<Link>>,
}

impl Cluster {
    /// Reads a cluster file.
    pub fn from_path(path: &Path, catalog: &HardwareCatalog) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml_str(&text, &path.display().to_string(), catalog)
    }

    /// Parses and validates cluster YAML against `catalog`.
    pub fn from_yaml_str(text: &str, origin: &str, catalog: &HardwareCatalog) -> Result<Self> {
        let raw: RawCluster = yaml::parse(text, origin)?;
        raw.validate(origin, catalog)
    }

    /// All devices, one per physical part.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// The device with id `id`, if the cluster has it.
    pub fn device(&self, id: DeviceId) -> Option<&Device> {
        self.devices.get(id.0)
    }

    /// Distinct device types used by the cluster.
    pub fn device_types(&self) -> &[DeviceType] {
        &self.types
    }

    /// The type of device `id`, if the cluster has it.
    pub fn device_type(&self, id: DeviceId) -> Option<&DeviceType> {
        self.devices.get(id.0).map(|d| &self.types[d.type_index])
    }

    /// Node names in file order.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// The link between nodes `a` and `b` (`a != b`), if any.
    pub fn link(&self, a: usize, b: usize) -> Option<&Link> {
        self.links
            .get(a * self.node_names.len() + b)
            .and_then(|l| l.as_ref())
    }

    /// Seconds to move `bytes` from device `from` to device `to`, and the $ charged for it;
    /// `None` when no link joins their nodes.
    pub fn transfer(&self, from: DeviceId, to: DeviceId, bytes: f64) -> Option<(f64, f64)> {
        let (a, b) = (self.devices.get(from.0)?, self.devices.get(to.0)?);
        if from == to {
            return Some((0.0, 0.0));
        }
        let (ta, tb) = (&self.types[a.type_index], &self.types[b.type_index]);
        let endpoint_bw = ta
            .interconnect
            .pcie_bytes_per_s
            .min(tb.interconnect.pcie_bytes_per_s)
            / DIRECTIONS_PER_LINK;
        if a.node == b.node {
            let nvlink = match (
                ta.interconnect.nvlink_bytes_per_s,
                tb.interconnect.nvlink_bytes_per_s,
            ) {
                (Some(x), Some(y))
                    if ta.class == DeviceClass::Gpu && tb.class == DeviceClass::Gpu =>
                {
                    Some(x.min(y) / DIRECTIONS_PER_LINK)
                }
                _ => None,
            };
            let bw = nvlink.unwrap_or(endpoint_bw);
            return Some((INTRA_NODE_LATENCY_S + bytes / bw, 0.0));
        }
        let link = self.link(a.node, b.node)?;
        let bw = link.bandwidth.min(endpoint_bw);
        Some((link.latency_s + bytes / bw, link.usd_per_gb * bytes / GIGA))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    pricing: RawPricing,
    nodes: Vec<RawNode>,
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(default)]
    default_link: Option<RawLinkSpec>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawPricingMode {
    OnDemand,
    Owned,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPricing {
    mode: Spanned<RawPricingMode>,
    #[serde(default)]
    usd_per_kwh: Option<Spanned<f64>>,
    #[serde(default)]
    pue: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    devices: Vec<RawDeviceGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviceGroup {
    #[serde(rename = "type")]
    type_name: Spanned<String>,
    count: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    between: Spanned<Vec<String>>,
    bandwidth_gbs: Spanned<f64>,
    latency_us: Spanned<f64>,
    #[serde(default)]
    usd_per_gb: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinkSpec {
    bandwidth_gbs: Spanned<f64>,
    latency_us: Spanned<f64>,
    #[serde(default)]
    usd_per_gb: Option<Spanned<f64>>,
}

fn link_from(
    origin: &str,
    bandwidth_gbs: &Spanned<f64>,
    latency_us: &Spanned<f64>,
    usd_per_gb: &Option<Spanned<f64>>,
) -> Result<Link> {
    Ok(Link {
        bandwidth: yaml::positive(origin, bandwidth_gbs, "link bandwidth_gbs")? * GIGA,
        latency_s: yaml::non_negative(origin, latency_us, "link latency_us")? * MICRO,
        usd_per_gb: match usd_per_gb {
            Some(v) => yaml::non_negative(origin, v, "link usd_per_gb")?,
            None => 0.0,
        },
    })
}

impl RawCluster {
    fn validate(&self, origin: &str, catalog: &HardwareCatalog) -> Result<Cluster> {
        let pricing = match self.pricing.mode.value {
            RawPricingMode::OnDemand => PricingMode::OnDemand,
            RawPricingMode::Owned => {
                let need = |v: &Option<Spanned<f64>>, what: &str| match v {
                    Some(v) => yaml::positive(origin, v, what),
                    None => Err(yaml::error_at(
                        origin,
                        &self.pricing.mode.referenced,
                        format!("owned pricing needs `{what}` (electricity is part of TCO)"),
                    )),
                };
                PricingMode::Owned {
                    usd_per_kwh: need(&self.pricing.usd_per_kwh, "usd_per_kwh")?,
                    pue: need(&self.pricing.pue, "pue")?,
                }
            }
        };
        if self.nodes.is_empty() {
            return Err(Error::Invalid {
                origin: origin.to_string(),
                message: "a cluster needs at least one node".to_string(),
            });
        }
        let mut node_index: HashMap<&str, usize> = HashMap::new();
        let mut types: Vec<DeviceType> = Vec::new();
        let mut devices = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            if node_index.insert(node.name.value.as_str(), n).is_some() {
                return Err(yaml::error_at(
                    origin,
                    &node.name.referenced,
                    format!("node `{}` is defined twice", node.name.value),
                ));
            }
            for group in &node.devices {
                let name = group.type_name.value.as_str();
                let Some(dtype) = catalog.get(name) else {
                    let hint = catalog
                        .closest_name(name)
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    return Err(yaml::error_at(
                        origin,
                        &group.type_name.referenced,
                        format!("unknown device type `{name}` (not in the hardware catalog){hint}"),
                    ));
                };
                if group.count.value == 0 {
                    return Err(yaml::error_at(
                        origin,
                        &group.count.referenced,
                        "device count must be at least 1",
                    ));
                }
                let per_hour = match pricing {
                    PricingMode::OnDemand => dtype.on_demand.as_ref().map(|p| p.usd_per_hour),
                    PricingMode::Owned { usd_per_kwh, pue } => dtype
                        .owned
                        .as_ref()
                        .map(|o| o.usd_per_hour(dtype.tdp_w, usd_per_kwh, pue)),
                };
                let Some(per_hour) = per_hour else {
                    let mode = match pricing {
                        PricingMode::OnDemand => "on_demand",
                        PricingMode::Owned { .. } => "owned",
                    };
                    return Err(yaml::error_at(
                        origin,
                        &group.type_name.referenced,
                        format!(
                            "device type `{name}` has no `{mode}` price in the catalog; use another pricing mode or add one"
                        ),
                    ));
                };
                let type_index = match types.iter().position(|t| t.name == name) {
                    Some(i) => i,
                    None => {
                        types.push(dtype.clone());
                        types.len() - 1
                    }
                };
                for i in 0..group.count.value {
                    if devices.len() >= MAX_DEVICES {
                        return Err(yaml::error_at(
                            origin,
                            &group.count.referenced,
                            format!("a cluster may have at most {MAX_DEVICES} devices"),
                        ));
                    }
                    devices.push(Device {
                        name: format!("{}/{name}#{i}", node.name.value),
                        node: n,
                        type_name: name.to_string(),
                        type_index,
                        usd_per_second: per_hour / SECONDS_PER_HOUR,
                    });
                }
            }
        }
        if devices.is_empty() {
            return Err(Error::Invalid {
                origin: origin.to_string(),
                message: "the cluster has no devices".to_string(),
            });
        }
        let nodes = self.nodes.len();
        let default = match &self.default_link {
            Some(l) => Some(link_from(
                origin,
                &l.bandwidth_gbs,
                &l.latency_us,
                &l.usd_per_gb,
            )?),
            None => None,
        };
        let mut links = vec![default; nodes * nodes];
        for link in &self.links {
            let ends: Vec<usize> = link
                .between
                .value
                .iter()
                .map(|name| {
                    node_index.get(name.as_str()).copied().ok_or_else(|| {
                        let hint = yaml::closest(name, node_index.keys().copied())
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        yaml::error_at(
                            origin,
                            &link.between.referenced,
                            format!("link names unknown node `{name}`{hint}"),
                        )
                    })
                })
                .collect::<Result<_>>()?;
            let [a, b] = ends.as_slice() else {
                return Err(yaml::error_at(
                    origin,
                    &link.between.referenced,
                    "a link joins exactly two nodes: `between: [a, b]`",
                ));
            };
            if a == b {
                return Err(yaml::error_at(
                    origin,
                    &link.between.referenced,
                    "a link must join two different nodes",
                ));
            }
            let spec = link_from(
                origin,
                &link.bandwidth_gbs,
                &link.latency_us,
                &link.usd_per_gb,
            )?;
            links[a * nodes + b] = Some(spec);
            links[b * nodes + a] = Some(spec);
        }
        for a in 0..nodes {
            for b in (a + 1)..nodes {
                if links[a * nodes + b].is_none() {
                    return Err(yaml::error_at(
                        origin,
                        &self.nodes[b].name.referenced,
                        format!(
                            "nodes `{}` and `{}` are not connected; add a link between them or a `default_link`",
                            self.nodes[a].name.value, self.nodes[b].name.value
                        ),
                    ));
                }
            }
        }
        Ok(Cluster {
            name: self.name.clone(),
            pricing,
            node_names: self.nodes.iter().map(|n| n.name.value.clone()).collect(),
            types,
            devices,
            links,
        })
    }
}

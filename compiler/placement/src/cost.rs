//! The cost model: roofline latency, busy time and $ of every op on every device, transfer
//! costs between devices, and the settings (load, memory headroom) the solver checks against.
//!
//! ```text
//! t_compute = sum_dtype flops[dtype] / (peak[dtype] * achievable.compute)   (or measured GFLOP/s)
//! t_memory  = (bytes_read + weight_bytes * weight_reads) / (bandwidth * achievable.bandwidth)
//! busy      = max(t_compute, t_memory) + steps * op_overhead               (or a profiled timing)
//! latency   = busy + external_latency                                       (tool calls)
//! usd       = busy * usd_per_second(device)
//! transfer  = link_latency + bytes / min(link bandwidth, endpoint PCIe/NVLink)   (0 on one device)
//! ```

use crate::catalog::{DeviceClass, DeviceType, Dtype};
use crate::cluster::{Cluster, DeviceId};
use crate::error::{Error, Result};
use crate::graph::{Flops, Op, OpGraph, OpId, OpKind};
use crate::profile::DeviceProfile;

const GIGA: f64 = 1e9;
const MICRO: f64 = 1e-6;

/// Fraction of a device's memory the placement may fill: the rest is runtime, activations and
/// allocator fragmentation (vLLM's default `gpu_memory_utilization` is 0.9 for the same reason).
pub const DEFAULT_MEMORY_HEADROOM: f64 = 0.9;
/// Highest utilisation the placement may put on one device at the declared load; queueing
/// delay grows as 1 / (1 - rho), so a device near 1 has unbounded waits.
pub const DEFAULT_MAX_UTILIZATION: f64 = 0.9;

/// Requests in flight per device whose KV must fit at once, when not set.
pub const DEFAULT_REQUESTS_IN_FLIGHT: f64 = 1.0;

/// Load and limits the cost model prices against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostSettings {
    /// Declared load in requests per second (each request runs the whole graph once); 0 means
    /// an idle cluster with no queueing.
    pub rps: f64,
    pub memory_headroom: f64,
    pub max_utilization: f64,
    /// Requests whose transient KV a device holds at once (continuous batching keeps several
    /// sequences resident); multiplies each device's largest per-op KV.
    pub requests_in_flight: f64,
}

impl Default for CostSettings {
    fn default() -> Self {
        Self {
            rps: 0.0,
            memory_headroom: DEFAULT_MEMORY_HEADROOM,
            max_utilization: DEFAULT_MAX_UTILIZATION,
            requests_in_flight: DEFAULT_REQUESTS_IN_FLIGHT,
        }
    }
}

/// Cost of one op on one device, per request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpCost {
    /// Time from start to finish, external latency included.
    pub service_s: f64,
    /// Time the device is occupied (what is billed and what queues).
    pub busy_s: f64,
    pub usd: f64,
}

/// Prices ops on the devices of one cluster.
#[derive(Debug, Clone)]
pub struct CostModel<'c> {
    cluster: &'c Cluster,
    /// Per cluster device type (same index as [`Cluster::device_types`]).
    profiles: Vec<Option<DeviceProfile>>,
    settings: CostSettings,
}

impl<'c> CostModel<'c> {
    pub fn new(cluster: &'c Cluster, settings: CostSettings) -> Result<Self> {
        let fine = |v: f64, lo: f64, hi: f64| v.is_finite() && v >= lo && v <= hi;
        if !fine(settings.rps, 0.0, f64::MAX) {
            return Err(Error::Settings(format!(
                "rps must be >= 0, got {}",
                settings.rps
            )));
        }
        if !fine(settings.requests_in_flight, 1.0, f64::MAX) {
            return Err(Error::Settings(format!(
                "requests_in_flight must be >= 1, got {}",
                settings.requests_in_flight
            )));
        }
        if !fine(settings.memory_headroom, f64::MIN_POSITIVE, 1.0)
            || !fine(settings.max_utilization, f64::MIN_POSITIVE, 1.0)
        {
            return Err(Error::Settings(
                "memory_headroom and max_utilization must be in (0, 1]".to_string(),
            ));
        }
        Ok(Self {
            cluster,
            profiles: vec![None; cluster.device_types().len()],
            settings,
        })
    }

    /// Uses measured figures for one device type instead of datasheet ones.
    pub fn with_profile(mut self, profile: DeviceProfile) -> Result<Self> {
        let index = self
            .cluster
            .device_types()
            .iter()
            .position(|t| t.name == profile.device_type)
            .ok_or_else(|| Error::Invalid {
                origin: format!("profile for `{}`", profile.device_type),
                message: format!(
                    "cluster `{}` has no device of type `{}`",
                    self.cluster.name, profile.device_type
                ),
            })?;
        self.profiles[index] = Some(profile);
        Ok(self)
    }

    pub fn settings(&self) -> &CostSettings {
        &self.settings
    }

    /// Achievable FLOP/s of a device type for `dtype`.
    fn flops_per_s(&self, type_index: usize, dtype: Dtype) -> f64 {
        let t = &self.cluster.device_types()[type_index];
        match &self.profiles[type_index] {
            Some(p) => {
                let m = &p.matmul_gflops;
                let measured = match dtype {
                    Dtype::Fp32 => m.fp32,
                    Dtype::Fp16 => m.fp16.unwrap_or(m.fp32),
                    Dtype::Int8 => m.int8.or(m.fp16).unwrap_or(m.fp32),
                };
                measured * GIGA
            }
            None => t.peak.get(dtype) * t.achievable.compute,
        }
    }

    fn bandwidth(&self, type_index: usize) -> f64 {
        let t = &self.cluster.device_types()[type_index];
        match &self.profiles[type_index] {
            Some(p) => p.memory_bandwidth_gbs * GIGA,
            None => t.memory_bandwidth * t.achievable.bandwidth,
        }
    }

    fn overhead(&self, type_index: usize) -> f64 {
        let t = &self.cluster.device_types()[type_index];
        self.profiles[type_index]
            .as_ref()
            .and_then(|p| p.op_overhead_us)
            .map_or(t.op_overhead_s, |us| us * MICRO)
    }

    /// `max(t_compute, t_memory)` of `flops` and `bytes` streamed on a device type.
    fn roofline_s(&self, type_index: usize, flops: &Flops, bytes: f64) -> f64 {
        let compute: f64 = Dtype::ALL
            .iter()
            .map(|&d| {
                let f = flops.get(d);
                if f > 0.0 {
                    f / self.flops_per_s(type_index, d)
                } else {
                    0.0
                }
            })
            .sum();
        compute.max(bytes / self.bandwidth(type_index))
    }

    /// Time of one step of continuous batching on `device`: one forward pass of `model` over
    /// `tokens` (prompt, decode and sampled decode tokens) attending to `pairs` earlier positions,
    /// doing `flops` and streaming `bytes` (each batched model's weights once
    /// plus every member's KV reads), plus one op overhead; `None` if the cluster has no such
    /// device. A batch-1 decode of m tokens is m such steps, so their sum is
    /// [`CostModel::op_cost`]'s roofline figure for it. A profile's step timing for the model
    /// (measured on the serving engine's own batches) replaces the roofline where it is slower:
    /// the roofline knows neither per-step overhead nor per-sequence work such as sampling.
    pub fn step_s(
        &self,
        device: DeviceId,
        model: Option<&str>,
        tokens: crate::profile::StepTokens,
        pairs: f64,
        flops: &Flops,
        bytes: f64,
    ) -> Option<f64> {
        let dev = self.cluster.device(device)?;
        let roofline =
            self.roofline_s(dev.type_index, flops, bytes) + self.overhead(dev.type_index);
        let measured = self.profiles[dev.type_index]
            .as_ref()
            .and_then(|p| p.step_timing_for(model))
            .map_or(0.0, |t| t.step_s(tokens, pairs));
        Some(roofline.max(measured))
    }

    /// Time `flops` take on `device` at its (achievable or measured) FLOP/s, without memory
    /// traffic or overhead: a lower bound on any batch's share of a step, however large the batch
    /// (weights are streamed once for all its members); `None` if the cluster has no such device.
    pub fn compute_s(&self, device: DeviceId, flops: &Flops) -> Option<f64> {
        let dev = self.cluster.device(device)?;
        Some(self.roofline_s(dev.type_index, flops, 0.0))
    }

    /// The cluster this model prices.
    pub fn cluster(&self) -> &'c Cluster {
        self.cluster
    }

    /// Cost of `op` on `device`, or `None` if the op cannot run there (host-only op on a GPU).
    pub fn op_cost(&self, graph: &OpGraph, op: &Op, device: DeviceId) -> Option<OpCost> {
        let dev = self.cluster.device(device)?;
        let dtype: &DeviceType = &self.cluster.device_types()[dev.type_index];
        if op.kind.host_only() && dtype.class != DeviceClass::Cpu {
            return None;
        }
        let w = &op.work;
        let model_name = op.model.map(|m| graph.models()[m.0].name.as_str());
        let timing = self.profiles[dev.type_index]
            .as_ref()
            .and_then(|p| p.timing_for(op.kind, model_name));
        let roofline = || {
            self.roofline_s(dev.type_index, &w.flops, w.bytes_streamed())
                + f64::from(w.steps) * self.overhead(dev.type_index)
        };
        let busy = match timing {
            // A decode timing is measured at batch 1, so its per-token figure is the time of one
            // step; a batched decode runs one step per token of its longest member, and never
            // costs less than the roofline says the whole batch needs.
            Some(t) if op.kind == OpKind::Decode => {
                (t.fixed_s + t.per_token_s * f64::from(w.steps)).max(roofline())
            }
            Some(t) => t.fixed_s + t.per_token_s * w.tokens as f64,
            None => roofline(),
        };
        Some(OpCost {
            service_s: busy + w.external_latency_s,
            busy_s: busy,
            usd: busy * dev.usd_per_second,
        })
    }

    /// Prices every op on every device of the cluster.
    pub fn price<'g>(&self, graph: &'g OpGraph) -> PricedGraph<'g> {
        let devices = self.cluster.devices();
        let n_dev = devices.len();
        let mut costs = Vec::with_capacity(graph.len() * n_dev);
        for op in graph.ops() {
            for d in 0..n_dev {
                costs.push(self.op_cost(graph, op, DeviceId(d)));
            }
        }
        let mut xfer_latency = vec![0.0; n_dev * n_dev];
        let mut xfer_inv_bw = vec![0.0; n_dev * n_dev];
        let mut xfer_usd_per_byte = vec![0.0; n_dev * n_dev];
        for a in 0..n_dev {
            for b in 0..n_dev {
                let i = a * n_dev + b;
                let (from, to) = (DeviceId(a), DeviceId(b));
                match (
                    self.cluster.transfer(from, to, 0.0),
                    self.cluster.transfer(from, to, GIGA),
                ) {
                    (Some((t0, _)), Some((t1, usd))) => {
                        xfer_latency[i] = t0;
                        xfer_inv_bw[i] = (t1 - t0) / GIGA;
                        xfer_usd_per_byte[i] = usd / GIGA;
                    }
                    _ => xfer_latency[i] = f64::INFINITY,
                }
            }
        }
        let types = self.cluster.device_types();
        PricedGraph {
            graph,
            n_dev,
            costs,
            devices: devices
                .iter()
                .map(|d| DeviceFacts {
                    name: d.name.clone(),
                    type_index: d.type_index,
                    node: d.node,
                    class: types[d.type_index].class,
                    usd_per_s: d.usd_per_second,
                    capacity: types[d.type_index].memory_bytes * self.settings.memory_headroom,
                })
                .collect(),
            type_names: types.iter().map(|t| t.name.clone()).collect(),
            xfer_latency,
            xfer_inv_bw,
            xfer_usd_per_byte,
            settings: self.settings,
        }
    }
}

/// What the solver needs to know about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceFacts {
    pub name: String,
    pub type_index: usize,
    pub node: usize,
    pub class: DeviceClass,
    pub usd_per_s: f64,
    /// Usable memory (capacity x headroom) in bytes.
    pub capacity: f64,
}

/// Every op priced on every device, plus the transfer matrix: all the solver reads.
#[derive(Debug, Clone)]
pub struct PricedGraph<'g> {
    graph: &'g OpGraph,
    n_dev: usize,
    costs: Vec<Option<OpCost>>,
    devices: Vec<DeviceFacts>,
    type_names: Vec<String>,
    xfer_latency: Vec<f64>,
    xfer_inv_bw: Vec<f64>,
    xfer_usd_per_byte: Vec<f64>,
    settings: CostSettings,
}

impl<'g> PricedGraph<'g> {
    pub fn graph(&self) -> &'g OpGraph {
        self.graph
    }

    pub fn device_count(&self) -> usize {
        self.n_dev
    }

    pub fn devices(&self) -> &[DeviceFacts] {
        &self.devices
    }

    /// Catalog names of the cluster's device types (indexed by [`DeviceFacts::type_index`]).
    pub fn type_names(&self) -> &[String] {
        &self.type_names
    }

    pub fn settings(&self) -> &CostSettings {
        &self.settings
    }

    /// Cost of `op` on device index `d`; `None` if it cannot run there.
    #[inline]
    pub fn cost(&self, op: OpId, d: usize) -> Option<&OpCost> {
        self.costs[op.0 * self.n_dev + d].as_ref()
    }

    /// Seconds to move `bytes` from device `a` to device `b` (infinite if unreachable).
    #[inline]
    pub fn transfer_s(&self, a: usize, b: usize, bytes: f64) -> f64 {
        if a == b {
            return 0.0;
        }
        let i = a * self.n_dev + b;
        self.xfer_latency[i] + bytes * self.xfer_inv_bw[i]
    }

    /// $ charged for moving `bytes` from device `a` to device `b`.
    #[inline]
    pub fn transfer_usd(&self, a: usize, b: usize, bytes: f64) -> f64 {
        if a == b {
            0.0
        } else {
            bytes * self.xfer_usd_per_byte[a * self.n_dev + b]
        }
    }

    /// Bytes `op` needs on its own device: its model's weights plus the KV it holds for the
    /// requests in flight.
    pub fn standalone_bytes(&self, op: OpId) -> f64 {
        let o = self.graph.op(op);
        let weights = o
            .model
            .map_or(0.0, |m| self.graph.models()[m.0].weight_bytes);
        weights + o.work.transient_bytes() * self.settings.requests_in_flight
    }

    /// A copy where op `op` may run on device `d` only if `keep(d, op)` (for "what if we had
    /// only this device type" reports).
    pub fn restricted_per_op(&self, keep: impl Fn(&DeviceFacts, OpId) -> bool) -> PricedGraph<'g> {
        let mut out = self.clone();
        for op in 0..self.graph.len() {
            for d in 0..self.n_dev {
                if !keep(&self.devices[d], OpId(op)) {
                    out.costs[op * self.n_dev + d] = None;
                }
            }
        }
        out
    }
}

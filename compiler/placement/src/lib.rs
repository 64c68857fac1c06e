//! Hardware catalog, cluster files, operator cost model and placement solver for agentc.
//!
//! The compiler builds an [`OpGraph`] of granular operators (tokenize, prefill, decode, ...),
//! loads a [`Cluster`] against the [`HardwareCatalog`], prices every operator on every device
//! with a [`CostModel`], and asks the [`PlacementSolver`] for the cheapest placement whose
//! predicted latency meets the SLA. See `docs/placement.md` for the equations.

pub mod catalog;
pub mod cluster;
pub mod cost;
pub mod error;
pub mod graph;
pub mod profile;
pub mod report;
pub mod sim;
pub mod solver;
pub mod synthetic;
mod yaml;

pub use catalog::{DeviceClass, DeviceType, Dtype, HardwareCatalog};
pub use cluster::{Cluster, Device, DeviceId, Link, PricingMode};
pub use cost::{CostModel, CostSettings, OpCost, PricedGraph};
pub use error::{Error, Result};
pub use graph::{ModelShape, Op, OpGraph, OpGraphBuilder, OpId, OpKind, PrefixGroupId, Work};
pub use profile::DeviceProfile;
pub use report::PlacementReport;
pub use sim::{Arrivals, Dispatch, QueuePolicy, SimReport, SimSettings, Simulation};
pub use solver::{
    Assessment, HomogeneousOption, Infeasibility, Placement, PlacementSolver, SolveMethod,
    SolverSettings,
};

//! The placement solver: the cheapest assignment of ops to devices ($ per request) whose
//! predicted latency meets the SLA and whose memory fits; exact branch-and-bound on small
//! graphs, a heuristic with a reported lower bound on large ones, and a structured
//! explanation when no placement exists.

use crate::catalog::DeviceClass;
use crate::cluster::DeviceId;
use crate::cost::PricedGraph;
use crate::error::{Error, Result};
use crate::graph::OpId;

mod evaluate;
mod exact;
mod explain;
mod heuristic;
mod loads;

pub use explain::Infeasibility;

/// Graphs up to this many ops are solved exactly (the search is exponential in the worst case;
/// the bounds keep 16 ops x 10 devices well under a second).
pub const DEFAULT_EXACT_MAX_OPS: usize = 16;
/// Branch-and-bound nodes before the exact search gives up and reports a gap instead.
pub const DEFAULT_EXACT_NODE_LIMIT: u64 = 2_000_000;

/// What the solver is asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverSettings {
    /// End-to-end latency SLA for one request, in seconds.
    pub sla_s: f64,
    pub exact_max_ops: usize,
    pub exact_node_limit: u64,
}

impl SolverSettings {
    pub fn new(sla_s: f64) -> Self {
        Self {
            sla_s,
            exact_max_ops: DEFAULT_EXACT_MAX_OPS,
            exact_node_limit: DEFAULT_EXACT_NODE_LIMIT,
        }
    }
}

/// Which search produced a placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SolveMethod {
    Exact,
    Heuristic,
}

/// Where and when one op runs, per request.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpPlacement {
    pub op: OpId,
    pub device: DeviceId,
    /// When its inputs are on its device.
    pub ready_s: f64,
    /// Mean queueing delay on its device at the declared load.
    pub wait_s: f64,
    pub finish_s: f64,
    pub busy_s: f64,
    pub usd: f64,
}

/// Memory and load of one device under a placement.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceUsage {
    pub device: DeviceId,
    pub memory_bytes: f64,
    pub capacity_bytes: f64,
    pub utilization: f64,
    pub wait_s: f64,
}

/// A feasible placement and its predicted figures.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Placement {
    /// Device of each op, indexed by [`OpId`].
    pub assignment: Vec<DeviceId>,
    /// $ per request: busy device-seconds x $/s plus link charges.
    pub cost_usd: f64,
    pub latency_s: f64,
    pub sla_s: f64,
    pub critical_path: Vec<OpId>,
    pub ops: Vec<OpPlacement>,
    pub devices: Vec<DeviceUsage>,
    /// No placement meeting the SLA costs less than this.
    pub lower_bound_usd: f64,
    /// `(cost - lower bound) / cost`; 0 when proven optimal.
    pub gap: f64,
    pub method: SolveMethod,
    pub proven_optimal: bool,
    /// Branch-and-bound nodes explored (0 for the heuristic).
    pub nodes_explored: u64,
}

/// The figures of an arbitrary assignment, feasible or not (for tests and what-if reports).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    pub cost_usd: f64,
    pub latency_s: f64,
    pub memory_ok: bool,
    pub utilization_ok: bool,
    /// Runnable, within memory and utilisation limits, and within the SLA.
    pub feasible: bool,
}

/// The best placement using one device type only (host-only ops still use CPUs when the type
/// is a GPU), for the "what would a homogeneous cluster cost" line of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct HomogeneousOption {
    pub device_type: String,
    pub outcome: std::result::Result<Placement, Infeasibility>,
}

/// Finds the cheapest placement that meets the SLA.
#[derive(Debug, Clone)]
pub struct PlacementSolver<'p, 'g> {
    priced: &'p PricedGraph<'g>,
    settings: SolverSettings,
}

impl<'p, 'g> PlacementSolver<'p, 'g> {
    pub fn new(priced: &'p PricedGraph<'g>, settings: SolverSettings) -> Result<Self> {
        if !(settings.sla_s.is_finite() && settings.sla_s > 0.0) {
            return Err(Error::Settings(format!(
                "the SLA must be a positive number of seconds, got {}",
                settings.sla_s
            )));
        }
        Ok(Self { priced, settings })
    }

    /// Exact search on graphs up to `exact_max_ops` ops, the heuristic above that.
    pub fn solve(&self) -> Result<Placement> {
        if self.priced.graph().len() <= self.settings.exact_max_ops {
            self.solve_exact()
        } else {
            self.solve_heuristic()
        }
    }

    /// Branch-and-bound, seeded with the heuristic's placement. If the node limit is hit the
    /// best placement found is returned with `proven_optimal == false` and a gap.
    pub fn solve_exact(&self) -> Result<Placement> {
        let p = self.priced;
        let sla = self.settings.sla_s;
        let prep = explain::prepare(p, sla).map_err(boxed)?;
        let seed = heuristic::solve(p, &prep, sla);
        let best_latency = seed.best_latency_s;
        let incumbent = seed.best.map(|(a, e)| (a, e.cost_usd));
        let lagrange = explain::lagrange_bound(p, &prep, sla);
        let outcome = exact::solve(
            p,
            &prep,
            sla,
            incumbent,
            self.settings.exact_node_limit,
            lagrange.clone(),
        );
        match outcome.best {
            Some((assign, _)) => {
                let lower = if outcome.complete {
                    None
                } else {
                    Some(lagrange.value)
                };
                Ok(self.placement(&assign, SolveMethod::Exact, lower, outcome.nodes))
            }
            None => Err(boxed(Infeasibility::NoPlacementFound {
                sla_s: sla,
                best_latency_s: best_latency,
                latency_lower_bound_s: prep.latency_lb,
                proven: outcome.complete,
            })),
        }
    }

    /// The heuristic alone, with its Lagrangian lower bound and gap.
    pub fn solve_heuristic(&self) -> Result<Placement> {
        let p = self.priced;
        let sla = self.settings.sla_s;
        let prep = explain::prepare(p, sla).map_err(boxed)?;
        let outcome = heuristic::solve(p, &prep, sla);
        match outcome.best {
            Some((assign, _)) => {
                let lower = explain::lagrange_bound(p, &prep, sla).value;
                Ok(self.placement(&assign, SolveMethod::Heuristic, Some(lower), 0))
            }
            None => Err(boxed(Infeasibility::NoPlacementFound {
                sla_s: sla,
                best_latency_s: outcome.best_latency_s,
                latency_lower_bound_s: prep.latency_lb,
                proven: false,
            })),
        }
    }

    /// Lower bound on $ per request of any placement meeting the SLA.
    pub fn lower_bound_usd(&self) -> Result<f64> {
        let prep = explain::prepare(self.priced, self.settings.sla_s).map_err(boxed)?;
        Ok(explain::lagrange_bound(self.priced, &prep, self.settings.sla_s).value)
    }

    /// Cost, latency and feasibility of any complete assignment.
    pub fn assess(&self, assignment: &[DeviceId]) -> Result<Assessment> {
        let assign = self.raw_assignment(assignment)?;
        let e = evaluate::evaluate(self.priced, &assign);
        Ok(Assessment {
            cost_usd: e.cost_usd,
            latency_s: e.latency_s,
            memory_ok: e.memory_ok,
            utilization_ok: e.utilization_ok,
            feasible: e.feasible(self.settings.sla_s),
        })
    }

    /// The best placement per device type of the cluster, cheapest feasible first.
    pub fn homogeneous_alternatives(&self) -> Result<Vec<HomogeneousOption>> {
        let p = self.priced;
        let graph = p.graph();
        let mut out = Vec::new();
        for (t, name) in p.type_names().iter().enumerate() {
            let type_class = p
                .devices()
                .iter()
                .find(|d| d.type_index == t)
                .map(|d| d.class);
            let restricted = p.restricted_per_op(|d, op| {
                d.type_index == t
                    || (graph.op(op).kind.host_only()
                        && d.class == DeviceClass::Cpu
                        && type_class == Some(DeviceClass::Gpu))
            });
            let solver = PlacementSolver {
                priced: &restricted,
                settings: self.settings,
            };
            let outcome = match solver.solve() {
                Ok(placement) => Ok(placement),
                Err(Error::Infeasible(why)) => Err(*why),
                Err(other) => return Err(other),
            };
            out.push(HomogeneousOption {
                device_type: name.clone(),
                outcome,
            });
        }
        out.sort_by(|a, b| match (&a.outcome, &b.outcome) {
            (Ok(x), Ok(y)) => x.cost_usd.total_cmp(&y.cost_usd),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        });
        Ok(out)
    }

    fn raw_assignment(&self, assignment: &[DeviceId]) -> Result<Vec<usize>> {
        let n_dev = self.priced.device_count();
        if assignment.len() != self.priced.graph().len() {
            return Err(Error::Settings(format!(
                "assignment has {} entries for {} ops",
                assignment.len(),
                self.priced.graph().len()
            )));
        }
        assignment
            .iter()
            .map(|d| {
                if d.0 < n_dev {
                    Ok(d.0)
                } else {
                    Err(Error::Settings(format!("device {} does not exist", d.0)))
                }
            })
            .collect()
    }

    fn placement(
        &self,
        assign: &[usize],
        method: SolveMethod,
        lower_bound: Option<f64>,
        nodes: u64,
    ) -> Placement {
        let p = self.priced;
        let e = evaluate::evaluate(p, assign);
        let rps = p.settings().rps;
        let proven = lower_bound.is_none();
        let lower = lower_bound.unwrap_or(e.cost_usd).min(e.cost_usd);
        let gap = if e.cost_usd > 0.0 {
            ((e.cost_usd - lower) / e.cost_usd).max(0.0)
        } else {
            0.0
        };
        Placement {
            assignment: assign.iter().map(|&d| DeviceId(d)).collect(),
            cost_usd: e.cost_usd,
            latency_s: e.latency_s,
            sla_s: self.settings.sla_s,
            critical_path: e.critical_path.clone(),
            ops: (0..assign.len())
                .map(|i| {
                    let c = p.cost(OpId(i), assign[i]);
                    OpPlacement {
                        op: OpId(i),
                        device: DeviceId(assign[i]),
                        ready_s: e.start[i],
                        wait_s: e.wait[i],
                        finish_s: e.finish[i],
                        busy_s: c.map_or(0.0, |c| c.busy_s),
                        usd: c.map_or(0.0, |c| c.usd),
                    }
                })
                .collect(),
            devices: (0..p.device_count())
                .map(|d| DeviceUsage {
                    device: DeviceId(d),
                    memory_bytes: e.loads.memory[d],
                    capacity_bytes: p.devices()[d].capacity,
                    utilization: e.loads.utilization_with(d, 0.0, rps),
                    wait_s: e.device_wait[d],
                })
                .collect(),
            lower_bound_usd: lower,
            gap,
            method,
            proven_optimal: proven,
            nodes_explored: nodes,
        }
    }
}

fn boxed(why: Infeasibility) -> Error {
    Error::Infeasible(Box::new(why))
}

//! The placement study: for each workload (and a mix of them), the cheapest cluster per 1,000
//! runs among homogeneous ones (n GPUs of one type plus a host CPU that runs only host ops) and
//! among heterogeneous ones (CPUs and up to two GPU types, every op free to go anywhere), within
//! a $/hour budget, each at the highest load it sustains with the required SLA attainment in
//! the simulator (found by bisection over the Poisson arrival rate).

use std::path::Path;

use agentc_compiler::tokens::ModelTokens;
use agentc_compiler::{CompileOptions, PlaceInput, compile};
use agentc_placement::sim::{RunClass, SimSettings, Start};
use agentc_placement::{
    Arrivals, Cluster, CostModel, CostSettings, DeviceClass, HardwareCatalog, OpGraph,
    PlacementSolver, PricedGraph, Simulation, SolverSettings,
};
use serde::{Deserialize, Serialize};

use super::suite::{Study, Workload};

/// Relative width of the final bisection interval of the sustainable load.
const LOAD_TOLERANCE: f64 = 0.02;
/// Doublings or halvings tried before the search gives up on bracketing the load.
const MAX_BRACKET_STEPS: u32 = 40;
const SECONDS_PER_HOUR: f64 = 3600.0;
const RUNS_PER_REPORTED_COST: f64 = 1000.0;
/// Arrivals must span this many SLAs, so that a queue that grows without bound misses the SLA
/// (a short burst of runs all batched together would meet it at any rate).
const STEADY_STATE_SLAS: f64 = 20.0;
/// The most runs one probe simulates.
const MAX_RUNS_PER_PROBE: f64 = 60_000.0;

/// The largest rate `r` in `(0, inf)` at which `ok(r)` holds, assuming `ok` holds below some
/// threshold and fails above it: bracket by doubling or halving from `start`, then bisect until
/// the interval is within `tolerance` (relative). `None` when even `start / 2^40` fails.
pub fn max_load<E>(
    start: f64,
    tolerance: f64,
    mut ok: impl FnMut(f64) -> Result<bool, E>,
) -> Result<Option<f64>, E> {
    let (mut lo, mut hi);
    if ok(start)? {
        lo = start;
        hi = start * 2.0;
        let mut steps = 0;
        while ok(hi)? {
            lo = hi;
            hi *= 2.0;
            steps += 1;
            if steps > MAX_BRACKET_STEPS {
                return Ok(Some(lo));
            }
        }
    } else {
        hi = start;
        lo = start / 2.0;
        let mut steps = 0;
        while !ok(lo)? {
            hi = lo;
            lo /= 2.0;
            steps += 1;
            if steps > MAX_BRACKET_STEPS {
                return Ok(None);
            }
        }
    }
    while (hi - lo) > tolerance * lo {
        let mid = 0.5 * (lo + hi);
        if ok(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(lo))
}

/// One candidate cluster: its device counts by type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub name: String,
    pub devices: Vec<(String, u32)>,
    pub usd_per_hour: f64,
    /// GPUs of one type plus a CPU for host-only ops.
    pub homogeneous: bool,
}

/// Where the ops went: device type -> op kinds.
pub type TypePlacement = Vec<(String, Vec<String>)>;

/// The best cluster of one kind for one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub cluster: String,
    pub usd_per_hour: f64,
    /// Highest Poisson load (runs/s) with the required SLA attainment.
    pub max_rps: f64,
    /// Cluster $/hour over that load, per 1,000 runs.
    pub usd_per_1k_runs: f64,
    pub placement: TypePlacement,
}

/// The study's answer for one workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRow {
    pub workload: String,
    pub homogeneous: Option<Best>,
    pub heterogeneous: Option<Best>,
    /// 1 - heterogeneous / homogeneous $ per 1k runs.
    pub saving: Option<f64>,
    /// Every candidate evaluated: (cluster, $/hour, max rps or none, homogeneous).
    pub candidates: Vec<(String, f64, Option<f64>, bool)>,
}

/// Candidate clusters within the budget.
pub fn candidates(study: &Study, catalog: &HardwareCatalog) -> Result<Vec<Candidate>, String> {
    let price = |t: &str| -> Result<f64, String> {
        let ty = catalog
            .get(t)
            .ok_or_else(|| format!("study: device type `{t}` is not in the hardware catalog"))?;
        ty.on_demand
            .as_ref()
            .map(|p| p.usd_per_hour)
            .ok_or_else(|| format!("study: device type `{t}` has no on-demand price"))
    };
    let Some(host) = study.cpu_types.first() else {
        return Err("study: cpu_types must name at least one CPU type".into());
    };
    let mut out = Vec::new();
    let mut push = |devices: Vec<(String, u32)>, homogeneous: bool| -> Result<(), String> {
        let usd: f64 = devices
            .iter()
            .map(|(t, n)| price(t).map(|p| p * f64::from(*n)))
            .sum::<Result<f64, String>>()?;
        if usd <= study.budget_usd_per_hour {
            let name = devices
                .iter()
                .map(|(t, n)| format!("{n}x{t}"))
                .collect::<Vec<_>>()
                .join("+");
            let name = if homogeneous {
                format!("{name} (host)")
            } else {
                name
            };
            out.push(Candidate {
                name,
                devices,
                usd_per_hour: usd,
                homogeneous,
            });
        }
        Ok(())
    };
    for g in &study.gpu_types {
        for n in 1..=study.max_gpus {
            push(vec![(host.clone(), 1), (g.clone(), n)], true)?;
        }
    }
    for cpu in &study.cpu_types {
        for c in 1..=study.max_cpus {
            push(vec![(cpu.clone(), c)], false)?;
            for (i, g1) in study.gpu_types.iter().enumerate() {
                for n1 in 1..=study.max_gpus {
                    push(vec![(cpu.clone(), c), (g1.clone(), n1)], false)?;
                    for g2 in &study.gpu_types[i + 1..] {
                        for n2 in 1..=study.max_gpus.saturating_sub(n1) {
                            push(
                                vec![(cpu.clone(), c), (g1.clone(), n1), (g2.clone(), n2)],
                                false,
                            )?;
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn cluster_yaml(c: &Candidate) -> String {
    let mut s = String::from(
        "name: candidate\npricing: { mode: on_demand }\nnodes:\n  - name: n\n    devices:\n",
    );
    for (t, n) in &c.devices {
        s.push_str(&format!("      - {{ type: {t}, count: {n} }}\n"));
    }
    s
}

/// The operator graph and SLA of a workflow, from the compiler (placed once on `cluster` to
/// get the graph; the study places it again on every candidate).
pub fn op_graph(
    workflow: &Path,
    cluster: &Cluster,
) -> anyhow::Result<Result<(OpGraph, f64), String>> {
    let g = match agentc_compiler::load_workflow(workflow) {
        Ok(g) => g,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let dir = workflow.parent().unwrap_or(Path::new("."));
    let tokens = ModelTokens::for_workflow(&g, dir);
    let facts = agentc_compiler::model_facts::model_facts(&g, dir);
    let input = PlaceInput {
        cluster,
        settings: CostSettings::default(),
        profile: None,
        facts: &facts,
        observed: None,
    };
    let options = CompileOptions {
        tokens: &tokens,
        batch: 1,
        place: Some(&input),
        print: false,
    };
    let compiled = compile(&g, &workflow.display().to_string(), &options)?;
    Ok(match compiled.placed {
        Some(p) => Ok((p.graph, p.sla_s)),
        None => Err(compiled
            .report
            .and_then(|r| r.reason)
            .unwrap_or_else(|| "no placement meets the SLA".into())),
    })
}

/// A workload for the study: one workflow, or a mix of several interleaved round-robin.
pub struct StudyWorkload {
    pub name: String,
    pub parts: Vec<(String, OpGraph, f64)>,
}

/// Places every part on `cluster` (host-only ops on CPUs and everything else on GPUs when
/// `homogeneous`) and finds the highest load meeting the attainment target.
fn evaluate(
    w: &StudyWorkload,
    cluster: &Cluster,
    homogeneous: bool,
    study: &Study,
) -> anyhow::Result<Option<(f64, TypePlacement)>> {
    let cost = CostModel::new(cluster, CostSettings::default())?;
    let mut graphs = Vec::new();
    let mut assignment = Vec::new();
    for (name, graph, sla) in &w.parts {
        let priced = restrict(cost.price(graph), homogeneous);
        let solver = PlacementSolver::new(&priced, SolverSettings::new(*sla))?;
        match solver.solve() {
            Ok(p) => assignment.extend(p.assignment),
            Err(agentc_placement::Error::Infeasible(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        graphs.push((name.as_str(), graph));
    }
    let (union, ranges) = OpGraph::union(&graphs)?;
    let priced = restrict(cost.price(&union), homogeneous);
    let classes: Vec<RunClass> = w
        .parts
        .iter()
        .zip(&ranges)
        .map(|((name, _, sla), r)| RunClass {
            name: name.clone(),
            ops: r.clone(),
            sla_s: *sla,
        })
        .collect();
    let order: Vec<usize> = (0..classes.len()).collect();
    let sim = Simulation::new(
        &cost,
        &priced,
        &assignment,
        classes[0].sla_s,
        SimSettings::default(),
    )?
    .with_classes(classes)?;
    // Start near the load one run at a time would give: the inverse of the slowest SLA.
    let start = 1.0
        / w.parts
            .iter()
            .map(|p| p.2)
            .fold(f64::MIN_POSITIVE, f64::max);
    let found = max_load(start, LOAD_TOLERANCE, |rps| -> anyhow::Result<bool> {
        let span = rps * STEADY_STATE_SLAS * w.parts.iter().map(|p| p.2).fold(0.0, f64::max);
        let runs = span.clamp(study.runs as f64, MAX_RUNS_PER_PROBE.max(study.runs as f64));
        let arrivals = Arrivals::poisson(rps, runs as usize, study.seed)?;
        let r = sim.run_mix(Start::Open(&arrivals), &order)?;
        Ok(r.sla_attainment >= study.min_sla_attainment)
    })?;
    let devices = priced.devices();
    let types = priced.type_names();
    let mut placement: TypePlacement = Vec::new();
    for (i, d) in assignment.iter().enumerate() {
        let t = types[devices[d.0].type_index].clone();
        let kind = union
            .op(agentc_placement::OpId(i))
            .kind
            .as_str()
            .to_string();
        match placement.iter_mut().find(|(x, _)| *x == t) {
            Some((_, kinds)) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => {}
            None => placement.push((t, vec![kind])),
        }
    }
    Ok(found.map(|rps| (rps, placement)))
}

fn restrict<'g>(priced: PricedGraph<'g>, homogeneous: bool) -> PricedGraph<'g> {
    if !homogeneous {
        return priced;
    }
    let graph = priced.graph();
    priced.restricted_per_op(|d, op| (d.class == DeviceClass::Gpu) != graph.op(op).kind.host_only())
}

/// Runs the study for every workload; `progress` gets one line per workload.
pub fn run(
    study: &Study,
    workloads: &[Workload],
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Vec<StudyRow>> {
    let catalog = HardwareCatalog::builtin()?;
    let cands = candidates(study, &catalog).map_err(anyhow::Error::msg)?;
    let clusters: Vec<Cluster> = cands
        .iter()
        .map(|c| Cluster::from_yaml_str(&cluster_yaml(c), &c.name, &catalog))
        .collect::<Result<_, _>>()?;
    // The graph does not depend on the cluster; place once on the richest candidate.
    let Some(richest) = clusters.iter().max_by_key(|c| c.devices().len()) else {
        anyhow::bail!(
            "study: no candidate cluster fits the budget of ${}/hour",
            study.budget_usd_per_hour
        );
    };
    let mut items: Vec<StudyWorkload> = Vec::new();
    for w in workloads {
        match op_graph(&w.workflow, richest)? {
            Ok((g, sla)) => items.push(StudyWorkload {
                name: w.name.clone(),
                parts: vec![(w.name.clone(), g, sla)],
            }),
            Err(why) => progress(&format!("SKIPPED {} in the study: {why}", w.name)),
        }
    }
    if !study.mix.is_empty() {
        let parts: Vec<_> = study
            .mix
            .iter()
            .filter_map(|m| {
                items
                    .iter()
                    .find(|i| &i.name == m)
                    .map(|i| i.parts[0].clone())
            })
            .collect();
        if parts.len() > 1 {
            items.push(StudyWorkload {
                name: format!("mix({})", study.mix.join("+")),
                parts,
            });
        }
    }
    let mut rows = Vec::new();
    for item in &items {
        let mut row = StudyRow {
            workload: item.name.clone(),
            homogeneous: None,
            heterogeneous: None,
            saving: None,
            candidates: Vec::new(),
        };
        for (cand, cluster) in cands.iter().zip(&clusters) {
            let found = evaluate(item, cluster, cand.homogeneous, study)?;
            row.candidates.push((
                cand.name.clone(),
                cand.usd_per_hour,
                found.as_ref().map(|f| f.0),
                cand.homogeneous,
            ));
            let Some((rps, placement)) = found else {
                continue;
            };
            let best = Best {
                cluster: cand.name.clone(),
                usd_per_hour: cand.usd_per_hour,
                max_rps: rps,
                usd_per_1k_runs: cand.usd_per_hour / SECONDS_PER_HOUR / rps
                    * RUNS_PER_REPORTED_COST,
                placement,
            };
            let slot = if cand.homogeneous {
                &mut row.homogeneous
            } else {
                &mut row.heterogeneous
            };
            if slot
                .as_ref()
                .is_none_or(|b| best.usd_per_1k_runs < b.usd_per_1k_runs)
            {
                *slot = Some(best);
            }
        }
        if let (Some(h), Some(x)) = (&row.homogeneous, &row.heterogeneous) {
            row.saving = Some(1.0 - x.usd_per_1k_runs / h.usd_per_1k_runs);
        }
        progress(&format!(
            "study {}: {} candidates, best homogeneous {}, best heterogeneous {}",
            item.name,
            cands.len(),
            row.homogeneous.as_ref().map_or("none".into(), |b| format!(
                "{} ${:.5}/1k",
                b.cluster, b.usd_per_1k_runs
            )),
            row.heterogeneous
                .as_ref()
                .map_or("none".into(), |b| format!(
                    "{} ${:.5}/1k",
                    b.cluster, b.usd_per_1k_runs
                )),
        ));
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::max_load;

    #[test]
    fn bisection_finds_a_closed_form_threshold() {
        // M/D/1 with D = 0.25 s: the mean wait rho D / (2 (1 - rho)) stays within 0.5 s while
        // rho <= 0.8, i.e. up to 3.2 runs/s.
        let d = 0.25;
        let ok = |rps: f64| -> Result<bool, ()> {
            let rho: f64 = rps * d;
            Ok(rho < 1.0 && rho * d / (2.0 * (1.0 - rho)) <= 0.5)
        };
        for start in [0.01, 1.0, 100.0] {
            let found = max_load(start, 1e-6, ok).expect("no error").expect("found");
            assert!((found - 3.2).abs() <= 3.2e-6, "start {start}: {found}");
        }
        let never = max_load(1.0, 0.01, |_| Ok::<bool, ()>(false)).expect("no error");
        assert_eq!(never, None);
    }
}

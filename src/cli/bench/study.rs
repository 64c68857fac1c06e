//! The placement study: for each workload (and a mix of them), the cheapest cluster per 1,000
//! runs among homogeneous ones (n GPUs of one type plus a host CPU that runs only host ops) and
//! among heterogeneous ones (CPUs and up to two GPU types, every op free to go anywhere), within
//! a $/hour budget, each at the highest load it sustains with the required SLA attainment in
//! the simulator (found by bisection over the Poisson arrival rate).

use std::path::Path;

use agentc_compiler::{Target, compile_graph};
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
/// Arrivals of a probe span at least this long, and twice the longest latency seen: the first
/// half fills the pipeline, the second half is where completions are counted against arrivals
/// (a short burst all batched together would meet the SLA at any rate).
const MIN_SPAN_S: f64 = 5.0;
/// ... and need not span more than this many SLAs.
const MIN_SPAN_SLAS: f64 = 2.0;
/// The most runs one probe simulates (memory grows with runs x ops); a load that needs more to
/// span its window is not certified.
const MAX_RUNS_PER_PROBE: f64 = 300_000.0;
/// A load is sustained only if runs complete at least this fraction as fast as they arrive in
/// the second half of the window (Poisson noise on a few thousand runs is about 2%).
const MIN_LATE_COMPLETION_RATIO: f64 = 0.97;

/// The largest rate `r` in `(0, inf)` at which `ok(r)` holds, assuming `ok` holds below some
/// threshold and fails above it: bracket by doubling or halving from `start`, then bisect until
/// the interval is within `tolerance` (relative). `None` when even `start / 2^40` fails.
/// `start_ok` is `ok(start)` when the caller already knows it.
pub fn max_load<E>(
    start: f64,
    start_ok: Option<bool>,
    tolerance: f64,
    mut ok: impl FnMut(f64) -> Result<bool, E>,
) -> Result<Option<f64>, E> {
    let (mut lo, mut hi);
    let start_ok = match start_ok {
        Some(known) => known,
        None => ok(start)?,
    };
    if start_ok {
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
    /// Every candidate evaluated: (cluster, $/hour, max rps, homogeneous); the rps is `None`
    /// when nothing is feasible or the candidate cannot beat the best of its kind found before
    /// it (it fails one probe at the load that would make it cheaper).
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
    let target = Target {
        cluster: Some(cluster),
        settings: CostSettings::default(),
        profile: None,
        batch: 1,
        observed: None,
        print: false,
    };
    let compiled = compile_graph(g, workflow, &target)?.compiled;
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

/// What evaluating a candidate found.
enum Outcome {
    /// The highest load meeting the attainment target, and where the ops went.
    Sustains(f64, TypePlacement),
    /// It cannot carry the load at which it would beat the best cluster found so far.
    Pruned,
    /// No placement meets the SLA, or no load does.
    Infeasible,
}

/// Places every part on `cluster` (host-only ops on CPUs and everything else on GPUs when
/// `homogeneous`) and finds the highest load meeting the attainment target. With `beat`, the
/// load at which the candidate would be cheaper per run than the best so far, one probe there
/// decides whether a search is worth it.
fn evaluate(
    w: &StudyWorkload,
    cluster: &Cluster,
    homogeneous: bool,
    study: &Study,
    beat: Option<f64>,
) -> anyhow::Result<Outcome> {
    let cost = CostModel::new(cluster, CostSettings::default())?;
    let mut graphs = Vec::new();
    let mut assignment = Vec::new();
    for (name, graph, sla) in &w.parts {
        let priced = restrict(cost.price(graph), homogeneous);
        let solver = PlacementSolver::new(&priced, SolverSettings::new(*sla))?;
        match solver.solve() {
            Ok(p) => assignment.extend(p.assignment),
            Err(agentc_placement::Error::Infeasible(_)) => return Ok(Outcome::Infeasible),
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
    let slowest_sla = w.parts.iter().map(|p| p.2).fold(0.0, f64::max);
    let capacity = capacity_bound(&cost, &priced, &assignment, &ranges);
    let ok = |rps: f64| -> anyhow::Result<bool> {
        if rps > capacity {
            return Ok(false);
        }
        // The shortest window that says something: every run's latency fits twice in it, so
        // the second half sees the pipeline full. Lengthened until it does, up to
        // `MIN_SPAN_SLAS` SLAs (where any stable latency fits).
        let longest = MIN_SPAN_SLAS * slowest_sla;
        let mut span = (study.runs as f64 / rps).max(MIN_SPAN_S).min(longest);
        loop {
            let runs = (rps * span).ceil().max(study.runs as f64);
            if runs > MAX_RUNS_PER_PROBE {
                return Ok(false);
            }
            let runs = runs as usize;
            // A probe fails once more runs miss the SLA than the target allows.
            let allowed = ((1.0 - study.min_sla_attainment) * runs as f64).floor() as usize;
            let settings = SimSettings {
                stop_after_misses: Some(allowed),
                ..SimSettings::default()
            };
            let sim = Simulation::new(&cost, &priced, &assignment, classes[0].sla_s, settings)?
                .with_classes(classes.clone())?;
            let arrivals = Arrivals::poisson(rps, runs, study.seed)?;
            let r = sim.run_mix(Start::Open(&arrivals), &order)?;
            if r.sla_attainment < study.min_sla_attainment
                || r.late_completion_ratio < MIN_LATE_COMPLETION_RATIO
            {
                return Ok(false);
            }
            if 2.0 * r.latency_max_s <= span || span >= longest {
                return Ok(true);
            }
            span = (4.0 * span).max(2.0 * r.latency_max_s).min(longest);
        }
    };
    let (start, start_ok) = match beat {
        Some(need) => {
            if !ok(need)? {
                return Ok(Outcome::Pruned);
            }
            (need, Some(true))
        }
        // Near the load one run at a time would give: the inverse of the slowest SLA.
        None => (1.0 / slowest_sla.max(f64::MIN_POSITIVE), None),
    };
    let Some(rps) = max_load(start, start_ok, LOAD_TOLERANCE, ok)? else {
        return Ok(Outcome::Infeasible);
    };
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
    Ok(Outcome::Sustains(rps, placement))
}

/// An upper bound on the runs per second the placed mix can complete (runs of the classes in
/// turn): each pool of devices of one type needs, per run, at least the busy time of its
/// unbatched ops plus the bare compute of its batched ones (a batch of any size still does
/// every member's FLOPs), and has as many device-seconds per second as it has devices.
fn capacity_bound(
    cost: &CostModel,
    priced: &PricedGraph,
    assignment: &[agentc_placement::DeviceId],
    classes: &[std::ops::Range<usize>],
) -> f64 {
    let devices = priced.devices();
    let graph = priced.graph();
    let types = priced.type_names().len();
    let mut per_type = vec![0.0f64; types];
    for (op, d) in assignment.iter().enumerate() {
        let o = graph.op(agentc_placement::OpId(op));
        let batched = o.model.is_some()
            && matches!(
                o.kind,
                agentc_placement::OpKind::Prefill | agentc_placement::OpKind::Decode
            );
        let need = if batched {
            cost.compute_s(*d, &o.work.flops).unwrap_or(0.0)
        } else {
            priced
                .cost(agentc_placement::OpId(op), d.0)
                .map_or(0.0, |c| c.busy_s)
        };
        per_type[devices[d.0].type_index] += need;
    }
    // Busy seconds per run of the mix: the classes' ops summed, divided by the classes.
    let runs_per_round = classes.len().max(1) as f64;
    (0..types)
        .filter(|&t| per_type[t] > 0.0)
        .map(|t| {
            let count = devices.iter().filter(|d| d.type_index == t).count() as f64;
            count * runs_per_round / per_type[t]
        })
        .fold(f64::INFINITY, f64::min)
}

fn restrict<'g>(priced: PricedGraph<'g>, homogeneous: bool) -> PricedGraph<'g> {
    if !homogeneous {
        return priced;
    }
    let graph = priced.graph();
    priced.restricted_per_op(|d, op| (d.class == DeviceClass::Gpu) != graph.op(op).kind.host_only())
}

/// What a study row shows, in a sentence: where the mixed cluster is cheaper, the ops it moved
/// to device types the best homogeneous cluster lacks.
pub fn finding(row: &StudyRow) -> String {
    let (Some(h), Some(x), Some(saving)) = (&row.homogeneous, &row.heterogeneous, row.saving)
    else {
        return "no comparison (a side has no feasible cluster within the budget)".into();
    };
    // Each side's load is known within LOAD_TOLERANCE, so their ratio within about twice that.
    let noise = 2.0 * LOAD_TOLERANCE;
    if saving <= noise {
        return format!(
            "one GPU type is as good: {} ({:+.0}%, within the {:.0}% the loads are known to)",
            h.cluster,
            100.0 * saving,
            100.0 * noise
        );
    }
    let moved: Vec<String> = x
        .placement
        .iter()
        .filter(|(t, _)| !h.placement.iter().any(|(ht, _)| ht == t))
        .map(|(t, kinds)| format!("{} on {t}", kinds.join(",")))
        .collect();
    format!(
        "operator-level placement is {:.0}% cheaper per run ({})",
        100.0 * saving,
        if moved.is_empty() {
            "same device types, ops placed differently".to_string()
        } else {
            moved.join("; ")
        }
    )
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
        // Homogeneous clusters first, then mixed ones; within each the dearest (largest) first:
        // large clusters multiplex load best, so a good best is found early and the smaller
        // candidates after it mostly fail their single probe.
        let mut order: Vec<usize> = (0..cands.len()).collect();
        order.sort_by(|&a, &b| {
            (!cands[a].homogeneous, -cands[a].usd_per_hour)
                .partial_cmp(&(!cands[b].homogeneous, -cands[b].usd_per_hour))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for (cand, cluster) in order.iter().map(|&i| (&cands[i], &clusters[i])) {
            let slot = if cand.homogeneous {
                &mut row.homogeneous
            } else {
                &mut row.heterogeneous
            };
            // The load at which this cluster would cost less per run than the best so far.
            let beat = slot.as_ref().map(|b| {
                cand.usd_per_hour / SECONDS_PER_HOUR * RUNS_PER_REPORTED_COST / b.usd_per_1k_runs
            });
            let outcome = evaluate(item, cluster, cand.homogeneous, study, beat)?;
            let max_rps = match &outcome {
                Outcome::Sustains(rps, _) => Some(*rps),
                Outcome::Pruned | Outcome::Infeasible => None,
            };
            row.candidates.push((
                cand.name.clone(),
                cand.usd_per_hour,
                max_rps,
                cand.homogeneous,
            ));
            let Outcome::Sustains(rps, placement) = outcome else {
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
    use super::{Best, StudyRow, finding, max_load};

    #[test]
    fn findings_name_the_ops_moved_to_other_device_types() {
        let best = |cluster: &str, usd: f64, placement: &[(&str, &[&str])]| Best {
            cluster: cluster.into(),
            usd_per_hour: 1.0,
            max_rps: 1.0,
            usd_per_1k_runs: usd,
            placement: placement
                .iter()
                .map(|(t, k)| (t.to_string(), k.iter().map(|s| s.to_string()).collect()))
                .collect(),
        };
        let mut row = StudyRow {
            workload: "rag".into(),
            homogeneous: Some(best(
                "h",
                1.0,
                &[("cpu", &["tokenize"]), ("h100", &["embed", "decode"])],
            )),
            heterogeneous: Some(best(
                "x",
                0.4,
                &[
                    ("l4", &["embed"]),
                    ("cpu", &["tokenize"]),
                    ("h100", &["decode"]),
                ],
            )),
            saving: Some(0.6),
            candidates: Vec::new(),
        };
        assert_eq!(
            finding(&row),
            "operator-level placement is 60% cheaper per run (embed on l4)"
        );
        row.saving = Some(-0.01);
        assert_eq!(
            finding(&row),
            "one GPU type is as good: h (-1%, within the 4% the loads are known to)"
        );
        row.homogeneous = None;
        assert_eq!(
            finding(&row),
            "no comparison (a side has no feasible cluster within the budget)"
        );
    }

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
            let found = max_load(start, None, 1e-6, ok)
                .expect("no error")
                .expect("found");
            assert!((found - 3.2).abs() <= 3.2e-6, "start {start}: {found}");
        }
        // A start known to be sustainable is not probed again.
        let mut probes = Vec::new();
        let found = max_load(2.0, Some(true), 1e-3, |r| {
            probes.push(r);
            ok(r)
        })
        .expect("no error")
        .expect("found");
        assert!(
            (found - 3.2).abs() <= 3.2e-3 && !probes.contains(&2.0),
            "{probes:?}"
        );
        let never = max_load(1.0, None, 0.01, |_| Ok::<bool, ()>(false)).expect("no error");
        assert_eq!(never, None);
    }
}

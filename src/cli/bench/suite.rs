//! Benchmark suite files: which workflows to measure on this machine (and simulate in the same
//! configuration), and which to put through the placement study.
//!
//! ```yaml
//! name: local
//! workloads:
//!   - { name: judge, workflow: ../llm_judge.yaml, inputs: ../inputs/llm_judge.jsonl }
//! measured:                       # runs on this machine, side by side with the simulator
//!   systems: [agentc, agentc-no-opt]
//!   concurrency: [1, 4]
//!   runs: 4                       # runs per (workload, system, concurrency); inputs cycle
//! study:                          # simulated only: best heterogeneous vs homogeneous cluster
//!   budget_usd_per_hour: 40
//!   gpu_types: [l4, a10g, h100-sxm]
//!   cpu_types: [xeon-8480p]
//!   max_gpus: 4
//!   max_cpus: 2
//!   min_sla_attainment: 0.99
//!   runs: 600                     # simulated runs per load probed
//!   mix: [judge, chains]          # an extra workload interleaving these
//! ```
//!
//! Paths are relative to the suite file. Errors name `file:line:col`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// The systems a measured entry can compare.
pub const SYSTEMS: [&str; 2] = ["agentc", "agentc-no-opt"];

#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    pub workloads: Vec<Workload>,
    pub measured: Option<Measured>,
    pub study: Option<Study>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub name: String,
    pub workflow: PathBuf,
    pub inputs: Option<PathBuf>,
    /// Overrides `measured.runs` for this workload.
    pub runs: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub systems: Vec<String>,
    pub concurrency: Vec<usize>,
    pub runs: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    pub budget_usd_per_hour: f64,
    pub gpu_types: Vec<String>,
    pub cpu_types: Vec<String>,
    pub max_gpus: u32,
    pub max_cpus: u32,
    pub min_sla_attainment: f64,
    pub runs: usize,
    pub seed: u64,
    /// Names of the workloads interleaved in the mixed workload (empty: none).
    pub mix: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    workloads: Spanned<Vec<RawWorkload>>,
    measured: Option<RawMeasured>,
    study: Option<RawStudy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    name: Spanned<String>,
    workflow: Spanned<String>,
    inputs: Option<Spanned<String>>,
    runs: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasured {
    systems: Vec<Spanned<String>>,
    concurrency: Vec<Spanned<usize>>,
    runs: Spanned<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    budget_usd_per_hour: Spanned<f64>,
    gpu_types: Vec<Spanned<String>>,
    cpu_types: Vec<Spanned<String>>,
    max_gpus: Spanned<u32>,
    max_cpus: Spanned<u32>,
    min_sla_attainment: Spanned<f64>,
    runs: Spanned<usize>,
    seed: Option<u64>,
    #[serde(default)]
    mix: Vec<Spanned<String>>,
}

/// Reads and checks a suite file.
pub fn load(path: &Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, path)
}

/// Parses a suite; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Suite, String> {
    let origin = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    let at =
        |loc: &Location, msg: String| format!("{origin}:{}:{}: {msg}", loc.line(), loc.column());
    let options = serde_saphyr::options! { with_snippet: false };
    let raw: RawSuite = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, col) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let msg = e.without_snippet().to_string();
        let msg = msg
            .rfind(" at line ")
            .map_or(msg.as_str(), |cut| &msg[..cut])
            .to_string();
        format!("{origin}:{line}:{col}: {msg}")
    })?;
    if raw.workloads.value.is_empty() {
        return Err(at(
            &raw.workloads.referenced,
            "the suite has no workloads".into(),
        ));
    }
    let mut workloads: Vec<Workload> = Vec::new();
    for w in &raw.workloads.value {
        if workloads.iter().any(|x| x.name == w.name.value) {
            return Err(at(
                &w.name.referenced,
                format!("workload name `{}` is used twice", w.name.value),
            ));
        }
        let file = |s: &Spanned<String>| -> Result<PathBuf, String> {
            let p = dir.join(&s.value);
            if p.is_file() {
                Ok(p)
            } else {
                Err(at(
                    &s.referenced,
                    format!(
                        "`{}` does not exist (paths are relative to the suite file)",
                        s.value
                    ),
                ))
            }
        };
        if let Some(r) = &w.runs
            && r.value == 0
        {
            return Err(at(&r.referenced, "runs must be at least 1".into()));
        }
        workloads.push(Workload {
            name: w.name.value.clone(),
            workflow: file(&w.workflow)?,
            inputs: w.inputs.as_ref().map(file).transpose()?,
            runs: w.runs.as_ref().map(|r| r.value),
        });
    }
    let measured = match raw.measured {
        None => None,
        Some(m) => {
            for s in &m.systems {
                if !SYSTEMS.contains(&s.value.as_str()) {
                    return Err(at(
                        &s.referenced,
                        format!(
                            "unknown system `{}`; the systems are {}",
                            s.value,
                            SYSTEMS.join(", ")
                        ),
                    ));
                }
            }
            if let Some(c) = m.concurrency.iter().find(|c| c.value == 0) {
                return Err(at(&c.referenced, "concurrency must be at least 1".into()));
            }
            if m.runs.value == 0 {
                return Err(at(&m.runs.referenced, "runs must be at least 1".into()));
            }
            for (w, raw_w) in workloads.iter().zip(&raw.workloads.value) {
                if w.inputs.is_none() {
                    return Err(at(
                        &raw_w.name.referenced,
                        format!("workload `{}` is measured but has no `inputs` file", w.name),
                    ));
                }
            }
            Some(Measured {
                systems: m.systems.into_iter().map(|s| s.value).collect(),
                concurrency: m.concurrency.into_iter().map(|c| c.value).collect(),
                runs: m.runs.value,
            })
        }
    };
    let study = match raw.study {
        None => None,
        Some(s) => {
            let b = &s.budget_usd_per_hour;
            if !(b.value.is_finite() && b.value > 0.0) {
                return Err(at(
                    &b.referenced,
                    format!(
                        "budget_usd_per_hour must be a positive number, got {}",
                        b.value
                    ),
                ));
            }
            let a = &s.min_sla_attainment;
            if !(a.value > 0.0 && a.value <= 1.0) {
                return Err(at(
                    &a.referenced,
                    format!("min_sla_attainment must be in (0, 1], got {}", a.value),
                ));
            }
            if s.runs.value == 0 {
                return Err(at(&s.runs.referenced, "runs must be at least 1".into()));
            }
            for m in &s.mix {
                if !workloads.iter().any(|w| w.name == m.value) {
                    return Err(at(
                        &m.referenced,
                        format!(
                            "mix names workload `{}`, which the suite does not have",
                            m.value
                        ),
                    ));
                }
            }
            Some(Study {
                budget_usd_per_hour: b.value,
                gpu_types: s.gpu_types.into_iter().map(|t| t.value).collect(),
                cpu_types: s.cpu_types.into_iter().map(|t| t.value).collect(),
                max_gpus: s.max_gpus.value,
                max_cpus: s.max_cpus.value.max(1),
                min_sla_attainment: a.value,
                runs: s.runs.value,
                seed: s.seed.unwrap_or(1),
                mix: s.mix.into_iter().map(|m| m.value).collect(),
            })
        }
    };
    Ok(Suite {
        name: raw.name,
        workloads,
        measured,
        study,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/suites/t.yaml");
        parse(text, &dir)
            .expect_err("invalid")
            .replace(env!("CARGO_MANIFEST_DIR"), "ROOT")
    }

    const HEAD: &str = "name: t\nworkloads:\n  - { name: j, workflow: ../llm_judge.yaml, inputs: ../inputs/llm_judge.jsonl }\n";

    #[test]
    fn the_shipped_suites_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let local = load(&root.join("examples/suites/local.yaml")).expect("local");
        assert_eq!(local.measured.expect("measured").concurrency, vec![1, 4]);
        let study = load(&root.join("examples/suites/study.yaml")).expect("study");
        assert_eq!(study.study.expect("study").min_sla_attainment, 0.99);
    }

    #[test]
    fn bad_suites_give_exact_errors() {
        assert_eq!(
            err(&format!(
                "{HEAD}measured: {{ systems: [agentc, vllm], concurrency: [1], runs: 2 }}\n"
            )),
            "ROOT/examples/suites/t.yaml:4:31: unknown system `vllm`; the systems are agentc, agentc-no-opt"
        );
        assert_eq!(
            err(&format!(
                "{HEAD}measured: {{ systems: [agentc], concurrency: [1, 0], runs: 2 }}\n"
            )),
            "ROOT/examples/suites/t.yaml:4:49: concurrency must be at least 1"
        );
        assert_eq!(
            err("name: t\nworkloads:\n  - { name: j, workflow: ../nope.yaml }\n"),
            "ROOT/examples/suites/t.yaml:3:26: `../nope.yaml` does not exist (paths are relative to the suite file)"
        );
        assert_eq!(
            err(
                "name: t\nworkloads:\n  - { name: j, workflow: ../llm_judge.yaml }\nmeasured: { systems: [agentc], concurrency: [1], runs: 1 }\n"
            ),
            "ROOT/examples/suites/t.yaml:3:13: workload `j` is measured but has no `inputs` file"
        );
        assert_eq!(
            err(&format!(
                "{HEAD}study: {{ budget_usd_per_hour: 10, gpu_types: [l4], cpu_types: [xeon-8480p], max_gpus: 1, max_cpus: 1, min_sla_attainment: 1.5, runs: 10 }}\n"
            )),
            "ROOT/examples/suites/t.yaml:4:123: min_sla_attainment must be in (0, 1], got 1.5"
        );
        assert_eq!(
            err(&format!(
                "{HEAD}study: {{ budget_usd_per_hour: 10, gpu_types: [l4], cpu_types: [xeon-8480p], max_gpus: 1, max_cpus: 1, min_sla_attainment: 0.9, runs: 10, mix: [j, k] }}\n"
            )),
            "ROOT/examples/suites/t.yaml:4:147: mix names workload `k`, which the suite does not have"
        );
        assert_eq!(
            err("name: t\nworkloads: []\n"),
            "ROOT/examples/suites/t.yaml:2:12: the suite has no workloads"
        );
        let unknown = err(&format!("{HEAD}measure: 1\n"));
        assert!(
            unknown.starts_with("ROOT/examples/suites/t.yaml:4:1: unknown field `measure`"),
            "{unknown}"
        );
    }
}

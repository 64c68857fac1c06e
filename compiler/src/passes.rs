//! The pass pipeline: small Rust passes over melior IR, verified after every pass, with the IR
//! dumped before and after each when `AGENTC_DUMP_IR=dir` is set, and a report of what ran.

pub mod cse;
pub mod dce;
pub mod form_batches;
pub(crate) mod ir;
mod ir_mut;
pub mod lower_agent_to_exec;
pub mod place;
pub mod share_prefixes;

use std::path::PathBuf;
use std::time::Instant;

use melior::Context;
use melior::ir::Module;

use crate::tokens::TokenCounter;
use crate::{Error, Result};

/// What every pass may read: the context and how to count tokens.
pub struct PassContext<'c, 't> {
    pub context: &'c Context,
    pub tokens: &'t dyn TokenCounter,
    /// Queries compiled together by `--batch N` (1: one query).
    pub batch: usize,
    /// The cluster and cost settings to place for; without them `place` changes nothing.
    pub place: Option<&'t place::PlaceInput<'t>>,
    /// Set by `place` when it finds a placement: the solver's graph and assignment, for the
    /// simulator.
    pub placed: std::cell::OnceCell<agentc_placement::sim::PlacedGraph>,
}

/// One pass: transforms the module in place (or replaces it) and says whether anything changed.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run<'c>(&self, cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool>;
}

/// What one pass did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PassReport {
    pub pass: &'static str,
    pub changed: bool,
    pub micros: u128,
    /// Time spent verifying the IR after the pass.
    pub verify_micros: u128,
}

pub struct Pipeline {
    passes: Vec<Box<dyn Pass>>,
    dump_dir: Option<PathBuf>,
}

/// Environment variable naming a directory to dump the IR into before and after each pass.
pub const DUMP_IR_ENV: &str = "AGENTC_DUMP_IR";

impl Pipeline {
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline {
            passes,
            dump_dir: std::env::var_os(DUMP_IR_ENV).map(PathBuf::from),
        }
    }

    /// The standard pipeline from the `agent` dialect to placed `exec` (unplaced when the
    /// context has no cluster).
    pub fn standard() -> Pipeline {
        Pipeline::new(vec![
            Box::new(lower_agent_to_exec::LowerAgentToExec),
            Box::new(cse::Cse),
            Box::new(dce::Dce),
            Box::new(share_prefixes::SharePrefixes),
            Box::new(form_batches::FormBatches),
            Box::new(place::Place),
        ])
    }

    pub fn with_dump_dir(mut self, dir: Option<PathBuf>) -> Pipeline {
        self.dump_dir = dir;
        self
    }

    pub fn run<'c>(
        &self,
        cx: &PassContext<'c, '_>,
        module: &mut Module<'c>,
    ) -> Result<Vec<PassReport>> {
        self.run_observed(cx, module, &mut |_, _| {})
    }

    /// Runs the pipeline, calling `observe` with each pass's report and the IR after it.
    pub fn run_observed<'c>(
        &self,
        cx: &PassContext<'c, '_>,
        module: &mut Module<'c>,
        observe: &mut dyn FnMut(&PassReport, &Module<'c>),
    ) -> Result<Vec<PassReport>> {
        let mut reports = Vec::new();
        for (i, pass) in self.passes.iter().enumerate() {
            self.dump(i, pass.name(), "before", module)?;
            let start = Instant::now();
            let changed = pass.run(cx, module)?;
            let micros = start.elapsed().as_micros();
            let verify_start = Instant::now();
            agentc_plan::verify(cx.context, module).map_err(|e| {
                Error::Internal(format!(
                    "IR does not verify after pass `{}`: {e}",
                    pass.name()
                ))
            })?;
            self.dump(i, pass.name(), "after", module)?;
            let report = PassReport {
                pass: pass.name(),
                changed,
                micros,
                verify_micros: verify_start.elapsed().as_micros(),
            };
            observe(&report, module);
            reports.push(report);
        }
        Ok(reports)
    }

    fn dump(&self, index: usize, pass: &str, when: &str, module: &Module) -> Result<()> {
        let Some(dir) = &self.dump_dir else {
            return Ok(());
        };
        let path = dir.join(format!("{index:02}-{pass}-{when}.mlir"));
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&path, module.as_operation().to_string()))
            .map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })
    }
}

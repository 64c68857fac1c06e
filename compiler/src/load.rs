//! Reading workflow files from disk with bounded memory.

use std::io::Read;
use std::path::Path;

use crate::frontend::{self, yaml::MAX_FILE_BYTES};
use crate::graph::WorkflowGraph;
use crate::{Error, Result};

/// Reads and validates a workflow file. Never reads more than the size limit plus one byte, so
/// a huge file costs no more than a small one.
pub fn load_workflow(path: &Path) -> Result<WorkflowGraph> {
    let shown = path.display().to_string();
    let io = |source| Error::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(frontend::parse(&shown, &bytes)?)
}

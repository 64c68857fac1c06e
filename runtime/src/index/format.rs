//! Reading and writing the index directory, with a length and CRC-32 check of every data file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::graph::{GraphParams, VectorGraph};
use super::{Metric, Passage};
use crate::error::{Error, Result};

/// Version of the on-disk layout; bumped on incompatible changes.
pub const INDEX_FORMAT: u32 = 1;
pub const META_FILE: &str = "index.json";
pub const PASSAGES_FILE: &str = "passages.jsonl";
pub const GRAPH_FILE: &str = "graph.bin";

/// `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub format: u32,
    /// Name of the embedding model that embedded the passages (its directory name).
    pub model: String,
    pub dim: usize,
    pub metric: Metric,
    pub passages: usize,
    pub graph: GraphParams,
    /// Data file name -> its length and checksum.
    pub files: BTreeMap<String, FileCheck>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub bytes: u64,
    pub crc32: u32,
}

impl IndexMeta {
    pub fn new(
        model: &str,
        dim: usize,
        metric: Metric,
        passages: usize,
        graph: GraphParams,
    ) -> Self {
        Self {
            format: INDEX_FORMAT,
            model: model.to_string(),
            dim,
            metric,
            passages,
            graph,
            files: BTreeMap::new(),
        }
    }
}

fn index_error(path: PathBuf, reason: impl std::fmt::Display) -> Error {
    Error::IndexFile {
        path,
        reason: reason.to_string(),
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| index_error(path.to_path_buf(), e))
}

pub fn save(dir: &Path, meta: &IndexMeta, passages: &[Passage], graph: &VectorGraph) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| index_error(dir.to_path_buf(), e))?;
    let mut lines = Vec::new();
    for p in passages {
        serde_json::to_writer(&mut lines, p)
            .map_err(|e| index_error(dir.join(PASSAGES_FILE), e))?;
        lines.push(b'\n');
    }
    let graph_bytes =
        postcard::to_stdvec(graph).map_err(|e| index_error(dir.join(GRAPH_FILE), e))?;
    let mut meta = meta.clone();
    meta.files.clear();
    for (name, bytes) in [(PASSAGES_FILE, &lines), (GRAPH_FILE, &graph_bytes)] {
        write(&dir.join(name), bytes)?;
        meta.files.insert(
            name.to_string(),
            FileCheck {
                bytes: bytes.len() as u64,
                crc32: crc32fast::hash(bytes),
            },
        );
    }
    // The metadata goes last: a build interrupted before this point leaves no loadable index.
    let text =
        serde_json::to_string_pretty(&meta).map_err(|e| index_error(dir.join(META_FILE), e))?;
    write(&dir.join(META_FILE), text.as_bytes())
}

/// Reads `name` and checks it against the length and checksum `meta` records.
fn read_checked(dir: &Path, meta: &IndexMeta, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let check = meta
        .files
        .get(name)
        .ok_or_else(|| index_error(dir.join(META_FILE), format!("lists no file {name}")))?;
    let bytes = std::fs::read(&path).map_err(|e| index_error(path.clone(), e))?;
    if bytes.len() as u64 != check.bytes {
        return Err(index_error(
            path,
            format!(
                "is {} bytes, {META_FILE} records {} (truncated or rewritten); rebuild the index",
                bytes.len(),
                check.bytes
            ),
        ));
    }
    let crc = crc32fast::hash(&bytes);
    if crc != check.crc32 {
        return Err(index_error(
            path,
            format!(
                "checksum {crc:08x} differs from {:08x} recorded in {META_FILE} (corrupted); rebuild the index",
                check.crc32
            ),
        ));
    }
    Ok(bytes)
}

pub fn load(dir: &Path) -> Result<(IndexMeta, Vec<Passage>, VectorGraph)> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&meta_path).map_err(|e| {
        index_error(
            meta_path.clone(),
            format!(
                "{e}; build the index with `agentc index build SRC -o {}`",
                dir.display()
            ),
        )
    })?;
    let meta: IndexMeta =
        serde_json::from_str(&text).map_err(|e| index_error(meta_path.clone(), e))?;
    if meta.format != INDEX_FORMAT {
        return Err(index_error(
            meta_path,
            format!(
                "has format {}, this build reads format {INDEX_FORMAT}; rebuild the index",
                meta.format
            ),
        ));
    }

    let passages_path = dir.join(PASSAGES_FILE);
    let bytes = read_checked(dir, &meta, PASSAGES_FILE)?;
    let text = String::from_utf8(bytes).map_err(|e| index_error(passages_path.clone(), e))?;
    let passages = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str::<Passage>(line)
                .map_err(|e| index_error(passages_path.clone(), format!("line {}: {e}", i + 1)))
        })
        .collect::<Result<Vec<_>>>()?;
    if passages.len() != meta.passages {
        return Err(index_error(
            passages_path,
            format!(
                "holds {} passages, {META_FILE} records {}",
                passages.len(),
                meta.passages
            ),
        ));
    }

    let graph_path = dir.join(GRAPH_FILE);
    let bytes = read_checked(dir, &meta, GRAPH_FILE)?;
    let graph: VectorGraph =
        postcard::from_bytes(&bytes).map_err(|e| index_error(graph_path.clone(), e))?;
    let (points, dim) = graph
        .shape()
        .map_err(|e| index_error(graph_path.clone(), e))?;
    if points != meta.passages || dim != meta.dim || graph.metric() != meta.metric {
        return Err(index_error(
            graph_path,
            format!(
                "holds {points} vectors of {dim} values ({}), {META_FILE} records {} of {} ({})",
                graph.metric(),
                meta.passages,
                meta.dim,
                meta.metric
            ),
        ));
    }
    Ok((meta, passages, graph))
}

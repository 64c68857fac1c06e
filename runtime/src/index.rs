//! Vector indexes (the `knn` op): passages, their embeddings and an HNSW graph over them, saved
//! as a directory that `agentc index build` writes and a workflow's `indexes:` entry names.
//!
//! On disk (format [`INDEX_FORMAT`]):
//! - `index.json`: format, model name, dimension, metric, passage count, graph parameters, and
//!   the length and CRC-32 of each data file, so a truncated or altered index is refused with the
//!   file named instead of answering wrong;
//! - `passages.jsonl`: one passage per line (`id`, `text`, `source`, `offset`);
//! - `graph.bin`: the vectors and the HNSW graph (postcard encoding of instant-distance's map).

mod corpus;
mod format;
mod graph;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::embed::EmbeddingModel;
use crate::error::{Error, Result};

pub use corpus::{Chunking, DEFAULT_CHUNK_TOKENS, read_corpus};
pub use format::{INDEX_FORMAT, IndexMeta};
pub use graph::{DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, GraphParams, VectorGraph};

/// Up to this many passages `search` compares the query with every vector: measured on the
/// 2-core dev machine (`cargo bench --bench executors`), exact search over 10,000 vectors of 384
/// floats takes 0.7 ms per query and the graph search 1.0 ms, so below this size the graph only
/// costs recall.
pub const EXACT_SEARCH_MAX_PASSAGES: usize = 10_000;

pub use agentc_plan::decl::{IndexSpec, Metric};

/// A unit of retrievable text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    /// Unique in the index: `file#chunk` for folders, the line's `id` for JSONL.
    pub id: String,
    pub text: String,
    /// Where it came from: a path relative to the corpus folder, or `file.jsonl:LINE`.
    pub source: String,
    /// Byte offset of the passage in its source file or JSONL text.
    pub offset: usize,
}

/// One search result. `score` is larger for closer passages: the cosine similarity, the inner
/// product, or the negated Euclidean distance, by the index's metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub text: String,
    pub source: String,
    pub offset: usize,
}

/// A loaded index. Searching takes `&self`; share it behind an `Arc`.
pub struct Index {
    meta: IndexMeta,
    passages: Vec<Passage>,
    graph: VectorGraph,
}

impl Index {
    /// Builds the graph over `vectors[i]` for `passages[i]`.
    pub fn from_vectors(
        model: &str,
        metric: Metric,
        passages: Vec<Passage>,
        vectors: Vec<Vec<f32>>,
        params: GraphParams,
    ) -> Result<Self> {
        if passages.len() != vectors.len() {
            return Err(Error::IndexInput(format!(
                "{} passages but {} vectors",
                passages.len(),
                vectors.len()
            )));
        }
        let dim = vectors.first().map(Vec::len).unwrap_or(0);
        if dim == 0 {
            return Err(Error::IndexInput("no vectors to index".to_string()));
        }
        if let Some(i) = vectors.iter().position(|v| v.len() != dim) {
            return Err(Error::IndexInput(format!(
                "vector {i} has {} values, the first has {dim}",
                vectors[i].len()
            )));
        }
        let graph = VectorGraph::build(metric, vectors, params);
        let meta = IndexMeta::new(model, dim, metric, passages.len(), params);
        Ok(Self {
            meta,
            passages,
            graph,
        })
    }

    /// Embeds every passage with `model` (in batches, calling `progress(done, total)` after
    /// each) and builds the index.
    pub fn build(
        model: &EmbeddingModel,
        metric: Metric,
        passages: Vec<Passage>,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Self> {
        const PROGRESS_BATCH: usize = 256;
        let mut vectors = Vec::with_capacity(passages.len());
        for chunk in passages.chunks(PROGRESS_BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|p| p.text.as_str()).collect();
            vectors.extend(model.embed(&texts)?);
            progress(vectors.len(), passages.len());
        }
        Self::from_vectors(
            model.name(),
            metric,
            passages,
            vectors,
            GraphParams::default(),
        )
    }

    /// Writes the index into directory `dir` (created if needed; its files replaced).
    pub fn save(&self, dir: &Path) -> Result<()> {
        format::save(dir, &self.meta, &self.passages, &self.graph)
    }

    /// Reads an index written by [`Index::save`], checking lengths, checksums and counts.
    pub fn load(dir: &Path) -> Result<Self> {
        let (meta, passages, graph) = format::load(dir)?;
        Ok(Self {
            meta,
            passages,
            graph,
        })
    }

    /// Loads the index a manifest entry names, resolving its path against `base_dir` (the
    /// workflow's directory) and checking that it was built with `spec`'s model and metric.
    pub fn open(spec: &IndexSpec, base_dir: &Path, model_name: &str) -> Result<Self> {
        let dir: PathBuf = base_dir.join(&spec.path);
        let index = Self::load(&dir)?;
        let meta = index.meta();
        if meta.metric != spec.metric || meta.model != model_name {
            return Err(Error::IndexFile {
                path: dir,
                reason: format!(
                    "was built with model {} and metric {}, the workflow's index {} wants model {model_name} and metric {}; rebuild it with `agentc index build`",
                    meta.model, meta.metric, spec.name, spec.metric
                ),
            });
        }
        Ok(index)
    }

    pub fn meta(&self) -> &IndexMeta {
        &self.meta
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    /// The `k` passages nearest to `query`, best first: exact search for indexes of up to
    /// [`EXACT_SEARCH_MAX_PASSAGES`] passages and for a `k` above the graph's `ef_search`, graph
    /// search otherwise.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        if self.len() <= EXACT_SEARCH_MAX_PASSAGES || k > self.meta.graph.ef_search {
            self.exact_search(query, k)
        } else {
            self.graph_search(query, k)
        }
    }

    /// The `k` passages nearest to `query` by HNSW graph search (approximate), best first; at
    /// most `ef_search` of them.
    pub fn graph_search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.check_query(query)?;
        Ok(self.hits(self.graph.search(query, k)))
    }

    /// The `k` passages nearest to `query` by comparing with every vector, best first.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>> {
        self.check_query(query)?;
        Ok(self.hits(self.graph.exact_search(query, k)))
    }

    fn check_query(&self, query: &[f32]) -> Result<()> {
        if query.len() != self.meta.dim {
            return Err(Error::IndexQuery(format!(
                "the query vector has {} values, the index holds vectors of {} (model {})",
                query.len(),
                self.meta.dim,
                self.meta.model
            )));
        }
        if query.iter().any(|x| !x.is_finite()) {
            return Err(Error::IndexQuery(
                "the query vector has a NaN or infinite value".to_string(),
            ));
        }
        Ok(())
    }

    fn hits(&self, scored: Vec<(u32, f32)>) -> Vec<Hit> {
        scored
            .into_iter()
            .filter_map(|(i, score)| {
                let p = self.passages.get(i as usize)?;
                Some(Hit {
                    id: p.id.clone(),
                    score,
                    text: p.text.clone(),
                    source: p.source.clone(),
                    offset: p.offset,
                })
            })
            .collect()
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("meta", &self.meta).finish()
    }
}

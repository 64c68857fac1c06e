//! The HNSW graph over the passage vectors (instant-distance), one point type per metric so that
//! the distance needs no run-time branch, and the exact search the graph is checked against.

use std::cmp::Ordering;
use std::marker::PhantomData;

use instant_distance::{Builder, HnswMap, Point, Search};
use serde::{Deserialize, Serialize};

use super::Metric;

/// Neighbours examined while building (HNSW's `ef_construction`): higher is slower and better.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Candidates kept while searching (`ef`): the most hits one graph search returns; a larger `k`
/// is answered by exact search.
pub const DEFAULT_EF_SEARCH: usize = 128;
/// Seed of the layer assignment, so that a rebuild gives the same layers.
pub const DEFAULT_SEED: u64 = 0x5eed_a9e7;

/// HNSW parameters, recorded in the index so a search uses what the build used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphParams {
    pub ef_construction: usize,
    pub ef_search: usize,
    pub seed: u64,
}

impl Default for GraphParams {
    fn default() -> Self {
        Self {
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            ef_search: DEFAULT_EF_SEARCH,
            seed: DEFAULT_SEED,
        }
    }
}

/// How a metric measures distance (smaller is closer) and turns it into a score (larger is
/// closer).
pub trait MetricKind: Send + Sync + 'static {
    fn distance(a: &[f32], b: &[f32]) -> f32;
    fn score(distance: f32) -> f32;
}

/// Cosine over unit vectors (vectors are normalised on insertion): distance 1 - cos.
pub struct CosineKind;
/// Inner product: distance -dot.
pub struct DotKind;
/// Euclidean: squared distance in the graph, negated distance as the score.
pub struct L2Kind;

/// Independent partial sums: a single running f32 sum cannot be vectorised (the compiler may
/// not reorder float additions), eight lanes can.
const LANES: usize = 8;

/// `sum(f(a[i], b[i]))` over equal-length slices, in [`LANES`] partial sums.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

impl MetricKind for CosineKind {
    fn distance(a: &[f32], b: &[f32]) -> f32 {
        1.0 - dot(a, b)
    }
    fn score(distance: f32) -> f32 {
        1.0 - distance
    }
}

impl MetricKind for DotKind {
    fn distance(a: &[f32], b: &[f32]) -> f32 {
        -dot(a, b)
    }
    fn score(distance: f32) -> f32 {
        -distance
    }
}

impl MetricKind for L2Kind {
    fn distance(a: &[f32], b: &[f32]) -> f32 {
        lane_sum(a, b, |x, y| (x - y) * (x - y))
    }
    fn score(distance: f32) -> f32 {
        -distance.max(0.0).sqrt()
    }
}

/// One vector of the graph.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Row<M> {
    v: Vec<f32>,
    #[serde(skip)]
    kind: PhantomData<M>,
}

impl<M> Clone for Row<M> {
    fn clone(&self) -> Self {
        Self {
            v: self.v.clone(),
            kind: PhantomData,
        }
    }
}

impl<M: MetricKind> Point for Row<M> {
    fn distance(&self, other: &Self) -> f32 {
        M::distance(&self.v, &other.v)
    }
}

/// The graph of one metric; the value of a point is its passage's position.
#[derive(Serialize, Deserialize)]
pub enum VectorGraph {
    Cosine(HnswMap<Row<CosineKind>, u32>),
    Dot(HnswMap<Row<DotKind>, u32>),
    L2(HnswMap<Row<L2Kind>, u32>),
}

/// Passage position and score.
pub type Scored = (u32, f32);

impl VectorGraph {
    /// Builds the graph; passage `i` is `vectors[i]`. Cosine vectors are normalised here.
    pub fn build(metric: Metric, vectors: Vec<Vec<f32>>, params: GraphParams) -> Self {
        let values: Vec<u32> = (0..vectors.len() as u32).collect();
        let builder = Builder::default()
            .ef_construction(params.ef_construction)
            .ef_search(params.ef_search)
            .seed(params.seed);
        match metric {
            Metric::Cosine => {
                let rows = vectors.into_iter().map(|v| row(normalized(v))).collect();
                Self::Cosine(builder.build(rows, values))
            }
            Metric::Dot => Self::Dot(builder.build(vectors.into_iter().map(row).collect(), values)),
            Metric::L2 => Self::L2(builder.build(vectors.into_iter().map(row).collect(), values)),
        }
    }

    pub fn metric(&self) -> Metric {
        match self {
            Self::Cosine(_) => Metric::Cosine,
            Self::Dot(_) => Metric::Dot,
            Self::L2(_) => Metric::L2,
        }
    }

    /// Number of points and the length of the first vector (0 when empty); also checks that
    /// every vector has that length and that the points map one to one onto passages
    /// `0..points`, so that a search cannot index out of bounds.
    pub fn shape(&self) -> Result<(usize, usize), String> {
        fn shape_of<M: MetricKind>(m: &HnswMap<Row<M>, u32>) -> Result<(usize, usize), String> {
            let dim = m.iter().next().map(|(_, r)| r.v.len()).unwrap_or(0);
            let mut points = 0;
            for (pid, r) in m.iter() {
                points += 1;
                if r.v.len() != dim {
                    return Err(format!(
                        "vector {} has {} values, the first has {dim}",
                        pid.into_inner(),
                        r.v.len()
                    ));
                }
            }
            let mut seen = vec![false; points];
            let one_to_one = m.values.len() == points
                && m.values.iter().all(|&v| {
                    seen.get_mut(v as usize)
                        .is_some_and(|s| !std::mem::replace(s, true))
                });
            if !one_to_one {
                return Err(format!(
                    "{points} vectors do not map one to one onto {} passages",
                    m.values.len()
                ));
            }
            Ok((points, dim))
        }
        match self {
            Self::Cosine(m) => shape_of(m),
            Self::Dot(m) => shape_of(m),
            Self::L2(m) => shape_of(m),
        }
    }

    /// Approximate nearest passages by graph search, best first; at most `ef_search` of them.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Scored> {
        fn go<M: MetricKind>(m: &HnswMap<Row<M>, u32>, query: Vec<f32>, k: usize) -> Vec<Scored> {
            let mut search = Search::default();
            m.search(&row(query), &mut search)
                .take(k)
                .map(|item| (*item.value, M::score(item.distance)))
                .collect()
        }
        match self {
            Self::Cosine(m) => go(m, normalized(query.to_vec()), k),
            Self::Dot(m) => go(m, query.to_vec(), k),
            Self::L2(m) => go(m, query.to_vec(), k),
        }
    }

    /// Exact nearest passages by comparing the query with every vector, best first.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Vec<Scored> {
        fn go<M: MetricKind>(m: &HnswMap<Row<M>, u32>, query: Vec<f32>, k: usize) -> Vec<Scored> {
            let mut all: Vec<(u32, f32)> = m
                .iter()
                .map(|(pid, r)| {
                    let value = m.values[pid.into_inner() as usize];
                    (value, M::distance(&query, &r.v))
                })
                .collect();
            all.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal));
            all.truncate(k);
            all.into_iter().map(|(v, d)| (v, M::score(d))).collect()
        }
        match self {
            Self::Cosine(m) => go(m, normalized(query.to_vec()), k),
            Self::Dot(m) => go(m, query.to_vec(), k),
            Self::L2(m) => go(m, query.to_vec(), k),
        }
    }
}

fn row<M>(v: Vec<f32>) -> Row<M> {
    Row {
        v,
        kind: PhantomData,
    }
}

/// `v` scaled to unit length; a zero vector stays zero.
fn normalized(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_refuses_points_that_do_not_map_onto_passages() {
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let mut graph = VectorGraph::build(Metric::Cosine, vectors, GraphParams::default());
        assert_eq!(graph.shape(), Ok((3, 2)));
        if let VectorGraph::Cosine(m) = &mut graph {
            m.values[0] = m.values[1];
        }
        assert_eq!(
            graph.shape(),
            Err("3 vectors do not map one to one onto 3 passages".to_string())
        );
        if let VectorGraph::Cosine(m) = &mut graph {
            m.values.pop();
        }
        assert_eq!(
            graph.shape(),
            Err("3 vectors do not map one to one onto 2 passages".to_string())
        );
    }

    #[test]
    fn lane_sum_matches_a_plain_sum() {
        let a: Vec<f32> = (0..19).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..19).map(|i| 1.0 - i as f32 * 0.25).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-4);
        let l2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((L2Kind::distance(&a, &b) - l2).abs() < 1e-3);
    }
}

//! The non-LLM executors: sentence embedding with the bundled all-MiniLM-L6-v2 (batches of 1 and
//! 32 short sentences; skipped when the model is absent) and HNSW search against exact search
//! over 10,000 random 384-dimensional vectors.

use agentc_runtime::index::GraphParams;
use agentc_runtime::{EmbeddingModel, Index, Metric, Passage};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INDEX_POINTS: usize = 10_000;
const DIM: usize = 384;
const K: usize = 10;

fn embedding(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let Ok(model) = EmbeddingModel::load(&dir) else {
        eprintln!(
            "skipping the embedding bench: no model at {}",
            dir.display()
        );
        return;
    };
    let sentences: Vec<String> = (0..32)
        .map(|i| format!("Sentence number {i} says something about agents, tools and vectors."))
        .collect();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    for batch in [1usize, 32] {
        let texts: Vec<&str> = sentences.iter().take(batch).map(String::as_str).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("minilm", batch), &texts, |b, texts| {
            b.iter(|| model.embed(texts).map(|v| v.len()))
        });
    }
    group.finish();
}

fn knn(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut random = |n: usize| -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect()
    };
    let vectors = random(INDEX_POINTS);
    let queries = random(64);
    let passages = (0..INDEX_POINTS)
        .map(|i| Passage {
            id: i.to_string(),
            text: String::new(),
            source: String::new(),
            offset: 0,
        })
        .collect();
    let index = Index::from_vectors(
        "random",
        Metric::Cosine,
        passages,
        vectors,
        GraphParams::default(),
    )
    .expect("builds");
    let mut group = c.benchmark_group("knn");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function(BenchmarkId::new("hnsw", INDEX_POINTS), |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|q| index.graph_search(q, K).map_or(0, |h| h.len()))
                .sum::<usize>()
        })
    });
    group.bench_function(BenchmarkId::new("exact", INDEX_POINTS), |b| {
        b.iter(|| {
            queries
                .iter()
                .map(|q| index.exact_search(q, K).map_or(0, |h| h.len()))
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, embedding, knn);
criterion_main!(benches);

//! The vector index: HNSW recall against exact search, the on-disk format and its corruption
//! errors, and the corpus readers (JSONL and folders) with the bundled MiniLM model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use agentc_runtime::index::{Chunking, GraphParams, read_corpus};
use agentc_runtime::{EmbeddingModel, Index, Metric, Passage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const RECALL_POINTS: usize = 2000;
/// Points of the save/load round trip.
const ROUND_TRIP_POINTS: usize = 500;
/// MiniLM's dimension: random vectors this wide are a harder case for HNSW than real text.
const RECALL_DIM: usize = 384;
const RECALL_QUERIES: usize = 200;
const RECALL_K: usize = 10;
const MIN_RECALL: f64 = 0.95;

fn random_vectors(rng: &mut StdRng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

fn passages(n: usize) -> Vec<Passage> {
    (0..n)
        .map(|i| Passage {
            id: format!("p{i}"),
            text: format!("passage {i}"),
            source: "synthetic".to_string(),
            offset: i,
        })
        .collect()
}

fn random_index(metric: Metric, seed: u64, points: usize) -> (Index, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let vectors = random_vectors(&mut rng, points, RECALL_DIM);
    let queries = random_vectors(&mut rng, RECALL_QUERIES, RECALL_DIM);
    let index = Index::from_vectors(
        "random",
        metric,
        passages(points),
        vectors,
        GraphParams::default(),
    )
    .expect("builds");
    (index, queries)
}

fn recall(index: &Index, queries: &[Vec<f32>]) -> f64 {
    let mut found = 0;
    for q in queries {
        let exact: HashSet<String> = index
            .exact_search(q, RECALL_K)
            .expect("exact")
            .into_iter()
            .map(|h| h.id)
            .collect();
        let approx = index.graph_search(q, RECALL_K).expect("search");
        assert_eq!(approx.len(), RECALL_K);
        assert!(
            approx.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
        found += approx.iter().filter(|h| exact.contains(&h.id)).count();
    }
    found as f64 / (queries.len() * RECALL_K) as f64
}

#[test]
fn hnsw_recall_at_10_against_exact_search() {
    for (metric, seed) in [(Metric::Cosine, 1), (Metric::L2, 2), (Metric::Dot, 3)] {
        let (index, queries) = random_index(metric, seed, RECALL_POINTS);
        let r = recall(&index, &queries);
        println!(
            "index: recall@{RECALL_K} {metric} = {r:.4} ({RECALL_POINTS} random vectors of {RECALL_DIM}, {RECALL_QUERIES} queries)"
        );
        assert!(r >= MIN_RECALL, "{metric}: recall {r}");
    }
}

#[test]
fn scores_follow_the_metric() {
    let vectors = vec![vec![1.0, 0.0], vec![0.0, 2.0], vec![-1.0, -1.0]];
    let build = |metric| {
        Index::from_vectors(
            "tiny",
            metric,
            passages(3),
            vectors.clone(),
            GraphParams::default(),
        )
        .expect("builds")
    };
    let ids_scores = |index: &Index| -> Vec<(String, f32)> {
        let hits = index.search(&[2.0, 1.0], 3).expect("search");
        hits.into_iter().map(|h| (h.id, h.score)).collect()
    };
    let cosine = ids_scores(&build(Metric::Cosine));
    assert_eq!(cosine[0].0, "p0");
    assert!((cosine[0].1 - 2.0 / 5f32.sqrt()).abs() < 1e-6);
    let dot = ids_scores(&build(Metric::Dot));
    assert_eq!(
        dot,
        [("p0".into(), 2.0), ("p1".into(), 2.0), ("p2".into(), -3.0)]
    );
    let l2 = ids_scores(&build(Metric::L2));
    assert_eq!(l2[0], ("p0".into(), -(2f32.sqrt())));
    // The graph's answer agrees on this tiny index.
    let graph: Vec<String> = build(Metric::Dot)
        .graph_search(&[2.0, 0.5], 3)
        .expect("search")
        .into_iter()
        .map(|h| h.id)
        .collect();
    assert_eq!(graph, ["p0", "p1", "p2"]);
    let err = build(Metric::L2).search(&[1.0], 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid index query: the query vector has 1 values, the index holds vectors of 2 (model tiny)"
    );
}

#[test]
fn saved_index_loads_and_answers_the_same() {
    let (index, queries) = random_index(Metric::Cosine, 7, ROUND_TRIP_POINTS);
    let dir = tempfile::tempdir().expect("tempdir");
    index.save(dir.path()).expect("saves");
    let loaded = Index::load(dir.path()).expect("loads");
    let mut meta = loaded.meta().clone();
    assert_eq!(meta.files.len(), 2, "index.json checks both data files");
    meta.files.clear();
    assert_eq!(&meta, index.meta());
    assert_eq!(loaded.passages(), index.passages());
    for q in queries.iter().take(20) {
        assert_eq!(
            loaded.search(q, RECALL_K).expect("a"),
            index.search(q, RECALL_K).expect("b")
        );
    }
}

fn saved_tiny_index() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
    Index::from_vectors(
        "tiny",
        Metric::Cosine,
        passages(2),
        vectors,
        GraphParams::default(),
    )
    .expect("builds")
    .save(dir.path())
    .expect("saves");
    dir
}

fn load_error(dir: &Path) -> String {
    Index::load(dir).unwrap_err().to_string()
}

#[test]
fn damaged_index_files_are_named() {
    let dir = saved_tiny_index();
    let graph = dir.path().join("graph.bin");
    let bytes = std::fs::read(&graph).expect("read");
    std::fs::write(&graph, &bytes[..bytes.len() - 5]).expect("truncate");
    assert_eq!(
        load_error(dir.path()),
        format!(
            "index {}: is {} bytes, index.json records {} (truncated or rewritten); rebuild the index",
            graph.display(),
            bytes.len() - 5,
            bytes.len()
        )
    );

    let dir = saved_tiny_index();
    let passages = dir.path().join("passages.jsonl");
    let text = std::fs::read_to_string(&passages).expect("read");
    std::fs::write(&passages, text.replace("passage 1", "passage 9")).expect("write");
    let message = load_error(dir.path());
    let prefix = format!("index {}: checksum ", passages.display());
    assert!(message.starts_with(&prefix), "{message}");
    assert!(
        message.ends_with("recorded in index.json (corrupted); rebuild the index"),
        "{message}"
    );

    let dir = saved_tiny_index();
    let meta = dir.path().join("index.json");
    let text = std::fs::read_to_string(&meta).expect("read");
    std::fs::write(&meta, text.replace("\"format\": 1", "\"format\": 99")).expect("write");
    assert_eq!(
        load_error(dir.path()),
        format!(
            "index {}: has format 99, this build reads format 1; rebuild the index",
            meta.display()
        )
    );

    std::fs::remove_file(&meta).expect("rm");
    assert_eq!(
        load_error(dir.path()),
        format!(
            "index {}: No such file or directory (os error 2); build the index with `agentc index build SRC -o {}`",
            meta.display(),
            dir.path().display()
        )
    );
}

fn model() -> Option<EmbeddingModel> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    if !agentc_runtime::bundled::present(&dir.join("model.safetensors")) {
        return None;
    }
    Some(EmbeddingModel::load(&dir).expect("loads"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn jsonl_corpus_and_its_errors() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(
        dir.path(),
        "docs.jsonl",
        "{\"id\": \"a\", \"text\": \"Cats sleep most of the day.\"}\n\n{\"id\": 7, \"text\": \"Rust has no garbage collector.\", \"extra\": 1}\n",
    );
    let ps = read_corpus(&good, Chunking::default(), &model).expect("reads");
    let got: Vec<(&str, &str, &str)> = ps
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_str(), p.source.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "Cats sleep most of the day.", "docs.jsonl:1"),
            ("7", "Rust has no garbage collector.", "docs.jsonl:3"),
        ]
    );

    let cases = [
        (
            "{\"id\": \"a\", \"text\": \"ok\"}\n{\"id\": \"b\", \"text\": \"broken\"\n",
            "2: expected {\"id\": ..., \"text\": ...}: EOF while parsing an object at line 1 column 28",
        ),
        (
            "{\"id\": \"a\"}\n",
            "1: expected {\"id\": ..., \"text\": ...}: missing field `text` at line 1 column 11",
        ),
        (
            "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n",
            "2: id a is used twice",
        ),
        (
            "{\"id\": null, \"text\": \"x\"}\n",
            "1: id must be a non-empty string or an integer, not null",
        ),
        (
            "{\"id\": \"a\", \"text\": \"  \"}\n",
            "1: passage a has no text",
        ),
    ];
    for (text, want) in cases {
        let path = write(dir.path(), "bad.jsonl", text);
        let err = read_corpus(&path, Chunking::default(), &model).unwrap_err();
        assert_eq!(err.to_string(), format!("{}:{want}", path.display()));
    }

    let err = read_corpus(
        &dir.path().join("missing.jsonl"),
        Chunking::default(),
        &model,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: no such file or folder",
            dir.path().join("missing.jsonl").display()
        )
    );
    let err = read_corpus(&good, Chunking::with_tokens(500), &model).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot build the index: passages of 500 tokens are not possible: model all-MiniLM-L6-v2 embeds 8 to 126 tokens per passage"
    );
}

#[test]
fn folder_corpus_is_chunked_with_overlap_and_searchable() {
    let Some(model) = model() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let long: String = (0..60)
        .map(|i| format!("Sentence {i} of the long file talks about rivers and boats. "))
        .collect();
    write(dir.path(), "long.md", &long);
    write(
        dir.path(),
        "sub/cooking.txt",
        "Bake the bread at 220 degrees for thirty minutes.",
    );
    write(dir.path(), "sub/ignored.rs", "fn main() {}");
    write(dir.path(), ".hidden.md", "never read");
    write(dir.path(), "empty.txt", "");
    let chunking = Chunking::with_tokens(32);
    let ps = read_corpus(dir.path(), chunking, &model).expect("reads");
    let sources: HashSet<&str> = ps.iter().map(|p| p.source.as_str()).collect();
    assert_eq!(sources, HashSet::from(["long.md", "sub/cooking.txt"]));
    let chunks: Vec<&Passage> = ps.iter().filter(|p| p.source == "long.md").collect();
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    for (n, p) in chunks.iter().enumerate() {
        assert_eq!(p.id, format!("long.md#{n}"));
        assert_eq!(&long[p.offset..p.offset + p.text.len()], p.text);
        let tokens = model.token_offsets(&p.text).expect("tokens").len();
        assert!(tokens <= chunking.tokens, "chunk {n} has {tokens} tokens");
    }
    for pair in chunks.windows(2) {
        let end = pair[0].offset + pair[0].text.len();
        assert!(pair[1].offset < end, "consecutive chunks overlap");
        assert!(pair[1].offset > pair[0].offset);
    }
    assert_eq!(
        chunks.last().map(|p| p.offset + p.text.len()),
        Some(long.trim_end().len())
    );

    let index = Index::build(&model, Metric::Cosine, ps, |_, _| {}).expect("builds");
    assert_eq!(index.meta().dim, 384);
    assert_eq!(index.meta().model, "all-MiniLM-L6-v2");
    let q = model
        .embed(&["How hot should the oven be for bread?"])
        .expect("embeds");
    let hits = index.search(&q[0], 3).expect("search");
    assert_eq!(hits[0].source, "sub/cooking.txt");
    assert_eq!(hits[0].id, "sub/cooking.txt#0");
}

#[test]
fn open_checks_the_workflows_model_and_metric() {
    let dir = saved_tiny_index();
    let base = dir.path().parent().expect("parent");
    let name = dir
        .path()
        .file_name()
        .expect("name")
        .to_str()
        .expect("utf-8");
    let spec = |metric| agentc_runtime::IndexSpec {
        name: "corpus".to_string(),
        path: name.to_string(),
        model: "minilm".to_string(),
        metric,
    };
    let index = Index::open(&spec(Metric::Cosine), base, "tiny").expect("opens");
    assert_eq!(index.len(), 2);
    let err = Index::open(&spec(Metric::L2), base, "tiny").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "index {}: was built with model tiny and metric cosine, the workflow's index corpus wants model tiny and metric l2; rebuild it with `agentc index build`",
            base.join(name).display()
        )
    );
    let err = Index::open(&spec(Metric::Cosine), base, "other").unwrap_err();
    assert!(
        err.to_string()
            .contains("wants model other and metric cosine"),
        "{err}"
    );
}

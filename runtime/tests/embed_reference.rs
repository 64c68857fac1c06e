//! Differential test of the sentence embedder against sentence-transformers
//! (tests/fixtures/minilm/reference.json, recorded by scripts/reference/record_minilm.py), plus
//! the errors for a missing or damaged model directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use agentc_runtime::EmbeddingModel;
use serde_json::Value;

/// Cosine similarity every vector must reach against the reference.
const MIN_COSINE: f32 = 0.9999;
const MINILM_DIM: usize = 384;
/// Sentences embedded for the throughput figure.
const THROUGHPUT_SENTENCES: usize = 256;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_dir() -> Option<PathBuf> {
    let dir = repo_root().join("models/all-MiniLM-L6-v2");
    if !agentc_runtime::bundled::present(&dir.join("model.safetensors")) {
        return None;
    }
    Some(dir)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let model = EmbeddingModel::load(&dir).expect("the bundled model loads");
    assert_eq!(model.dim(), MINILM_DIM);
    assert_eq!(model.name(), "all-MiniLM-L6-v2");
    let path = repo_root().join("tests/fixtures/minilm/reference.json");
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON");
    assert_eq!(
        reference["max_seq_length"].as_u64(),
        Some(model.max_tokens() as u64)
    );
    let sentences: Vec<&str> = reference["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| s.as_str().expect("sentence"))
        .collect();
    let expected: Vec<Vec<f32>> = reference["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|v| {
            v.as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("float") as f32)
                .collect()
        })
        .collect();

    let got = model.embed(&sentences).expect("embeds");
    assert_eq!(got.len(), sentences.len());
    let mut worst = f32::INFINITY;
    for ((sentence, got), want) in sentences.iter().zip(&got).zip(&expected) {
        assert_eq!(got.len(), MINILM_DIM);
        assert_eq!(want.len(), MINILM_DIM);
        let c = cosine(got, want);
        let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "not unit length: {norm}");
        assert!(c >= MIN_COSINE, "cosine {c} for {sentence:?}");
        worst = worst.min(c);
    }
    println!(
        "minilm: worst cosine vs sentence-transformers over {} sentences: {worst:.7}",
        sentences.len()
    );

    // Batching must not change a vector: each sentence alone gives the same result.
    for (sentence, batched) in sentences.iter().zip(&got) {
        let alone = model.embed(&[sentence]).expect("embeds");
        assert!(cosine(&alone[0], batched) > 0.999_999, "{sentence:?}");
    }

    let texts: Vec<String> = (0..THROUGHPUT_SENTENCES)
        .map(|i| format!("Sentence number {i} says something about agents, tools and vectors."))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let started = Instant::now();
    model.embed(&refs).expect("embeds");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "minilm: {THROUGHPUT_SENTENCES} sentences of ~16 tokens in {secs:.2} s = {:.0} sentences/s",
        THROUGHPUT_SENTENCES as f64 / secs
    );
}

#[test]
fn empty_batch_gives_no_vectors() {
    let Some(dir) = model_dir() else { return };
    let model = EmbeddingModel::load(&dir).expect("loads");
    assert!(model.embed(&[]).expect("embeds").is_empty());
}

/// A copy of the model directory in a temp dir, with `damage` applied.
fn damaged_copy(src: &Path, damage: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(src.join(name), dir.path().join(name)).expect("copy");
    }
    damage(dir.path());
    dir
}

#[test]
fn missing_and_truncated_files_are_named() {
    let Some(src) = model_dir() else { return };
    let missing = damaged_copy(&src, |d| {
        std::fs::remove_file(d.join("tokenizer.json")).expect("rm")
    });
    let err = EmbeddingModel::load(missing.path()).expect_err("no tokenizer");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load {}: No such file or directory (os error 2)",
            missing.path().join("tokenizer.json").display()
        )
    );

    let no_weights = damaged_copy(&src, |d| {
        std::fs::remove_file(d.join("model.safetensors")).expect("rm")
    });
    let err = EmbeddingModel::load(no_weights.path()).expect_err("no weights");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load {}: no such file",
            no_weights.path().join("model.safetensors").display()
        )
    );

    let truncated = damaged_copy(&src, |d| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(d.join("model.safetensors"))
            .expect("open");
        f.set_len(1_000_000).expect("truncate");
    });
    let err = EmbeddingModel::load(truncated.path()).expect_err("truncated weights");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load {}: incomplete metadata, file not fully covered",
            truncated.path().join("model.safetensors").display()
        )
    );

    let bad_config = damaged_copy(&src, |d| {
        std::fs::write(d.join("config.json"), "{\"hidden_size\": 384}").expect("write")
    });
    let err = EmbeddingModel::load(bad_config.path()).expect_err("bad config");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot load {}: missing field `vocab_size` at line 1 column 20",
            bad_config.path().join("config.json").display()
        )
    );
}

//! The GGUF reader on the bundled SmolLM2 file: its facts, and truncated copies of it cut inside
//! the header, the metadata, the tensor table and the tensor data.

use std::path::PathBuf;

use agentc_model::{Error, GgmlType, GgufFile, LlamaConfig, MetadataLookup, RopeStyle};

fn bundled_model() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !agentc_model::bundled::present(&path) {
        return None;
    }
    Some(path)
}

#[test]
fn reads_the_smollm2_facts() {
    let Some(path) = bundled_model() else { return };
    let gguf = GgufFile::open(&path).expect("opens");
    assert_eq!(gguf.version(), 3);
    let config = LlamaConfig::from_metadata(&gguf).expect("config");
    assert_eq!(
        (
            config.n_layer,
            config.n_embd,
            config.n_head,
            config.n_head_kv,
            config.n_ff
        ),
        (30, 576, 9, 3, 1536)
    );
    assert_eq!(
        (config.vocab_size, config.context_length, config.rope_dim),
        (49152, 8192, 64)
    );
    assert_eq!(config.rope_freq_base, 100000.0);
    assert_eq!(config.rope_style, RopeStyle::AdjacentPairs);
    assert_eq!(
        gguf.get_bool("tokenizer.ggml.add_space_prefix")
            .expect("bool"),
        Some(false)
    );
    assert_eq!(gguf.tensors().len(), 30 * 9 + 2);
    assert_eq!(
        gguf.tensor_info("token_embd.weight")
            .expect("embedding")
            .ggml_type,
        GgmlType::Q8_0
    );
    assert!(
        gguf.tensor_info("output.weight").is_none(),
        "the output projection is tied"
    );
    let (info, data) = gguf.tensor_data("blk.0.attn_q.weight").expect("data");
    assert_eq!(info.ggml_type, GgmlType::Q4_1);
    assert_eq!(data.len(), 576 * 576 / 32 * 20);
}

#[test]
fn truncated_copies_are_refused_with_the_reason() {
    let Some(path) = bundled_model() else { return };
    let bytes = std::fs::read(&path).expect("readable");
    let data_offset = GgufFile::open(&path).expect("opens").data_offset() as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let cuts = [
        (2, "the magic bytes"),
        // The tensor count is checked against the bytes left before anything is allocated.
        (20, "the tensor count"),
        (100_000, "tokenizer.ggml"),
        (data_offset - 100, "tensor"),
        (data_offset + 1_000, "extends past end of file"),
        (bytes.len() - 1, "extends past end of file"),
    ];
    for (len, expected) in cuts {
        let cut = dir.path().join(format!("cut-{len}.gguf"));
        std::fs::write(&cut, &bytes[..len]).expect("writes");
        let err = GgufFile::open(&cut).expect_err("a truncated file must be refused");
        let message = err.to_string();
        assert!(message.contains(&format!("cut-{len}.gguf")), "{message}");
        assert!(message.contains(expected), "cut at {len}: {message}");
        assert!(
            matches!(
                err,
                Error::Truncated { .. } | Error::TensorOutOfBounds { .. }
            ),
            "{err:?}"
        );
    }
}

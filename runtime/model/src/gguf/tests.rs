use std::io::Write;

use super::*;

/// Builds GGUF bytes in memory, so tests can make valid, truncated and corrupt files.
pub(crate) struct GgufBuilder {
    version: u32,
    metadata: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
}

fn string_bytes(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

impl GgufBuilder {
    pub(crate) fn new() -> Self {
        Self {
            version: 3,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }

    pub(crate) fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    pub(crate) fn raw(mut self, key: &str, type_id: u32, value: Vec<u8>) -> Self {
        self.metadata.push((key.to_owned(), type_id, value));
        self
    }

    pub(crate) fn u32(self, key: &str, v: u32) -> Self {
        self.raw(key, 4, v.to_le_bytes().to_vec())
    }

    pub(crate) fn f32(self, key: &str, v: f32) -> Self {
        self.raw(key, 6, v.to_le_bytes().to_vec())
    }

    pub(crate) fn string(self, key: &str, v: &str) -> Self {
        self.raw(key, 8, string_bytes(v))
    }

    pub(crate) fn string_array(self, key: &str, items: &[&str]) -> Self {
        let mut bytes = 8u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            bytes.extend(string_bytes(item));
        }
        self.raw(key, 9, bytes)
    }

    pub(crate) fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, data: Vec<u8>) -> Self {
        self.tensors
            .push((name.to_owned(), dims.to_vec(), type_id, data));
        self
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, type_id, value) in &self.metadata {
            out.extend(string_bytes(key));
            out.extend_from_slice(&type_id.to_le_bytes());
            out.extend_from_slice(value);
        }
        let mut offset = 0u64;
        let mut offsets = Vec::new();
        for (name, dims, type_id, data) in &self.tensors {
            out.extend(string_bytes(name));
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&type_id.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT);
        }
        out.resize(out.len().next_multiple_of(DEFAULT_ALIGNMENT as usize), 0);
        let data_start = out.len();
        for ((_, _, _, data), offset) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + offset as usize, 0);
            out.extend_from_slice(data);
        }
        out
    }
}

pub(crate) fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let mut file = File::create(&path).unwrap();
    file.write_all(bytes).unwrap();
    (dir, path)
}

fn sample() -> GgufBuilder {
    let f32_data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    GgufBuilder::new()
        .string("general.architecture", "llama")
        .u32("llama.block_count", 2)
        .f32("llama.rope.freq_base", 10000.0)
        .string_array("tokenizer.ggml.tokens", &["a", "b", "ab"])
        .raw("flag", 7, vec![1])
        .raw("i64", 11, (-5i64).to_le_bytes().to_vec())
        .raw("f64", 12, 0.5f64.to_le_bytes().to_vec())
        .tensor("weight", &[3, 2], 0, f32_data)
        .tensor("q", &[32, 1], 3, vec![0u8; 20])
}

#[test]
fn reads_header_metadata_and_tensors() {
    let (_dir, path) = write_temp(&sample().build());
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(gguf.version(), 3);
    assert_eq!(gguf.require_str("general.architecture").unwrap(), "llama");
    assert_eq!(gguf.require_u64("llama.block_count").unwrap(), 2);
    assert_eq!(gguf.get_f64("llama.rope.freq_base").unwrap(), Some(10000.0));
    assert_eq!(gguf.get_bool("flag").unwrap(), Some(true));
    assert_eq!(gguf.value("i64"), Some(&MetadataValue::I64(-5)));
    assert_eq!(gguf.get_f64("f64").unwrap(), Some(0.5));
    let tokens = gguf.require_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 3);
    assert_eq!(tokens[2].as_str(), Some("ab"));
    let (info, data) = gguf.tensor_data("weight").unwrap();
    assert_eq!(info.dims, vec![3, 2]);
    assert_eq!(info.row_len(), 3);
    assert_eq!(info.row_count(), 2);
    assert_eq!(&data[4..8], &2.0f32.to_le_bytes());
    assert_eq!(gguf.tensor_info("q").unwrap().ggml_type, GgmlType::Q4_1);
    assert_eq!(gguf.tensor_info("q").unwrap().data_start % 32, 0);
}

#[test]
fn version_2_is_read_and_version_1_is_refused() {
    let (_dir, path) = write_temp(&sample().version(2).build());
    assert_eq!(GgufFile::open(&path).unwrap().version(), 2);
    let (_dir, path) = write_temp(&sample().version(1).build());
    let err = GgufFile::open(&path).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { version: 1, .. }),
        "{err}"
    );
}

#[test]
fn wrong_types_and_missing_keys_are_named() {
    let (_dir, path) = write_temp(&sample().build());
    let gguf = GgufFile::open(&path).unwrap();
    let err = gguf.get_u64("general.architecture").unwrap_err();
    assert_eq!(
        err.to_string(),
        "model metadata key \"general.architecture\" is string, expected a non-negative integer"
    );
    assert_eq!(
        gguf.require_u64("nope").unwrap_err().to_string(),
        "model metadata has no key \"nope\""
    );
    assert!(matches!(
        gguf.tensor_data("nope"),
        Err(Error::MissingTensor(_))
    ));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample().build();
    let dir = tempfile::tempdir().unwrap();
    for len in 0..bytes.len() {
        let path = dir.path().join(format!("cut{len}.gguf"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        let result = GgufFile::open(&path);
        assert!(
            result.is_err(),
            "a file cut to {len} of {} bytes was accepted",
            bytes.len()
        );
        let message = result.unwrap_err().to_string();
        assert!(message.contains(&format!("cut{len}.gguf")), "{message}");
    }
}

#[test]
fn truncated_k_quant_tensor_names_the_tensor_and_its_bytes() {
    // Two Q4_K super-blocks (2 x 144 bytes) of which the file holds 200 bytes.
    let bytes = GgufBuilder::new()
        .tensor("blk.0.ffn_down.weight", &[512], 12, vec![7; 288])
        .build();
    let cut = bytes.len() - 88;
    let (_dir, path) = write_temp(&bytes[..cut]);
    let message = GgufFile::open(&path).unwrap_err().to_string();
    assert!(
        message.ends_with(&format!(
            "tensor blk.0.ffn_down.weight extends past end of file: needs bytes {}..{}, file has {cut}",
            bytes.len() - 288,
            bytes.len()
        )),
        "{message}"
    );
    // A row that is not whole super-blocks is refused by name too.
    let ragged = GgufBuilder::new()
        .tensor("blk.0.ffn_down.weight", &[576], 12, vec![0; 144 * 2])
        .build();
    let (_dir, path) = write_temp(&ragged);
    let message = GgufFile::open(&path).unwrap_err().to_string();
    assert!(
        message.contains("tensor blk.0.ffn_down.weight has rows of 576 elements, not a multiple of the Q4_K block size 256"),
        "{message}"
    );
}

#[test]
fn truncated_tensor_data_names_the_tensor_and_range() {
    let bytes = sample().build();
    let (_dir, path) = write_temp(&bytes[..bytes.len() - 5]);
    let message = GgufFile::open(&path).unwrap_err().to_string();
    let file_len = bytes.len() - 5;
    let expected_end = bytes.len();
    let expected_start = expected_end - 20;
    assert!(
        message.ends_with(&format!(
            "tensor q extends past end of file: needs bytes {expected_start}..{expected_end}, file has {file_len}"
        )),
        "{message}"
    );
}

#[test]
fn corrupt_headers_are_typed_errors() {
    let mut bad_magic = sample().build();
    bad_magic[0] = b'X';
    let (_dir, path) = write_temp(&bad_magic);
    assert!(matches!(GgufFile::open(&path), Err(Error::BadMagic { .. })));

    // A metadata count far beyond what the file could hold must not allocate or loop.
    let mut huge_count = sample().build();
    huge_count[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let (_dir, path) = write_temp(&huge_count);
    let message = GgufFile::open(&path).unwrap_err().to_string();
    assert!(message.contains("the metadata count"), "{message}");

    let unknown_value = GgufBuilder::new().raw("k", 99, vec![]).build();
    let (_dir, path) = write_temp(&unknown_value);
    assert!(matches!(
        GgufFile::open(&path),
        Err(Error::UnknownValueType { type_id: 99, .. })
    ));

    let bad_bool = GgufBuilder::new().raw("k", 7, vec![7]).build();
    let (_dir, path) = write_temp(&bad_bool);
    assert!(matches!(GgufFile::open(&path), Err(Error::Corrupt { .. })));

    let huge_array = GgufBuilder::new()
        .raw(
            "k",
            9,
            [4u32.to_le_bytes().as_slice(), &u64::MAX.to_le_bytes()].concat(),
        )
        .build();
    let (_dir, path) = write_temp(&huge_array);
    assert!(matches!(
        GgufFile::open(&path),
        Err(Error::Truncated { .. })
    ));

    let bad_dims = GgufBuilder::new()
        .tensor("t", &[30], 3, vec![0; 20])
        .build();
    let (_dir, path) = write_temp(&bad_dims);
    let message = GgufFile::open(&path).unwrap_err().to_string();
    assert!(
        message.contains("not a multiple of the Q4_1 block size 32"),
        "{message}"
    );

    let overflow = GgufBuilder::new()
        .tensor("t", &[u64::MAX, u64::MAX], 0, vec![])
        .build();
    let (_dir, path) = write_temp(&overflow);
    assert!(matches!(GgufFile::open(&path), Err(Error::Corrupt { .. })));
}

#[test]
fn unsupported_and_unknown_tensor_types_are_named() {
    // Q3_K (id 11): 110 bytes per 256 elements.
    let q3k = GgufBuilder::new()
        .tensor("output.weight", &[256], 11, vec![0; 110])
        .build();
    let (_dir, path) = write_temp(&q3k);
    let gguf = GgufFile::open(&path).unwrap();
    assert_eq!(
        gguf.tensor_data("output.weight").unwrap_err().to_string(),
        "tensor output.weight has type Q3_K, which agentc does not support yet (supported: F32, \
         F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K, BF16)"
    );
    let unknown = GgufBuilder::new()
        .tensor("t", &[32], 77, vec![0; 32])
        .build();
    let (_dir, path) = write_temp(&unknown);
    assert!(matches!(
        GgufFile::open(&path),
        Err(Error::UnknownTensorType { type_id: 77, .. })
    ));
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let err = GgufFile::open("/nonexistent/model.gguf").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read model file /nonexistent/model.gguf"),
        "{err}"
    );
}

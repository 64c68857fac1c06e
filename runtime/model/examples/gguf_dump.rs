//! Prints a GGUF file's metadata (long arrays abbreviated) and tensor table.
//! Usage: cargo run -p agentc-model --example gguf_dump -- MODEL.gguf

use agentc_model::{GgufFile, MetadataValue};

const SHOWN_ARRAY_ITEMS: usize = 8;
const SHOWN_STRING_CHARS: usize = 200;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: gguf_dump MODEL.gguf")?;
    let gguf = GgufFile::open(&path)?;
    println!(
        "version {} alignment {} data at {}",
        gguf.version(),
        gguf.alignment(),
        gguf.data_offset()
    );
    for (key, value) in gguf.metadata() {
        match value {
            MetadataValue::Array(items) => {
                let head: Vec<_> = items.iter().take(SHOWN_ARRAY_ITEMS).collect();
                println!("{key} = [{} items] {head:?}", items.len());
            }
            MetadataValue::String(s) => {
                let short: String = s.chars().take(SHOWN_STRING_CHARS).collect();
                println!("{key} = {short:?}");
            }
            other => println!("{key} = {other:?}"),
        }
    }
    for t in gguf.tensors() {
        println!("{:40} {:6} {:?}", t.name, t.ggml_type.name(), t.dims);
    }
    Ok(())
}

use std::collections::BTreeMap;

use super::*;

/// A tiny byte-level vocabulary: all 256 byte characters, a few merges and two control tokens.
fn tiny_vocab(add_bos: bool) -> BTreeMap<String, MetadataValue> {
    let map = ByteMap::new();
    let mut tokens = vec![
        "<|endoftext|>".to_owned(),
        "<|im_start|>".to_owned(),
        "<|im_end|>".to_owned(),
    ];
    let mut types = vec![3, 3, 3];
    for b in 0..=255u8 {
        tokens.push(map.char_for(b).to_string());
        types.push(1);
    }
    let merges = [
        "h e", "l l", "he ll", "hell o", "Ġ w", "Ġw o", "r l", "Ġwo rl", "Ġworl d",
    ];
    for rule in merges {
        tokens.push(rule.replace(' ', ""));
        types.push(1);
    }
    tokens.push("<tool>".to_owned());
    types.push(4);
    let strings = |items: Vec<String>| {
        MetadataValue::Array(items.into_iter().map(MetadataValue::String).collect())
    };
    let mut m = BTreeMap::new();
    m.insert(
        "tokenizer.ggml.model".into(),
        MetadataValue::String("gpt2".into()),
    );
    m.insert(
        "tokenizer.ggml.pre".into(),
        MetadataValue::String("smollm".into()),
    );
    m.insert("tokenizer.ggml.tokens".into(), strings(tokens));
    m.insert(
        "tokenizer.ggml.token_type".into(),
        MetadataValue::Array(types.into_iter().map(MetadataValue::I32).collect()),
    );
    m.insert(
        "tokenizer.ggml.merges".into(),
        strings(merges.iter().map(|s| s.to_string()).collect()),
    );
    m.insert("tokenizer.ggml.bos_token_id".into(), MetadataValue::U32(1));
    m.insert("tokenizer.ggml.eos_token_id".into(), MetadataValue::U32(2));
    m.insert(
        "tokenizer.ggml.add_bos_token".into(),
        MetadataValue::Bool(add_bos),
    );
    m
}

fn texts(tokenizer: &Tokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| tokenizer.token_text(id).unwrap().to_owned())
        .collect()
}

#[test]
fn merges_apply_in_rank_order() {
    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    let ids = tokenizer.encode("hello world", false, false).unwrap();
    assert_eq!(texts(&tokenizer, &ids), ["hello", "Ġworld"]);
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), "hello world");
}

#[test]
fn unmerged_bytes_fall_back_to_byte_tokens() {
    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    let ids = tokenizer.encode("é!", false, false).unwrap();
    assert_eq!(ids.len(), 3, "two UTF-8 bytes of é, then !");
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), "é!");
    // A character cut between tokens decodes to U+FFFD rather than failing.
    assert_eq!(tokenizer.decode(&ids[..1], false).unwrap(), "\u{fffd}");
}

#[test]
fn special_tokens_are_matched_only_when_parsing_specials() {
    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    let ids = tokenizer
        .encode("<|im_start|>hello<|im_end|>", false, true)
        .unwrap();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&2));
    assert_eq!(ids.len(), 3);
    let literal = tokenizer.encode("<|im_start|>", false, false).unwrap();
    assert!(
        literal.len() > 1,
        "without special parsing the marker is ordinary text"
    );
    // Control tokens are not rendered in ordinary output but are on request.
    assert_eq!(tokenizer.decode(&ids, false).unwrap(), "hello");
    assert_eq!(
        tokenizer.decode(&ids, true).unwrap(),
        "<|im_start|>hello<|im_end|>"
    );
}

#[test]
fn user_defined_tokens_are_always_matched() {
    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    let id = tokenizer.token_id("<tool>").unwrap();
    assert_eq!(tokenizer.encode("<tool>", false, false).unwrap(), [id]);
    assert_eq!(tokenizer.decode(&[id], false).unwrap(), "<tool>");
}

#[test]
fn bos_follows_the_metadata_flag() {
    let with = Tokenizer::from_metadata(&tiny_vocab(true)).unwrap();
    assert_eq!(with.encode("hello", true, false).unwrap()[0], 1);
    let without = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    assert_ne!(without.encode("hello", true, false).unwrap()[0], 1);
    assert!(!without.adds_bos());
}

#[test]
fn end_of_generation_includes_named_markers() {
    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    assert!(tokenizer.is_end_of_generation(2));
    assert!(
        tokenizer.is_end_of_generation(0),
        "<|endoftext|> ends generation too"
    );
    assert!(!tokenizer.is_end_of_generation(1));
}

#[test]
fn bad_metadata_is_rejected_with_the_key() {
    let mut m = tiny_vocab(false);
    m.insert(
        "tokenizer.ggml.model".into(),
        MetadataValue::String("llama".into()),
    );
    assert!(
        Tokenizer::from_metadata(&m)
            .unwrap_err()
            .to_string()
            .contains("\"llama\"")
    );

    let mut m = tiny_vocab(false);
    m.insert(
        "tokenizer.ggml.token_type".into(),
        MetadataValue::Array(vec![MetadataValue::I32(1)]),
    );
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(Error::InvalidValue { .. })
    ));

    let mut m = tiny_vocab(false);
    m.insert(
        "tokenizer.ggml.eos_token_id".into(),
        MetadataValue::U32(1_000_000),
    );
    assert!(matches!(
        Tokenizer::from_metadata(&m),
        Err(Error::InvalidValue { .. })
    ));

    let tokenizer = Tokenizer::from_metadata(&tiny_vocab(false)).unwrap();
    assert!(tokenizer.decode(&[999_999], false).is_err());
}

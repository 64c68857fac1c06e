//! GPT-2's reversible byte <-> character mapping: byte-level BPE vocabularies store every byte as
//! a printable character so that token strings never contain whitespace or control bytes.

/// Maps each byte to the character that stands for it in token strings, and back.
#[derive(Debug)]
pub struct ByteMap {
    to_char: [char; 256],
    to_byte: std::collections::HashMap<char, u8>,
}

impl ByteMap {
    pub fn new() -> Self {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut to_char = ['\0'; 256];
        let mut next_unprintable = 256u32;
        for byte in 0..=255u8 {
            to_char[byte as usize] = if printable(byte) {
                char::from(byte)
            } else {
                let c = char::from_u32(next_unprintable).unwrap_or(char::REPLACEMENT_CHARACTER);
                next_unprintable += 1;
                c
            };
        }
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Self { to_char, to_byte }
    }

    /// `bytes` written with the stand-in characters.
    pub fn encode(&self, bytes: &[u8]) -> String {
        bytes.iter().map(|&b| self.to_char[b as usize]).collect()
    }

    /// The stand-in character for `byte`.
    pub fn char_for(&self, byte: u8) -> char {
        self.to_char[byte as usize]
    }

    /// Appends the bytes a token string stands for. A character outside the mapping (only a
    /// malformed vocabulary has one) is kept as its own UTF-8.
    pub fn decode_into(&self, token_text: &str, out: &mut Vec<u8>) {
        for c in token_text.chars() {
            match self.to_byte.get(&c) {
                Some(&b) => out.push(b),
                None => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
            }
        }
    }
}

impl Default for ByteMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let map = ByteMap::new();
        let all: Vec<u8> = (0..=255).collect();
        let mut back = Vec::new();
        map.decode_into(&map.encode(&all), &mut back);
        assert_eq!(back, all);
        assert_eq!(map.char_for(b' '), 'Ġ');
        assert_eq!(map.char_for(b'\n'), 'Ċ');
        assert_eq!(map.char_for(b'a'), 'a');
    }
}

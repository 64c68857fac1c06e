//! Turning generated token bytes into text that is safe to show as it arrives: no half UTF-8
//! characters, and nothing that might turn out to be the start of a stop string.

/// Accumulates the bytes of generated tokens and finds stop strings in them.
#[derive(Debug)]
pub struct TextStream {
    bytes: Vec<u8>,
    /// Bytes already handed out by [`TextStream::take_ready`].
    emitted: usize,
    stops: Vec<String>,
}

impl TextStream {
    pub fn new(stops: &[String]) -> Self {
        Self {
            bytes: Vec::new(),
            emitted: 0,
            stops: stops.to_vec(),
        }
    }

    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// The earliest stop string in the text so far: (its index, its byte offset).
    pub fn find_stop(&self) -> Option<(usize, usize)> {
        self.stops
            .iter()
            .enumerate()
            .filter(|(_, stop)| !stop.is_empty())
            .filter_map(|(i, stop)| {
                self.bytes
                    .windows(stop.len())
                    .position(|w| w == stop.as_bytes())
                    .map(|at| (i, at))
            })
            .min_by_key(|&(_, at)| at)
    }

    /// Text that can be shown now: complete characters not followed only by a possible start of
    /// a stop string. Each byte is handed out once.
    pub fn take_ready(&mut self) -> String {
        let held_for_stop = self
            .stops
            .iter()
            .map(|stop| longest_suffix_prefix(&self.bytes, stop.as_bytes()))
            .max()
            .unwrap_or(0);
        let end = complete_utf8_end(&self.bytes[..self.bytes.len() - held_for_stop]);
        self.take_until(end)
    }

    /// Everything not yet handed out, up to `end` (a stop string's offset, or the end).
    pub fn finish(&mut self, end: Option<usize>) -> String {
        let end = end.unwrap_or(self.bytes.len()).max(self.emitted);
        self.take_until(end)
    }

    /// The whole text, cut at `end`.
    pub fn text(&self, end: Option<usize>) -> String {
        let end = end.unwrap_or(self.bytes.len());
        String::from_utf8_lossy(&self.bytes[..end]).into_owned()
    }

    fn take_until(&mut self, end: usize) -> String {
        if end <= self.emitted {
            return String::new();
        }
        let ready = String::from_utf8_lossy(&self.bytes[self.emitted..end]).into_owned();
        self.emitted = end;
        ready
    }
}

/// The length of the longest proper prefix of `stop` that `text` ends with.
fn longest_suffix_prefix(text: &[u8], stop: &[u8]) -> usize {
    (1..stop.len())
        .rev()
        .find(|&k| text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

/// `bytes.len()`, less a UTF-8 sequence cut short at the end.
fn complete_utf8_end(bytes: &[u8]) -> usize {
    const MAX_CONTINUATION_BYTES: usize = 3;
    for back in 1..=MAX_CONTINUATION_BYTES.min(bytes.len()) {
        let byte = bytes[bytes.len() - back];
        let is_continuation = byte & 0b1100_0000 == 0b1000_0000;
        if is_continuation {
            continue;
        }
        let sequence_len = match byte {
            0xF0..=0xFF => 4,
            0xE0..=0xEF => 3,
            0xC0..=0xDF => 2,
            _ => 1,
        };
        return if sequence_len > back {
            bytes.len() - back
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_half_characters() {
        let mut stream = TextStream::new(&[]);
        let crab = "🦀".as_bytes();
        stream.bytes_mut().extend_from_slice(b"a");
        stream.bytes_mut().extend_from_slice(&crab[..2]);
        assert_eq!(stream.take_ready(), "a");
        stream.bytes_mut().extend_from_slice(&crab[2..]);
        assert_eq!(stream.take_ready(), "🦀");
        assert_eq!(stream.finish(None), "");
    }

    #[test]
    fn holds_back_possible_stop_strings_and_cuts_at_them() {
        let mut stream = TextStream::new(&["\n\nUser:".to_owned()]);
        stream.bytes_mut().extend_from_slice(b"Hello\n");
        assert_eq!(stream.take_ready(), "Hello");
        stream.bytes_mut().extend_from_slice(b"world");
        assert_eq!(stream.take_ready(), "\nworld");
        stream.bytes_mut().extend_from_slice(b"\n\nUse");
        assert_eq!(stream.take_ready(), "");
        stream.bytes_mut().extend_from_slice(b"r: hi");
        let (index, at) = stream.find_stop().unwrap();
        assert_eq!(index, 0);
        assert_eq!(stream.finish(Some(at)), "");
        assert_eq!(stream.text(Some(at)), "Hello\nworld");
    }

    #[test]
    fn earliest_stop_string_wins() {
        let mut stream = TextStream::new(&["world".to_owned(), "lo".to_owned()]);
        stream.bytes_mut().extend_from_slice(b"hello world");
        assert_eq!(stream.find_stop(), Some((1, 3)));
    }
}

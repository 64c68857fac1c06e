//! A bounds-checked little-endian reader over the bytes of one GGUF file.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads primitive values front to back; every read checks that its bytes exist and otherwise
/// returns [`Error::Truncated`] naming what was being read.
pub(crate) struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(path: &'a Path, bytes: &'a [u8]) -> Self {
        Self {
            path,
            bytes,
            position: 0,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub(crate) fn path(&self) -> &'a Path {
        self.path
    }

    /// Takes the next `len` bytes, `what` naming them in the error if the file is too short.
    pub(crate) fn take(&mut self, len: usize, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let start = self.position;
        let end = start
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len());
        match end {
            Some(end) => {
                self.position = end;
                Ok(&self.bytes[start..end])
            }
            None => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                what: what(),
                start: start as u64,
                end: (start as u64).saturating_add(len as u64),
                file_len: self.bytes.len() as u64,
            }),
        }
    }

    fn take_array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let bytes = self.take(N, what)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    pub(crate) fn u8(&mut self, what: impl FnOnce() -> String) -> Result<u8> {
        Ok(self.take_array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: impl FnOnce() -> String) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take_array(what)?))
    }

    pub(crate) fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take_array(what)?))
    }

    pub(crate) fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take_array(what)?))
    }

    /// A length field converted to `usize`, rejected at once if it cannot fit in the rest of the
    /// file (each counted item needs at least `min_item_bytes`), so a corrupt length never causes
    /// a huge allocation.
    pub(crate) fn length(
        &mut self,
        min_item_bytes: usize,
        what: impl Fn() -> String,
    ) -> Result<usize> {
        let field_start = self.position as u64;
        let count = self.u64(&what)?;
        let needed = count.checked_mul(min_item_bytes as u64);
        match needed {
            Some(needed) if needed <= self.remaining() as u64 => Ok(count as usize),
            _ => Err(Error::Truncated {
                path: self.path.to_path_buf(),
                what: format!("{} (count {count} read at byte {field_start})", what()),
                start: self.position as u64,
                end: (self.position as u64).saturating_add(needed.unwrap_or(u64::MAX)),
                file_len: self.bytes.len() as u64,
            }),
        }
    }

    /// A GGUF string: a u64 byte length, then that many bytes of UTF-8. Invalid UTF-8 is replaced
    /// rather than rejected because some converters write raw bytes into token strings.
    pub(crate) fn string(&mut self, what: impl Fn() -> String) -> Result<String> {
        let len = self.length(1, &what)?;
        let bytes = self.take(len, &what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

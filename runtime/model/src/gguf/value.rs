//! GGUF metadata values: the twelve value types, arrays included, and typed access to them.

use crate::error::{Error, Result};
use crate::gguf::cursor::Cursor;

/// One metadata value as stored in a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// GGUF value type ids (`enum gguf_type`).
const TYPE_ARRAY: u32 = 9;

/// Arrays inside arrays are legal GGUF but nothing real nests deeper than this; the limit keeps a
/// corrupt file from recursing without bound.
const MAX_ARRAY_NESTING: usize = 4;

impl MetadataValue {
    /// The GGUF name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::F32(_) => "f32",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F64(_) => "f64",
        }
    }

    /// Any integer type as u64; negative values are `None`.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v),
            MetadataValue::I8(v) => u64::try_from(v).ok(),
            MetadataValue::I16(v) => u64::try_from(v).ok(),
            MetadataValue::I32(v) => u64::try_from(v).ok(),
            MetadataValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any integer or float type as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            MetadataValue::I8(v) => Some(v.into()),
            MetadataValue::I16(v) => Some(v.into()),
            MetadataValue::I32(v) => Some(v.into()),
            MetadataValue::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetadataValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[MetadataValue]> {
        match self {
            MetadataValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Reads one value of GGUF type `type_id`; `key` names it in errors.
    pub(crate) fn read(cursor: &mut Cursor<'_>, type_id: u32, key: &str) -> Result<Self> {
        Self::read_nested(cursor, type_id, key, 0)
    }

    fn read_nested(cursor: &mut Cursor<'_>, type_id: u32, key: &str, depth: usize) -> Result<Self> {
        let what = || format!("value of metadata key {key:?}");
        Ok(match type_id {
            0 => MetadataValue::U8(cursor.u8(what)?),
            1 => MetadataValue::I8(cursor.u8(what)? as i8),
            2 => MetadataValue::U16(cursor.u16(what)?),
            3 => MetadataValue::I16(cursor.u16(what)? as i16),
            4 => MetadataValue::U32(cursor.u32(what)?),
            5 => MetadataValue::I32(cursor.u32(what)? as i32),
            6 => MetadataValue::F32(f32::from_bits(cursor.u32(what)?)),
            7 => match cursor.u8(what)? {
                0 => MetadataValue::Bool(false),
                1 => MetadataValue::Bool(true),
                other => {
                    return Err(Error::Corrupt {
                        path: cursor.path().to_path_buf(),
                        what: format!("metadata key {key:?} is a bool with byte value {other}"),
                    });
                }
            },
            8 => MetadataValue::String(cursor.string(what)?),
            TYPE_ARRAY => {
                if depth >= MAX_ARRAY_NESTING {
                    return Err(Error::Corrupt {
                        path: cursor.path().to_path_buf(),
                        what: format!(
                            "metadata key {key:?} nests arrays deeper than {MAX_ARRAY_NESTING}"
                        ),
                    });
                }
                let item_type =
                    cursor.u32(|| format!("array item type of metadata key {key:?}"))?;
                let min_item_bytes =
                    min_encoded_size(item_type).ok_or_else(|| Error::UnknownValueType {
                        path: cursor.path().to_path_buf(),
                        key: key.to_owned(),
                        type_id: item_type,
                    })?;
                let count = cursor.length(min_item_bytes, || {
                    format!("array length of metadata key {key:?}")
                })?;
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(Self::read_nested(cursor, item_type, key, depth + 1)?);
                }
                MetadataValue::Array(items)
            }
            10 => MetadataValue::U64(cursor.u64(what)?),
            11 => MetadataValue::I64(cursor.u64(what)? as i64),
            12 => MetadataValue::F64(f64::from_bits(cursor.u64(what)?)),
            other => {
                return Err(Error::UnknownValueType {
                    path: cursor.path().to_path_buf(),
                    key: key.to_owned(),
                    type_id: other,
                });
            }
        })
    }
}

/// The fewest bytes one value of `type_id` can occupy, or `None` for an unknown type.
fn min_encoded_size(type_id: u32) -> Option<usize> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        // A string or an array is at least its u64 length (plus an item type for arrays).
        8 | 10..=12 => 8,
        TYPE_ARRAY => 12,
        _ => return None,
    })
}

/// Typed lookups into the metadata map that fail with [`Error::MissingKey`] or
/// [`Error::WrongValueType`] naming the key.
pub trait MetadataLookup {
    fn value(&self, key: &str) -> Option<&MetadataValue>;

    fn required(&self, key: &str) -> Result<&MetadataValue> {
        self.value(key)
            .ok_or_else(|| Error::MissingKey(key.to_owned()))
    }

    fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        self.value(key)
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| wrong_type(key, "a non-negative integer", v))
            })
            .transpose()
    }

    fn get_f64(&self, key: &str) -> Result<Option<f64>> {
        self.value(key)
            .map(|v| v.as_f64().ok_or_else(|| wrong_type(key, "a number", v)))
            .transpose()
    }

    fn get_str(&self, key: &str) -> Result<Option<&str>> {
        self.value(key)
            .map(|v| v.as_str().ok_or_else(|| wrong_type(key, "a string", v)))
            .transpose()
    }

    fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        self.value(key)
            .map(|v| v.as_bool().ok_or_else(|| wrong_type(key, "a bool", v)))
            .transpose()
    }

    fn get_array(&self, key: &str) -> Result<Option<&[MetadataValue]>> {
        self.value(key)
            .map(|v| v.as_array().ok_or_else(|| wrong_type(key, "an array", v)))
            .transpose()
    }

    fn require_u64(&self, key: &str) -> Result<u64> {
        self.get_u64(key)?
            .ok_or_else(|| Error::MissingKey(key.to_owned()))
    }

    fn require_str(&self, key: &str) -> Result<&str> {
        self.get_str(key)?
            .ok_or_else(|| Error::MissingKey(key.to_owned()))
    }

    fn require_array(&self, key: &str) -> Result<&[MetadataValue]> {
        self.get_array(key)?
            .ok_or_else(|| Error::MissingKey(key.to_owned()))
    }
}

pub(crate) fn wrong_type(key: &str, expected: &'static str, found: &MetadataValue) -> Error {
    Error::WrongValueType {
        key: key.to_owned(),
        expected,
        found: found.type_name(),
    }
}

impl MetadataLookup for std::collections::BTreeMap<String, MetadataValue> {
    fn value(&self, key: &str) -> Option<&MetadataValue> {
        self.get(key)
    }
}
